"""One app process of the benchmark: function_app's queue triggers fed by the shared broker,
the way a Functions instance is fed by Service Bus, as the Service Bus extension runs each
dispatch mode with host.json's values (tools/localhost/sessions.py): a batch trigger one batch
at a time per instance (on a session queue, one session at a time, held until a receive waits
``sessionIdleTimeout`` in vain); a single-message trigger ``maxConcurrentCalls`` messages at once
(on a session queue, ``maxConcurrentSessions`` sessions at once, one message each). Settings
come from the environment.

stdin commands, one per line: ``stats`` prints {"cpu": seconds, "host_cpu": seconds, "tables":
requests} (``cpu``: every thread of this process, from getrusage; ``host_cpu``: the part of it
spent standing in for the Functions host, see :func:`_charge_host`); ``stop`` ends it.
Development tool.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, copy_context
from pathlib import Path
from typing import Any

import aiohttp
from azure.functions.servicebus import ServiceBusMessage

from tools.localhost import sessions

# As host.json sets them for the Functions host.
SERVICE_BUS = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())["extensions"]["serviceBus"]
EVENT_CONCURRENCY = int(SERVICE_BUS["maxConcurrentCalls"])
EVENTS_PER_RECEIVE = 8


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# Who a piece of this process's work is for. In Azure the Functions host receives, locks and
# settles the messages in its own process (the Service Bus extension runs in the .NET host; the
# language worker gets each invocation over gRPC), so this file's receive loops and their HTTP
# round trips to the broker are not the app's CPU. They run in contexts marked "host"; each
# invocation runs in a task marked "app", and what it starts inherits the mark.
_role: ContextVar[str] = ContextVar("bench_role", default="app")
_host_cpu = [0.0]


def _charge_host() -> None:
    """Time every event-loop callback run in a "host" context (thread CPU time) and add it up.
    Whatever no such callback measures (the app's callbacks, the loop's own bookkeeping, other
    threads) stays the app's: the split errs towards charging the app."""
    run = asyncio.events.Handle._run

    def timed(self: asyncio.events.Handle) -> None:
        if self._context.get(_role) != "host":  # type: ignore[attr-defined]
            return run(self)
        start = time.thread_time()
        try:
            return run(self)
        finally:
            _host_cpu[0] += time.thread_time() - start

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


async def _invoke(function: Callable[[Any], Awaitable[Any]], make_argument: Callable[[], Any]) -> Any:
    """One invocation, as the app's work: its argument is built (the worker decoding the
    message) and the function run in a task of its own marked "app"."""
    context = copy_context()
    context.run(_role.set, "app")

    async def invocation() -> Any:
        return await function(make_argument())

    return await asyncio.get_running_loop().create_task(invocation(), context=context)


def _message(item: dict) -> ServiceBusMessage:
    return ServiceBusMessage(
        body=base64.b64decode(item["body"]),
        message_id=item["messageId"],
        session_id=item.get("sessionId"),
        delivery_count=item["deliveryCount"],
        application_properties={},
        user_properties={},
        content_type="application/json",
        lock_token=str(uuid.uuid4()),
    )


async def _settle(http: aiohttp.ClientSession, broker: str, tokens: list[str], ok: bool, error: str = "") -> None:
    if tokens:
        async with http.post(f"{broker}/_broker/settle", json={"tokens": tokens, "ok": ok, "error": error}) as response:
            await response.read()


async def _run_and_settle(http: aiohttp.ClientSession, broker: str, items: list[dict], function, make_argument) -> None:
    """Run one invocation (``function(make_argument())``) on ``items`` and settle them all by
    its outcome, as the host does."""
    tokens = [i["token"] for i in items]
    try:
        await _invoke(function, make_argument)
    except Exception as exc:  # noqa: BLE001 - the broker redelivers, as Service Bus would
        error = f"{type(exc).__name__}: {exc}"
        print(json.dumps({"error": error[:300]}), file=sys.stderr, flush=True)
        await _settle(http, broker, tokens, False, error)
        return
    await _settle(http, broker, tokens, True)


async def consume(http: aiohttp.ClientSession, broker: str, queue: str, function, *, at_once: int = 1) -> None:
    """A single-message trigger on a queue without sessions: messages come several to a round
    trip, run concurrently, each settled by its own outcome."""
    while True:
        async with http.post(f"{broker}/_broker/queues/{queue}/receive", json={"max": at_once}) as response:
            items = (await response.json())["messages"]
        if not items:
            continue
        outcomes = await asyncio.gather(
            *(_invoke(function, lambda i=i: _message(i)) for i in items), return_exceptions=True
        )
        failed = [(i["token"], o) for i, o in zip(items, outcomes, strict=True) if isinstance(o, BaseException)]
        await _settle(
            http,
            broker,
            [i["token"] for i, o in zip(items, outcomes, strict=True) if not isinstance(o, BaseException)],
            True,
        )
        for token, error in failed:
            print(json.dumps({"error": f"{type(error).__name__}: {error}"[:300]}), file=sys.stderr, flush=True)
            await _settle(http, broker, [token], False, f"{type(error).__name__}: {error}")


async def consume_batches(http: aiohttp.ClientSession, broker: str, queue: str, function) -> None:
    """A batch trigger on a queue without sessions, as the extension runs it: one loop per
    instance, up to ``maxMessageBatchSize`` messages a batch, the batch settled whole."""
    _, max_count = sessions.receivers("many", SERVICE_BUS)
    while True:
        async with http.post(f"{broker}/_broker/queues/{queue}/receive", json={"max": max_count}) as response:
            items = (await response.json())["messages"]
        if items:
            await _run_and_settle(http, broker, items, function, lambda items=items: [_message(i) for i in items])


class BrokerSessions:
    """The broker's sessions of one queue, as a session receiver sees them."""

    def __init__(self, http: aiohttp.ClientSession, broker: str, queue: str) -> None:
        self.http, self.base = http, f"{broker}/_broker/queues/{queue}"

    async def accept(self) -> str | None:
        async with self.http.post(f"{self.base}/accept") as response:
            session: str | None = (await response.json())["session"]
            return session

    async def receive(self, session: str, max_count: int, wait_seconds: float) -> list[dict]:
        body = {"max": max_count, "wait": wait_seconds}
        async with self.http.post(f"{self.base}/sessions/{session}/receive", json=body) as response:
            messages: list[dict] = (await response.json())["messages"]
            return messages

    async def release(self, session: str) -> None:
        async with self.http.post(f"{self.base}/sessions/{session}/release") as response:
            await response.read()


async def consume_sessions(http: aiohttp.ClientSession, broker: str, queue: str, function, cardinality: str) -> None:
    """A trigger on a session-enabled queue, as the extension runs it (tools/localhost/sessions.py)."""
    count, max_count = sessions.receivers(cardinality, SERVICE_BUS)
    source = BrokerSessions(http, broker, queue)

    async def run(session: str, items: list[dict]) -> None:
        def argument() -> Any:
            return [_message(i) for i in items] if cardinality == "many" else _message(items[0])

        await _run_and_settle(http, broker, items, function, argument)

    idle = sessions.idle_seconds(SERVICE_BUS)
    await asyncio.gather(
        *(sessions.session_receiver(source, run, max_count=max_count, idle=idle) for _ in range(count))
    )


def cardinality_of(function) -> str:
    """A Service Bus trigger's cardinality ("one" or "many"), from its binding."""
    [trigger] = [b for b in function.get_bindings() if b.type == "serviceBusTrigger"]
    return str(trigger.cardinality.value if hasattr(trigger.cardinality, "value") else trigger.cardinality or "one")


async def main() -> None:
    import logging

    # As the Python worker has it (azure-functions-python-worker, dispatcher.py): the root logger
    # at INFO and every record formatted for the host; the app sets its libraries' levels itself.
    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, os.getcwd())
    import function_app
    from shared import bootstrap
    from shared.adapters.state_store import table_requests, table_requests_by_table

    faults = float(os.environ.get("BENCH_TABLE_FAULTS", "0") or 0)
    if faults:
        # Table Storage requests that fail as a connection reset would, at this rate: the
        # storm's count must hold when batches fail part-way and are delivered again.
        import random

        from shared.adapters.state_store import AzureTable
        from shared.ports import TransientError

        real_call = AzureTable._call

        async def flaky_call(self, coro):
            if random.random() < faults:
                coro.close()
                raise TransientError("Table Storage is unreachable: injected fault")
            return await real_call(self, coro)

        AzureTable._call = flaky_call  # type: ignore[method-assign]
    _role.set("host")  # this task and every loop it starts below, but not the invocations
    _charge_host()
    indexed = {f.get_function_name(): f for f in function_app.app.get_functions()}  # once per app object
    functions = {name: f.get_user_function() for name, f in indexed.items()}
    deliveries = cardinality_of(indexed["deliveries"])
    events_cardinality = cardinality_of(indexed["alert_events"])
    broker = os.environ["LOCAL_QUEUE_HOST_URL"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        events = os.environ["ALERT_EVENTS_QUEUE"]
        if events_cardinality == "many":
            tasks = [asyncio.create_task(consume_batches(http, broker, events, functions["alert_events"]))]
        else:
            tasks = [
                asyncio.create_task(
                    consume(http, broker, events, functions["alert_events"], at_once=EVENTS_PER_RECEIVE)
                )
                for _ in range(EVENT_CONCURRENCY // EVENTS_PER_RECEIVE)
            ]
        tasks.append(
            asyncio.create_task(
                consume_sessions(http, broker, os.environ["DELIVERY_QUEUE"], functions["deliveries"], deliveries)
            )
        )
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "stats":
                print(
                    json.dumps(
                        {
                            "cpu": _cpu(),
                            "host_cpu": _host_cpu[0],
                            "tables": table_requests(),
                            "by_table": table_requests_by_table(),
                        }
                    ),
                    flush=True,
                )
            elif line in ("stop", ""):
                break
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bootstrap.reset()


if __name__ == "__main__":
    profile = os.environ.get("BENCH_PROFILE")  # a file: write a cProfile of this process there at the end
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(main())
        finally:
            profiler.disable()
            profiler.dump_stats(profile)
    else:
        asyncio.run(main())

"""One app process of the benchmark: function_app's queue triggers fed by the shared broker,
the way a Functions instance is fed by Service Bus (16 concurrent alert events, 8 sessions
of delivery jobs in batches, as host.json says). Settings come from the environment.

stdin commands, one per line: ``stats`` prints {"cpu": seconds, "tables": requests} (CPU of
every thread of this process, from getrusage); ``stop`` ends it. Development tool.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import sys
import uuid
from pathlib import Path

import aiohttp
from azure.functions.servicebus import ServiceBusMessage

# As host.json sets them for the Functions host.
_SERVICE_BUS = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())["extensions"]["serviceBus"]
EVENT_CONCURRENCY = int(_SERVICE_BUS["maxConcurrentCalls"])
SESSION_CONCURRENCY = int(_SERVICE_BUS["maxConcurrentSessions"])
BATCH = int(_SERVICE_BUS["maxMessageBatchSize"])
EVENTS_PER_RECEIVE = 8


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


async def consume(
    http: aiohttp.ClientSession, broker: str, queue: str, function, *, sessions: bool, at_once: int = 1
) -> None:
    """Receive and settle the way the Functions host's Service Bus link does: messages come
    several to a round trip (``at_once`` for single-message triggers, run concurrently, each
    settled by its own outcome), a session's batch comes whole."""
    while True:
        async with http.post(
            f"{broker}/_broker/queues/{queue}/receive",
            json={"sessions": sessions, "max": BATCH if sessions else at_once},
        ) as response:
            taken = await response.json()
        items = taken["messages"]
        if not items:
            continue
        if sessions:
            try:
                await function([_message(i) for i in items])
            except Exception as exc:  # noqa: BLE001 - the broker redelivers, as Service Bus would
                error = f"{type(exc).__name__}: {exc}"
                print(json.dumps({"error": error[:300]}), file=sys.stderr, flush=True)
                await _settle(http, broker, [i["token"] for i in items], False, error)
                continue
            await _settle(http, broker, [i["token"] for i in items], True)
            continue
        outcomes = await asyncio.gather(*(function(_message(i)) for i in items), return_exceptions=True)
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


async def main() -> None:
    import logging

    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
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
    functions = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
    broker = os.environ["LOCAL_QUEUE_HOST_URL"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        tasks = [
            asyncio.create_task(
                consume(
                    http,
                    broker,
                    os.environ["ALERT_EVENTS_QUEUE"],
                    functions["alert_events"],
                    sessions=False,
                    at_once=EVENTS_PER_RECEIVE,
                )
            )
            for _ in range(EVENT_CONCURRENCY // EVENTS_PER_RECEIVE)
        ]
        tasks += [
            asyncio.create_task(
                consume(http, broker, os.environ["DELIVERY_QUEUE"], functions["deliveries"], sessions=True)
            )
            for _ in range(SESSION_CONCURRENCY)
        ]
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "stats":
                print(
                    json.dumps({"cpu": _cpu(), "tables": table_requests(), "by_table": table_requests_by_table()}),
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

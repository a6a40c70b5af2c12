"""The local host: serves, queues and schedules a FunctionApp like the Functions host."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest
from multidict import CIMultiDict

from . import sessions
from .indexing import HttpFunction, IndexedFunction, QueueFunction, TimerFunction, index_app
from .queues import DEFAULT_MAX_DELIVERY_COUNT, MemoryQueue, MessageInfo, QueuedMessage

logger = logging.getLogger("tools.localhost")

# What the app logged during the invocation running in this context (asyncio tasks and
# asyncio.to_thread copy the context, so the app's own tasks are included).
_INVOCATION_LOG: ContextVar[list[dict[str, Any]] | None] = ContextVar("invocation_log", default=None)
MAX_LOG_RECORDS = 50
# Loggers whose INFO records are the app's own story; other loggers are kept from WARNING up.
APP_LOGGERS = ("shared", "function_app")


class InvocationLog(logging.Handler):
    """Keeps each invocation's log records (the app's, not the host's), with the structured
    ``outcome`` a record may carry, for the message status of the management API."""

    def emit(self, record: logging.LogRecord) -> None:
        records = _INVOCATION_LOG.get()
        if records is None or record.name.startswith("tools.localhost") or len(records) >= MAX_LOG_RECORDS:
            return
        if record.levelno < logging.WARNING and not record.name.startswith(APP_LOGGERS):
            return  # a library's chatter (the Azure SDK logs every request at INFO)
        entry: dict[str, Any] = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        outcome = getattr(record, "outcome", None)
        if isinstance(outcome, dict):
            entry["outcome"] = outcome
        records.append(entry)


_CAPTURE = InvocationLog(level=logging.INFO)

#: Core Tools' default port.
DEFAULT_PORT = 7071
#: host.json extensions.http.routePrefix default.
DEFAULT_ROUTE_PREFIX = "api"
#: host.json extensions.serviceBus.maxConcurrentCalls default (extension 5.x: 16 x cores;
#: a fixed 16 keeps local runs comparable across machines).
DEFAULT_MAX_CONCURRENT_CALLS = 16
#: Service Bus default lock duration, reported as LockedUntilUtc.
LOCK_DURATION = timedelta(minutes=1)
#: A timer invocation later than this after its schedule is reported as past due.
PAST_DUE_AFTER = timedelta(seconds=1)
#: How long stop() lets running invocations finish before cancelling them.
STOP_GRACE_SECONDS = 5.0
MANAGEMENT_PREFIX = "/_localhost"

_HTTP_REASON = "This function was programmatically called via the host APIs."
# aiohttp computes these itself; copying the function's values would conflict.
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True)
class InvocationResult:
    """What one invocation returned or raised."""

    function: str
    invocation_id: str
    succeeded: bool
    duration_ms: float
    value: Any = None
    error: BaseException | None = None
    log: tuple[dict[str, Any], ...] = ()

    @property
    def error_message(self) -> str | None:
        """The exception's message (its type name when the message is empty)."""
        if self.error is None:
            return None
        return str(self.error) or type(self.error).__name__


class _Out(func.Out):
    """The value a function sets on an output binding."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _Context(func.Context):
    """The ``context`` argument of an invocation."""

    def __init__(self, invocation_id: str, function_name: str, directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._directory = directory
        self._local = threading.local()
        self._local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


def read_host_json(source: Path | str | Mapping[str, Any] | None) -> dict[str, Any]:
    """host.json as a dict: from a path, a dict, or nothing (defaults)."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _host_name(value: str) -> str:
    """The name part of a Host header or an Origin's authority (the port dropped)."""
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@web.middleware
async def _loopback_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """The management API (``/_localhost``: queues, timers, console) is for this machine's tools
    and its browser tab only. A page on another site can make the browser send it requests:
    DNS rebinding (another name resolving to 127.0.0.1: the Host is not a loopback name), a
    cross-site form or ``text/plain`` post (an Origin that is not this host's, a body that is not
    JSON, which no cross-site request may send without a preflight this host never approves)."""
    if not request.path.startswith(MANAGEMENT_PREFIX):
        return await handler(request)
    host = _host_name((request.headers.get("Host") or "").lower())
    if host not in LOOPBACK_NAMES:
        return web.json_response(
            {"error": f"the local host answers only to localhost, not to Host {host!r}"}, status=403
        )
    origin = request.headers.get("Origin")
    if origin is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(origin.lower())
        if parts.scheme not in ("http", "https") or _host_name(parts.netloc) not in LOOPBACK_NAMES:
            return web.json_response({"error": f"requests from {origin} are not accepted"}, status=403)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        is_json = content_type == "application/json" or (
            content_type.startswith("application/") and content_type.endswith("+json")
        )
        if not is_json:
            return web.json_response(
                {"error": f"send application/json (got {content_type or 'no Content-Type'})"}, status=415
            )
    return await handler(request)


def _carries_token(request: web.Request, token: str) -> bool:
    import base64
    import binascii
    import hmac

    presented = request.headers.get("X-Local-Token", "")
    scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    if not presented and scheme.lower() == "basic":
        try:
            presented = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            presented = ""
    return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class LocalHost:
    """Runs a FunctionApp locally: HTTP routes, Service Bus queues in memory, timers.

    ``app`` is indexed once (``app.get_functions()``). ``env`` adds app settings on top
    of ``os.environ`` for ``%NAME%`` binding expressions. ``host_json`` (a path or a
    dict) supplies ``extensions.http.routePrefix`` and
    ``extensions.serviceBus.maxConcurrentCalls``. Queues named in
    ``duplicate_detection`` drop a message whose id was seen in the last ten minutes.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        port: int = 0,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        redelivery_delay: float = 0.5,
        env: Mapping[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        host_json: Path | str | Mapping[str, Any] | None = None,
        duplicate_detection: Iterable[str] = (),
        app_directory: Path | str | None = None,
        token: str | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        # The timers' clock and sleep (tests give their own: a schedule is then followed
        # without waiting in real time).
        self._clock = clock or _utcnow
        self._sleep = sleep or asyncio.sleep
        self.host = host
        self.port = port
        self.max_delivery_count = max_delivery_count
        self.redelivery_delay = redelivery_delay
        self.app_directory = str(app_directory or Path.cwd())
        # The run's token (`make run` makes one): writes to the management API must carry it, as
        # the password of basic auth (the app's LOCAL_QUEUE_HOST_URL holds it) or X-Local-Token.
        self.token = token
        settings = {**os.environ, **(env or {})}
        self.functions: list[IndexedFunction] = index_app(app, settings)
        config = read_host_json(host_json).get("extensions", {})
        prefix = config.get("http", {}).get("routePrefix", DEFAULT_ROUTE_PREFIX)
        self.route_prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        service_bus = config.get("serviceBus", {})
        self.max_concurrent_calls = int(
            service_bus.get("maxConcurrentCalls")
            or service_bus.get("messageHandlerOptions", {}).get("maxConcurrentCalls")
            or DEFAULT_MAX_CONCURRENT_CALLS
        )
        # Session triggers run as the Service Bus extension runs them (tools/localhost/sessions.py).
        self.service_bus: dict[str, Any] = dict(service_bus)
        self.session_idle_seconds = sessions.idle_seconds(service_bus)
        self._duplicate_detection = set(duplicate_detection)
        self._queues: dict[str, MemoryQueue] = {}
        self._changed = asyncio.Event()
        self._running = 0
        self._timer_locks: dict[str, asyncio.Lock] = {}
        self._timer_next: dict[str, datetime] = {}
        self._timer_last: dict[str, datetime] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._started = False
        self._root_level: int | None = None
        for function in self.functions:
            if isinstance(function, QueueFunction):
                self.queue(function.queue_name).has_trigger = True
            for output in function.output_queues:
                self.queue(output.queue_name)
            if isinstance(function, TimerFunction):
                self._timer_locks[function.name] = asyncio.Lock()

    # Lifecycle

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. ``http://127.0.0.1:7071`` (once started)."""
        if not self._started:
            raise RuntimeError("the local host is not started")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start the HTTP server, the queue consumers and the timers."""
        server = web.Application(
            client_max_size=100 * 1024 * 1024, middlewares=[_loopback_only, self._token_for_writes]
        )
        self._add_management_routes(server)
        server.router.add_route("*", "/{tail:.*}", self._handle_function)
        root = logging.getLogger()
        if _CAPTURE not in root.handlers:
            root.addHandler(_CAPTURE)
        # The Functions host passes the app's Information records on (host.json's default
        # level); so does this one, whatever the level of the process that embeds it.
        self._root_level = root.level
        if root.level > logging.INFO:
            root.setLevel(logging.INFO)
        self._runner = web.AppRunner(server, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._started = True
        self._log_functions()
        for function in self.functions:
            if isinstance(function, QueueFunction):
                worker = self._consume_sessions(function) if function.is_sessions_enabled else self._consume(function)
            elif isinstance(function, TimerFunction):
                worker = self._schedule(function)
            else:
                continue
            self._workers.append(asyncio.create_task(worker, name=f"localhost:{function.name}"))
        logger.info("Host started: %s (management API %s%s/)", self.url, self.url, MANAGEMENT_PREFIX)

    async def stop(self) -> None:
        """Stop consuming and scheduling, let running invocations finish, close the server."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        if self._deliveries:
            _, pending = await asyncio.wait(set(self._deliveries), timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for queue in self._queues.values():
            queue.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        root = logging.getLogger()
        root.removeHandler(_CAPTURE)
        if self._root_level is not None:
            root.setLevel(self._root_level)
            self._root_level = None

    async def __aenter__(self) -> LocalHost:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # Queues

    def queue(self, name: str) -> MemoryQueue:
        """The queue called ``name``, created on first use."""
        if name not in self._queues:
            self._queues[name] = MemoryQueue(
                name,
                max_delivery_count=self.max_delivery_count,
                duplicate_detection=name in self._duplicate_detection,
                on_change=self._changed.set,
            )
        return self._queues[name]

    @property
    def queue_names(self) -> list[str]:
        """Every known queue: triggers, output bindings, and queues published to."""
        return sorted(self._queues)

    async def publish(
        self,
        queue: str,
        body: bytes | str,
        message_id: str | None = None,
        application_properties: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> str:
        """Send a message to ``queue`` and return its message id."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        message_id, _ = self.queue(queue).send(
            body,
            message_id=message_id,
            content_type=content_type,
            application_properties=dict(application_properties or {}),
        )
        return message_id

    def messages(self, queue: str) -> list[MessageInfo]:
        """Every message sent to ``queue`` with its state (active/completed/deadlettered)."""
        return self._existing_queue(queue).messages()

    def dead_letters(self, queue: str) -> list[MessageInfo]:
        """The dead-letter sub-queue of ``queue``."""
        return self._existing_queue(queue).dead_letters()

    def _existing_queue(self, name: str) -> MemoryQueue:
        if name not in self._queues:
            raise KeyError(f"no queue {name!r}; known queues: {', '.join(self.queue_names) or 'none'}")
        return self._queues[name]

    async def wait_idle(self, timeout: float = 10) -> None:
        """Wait until every triggered queue is drained and no invocation is running.

        Raises TimeoutError naming what is still busy.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._idle():
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"the local host is still busy after {timeout} s: {self._busy()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _idle(self) -> bool:
        return self._running == 0 and not any(q.busy for q in self._queues.values() if q.has_trigger)

    def _busy(self) -> str:
        parts = [f"queue {q.name} {q.counts()}" for q in self._queues.values() if q.has_trigger and q.busy]
        if self._running:
            parts.append(f"{self._running} invocation(s) running")
        return "; ".join(parts)

    async def _consume(self, function: QueueFunction) -> None:
        if function.cardinality == "many":
            await self._consume_batches(function)
            return
        queue = self._queues[function.queue_name]
        slots = asyncio.Semaphore(self.max_concurrent_calls)
        while True:
            await queue.wait_for_message()
            await slots.acquire()
            message = queue.receive()
            if message is None:  # another function on the same queue took it
                slots.release()
                continue
            task = asyncio.create_task(self._deliver(function, queue, message, slots))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _consume_batches(self, function: QueueFunction) -> None:
        """A batch trigger on a queue without sessions, as the extension runs it
        (ServiceBusListener.RunBatchReceiveLoopAsync; tools/localhost/sessions.py): one loop per
        instance, a batch of up to ``maxMessageBatchSize`` ready messages at a time, each batch
        settled (all completed, or all abandoned) before the next is received."""
        queue = self._queues[function.queue_name]
        _, max_count = sessions.receivers("many", self.service_bus)
        while True:
            await queue.wait_for_message()
            batch: list[QueuedMessage] = []
            while len(batch) < max_count and (message := queue.receive()) is not None:
                batch.append(message)
            if not batch:
                continue
            task = asyncio.create_task(self._deliver_batch(function, queue, batch))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
            await asyncio.shield(task)

    async def _deliver_batch(self, function: QueueFunction, queue: MemoryQueue, batch: list[QueuedMessage]) -> None:
        arguments = [_service_bus_message(m) for m in batch]
        details = f"Trigger Details: MessageCount: {len(batch)}, FirstMessageId: {batch[0].message_id}"
        result = await self._invoke(function, {function.arg_name: arguments}, "(null)", details)
        self._settle(queue, batch, result)

    def _settle(self, queue: MemoryQueue, messages: Sequence[QueuedMessage], result: InvocationResult) -> None:
        """Complete every message of an invocation that succeeded; abandon every one of one that
        failed (dead-lettered at the queue's maximum delivery count)."""
        for message in messages:
            if result.succeeded:
                queue.complete(message, result.duration_ms, log=result.log)
            elif queue.abandon(
                message,
                result.error_message or "",
                delay=self.redelivery_delay,
                duration_ms=result.duration_ms,
                log=result.log,
            ):
                logger.warning(
                    (
                        "Message %s on queue %s moved to the dead-letter queue after %d deliveries "
                        "(MaxDeliveryCountExceeded): %s"
                    ),
                    message.message_id,
                    queue.name,
                    message.delivery_count,
                    result.error_message,
                )

    async def _consume_sessions(self, function: QueueFunction) -> None:
        """Session receivers as the extension runs them: a batch trigger one per instance, one
        session at a time; a single-message trigger ``maxConcurrentSessions`` of them, one message
        at a time each. A receiver keeps its session until ``sessionIdleTimeout`` passes with no
        message, so one conversation's messages never run in parallel."""
        queue = self._queues[function.queue_name]
        count, max_count = sessions.receivers(function.cardinality, self.service_bus)
        source = sessions.MemorySessions(queue)

        async def run(session: str, messages: Sequence[QueuedMessage]) -> None:
            # Its own task, so that stop() lets a running invocation finish.
            task = asyncio.create_task(self._deliver_session(function, queue, session, list(messages)))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
            await asyncio.shield(task)

        await asyncio.gather(
            *(
                sessions.session_receiver(source, run, max_count=max_count, idle=self.session_idle_seconds)
                for _ in range(count)
            )
        )

    async def _deliver_session(
        self,
        function: QueueFunction,
        queue: MemoryQueue,
        session: str,
        messages: list[QueuedMessage],
    ) -> None:
        arguments = [_service_bus_message(m) for m in messages]
        details = (
            f"Trigger Details: SessionId: {session}, MessageCount: {len(messages)}, FirstMessageId: "
            f"{messages[0].message_id}"
        )
        value = arguments if function.cardinality == "many" else arguments[0]
        result = await self._invoke(function, {function.arg_name: value}, "(null)", details)
        self._settle(queue, messages, result)

    async def _deliver(
        self, function: QueueFunction, queue: MemoryQueue, message: QueuedMessage, slots: asyncio.Semaphore
    ) -> None:
        try:
            argument = _service_bus_message(message)
            details = (
                f"Trigger Details: MessageId: {message.message_id}, SequenceNumber: "
                f"{message.sequence_number}, DeliveryCount: {message.delivery_count}, "
                f"EnqueuedTimeUtc: {_iso(message.enqueued_time)}, "
                f"LockedUntilUtc: {_iso(argument.locked_until)}, SessionId: (null)"
            )
            value = [argument] if function.cardinality == "many" else argument
            result = await self._invoke(function, {function.arg_name: value}, "(null)", details)
            self._settle(queue, [message], result)
        finally:
            slots.release()

    # Timers

    async def run_timer(self, name: str) -> InvocationResult:
        """Run the timer function ``name`` now (after its current run, if any)."""
        function = next((f for f in self.functions if f.name == name and isinstance(f, TimerFunction)), None)
        if function is None:
            timers = ", ".join(f.name for f in self.functions if isinstance(f, TimerFunction))
            raise KeyError(f"no timer function {name!r}; timer functions: {timers or 'none'}")
        return await self._fire(function, past_due=False, reason=_HTTP_REASON)

    async def _schedule(self, function: TimerFunction) -> None:
        if function.run_on_startup:
            await self._fire(function, past_due=False, reason=f"Timer fired at {_iso(self._clock())} (run on startup)")
        due = self._clock()
        while True:
            # asyncio.sleep may wake a little early: never schedule the same occurrence twice.
            due = function.schedule.next_after(max(self._clock(), due))
            self._timer_next[function.name] = due
            await self._sleep(max(0.0, (due - self._clock()).total_seconds()))
            # Functions computes the next occurrence only after a run ends, so runs never overlap.
            past_due = self._clock() - due > PAST_DUE_AFTER
            await self._fire(function, past_due=past_due, reason=f"Timer fired at {_iso(due)}")

    async def _fire(self, function: TimerFunction, *, past_due: bool, reason: str) -> InvocationResult:
        async with self._timer_locks[function.name]:
            now = self._clock()
            last = self._timer_last.get(function.name)
            status = {
                "Last": _iso(last) if last else None,
                "Next": _iso(function.schedule.next_after(now)),
                "LastUpdated": _iso(now),
            }
            request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
            result = await self._invoke(function, {function.arg_name: request}, reason)
            self._timer_last[function.name] = now
            return result

    # HTTP

    async def _handle_function(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if self.route_prefix:
            if path != self.route_prefix and not path.startswith(self.route_prefix + "/"):
                raise web.HTTPNotFound()
            path = path[len(self.route_prefix) :]
        matches = [
            (function, params)
            for function in self.functions
            if isinstance(function, HttpFunction) and (params := function.route.match(path)) is not None
        ]
        if not matches:
            raise web.HTTPNotFound()
        allowed = [(f, p) for f, p in matches if f.methods is None or request.method in f.methods]
        if not allowed:
            methods = sorted({m for f, _ in matches for m in f.methods or ()})
            raise web.HTTPMethodNotAllowed(request.method, methods)
        function, params = allowed[0]
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params={key: request.query.getone(key) for key in request.query},
            route_params=params,
            body=await request.read(),
        )
        result = await self._invoke(function, {function.arg_name: http_request}, _HTTP_REASON)
        if not result.succeeded:
            return web.Response(status=500)
        try:
            return _http_response(result.value)
        except TypeError as error:
            logger.error("Function %s: %s", function.name, error)
            return web.Response(status=500)

    # Invocation

    async def _invoke(
        self, function: IndexedFunction, arguments: dict[str, Any], reason: str, details: str | None = None
    ) -> InvocationResult:
        invocation_id = str(uuid.uuid4())
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, reason, invocation_id)
        if details:
            logger.info(details)
        outputs = {output.arg_name: _Out() for output in function.output_queues}
        arguments = {**arguments, **outputs, **dict.fromkeys(function.unsupported_args)}
        if function.wants_context:
            arguments["context"] = _Context(invocation_id, function.name, self.app_directory)
        self._running += 1
        self._changed.set()
        started = time.perf_counter()
        records: list[dict[str, Any]] = []
        token = _INVOCATION_LOG.set(records)
        try:
            if function.is_async:
                value = await function.user_function(**arguments)
            else:
                value = await asyncio.to_thread(functools.partial(function.user_function, **arguments))
            # Output bindings are sent by the host after the function returns successfully.
            for output in function.output_queues:
                self._send_output(function, output.queue_name, outputs[output.arg_name].get())
        except Exception as error:  # noqa: BLE001 - a function's failure is reported as the Functions host does
            duration = (time.perf_counter() - started) * 1000
            logger.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", function.name, invocation_id, duration
            )
            logger.error(
                "Exception while executing function: Functions.%s. Result: Failure\nException: %s: %s\nStack: %s",
                function.name,
                type(error).__name__,
                error,
                _user_traceback(error),
            )
            return InvocationResult(function.name, invocation_id, False, duration, error=error, log=tuple(records))
        finally:
            _INVOCATION_LOG.reset(token)
            self._running -= 1
            self._changed.set()
        duration = (time.perf_counter() - started) * 1000
        logger.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", function.name, invocation_id, duration)
        return InvocationResult(function.name, invocation_id, True, duration, value=value, log=tuple(records))

    def _send_output(self, function: IndexedFunction, queue: str, value: Any) -> None:
        if value is None:
            return
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str):
                item = item.encode("utf-8")
            if not isinstance(item, (bytes, bytearray)):
                raise TypeError(
                    f"function {function.name!r} set a {type(item).__name__} on the Service Bus output "
                    f"for queue {queue!r}; set str or bytes"
                )
            self.queue(queue).send(bytes(item))

    # Console and management API

    def describe(self) -> list[dict[str, Any]]:
        """The indexed functions and their triggers, as served by GET /_localhost/functions."""
        described = []
        for function in self.functions:
            entry: dict[str, Any] = {
                "name": function.name,
                "trigger": function.trigger_type,
                "binding": function.properties,
            }
            if isinstance(function, HttpFunction):
                entry.update(
                    route=function.route.template,
                    methods=sorted(function.methods) if function.methods else None,
                    authLevel=function.auth_level,
                    url=f"{self.url}{self.route_prefix}/{function.route.template}" if self._started else None,
                )
            elif isinstance(function, QueueFunction):
                entry.update(
                    queue=function.queue_name,
                    cardinality=function.cardinality,
                    isSessionsEnabled=function.is_sessions_enabled,
                )
            elif isinstance(function, TimerFunction):
                next_run = self._timer_next.get(function.name) or function.schedule.next_after(self._clock())
                entry.update(schedule=str(function.schedule), runOnStartup=function.run_on_startup, next=_iso(next_run))
            entry["outputQueues"] = [output.queue_name for output in function.output_queues]
            described.append(entry)
        return described

    def _log_functions(self) -> None:
        lines = ["Functions:", ""]
        for entry in self.describe():
            if entry["trigger"] == "httpTrigger":
                methods = ",".join(entry["methods"] or ["ALL"])
                lines.append(f"        {entry['name']}: [{methods}] {entry['url']}")
            elif entry["trigger"] == "serviceBusTrigger":
                lines.append(f"        {entry['name']}: serviceBusTrigger (queue: {entry['queue']})")
            else:
                lines.append(
                    f"        {entry['name']}: timerTrigger (schedule: {entry['schedule']}, next: {entry['next']})"
                )
            lines.append("")
        logger.info("\n".join(lines))
        if any(isinstance(f, HttpFunction) and f.auth_level != "anonymous" for f in self.functions):
            logger.info("Function keys are not enforced by the local host (as with Core Tools)")

    @web.middleware
    async def _token_for_writes(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (
            self.token
            and request.path.startswith(MANAGEMENT_PREFIX)
            and request.method not in ("GET", "HEAD", "OPTIONS")
            and not _carries_token(request, self.token)
        ):
            return web.json_response(
                {"error": "writes need this run's token (.local/run.json: hostToken), as X-Local-Token or basic auth"},
                status=401,
            )
        return await handler(request)

    def _add_management_routes(self, server: web.Application) -> None:
        base = MANAGEMENT_PREFIX
        server.router.add_get(f"{base}/functions", self._api_functions)
        server.router.add_get(f"{base}/queues", self._api_queues)
        server.router.add_get(f"{base}/queues/{{queue}}", self._api_queue)
        server.router.add_get(f"{base}/queues/{{queue}}/deadletter", self._api_dead_letters)
        server.router.add_get(f"{base}/queues/{{queue}}/messages", self._api_messages)
        server.router.add_post(f"{base}/queues/{{queue}}/messages", self._api_publish)
        server.router.add_get(f"{base}/queues/{{queue}}/messages/{{message_id}}", self._api_message)
        server.router.add_post(f"{base}/timers/{{name}}", self._api_run_timer)
        server.router.add_get(f"{base}/console", self._console)

    async def _console(self, request: web.Request) -> web.Response:
        from .console import render

        names = self.queue_names
        page = render(
            [self._queue_summary(self._queues[n]) for n in names],
            {n: [m.to_json() for m in self._queues[n].messages()] for n in names},
            {n: [m.to_json() for m in self._queues[n].dead_letters()] for n in names},
        )
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    def _api_queue_or_404(self, request: web.Request) -> MemoryQueue:
        name = request.match_info["queue"]
        try:
            return self._existing_queue(name)
        except KeyError as error:
            raise web.HTTPNotFound(text=json.dumps({"error": error.args[0]}), content_type="application/json") from None

    async def _api_functions(self, request: web.Request) -> web.Response:
        return web.json_response(self.describe())

    async def _api_queues(self, request: web.Request) -> web.Response:
        return web.json_response([self._queue_summary(self._queues[name]) for name in self.queue_names])

    def _queue_summary(self, queue: MemoryQueue) -> dict[str, Any]:
        return {
            "name": queue.name,
            "hasTrigger": queue.has_trigger,
            "maxDeliveryCount": queue.max_delivery_count,
            "duplicateDetection": queue.duplicate_detection,
            **queue.counts(),
        }

    async def _api_queue(self, request: web.Request) -> web.Response:
        queue = self._api_queue_or_404(request)
        return web.json_response({**self._queue_summary(queue), "recent": list(queue.recent)})

    async def _api_dead_letters(self, request: web.Request) -> web.Response:
        queue = self._api_queue_or_404(request)
        return web.json_response([message.to_json() for message in queue.dead_letters()])

    async def _api_messages(self, request: web.Request) -> web.Response:
        queue = self._api_queue_or_404(request)
        return web.json_response([message.to_json() for message in queue.messages()])

    async def _api_message(self, request: web.Request) -> web.Response:
        queue = self._api_queue_or_404(request)
        message = queue.find(request.match_info["message_id"])
        if message is None:
            error = f"no message {request.match_info['message_id']!r} on queue {queue.name!r}"
            return web.json_response({"error": error}, status=404)
        return web.json_response({**message.to_json(), "hasTrigger": queue.has_trigger})

    async def _api_publish(self, request: web.Request) -> web.Response:
        name = request.match_info["queue"]
        raw_properties = request.headers.get("x-application-properties")
        try:
            properties = json.loads(raw_properties) if raw_properties else {}
            if not isinstance(properties, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            return web.json_response({"error": f"x-application-properties must be a JSON object: {error}"}, status=400)
        scheduled = request.headers.get("x-scheduled-enqueue-time")
        try:
            at = datetime.fromisoformat(scheduled) if scheduled else None
        except ValueError:
            return web.json_response(
                {"error": f"x-scheduled-enqueue-time must be an ISO 8601 time, not {scheduled!r}"}, status=400
            )
        queue = self.queue(name)
        message_id, duplicate = queue.send(
            await request.read(),
            message_id=request.headers.get("x-message-id") or None,
            content_type=request.headers.get("content-type"),
            application_properties=properties,
            session_id=request.headers.get("x-session-id") or None,
            scheduled_enqueue_time=at,
        )
        body = {"messageId": message_id, "queue": name, "hasTrigger": queue.has_trigger}
        if duplicate:
            body["duplicate"] = True
        return web.json_response(body, status=201)

    async def _api_run_timer(self, request: web.Request) -> web.Response:
        try:
            result = await self.run_timer(request.match_info["name"])
        except KeyError as error:
            return web.json_response({"error": error.args[0]}, status=404)
        return web.json_response(
            {
                "function": result.function,
                "invocationId": result.invocation_id,
                "status": "Succeeded" if result.succeeded else "Failed",
                "durationMs": round(result.duration_ms, 1),
                "error": result.error_message,
            }
        )


_HOST_FILES = (
    os.path.dirname(__file__),
    os.path.dirname(asyncio.__file__),
    os.path.dirname(concurrent.futures.__file__),
)


def _user_traceback(error: BaseException) -> str:
    """The traceback from the user's code down, without the host's own frames."""
    frame = error.__traceback__
    while frame is not None and frame.tb_frame.f_code.co_filename.startswith(_HOST_FILES):
        frame = frame.tb_next
    return "".join(traceback.format_exception(type(error), error, frame or error.__traceback__)).rstrip()


def _service_bus_message(message: QueuedMessage) -> ServiceBusMessage:
    """The trigger argument the Python worker builds for one Service Bus message."""
    return ServiceBusMessage(
        body=message.body,
        message_id=message.message_id,
        content_type=message.content_type,
        application_properties=dict(message.application_properties),
        user_properties=dict(message.application_properties),
        delivery_count=message.delivery_count,
        enqueued_time_utc=message.enqueued_time,
        enqueued_sequence_number=message.sequence_number,
        sequence_number=message.sequence_number,
        lock_token=str(uuid.uuid4()),
        locked_until=_utcnow() + LOCK_DURATION,
        dead_letter_source=None,
        session_id=message.session_id,
    )


def _http_response(value: Any) -> web.Response:
    """The aiohttp response for what an HTTP function returned."""
    if isinstance(value, func.HttpResponse):
        headers: CIMultiDict[str] = CIMultiDict()
        for key, header in value.headers.items():
            if key.lower() not in _HOP_BY_HOP:
                headers.add(key, header)
        if "content-type" not in headers:
            mimetype = value.mimetype
            textual = mimetype.startswith("text/") or mimetype in ("application/json", "application/xml")
            headers["Content-Type"] = f"{mimetype}; charset={value.charset}" if textual else mimetype
        return web.Response(status=value.status_code, body=value.get_body(), headers=headers)
    if value is None:
        return web.Response(status=204)
    if isinstance(value, (str, bytes, bytearray)):
        body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return web.Response(status=200, body=body, content_type="text/plain", charset="utf-8")
    raise TypeError(f"returned a {type(value).__name__}; return azure.functions.HttpResponse, str or bytes")

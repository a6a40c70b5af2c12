"""How the Functions host's Service Bus extension feeds a trigger on a session-enabled queue; the
local host and the benchmark both run session triggers through here, so their figures hold for
Azure.

Source: Azure/azure-sdk-for-net, sdk/servicebus/Microsoft.Azure.WebJobs.Extensions.ServiceBus/
src/Listeners/ServiceBusListener.cs (extension 5.x):

- **Batch dispatch** (``cardinality="many"``): ``RunBatchReceiveLoopAsync``, one loop per instance
  ("The batch receive loop below only executes functions at a concurrency level of 1"). It
  accepts the next session (``AcceptNextSessionAsync``), then receives up to
  ``maxMessageBatchSize`` messages waiting at most ``sessionIdleTimeout``
  (``ReceiveMessagesAsync(MaxMessageBatchSize, maxWaitTime: SessionIdleTimeout)``), runs the
  function on them, and again; only a receive that comes back empty closes the session, and the
  loop accepts the next. ``maxConcurrentSessions`` does not apply.
- **Single dispatch** (``cardinality="one"``): ``ProcessSessionMessageAsync`` under the session
  processor: up to ``maxConcurrentSessions`` sessions at once per instance, one message at a
  time in each (``MaxConcurrentCallsPerSession`` 1), a session given up when no message arrives
  within ``sessionIdleTimeout``.

Both are the same receiver: hold a session, take up to N of its messages, run, until a receive
waits ``sessionIdleTimeout`` in vain; they differ in N and in how many receivers an instance
runs (:func:`receivers`). What this does not model: lock expiry and renewal
(``maxAutoLockRenewalDuration``), prefetch, and the minimum batch size option.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

M = TypeVar("M")

#: host.json extensions.serviceBus defaults (Functions docs, "Azure Service Bus bindings",
#: host.json settings, extension 5.x).
DEFAULT_MAX_CONCURRENT_SESSIONS = 8
DEFAULT_MAX_MESSAGE_BATCH_SIZE = 1000
#: With no sessionIdleTimeout, a session receive waits the client's try timeout (60 s,
#: clientRetryOptions.tryTimeout's default).
DEFAULT_SESSION_IDLE_SECONDS = 60.0


class SessionSource(Protocol[M]):
    """A session-enabled queue as a receiver sees it."""

    async def accept(self) -> str | None:
        """Lock the next session with a ready message (waiting a while); None when there is none."""

    async def receive(self, session: str, max_count: int, wait_seconds: float) -> Sequence[M]:
        """Up to ``max_count`` of the session's messages, waiting at most ``wait_seconds`` for the first."""

    async def release(self, session: str) -> None:
        """Close the session: another receiver may accept it."""


def timespan_seconds(value: str | float | None, default: float) -> float:
    """A host.json TimeSpan ("00:00:05", "00:00:00.50", "1.00:00:00") in seconds."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", value.strip())
    if not match:
        raise ValueError(f"not a TimeSpan (d.hh:mm:ss): {value!r}")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def receivers(cardinality: str, service_bus: Mapping[str, Any]) -> tuple[int, int]:
    """How many session receivers one instance runs for a trigger, and how many messages each
    takes at a time, from host.json's ``extensions.serviceBus``."""
    if cardinality == "many":
        return 1, int(service_bus.get("maxMessageBatchSize") or DEFAULT_MAX_MESSAGE_BATCH_SIZE)
    return int(service_bus.get("maxConcurrentSessions") or DEFAULT_MAX_CONCURRENT_SESSIONS), 1


def idle_seconds(service_bus: Mapping[str, Any]) -> float:
    return timespan_seconds(service_bus.get("sessionIdleTimeout"), DEFAULT_SESSION_IDLE_SECONDS)


async def session_receiver(
    source: SessionSource[M],
    run: Callable[[str, Sequence[M]], Awaitable[None]],
    *,
    max_count: int,
    idle: float,
) -> None:
    """One receiver, forever: accept a session, run its messages ``max_count`` at a time until
    none comes within ``idle`` seconds, close it, accept the next. ``run`` settles what it got."""
    while True:
        session = await source.accept()
        if session is None:
            continue
        try:
            while messages := await source.receive(session, max_count, idle):
                await run(session, messages)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(source.release(session))


class MemorySessions:
    """The sessions of an in-memory queue (tools/localhost/queues.py) as a receiver sees them."""

    def __init__(self, queue: Any, accept_wait: float | None = None) -> None:
        self.queue = queue
        self.accept_wait = accept_wait  # None: wait until a session has a message

    async def accept(self) -> str | None:
        try:
            await asyncio.wait_for(self.queue.wait_for_session(), self.accept_wait)
        except TimeoutError:
            return None
        session: str | None = self.queue.accept_session()
        return session

    async def receive(self, session: str, max_count: int, wait_seconds: float) -> Sequence[Any]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.wait_in_session(session), wait_seconds)
        messages: Sequence[Any] = self.queue.receive_from_session(session, max_count)
        return messages

    async def release(self, session: str) -> None:
        self.queue.release_session(session)

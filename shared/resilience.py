"""One resilience policy for every outbound HTTP dependency (the Bot Connector, Microsoft Graph):
which answers are worth another try, how long a ``Retry-After`` may be waited out inside one
function run, the backoff when none is given, and the sleep, injected so that tests never wait
in real time. Pure Python: adapters and services use it alike.

Two kinds of retry:

- *now*, inside the call (Graph reads for the admin routes and buttons): a throttled or
  unavailable answer is tried again after its ``Retry-After`` (or the backoff), up to
  :attr:`RetryPolicy.max_attempts`, as long as the wait is at most
  :attr:`RetryPolicy.max_wait_seconds`;
- *later*, by the queue (card sends): a send whose status is not :func:`is_permanent` is
  rescheduled for its ``Retry-After`` (or the backoff), and nothing else goes to that
  conversation meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

Sleep = Callable[[float], Awaitable[None]]

# Teams asks bots to retry 412, 429, 502, 503 and 504 (Teams docs, "Rate limiting for bots");
# Graph's throttling guidance names 429, 503 and 504 ("Microsoft Graph throttling guidance").
# 401 is a token that expired in flight (a new one is fetched on the next try), 408 a timeout,
# 500 a failure on the service's side: none of them says the request itself is wrong.
RETRY_LATER_STATUSES = frozenset({401, 408, 412, 429, 500, 502, 503, 504})
# Tried again inside the call: throttling and gateway answers.
RETRY_NOW_STATUSES = frozenset({429, 502, 503, 504})


T = TypeVar("T")


def is_permanent(status: int | None) -> bool:
    """A 4xx that no retry can change (400 bad request, 403 forbidden, 404 gone, 413 too large…).
    No status (the service could not be reached) and 5xx are never permanent."""
    return status is not None and 400 <= status < 500 and status not in RETRY_LATER_STATUSES


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110
    10.2.3); None when absent or unreadable. Never negative."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def exponential(attempt: int, *, first: float, cap: float) -> float:
    """The backoff before try ``attempt + 1`` when the service named no wait: ``first`` after
    the first failure, doubling, never more than ``cap``."""
    return min(first * 2.0 ** max(attempt - 1, 0), cap)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry *now*: how many tries, which statuses, the backoff and the longest wait."""

    max_attempts: int = 4
    backoff_seconds: float = 1.0
    # A longer Retry-After is not waited out inside one function run: the error is raised and
    # the caller (a job, a person pressing a button) tries again later.
    max_wait_seconds: float = 30.0
    statuses: frozenset[int] = RETRY_NOW_STATUSES

    def wait_before_retry(self, attempt: int, status: int | None, retry_after: float | None) -> float | None:
        """Seconds to wait before trying again after failed try ``attempt`` (1-based), or None
        to give up now. ``status`` None: the service could not be reached."""
        if attempt >= self.max_attempts or (status is not None and status not in self.statuses):
            return None
        wait = (
            retry_after
            if retry_after is not None
            else exponential(attempt, first=self.backoff_seconds, cap=self.max_wait_seconds)
        )
        return wait if wait <= self.max_wait_seconds else None


async def tried_again(
    call: Callable[[int], Awaitable[T]],
    *,
    retry_on: type[BaseException],
    retries: int,
    sleep: Sleep,
    first: float = 0.2,
    cap: float = 1.0,
) -> T:
    """``call(0)``, and while it raises ``retry_on``, ``call(1)`` … ``call(retries)`` after
    :func:`exponential` waits: a failure "for now" met again within the run. The last try's
    error is raised."""
    for attempt in range(retries):
        try:
            return await call(attempt)
        except retry_on:
            await sleep(exponential(attempt + 1, first=first, cap=cap))
    return await call(retries)


# Microsoft Graph calls made while someone waits (admin routes, buttons, consent checks).
GRAPH = RetryPolicy()
# A send made for a queued delivery job: tried once. A throttle's Retry-After or a failure is
# not waited out inside the call (holding the conversation's session and the invocation): it is
# raised, and the job is rescheduled for then as a scheduled message.
QUEUED_SEND = RetryPolicy(max_attempts=1)

_queued_send: ContextVar[bool] = ContextVar("queued_send", default=False)


@contextlib.contextmanager
def queued_send() -> Iterator[None]:
    """Within this block, calls that would retry by :data:`GRAPH` use :data:`QUEUED_SEND`."""
    token = _queued_send.set(True)
    try:
        yield
    finally:
        _queued_send.reset(token)


def policy_now(default: RetryPolicy) -> RetryPolicy:
    return QUEUED_SEND if _queued_send.get() else default


async def real_sleep(seconds: float) -> None:
    """The sleep used outside tests."""
    await asyncio.sleep(seconds)

"""Teams' documented bot rate limits, enforced on sliding windows of exact send times.

A benchmark switches them on (``TeamsSimulator.enforce_limits()``) to prove the app never
exceeds them: a send beyond a limit gets 429 with Retry-After, as Teams answers, and every
accepted send is logged so the busiest windows can be computed afterwards
(:meth:`RateLimits.max_in_window`).

A send at time ``t`` is inside a window of ``s`` seconds at time ``now`` while
``now - s < t <= now``: it leaves the window at ``t + s``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

Windows = tuple[tuple[float, int], ...]  # (window seconds, most sends allowed in it)

# Per bot per conversation (Teams docs, "Optimize your bot: rate limiting and best practices",
# bots/how-to/rate-limit, "Per bot per thread limit"): 7 messages / 1 s, 8 / 2 s, 60 / 30 s,
# 1,800 / 3,600 s. Sending, replying to and updating activities all count, and so does
# creating a conversation.
CONVERSATION_WINDOWS: Windows = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
# Per bot per tenant (same page: "the global limit per app per tenant is 50 requests per
# second"): 50 / 1 s.
TENANT_WINDOWS: Windows = ((1.0, 50),)
# Teams' Retry-After is whole seconds, never below one.
MIN_RETRY_AFTER = 1.0


class _Budget:
    """The recent send times of one key (a conversation or a tenant), one deque per window.

    Each deque holds the sends still inside its window, oldest first, so its length is the
    window's count; the longest holds at most its limit (1,800 for the hour).
    """

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.times = [deque() for _ in windows]

    def prune(self, now: float) -> None:
        for (seconds, _), times in zip(self.windows, self.times, strict=True):
            while times and times[0] <= now - seconds:
                times.popleft()

    def wait(self, now: float) -> float | None:
        """Seconds until one more send fits every window (None: it fits now). Call prune first."""
        waits = [
            times[len(times) - limit] + seconds - now  # when the oldest of the full window leaves
            for (seconds, limit), times in zip(self.windows, self.times, strict=True)
            if len(times) >= limit
        ]
        return max(waits) if waits else None

    def record(self, now: float) -> None:
        for times in self.times:
            times.append(now)

    @property
    def empty(self) -> bool:
        return not any(self.times)


class RateLimits:
    """Teams' per-conversation and per-tenant bot send limits. Thread-safe.

    ``clock`` (default :func:`time.monotonic`) gives the time in seconds; it must not go
    backwards. Tests inject a fake one to move through windows without sleeping.
    """

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        *,
        conversation_windows: Windows = CONVERSATION_WINDOWS,
        tenant_windows: Windows = TENANT_WINDOWS,
    ) -> None:
        self.clock = clock or time.monotonic
        self.conversation_windows = conversation_windows
        self.tenant_windows = tenant_windows
        self._lock = threading.Lock()
        self._conversations: dict[tuple[str, str], _Budget] = {}  # (app, conversation)
        self._tenants: dict[tuple[str, str], _Budget] = {}  # (app, tenant)
        self._sends: list[tuple[float, str, str]] = []
        self._refusals: dict[str, int] = {}

    def check_and_record(self, app_id: str | None, tenant_id: str | None, conversation_id: str) -> float | None:
        """Record a send and return None when it fits every window; otherwise record nothing
        (except the refusal) and return the Retry-After seconds: the time until the oldest
        send of the full window leaves it, rounded up to whole seconds, at least one.
        """
        app, tenant = app_id or "", tenant_id or ""
        with self._lock:
            now = self.clock()
            conversation = self._conversations.get((app, conversation_id))
            if conversation is None:
                conversation = _Budget(self.conversation_windows)
            tenant_budget = self._tenants.get((app, tenant))
            if tenant_budget is None:
                tenant_budget = _Budget(self.tenant_windows)
            conversation.prune(now)
            tenant_budget.prune(now)
            waits = [w for w in (conversation.wait(now), tenant_budget.wait(now)) if w is not None]
            if waits:
                self._refusals[conversation_id] = self._refusals.get(conversation_id, 0) + 1
                # Ignore float noise below a microsecond (12.0000000001 s is 12 s, not 13).
                return max(MIN_RETRY_AFTER, float(math.ceil(max(waits) - 1e-6)))
            conversation.record(now)
            tenant_budget.record(now)
            self._conversations[(app, conversation_id)] = conversation
            self._tenants[(app, tenant)] = tenant_budget
            self._sends.append((now, tenant, conversation_id))
            return None

    # -- what was sent --------------------------------------------------------------------

    @property
    def sends(self) -> list[tuple[float, str, str]]:
        """Every accepted send as (time, tenant id, conversation id), in order (a copy)."""
        with self._lock:
            return list(self._sends)

    @property
    def refusals(self) -> dict[str, int]:
        """Refused sends per conversation id (a copy)."""
        with self._lock:
            return dict(self._refusals)

    @property
    def refused(self) -> int:
        """How many sends were refused with 429."""
        with self._lock:
            return sum(self._refusals.values())

    def max_in_window(self, seconds: float, conversation_id: str | None = None, tenant_id: str | None = None) -> int:
        """The most accepted sends in any sliding window of ``seconds`` (optionally only those
        to one conversation and/or one tenant), computed from the send log."""
        with self._lock:
            times = sorted(
                t
                for t, tenant, conversation in self._sends
                if (conversation_id is None or conversation == conversation_id)
                and (tenant_id is None or tenant == tenant_id)
            )
        most = 0
        first = 0
        for last, t in enumerate(times):
            while times[first] <= t - seconds:  # sends that left the window ending at t
                first += 1
            most = max(most, last - first + 1)
        return most

    def reset(self) -> None:
        """Forget every send and refusal."""
        with self._lock:
            self._conversations.clear()
            self._tenants.clear()
            self._sends.clear()
            self._refusals.clear()

"""A conversation's recent sends, and when the next send fits Teams' limits. Pure Python.

The deliveries queue gives each conversation one consumer at a time (its session), so the
window is read once per batch of jobs, decided on in memory and written back once: it holds
across instances because only the session's holder writes it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

# Per bot per conversation (Teams docs, bots/how-to/rate-limit): 7 / 1 s, 8 / 2 s, 60 / 30 s,
# 1,800 / 3,600 s.
BOT_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
# Graph as a delegated user (Graph throttling limits, Teams): at most 4 requests per second
# per app on one channel, 3,000 messages per app per day in one channel.
GRAPH_CHANNEL_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 4), (30.0, 60), (3600.0, 1800), (86400.0, 3000))
# Sends kept back from new cards for the storm summary's own updates, per window.
SUMMARY_RESERVE: dict[float, int] = {1.0: 1, 2.0: 1, 30.0: 10, 3600.0: 100, 86400.0: 100}
MAX_EXACT_SPAN = 30.0  # windows up to this long are checked on exact send times


def limits_for(delegated: bool) -> tuple[tuple[float, int], ...]:
    return GRAPH_CHANNEL_LIMITS if delegated else BOT_LIMITS


@dataclass
class Window:
    """Send times of the last 30 s, sends per minute for the last hour, per day; and a
    ``Retry-After`` that stops every send until it passes."""

    recent: list[float] = field(default_factory=list)  # epoch seconds, ascending
    minutes: dict[int, int] = field(default_factory=dict)  # minute number -> sends
    days: dict[int, int] = field(default_factory=dict)  # day number -> sends
    blocked_until: float = 0.0
    # Sends promised to jobs that were put off to a later slot: they count like sends, so a
    # burst is spread over the window (and its excess folded) instead of all being put off to
    # the same moment.
    promised: list[float] = field(default_factory=list)

    def _times(self) -> list[float]:
        return sorted(self.recent + self.promised) if self.promised else self.recent

    def _count(self, span: float, at: float) -> int:
        if span <= MAX_EXACT_SPAN:
            return sum(1 for t in self._times() if at - span < t <= at)
        # The hour counts whole minutes from the one it starts in: that minute's sends before the
        # hour began count too (a little early, never late: Teams' hour is exact).
        if span <= 3600.0:
            first = math.floor((at - span) / 60.0)
            return sum(n for minute, n in self.minutes.items() if minute >= first)
        return sum(n for day, n in self.days.items() if day >= math.floor((at - span) / 86400.0) + 1)

    def _free_at(self, span: float, limit: int, at: float) -> float:
        """The earliest time from ``at`` when one more send fits this window."""
        if self._count(span, at) < limit:
            return at
        if span <= MAX_EXACT_SPAN:
            inside = sorted(t for t in self._times() if at - span < t <= at)
            return inside[len(inside) - limit] + span  # when enough old sends leave the window
        unit = 60.0 if span <= 3600.0 else 86400.0
        return (math.floor(at / unit) + 1) * unit  # the next bucket boundary (a conservative step)

    def next_send(
        self, now: float, limits: tuple[tuple[float, int], ...], reserve: bool = False, ignore_block: bool = False
    ) -> float:
        """When the next send may go: ``now`` if it fits every window now. ``reserve`` keeps
        back :data:`SUMMARY_RESERVE` (new individual cards leave room for the summary);
        ``ignore_block`` leaves out a Retry-After (the budget alone)."""
        at = now if ignore_block else max(now, self.blocked_until)
        for _ in range(12):  # each step only moves forward; a few reach the fixed point
            later = at
            for span, limit in limits:
                allowed = max(limit - (SUMMARY_RESERVE.get(span, 0) if reserve else 0), 1)
                later = max(later, self._free_at(span, allowed, later))
            if later == at:
                return at
            at = later
        return at

    def record(self, at: float) -> None:
        self.recent.append(at)
        self.recent = [t for t in self.recent if t > at - MAX_EXACT_SPAN][-64:]
        minute, day = math.floor(at / 60.0), math.floor(at / 86400.0)
        self.minutes[minute] = self.minutes.get(minute, 0) + 1
        self.minutes = {m: n for m, n in self.minutes.items() if m > minute - 61}
        self.days[day] = self.days.get(day, 0) + 1
        self.days = {d: n for d, n in self.days.items() if d > day - 2}

    def landed(self, started: float, answered: float) -> None:
        """The send recorded as begun at ``started`` was answered at ``answered``. Teams counts
        a send when it arrives, somewhere in between (later than it began when the connection
        was slow to open or the instance busy): from now on it counts from ``answered``, so the
        window never holds fewer of the sends Teams counts than Teams does."""
        for i in range(len(self.recent) - 1, -1, -1):
            if self.recent[i] == started:
                self.recent[i] = max(started, answered)
                self.recent.sort()
                return

    def promise(self, at: float) -> None:
        """Hold the slot at ``at`` for a job put off until then."""
        self.promised.append(at)

    def redeem(self, now: float) -> None:
        """A put-off job runs: give back its promise (the earliest due), and forget promises
        long past (their jobs went elsewhere: folded, or gone)."""
        self.promised = sorted(t for t in self.promised if t > now - MAX_EXACT_SPAN)
        due = [t for t in self.promised if t <= now + 1.0]
        if due:
            self.promised.remove(due[0])

    def block(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)

    def to_json(self) -> str:
        return json.dumps(
            {
                "r": [round(t, 3) for t in self.recent],
                "m": self.minutes,
                "d": self.days,
                "b": self.blocked_until,
                "p": [round(t, 3) for t in self.promised],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> Window:
        if not text:
            return cls()
        data: dict[str, Any] = json.loads(text)
        return cls(
            recent=[float(t) for t in data.get("r", [])],
            minutes={int(k): int(v) for k, v in (data.get("m") or {}).items()},
            days={int(k): int(v) for k, v in (data.get("d") or {}).items()},
            blocked_until=float(data.get("b", 0.0)),
            promised=[float(t) for t in data.get("p", [])],
        )

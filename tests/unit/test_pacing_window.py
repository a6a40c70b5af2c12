"""A conversation's send window (shared/domain/pacing.py) against Teams' per-conversation limits."""

from __future__ import annotations

from shared.domain import pacing

# A minute boundary plus 30 s: the hour before it starts half-way through a minute.
AT = 1_800_000_000.0 + 30.0


def test_the_hour_counts_the_sends_of_its_first_partial_minute():
    """1,800 sends in the true hour before AT, 60 of them 10 s after it began, in the minute
    that hour starts part-way through: the hour is full, the next send waits."""
    window = pacing.Window()
    start = AT - 3600.0
    sent = [start + 10.0 + i * 0.1 for i in range(60)] + [start + 60.0 + i * 1.9 for i in range(1740)]
    for t in sent:
        window.record(t)
    hour_limit = dict(pacing.BOT_LIMITS)[3600.0]
    assert sum(1 for t in sent if AT - 3600.0 < t <= AT) == hour_limit
    assert window.next_send(AT, ((3600.0, hour_limit),)) > AT


def test_a_send_an_hour_old_no_longer_counts_once_its_minute_is_past():
    window = pacing.Window()
    window.record(AT - 3700.0)
    assert window._count(3600.0, AT) == 0

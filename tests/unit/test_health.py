"""The deep health check's runner: each check's answer, its failure named, a hung check cut off."""

from __future__ import annotations

import asyncio

from shared.adapters.queue_probe import QueueDepth
from shared.services import health


class Probe:
    queue = "alert-events"

    def __init__(self, depth: QueueDepth) -> None:
        self._depth = depth

    async def depth(self) -> QueueDepth:
        return self._depth


async def test_each_check_says_what_it_saw_or_what_is_wrong():
    async def fine() -> str:
        return "read"

    async def broken() -> str:
        raise ConnectionError("connection refused by acct.table.core.windows.net\nsecond line")

    async def hung() -> str:
        await asyncio.Event().wait()
        return "never"

    results = {
        r.name: r
        for r in await health.run_checks(
            {"fine": fine, "broken": broken, "hung": hung, "queue": health.queue_check(Probe(QueueDepth(2, 3)))},
            seconds=0.05,
        )
    }
    assert results["fine"].ok and results["fine"].detail == "read"
    assert (
        not results["broken"].ok
        and results["broken"].detail == "ConnectionError: connection refused by acct.table.core.windows.net"
    )
    assert not results["hung"].ok and results["hung"].detail == "no answer within 0 s"
    assert not results["queue"].ok and results["queue"].detail.startswith("2 waiting, 0 scheduled, 3 dead-lettered")


async def test_an_empty_dead_letter_queue_is_well():
    [result] = await health.run_checks({"queue": health.queue_check(Probe(QueueDepth(5, 0, 1)))})
    assert result.ok and result.detail == "5 waiting, 1 scheduled, 0 dead-lettered"

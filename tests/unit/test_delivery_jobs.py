"""The deliveries queue's consumer with the in-memory store, a recording messenger and a test
clock: pacing under Teams' limits, the storm summary, Retry-After, the tenant budget leased
across instances, and out-of-order updates that never leave an older card."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.state_store import memory_store
from shared.domain import pacing
from shared.domain.jobs import CARD, DeliveryJob, job_from_json
from shared.domain.model import AlertState
from shared.ports import DeliveryError, TransientError
from shared.services import delivery
from shared.services.delivery import TenantBudget
from tests.support.fakes import Clock, RecordingMessenger, conversation, delivering, process_and_deliver

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
CHANNEL = "19:storm@thread.tacv2"


def alert(n: int, severity: str = "high", status: str = "open", revision: int = 1) -> AlertState:
    return AlertState(
        tenant_id=TENANT,
        key=f"k{n:05d}",
        alert_id=f"A-{n}",
        source="prom",
        event_source="https://am",
        title=f"Alert {n}",
        status=status,
        severity=severity,
        revision=revision,
        created=T0 + timedelta(milliseconds=n),
        updated=T0,
    )


def full_hour(now: float) -> pacing.Window:
    """A conversation's window whose last hour holds 1,800 sends (Teams' limit), none in the
    last 30 s: every new alert is folded, the summary itself still fits once a few age out."""
    window = pacing.Window()
    for i in range(1800):
        window.record(now - 3500.0 + i * 1.9)
    return window


def sends(messenger: RecordingMessenger) -> int:
    return sum(1 for kind, _ in messenger.calls if kind in ("post", "update", "reply"))


@pytest.fixture
def world():
    store, messenger, clock = memory_store(), RecordingMessenger(), Clock()
    ctx = delivering(store, messenger, clock=clock)
    record = conversation(TENANT, CHANNEL)
    return store, messenger, clock, ctx, record


class TestPacing:
    def test_the_window_says_when_the_next_send_fits(self):
        window = pacing.Window()
        for i in range(7):
            window.record(100.0 + i * 0.1)
        assert window.next_send(100.65, pacing.BOT_LIMITS) == pytest.approx(
            101.0
        )  # the 8th waits for the first to leave the second
        for i in range(53):
            window.record(102.0 + i * 0.5)
        assert window.next_send(128.5, pacing.BOT_LIMITS) >= 130.0  # 60 in 30 s: wait for the oldest

    def test_the_reserve_keeps_room_for_the_summary(self):
        window = pacing.Window()
        for i in range(50):
            window.record(100.0 + i * 0.3)
        assert window.next_send(115.0, pacing.BOT_LIMITS) == 115.0
        assert window.next_send(115.0, pacing.BOT_LIMITS, reserve=True) > 115.0

    def test_a_retry_after_blocks_every_send(self):
        window = pacing.Window()
        window.block(200.0)
        assert window.next_send(100.0, pacing.BOT_LIMITS) == 200.0
        assert window.next_send(100.0, pacing.BOT_LIMITS, ignore_block=True) == 100.0

    def test_slots_promised_to_put_off_jobs_count_so_a_burst_beyond_the_window_waits_longer(self):
        window = pacing.Window()
        for i in range(6):
            window.record(100.0 + i * 0.01)
        for _ in range(44):  # 44 new cards put off: each holds the next free slot
            window.promise(window.next_send(100.1, pacing.BOT_LIMITS, reserve=True))
        assert window.next_send(100.1, pacing.BOT_LIMITS, reserve=True) >= 130.0  # the 30 s window is spoken for
        window.redeem(window.promised[0])
        assert len(window.promised) == 43

    def test_the_window_survives_a_round_trip(self):
        window = pacing.Window()
        for t in (1.0, 2.0, 3.5):
            window.record(t)
        window.block(9.0)
        again = pacing.Window.from_json(window.to_json())
        assert again.next_send(3.6, pacing.BOT_LIMITS) == window.next_send(3.6, pacing.BOT_LIMITS) == 9.0


def windows(messenger_times: list[float]) -> dict[float, int]:
    times = sorted(messenger_times)
    out = {}
    for span in (1.0, 30.0, 3600.0):
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= span:
                start += 1
            best = max(best, end - start + 1)
        out[span] = best
    return out


class TimedMessenger(RecordingMessenger):
    """Records the test clock's time of every send."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []

    async def post(self, conversation, card, summary):
        self.times.append(self.clock().timestamp())
        return await super().post(conversation, card, summary)

    async def update(self, conversation, activity_id, card, summary):
        self.times.append(self.clock().timestamp())
        await super().update(conversation, activity_id, card, summary)


class ArrivesAtTheEnd(RecordingMessenger):
    """Each send reaches Teams as its call ends (the test clock's time then), the first one
    slowly: a connection to open, a token to fetch."""

    def __init__(self, clock: Clock, first: float = 0.6, then: float = 0.01) -> None:
        super().__init__()
        self.clock, self.first, self.then = clock, first, then
        self.arrivals: list[float] = []

    def _arrive(self) -> None:
        self.clock.now += timedelta(seconds=self.then if self.arrivals else self.first)
        self.arrivals.append(self.clock().timestamp())

    async def post(self, conversation, card, summary):
        self._arrive()
        return await super().post(conversation, card, summary)

    async def update(self, conversation, activity_id, card, summary):
        self._arrive()
        await super().update(conversation, activity_id, card, summary)


def busiest(times: list[float], span: float) -> int:
    return max(sum(1 for t in times if end - span < t <= end) for end in times)


class TestASlowSend:
    async def test_counts_from_when_it_arrived_so_teams_never_sees_more_than_its_limits(self):
        """Teams counts a send when it arrives: one that began long before it arrived, counted
        from when it began, would let the ninth send of two seconds through (a 429)."""
        store, clock = memory_store(), Clock()
        messenger = ArrivesAtTheEnd(clock)
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        jobs = [DeliveryJob(record, CARD, alert(n), new=True, request=f"e{n}") for n in range(30)]
        for job in jobs:
            await store.save_alert(job.alert)
        await ctx.jobs.send(jobs)
        await ctx.jobs.drain(ctx)
        assert len(messenger.arrivals) >= 9  # enough sends to fill two seconds
        for span, limit in pacing.BOT_LIMITS[:2]:
            assert busiest(messenger.arrivals, span) <= limit, (span, messenger.arrivals)


class TestTheWindowIsSaved:
    """A card's record carries its conversation's window (one transaction); a batch whose last
    send was not a card's (a reminder) saves the window at its end. Either write failing for now
    is tried again: else the batch is delivered again and reads a window without its sends."""

    @staticmethod
    async def _run(store, clock, failing: str, fail) -> tuple:
        """A card posted, then a reminder in its thread; ``fail`` wraps the store's ``failing``
        method from the reminder's batch on (the card's batch, for the record)."""
        from shared.domain.jobs import REMINDER

        messenger = RecordingMessenger()
        ctx = delivering(store, messenger, clock=clock)
        await store.save_alert(alert(1))
        real = getattr(store, failing)
        if failing == "save_delivery_paced":
            setattr(store, failing, fail(real))
        await ctx.jobs.send([DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(1), new=True, request="e1")])
        first = await ctx.jobs.drain(ctx)
        clock.now += timedelta(seconds=5)
        if failing == "save_pacing":
            setattr(store, failing, fail(real))
        reminder = DeliveryJob(
            conversation(TENANT, CHANNEL), REMINDER, None, text="Reminder", extra={"alertKey": "k00001"}, request="r1"
        )
        await ctx.jobs.send([reminder])
        second = await ctx.jobs.drain(ctx)
        window, _summary, _etag = await store.get_pacing(TENANT, CHANNEL)
        return first, second, pacing.Window.from_json(window), messenger

    @pytest.mark.parametrize("lands", [False, True], ids=["fails", "lands-then-fails"])
    @pytest.mark.parametrize("failing, call", [("save_delivery_paced", 2), ("save_pacing", 1)])
    async def test_a_window_save_that_failed_for_now_is_saved_by_a_second_try_with_its_sends(
        self, failing, call, lands
    ):
        """The write fails for now (``lands``: it landed, and its answer was lost, so the second
        try finds the row changed and takes it as saved): nothing is rescheduled or sent twice."""
        store, clock = memory_store(), Clock()
        calls = {"n": 0}

        def fail(real):
            async def flaky(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == call and not lands:
                    raise TransientError("Table Storage is unreachable")
                result = await real(*args, **kwargs)
                if calls["n"] == call:
                    raise TransientError("the connection dropped before the answer")
                return result

            return flaky

        first, second, window, messenger = await self._run(store, clock, failing, fail)
        assert first.posted == [CHANNEL] and second.sends == 1 and calls["n"] >= call
        assert first.rescheduled == second.rescheduled == 0
        assert len(window.recent) == 2  # the card's send and the reminder's
        assert len(messenger.cards_in(CHANNEL)) == 1
        assert any(m.text == "Reminder" for m in messenger.messages.values())


class TestABatchDeliveredAgain:
    async def test_its_jobs_look_up_their_alerts_together_not_one_after_another(self):
        """A storm's batch delivered again: a hundred jobs that are not new each read their
        delivery and summary member; one by one, the conversation's session waits for all."""
        import asyncio

        store, clock = memory_store(), Clock()
        ctx = delivering(store, RecordingMessenger(), clock=clock)
        jobs = [
            DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(n), new=True, request=f"e{n}") for n in range(30)
        ]
        await ctx.jobs.send(jobs)
        first = await ctx.jobs.drain(ctx)
        reading = {"now": 0, "most": 0}
        real = store.get_delivery

        async def get_delivery(*args):
            reading["now"] += 1
            reading["most"] = max(reading["most"], reading["now"])
            await asyncio.sleep(0)  # a read that takes a round trip: others may start meanwhile
            try:
                return await real(*args)
            finally:
                reading["now"] -= 1

        store.get_delivery = get_delivery
        await ctx.jobs.send([replace(job, new=False, request=f"again-{job.request}") for job in jobs])
        again = await ctx.jobs.drain(ctx)
        assert reading["most"] > 1
        assert again.posted == [] and again.folded == []  # each found what the first run did
        assert len(first.posted) + len(first.folded) == 30


class TestStorm:
    async def _storm(self, count: int):
        store, clock = memory_store(), Clock()
        messenger = TimedMessenger(clock)
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        jobs = [
            DeliveryJob(record, CARD, alert(n, severity=("critical", "high", "low")[n % 3]), new=True, request=f"e{n}")
            for n in range(count)
        ]
        await ctx.jobs.send(jobs)
        report = await ctx.jobs.drain(ctx)
        return store, messenger, clock, ctx, report

    async def test_a_storm_becomes_cards_within_the_budget_and_one_summary_for_the_rest(self):
        _store, messenger, _clock, _ctx, report = await self._storm(500)
        individual = [m for m in messenger.messages.values() if "Alert storm" not in json.dumps(m.card)]
        [summary] = [m for m in messenger.messages.values() if "Alert storm" in json.dumps(m.card)]
        assert len(individual) + len(report.folded) == 500  # no alert lost: its own card or counted
        assert len(individual) <= 60 - pacing.SUMMARY_RESERVE[30.0]
        assert "500 alerts" not in json.dumps(
            summary.card
        ) and f"{len(report.folded)} alerts in this summary" in json.dumps(summary.card)
        assert windows(messenger.times)[1.0] <= 7 and windows(messenger.times)[30.0] <= 60
        assert "CRITICAL" in json.dumps(summary.card) and "more." in json.dumps(summary.card)

    async def test_a_resolved_alert_leaves_the_summary(self):
        _store, messenger, clock, ctx, report = await self._storm(200)
        folded_key = report.folded[0]
        state = alert(int(folded_key[1:]), status="resolved", revision=2)
        clock.now += timedelta(minutes=5)
        await ctx.jobs.send([DeliveryJob(conversation(TENANT, CHANNEL), CARD, state, request="resolve")])
        await ctx.jobs.drain(ctx)
        [summary] = [m for m in messenger.messages.values() if "Alert storm" in json.dumps(m.card)]
        assert f"{len(report.folded) - 1} alerts in this summary" in json.dumps(summary.card)
        assert "Resolved since" in json.dumps(summary.card)

    async def test_a_card_put_off_and_back_long_after_its_slot_in_a_storm_is_counted_in_the_summary(self):
        _store, messenger, clock, ctx, report = await self._storm(200)
        assert report.folded  # the storm's summary is up
        late = DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(9000), new=True, request="late")
        late = late.again(clock.now - timedelta(seconds=delivery.FOLD_AFTER_SECONDS + 1))
        await ctx.jobs.send([late])
        after = await ctx.jobs.drain(ctx)
        assert after.folded == [alert(9000).key] and after.posted == []
        [summary] = [m for m in messenger.messages.values() if "Alert storm" in json.dumps(m.card)]
        assert f"{len(report.folded) + 1} alerts in this summary" in json.dumps(summary.card)
        # On time, or outside a storm, it keeps its own card.
        clock.now += timedelta(hours=1)
        late = DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(9001), new=True, request="late2")
        await ctx.jobs.send([late.again(clock.now - timedelta(seconds=delivery.FOLD_AFTER_SECONDS + 1))])
        assert (await ctx.jobs.drain(ctx)).posted == [CHANNEL]

    async def test_while_the_storm_goes_on_a_new_alert_is_folded_though_the_window_has_room(self):
        store, _messenger, clock, ctx, _report = await self._storm(200)
        clock.now += timedelta(minutes=2)  # the window has room again
        window, summary, etag = await store.get_pacing(TENANT, CHANNEL)
        for ago, outcome in ((5, "folded"), (60, "posted")):
            summary = {**summary, "last": (clock.now - timedelta(seconds=ago)).isoformat()}  # its latest fold
            etag = await store.save_pacing(TENANT, CHANNEL, window or "", summary, etag)
            job = DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(9100 + ago), new=True, request=f"n{ago}")
            await ctx.jobs.send([job])
            after = await ctx.jobs.drain(ctx)
            assert (after.folded, after.posted) == (
                ([alert(9100 + ago).key], []) if outcome == "folded" else ([], [CHANNEL])
            )
            window, summary, etag = await store.get_pacing(TENANT, CHANNEL)

    async def test_individual_cards_resume_when_the_storm_passes(self):
        _store, _messenger, clock, ctx, _report = await self._storm(100)
        clock.now += timedelta(hours=1)
        await ctx.jobs.send([DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(9999), new=True, request="after")])
        after = await ctx.jobs.drain(ctx)
        assert after.posted == [CHANNEL] and after.folded == []

    async def test_every_alert_of_a_storm_is_listed_by_the_alerts_command(self):
        from shared.services.bot import handle_command

        store, messenger, clock, ctx = memory_store(), RecordingMessenger(), Clock(), None
        ctx = delivering(store, messenger, clock=clock)
        await store.save_conversation(conversation(TENANT, CHANNEL))
        for n in range(80):
            body = json.dumps(
                {
                    "specversion": "1.0",
                    "id": f"e{n}",
                    "source": "https://am",
                    "type": "alert.created",
                    "tenantid": TENANT,
                    "data": {"id": f"A-{n}", "title": f"Alert {n}", "severity": "high", "version": 1},
                }
            )
            await process_and_deliver(body, f"m{n}", ctx)
        activity = {"conversation": {"tenantId": TENANT, "id": CHANNEL}, "from": {}}
        reply = await handle_command("alerts", activity, conversation(TENANT, CHANNEL), store, None)
        assert "Open alerts shown here (80)" in json.dumps(reply.cards[0])  # cards and summary alike


class TestRetryAfter:
    async def test_a_429_blocks_the_conversation_and_the_job_runs_when_teams_said(self, world):
        _store, messenger, clock, ctx, record = world
        messenger.fail_next = [DeliveryError("Teams answered 429", status=429, retry_after=20.0)]
        await ctx.jobs.send(
            [DeliveryJob(record, CARD, alert(1), new=True), DeliveryJob(record, CARD, alert(2), new=True)]
        )
        report = await ctx.jobs.drain(ctx)
        assert len(messenger.cards_in(CHANNEL)) == 2 and report.folded == []  # waiting is not a storm
        assert clock.now >= T0 + timedelta(seconds=20)
        assert [c for c, _ in messenger.calls] == ["post", "post", "post"]  # the refused one, then both after the wait

    async def test_a_job_is_never_dead_lettered_because_teams_was_busy(self, world):
        _store, messenger, _clock, ctx, record = world
        messenger.fail_next = [DeliveryError("Teams answered 503", status=503) for _ in range(8)]
        await ctx.jobs.send([DeliveryJob(record, CARD, alert(1), new=True)])
        await ctx.jobs.drain(ctx)
        assert len(messenger.cards_in(CHANNEL)) == 1


class TestOrdering:
    @pytest.mark.parametrize("seed", range(5))
    async def test_out_of_order_and_concurrent_updates_end_on_the_newest_card(self, seed):
        """Jobs for revisions 1..6 of 40 alerts, shuffled, some of them twice, with injected
        failures: every card ends showing its alert's last revision."""
        rng = random.Random(seed)
        store, messenger, clock = memory_store(), RecordingMessenger(), Clock()
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        statuses = ["open", "acknowledged", "open", "acknowledged", "resolved", "resolved"]
        jobs = [
            DeliveryJob(record, CARD, alert(n, status=statuses[r - 1], revision=r), request=f"r{r}")
            for n in range(40)
            for r in range(1, 7)
        ]
        rng.shuffle(jobs)
        jobs += rng.sample(jobs, 30)
        messenger.fail_next = [
            DeliveryError("Teams answered 502", status=502)
            if rng.random() < 0.5
            else DeliveryError("Teams answered 429", status=429, retry_after=2.0)
            for _ in range(15)
        ]
        for start in range(0, len(jobs), 25):  # batches as sessions hand them out
            await ctx.jobs.send(jobs[start : start + 25])
        clock.now += timedelta(hours=2)  # no storm: the budget is fresh for every card
        await ctx.jobs.drain(ctx)
        for n in range(40):
            delivery = await store.get_delivery(TENANT, f"k{n:05d}", CHANNEL)
            member = await store.get_summary_member(TENANT, CHANNEL, f"k{n:05d}")
            assert (delivery is None or not delivery.activity_id) or member is None  # a card or counted, never both
            if member is not None:  # updates used the budget: this one was counted in the summary
                assert (member["revision"], member["status"]) == (6, "resolved")
                continue
            assert delivery.rendered_version == 6
            [card] = [m for m in messenger.messages.values() if m.activity_id == delivery.activity_id]
            assert "Resolved" in json.dumps(card.card)


class TestTenantBudget:
    async def test_two_instances_never_send_more_than_the_budget_together(self):
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        b = TenantBudget(store, 45, "instance-b", clock=clock)
        sent: list[float] = []
        for step in range(200):  # 10 s in 50 ms steps, both instances as busy as they can be
            clock.now = T0 + timedelta(milliseconds=50 * step)
            for budget in (a, b):
                while (wait := await budget.reserve(TENANT, 0.05)) is not None:
                    sent.append(clock.now.timestamp() + wait)
        assert windows(sent)[1.0] <= 50  # Teams allows 50; the budget of 45 leaves room for handovers between instances
        assert len(sent) >= 40 * 9  # and the budget is used, not starved

    async def test_an_instance_holding_no_slot_sends_nothing_at_the_wait_delivery_allows(self):
        """Delivery reserves with MAX_WAIT_SECONDS (1 s). With every slot leased by another
        instance there is nothing to wait for: no send, the job tries again later."""
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        b = TenantBudget(store, 45, "instance-b", clock=clock)
        for _ in range(200):  # a is sending flat out: it leases every slot
            await a.reserve(TENANT, delivery.MAX_WAIT_SECONDS)
        holders = [holder for _, holder, ends, _ in await store.list_budget_slots(TENANT) if ends and ends > clock.now]
        assert holders.count("instance-a") == TenantBudget.SLOTS
        assert await b.reserve(TENANT, delivery.MAX_WAIT_SECONDS) is None

    async def test_two_instances_at_deliverys_wait_never_send_more_than_the_budget(self):
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        b = TenantBudget(store, 45, "instance-b", clock=clock)
        sent: list[float] = []
        for step in range(100):  # 10 s in 100 ms steps
            clock.now = T0 + timedelta(milliseconds=100 * step)
            for budget in (a, b):
                for _ in range(10):
                    wait = await budget.reserve(TENANT, delivery.MAX_WAIT_SECONDS)
                    if wait is not None:
                        sent.append(clock.now.timestamp() + wait)
        assert windows(sent)[1.0] <= 50

    async def test_two_busy_instances_share_the_budget_fairly_and_use_it_whole(self):
        """The first instance takes every slot; the second, finding none, says it wants some,
        and the first releases its share within a second or two. Both then send about half."""
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        b = TenantBudget(store, 45, "instance-b", clock=clock)
        sent: dict[str, list[float]] = {"a": [], "b": []}
        for step in range(300):  # 6 s in 20 ms steps, a busy from the start, b from 1 s on
            clock.now = T0 + timedelta(milliseconds=20 * step)
            for name, budget in (("a", a), ("b", b)):
                if name == "b" and step < 50:
                    continue
                while (wait := await budget.reserve(TENANT, 0.02)) is not None:
                    sent[name].append(clock.now.timestamp() + wait)
        late = (T0 + timedelta(seconds=4)).timestamp()
        per_second = {name: len([t for t in times if t >= late]) / 2.0 for name, times in sent.items()}
        assert per_second["a"] >= 18 and per_second["b"] >= 18, per_second  # each about half of 45
        assert sum(per_second.values()) >= 40, per_second  # and the whole budget is used
        assert windows(sent["a"] + sent["b"])[1.0] <= 50

    async def test_a_lone_instance_gets_the_whole_budget(self):
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        sent: list[float] = []
        for step in range(200):  # 4 s in 20 ms steps
            clock.now = T0 + timedelta(milliseconds=20 * step)
            while (wait := await a.reserve(TENANT, 0.02)) is not None:
                sent.append(clock.now.timestamp() + wait)
        last_second = [t for t in sent if t >= (T0 + timedelta(seconds=3)).timestamp()]
        assert 40 <= len(last_second) <= 46  # once its leases have grown, about the whole 45 per second

    async def test_an_idle_instance_lets_its_slots_lapse(self):
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        b = TenantBudget(store, 45, "instance-b", clock=clock)
        for _ in range(100):
            await a.reserve(TENANT, 1.0)
        clock.now += TenantBudget.LEASE + timedelta(seconds=1)
        for _ in range(200):
            await b.reserve(TENANT, 10.0)
        holders = {holder for _, holder, ends, _ in await store.list_budget_slots(TENANT) if ends and ends > clock.now}
        assert holders == {"instance-b"}

    async def test_a_trickle_renews_its_one_slot_with_one_write_and_no_read(self):
        store, clock = memory_store(), Clock()
        calls = {"read_budget": 0, "save_budget_slot": 0}
        for name in calls:
            real = getattr(store, name)

            async def counted(*args, _real=real, _name=name):
                calls[_name] += 1
                return await _real(*args)

            setattr(store, name, counted)
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        for second in range(120):  # one send a second for two minutes
            clock.now = T0 + timedelta(seconds=second)
            assert await a.reserve(TENANT, 1.0) is not None
            if second == 59:
                # By now the first lease (every slot, its rate not yet known) and a renewal that
                # kept one have read the partition; from here on a renewal is one write.
                calls.update(dict.fromkeys(calls, 0))
        renewals = 60 / (TenantBudget.LEASE - TenantBudget.RENEW_BEFORE).total_seconds()
        assert calls["read_budget"] == 0 and 1 <= calls["save_budget_slot"] <= renewals + 1

    async def test_slots_no_longer_needed_lapse_without_a_write_when_no_one_wants_them(self):
        store, clock = memory_store(), Clock()
        writes: list[tuple[int, str]] = []
        real = store.save_budget_slot

        async def counted(tenant_id, slot, holder, until, etag):
            writes.append((slot, holder))
            return await real(tenant_id, slot, holder, until, etag)

        store.save_budget_slot = counted
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        for _ in range(100):  # a burst: every slot
            await a.reserve(TENANT, 10.0)
        assert len(writes) == TenantBudget.SLOTS
        for second in range(1, 16):  # then a trickle, past the first lease's renewal
            clock.now = T0 + timedelta(seconds=second)
            await a.reserve(TENANT, 1.0)
        assert writes[TenantBudget.SLOTS :] == [(0, "instance-a")]  # one renewed, none released
        clock.now = T0 + TenantBudget.LEASE + timedelta(seconds=1)
        b = TenantBudget(store, 45, "instance-b", clock=clock)
        for _ in range(100):  # the others have lapsed: b takes them
            await b.reserve(TENANT, 10.0)
        holders = [holder for _, holder, ends, _ in await store.list_budget_slots(TENANT) if ends and ends > clock.now]
        assert holders.count("instance-b") == TenantBudget.SLOTS - 1 and holders.count("instance-a") == 1

    async def test_slots_no_longer_needed_are_released_at_the_renewal_when_another_instance_wants_them(self):
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        b = TenantBudget(store, 45, "instance-b", clock=clock)
        for _ in range(100):  # a burst on a: every slot
            await a.reserve(TENANT, 10.0)
        renewal = TenantBudget.LEASE - TenantBudget.RENEW_BEFORE
        for second in range(1, int(renewal.total_seconds()) + 4):  # then a trickle on a, b busy
            clock.now = T0 + timedelta(seconds=second)
            await a.reserve(TENANT, 1.0)
            for _ in range(20):
                await b.reserve(TENANT, 1.0)
        # Before a's first lease ends, b holds what a no longer needs.
        assert clock.now < T0 + TenantBudget.LEASE
        holders = [holder for _, holder, ends, _ in await store.list_budget_slots(TENANT) if ends and ends > clock.now]
        assert holders.count("instance-b") >= TenantBudget.SLOTS // 2, holders

    async def test_a_renewal_of_a_slot_taken_meanwhile_reads_again_and_holds_nothing_twice(self):
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        b = TenantBudget(store, 45, "instance-b", clock=clock)
        assert await a.reserve(TENANT, 1.0) is not None  # a trickle: one slot
        clock.now += TenantBudget.LEASE + timedelta(seconds=1)  # a's lease lapsed (a paused)
        for _ in range(200):  # b, busy, takes every slot, a's included
            await b.reserve(TENANT, 1.0)
        assert await a.reserve(TENANT, 1.0) is None  # a's renewal conflicts: it reads, finds none free
        holders = [holder for _, holder, ends, _ in await store.list_budget_slots(TENANT) if ends and ends > clock.now]
        assert holders == ["instance-b"] * TenantBudget.SLOTS


class TestSummaryFollowUps:
    async def test_the_summary_is_updated_after_the_tenant_budget_was_spoken_for_a_while(self):
        """Another instance holds every send slot of the tenant when a storm starts here: the
        summary's update is put off again and again, each time as a new message, and lands once
        that instance's leases lapse."""
        store, clock = memory_store(), Clock()
        messenger = RecordingMessenger()
        busy = TenantBudget(store, 45, "instance-b", clock=clock)
        for _ in range(400):  # instance b is sending flat out: it leases every slot
            await busy.reserve(TENANT, 10.0)
        held = [holder for _, holder, _, _ in await store.list_budget_slots(TENANT)]
        assert held.count("instance-b") == TenantBudget.SLOTS
        ctx = delivering(store, messenger, clock=clock)
        ctx.tenant_rate = TenantBudget(store, 45, "instance-a", clock=clock)
        record = conversation(TENANT, CHANNEL)
        await ctx.jobs.send([DeliveryJob(record, CARD, alert(n), new=True, request=f"a{n}") for n in range(120)])
        report = await ctx.jobs.drain(ctx)
        [summary] = [m for m in messenger.messages.values() if "Alert storm" in json.dumps(m.card)]
        assert f"{len(report.folded)} alerts in this summary" in json.dumps(summary.card)
        assert len(report.folded) + len(report.posted) == 120


class TestJobIds:
    def test_re_renders_of_two_alerts_are_two_messages(self):
        record = conversation(TENANT, CHANNEL)
        first = DeliveryJob(record, CARD, None, extra={"alertKey": "k1"}, request="rerender-3")
        second = DeliveryJob(record, CARD, None, extra={"alertKey": "k2"}, request="rerender-3")
        assert first.message_id != second.message_id

    def test_the_same_job_sent_twice_has_one_id_and_a_reschedule_another(self):
        record = conversation(TENANT, CHANNEL)
        job = DeliveryJob(record, CARD, alert(1), request="e1")
        assert job.message_id == DeliveryJob(record, CARD, alert(1), request="e1").message_id
        assert job.again(T0).message_id != job.message_id


class FailingOnce:
    """The store, whose call of one method (after ``after`` calls that work) fails once as
    Table Storage would."""

    def __init__(self, store, method: str, after: int = 0) -> None:
        self._store = store
        self.method = method
        self.after = after
        self.fail = 1

    def __getattr__(self, name):
        method = getattr(self._store, name)
        if name != self.method:
            return method

        async def failing(*args, **kwargs):
            if self.after:
                self.after -= 1
            elif self.fail:
                self.fail -= 1
                from shared.ports import TransientError

                raise TransientError("Table Storage is unreachable")
            return await method(*args, **kwargs)

        return failing


class TestARedeliveredBatch:
    # The members are recorded, then the summary's save fails (they must not be lost); the
    # members' write fails (they must not be counted twice); a card is posted, then the record
    # of its activity fails (it must not be posted again).
    @pytest.mark.parametrize("failing, after", [("save_pacing", 0), ("save_summary_members", 0), ("save_delivery", 1)])
    async def test_a_batch_that_failed_after_sending_loses_nothing_and_counts_nothing_twice(self, failing, after):
        from shared.domain.jobs import job_from_message

        store, clock = memory_store(), Clock()
        messenger = TimedMessenger(clock)
        flaky = FailingOnce(store, failing, after)
        ctx = delivering(flaky, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        bodies = [
            json.dumps(DeliveryJob(record, CARD, alert(n), new=True, request=f"e{n}").to_json()) for n in range(300)
        ]
        try:
            await run_batch([job_from_message(body, delivery_count=1) for body in bodies], ctx)
        except Exception as exc:  # noqa: BLE001 - the batch failed: Service Bus delivers it again
            assert "unreachable" in str(exc)
            # (its messages' delivery count is now 2)
            await run_batch([job_from_message(body, delivery_count=2) for body in bodies], ctx)
        # What the batch and its redelivery queued runs; nothing else arrives.
        await ctx.jobs.drain(ctx)
        own = [m for m in messenger.messages.values() if m.card and "Alert storm" not in json.dumps(m.card)]
        # (When the summary's save failed after its post, the retry posts a new one: the
        # first one's id was lost with the save. The newest one counts.)
        summary = [m for m in messenger.messages.values() if m.card and "Alert storm" in json.dumps(m.card)][-1]
        counted = int(re.search(r"([\d,]+) alerts in this summary", json.dumps(summary.card)).group(1).replace(",", ""))
        assert len(own) + counted == 300  # each alert its own card or counted in the card as rendered, never both


class TestAJobTeamsKeepsFailing:
    async def test_it_goes_to_the_fallback_and_the_undeliverable_list_never_dropped(self):
        from shared.ports import DeliveryError

        store, clock = memory_store(), Clock()
        messenger = RecordingMessenger()
        messenger.fail_next = [DeliveryError("503 Service Unavailable", status=503)]
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        job = DeliveryJob(record, CARD, alert(1), new=True, request="e1", failures=delivery.MAX_FAILURES - 1)
        report = await run_batch([job], ctx)
        assert report.undeliverable and not ctx.jobs.jobs  # nothing rescheduled: it is not dropped, it is undeliverable
        [gone] = await store.list_undeliverable(TENANT)
        assert gone.alert_id == "A-1" and "kept failing" in gone.reason

    async def test_put_offs_for_pacing_are_not_failures(self):
        record = conversation(TENANT, CHANNEL)
        job = DeliveryJob(record, CARD, alert(1), request="e1")
        later = job.again(T0).again(T0)
        assert (later.attempt, later.failures) == (2, 0)
        assert job.again(T0, failed=True).failures == 1
        assert job_from_json(json.loads(job.again(T0, failed=True).body())).failures == 1


class TestAJobForAnOlderRevision:
    async def test_with_another_context_renders_the_newest_revision_not_its_own(self):
        """The card shows r3 (resolved); a job for r2 (acknowledged) arrives late with a new
        context (a note): the card gets the note and stays resolved."""
        store, clock = memory_store(), Clock()
        messenger = RecordingMessenger()
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        newest = await store.save_alert(alert(1, status="resolved", revision=3))
        await run_batch([DeliveryJob(record, CARD, alert(1), new=True, request="e1")], ctx)
        clock.now += timedelta(seconds=5)
        await run_batch([DeliveryJob(record, CARD, newest, request="e3")], ctx)
        clock.now += timedelta(seconds=5)
        late = DeliveryJob(
            record, CARD, alert(1, status="acknowledged", revision=2), request="e2", context={"note": "Paged"}
        )
        await run_batch([late], ctx)
        [card] = messenger.cards_in(CHANNEL)
        shown = json.dumps(card.card)
        assert "Resolved" in shown and "Acknowledged" not in shown and "Paged" in shown
        delivery_row = await store.get_delivery(TENANT, newest.key, CHANNEL)
        assert delivery_row is not None and delivery_row.rendered_version == 3

    async def test_a_new_alerts_first_job_behind_a_later_revisions_job_posts_no_second_card(self):
        """Two events of a new alert processed at once: the later one's job reaches the
        conversation's session first and posts the card. The first job, made when no card
        existed, finds the row at its claim and updates nothing older over it."""
        store, clock = memory_store(), Clock()
        messenger = RecordingMessenger()
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        acknowledged = await store.save_alert(alert(1, status="acknowledged", revision=2))
        await run_batch([DeliveryJob(record, CARD, acknowledged, request="e2")], ctx)
        await run_batch([DeliveryJob(record, CARD, alert(1), new=True, request="e1")], ctx)
        [card] = messenger.cards_in(CHANNEL)
        assert "Acknowledged" in json.dumps(card.card)
        assert sum(1 for kind, _ in messenger.calls if kind == "post") == 1


class OvertakenOnce:
    """The store, where another consumer saves the conversation's pacing (its own fold) just
    before this one does, once: as after a session lock lost and taken over."""

    def __init__(self, store) -> None:
        self._store = store
        self.done = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def save_pacing(self, tenant_id, conversation_id, window, summary, etag):
        if not self.done:
            self.done = True
            _, theirs, current = await self._store.get_pacing(tenant_id, conversation_id)
            theirs = theirs or delivery._empty_summary()
            theirs["counts"]["open:critical"] = theirs["counts"].get("open:critical", 0) + 1
            theirs["seq"] += 1
            theirs["folded"] += 1
            theirs["first"] = theirs["last"] = T0.isoformat()
            await self._store.save_pacing(tenant_id, conversation_id, window, theirs, current)
        return await self._store.save_pacing(tenant_id, conversation_id, window, summary, etag)


class TestTwoConsumersOfOneConversation:
    @staticmethod
    async def _world(remembered: bool):
        """A conversation whose window is full (every new alert is folded), written by this
        process (``remembered``) or by another, five new alerts' jobs, and a store where another
        consumer saves the window (its own fold) just before this one does."""
        from shared.adapters.state_store import MemoryTables, TableStateStore
        from shared.domain.jobs import job_from_message

        tables, clock = MemoryTables(), Clock()
        inner = TableStateStore(tables, clock=clock)
        writer = inner if remembered else TableStateStore(tables, clock=clock)
        await writer.save_pacing(TENANT, CHANNEL, full_hour(clock.now.timestamp()).to_json(), None, None)
        ctx = delivering(OvertakenOnce(inner), RecordingMessenger(), clock=clock)
        record = conversation(TENANT, CHANNEL)
        bodies = [
            json.dumps(DeliveryJob(record, CARD, alert(n), new=True, request=f"e{n}").to_json()) for n in range(5)
        ]
        return inner, ctx, lambda count: [job_from_message(b, delivery_count=count) for b in bodies]

    async def test_the_second_save_of_its_pacing_fails_and_its_batch_is_decided_again_never_overwrites(self):
        from shared.ports import TransientError

        inner, ctx, jobs = await self._world(remembered=False)
        with pytest.raises(TransientError, match="another consumer"):
            await run_batch(jobs(1), ctx)
        _, summary, _ = await inner.get_pacing(TENANT, CHANNEL)
        assert summary["counts"] == {"open:critical": 1}  # the other's fold is kept, not overwritten
        for n in range(5):  # and this attempt's members are gone: nothing looks counted that is not
            assert await inner.get_summary_member(TENANT, CHANNEL, alert(n).key) is None
        await run_batch(jobs(2), ctx)
        _, summary, _ = await inner.get_pacing(TENANT, CHANNEL)
        assert summary["counts"] == {"open:critical": 1, "open:high": 5}

    async def test_a_batch_of_new_cards_on_the_remembered_window_is_decided_again_at_once(self):
        """The window this process last wrote, taken without a read: the other consumer's save
        is found at this batch's save, before anything was sent, so the batch runs again on
        a fresh read within the same delivery."""
        inner, ctx, jobs = await self._world(remembered=True)
        report = await run_batch(jobs(1), ctx)
        assert sorted(report.folded) == sorted(alert(n).key for n in range(5))  # once each, not twice
        _, summary, _ = await inner.get_pacing(TENANT, CHANNEL)
        assert summary["counts"] == {"open:critical": 1, "open:high": 5}  # theirs kept, these counted


class WindowWrittenBeforeACard:
    """The store, where another consumer writes the conversation's window just before this
    one's card claim (``at`` 1) or record (``at`` 2) is written with it, once."""

    def __init__(self, store, at: int) -> None:
        self._store = store
        self.at = at
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def save_delivery_paced(self, delivery_row, window, summary, etag):
        self.calls += 1
        if self.calls == self.at:
            theirs, their_summary, current = await self._store.get_pacing(TENANT, CHANNEL)
            await self._store.save_pacing(TENANT, CHANNEL, theirs or window, their_summary, current)
        return await self._store.save_delivery_paced(delivery_row, window, summary, etag)


class TestAnotherConsumerWritesTheWindowOfACard:
    """A card's claim and record are each written with its conversation's window, on the ETag
    the batch read: another consumer's write meanwhile (a session lock lost and taken over) is
    seen before the post, or after it without losing the card's record."""

    async def test_before_the_claim_nothing_is_posted_and_the_batch_is_run_again(self):
        from shared.services.delivery import run_message

        inner, clock = memory_store(), Clock()
        store = WindowWrittenBeforeACard(inner, at=1)
        messenger = RecordingMessenger()
        ctx = delivering(store, messenger, clock=clock)
        report = await run_message([DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(1), new=True)], ctx)
        assert report.posted == [CHANNEL] and store.calls == 3  # the refused claim, then claim and record
        assert sum(1 for kind, _ in messenger.calls if kind == "post") == 1

    async def test_after_the_post_the_card_is_recorded_and_the_batch_is_run_again_without_posting_twice(self):
        from shared.services.delivery import run_message

        inner, clock = memory_store(), Clock()
        store = WindowWrittenBeforeACard(inner, at=2)
        messenger = RecordingMessenger()
        ctx = delivering(store, messenger, clock=clock)
        await run_message([DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(1), new=True)], ctx)
        assert sum(1 for kind, _ in messenger.calls if kind == "post") == 1
        recorded = await inner.get_delivery(TENANT, alert(1).key, CHANNEL)
        assert recorded is not None and recorded.activity_id and recorded.status == "posted"
        window, _summary, _etag = await inner.get_pacing(TENANT, CHANNEL)
        assert len(pacing.Window.from_json(window).recent) == 1  # the send counted once, after the rerun


class TestTheWindowThisProcessWrote:
    """A batch of new cards starts from the window as this process last wrote it, without a
    read: its claim is written on that ETag, so another instance's write since is found before
    anything is sent."""

    async def test_a_new_card_after_this_process_wrote_the_window_reads_no_window(self):
        from shared.adapters.state_store import MemoryTables, TableStateStore

        tables, clock = MemoryTables(), Clock()
        store = TableStateStore(tables, clock=clock)
        ctx = delivering(store, RecordingMessenger(), clock=clock)
        record = conversation(TENANT, CHANNEL)
        await run_batch([DeliveryJob(record, CARD, alert(1), new=True, request="e1")], ctx)
        clock.now += timedelta(seconds=5)
        before = tables.counter.requests
        report = await run_batch([DeliveryJob(record, CARD, alert(2), new=True, request="e2")], ctx)
        assert report.posted == [CHANNEL]
        assert tables.counter.requests - before == 2  # the claim and the record, each with the window

    async def test_a_window_another_instance_wrote_since_is_read_again_and_one_card_is_posted(self):
        from shared.adapters.state_store import MemoryTables, TableStateStore

        tables, clock = MemoryTables(), Clock()
        mine, theirs = TableStateStore(tables, clock=clock), TableStateStore(tables, clock=clock)
        messenger = RecordingMessenger()
        record = conversation(TENANT, CHANNEL)
        await run_batch(
            [DeliveryJob(record, CARD, alert(1), new=True, request="e1")], delivering(mine, messenger, clock=clock)
        )
        clock.now += timedelta(seconds=1)
        await run_batch(
            [DeliveryJob(record, CARD, alert(2), new=True, request="e2")], delivering(theirs, messenger, clock=clock)
        )
        clock.now += timedelta(seconds=1)
        report = await run_batch(
            [DeliveryJob(record, CARD, alert(3), new=True, request="e3")], delivering(mine, messenger, clock=clock)
        )
        assert report.posted == [CHANNEL] and report.rescheduled == 0
        assert sum(1 for kind, _ in messenger.calls if kind == "post") == 3
        window, _summary, _etag = await mine.get_pacing(TENANT, CHANNEL)
        assert len(pacing.Window.from_json(window).recent) == 3  # the other instance's send was kept


class TestAStormOverHours:
    async def test_schedules_one_sweep_of_its_members_not_one_per_batch(self):
        from shared.adapters.state_store import MemoryTables, TableStateStore

        clock = Clock()
        store = TableStateStore(MemoryTables(), clock=clock)  # its schedule follows the test's clock
        messenger = RecordingMessenger()
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        full = full_hour(clock.now.timestamp())  # every new alert is folded
        etag = await store.save_pacing(TENANT, CHANNEL, full.to_json(), None, None)
        for hour in range(5):  # a folding batch in each of five hours
            clock.now = T0 + timedelta(hours=hour, minutes=1)
            _, summary, etag = await store.get_pacing(TENANT, CHANNEL)
            refilled = full_hour(clock.now.timestamp())
            await store.save_pacing(TENANT, CHANNEL, refilled.to_json(), summary, etag)
            jobs = [
                DeliveryJob(record, CARD, alert(100 * hour + n), new=True, request=f"h{hour}-{n}") for n in range(5)
            ]
            report = await run_batch(jobs, ctx)
            assert len(report.folded) == 5
        rows = await (await store._t("expiry")).query()
        assert [e["Kind"] for e, _ in rows].count("members") == 1


class TestAFailedBatchLeavesNoAlertHidden:
    """A batch in which every alert was folded fails at its end. What it counted is not kept
    (its members go, the summary is saved as it was read), so its redelivery decides each alert
    again: the summary card comes to count every one that is not its own card."""

    @pytest.mark.parametrize("failing", ["save_summary_members", "get_delivery"])
    async def test_the_summary_card_counts_every_folded_alert_after_a_failed_batch(self, failing):
        from shared.domain.jobs import job_from_message

        store, clock = memory_store(), Clock()
        messenger = TimedMessenger(clock)
        record = conversation(TENANT, CHANNEL)
        full = full_hour(clock.now.timestamp())  # every new alert is folded, none waits for a slot
        await store.save_pacing(TENANT, CHANNEL, full.to_json(), None, None)
        # A job for an alert that has a card (it looks its delivery up) comes last: its lookup fails.
        flaky = FailingOnce(store, failing)
        ctx = delivering(flaky, messenger, clock=clock)
        bodies = [
            json.dumps(DeliveryJob(record, CARD, alert(n), new=True, request=f"e{n}").to_json()) for n in range(40)
        ]
        bodies.append(json.dumps(DeliveryJob(record, CARD, alert(99, revision=2), request="e99").to_json()))
        with pytest.raises(Exception, match="unreachable"):
            await run_batch([job_from_message(body, delivery_count=1) for body in bodies], ctx)
        clock.now += timedelta(seconds=90)  # the hour has room for the summary, not for new cards
        await run_batch([job_from_message(body, delivery_count=2) for body in bodies], ctx)
        await ctx.jobs.drain(ctx)
        _, summary, _ = await store.get_pacing(TENANT, CHANNEL)
        assert summary is not None and summary["rendered"] == summary["seq"]
        [card] = [m for m in messenger.messages.values() if m.card and "Alert storm" in json.dumps(m.card)]
        counted = int(re.search(r"([\d,]+) alerts in this summary", json.dumps(card.card)).group(1).replace(",", ""))
        own = [m for m in messenger.messages.values() if m.card and "Alert storm" not in json.dumps(m.card)]
        assert counted >= 40 and counted + len(own) == 41  # A-99 had no card either: its own now, or counted


async def run_batch(jobs, ctx):
    from shared.services.delivery import run_jobs

    return await run_jobs(jobs, ctx)


class LandsButTimesOut(RecordingMessenger):
    """Teams posts the card, but the answer never comes back: the client times out."""

    def __init__(self, clock) -> None:
        super().__init__()
        self.clock = clock
        self.post_times: list = []
        self.time_out = 1

    async def post(self, conversation, card, summary):
        self.post_times.append(self.clock())
        activity_id = await super().post(conversation, card, summary)
        if self.time_out:
            self.time_out -= 1
            raise DeliveryError("Teams did not answer: TimeoutError", maybe_sent=True)
        return activity_id


class TestATimedOutPost:
    async def test_keeps_its_claim_so_no_second_post_is_made_while_the_first_may_land(self):
        store, clock = memory_store(), Clock()
        messenger = LandsButTimesOut(clock)
        ctx = delivering(store, messenger, clock=clock)
        job = DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(1), new=True, request="e1")
        report = await run_batch([job], ctx)
        assert report.posted == [] and len(messenger.post_times) == 1
        [claim] = await store.list_deliveries(TENANT, alert(1).key)
        assert claim.claimed_at is not None and claim.activity_id is None  # still claimed
        # The same message run again at once (Service Bus redelivering it) finds the claim and
        # waits; the job runs again once the claim has lapsed.
        await run_batch([replace(job, new=False)], ctx)
        assert len(messenger.post_times) == 1
        await ctx.jobs.drain(ctx)
        assert len(messenger.post_times) == 2
        assert messenger.post_times[1] - messenger.post_times[0] >= delivery.CLAIM_TIMEOUT
        [shown] = await store.list_deliveries(TENANT, alert(1).key)
        assert shown.activity_id is not None and shown.status == "posted"


class TestABatchDeliveredAgainWhoseLookUpFailsForNow:
    async def test_reads_again_instead_of_failing_the_whole_batch(self):
        """A storm's batch delivered again reads a hundred or so rows before it runs: one read
        failed for now is made again, not the batch run again."""
        store, messenger, clock = memory_store(), RecordingMessenger(), Clock()
        ctx = delivering(store, messenger, clock=clock)
        record = conversation(TENANT, CHANNEL)
        jobs = [DeliveryJob(record, CARD, alert(n), new=False, request=f"e{n}") for n in range(3)]
        for job in jobs:
            await store.save_alert(job.alert)
        real, failed = store.get_delivery, []

        async def flaky(tenant_id, key, conversation_id):
            if not failed:
                failed.append(key)
                raise TransientError("Table Storage is unreachable")
            return await real(tenant_id, key, conversation_id)

        store.get_delivery = flaky
        report = await run_batch(jobs, ctx)
        assert failed and len(report.posted) == 3, report
        assert len(messenger.cards_in(CHANNEL)) == 3


class BudgetUnreachableOnce:
    """The tenant's budget, whose first reservation fails as Table Storage failing for now does."""

    def __init__(self, budget: TenantBudget) -> None:
        self.budget, self.failed = budget, False

    async def reserve(self, tenant_id: str, max_wait: float) -> float | None:
        if not self.failed:
            self.failed = True
            raise TransientError("Table Storage is unreachable")
        return await self.budget.reserve(tenant_id, max_wait)


class TestABudgetThatFailsForNow:
    async def test_leaves_no_claim_behind_so_the_card_is_posted_at_once_not_when_the_claim_lapses(self):
        store, clock = memory_store(), Clock()
        messenger = TimedMessenger(clock)
        ctx = delivering(store, messenger, clock=clock)
        ctx.tenant_rate = BudgetUnreachableOnce(TenantBudget(store, 45, "instance-a", clock=clock))
        start = clock.now
        await delivery.run_message(
            [DeliveryJob(conversation(TENANT, CHANNEL), CARD, alert(1), new=True, request="e1")], ctx
        )
        await ctx.jobs.drain(ctx)
        assert ctx.tenant_rate.failed and len(messenger.times) == 1
        assert messenger.times[0] - start.timestamp() < 5  # the run's own retry posted it
        [shown] = await store.list_deliveries(TENANT, alert(1).key)
        assert shown.activity_id is not None and shown.claimed_at is None


class TestTenantBudgetAfterAPause:
    async def test_an_instance_takes_its_own_lapsed_slots_again(self):
        store, clock = memory_store(), Clock()
        a = TenantBudget(store, 45, "instance-a", clock=clock)
        for _ in range(50):
            await a.reserve(TENANT, 1.0)
        clock.now += TenantBudget.LEASE + timedelta(seconds=30)  # a Retry-After of 30 s, nothing sent
        assert await a.reserve(TENANT, 1.0) is not None

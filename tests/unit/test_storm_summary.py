"""The storm summary over a storm's life, with the in-memory store, a recording messenger and a
test clock: a change of a folded alert made in Teams moves its count, a storm days later gets
a new summary card (the old one says the storm ended), and a summary card that Teams refuses
for good sends its alerts to their fallback recipients, or records them as undeliverable."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta

from shared.domain import pacing
from shared.domain.jobs import CARD, DeliveryJob
from shared.ports import DeliveryError
from shared.services import delivery
from shared.services.processing import sync_cards
from tests.support.fakes import Clock, RecordingMessenger, conversation, delivering
from tests.unit.test_delivery_jobs import CHANNEL, TENANT, alert, full_hour

OPS = "19:ops@thread.tacv2"


def storm_cards(messenger: RecordingMessenger) -> list:
    return [m for m in messenger.messages.values() if m.card and "Alert storm" in json.dumps(m.card)]


def counted(card: dict) -> int:
    found = re.search(r"Alert storm: ([\d,]+) alerts in this summary", json.dumps(card))
    assert found, "not a live summary card"
    return int(found.group(1).replace(",", ""))


async def fill(store, clock) -> None:
    """A conversation whose last hour is full: every new alert is folded into the summary."""
    _, summary, etag = await store.get_pacing(TENANT, CHANNEL)
    await store.save_pacing(TENANT, CHANNEL, full_hour(clock.now.timestamp()).to_json(), summary, etag)


async def storm(ctx, store, clock, numbers, *, fallback=()) -> delivery.JobReport:
    """Alerts saved in the store and sent to the channel while its hour is full."""
    await fill(store, clock)
    record = conversation(TENANT, CHANNEL)
    jobs = []
    for n in numbers:
        state = await store.save_alert(alert(n))
        jobs.append(DeliveryJob(record, CARD, state, recipient="General", fallback=fallback, new=True, request=f"e{n}"))
    await ctx.jobs.send(jobs)
    return await ctx.jobs.drain(ctx)


def world():
    from shared.adapters.state_store import memory_store

    store, messenger, clock = memory_store(), RecordingMessenger(), Clock()
    return store, messenger, clock, delivering(store, messenger, clock=clock)


class TestAChangeOfAFoldedAlert:
    async def test_made_in_teams_moves_its_count_on_the_summary_card(self):
        store, messenger, clock, ctx = world()
        await store.save_conversation(conversation(TENANT, CHANNEL))
        report = await storm(ctx, store, clock, range(30))
        assert len(report.folded) == 30
        [card] = storm_cards(messenger)
        assert counted(card.card) == 30
        # Resolved from Teams: the action saves the alert and syncs every place that shows it.
        clock.now += timedelta(minutes=2)
        state = await store.get_alert(TENANT, report.folded[4])
        resolved = await store.save_alert(replace(state, status="resolved", revision=state.revision + 1))
        await sync_cards(resolved, ctx)
        await ctx.jobs.drain(ctx)
        [card] = storm_cards(messenger)
        assert counted(card.card) == 29
        assert [d.status for d in await store.list_deliveries(TENANT, resolved.key)] == ["folded"]


class TestANewStorm:
    async def test_days_later_gets_a_new_summary_and_the_old_one_says_the_storm_ended(self):
        store, messenger, clock, ctx = world()
        await storm(ctx, store, clock, range(40))
        [first] = storm_cards(messenger)
        assert counted(first.card) == 40
        clock.now += timedelta(days=3)
        await storm(ctx, store, clock, range(100, 125))
        old, new = sorted(storm_cards(messenger), key=lambda m: int(m.activity_id.split("-")[1]))
        assert old.activity_id == first.activity_id
        assert "Alert storm ended: 40 alerts were summarised here" in json.dumps(old.card)
        assert counted(new.card) == 25
        _, summary, _ = await store.get_pacing(TENANT, CHANNEL)
        assert summary["storm"] == 2 and "ended" not in summary

    async def test_a_change_of_an_alert_of_the_ended_storm_gets_its_own_card(self):
        store, messenger, clock, ctx = world()
        report = await storm(ctx, store, clock, range(40))
        clock.now += timedelta(days=3)
        await storm(ctx, store, clock, range(100, 125))
        clock.now += timedelta(hours=2)  # the hour has room again
        state = await store.get_alert(TENANT, report.folded[0])
        acked = await store.save_alert(replace(state, status="acknowledged", revision=state.revision + 1))
        await sync_cards(acked, ctx)
        await ctx.jobs.drain(ctx)
        own = [m for m in messenger.cards_in(CHANNEL) if "Alert storm" not in json.dumps(m.card)]
        assert len(own) == 1 and acked.alert_id in json.dumps(own[0].card)
        new = max(storm_cards(messenger), key=lambda m: int(m.activity_id.split("-")[1]))
        assert counted(new.card) == 25  # the new storm's count is untouched
        assert [d.status for d in await store.list_deliveries(TENANT, acked.key)] == ["posted"]

    async def test_a_storm_that_goes_on_keeps_its_summary(self):
        store, messenger, clock, ctx = world()
        await storm(ctx, store, clock, range(40))
        _, summary, _ = await store.get_pacing(TENANT, CHANNEL)
        clock.now = datetime.fromisoformat(summary["last"]) + delivery.STORM_QUIET - timedelta(minutes=1)
        await storm(ctx, store, clock, range(100, 110))
        [card] = storm_cards(messenger)
        assert counted(card.card) == 50


class TestASummaryRefusedForGood:
    async def test_its_open_alerts_go_to_their_fallback_recipients(self):
        store, messenger, clock, ctx = world()
        ops = conversation(TENANT, OPS)
        await store.save_conversation(ops)
        fallback = ({"kind": "chat", "chatId": OPS},)
        report = await storm(ctx, store, clock, range(20), fallback=fallback)
        [summary] = storm_cards(messenger)
        # Someone deletes the summary message; the next storm's update of it is refused (404).
        clock.now += timedelta(minutes=5)
        messenger.fail_next.append(DeliveryError("not found: the message was deleted", status=404, permanent=True))
        resolved = await store.save_alert(replace(await store.get_alert(TENANT, report.folded[0]), revision=9))
        await ctx.jobs.send([DeliveryJob(conversation(TENANT, CHANNEL), CARD, resolved, request="change")])
        after = await ctx.jobs.drain(ctx)
        assert set(after.fallback) == {OPS}
        in_ops = messenger.cards_in(OPS)
        assert len(in_ops) == 20 and all("could not be reached" in json.dumps(m.card) for m in in_ops)
        assert {d.status for d in await store.list_deliveries(TENANT, report.folded[3])} == {"failed", "posted"}
        # The next storm posts a new summary instead of updating the deleted one.
        clock.now += timedelta(minutes=5)
        await storm(ctx, store, clock, range(200, 210))
        newest = max(storm_cards(messenger), key=lambda m: int(m.activity_id.split("-")[1]))
        assert newest.activity_id != summary.activity_id and counted(newest.card) == 10

    async def test_without_fallback_its_open_alerts_are_recorded_undeliverable(self):
        store, messenger, clock, ctx = world()
        report = await storm(ctx, store, clock, range(15))
        clock.now += timedelta(minutes=5)
        messenger.fail_next.append(DeliveryError("not found: the message was deleted", status=404, permanent=True))
        state = await store.get_alert(TENANT, report.folded[0])
        await ctx.jobs.send(
            [DeliveryJob(conversation(TENANT, CHANNEL), CARD, replace(state, revision=5), request="change")]
        )
        await ctx.jobs.drain(ctx)
        undeliverable = await store.list_undeliverable(TENANT)
        assert len(undeliverable) == 15 and {u.alert_key for u in undeliverable} == set(report.folded)


def test_a_storm_needs_the_window_full() -> None:
    # The tests above fold because full_hour leaves no room for a new card within the fold limit.
    window = full_hour(0.0)
    assert window.next_send(0.0, pacing.limits_for(False), reserve=True) > delivery.FOLD_AFTER_SECONDS


class TestAStormsFolds:
    async def test_a_write_failed_for_now_is_tried_again_not_the_whole_batch(self):
        from shared.adapters.state_store import MemoryTable, MemoryTables, TableStateStore
        from shared.domain.model import Delivery
        from shared.ports import TransientError

        failed: set = set()

        class FailsEachTransactionOnce(MemoryTable):
            async def upsert_many(self, entities):
                first = (entities[0]["PartitionKey"], entities[0]["RowKey"])
                if first not in failed:
                    failed.add(first)
                    raise TransientError("Table Storage answered 503")
                return await super().upsert_many(entities)

        tables = MemoryTables()
        tables._tables["deliveries"] = FailsEachTransactionOnce(tables.counter)
        store = TableStateStore(tables)
        marks = [Delivery(TENANT, f"k{n}", CHANNEL) for n in range(150)]
        await store.mark_folded(marks)
        assert len(await store.list_deliveries(TENANT, "k7")) == 1
        assert len(tables.rows("deliveries")) == 150
        # A tenant's deliveries share a partition: 150 rows are two transactions (each failed once).
        assert len(failed) == 2 and tables.counter.requests == 2 + 1

"""The timer's cost follows what is open, due or pending, not how much history is stored; and
the retention settings are checked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.state_store import MemoryTables, TableStateStore
from shared.domain.model import ActionRecord, AlertState, Delivery
from shared.domain.workflows import parse_workflow
from shared.services.actions import ActionContext
from shared.services.periodic import run_timer
from shared.services.workflows import put_workflow
from shared.settings import SettingsError, load_settings
from tests.support.fakes import Clock, RecordingMessenger, RecordingPublisher, conversation, delivering

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
OPS = "19:ops@thread.tacv2"


def alert(key: str, status: str, at: datetime) -> AlertState:
    return AlertState(
        TENANT,
        key,
        f"ALRT-{key}",
        "alerts.example.com",
        "https://alerts.example.com",
        f"Problem {key}",
        status,
        "high",
        created=at,
        updated=at,
        status_changed=at,
    )


async def world(resolved: int) -> tuple[TableStateStore, MemoryTables, RecordingMessenger, Clock, object, object]:
    """A tenant with a channel, a digest workflow, three open alerts (one due a reminder), an
    action waiting to be published, and ``resolved`` resolved alerts with a card each."""
    tables, clock, messenger = MemoryTables(), Clock(), RecordingMessenger()
    store = TableStateStore(tables, clock=clock)
    await store.save_conversation(conversation(TENANT, OPS))
    definition = {
        "name": "Hourly digest",
        "trigger": "periodic",
        "intervalMinutes": 60,
        "recipients": [{"kind": "channel", "teamId": "team-1", "channelId": OPS}],
        "fallbackRecipients": [{"kind": "channel", "teamId": "team-1", "channelId": "19:sre@thread.tacv2"}],
    }
    await put_workflow(store, TENANT, parse_workflow(definition, TENANT, "digest"), clock=clock)
    for i in range(resolved):
        at = T0 - timedelta(days=2, minutes=i % 1000)
        await store.save_alert(alert(f"old{i}", "resolved", at))
        await store.save_delivery(
            Delivery(TENANT, f"old{i}", OPS, activity_id=f"a-old{i}", status="posted", rendered_version=1)
        )
    for i, status in enumerate(("open", "open", "acknowledged")):
        await store.save_alert(alert(f"now{i}", status, T0 - timedelta(minutes=45 if i == 0 else 5)))
        await store.save_delivery(
            Delivery(TENANT, f"now{i}", OPS, activity_id=f"a-now{i}", status="posted", rendered_version=1)
        )
    await store.save_action(ActionRecord(TENANT, "act-1", {"id": "act-1"}, created=T0))
    ctx = delivering(store, messenger, clock=clock)
    actions = ActionContext(
        store=store, messenger=messenger, publisher=RecordingPublisher(), directory=None, clock=clock
    )
    return store, tables, messenger, clock, ctx, actions


async def timer_cost(resolved: int) -> tuple[int, int, RecordingMessenger, RecordingPublisher]:
    _store, tables, messenger, clock, ctx, actions = await world(resolved)
    clock.now = T0 + timedelta(hours=1)
    before = (tables.counter.requests, tables.counter.entities)
    await run_timer(ctx, actions, reminder_after_minutes=30)
    cost = tables.counter.requests - before[0], tables.counter.entities - before[1]
    await ctx.jobs.drain(ctx)  # the reminder and the digest it queued, sent by the deliveries consumer
    return *cost, messenger, actions.publisher


class TestTheTimerCostsWhatIsOpen:
    async def test_the_same_reads_with_10_and_with_10000_resolved_alerts_stored(self):
        small_requests, small_entities, small_messenger, small_publisher = await timer_cost(10)
        large_requests, large_entities, large_messenger, large_publisher = await timer_cost(10_000)
        assert (large_requests, large_entities) == (small_requests, small_entities)
        # ...and the run did its work: a reminder, a digest of the three open alerts, the action.
        for messenger, publisher in ((small_messenger, small_publisher), (large_messenger, large_publisher)):
            assert any("Reminder" in (m.text or "") for m in messenger.messages.values())
            [digest] = messenger.cards_in(OPS)
            assert "3 open alert(s)" in str(digest.card)
            assert [message_id for message_id, _ in publisher.sent] == ["act-1"]
        assert small_entities < 60, small_entities

    async def test_the_counter_sees_a_filter_scan(self):
        # What the index replaced: a status filter reads every alert stored. If the counter
        # missed that, the test above could not fail.
        _store, tables, *_ = await world(200)
        before = tables.counter.entities
        alerts = await (await tables.table("alerts")).query(any_of=("Status", ("open",)))
        # Every alert stored, and the three open ones' index rows that sit beside them.
        assert len(alerts) == 2 and tables.counter.entities - before == 203 + 3


class TestRemovalOnTheTimer:
    async def test_expired_records_go_and_what_open_alerts_need_stays(self):
        store, tables, _messenger, clock, ctx, actions = await world(20)
        first = await store.get_alert(TENANT, "now1")
        await store.save_alert(replace(first, status="resolved", status_changed=T0))
        await store.save_alert(
            replace(await store.get_alert(TENANT, "now1"), status="open", status_changed=T0 + timedelta(days=1))
        )
        clock.now = T0 + timedelta(days=40)
        await run_timer(ctx, actions, reminder_after_minutes=30)
        assert [
            entity["AlertKey"]
            for (_, row), (entity, _) in sorted(tables.rows("alerts").items(), key=lambda kv: kv[0][1])
            if row.startswith("alert|")
        ] == [
            "now0",
            "now1",
            "now2",
        ]
        assert {
            entity["AlertKey"]
            for entity, _ in tables.rows("deliveries").values()
            if not entity["AlertKey"].startswith("digest:")
        } == {"now0", "now1", "now2"}
        assert {key for (_, key) in tables.rows("alerts") if key.startswith("open|")} == {
            "open|now0",
            "open|now1",
            "open|now2",
        }
        assert not tables.rows("alertids")  # the removed alerts' rows went; an open one is found through its index row
        for key in ("now0", "now1", "now2"):
            assert [a.key for a in await store.find_alerts(TENANT, f"alrt-{key} ")] == [key]


class TestRetentionSettings:
    def test_defaults(self):
        settings = load_settings(
            {
                "DANGEROUSLY_ALLOW_UNAUTHENTICATED_BOT_REQUESTS": "true",
                "LOCAL_DEVELOPMENT": "true",
                "STATE_TABLES_CONNECTION": "UseDevelopmentStorage=true",
            }
        )
        assert (
            settings.retention.resolved_alert_days,
            settings.retention.action_days,
            settings.retention.rejected_event_days,
            settings.retention.undeliverable_days,
        ) == (30, 30, 14, 30)

    @pytest.mark.parametrize("value, says", [("7", "at least 8"), ("0", "above 0"), ("a month", "whole number")])
    def test_a_resolved_alert_retention_shorter_than_a_message_can_wait_is_refused(self, value, says):
        with pytest.raises(SettingsError, match=says):
            load_settings(
                {
                    "DANGEROUSLY_ALLOW_UNAUTHENTICATED_BOT_REQUESTS": "true",
                    "LOCAL_DEVELOPMENT": "true",
                    "STATE_TABLES_CONNECTION": "UseDevelopmentStorage=true",
                    "RESOLVED_ALERT_RETENTION_DAYS": value,
                }
            )


class FlakyTables(MemoryTables):
    """Memory tables whose next writes to one table fail as Table Storage's would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: dict[str, int] = {}

    async def table(self, name: str):
        table = await super().table(name)
        tables = self

        def fail() -> None:
            if tables.fail.get(name):
                tables.fail[name] -= 1
                from shared.ports import TransientError

                raise TransientError(f"{name} is unreachable")

        class Flaky(type(table)):  # type: ignore[misc]
            async def upsert(self, entity: dict) -> str:
                fail()
                return await super().upsert(entity)

            async def transact(self, writes: list) -> list[str]:
                fail()
                return await super().transact(writes)

        table.__class__ = Flaky
        return table


class TestTheIndexSurvivesAFailedWrite:
    @staticmethod
    async def _world(kind: str):
        """A store whose open-alert index can be made to fail, and an event of ``kind``."""
        import json

        tables, clock = FlakyTables(), Clock()
        store = TableStateStore(tables, clock=clock)
        await store.save_conversation(conversation(TENANT, OPS))
        ctx = delivering(store, RecordingMessenger(), clock=clock)
        body = json.dumps(
            {
                "specversion": "1.0",
                "id": "evt-1",
                "source": "https://alerts.example.com",
                "type": kind,
                "subject": "ALRT-9",
                "tenantid": TENANT,
                "data": {"id": "ALRT-9", "title": "Disk full", "severity": "high", "version": 1},
            }
        )
        return tables, store, ctx, body

    async def test_a_tenant_row_that_fails_on_the_retry_too_is_written_by_a_later_one(self):
        """The first try creates the alert but not its tenant's row in the tenant list (written
        beside it); the retry finds the alert there and fails that row again: that failure, not
        "it exists", must be raised, or the timer would never visit the tenant."""
        from shared.ports import TransientError
        from tests.support.fakes import process_and_deliver

        tables, store, ctx, body = await self._world("alert.created")
        tables.fail["tenants"] = 2
        for _ in range(2):
            with pytest.raises(TransientError):
                await process_and_deliver(body, "m-1", ctx)
        await process_and_deliver(body, "m-1", ctx)
        assert [a.alert_id for a in await store.list_open_alerts()] == ["ALRT-9"]

    @pytest.mark.parametrize("kind", ["alert.created", "alert.updated"])
    @pytest.mark.parametrize("failing", ["tenants", "alerts"])
    async def test_an_alert_whose_write_failed_is_listed_by_the_retry(self, kind, failing):
        from shared.ports import TransientError
        from tests.support.fakes import process_and_deliver

        tables, store, ctx, body = await self._world(kind)
        tables.fail[failing] = 1
        with pytest.raises(TransientError):
            await process_and_deliver(body, "m-1", ctx)
        await process_and_deliver(body, "m-1", ctx)  # Service Bus delivers it again
        assert [a.alert_id for a in await store.list_open_alerts()] == ["ALRT-9"]

    async def test_an_alert_and_its_open_index_row_are_written_together_or_not_at_all(self):
        tables = FlakyTables()
        store = TableStateStore(tables, clock=Clock())
        tables.fail["alerts"] = 1
        from shared.ports import TransientError

        with pytest.raises(TransientError):
            await store.save_alert(alert("k1", "open", T0))
        assert not tables.rows("alerts")
        before = tables.counter.requests
        await store.save_alert(alert("k1", "open", T0))
        assert tables.counter.requests - before == 1  # the tenant is listed already; the rest is one transaction
        assert sorted(row for _, row in tables.rows("alerts")) == ["alert|k1", "open|k1"]


class TestTheTenantList:
    """The timer visits the tenants in the tenant list: each is there while it has an open-alert
    index row or was listed within two hours, and listed again by a process every hour."""

    @staticmethod
    def _world() -> tuple[MemoryTables, Clock, TableStateStore]:
        tables, clock = MemoryTables(), Clock()
        clock.now = T0
        return tables, clock, TableStateStore(tables, clock=clock)

    @staticmethod
    async def _timer_sees(store: TableStateStore, clock: Clock) -> list[str]:
        from shared.domain.retention import STALE_INDEX_GRACE

        return [a.key for a in await store.list_open_alerts(prune_before=clock.now - STALE_INDEX_GRACE)]

    async def test_an_idle_tenant_is_dropped_and_listed_again_by_its_next_alert(self):
        tables, clock, store = self._world()
        first = await store.save_alert(alert("k1", "open", T0))
        await store.save_alert(replace(first, status="resolved", status_changed=T0))
        clock.now = T0 + timedelta(hours=1, minutes=59)
        assert await self._timer_sees(store, clock) == []
        assert [row for _, row in tables.rows("tenants")] == [TENANT]  # listed within two hours: kept
        clock.now = T0 + timedelta(hours=2, minutes=1)
        assert await self._timer_sees(store, clock) == []
        assert not tables.rows("tenants")  # no open alert, listed more than two hours ago
        # A process that listed the tenant less than an hour ago would not list it again, but
        # the timer dropped it only because every process's listing had lapsed.
        await store.save_alert(alert("k2", "open", clock.now))
        assert await self._timer_sees(store, clock) == ["k2"]

    async def test_a_tenant_with_an_open_alert_stays_however_long_ago_it_was_listed(self):
        tables, clock, store = self._world()
        await store.save_alert(alert("k1", "open", T0))
        clock.now = T0 + timedelta(days=3)
        assert await self._timer_sees(store, clock) == ["k1"]
        assert [row for _, row in tables.rows("tenants")] == [TENANT]

    async def test_a_process_lists_its_tenants_again_every_hour(self):
        tables, clock, store = self._world()
        await store.save_alert(alert("k1", "open", T0))
        clock.now = T0 + timedelta(minutes=59)
        await store.save_alert(alert("k2", "open", clock.now))
        [(row, _)] = tables.rows("tenants").values()
        assert row["Listed"] == T0.isoformat()
        clock.now = T0 + timedelta(hours=1)
        await store.save_alert(alert("k3", "open", clock.now))
        [(row, _)] = tables.rows("tenants").values()
        assert row["Listed"] == clock.now.isoformat()

    async def test_an_alert_reopened_after_its_tenant_was_dropped_lists_it_again(self):
        tables, clock, store = self._world()
        first = await store.save_alert(alert("k1", "open", T0))
        resolved = await store.save_alert(replace(first, status="resolved", status_changed=T0))
        clock.now = T0 + timedelta(hours=3)
        assert await self._timer_sees(store, clock) == []
        assert not tables.rows("tenants")
        await store.save_alert(replace(resolved, status="open", status_changed=clock.now))
        assert await self._timer_sees(store, clock) == ["k1"]


class TestFoundByItsId:
    async def test_an_alert_the_timer_dropped_from_the_open_index_is_still_found_by_its_id(self):
        """An open alert is found through its open-index row, which carries its id; the timer
        writes the id index row when it drops that row, so a resolved alert stays findable."""
        from shared.domain.retention import STALE_INDEX_GRACE

        tables, clock = MemoryTables(), Clock()
        store = TableStateStore(tables, clock=clock)
        await store.save_alert(alert("k1", "open", T0))
        assert not tables.rows("alertids")  # a new open alert costs no id row
        assert [a.key for a in await store.find_alerts(TENANT, "ALRT-k1")] == ["k1"]
        await store.save_alert(replace(await store.get_alert(TENANT, "k1"), status="resolved", status_changed=T0))
        later = T0 + STALE_INDEX_GRACE + timedelta(days=1)
        clock.now = later
        await store.list_open_alerts(TENANT, prune_before=later - STALE_INDEX_GRACE)
        assert [row for _, row in tables.rows("alerts")] == ["alert|k1"]
        assert [a.key for a in await store.find_alerts(TENANT, "alrt-K1")] == ["k1"]

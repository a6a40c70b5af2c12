"""One contract, two stores: the in-memory fake and Table Storage on Azurite."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.adapters.state_store import AzureTables, MemoryTables, TableStateStore
from shared.domain.model import AlertState, Delivery, RejectedEvent
from shared.ports import ConcurrencyConflict
from tests.support.fakes import conversation

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.azurite)])
async def store(request, table_prefix):
    if request.param == "memory":
        s = TableStateStore(MemoryTables())
    else:
        azurite = request.getfixturevalue("azurite")
        s = TableStateStore(AzureTables(connection_string=azurite.connection_string, prefix=table_prefix))
    yield s
    await s.close()


def alert(tenant="tenant-a", key="k1", **changes) -> AlertState:
    base = AlertState(
        tenant_id=tenant, key=key, alert_id="ALRT-1", source="grafana", event_source="https://alerts.example.com",
        title="High CPU", status="open", severity="high", labels={"host": "web-03", "team": "sre"},
        responders=("oncall@contoso.com",), version=1_700_000_000_123_456, created=NOW, updated=NOW, status_changed=NOW,
    )
    return replace(base, **changes)


class TestConversations:
    async def test_a_saved_conversation_reads_back_with_its_reference(self, store):
        record = conversation(conversation_id="19:abc/def#x?y@thread.tacv2")
        await store.save_conversation(record)
        again = await store.get_conversation("tenant-a", record.conversation_id)
        assert again.reference == record.reference
        assert again.conversation_id == record.conversation_id

    async def test_saving_twice_refreshes_instead_of_duplicating(self, store):
        await store.save_conversation(conversation())
        await store.save_conversation(replace(conversation(), name="Renamed"))
        listed = await store.list_conversations("tenant-a")
        assert [c.name for c in listed] == ["Renamed"]

    async def test_conversations_are_listed_per_tenant(self, store):
        await store.save_conversation(conversation("tenant-a", "a1"))
        await store.save_conversation(conversation("tenant-b", "b1"))
        assert [c.conversation_id for c in await store.list_conversations("tenant-b")] == ["b1"]
        assert len(await store.list_conversations()) == 2

    async def test_a_removed_conversation_is_gone(self, store):
        await store.save_conversation(conversation())
        await store.remove_conversation("tenant-a", conversation().conversation_id)
        assert await store.get_conversation("tenant-a", conversation().conversation_id) is None


class TestAlerts:
    async def test_an_alert_round_trips_every_field(self, store):
        saved = await store.save_alert(alert())
        assert saved.etag
        again = await store.get_alert("tenant-a", "k1")
        assert replace(again, etag=None) == alert()

    async def test_creating_an_alert_that_exists_is_a_conflict(self, store):
        await store.save_alert(alert())
        with pytest.raises(ConcurrencyConflict):
            await store.save_alert(alert())

    async def test_a_write_with_a_stale_etag_is_refused(self, store):
        first = await store.save_alert(alert())
        await store.save_alert(replace(first, status="acknowledged"))
        with pytest.raises(ConcurrencyConflict):
            await store.save_alert(replace(first, status="resolved"))
        assert (await store.get_alert("tenant-a", "k1")).status == "acknowledged"

    async def test_of_two_racing_writers_exactly_one_wins(self, store):
        first = await store.save_alert(alert())
        results = await asyncio.gather(
            store.save_alert(replace(first, status="acknowledged")),
            store.save_alert(replace(first, status="resolved")),
            return_exceptions=True,
        )
        assert sum(isinstance(r, ConcurrencyConflict) for r in results) == 1

    async def test_alerts_are_filtered_by_status_and_tenant(self, store):
        await store.save_alert(alert(key="k1"))
        await store.save_alert(alert(key="k2", status="resolved"))
        await store.save_alert(alert(tenant="tenant-b", key="k3"))
        assert {a.key for a in await store.list_alerts(statuses=("open",))} == {"k1", "k3"}
        assert {a.key for a in await store.list_alerts("tenant-a")} == {"k1", "k2"}

    async def test_the_other_tenants_alert_is_invisible(self, store):
        await store.save_alert(alert(tenant="tenant-b"))
        assert await store.get_alert("tenant-a", "k1") is None


class TestDeliveries:
    async def test_a_claim_can_be_taken_once(self, store):
        claim = Delivery("tenant-a", "k1", "19:c@thread", claimed_at=NOW)
        await store.save_delivery(claim)
        with pytest.raises(ConcurrencyConflict):
            await store.save_delivery(claim)

    async def test_a_posted_delivery_records_its_activity_and_version(self, store):
        claim = await store.save_delivery(Delivery("tenant-a", "k1", "19:c@thread", claimed_at=NOW))
        await store.save_delivery(replace(claim, activity_id="1700000000001", rendered_version=3, status="posted", last_reminder=NOW + timedelta(minutes=1)))
        got = await store.get_delivery("tenant-a", "k1", "19:c@thread")
        assert (got.activity_id, got.rendered_version, got.status, got.last_reminder) == ("1700000000001", 3, "posted", NOW + timedelta(minutes=1))
        assert [d.conversation_id for d in await store.list_deliveries("tenant-a", "k1")] == ["19:c@thread"]


class TestEventsAndRejections:
    async def test_an_event_is_processed_once_marked(self, store):
        assert not await store.was_processed("ab" * 32)
        await store.mark_processed("ab" * 32, "evt-1")
        assert await store.was_processed("ab" * 32)

    async def test_rejected_events_are_kept_newest_first_with_their_reason(self, store):
        for minute, message_id in ((1, "m-old"), (2, "m-new")):
            await store.record_rejected(RejectedEvent(message_id, "type: is required", "type", None, '{"id": "x"}', NOW + timedelta(minutes=minute)))
        rejected = await store.list_rejected()
        assert [r.message_id for r in rejected] == ["m-new", "m-old"]
        assert rejected[0].reason == "type: is required" and rejected[0].field == "type"

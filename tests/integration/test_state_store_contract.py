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
        full = alert(first_event="e1", last_event="e2", channel={"status": "created", "id": "19:c"}, revision=4)
        saved = await store.save_alert(full)
        assert saved.etag
        again = await store.get_alert("tenant-a", "k1")
        assert replace(again, etag=None) == full

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


def workflow(wid="w1", tenant="tenant-a", **fields):
    from shared.domain.workflows import parse_workflow

    body = {"name": wid, "trigger": "new_or_updated", "recipients": [{"kind": "channel", "teamId": "t", "channelId": "19:c@thread.tacv2"}],
            "fallbackRecipients": [{"kind": "person", "user": "a@contoso.com"}], **fields}
    return parse_workflow(body, tenant, wid)


class TestWorkflows:
    async def test_a_workflow_round_trips_with_its_revision(self, store):
        saved = await store.save_workflow(replace(workflow(comment="hi", match={"minSeverity": "high"}), revision=3, updated=NOW, updated_by="grace"))
        again = await store.get_workflow("tenant-a", "w1")
        assert again.to_json() == saved.to_json() and (again.revision, again.updated, again.updated_by) == (3, NOW, "grace")

    async def test_a_stale_workflow_write_is_refused(self, store):
        first = await store.save_workflow(workflow())
        await store.save_workflow(replace(first, comment="one"))
        with pytest.raises(ConcurrencyConflict):
            await store.save_workflow(replace(first, comment="two"))

    async def test_workflows_are_listed_per_tenant_and_deleted(self, store):
        await store.save_workflow(workflow("a"))
        await store.save_workflow(workflow("b", tenant="tenant-b"))
        assert [w.id for w in await store.list_workflows("tenant-a")] == ["a"]
        assert sorted(w.id for w in await store.list_all_workflows()) == ["a", "b"]
        await store.delete_workflow("tenant-a", "a")
        assert await store.list_workflows("tenant-a") == []


class TestRecipientsAndUndeliverable:
    async def test_a_resolved_recipient_and_a_failure_with_its_expiry(self, store):
        await store.save_recipient("tenant-a", "person:a@contoso.com", "19:chat@unq.gbl.spaces")
        await store.save_recipient("tenant-a", "person:ghost@contoso.com", None, "not found", NOW)
        assert (await store.get_recipient("tenant-a", "person:a@contoso.com"))["conversationId"] == "19:chat@unq.gbl.spaces"
        assert await store.get_recipient("tenant-a", "person:ghost@contoso.com") == {"conversationId": None, "failure": "not found", "until": NOW}
        assert await store.get_recipient("tenant-b", "person:a@contoso.com") is None

    async def test_a_recipient_claim_holds_until_it_expires(self, store):
        hold = timedelta(minutes=2)
        assert await store.claim_recipient("tenant-a", "group:x", NOW, hold)
        assert not await store.claim_recipient("tenant-a", "group:x", NOW + timedelta(minutes=1), hold)
        assert await store.claim_recipient("tenant-a", "group:x", NOW + timedelta(minutes=3), hold)

    async def test_undeliverable_alerts_are_listed_newest_first_per_tenant(self, store):
        from shared.domain.model import Undeliverable

        await store.record_undeliverable(Undeliverable("tenant-a", "k1", "ALRT-1", "ghost", "not found", "no fallback", NOW))
        await store.record_undeliverable(Undeliverable("tenant-a", "k2", "ALRT-2", "ghost", "not found", "no fallback", NOW + timedelta(minutes=1)))
        await store.record_undeliverable(Undeliverable("tenant-b", "k3", "ALRT-3", "ghost", "not found", "no fallback", NOW))
        assert [u.alert_id for u in await store.list_undeliverable("tenant-a")] == ["ALRT-2", "ALRT-1"]

    async def test_a_delivery_keeps_who_it_is_for_and_why(self, store):
        saved = await store.save_delivery(Delivery("tenant-a", "k1", "c1", recipient="Ops", reason="workflow Prod", context={"comments": ["hi"], "workflows": ["Prod"]}))
        again = await store.get_delivery("tenant-a", "k1", "c1")
        assert (again.recipient, again.reason, again.context) == ("Ops", "workflow Prod", {"comments": ["hi"], "workflows": ["Prod"]})
        await store.delete_delivery("tenant-a", "k1", "c1")
        assert await store.get_delivery("tenant-a", "k1", "c1") is None and saved.etag


class TestSummaryMembers:
    async def test_members_are_written_in_batches_and_read_back_per_conversation(self, store):
        members = [{"alertKey": f"k{i:04d}", "severity": "high", "status": "open", "revision": 1} for i in range(250)]
        await store.save_summary_members("tenant-a", "19:c@thread.tacv2", members)
        await store.save_summary_members("tenant-a", "19:c@thread.tacv2", [{**members[7], "status": "resolved", "revision": 3}])
        assert await store.get_summary_member("tenant-a", "19:c@thread.tacv2", "k0007") == {"alertKey": "k0007", "severity": "high", "status": "resolved", "revision": 3}
        assert await store.get_summary_member("tenant-a", "19:c@thread.tacv2", "k0249") is not None
        assert await store.get_summary_member("tenant-a", "19:other@thread.tacv2", "k0007") is None

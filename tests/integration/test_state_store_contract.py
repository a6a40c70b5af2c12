"""One contract, two stores: the in-memory fake and Table Storage on Azurite."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.state_store import AzureTables, MemoryTables, TableStateStore
from shared.domain import retention
from shared.domain.connections import PendingFlow
from shared.domain.model import ActionRecord, AlertState, Delivery, RejectedEvent, Undeliverable
from shared.ports import ConcurrencyConflict
from tests.support.fakes import Clock, conversation

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.azurite)])
async def store(request, table_prefix, clock):
    if request.param == "memory":
        s = TableStateStore(MemoryTables(), clock=clock)
    else:
        azurite = request.getfixturevalue("azurite")
        s = TableStateStore(AzureTables(connection_string=azurite.connection_string, prefix=table_prefix), clock=clock)
    yield s
    await s.close()


def alert(tenant="aaaaaaaa-0000-4000-8000-00000000000a", key="k1", **changes) -> AlertState:
    base = AlertState(
        tenant_id=tenant,
        key=key,
        alert_id="ALRT-1",
        source="grafana",
        event_source="https://alerts.example.com",
        title="High CPU",
        status="open",
        severity="high",
        labels={"host": "web-03", "team": "sre"},
        responders=("oncall@contoso.com",),
        version=1_700_000_000_123_456,
        created=NOW,
        updated=NOW,
        status_changed=NOW,
    )
    return replace(base, **changes)


class TestConversations:
    async def test_a_saved_conversation_reads_back_with_its_reference(self, store):
        record = conversation(conversation_id="19:abc/def#x?y@thread.tacv2")
        await store.save_conversation(record)
        again = await store.get_conversation("aaaaaaaa-0000-4000-8000-00000000000a", record.conversation_id)
        assert again.reference == record.reference
        assert again.conversation_id == record.conversation_id

    async def test_saving_twice_refreshes_instead_of_duplicating(self, store):
        await store.save_conversation(conversation())
        await store.save_conversation(replace(conversation(), name="Renamed"))
        listed = await store.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a")
        assert [c.name for c in listed] == ["Renamed"]

    async def test_conversations_are_listed_per_tenant(self, store):
        await store.save_conversation(conversation("aaaaaaaa-0000-4000-8000-00000000000a", "a1"))
        await store.save_conversation(conversation("bbbbbbbb-0000-4000-8000-00000000000b", "b1"))
        assert [c.conversation_id for c in await store.list_conversations("bbbbbbbb-0000-4000-8000-00000000000b")] == [
            "b1"
        ]
        assert len(await store.list_conversations()) == 2

    async def test_a_removed_conversation_is_gone(self, store):
        await store.save_conversation(conversation())
        await store.remove_conversation("aaaaaaaa-0000-4000-8000-00000000000a", conversation().conversation_id)
        assert (
            await store.get_conversation("aaaaaaaa-0000-4000-8000-00000000000a", conversation().conversation_id) is None
        )


class TestAlerts:
    async def test_an_alert_round_trips_every_field(self, store):
        full = alert(first_event="e1", last_event="e2", channel={"status": "created", "id": "19:c"}, revision=4)
        saved = await store.save_alert(full)
        assert saved.etag
        again = await store.get_alert("aaaaaaaa-0000-4000-8000-00000000000a", "k1")
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
        assert (await store.get_alert("aaaaaaaa-0000-4000-8000-00000000000a", "k1")).status == "acknowledged"

    async def test_of_two_racing_writers_exactly_one_wins(self, store):
        first = await store.save_alert(alert())
        results = await asyncio.gather(
            store.save_alert(replace(first, status="acknowledged")),
            store.save_alert(replace(first, status="resolved")),
            return_exceptions=True,
        )
        assert sum(isinstance(r, ConcurrencyConflict) for r in results) == 1

    async def test_open_alerts_are_listed_per_tenant_and_across_tenants(self, store):
        await store.save_alert(alert(key="k1"))
        await store.save_alert(alert(key="k2", status="resolved"))
        await store.save_alert(alert(tenant="bbbbbbbb-0000-4000-8000-00000000000b", key="k3", status="acknowledged"))
        later = await store.save_alert(alert(key="k4"))
        await store.save_alert(replace(later, status="resolved"))
        assert {a.key for a in await store.list_open_alerts()} == {"k1", "k3"}
        assert {a.key for a in await store.list_open_alerts("aaaaaaaa-0000-4000-8000-00000000000a")} == {"k1"}

    async def test_a_reopened_alert_is_open_again_after_its_index_row_was_pruned(self, store, clock):
        first = await store.save_alert(alert(key="k1"))
        resolved = await store.save_alert(replace(first, status="resolved", status_changed=NOW))
        clock.now = NOW + timedelta(hours=1)
        assert await store.list_open_alerts(prune_before=clock.now - timedelta(minutes=15)) == []
        assert await store.list_open_alerts(prune_before=clock.now - timedelta(minutes=15)) == []  # the row is gone
        await store.save_alert(replace(resolved, status="open", status_changed=clock.now))
        assert [a.key for a in await store.list_open_alerts("aaaaaaaa-0000-4000-8000-00000000000a")] == ["k1"]

    async def test_a_reopening_refused_for_a_stale_etag_writes_no_index_row(self, store, clock):
        """The alert and its open-index row are one transaction: the refused write leaves the
        alert resolved and out of the open alerts, once its old row is pruned."""
        first = await store.save_alert(alert(key="k1"))
        resolved = await store.save_alert(replace(first, status="resolved", status_changed=NOW))
        clock.now = NOW + timedelta(hours=1)
        await store.list_open_alerts(prune_before=clock.now - timedelta(minutes=15))
        await store.save_alert(replace(resolved, title="Renamed"))  # its ETag moves on
        with pytest.raises(ConcurrencyConflict):
            await store.save_alert(replace(resolved, status="open", status_changed=clock.now))
        assert await store.list_recent_alerts("aaaaaaaa-0000-4000-8000-00000000000a") == []  # no index row
        assert [a.title for a in await store.find_alerts("aaaaaaaa-0000-4000-8000-00000000000a", "ALRT-1")] == [
            "Renamed"
        ]

    async def test_pruning_keeps_the_row_of_an_alert_resolved_or_indexed_recently(self, store, clock):
        first = await store.save_alert(alert(key="k1"))
        await store.save_alert(replace(first, status="resolved", status_changed=NOW))
        clock.now = NOW + timedelta(minutes=5)
        await store.list_open_alerts(prune_before=clock.now - timedelta(minutes=15))
        # Reopened now: the index row must still be there when the write lands.
        current = await store.get_alert("aaaaaaaa-0000-4000-8000-00000000000a", "k1")
        await store.save_alert(replace(current, status="open", status_changed=clock.now))
        assert [a.key for a in await store.list_open_alerts()] == ["k1"]

    async def test_an_alert_is_found_by_its_id_whatever_its_status_and_case(self, store):
        await store.save_alert(alert(key="k1", alert_id="ALRT-7"))
        await store.save_alert(alert(key="k2", alert_id="alrt-7", source="other", status="resolved"))
        await store.save_alert(alert(key="k3", alert_id="ALRT-8"))
        await store.save_alert(alert(tenant="bbbbbbbb-0000-4000-8000-00000000000b", key="k4", alert_id="ALRT-7"))
        assert {a.key for a in await store.find_alerts("aaaaaaaa-0000-4000-8000-00000000000a", "alrt-7")} == {
            "k1",
            "k2",
        }
        assert await store.find_alerts("aaaaaaaa-0000-4000-8000-00000000000a", "ALRT-9") == []

    async def test_the_other_tenants_alert_is_invisible(self, store):
        await store.save_alert(alert(tenant="bbbbbbbb-0000-4000-8000-00000000000b"))
        assert await store.get_alert("aaaaaaaa-0000-4000-8000-00000000000a", "k1") is None


class TestDeliveries:
    async def test_a_card_and_its_conversations_window_are_written_together_or_not_at_all(self, store):
        """One transaction (the connector's own $batch codec on Azurite): the ETags it answers
        are the rows' own, and a failed condition names its write and leaves both rows as they were."""
        tenant, conversation_id = "aaaaaaaa-0000-4000-8000-00000000000a", "19:o'brien/#x?y@thread.tacv2"
        claim = Delivery(tenant, "k1", conversation_id, claimed_at=NOW, context={"note": "it's late"})
        saved, window_etag = await store.save_delivery_paced(claim, '{"recent":[1.0]}', {"seq": 1}, None)
        stored = await store.get_delivery(tenant, "k1", conversation_id)
        assert stored is not None and stored.etag == saved.etag and stored.context == {"note": "it's late"}
        window, summary, etag = await store.get_pacing(tenant, conversation_id)
        assert (window, summary, etag) == ('{"recent":[1.0]}', {"seq": 1}, window_etag)
        await store.save_pacing(tenant, conversation_id, '{"recent":[2.0]}', None, etag)  # another consumer
        with pytest.raises(ConcurrencyConflict) as stale_window:
            await store.save_delivery_paced(replace(saved, status="posted"), '{"recent":[3.0]}', None, window_etag)
        assert stale_window.value.write == 0
        _, _, etag = await store.get_pacing(tenant, conversation_id)
        with pytest.raises(ConcurrencyConflict) as exists:
            await store.save_delivery_paced(claim, '{"recent":[3.0]}', None, etag)
        assert exists.value.write == 1
        assert (await store.get_pacing(tenant, conversation_id))[0] == '{"recent":[2.0]}'
        assert (await store.get_delivery(tenant, "k1", conversation_id)).status == "posting"
        posted, _ = await store.save_delivery_paced(replace(saved, status="posted"), '{"recent":[3.0]}', None, etag)
        assert [d.status for d in await store.list_deliveries(tenant, "k1")] == ["posted"]
        assert posted.etag == (await store.get_delivery(tenant, "k1", conversation_id)).etag

    async def test_a_claim_can_be_taken_once(self, store):
        claim = Delivery("aaaaaaaa-0000-4000-8000-00000000000a", "k1", "19:c@thread", claimed_at=NOW)
        await store.save_delivery(claim)
        with pytest.raises(ConcurrencyConflict):
            await store.save_delivery(claim)

    async def test_a_posted_delivery_records_its_activity_and_version(self, store):
        claim = await store.save_delivery(
            Delivery("aaaaaaaa-0000-4000-8000-00000000000a", "k1", "19:c@thread", claimed_at=NOW)
        )
        await store.save_delivery(
            replace(
                claim,
                activity_id="1700000000001",
                rendered_version=3,
                status="posted",
                last_reminder=NOW + timedelta(minutes=1),
            )
        )
        got = await store.get_delivery("aaaaaaaa-0000-4000-8000-00000000000a", "k1", "19:c@thread")
        assert (got.activity_id, got.rendered_version, got.status, got.last_reminder) == (
            "1700000000001",
            3,
            "posted",
            NOW + timedelta(minutes=1),
        )
        assert [
            d.conversation_id for d in await store.list_deliveries("aaaaaaaa-0000-4000-8000-00000000000a", "k1")
        ] == ["19:c@thread"]


class TestEventsAndRejections:
    async def test_rejected_events_of_several_days_are_listed_newest_first_up_to_the_limit(self, store):
        for day in range(3):
            for minute in range(3):
                at = NOW + timedelta(days=day, minutes=minute)
                await store.record_rejected(RejectedEvent(f"m-{day}-{minute}", "bad", "type", None, "{}", at))
        listed = await store.list_rejected(limit=4)
        assert [r.message_id for r in listed] == ["m-2-2", "m-2-1", "m-2-0", "m-1-2"]

    async def test_an_event_is_processed_once_marked(self, store):
        assert not await store.was_processed("ab" * 32)
        await store.mark_processed("ab" * 32, "evt-1")
        assert await store.was_processed("ab" * 32)

    async def test_rejected_events_are_kept_newest_first_with_their_reason(self, store):
        for minute, message_id in ((1, "m-old"), (2, "m-new")):
            await store.record_rejected(
                RejectedEvent(
                    message_id, "type: is required", "type", None, '{"id": "x"}', NOW + timedelta(minutes=minute)
                )
            )
        rejected = await store.list_rejected()
        assert [r.message_id for r in rejected] == ["m-new", "m-old"]
        assert rejected[0].reason == "type: is required" and rejected[0].field == "type"


def workflow(wid="w1", tenant="aaaaaaaa-0000-4000-8000-00000000000a", **fields):
    from shared.domain.workflows import parse_workflow

    body = {
        "name": wid,
        "trigger": "new_or_updated",
        "recipients": [{"kind": "channel", "teamId": "t", "channelId": "19:c@thread.tacv2"}],
        "fallbackRecipients": [{"kind": "person", "user": "a@contoso.com"}],
        **fields,
    }
    return parse_workflow(body, tenant, wid)


class TestWorkflows:
    async def test_a_workflow_round_trips_with_its_revision(self, store):
        saved = await store.save_workflow(
            replace(workflow(comment="hi", match={"minSeverity": "high"}), revision=3, updated=NOW, updated_by="grace")
        )
        again = await store.get_workflow("aaaaaaaa-0000-4000-8000-00000000000a", "w1")
        assert again.to_json() == saved.to_json() and (again.revision, again.updated, again.updated_by) == (
            3,
            NOW,
            "grace",
        )

    async def test_a_stale_workflow_write_is_refused(self, store):
        first = await store.save_workflow(workflow())
        await store.save_workflow(replace(first, comment="one"))
        with pytest.raises(ConcurrencyConflict):
            await store.save_workflow(replace(first, comment="two"))

    async def test_workflows_are_listed_per_tenant_and_deleted(self, store):
        await store.save_workflow(workflow("a"))
        await store.save_workflow(workflow("b", tenant="bbbbbbbb-0000-4000-8000-00000000000b"))
        assert [w.id for w in await store.list_workflows("aaaaaaaa-0000-4000-8000-00000000000a")] == ["a"]
        assert sorted(w.id for w in await store.list_all_workflows()) == ["a", "b"]
        await store.delete_workflow("aaaaaaaa-0000-4000-8000-00000000000a", "a")
        assert await store.list_workflows("aaaaaaaa-0000-4000-8000-00000000000a") == []


class TestRecipientsAndUndeliverable:
    async def test_a_resolved_recipient_and_a_failure_with_its_expiry(self, store):
        await store.save_recipient(
            "aaaaaaaa-0000-4000-8000-00000000000a", "person:a@contoso.com", "19:chat@unq.gbl.spaces"
        )
        await store.save_recipient(
            "aaaaaaaa-0000-4000-8000-00000000000a", "person:ghost@contoso.com", None, "not found", NOW
        )
        assert (await store.get_recipient("aaaaaaaa-0000-4000-8000-00000000000a", "person:a@contoso.com"))[
            "conversationId"
        ] == "19:chat@unq.gbl.spaces"
        assert await store.get_recipient("aaaaaaaa-0000-4000-8000-00000000000a", "person:ghost@contoso.com") == {
            "conversationId": None,
            "failure": "not found",
            "until": NOW,
        }
        assert await store.get_recipient("bbbbbbbb-0000-4000-8000-00000000000b", "person:a@contoso.com") is None

    async def test_a_recipient_claim_holds_until_it_expires(self, store):
        hold = timedelta(minutes=2)
        assert await store.claim_recipient("aaaaaaaa-0000-4000-8000-00000000000a", "group:x", NOW, hold)
        assert not await store.claim_recipient(
            "aaaaaaaa-0000-4000-8000-00000000000a", "group:x", NOW + timedelta(minutes=1), hold
        )
        assert await store.claim_recipient(
            "aaaaaaaa-0000-4000-8000-00000000000a", "group:x", NOW + timedelta(minutes=3), hold
        )

    async def test_undeliverable_alerts_are_listed_newest_first_per_tenant(self, store):
        from shared.domain.model import Undeliverable

        await store.record_undeliverable(
            Undeliverable(
                "aaaaaaaa-0000-4000-8000-00000000000a", "k1", "ALRT-1", "ghost", "not found", "no fallback", NOW
            )
        )
        await store.record_undeliverable(
            Undeliverable(
                "aaaaaaaa-0000-4000-8000-00000000000a",
                "k2",
                "ALRT-2",
                "ghost",
                "not found",
                "no fallback",
                NOW + timedelta(minutes=1),
            )
        )
        await store.record_undeliverable(
            Undeliverable(
                "bbbbbbbb-0000-4000-8000-00000000000b", "k3", "ALRT-3", "ghost", "not found", "no fallback", NOW
            )
        )
        assert [u.alert_id for u in await store.list_undeliverable("aaaaaaaa-0000-4000-8000-00000000000a")] == [
            "ALRT-2",
            "ALRT-1",
        ]

    async def test_a_delivery_keeps_who_it_is_for_and_why(self, store):
        saved = await store.save_delivery(
            Delivery(
                "aaaaaaaa-0000-4000-8000-00000000000a",
                "k1",
                "c1",
                recipient="Ops",
                reason="workflow Prod",
                context={"comments": ["hi"], "workflows": ["Prod"]},
            )
        )
        again = await store.get_delivery("aaaaaaaa-0000-4000-8000-00000000000a", "k1", "c1")
        assert (again.recipient, again.reason, again.context) == (
            "Ops",
            "workflow Prod",
            {"comments": ["hi"], "workflows": ["Prod"]},
        )
        await store.delete_delivery("aaaaaaaa-0000-4000-8000-00000000000a", "k1", "c1")
        assert await store.get_delivery("aaaaaaaa-0000-4000-8000-00000000000a", "k1", "c1") is None and saved.etag


class TestFoldedDeliveries:
    async def test_a_folded_mark_replaces_a_put_off_claim_and_is_listed_with_the_alert(self, store):
        tenant = "aaaaaaaa-0000-4000-8000-00000000000a"
        await store.save_delivery(Delivery(tenant, "k1", "c1", status="posting"))
        await store.mark_folded([Delivery(tenant, "k1", "c1", rendered_version=2), Delivery(tenant, "k1", "c2")])
        listed = {d.conversation_id: d for d in await store.list_deliveries(tenant, "k1")}
        assert {c: d.status for c, d in listed.items()} == {"c1": "folded", "c2": "folded"}
        assert listed["c1"].activity_id is None and listed["c1"].rendered_version == 2


class TestSummaryMembers:
    async def test_members_are_written_in_batches_and_read_back_per_conversation(self, store):
        members = [{"alertKey": f"k{i:04d}", "severity": "high", "status": "open", "revision": 1} for i in range(250)]
        await store.save_summary_members("aaaaaaaa-0000-4000-8000-00000000000a", "19:c@thread.tacv2", members)
        await store.save_summary_members(
            "aaaaaaaa-0000-4000-8000-00000000000a",
            "19:c@thread.tacv2",
            [
                {
                    **members[7],
                    "status": "resolved",
                    "revision": 3,
                    "seq": 12,
                    "storm": 2,
                    "recipient": "SRE",
                    "fallback": [{"kind": "chat", "chatId": "19:oncall"}],
                }
            ],
        )
        assert await store.get_summary_member("aaaaaaaa-0000-4000-8000-00000000000a", "19:c@thread.tacv2", "k0007") == {
            "alertKey": "k0007",
            "severity": "high",
            "status": "resolved",
            "revision": 3,
            "seq": 12,
            "storm": 2,
            "recipient": "SRE",
            "fallback": [{"kind": "chat", "chatId": "19:oncall"}],
        }
        storm_two = await store.list_summary_members("aaaaaaaa-0000-4000-8000-00000000000a", "19:c@thread.tacv2", 2)
        assert [m["alertKey"] for m in storm_two] == ["k0007"]
        storm_one = await store.list_summary_members("aaaaaaaa-0000-4000-8000-00000000000a", "19:c@thread.tacv2", 1)
        assert len(storm_one) == 249
        assert (
            await store.get_summary_member("aaaaaaaa-0000-4000-8000-00000000000a", "19:c@thread.tacv2", "k0249")
            is not None
        )
        assert (
            await store.get_summary_member("aaaaaaaa-0000-4000-8000-00000000000a", "19:other@thread.tacv2", "k0007")
            is None
        )


class TestRetention:
    """Removal: what is due goes, with everything that belongs to it; what is still needed stays."""

    async def _alert_with_cards(self, store, key, **changes):
        saved = await store.save_alert(alert(key=key, alert_id=f"ALRT-{key}", **changes))
        for conversation_id in ("19:a@thread.tacv2", "19:b@thread.tacv2"):
            await store.save_delivery(
                Delivery("aaaaaaaa-0000-4000-8000-00000000000a", key, conversation_id, activity_id="1", status="posted")
            )
        return saved

    async def test_a_resolved_alert_goes_after_its_retention_with_its_cards_and_id(self, store, clock):
        first = await self._alert_with_cards(store, "gone")
        await store.save_alert(replace(first, status="resolved", status_changed=NOW))
        clock.now = NOW + timedelta(days=29)
        report = await store.remove_due()
        assert (
            report.removed == {} and await store.get_alert("aaaaaaaa-0000-4000-8000-00000000000a", "gone") is not None
        )
        clock.now = NOW + timedelta(days=30, hours=2)
        report = await store.remove_due()
        assert report.removed == {"alert": 1}, report.summary()
        assert await store.get_alert("aaaaaaaa-0000-4000-8000-00000000000a", "gone") is None
        assert await store.list_deliveries("aaaaaaaa-0000-4000-8000-00000000000a", "gone") == []
        assert await store.find_alerts("aaaaaaaa-0000-4000-8000-00000000000a", "ALRT-gone") == []
        assert (await store.remove_due()).handled == 0  # the schedule row went too

    async def test_nothing_an_open_alert_needs_is_removed(self, store, clock):
        # Resolved (its removal scheduled), then reopened: it stays with its cards and counts.
        first = await self._alert_with_cards(store, "again")
        resolved = await store.save_alert(replace(first, status="resolved", status_changed=NOW))
        await store.save_alert(replace(resolved, status="open", status_changed=NOW + timedelta(days=1)))
        await self._alert_with_cards(store, "open")
        await store.save_summary_members(
            "aaaaaaaa-0000-4000-8000-00000000000a",
            "19:a@thread.tacv2",
            [{"alertKey": k, "severity": "high", "status": "open", "revision": 1} for k in ("again", "open")],
        )
        clock.now = NOW + timedelta(days=400)
        report = await store.remove_due()
        assert report.removed == {}, report.summary()
        for key in ("again", "open"):
            assert (await store.get_alert("aaaaaaaa-0000-4000-8000-00000000000a", key)).status == "open"
            assert len(await store.list_deliveries("aaaaaaaa-0000-4000-8000-00000000000a", key)) == 2
            assert (
                await store.get_summary_member("aaaaaaaa-0000-4000-8000-00000000000a", "19:a@thread.tacv2", key)
                is not None
            )
            assert [a.key for a in await store.find_alerts("aaaaaaaa-0000-4000-8000-00000000000a", f"ALRT-{key}")] == [
                key
            ]
        assert {a.key for a in await store.list_open_alerts(prune_before=clock.now)} == {"again", "open"}

    async def test_a_summary_count_goes_with_its_alert(self, store, clock):
        first = await store.save_alert(alert(key="k1"))
        await store.save_summary_members(
            "aaaaaaaa-0000-4000-8000-00000000000a",
            "19:a@thread.tacv2",
            [{"alertKey": "k1", "severity": "high", "status": "open", "revision": 1}],
        )
        clock.now = NOW + timedelta(days=31)
        await store.remove_due()
        assert (
            await store.get_summary_member("aaaaaaaa-0000-4000-8000-00000000000a", "19:a@thread.tacv2", "k1")
            is not None
        )  # still open
        await store.save_alert(replace(first, status="resolved", status_changed=clock.now))
        clock.now += timedelta(days=61)
        report = await store.remove_due()
        assert report.removed == {"alert": 1, "members": 1}, report.summary()
        assert await store.get_summary_member("aaaaaaaa-0000-4000-8000-00000000000a", "19:a@thread.tacv2", "k1") is None

    async def test_a_conversations_members_are_swept_page_by_page_and_the_open_ones_stay(self, store, clock):
        keys = [f"{i:040x}" for i in range(230)]
        for i, key in enumerate(keys):
            open_now = i % 50 == 0
            await store.save_alert(alert(key=key, status="open" if open_now else "resolved", status_changed=NOW))
        await store.save_summary_members(
            "aaaaaaaa-0000-4000-8000-00000000000a",
            "19:a@thread.tacv2",
            [{"alertKey": k, "severity": "high", "status": "open", "revision": 1} for k in keys],
        )
        for hours in (31 * 24, 31 * 24 + 1, 31 * 24 + 2, 31 * 24 + 3):
            clock.now = NOW + timedelta(hours=hours)
            await store.remove_due()
        left = [
            k
            for k in keys
            if await store.get_summary_member("aaaaaaaa-0000-4000-8000-00000000000a", "19:a@thread.tacv2", k)
            is not None
        ]
        assert left == [k for i, k in enumerate(keys) if i % 50 == 0]

    async def test_an_alert_channel_record_goes_with_its_alert(self, store, clock):
        first = await store.save_alert(
            alert(key="k1", channel={"status": "created", "id": "19:alert-k1@thread.tacv2", "name": "HIGH ALRT-1"})
        )
        await store.save_conversation(replace(conversation(conversation_id="19:alert-k1@thread.tacv2"), alert_key="k1"))
        await store.save_conversation(conversation())
        await store.save_alert(replace(first, status="resolved", status_changed=NOW))
        clock.now = NOW + timedelta(days=31)
        await store.remove_due()
        assert [c.conversation_id for c in await store.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a")] == [
            "19:general@thread.tacv2"
        ]

    async def test_a_pending_action_is_never_removed_and_a_published_one_is(self, store, clock):
        pending = await store.save_action(
            ActionRecord("aaaaaaaa-0000-4000-8000-00000000000a", "a-pending", {"id": "a-pending"}, created=NOW)
        )
        published = await store.save_action(
            ActionRecord("aaaaaaaa-0000-4000-8000-00000000000a", "a-published", {"id": "a-published"}, created=NOW)
        )
        await store.save_action(replace(published, status="published"))
        assert [a.action_id for a in await store.list_pending_actions()] == ["a-pending"]
        clock.now = NOW + timedelta(days=45)
        report = await store.remove_due()
        assert report.removed == {"action": 1} and report.kept == {"action": 1}, report.summary()
        assert [a.action_id for a in await store.list_pending_actions()] == ["a-pending"]
        await store.save_action(replace(pending, status="published"))
        assert await store.list_pending_actions() == []
        clock.now += timedelta(days=2)
        assert (await store.remove_due()).removed == {"action": 1}

    async def test_operator_records_processed_keys_digests_and_flows_expire(self, store, clock):
        await store.mark_processed("cd" * 32, "evt-1")
        await store.record_rejected(RejectedEvent("m-1", "bad", "type", None, "{}", NOW))
        await store.record_undeliverable(
            Undeliverable(
                "aaaaaaaa-0000-4000-8000-00000000000a", "k1", "ALRT-1", "person:x", "not found", "no fallback", NOW
            )
        )
        await store.claim(
            Delivery("aaaaaaaa-0000-4000-8000-00000000000a", "digest:w1:42", "19:a@thread.tacv2", claimed_at=NOW),
            retention.DIGEST_CLAIM,
        )
        await store.claim(
            Delivery("aaaaaaaa-0000-4000-8000-00000000000a", "k1:send:evt-9", "19:a@thread.tacv2", claimed_at=NOW),
            retention.SEND_CLAIM,
        )
        await store.save_pending_flow(PendingFlow("flow-1", "bot", None, "", created=NOW))
        clock.now = NOW + timedelta(days=7)
        assert await store.was_processed("cd" * 32) and await store.list_rejected()
        report = await store.remove_due()
        assert report.removed == {"flow": 1}, report.summary()
        clock.now = NOW + timedelta(days=60)
        report = await store.remove_due()
        assert report.removed == {"event": 1, "rejected": 1, "undeliverable": 1, "delivery": 2}, report.summary()
        assert not await store.was_processed("cd" * 32)
        assert (
            await store.list_rejected() == []
            and await store.list_undeliverable("aaaaaaaa-0000-4000-8000-00000000000a") == []
        )
        assert (
            await store.get_delivery("aaaaaaaa-0000-4000-8000-00000000000a", "digest:w1:42", "19:a@thread.tacv2")
            is None
        )
        assert await store.take_pending_flow("flow-1") is None

    async def test_a_large_day_of_rejected_events_is_removed_page_by_page(self, store, clock):
        for i in range(250):
            await store.record_rejected(RejectedEvent(f"m-{i}", "bad", "type", None, "{}", NOW + timedelta(seconds=i)))
        clock.now = NOW + timedelta(days=20)
        await store.remove_due()
        assert await store.list_rejected() == []

    async def test_each_run_removes_at_most_its_limit_and_the_next_goes_on(self, store, clock):
        for i in range(5):
            saved = await store.save_alert(alert(key=f"k{i}", status="resolved", status_changed=NOW))
            assert saved.status == "resolved"
        clock.now = NOW + timedelta(days=31)
        first = await store.remove_due(max_removals=3)
        assert first.handled == 3 and first.more and "more is due" in first.summary()
        second = await store.remove_due(max_removals=3)
        assert second.removed == {"alert": 2} and not second.more
        assert [await store.get_alert("aaaaaaaa-0000-4000-8000-00000000000a", f"k{i}") for i in range(5)] == [None] * 5

"""process_message with the in-memory store and a recording messenger."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.state_store import memory_store
from shared.ports import DeliveryError
from shared.services.delivery import CLAIM_TIMEOUT
from tests.support.cards import status_of
from tests.support.fakes import Clock, RecordingMessenger, conversation, delivering, process_and_deliver, remind

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def event(type_="alert.created", version=1, event_id=None, title="High CPU on web-03", **data) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id or f"evt-{type_}-{version}",
            "source": "https://alerts.example.com",
            "type": type_,
            "subject": "ALRT-1",
            "tenantid": data.pop("tenantid", "aaaaaaaa-0000-4000-8000-00000000000a"),
            "data": {
                "id": "ALRT-1",
                "title": title,
                "severity": "high",
                "version": version,
                "labels": {"host": "web-03"},
                **data,
            },
        }
    )


@pytest.fixture
async def world():
    store = memory_store()
    await store.save_conversation(conversation())
    messenger = RecordingMessenger()
    clock = Clock()

    ctx = delivering(store, messenger, clock=clock)

    async def send(body, message_id="m-1"):
        return await process_and_deliver(body, message_id, ctx)

    return store, messenger, clock, send


class TestNewAlerts:
    async def test_a_created_alert_posts_one_card(self, world):
        _store, messenger, _, send = world
        [outcome] = await send(event())
        assert outcome.result == "processed" and outcome.posted == ["19:general@thread.tacv2"]
        [card] = messenger.cards_in("19:general@thread.tacv2")
        assert status_of(card.card) == "Open"

    async def test_an_alert_for_another_tenant_does_not_reach_this_one(self, world):
        store, messenger, _, send = world
        await store.save_conversation(conversation("bbbbbbbb-0000-4000-8000-00000000000b", "19:other@thread.tacv2"))
        await send(event(tenantid="bbbbbbbb-0000-4000-8000-00000000000b"))
        assert messenger.cards_in("19:general@thread.tacv2") == []
        assert len(messenger.cards_in("19:other@thread.tacv2")) == 1


class TestChangesUpdateInPlace:
    async def test_resolving_updates_the_same_card(self, world):
        _, messenger, _, send = world
        await send(event())
        await send(event("alert.resolved", 2))
        [card] = messenger.cards_in("19:general@thread.tacv2")
        assert status_of(card.card) == "Resolved" and len(card.versions) == 2
        assert [c for c, _ in messenger.calls] == ["post", "update"]

    async def test_a_resolved_card_offers_only_reopen(self, world):
        _, messenger, _, send = world
        await send(event())
        await send(event("alert.resolved", 2))
        [card] = messenger.cards_in("19:general@thread.tacv2")
        assert [a.get("verb") for a in card.card["actions"] if a["type"] == "Action.Execute"] == ["reopen"]


class TestAtLeastOnceDelivery:
    async def test_the_same_event_three_times_posts_once(self, world):
        _, messenger, _, send = world
        for _ in range(3):
            await send(event())
        assert messenger.calls == [("post", "19:general@thread.tacv2")]

    async def test_a_transient_failure_reschedules_the_job_and_it_posts_once(self, world):
        _, messenger, clock, send = world
        messenger.fail_next.append(DeliveryError("Teams answered 503", status=503))
        await send(event())
        assert [c for c, _ in messenger.calls] == ["post", "post"] and clock.now > T0  # a scheduled retry, later
        assert len(messenger.cards_in("19:general@thread.tacv2")) == 1

    async def test_a_claim_by_a_consumer_that_died_mid_post_is_taken_over_after_it_times_out(self, world):
        store, messenger, clock, send = world
        from shared.domain.events import alert_key
        from shared.domain.model import Delivery

        await send(event())  # the alert exists; now pretend its card's post was claimed and never finished
        key = alert_key("https://alerts.example.com", "ALRT-1")
        await store.delete_delivery("aaaaaaaa-0000-4000-8000-00000000000a", key, "19:general@thread.tacv2")
        messenger.messages.clear()
        await store.save_delivery(
            Delivery("aaaaaaaa-0000-4000-8000-00000000000a", key, "19:general@thread.tacv2", claimed_at=clock.now)
        )
        await send(event("alert.updated", 2))
        assert len(messenger.cards_in("19:general@thread.tacv2")) == 1
        assert clock.now - T0 > CLAIM_TIMEOUT  # it waited out the claim (scheduled retries)


class TestOrdering:
    async def test_resolved_before_acknowledged_ends_resolved(self, world):
        store, messenger, _, send = world
        await send(event())
        await send(event("alert.resolved", 3))
        [outcome] = await send(event("alert.acknowledged", 2))
        assert outcome.result == "stale"
        [card] = messenger.cards_in("19:general@thread.tacv2")
        assert status_of(card.card) == "Resolved"
        [state] = await store.find_alerts("aaaaaaaa-0000-4000-8000-00000000000a", "ALRT-1")
        assert state.status == "resolved" and state.version == 3


class TestInvalidInput:
    async def test_invalid_json_is_rejected_with_a_reason(self, world):
        store, messenger, _, send = world
        [outcome] = await send(b"{not json", "m-bad")
        assert outcome.result == "rejected" and "not valid JSON" in outcome.detail
        [rejected] = await store.list_rejected()
        assert rejected.message_id == "m-bad" and rejected.body == "{not json"
        assert messenger.calls == []

    async def test_a_cloudevent_without_type_is_rejected_naming_type(self, world):
        store, _, _, send = world
        body = json.loads(event())
        del body["type"]
        [outcome] = await send(json.dumps(body))
        assert outcome.result == "rejected" and outcome.detail.startswith("type:")
        assert (await store.list_rejected())[0].field == "type"

    async def test_an_event_with_no_tenant_when_two_are_known_is_rejected_naming_tenantid(self, world):
        store, _, _, send = world
        await store.save_conversation(conversation("bbbbbbbb-0000-4000-8000-00000000000b", "19:other@thread.tacv2"))
        body = json.loads(event())
        del body["tenantid"]
        [outcome] = await send(json.dumps(body))
        assert outcome.result == "rejected" and "tenantid" in outcome.detail


class TestPermanentFailures:
    async def test_a_403_is_recorded_and_other_conversations_still_get_the_card(self, world):
        store, messenger, _, send = world
        await store.save_conversation(conversation(conversation_id="a:personal-chat", kind="personal"))
        messenger.fail_next.append(
            DeliveryError("Teams answered 403 (BotNotInConversationRoster)", status=403, permanent=True)
        )
        [outcome] = await send(event())
        assert len(outcome.failed) == 1 and len(outcome.posted) == 1
        deliveries = await store.list_deliveries(
            "aaaaaaaa-0000-4000-8000-00000000000a", (await store.list_open_alerts())[0].key
        )
        assert sorted(d.status for d in deliveries) == ["failed", "posted"]


class TestReminders:
    async def test_an_open_alert_gets_one_reminder_per_interval(self, world):
        store, messenger, clock, send = world
        await send(event())
        [card] = messenger.cards_in("19:general@thread.tacv2")
        for minutes in (10, 31, 40, 62):  # due at 30 and again at 60 (+ the interval)
            clock.now = T0 + timedelta(minutes=minutes)
            await remind(store, messenger, clock)
        replies = messenger.replies_to(card.activity_id)
        assert len(replies) == 2 and "31 min" in replies[0].text

    async def test_an_acknowledged_alert_gets_no_reminder(self, world):
        store, messenger, clock, send = world
        await send(event())
        await send(event("alert.acknowledged", 2))
        clock.now = T0 + timedelta(hours=2)
        report, _ = await remind(store, messenger, clock)
        assert report.reminders_queued == 0

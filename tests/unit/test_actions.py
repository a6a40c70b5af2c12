"""Acting on alerts from Teams: who may, what changes, what goes back to the source."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.adapters.state_store import memory_store
from shared.domain.channels import MAX_CHANNEL_NAME, clean_channel_name, is_valid_channel_name
from shared.domain.workflows import Match
from shared.ports import GraphError
from shared.services import actions
from shared.services.actions import ActionContext, Actor, Where
from shared.services.bot import handle_activity
from tests.support.fakes import (
    FakeDirectory,
    RecordingMessenger,
    RecordingPublisher,
    conversation,
    delivering,
    process_and_deliver,
)

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
ALICE = {
    "id": "aad-alice",
    "displayName": "Alice",
    "userPrincipalName": "alice@contoso.com",
    "mail": "alice@contoso.com",
}
BOB = {"id": "aad-bob", "displayName": "Bob", "userPrincipalName": "bob@contoso.com", "mail": "bob@contoso.com"}
TEAM = "group-1"
CHANNEL = "19:general@thread.tacv2"


def created_event(responders=("bob@contoso.com",)) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "evt-1",
            "source": "https://alerts.example.com",
            "type": "alert.created",
            "tenantid": TENANT,
            "data": {
                "id": "ALRT-7",
                "title": "Disk full on db-01",
                "severity": "critical",
                "version": 1,
                "responders": list(responders),
            },
        }
    )


@pytest.fixture
async def world():
    store = memory_store()
    await store.save_conversation(
        replace(conversation(TENANT, CHANNEL, "channel"), team_group_id=TEAM, channel_id=CHANNEL)
    )
    messenger, publisher, directory = RecordingMessenger(), RecordingPublisher(), FakeDirectory([ALICE, BOB])
    directory.members[(TEAM, CHANNEL)] = {"aad-alice"}
    actions.reset_membership_cache()
    deliver = delivering(store, messenger)
    ctx = ActionContext(
        store=store,
        messenger=messenger,
        publisher=publisher,
        directory=directory,
        channel_team_id=TEAM,
        delivering=deliver,
    )
    await process_and_deliver(created_event(), "m-1", deliver)
    [state] = await store.list_open_alerts(TENANT)
    return ctx, state


def alice(tenant=TENANT) -> Actor:
    return Actor(tenant, "aad-alice", "Alice")


def in_channel() -> Where:
    return Where(conversation=conversation(TENANT, CHANNEL, "channel"), team_group_id=TEAM, channel_id=CHANNEL)


class TestStateChanges:
    async def test_acknowledging_updates_every_copy_and_publishes_one_event(self, world):
        ctx, state = world
        result = await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        assert result.changed and result.state.status == "acknowledged"
        [(message_id, event)] = ctx.publisher.sent
        assert event["type"] == "teams.alert.acknowledged" and event["id"] == message_id
        assert event["data"]["actor"] == {
            "aadObjectId": "aad-alice",
            "name": "Alice",
            "linkedIdentity": "alice@contoso.com",
            "linkVerifiedBy": "directory",
        }
        await ctx.delivering.jobs.drain(ctx.delivering)
        [card] = ctx.messenger.cards_in(CHANNEL)
        assert len(card.versions) == 1  # the clicked card is answered in the invoke response, not written twice
        assert (await ctx.store.get_delivery(TENANT, state.key, CHANNEL)).rendered_version == result.state.revision

    async def test_a_double_click_publishes_once_and_says_it_is_done(self, world):
        ctx, state = world
        await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        second = await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        assert not second.changed and "already acknowledged" in second.message
        assert len(ctx.publisher.sent) == 1

    async def test_a_stale_card_gets_the_current_card(self, world):
        ctx, state = world
        await actions.change_state(ctx, "resolve", TENANT, state.key, alice(), in_channel())
        stale = await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        assert stale.state.status == "resolved"
        assert [a.get("verb") for a in stale.card()["actions"] if a["type"] == "Action.Execute"] == ["reopen"]

    async def test_the_source_version_is_kept_so_the_next_source_event_still_applies(self, world):
        ctx, state = world
        await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        event = json.loads(created_event())
        event.update(id="evt-2", type="alert.resolved")
        event["data"]["version"] = 2
        [outcome] = await process_and_deliver(json.dumps(event), "m-2", ctx.delivering)
        assert outcome.result == "processed"
        assert (await ctx.store.get_alert(TENANT, state.key)).status == "resolved"


class TestWhoMayAct:
    async def test_someone_from_another_tenant_is_refused(self, world):
        ctx, state = world
        result = await actions.change_state(
            ctx,
            "acknowledge",
            "bbbbbbbb-0000-4000-8000-00000000000b",
            state.key,
            alice("bbbbbbbb-0000-4000-8000-00000000000b"),
            Where(),
        )
        assert not result.changed and "another organisation" in result.message and result.state is None
        assert (await ctx.store.get_alert(TENANT, state.key)).status == "open"

    async def test_a_non_member_of_the_channel_is_refused_on_the_card(self, world):
        ctx, state = world
        bob = Actor(TENANT, "aad-bob", "Bob")
        result = await actions.change_state(ctx, "acknowledge", TENANT, state.key, bob, in_channel())
        assert not result.changed and "Only members of this channel" in result.message
        assert "Only members of this channel" in json.dumps(result.card())
        assert ctx.publisher.sent == []

    async def test_a_required_link_is_enforced(self, world):
        ctx, state = world
        ctx.require_linked_account = True
        ctx.directory.users.pop("aad-alice")
        ctx.directory.members[(TEAM, CHANNEL)] = {"aad-alice"}
        result = await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        assert not result.changed and "link" in result.message.lower()


class TestNoActionIsLost:
    async def test_a_failed_publish_is_kept_and_published_by_the_periodic_retry(self, world):
        ctx, state = world
        ctx.publisher.fail_next = 1
        await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        assert ctx.publisher.sent == [] and len(await ctx.store.list_pending_actions()) == 1
        assert await actions.publish_pending(ctx) == 1
        assert len(ctx.publisher.sent) == 1 and await ctx.store.list_pending_actions() == []


class TestAlertChannel:
    async def test_one_channel_per_alert_with_the_responders(self, world):
        ctx, state = world
        first = await actions.create_alert_channel(ctx, TENANT, state.key, alice(), in_channel())
        second = await actions.create_alert_channel(ctx, TENANT, state.key, alice(), in_channel())
        assert first.changed and not second.changed
        [channel] = ctx.directory.channels[TEAM]
        assert channel["displayName"] == "CRITICAL ALRT-7 Disk full on db-01"
        assert ctx.directory.members[(TEAM, channel["id"])] == {"aad-bob"}
        assert [e["type"] for _, e in ctx.publisher.sent] == ["teams.alert.channel_created"]

    async def test_the_card_is_posted_in_the_new_channel_and_the_original_links_to_it(self, world):
        ctx, state = world
        result = await actions.create_alert_channel(ctx, TENANT, state.key, alice(), in_channel())
        await ctx.delivering.jobs.drain(ctx.delivering)
        [channel] = ctx.directory.channels[TEAM]
        assert len(ctx.messenger.cards_in(channel["id"])) == 1
        # The clicked card links to it through the invoke response (not a second write).
        assert any(a.get("url") == channel["webUrl"] for a in result.card()["actions"])

    async def test_a_name_conflict_gets_a_suffix(self, world):
        ctx, state = world
        ctx.directory.channels[TEAM] = [{"id": "x", "displayName": "CRITICAL ALRT-7 Disk full on db-01"}]
        await actions.create_alert_channel(ctx, TENANT, state.key, alice(), in_channel())
        assert ctx.directory.channels[TEAM][-1]["displayName"] == "CRITICAL ALRT-7 Disk full on db-01 2"

    async def test_a_missing_permission_is_named_on_the_card(self, world):
        ctx, state = world
        ctx.directory.fail["create_channel"] = GraphError("forbidden", status=403, permission="Channel.Create")
        result = await actions.create_alert_channel(ctx, TENANT, state.key, alice(), in_channel())
        assert "Channel.Create" in result.message and not result.changed
        assert (await ctx.store.get_alert(TENANT, state.key)).channel is None  # the claim is released


class TestAlertMeeting:
    async def test_one_meeting_per_alert_and_its_link_in_the_thread(self, world):
        ctx, state = world
        first = await actions.create_alert_meeting(ctx, TENANT, state.key, alice(), in_channel())
        await actions.create_alert_meeting(ctx, TENANT, state.key, alice(), in_channel())
        assert first.changed and len(ctx.directory.meetings) == 1
        assert ctx.directory.meetings[0]["attendees"] == ("bob@contoso.com",)
        [card] = ctx.messenger.cards_in(CHANNEL)
        [reply] = ctx.messenger.replies_to(card.activity_id)
        assert ctx.directory.meetings[0]["joinUrl"] in reply.text


class TestCommands:
    def message(self, text: str) -> dict:
        return {
            "type": "message",
            "text": text,
            "from": {"id": "29:alice", "aadObjectId": "aad-alice", "name": "Alice"},
            "conversation": {"id": "a:alice-chat", "conversationType": "personal", "tenantId": TENANT},
            "channelData": {"tenant": {"id": TENANT}},
            "serviceUrl": "https://smba.example.invalid/teams/",
            "recipient": {"id": "28:bot"},
        }

    async def test_alerts_lists_only_what_is_shown_here_and_everything_to_a_connector_admin(self, world):
        ctx, _ = world
        # Alice's 1:1 chat shows no card of ALRT-7 (it is in a channel): her list is empty.
        reply = await handle_activity(self.message("alerts"), {}, store=ctx.store, actions=ctx)
        listing = json.dumps(reply.cards[0])
        assert "ALRT-7" not in listing and "Open alerts shown here (0)" in listing
        admin = replace(ctx, connector_admins=("aad-alice",))
        reply = await handle_activity(self.message("alerts"), {}, store=ctx.store, actions=admin)
        assert "ALRT-7" in json.dumps(reply.cards[0]) and "Open alerts (1)" in json.dumps(reply.cards[0])

    async def test_ack_by_id_acknowledges(self, world):
        ctx, state = world
        reply = await handle_activity(
            self.message("<at>Alert Connector</at> ack alrt-7"), {}, store=ctx.store, actions=ctx
        )
        assert "Acknowledged" in reply.texts[0]
        assert (await ctx.store.get_alert(TENANT, state.key)).status == "acknowledged"

    async def test_someone_who_cannot_see_the_alert_cannot_ack_it_from_a_chat(self, world):
        ctx, state = world
        bob = self.message("ack ALRT-7")
        bob["from"] = {"id": "29:bob", "aadObjectId": "aad-bob", "name": "Bob"}
        reply = await handle_activity(bob, {}, store=ctx.store, actions=ctx)
        assert "where you can see it" in reply.texts[0]
        assert (await ctx.store.get_alert(TENANT, state.key)).status == "open"

    async def test_a_connector_admin_may_act_from_anywhere(self, world):
        ctx, state = world
        ctx.connector_admins = ("aad-bob",)
        bob = self.message("ack ALRT-7")
        bob["from"] = {"id": "29:bob", "aadObjectId": "aad-bob", "name": "Bob"}
        await handle_activity(bob, {}, store=ctx.store, actions=ctx)
        assert (await ctx.store.get_alert(TENANT, state.key)).status == "acknowledged"

    async def test_link_and_whoami(self, world):
        ctx, _ = world
        await handle_activity(self.message("link alice.platform"), {}, store=ctx.store, actions=ctx)
        reply = await handle_activity(self.message("whoami"), {}, store=ctx.store, actions=ctx)
        assert "alice.platform" in reply.texts[0]

    async def test_anything_else_gets_help(self, world):
        ctx, _ = world
        reply = await handle_activity(self.message("what can you do"), {}, store=ctx.store, actions=ctx)
        assert "resolve" in json.dumps(reply.cards[0])


class TestChannelNames:
    @given(st.text(max_size=200), st.sampled_from(["", " 2", " 17"]))
    def test_a_cleaned_name_is_always_valid_and_short_enough(self, raw, suffix):
        name = clean_channel_name(raw, suffix)
        assert is_valid_channel_name(name) and len(name) <= MAX_CHANNEL_NAME
        assert name.endswith(suffix)

    def test_forbidden_characters_are_removed(self):
        assert clean_channel_name('_.CPU #1: "web/api" > 90%?') == "CPU 1 web api 90"


def test_a_conversation_is_named_plainly_in_logs_never_after_a_sender():
    from tests.support.fakes import conversation

    record = conversation("aaaaaaaa-0000-4000-8000-00000000000a", "19:x@thread.v2")
    assert replace(record, conversation_type="groupChat", name="").label == "a group chat"
    assert replace(record, conversation_type="groupChat", name="Ops").label == "the group chat Ops"
    assert replace(record, conversation_type="personal", name="Alex Wilber").label == "the personal chat of Alex Wilber"
    assert replace(record, conversation_type="channel", name="General").label == "channel General"


class TestHowAChannelIsNamed:
    def record(self, channel: dict) -> object:
        from shared.services.bot import conversation_record

        activity = {
            "conversation": {"id": "19:general@thread.tacv2", "conversationType": "channel", "tenantId": TENANT},
            "channelData": {"team": {"id": "19:general@thread.tacv2", "name": "My Team"}, "channel": channel},
            "serviceUrl": "https://smba.example.invalid/teams/",
        }
        return conversation_record(activity, {}, datetime.now(UTC))

    def test_the_general_channel_is_named_general_with_its_team_not_after_the_team(self):
        from shared.services.workflows import subscription

        general = self.record({"id": "19:general@thread.tacv2"})  # Teams sends no name for General
        assert general.name == "General (My Team)"
        assert subscription(general, Match(), "", "").name == "Subscription: General (My Team)"

    def test_another_channel_keeps_its_own_name(self):
        assert self.record({"id": "19:sre@thread.tacv2", "name": "SRE"}).name == "SRE"


class RecordingSilences:
    """A source's silences, as the action sees them: what it was asked to make and expire."""

    def __init__(self) -> None:
        self.made: list[dict] = []
        self.expired: list[str] = []

    async def create(self, matchers, starts, ends, created_by, comment) -> str:
        self.made.append(
            {
                "matchers": matchers,
                "hours": (ends - starts).total_seconds() / 3600,
                "by": created_by,
                "comment": comment,
            }
        )
        return f"silence-{len(self.made)}"

    async def expire(self, silence_id: str) -> None:
        self.expired.append(silence_id)

    async def alerts(self, labels):
        self.asked = labels
        return [{"labels": dict(labels), "status": {"state": "active"}}] if self.still_firing else []

    still_firing = True


def silenceable(ctx, state, source: str = "alertmanager/teams"):
    """The alert as Alertmanager's webhook makes it, from a source whose API is set."""
    from shared.domain.source_api import SourceApi

    silences = RecordingSilences()
    ctx.source_api = lambda tenant, name: _api(SourceApi("alertmanager", "https://am.example.com"))
    ctx.silences = lambda api: silences
    labels = {
        "alertname": "DiskFull",
        "instance": "db-01",
        "annotation.runbook_url": "https://r.example.com",
        "severity.note": "x",
    }
    return silences, replace(state, source=source, ingest_source="prod-am", labels=labels)


async def _api(api):
    return api


class TestSilencing:
    async def test_makes_a_silence_on_the_alerts_own_labels_and_says_so_on_every_copy(self, world):
        ctx, state = world
        silences, shaped = silenceable(ctx, state)
        state = await ctx.store.save_alert(shaped)
        result = await actions.silence_alert(ctx, state.key, alice(), in_channel(), 4 * 3600, "deploying a fix")
        assert result.changed and "silence-1" in result.message, result.message
        [made] = silences.made
        assert made["matchers"] == [
            {"name": "alertname", "value": "DiskFull", "isRegex": False, "isEqual": True},
            {"name": "instance", "value": "db-01", "isRegex": False, "isEqual": True},
        ]
        assert made["hours"] == 4 and made["by"] == "alice@contoso.com" and made["comment"] == "deploying a fix"
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert stored.silence["id"] == "silence-1" and stored.revision == state.revision + 1
        [(_, event)] = ctx.publisher.sent
        assert event["type"] == "teams.alert.silenced" and event["data"]["silenceId"] == "silence-1"

        expired = await actions.expire_alert_silence(ctx, state.key, alice(), in_channel())
        assert expired.changed and silences.expired == ["silence-1"]
        assert (await ctx.store.get_alert(TENANT, state.key)).silence is None
        assert [e["type"] for _, e in ctx.publisher.sent] == ["teams.alert.silenced", "teams.alert.silence_expired"]

    async def test_is_refused_for_someone_who_may_not_see_the_alert(self, world):
        ctx, state = world
        silences, shaped = silenceable(ctx, state)
        state = await ctx.store.save_alert(shaped)
        bob = Actor(TENANT, "aad-bob", "Bob")
        result = await actions.silence_alert(ctx, state.key, bob, in_channel(), 3600)
        assert not result.changed and "Only members of this channel" in result.message
        assert silences.made == [] and ctx.publisher.sent == []

    async def test_says_why_not_for_a_source_without_an_api_or_of_another_kind(self, world):
        ctx, state = world
        silences, shaped = silenceable(ctx, state, source="https://alerts.example.com")
        state = await ctx.store.save_alert(shaped)
        other = await actions.silence_alert(ctx, state.key, alice(), in_channel(), 3600)
        assert not other.changed and "Alertmanager or Grafana" in other.message
        state = await ctx.store.save_alert(replace(state, source="alertmanager/teams"))
        ctx.source_api = lambda tenant, name: _api(None)
        unset = await actions.silence_alert(ctx, state.key, alice(), in_channel(), 3600)
        assert not unset.changed and "no API set for silences" in unset.message
        assert silences.made == [] and ctx.publisher.sent == []

    async def test_an_alert_that_cleared_while_silenced_is_resolved_when_the_silence_is_expired(self, world):
        """Alertmanager sends no resolution for a silenced alert, then or later: the source is
        asked once the silence is over."""
        ctx, state = world
        silences, shaped = silenceable(ctx, state)
        state = await ctx.store.save_alert(shaped)
        await actions.silence_alert(ctx, state.key, alice(), in_channel(), 3600)
        silences.still_firing = False
        await actions.expire_alert_silence(ctx, state.key, alice(), in_channel())
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert stored.status == "resolved" and stored.silence is None
        assert silences.asked == {"alertname": "DiskFull", "instance": "db-01"}
        assert "no longer firing when its silence ended" in stored.steps[-1].via

    async def test_one_that_still_fires_stays_open(self, world):
        ctx, state = world
        silences, shaped = silenceable(ctx, state)
        state = await ctx.store.save_alert(shaped)
        await actions.silence_alert(ctx, state.key, alice(), in_channel(), 3600)
        await actions.expire_alert_silence(ctx, state.key, alice(), in_channel())
        assert (await ctx.store.get_alert(TENANT, state.key)).status == "open"
        assert silences.asked == {"alertname": "DiskFull", "instance": "db-01"}

    async def test_a_silence_that_runs_out_is_noticed_by_the_timer(self, world):
        from datetime import timedelta

        from shared.services.periodic import run_timer

        ctx, state = world
        silences, shaped = silenceable(ctx, state)
        state = await ctx.store.save_alert(shaped)
        await actions.silence_alert(ctx, state.key, alice(), in_channel(), 3600)
        silences.still_firing = False
        later = datetime.now(UTC) + timedelta(hours=2)
        ctx.clock = ctx.delivering.clock = lambda: later
        await run_timer(ctx.delivering, ctx, reminder_after_minutes=30)
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert stored.silence is None and stored.status == "resolved"
        assert silences.expired == []  # it ran out by itself: nothing to expire


class TestTheSilenceButtons:
    def test_offered_only_where_a_silence_can_be_made_and_expire_while_there_is_one(self):
        from shared import cards
        from tests.unit.test_delivery_jobs import alert

        def titles(state):
            return [a["title"] for a in cards.alert_actions(state)]

        open_alert = alert(1)
        assert "Silence" not in titles(open_alert)  # its source has no API: nothing to offer
        assert "Silence" in titles(replace(open_alert, silenceable=True))
        assert "Silence" not in titles(replace(open_alert, silenceable=True, status="resolved"))
        silenced = replace(open_alert, silenceable=True, silence={"id": "s1", "until": "2026-11-02T12:00:00+00:00"})
        assert "Expire silence" in titles(silenced) and "Silence" not in titles(silenced)

    def test_past_five_buttons_the_source_link_goes_under_the_title(self):
        from shared import cards
        from tests.unit.test_delivery_jobs import alert

        state = replace(
            alert(1),
            source="alertmanager/teams",
            silenceable=True,
            url="https://prometheus.example.com/graph?g0.expr=up+%3D%3D+0",
        )
        card = cards.alert_card(state)
        assert [a["title"] for a in card["actions"] if a.get("mode") != "secondary"] == [
            "Acknowledge",
            "Resolve",
            "Silence",
            "Add note",
        ]
        assert "Open in Prometheus" not in [a["title"] for a in card["actions"]]
        [link] = [b for b in card["body"] if b.get("id") == "source"]
        assert "[Open in Prometheus](https://prometheus.example.com/graph?g0.expr=up+%3D%3D+0)" in link["text"]
        resolved = cards.alert_card(replace(state, status="resolved"))  # room for the button again
        assert [a["title"] for a in resolved["actions"]] == ["Reopen", "Add note", "Open in Prometheus"]
        assert resolved["actions"][-1] == {
            "type": "Action.OpenUrl",
            "title": "Open in Prometheus",
            "url": state.url,
        }
        assert cards.source_button_title("grafana/ops", "https://grafana.example.com/alerting") == "Open in Grafana"


class TestRespondingFromTheCard:
    """Add note, Snooze and Assign: each on every copy of the card, refused for someone who may
    not see the alert, and sent back to the source."""

    async def test_a_note_goes_on_every_copy_into_the_thread_and_back_to_the_source(self, world):
        ctx, state = world
        result = await actions.note_alert(ctx, state.key, alice(), in_channel(), "Rolled back *4.12* on db-01")
        assert result.changed, result.message
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert [n["text"] for n in stored.notes] == ["Rolled back *4.12* on db-01"] and stored.notes[0]["by"] == "Alice"
        [(_, event)] = ctx.publisher.sent
        assert event["type"] == "teams.alert.noted" and event["data"]["note"] == "Rolled back *4.12* on db-01"
        await ctx.delivering.jobs.drain(ctx.delivering)
        [card] = ctx.messenger.cards_in(CHANNEL)
        [reply] = ctx.messenger.replies_to(card.activity_id)
        assert reply.text == "\U0001f4dd **Note** by Alice: Rolled back \\*4.12\\* on db-01"  # escaped
        line = next(b["text"] for b in result.card()["body"] if b.get("id") == "latestNote")
        assert "by Alice" in line and "Rolled back \\*4.12\\* on db-01" in line

    async def test_an_empty_or_oversized_note_is_refused_before_anything_changes(self, world):
        ctx, state = world
        empty = await actions.note_alert(ctx, state.key, alice(), in_channel(), "   ")
        huge = await actions.note_alert(ctx, state.key, alice(), in_channel(), "x" * 1001)
        assert not empty.changed and "Write the note" in empty.message
        assert not huge.changed and "at most 1000 characters" in huge.message
        assert (await ctx.store.get_alert(TENANT, state.key)).notes == () and ctx.publisher.sent == []

    async def test_a_snooze_holds_back_reminders_until_it_ends_or_the_alert_changes(self, world):
        from datetime import timedelta

        from shared.domain.alerts import needs_reminder

        ctx, state = world
        now = datetime.now(UTC)
        result = await actions.snooze_alert(ctx, state.key, alice(), in_channel(), now + timedelta(hours=1))
        assert result.changed, result.message
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert stored.snooze["by"] == "Alice"
        later = now + timedelta(minutes=45)
        assert not needs_reminder(replace(stored, status_changed=now - timedelta(hours=2)), later, 30)
        assert needs_reminder(replace(stored, status_changed=now - timedelta(hours=2)), now + timedelta(hours=2), 30)
        [(_, event)] = ctx.publisher.sent
        assert event["type"] == "teams.alert.snoozed" and event["data"]["until"] == stored.snooze["until"]
        acknowledged = await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        assert acknowledged.state.snooze is None  # a change of status ends it

    async def test_a_snooze_that_runs_out_is_taken_off_the_cards_by_the_timer(self, world):
        from datetime import timedelta

        from shared.services.periodic import run_timer

        ctx, state = world
        await actions.snooze_alert(ctx, state.key, alice(), in_channel(), datetime.now(UTC) + timedelta(hours=1))
        later = datetime.now(UTC) + timedelta(hours=2)
        ctx.clock = ctx.delivering.clock = lambda: later
        await run_timer(ctx.delivering, ctx, reminder_after_minutes=600)
        assert (await ctx.store.get_alert(TENANT, state.key)).snooze is None

    async def test_only_an_open_alert_is_snoozed_and_never_into_the_past(self, world):
        from datetime import timedelta

        ctx, state = world
        past = await actions.snooze_alert(ctx, state.key, alice(), in_channel(), datetime.now(UTC) - timedelta(1))
        assert not past.changed and "in the future" in past.message
        await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        late = await actions.snooze_alert(ctx, state.key, alice(), in_channel(), datetime.now(UTC) + timedelta(1))
        assert not late.changed and "Only an open alert" in late.message

    async def test_assigning_someone_mentions_them_in_the_thread_and_sends_them_the_card(self, world):
        ctx, state = world
        commands = ctx.commands = RecordingPublisher()
        result = await actions.assign_alert(ctx, state.key, alice(), in_channel(), "bob@contoso.com")
        assert result.changed and result.message == "Assigned to Bob by Alice."
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert (stored.assignee["id"], stored.assignee["name"], stored.assignee["by"]) == ("aad-bob", "Bob", "Alice")
        [(_, event)] = ctx.publisher.sent
        assert event["type"] == "teams.alert.assigned"
        assert event["data"]["assignee"] == {"aadObjectId": "aad-bob", "name": "Bob"}
        [(_, told)] = commands.sent
        assert told["type"] == "teams.message.send" and told["data"]["recipients"][0]["user"] == "aad-bob"
        assert told["data"]["comment"] == "Assigned to you by Alice."
        await ctx.delivering.jobs.drain(ctx.delivering)
        [card] = ctx.messenger.cards_in(CHANNEL)
        [reply] = ctx.messenger.replies_to(card.activity_id)
        assert reply.text.startswith("\U0001f464 <at>Bob</at> is assigned") and reply.mentions == [
            {"id": "aad-bob", "name": "Bob"}
        ]

    async def test_assign_to_me_needs_no_directory_and_tells_nobody_else(self, world):
        ctx, state = world
        ctx.commands, ctx.directory = RecordingPublisher(), None
        result = await actions.assign_alert(ctx, state.key, alice(), in_channel(), None)
        assert result.changed and (await ctx.store.get_alert(TENANT, state.key)).assignee["id"] == "aad-alice"
        assert ctx.commands.sent == []
        again = await actions.assign_alert(ctx, state.key, alice(), in_channel(), None)
        assert not again.changed and "already assigned to Alice" in again.message

    async def test_someone_not_in_the_directory_is_not_assigned(self, world):
        ctx, state = world
        result = await actions.assign_alert(ctx, state.key, alice(), in_channel(), "mallory@elsewhere.example")
        assert not result.changed and "not in this organisation's directory" in result.message
        assert (await ctx.store.get_alert(TENANT, state.key)).assignee is None and ctx.publisher.sent == []

    @pytest.mark.parametrize("verb", ["note", "snooze", "assign"])
    async def test_each_is_refused_for_someone_who_may_not_see_the_alert(self, world, verb):
        from datetime import timedelta

        ctx, state = world
        bob = Actor(TENANT, "aad-bob", "Bob")  # not a member of the channel that shows it
        act = {
            "note": lambda: actions.note_alert(ctx, state.key, bob, in_channel(), "hello"),
            "snooze": lambda: actions.snooze_alert(
                ctx, state.key, bob, in_channel(), datetime.now(UTC) + timedelta(hours=1)
            ),
            "assign": lambda: actions.assign_alert(ctx, state.key, bob, in_channel(), None),
        }[verb]
        result = await act()
        assert not result.changed and "Only members of this channel" in result.message
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert (stored.notes, stored.snooze, stored.assignee) == ((), None, None) and ctx.publisher.sent == []

    async def test_the_type_ahead_offers_people_of_the_persons_own_tenant(self, world):
        ctx, _ = world
        choices = await actions.search_people(ctx, alice(), "bo")
        assert choices == [{"title": "Bob (bob@contoso.com)", "value": "aad-bob"}]
        assert await actions.search_people(ctx, alice(), "b") == []  # two letters at least


class TestRespondingThroughTheBot:
    """The same through the bot: the card's forms (their inputs in the action's data), the
    type-ahead invoke, and the commands."""

    def press(self, verb: str, state, **inputs) -> dict:
        return {
            "type": "invoke",
            "name": "adaptiveCard/action",
            "from": {"id": "29:alice", "aadObjectId": "aad-alice", "name": "Alice"},
            "conversation": {"id": CHANNEL, "conversationType": "channel", "tenantId": TENANT},
            "channelData": {"tenant": {"id": TENANT}, "team": {"aadGroupId": TEAM}, "channel": {"id": CHANNEL}},
            "serviceUrl": "https://smba.example.invalid/teams/",
            "recipient": {"id": "28:bot"},
            "localTimezone": "Europe/Paris",
            "value": {
                "action": {
                    "type": "Action.Execute",
                    "verb": verb,
                    "data": {"verb": verb, "alertKey": state.key, "tenantId": TENANT, **inputs},
                }
            },
        }

    async def test_the_forms_note_snooze_until_a_local_time_and_assign(self, world):
        from datetime import time, timedelta
        from zoneinfo import ZoneInfo

        ctx, state = world
        ctx.commands = RecordingPublisher()
        paris = ZoneInfo("Europe/Paris")
        day = datetime.now(paris).date() + timedelta(days=3)
        noted = await handle_activity(self.press("note", state, noteText="on it"), {}, store=ctx.store, actions=ctx)
        assert "Note added by Alice" in json.dumps(noted.invoke_response[1])
        await handle_activity(
            self.press("snooze", state, snoozeFor="1h", snoozeDate=day.isoformat(), snoozeTime="09:30"),
            {},
            store=ctx.store,
            actions=ctx,
        )
        await handle_activity(self.press("assign", state, assignTo="aad-bob"), {}, store=ctx.store, actions=ctx)
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert stored.notes[-1]["text"] == "on it"
        # 09:30 in the presser's time zone, not the choice of an hour
        assert stored.snooze["until"] == datetime.combine(day, time(9, 30), paris).astimezone(UTC).isoformat()
        assert stored.assignee["id"] == "aad-bob"
        assert [e["type"] for _, e in ctx.publisher.sent] == [
            "teams.alert.noted",
            "teams.alert.snoozed",
            "teams.alert.assigned",
        ]

    async def test_a_form_sent_empty_says_what_is_missing(self, world):
        ctx, state = world
        for verb, answer in (("note", "Write the note"), ("assign", "press Assign to me"), ("snooze", "how long")):
            reply = await handle_activity(self.press(verb, state), {}, store=ctx.store, actions=ctx)
            assert answer in reply.invoke_response[1]["value"], verb
        assert ctx.publisher.sent == []

    async def test_the_type_ahead_is_answered_with_people(self, world):
        ctx, state = world
        search = {
            **self.press("assign", state),
            "name": "application/search",
            "value": {"queryText": "bob", "dataset": "people", "queryOptions": {"skip": 0, "top": 15}},
        }
        reply = await handle_activity(search, {}, store=ctx.store, actions=ctx)
        assert reply.invoke_response == (
            200,
            {
                "statusCode": 200,
                "type": "application/vnd.microsoft.search.searchResponse",
                "value": {"results": [{"title": "Bob (bob@contoso.com)", "value": "aad-bob"}]},
            },
        )
        other = {**search, "value": {"queryText": "bob", "dataset": "somethingelse"}}
        assert (await handle_activity(other, {}, store=ctx.store, actions=ctx)).invoke_response[1]["value"] == {
            "results": []
        }

    async def test_the_commands(self, world):
        ctx, state = world
        message = TestCommands().message
        for text, answer in (
            ("note ALRT-7 looking at it now", "Note added by Alice"),
            ("snooze ALRT-7 2h", "Snoozed by Alice"),
            ("snooze ALRT-7 until 25:99", "Choose the day and time"),
            ("snooze ALRT-7 forever", "For how long?"),
            ("assign ALRT-7 me", "Assigned to Alice by Alice"),
            ("note", "Which alert?"),
            ("note NOPE-1 hi", "No alert NOPE-1"),
        ):
            reply = await handle_activity(message(text), {}, store=ctx.store, actions=ctx)
            assert answer in reply.texts[0], (text, reply.texts)
        stored = await ctx.store.get_alert(TENANT, state.key)
        assert stored.notes[-1]["text"] == "looking at it now" and stored.assignee["id"] == "aad-alice"
        assert [e["data"]["via"] for _, e in ctx.publisher.sent] == ["command"] * 3


class TestSubscribeWithAMention:
    async def test_mention_me_puts_the_subscriber_on_the_subscriptions_cards(self, world):
        ctx, _ = world
        reply = await handle_activity(
            TestCommands().message("subscribe severity>=high mention=me mention=responders"),
            {},
            store=ctx.store,
            actions=ctx,
        )
        assert "Subscribed" in reply.texts[0] and "mention 2 people" in reply.texts[0], reply.texts
        [workflow] = await ctx.store.list_workflows(TENANT)
        assert workflow.recipients[0].mention == ("aad-alice", "responders")
        bad = await handle_activity(TestCommands().message("subscribe mention="), {}, store=ctx.store, actions=ctx)
        assert "say whom to mention" in bad.texts[0]


class TestSnoozeUntil:
    def test_a_choice_a_day_and_time_or_a_time_alone(self):
        from datetime import timedelta

        from shared.domain.alerts import snooze_until

        now = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
        assert snooze_until("4h", "", "", None, now) == now + timedelta(hours=4)
        assert snooze_until("1h", "2026-12-08", "", "America/New_York", now) == datetime(2026, 12, 8, 5, tzinfo=UTC)
        assert snooze_until("", "", "08:00", "UTC", now) == datetime(2026, 12, 8, 8, tzinfo=UTC)  # tomorrow's
        assert snooze_until("", "", "08:00", "Not/AZone", now) == datetime(2026, 12, 8, 8, tzinfo=UTC)
        assert isinstance(snooze_until("2h", "", "", None, now), str)


class TestWhatGoesBackFollowsItsSchema:
    SCHEMA = json.loads(
        (__import__("pathlib").Path(__file__).resolve().parents[2] / "schemas" / "teams-action.schema.json").read_text()
    )

    def test_its_types_are_the_verb_tables(self):
        from shared.domain.alerts import MENTIONED_TYPE, OUTBOUND_TYPES

        assert set(self.SCHEMA["properties"]["type"]["enum"]) == set(OUTBOUND_TYPES.values()) | {MENTIONED_TYPE}

    async def test_every_event_the_actions_send_is_valid(self, world):
        from datetime import timedelta

        from jsonschema import Draft202012Validator, FormatChecker

        ctx, state = world
        ctx.commands = RecordingPublisher()
        await actions.note_alert(ctx, state.key, alice(), in_channel(), "a note")
        await actions.snooze_alert(ctx, state.key, alice(), in_channel(), datetime.now(UTC) + timedelta(hours=1))
        await actions.assign_alert(ctx, state.key, alice(), in_channel(), "bob@contoso.com")
        await actions.change_state(ctx, "acknowledge", TENANT, state.key, alice(), in_channel())
        stored = await ctx.store.get_alert(TENANT, state.key)
        await actions.publish_system_event(
            ctx.store,
            ctx.publisher,
            stored,
            "teams.alert.mentioned",
            {"mentioned": [{"aadObjectId": "aad-bob", "name": "Bob"}], "notFound": [], "conversations": [CHANNEL]},
            discriminator="m",
            clock=ctx.clock,
        )
        validator = Draft202012Validator(self.SCHEMA, format_checker=FormatChecker())
        events = [event for _, event in ctx.publisher.sent]
        assert len(events) == 5
        for event in events:
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(event)]
            assert not errors, (event["type"], errors)
        broken = {**events[0], "type": "teams.alert.shouted"}
        assert list(validator.iter_errors(broken))

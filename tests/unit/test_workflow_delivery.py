"""Delivering by workflows with the in-memory store, a recording messenger and a fake Graph:
recipients, fallback, triggers, the manual send, open alerts of a new workflow, digests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.state_store import memory_store
from shared.domain.commands import existing_command
from shared.domain.connections import TenantConnection
from shared.domain.workflows import parse_workflow
from shared.ports import DeliveryError, GraphError, TransientError
from shared.services.periodic import run_digests
from shared.services.recipients import RecipientResolver
from shared.services.workflows import put_workflow
from tests.support.fakes import Clock, FakeDirectory, RecordingMessenger, conversation, delivering, process_and_deliver

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
OPS = "19:ops@thread.tacv2"
SRE = "19:sre@thread.tacv2"
ADELE = {
    "id": "u-adele",
    "displayName": "Adele Vance",
    "userPrincipalName": "adele@contoso.com",
    "mail": "adele@contoso.com",
}
BOB = {"id": "u-bob", "displayName": "Bob", "userPrincipalName": "bob@contoso.com", "mail": "bob@contoso.com"}
CAROL = {"id": "u-carol", "displayName": "Carol", "userPrincipalName": "carol@contoso.com", "mail": "carol@contoso.com"}


def channel(cid: str, name: str = "") -> dict:
    return {"kind": "channel", "teamId": "team-1", "channelId": cid, "name": name or cid}


def person(user: str) -> dict:
    return {"kind": "person", "user": user}


def event(
    type_="alert.created", version=1, alert="ALRT-1", severity="high", responders=("bob@contoso.com",), **extra
) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"evt-{alert}-{type_}-{version}",
            "source": "https://alerts.example.com",
            "type": type_,
            "subject": alert,
            "tenantid": TENANT,
            **extra,
            "data": {
                "id": alert,
                "title": f"Problem {alert}",
                "severity": severity,
                "version": version,
                "labels": {"env": "prod"},
                "responders": list(responders),
            },
        }
    )


class World:
    def __init__(self) -> None:
        self.store = memory_store()
        self.messenger = RecordingMessenger()
        self.directory = FakeDirectory([ADELE, BOB, CAROL])
        self.clock = Clock()
        self.resolver = RecipientResolver(
            self.store, self.directory, teams_app_catalog_id="catalog-app-1", bot_app_id="bot-1", clock=self.clock
        )
        self.ctx = delivering(self.store, self.messenger, resolver=self.resolver, clock=self.clock)

    async def send(self, body: str | dict, message_id: str = "m-1"):
        return await process_and_deliver(json.dumps(body) if isinstance(body, dict) else body, message_id, self.ctx)

    async def workflow(self, wid: str = "w1", **fields):
        body = {
            "name": fields.pop("name", wid),
            "trigger": fields.pop("trigger", "new_or_updated"),
            "recipients": [channel(OPS, "Ops")],
            "fallbackRecipients": [channel(SRE, "SRE")],
            **fields,
        }
        return (await put_workflow(self.store, TENANT, parse_workflow(body, TENANT, wid), clock=self.clock)).workflow

    async def connect(self) -> None:
        await self.store.save_connection(TenantConnection(TENANT, "bot", "connected"))

    def texts(self, conversation_id: str) -> list[str]:
        return [json.dumps(m.card) for m in self.messenger.cards_in(conversation_id)]


@pytest.fixture
async def world() -> World:
    w = World()
    for cid in (OPS, SRE, "19:general@thread.tacv2"):
        await w.store.save_conversation(conversation(TENANT, cid))
    return w


class TestRoutedDelivery:
    async def test_a_workflow_sends_only_to_its_recipients_with_its_comment_and_name(self, world):
        await world.workflow(name="Prod critical", comment="Call the DBA")
        [outcome] = await world.send(event())
        assert outcome.posted == [OPS]
        assert world.messenger.cards_in("19:general@thread.tacv2") == []
        [card] = world.texts(OPS)
        assert "Call the DBA" in card and "via workflow _Prod critical_" in card

    async def test_two_workflows_to_one_conversation_post_one_card_with_both_comments(self, world):
        await world.workflow("a", name="Prod", comment="first")
        await world.workflow("b", name="DB", comment="second")
        await world.send(event())
        [card] = world.texts(OPS)
        assert "first" in card and "second" in card and "_Prod_, _DB_" in card

    async def test_a_card_already_delivered_keeps_updating_when_the_workflow_no_longer_matches(self, world):
        await world.workflow(match={"minSeverity": "high"})
        await world.send(event())
        await world.send(event("alert.resolved", 2, severity="low"))
        [message] = world.messenger.cards_in(OPS)
        assert len(message.versions) == 2 and "Resolved" in json.dumps(message.card)

    async def test_the_delivery_record_says_who_and_why(self, world):
        await world.workflow(name="Prod")
        await world.send(event())
        [delivery] = list(
            await world.store.list_deliveries(TENANT, (await world.store.list_open_alerts(TENANT))[0].key)
        )
        assert delivery.recipient == "Ops" and delivery.reason.startswith("workflow Prod")


class TestTriggers:
    async def test_updated_skips_the_first_event_and_takes_the_next(self, world):
        await world.workflow(trigger="updated")
        await world.send(event())
        assert world.messenger.cards_in(OPS) == []
        await world.send(event("alert.acknowledged", 2))
        assert len(world.messenger.cards_in(OPS)) == 1

    async def test_a_new_workflow_with_existing_delivers_the_open_alerts_it_matches(self, world):
        await world.workflow("first", recipients=[channel(SRE)])  # routing on: nothing goes to Ops yet
        await world.send(event(alert="ALRT-1"))
        await world.send(event(alert="ALRT-2", severity="low"))
        await world.send(event(alert="ALRT-3"))
        await world.send(event("alert.resolved", 2, alert="ALRT-3"))
        w = await world.workflow("late", trigger="new_updated_existing", match={"minSeverity": "high"})
        [outcome] = await world.send(existing_command(TENANT, w.id, w.revision))
        assert outcome.posted == [OPS]  # ALRT-1 only: ALRT-2 is low, ALRT-3 resolved
        [again] = await world.send(existing_command(TENANT, w.id, w.revision), "m-2")
        assert again.result == "duplicate" and len(world.messenger.cards_in(OPS)) == 1

    async def test_an_existing_run_for_an_older_revision_does_nothing(self, world):
        await world.send(event())
        w = await world.workflow("late", trigger="new_updated_existing")
        await world.workflow("late", trigger="new_updated_existing", comment="changed")
        [outcome] = await world.send(existing_command(TENANT, w.id, w.revision))
        assert outcome.posted == [] and "changed again" in outcome.detail


class TestPeopleAndGroups:
    async def test_a_person_gets_a_one_to_one_chat_once_and_it_is_reused(self, world):
        await world.connect()
        await world.workflow(recipients=[person("adele@contoso.com")])
        await world.send(event(alert="ALRT-1"))
        await world.send(event(alert="ALRT-2"))
        chat = world.directory.installed_for["u-adele"]
        assert len(world.messenger.cards_in(chat)) == 2
        assert world.directory.graph_calls.count("install_app_for_user") == 1  # the second alert costs no Graph call

    async def test_responders_each_get_the_card(self, world):
        await world.connect()
        await world.workflow(recipients=[{"kind": "responders"}])
        await world.send(event(responders=("bob@contoso.com", "carol@contoso.com")))
        assert {m.conversation_id for m in world.messenger.messages.values()} == {
            world.directory.installed_for["u-bob"],
            world.directory.installed_for["u-carol"],
        }

    async def test_a_group_gets_one_group_chat_with_the_app_installed(self, world):
        await world.connect()
        await world.workflow(
            recipients=[{"kind": "group", "users": ["bob@contoso.com", "carol@contoso.com"], "name": "DB on call"}]
        )
        await world.send(event(alert="ALRT-1"))
        await world.send(event(alert="ALRT-2"))
        [chat] = world.directory.chats
        assert set(world.directory.chats[chat]) == {"u-bob", "u-carol"} and chat in world.directory.chat_installs
        assert len(world.messenger.cards_in(chat)) == 2


class TestMentions:
    async def test_a_card_mentions_the_responders_and_named_people_by_their_directory_id(self, world):
        from tests.support.fakes import RecordingPublisher

        await world.connect()
        world.ctx.outbound = RecordingPublisher()
        recipient = {**channel(OPS, "Ops"), "mention": ["responders", "adele@contoso.com", "ghost@contoso.com"]}
        await world.workflow(recipients=[recipient])
        await world.send(event(responders=("bob@contoso.com",)))
        [message] = world.messenger.cards_in(OPS)
        assert message.card["msteams"]["entities"] == [
            {"type": "mention", "text": "<at>Bob</at>", "mentioned": {"id": "u-bob", "name": "Bob"}},
            {
                "type": "mention",
                "text": "<at>Adele Vance</at>",
                "mentioned": {"id": "u-adele", "name": "Adele Vance"},
            },
        ]
        [line] = [b["text"] for b in message.card["body"] if b.get("id") == "mentions"]
        assert line.startswith("\U0001f514 <at>Bob</at>, <at>Adele Vance</at>; ghost@contoso.com (not found")
        [(_, told)] = world.ctx.outbound.sent
        assert told["type"] == "teams.alert.mentioned" and told["data"]["notFound"] == ["ghost@contoso.com"]
        assert [p["aadObjectId"] for p in told["data"]["mentioned"]] == ["u-bob", "u-adele"]
        # An update keeps the mentions on the card and tells the source nothing new.
        await world.send(event("alert.updated", 2, responders=("bob@contoso.com",)), "m-2")
        [message] = world.messenger.cards_in(OPS)
        assert len(message.versions) == 2 and message.card["msteams"]["entities"][0]["mentioned"]["id"] == "u-bob"
        assert len(world.ctx.outbound.sent) == 1

    async def test_without_a_connection_nobody_is_notified_and_the_card_says_so(self, world):
        await world.workflow(recipients=[{**channel(OPS), "mention": ["adele@contoso.com"]}])
        await world.send(event())
        [message] = world.messenger.cards_in(OPS)
        assert "entities" not in message.card["msteams"]
        assert "adele@contoso.com (not found in the directory, so not notified)" in json.dumps(message.card)

    async def test_a_reminder_in_the_thread_mentions_them_again(self, world):
        from shared.services.periodic import run_periodic

        await world.connect()
        await world.workflow(recipients=[{**channel(OPS), "mention": ["carol@contoso.com"]}])
        await world.send(event())
        world.clock.now += timedelta(hours=2)
        await run_periodic(store=world.store, jobs=world.ctx.jobs, reminder_after_minutes=30, clock=world.clock)
        await world.ctx.jobs.drain(world.ctx)
        [card] = world.messenger.cards_in(OPS)
        [reminder] = world.messenger.replies_to(card.activity_id)
        assert reminder.text.startswith("<at>Carol</at> \u23f0 Reminder")
        assert reminder.mentions == [{"id": "u-carol", "name": "Carol"}]


class TestFallback:
    async def _note(self, world) -> str:
        [card] = world.texts(SRE)
        return card

    async def test_a_person_not_found_sends_the_card_to_the_fallback_with_the_reason(self, world):
        await world.connect()
        await world.workflow(recipients=[person("ghost@contoso.com")])
        [outcome] = await world.send(event())
        assert outcome.fallback == [SRE]
        assert "ghost@contoso.com could not be reached" in await self._note(world) and "not found" in await self._note(
            world
        )
        alert = (await world.store.list_open_alerts(TENANT))[0]
        [delivery] = await world.store.list_deliveries(TENANT, alert.key)
        assert delivery.reason.startswith("fallback for ghost@contoso.com")

    async def test_a_person_named_by_object_id_is_said_to_be_one_in_the_note(self, world):
        await world.connect()
        ghost = "0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b"
        await world.workflow(recipients=[person(ghost)])
        await world.send(event())
        assert f"the person with Microsoft Entra object id {ghost} could not be reached" in await self._note(world)

    async def test_a_refused_app_install_goes_to_the_fallback(self, world):
        await world.connect()
        world.directory.fail["install_app_for_user"] = GraphError(
            (
                "Microsoft Graph refused to install the app for a user: the connector needs the application "
                "permission TeamsAppInstallation.ReadWriteSelfForUser.All"
            ),
            status=403,
            permission="TeamsAppInstallation.ReadWriteSelfForUser.All",
        )
        await world.workflow(recipients=[person("adele@contoso.com")])
        await world.send(event())
        assert "TeamsAppInstallation.ReadWriteSelfForUser.All" in await self._note(world)

    async def test_an_unconnected_tenant_sends_people_to_the_fallback(self, world):
        await world.workflow(recipients=[person("adele@contoso.com")])
        await world.send(event())
        assert "not connected to Microsoft Graph" in await self._note(world)

    async def test_a_connection_needing_consent_again_goes_to_the_fallback(self, world):
        await world.store.save_connection(
            TenantConnection(TENANT, "bot", "needs_reconsent", status_reason="invalid_grant")
        )
        await world.workflow(recipients=[person("adele@contoso.com")])
        await world.send(event())
        assert "needs consent again" in await self._note(world)

    async def test_a_conversation_gone_goes_to_the_fallback(self, world):
        await world.workflow()
        world.messenger.fail_next = [
            DeliveryError(
                "Teams answered 404 (ConversationNotFound)", status=404, permanent=True, conversation_gone=True
            )
        ]
        [outcome] = await world.send(event())
        assert outcome.failed == [OPS] and outcome.fallback == [SRE]
        assert "Teams refused the card" in await self._note(world)

    async def test_when_the_fallback_fails_too_the_alert_is_recorded_as_undeliverable(self, world):
        await world.workflow(
            recipients=[person("ghost@contoso.com")], fallbackRecipients=[person("nobody@contoso.com")]
        )
        await world.connect()
        [outcome] = await world.send(event())
        assert outcome.undeliverable == ["ghost@contoso.com"]
        [record] = await world.store.list_undeliverable(TENANT)
        assert "not found" in record.reason and "nobody@contoso.com" in record.fallback_reason

    async def test_a_later_change_updates_the_fallback_card_in_place(self, world):
        await world.connect()
        await world.workflow(recipients=[person("ghost@contoso.com")])
        await world.send(event())
        await world.send(event("alert.resolved", 2))
        [message] = world.messenger.cards_in(SRE)
        assert len(message.versions) == 2


class TestExactlyOnce:
    async def test_a_redelivered_event_after_a_transient_failure_gives_one_card_per_recipient(self, world):
        await world.workflow(recipients=[channel(OPS), channel("19:general@thread.tacv2")], trigger="new_or_updated")
        world.messenger.fail_next = [
            DeliveryError("Teams answered 503", status=503)
        ]  # the first post fails for now: rescheduled
        await world.send(event())
        await world.send(event())  # the same message again
        await world.send(event())  # and once more after it succeeded
        assert len(world.messenger.cards_in(OPS)) == 1 and len(world.messenger.cards_in("19:general@thread.tacv2")) == 1

    async def test_an_event_applied_before_a_failure_is_routed_again_when_redelivered(self, world):
        await world.connect()
        await world.workflow(recipients=[person("adele@contoso.com")])
        world.directory.fail["get_user"] = GraphError("Microsoft Graph answered 503", status=503)
        with pytest.raises(TransientError):
            await world.send(event())  # the alert is stored, nobody got it yet
        del world.directory.fail["get_user"]
        await world.send(event())
        await world.send(event())
        assert len(world.messenger.cards_in(world.directory.installed_for["u-adele"])) == 1


class TestManualSend:
    def command(self, recipients, comment="Please look", event_id="send-1", **data) -> dict:
        return {
            "specversion": "1.0",
            "id": event_id,
            "source": "https://alerts.example.com",
            "type": "teams.message.send",
            "subject": "ALRT-1",
            "tenantid": TENANT,
            "data": {"recipients": recipients, "comment": comment, "requestedBy": "grace@contoso.com", **data},
        }

    async def test_the_card_goes_to_the_recipients_with_the_comment(self, world):
        await world.workflow(recipients=[channel(SRE)])
        await world.send(event())
        await world.send(self.command([channel(OPS)]))
        [card] = world.texts(OPS)
        assert "Please look" in card and "sent by grace@contoso.com" in card

    async def test_where_the_card_is_already_shown_the_comment_goes_in_its_thread_once(self, world):
        await world.workflow(recipients=[channel(OPS)])
        await world.send(event())
        await world.send(self.command([channel(OPS)]))
        await world.send(self.command([channel(OPS)]), "m-again")  # redelivered
        [card] = world.messenger.cards_in(OPS)
        [reply] = world.messenger.replies_to(card.activity_id)
        assert "Please look" in reply.text

    async def test_an_unknown_alert_is_rejected_naming_it(self, world):
        [outcome] = await world.send(self.command([channel(OPS)]))
        assert outcome.result == "rejected" and "no alert ALRT-1" in outcome.detail

    async def test_an_unreachable_recipient_goes_to_the_fallback_given(self, world):
        await world.send(event())
        await world.send(self.command([person("ghost@contoso.com")], fallbackRecipients=[channel(SRE)]))
        assert "ghost@contoso.com could not be reached" in json.dumps(world.texts(SRE))


class TestDigests:
    async def digests(self, world):
        report = await run_digests(world.ctx)
        await world.ctx.jobs.drain(world.ctx)
        return report

    async def test_one_digest_per_recipient_per_period(self, world):
        await world.workflow("digest", trigger="periodic", intervalMinutes=60, match={"minSeverity": "high"})
        await world.send(event(alert="ALRT-1"))
        await world.send(event(alert="ALRT-2", severity="low"))
        report = await self.digests(world)
        assert report.queued == 1
        [digest] = world.texts(OPS)
        assert "ALRT-1" in digest and "ALRT-2" not in digest and "1 open alert" in digest
        world.clock.now = T0 + timedelta(minutes=30)
        assert (await self.digests(world)).queued == 0  # same period
        world.clock.now = T0 + timedelta(minutes=61)
        assert (await self.digests(world)).queued == 1  # next period: a new message
        assert len(world.messenger.cards_in(OPS)) == 2

    async def test_nothing_open_posts_nothing(self, world):
        await world.workflow("digest", trigger="periodic", intervalMinutes=60)
        assert (await self.digests(world)).queued == 0

    async def test_a_digest_that_cannot_reach_its_recipient_goes_to_the_fallback(self, world):
        await world.workflow("digest", trigger="periodic", intervalMinutes=60, recipients=[person("ghost@contoso.com")])
        await world.connect()
        await world.send(event())
        report = await self.digests(world)
        assert report.fallback == 1 and "ghost@contoso.com could not be reached" in json.dumps(world.texts(SRE))

    async def test_a_digest_refused_for_good_goes_to_the_fallback_with_the_reason(self, world):
        await world.workflow("digest", trigger="periodic", intervalMinutes=60)
        await world.send(event())
        world.messenger.fail_next.append(DeliveryError("Teams answered 403", status=403, permanent=True))
        await self.digests(world)
        [fallback] = world.texts(SRE)
        assert "could not be reached: Teams refused the digest (Teams answered 403)" in json.dumps(fallback)

    async def test_a_digest_is_paced_with_the_cards_of_its_conversation(self, world):
        from shared.domain import pacing

        await world.workflow("digest", trigger="periodic", intervalMinutes=60)
        await world.send(event())
        # The conversation's window is full for now: the digest waits for its turn in the queue.
        now = world.clock().timestamp()
        window = pacing.Window()
        for i in range(60):
            window.record(now - 29.0 + i * 0.4)
        record = await world.store.get_conversation(TENANT, OPS)
        _, summary, etag = await world.store.get_pacing(TENANT, record.conversation_id)
        await world.store.save_pacing(TENANT, record.conversation_id, window.to_json(), summary, etag)
        started = world.clock()
        await self.digests(world)
        [_digest] = [m for m in world.messenger.cards_in(OPS) if "open alert(s)" in json.dumps(m.card)]
        assert world.clock() - started >= timedelta(seconds=1)


class TestGroupChatOnce:
    async def test_a_second_worker_waits_for_the_first_ones_group_chat(self, world):
        from shared.domain.workflows import Recipient

        await world.connect()
        group = Recipient("group", users=("bob@contoso.com", "carol@contoso.com"))
        assert await world.store.claim_recipient(
            TENANT, f"bot|{group.key}", world.clock(), timedelta(minutes=2)
        )  # another worker is on it
        with pytest.raises(TransientError, match="being set up"):
            await world.resolver.resolve(TENANT, group)
        assert world.directory.chats == {}
        world.clock.now = T0 + timedelta(minutes=3)  # that worker died: its claim expires
        record = await world.resolver.resolve(TENANT, group)
        assert list(world.directory.chats) == [record.conversation_id]

"""Routing alerts by workflows, end to end: function_app's admin routes, queue trigger, timer and
bot endpoint, on Azurite and the Teams simulator (Bot Connector and Graph, real SDK clients),
with the tenant connected by admin consent."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from shared import bootstrap
from tests.e2e.conftest import BOT_APP_ID, TENANT_ID
from tests.e2e.test_alert_flow import card_status, example
from tests.e2e.test_alert_flow import cards as cards_in
from tests.e2e.test_consent import browser, callback, connect_delegated, m365, start, tenant_headers  # noqa: F401 - m365 is a fixture
from tests.support.app import deliver, functions, post_activity, tick

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

CATALOG_ID = "c47a1ae2-0000-4000-8000-0000000ca7a1"
ALERT_EVENTS = "alert-events"


def channel_recipient(channel, name: str = "") -> dict:
    return {"kind": "channel", "teamId": channel.team_id, "channelId": channel.id, "name": name or channel.display_name}


def person(user: str) -> dict:
    return {"kind": "person", "user": user}


async def admin(name: str, method: str, route: str, body: object = None, **route_params: str) -> func.HttpResponse:
    req = func.HttpRequest(
        method,
        f"http://localhost:7071/api/{route}",
        headers={**tenant_headers(), "Content-Type": "application/json"},
        route_params={"tenant_id": TENANT_ID, **route_params},
        body=json.dumps(body).encode() if body is not None else b"",
    )
    return await functions()[name](req)


async def put_workflow(workflow_id: str, **fields) -> dict:
    body = {"name": workflow_id, "trigger": "new_or_updated", **fields}
    response = await admin(
        "workflow_item", "PUT", f"tenants/{TENANT_ID}/workflows/{workflow_id}", body, workflow_id=workflow_id
    )
    assert response.status_code in (200, 201), response.get_body()
    return json.loads(response.get_body())


async def drain(sink) -> int:
    """Deliver what the app queued for itself on the alert-events queue, as the trigger would."""
    count = 0
    while any(queue == ALERT_EVENTS for queue, _, _ in sink.messages):
        queue, message_id, body = next(m for m in sink.messages if m[0] == ALERT_EVENTS)
        sink.messages.remove((queue, message_id, body))
        await deliver(body, message_id)
        count += 1
    return count


def alert(name: str = "alert-created.json", **data) -> dict:
    body = example(name)
    body["data"] = {**body["data"], **data}
    if "id" in data:
        body["subject"] = data["id"]
        body["id"] = f"{body['id']}-{data['id']}"
    return body


def cards(sim, conversation_id: str) -> list:
    """The cards the bot posted in a conversation; none when it never posted there."""
    try:
        return cards_in(sim, conversation_id)
    except KeyError:
        return []


def texts(sim, conversation_id: str) -> list[str]:
    return [json.dumps(a.attachments[0]["content"]) for a in cards(sim, conversation_id)]


@pytest.fixture
async def routed(request, m365, queue_sink, monkeypatch):
    """Tenant connected (bot method) unless parametrised with {"connect": False}; the bot is
    installed in the Operations team ("On call" channel); an "SRE" channel exists in the same
    team; people: Adele, Bob and Carol. Parametrise {"without": ROLE} to consent without a role."""
    params = getattr(request, "param", {})
    monkeypatch.setenv("LOCAL_QUEUE_HOST_URL", queue_sink.url)
    monkeypatch.setenv("TEAMS_APP_CATALOG_ID", CATALOG_ID)
    await bootstrap.reset()
    queue_sink.messages.clear()
    sim = m365
    tenant = sim.m365
    tenant.adele = tenant.add_user("Adele Vance", "adele@contoso.com")
    tenant.bob = tenant.add_user("Bob Kelly", "bob@contoso.com")
    tenant.carol = tenant.add_user("Carol Ng", "carol@contoso.com")
    tenant.sre = tenant.add_channel(tenant.ops, "SRE", members=(tenant.admin.id,))
    if params.get("without"):
        sim.directory.app_roles.discard(params["without"])
    if params.get("connect", True):
        assert (await callback(browser(sim, await start("bot")))).status_code == 200
    sim.team = {"id": "19:ops-team-thread@thread.tacv2", "name": "Operations", "aadGroupId": tenant.ops.id}
    sim.channel = {"id": tenant.oncall.id, "name": "On call"}
    install = sim.installation_update(
        "channel",
        bot_app_id=BOT_APP_ID,
        tenant_id=TENANT_ID,
        conversation_id=tenant.oncall.id,
        team=sim.team,
        channel=sim.channel,
    )
    assert (await post_activity(install, sim.auth_header(BOT_APP_ID, install["serviceUrl"]))).status_code in (200, 201)
    sim.sink = queue_sink
    yield sim


def personal_chat(sim, user) -> str:
    tenant = sim.directory.tenants[TENANT_ID]
    [installation] = [i for i in tenant.installations.get(user.id, {}).values() if i["teamsAppId"] == CATALOG_ID]
    return installation["chatId"]


class TestChannelsAndTriggers:
    async def test_a_workflow_sends_to_its_channel_only_and_updates_in_place(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "prod",
            recipients=[channel_recipient(t.sre)],
            fallbackRecipients=[channel_recipient(t.oncall)],
            comment="Runbook: wiki/disk",
            name="Prod critical",
        )
        await deliver(alert())
        await deliver(example("alert-resolved.json"))
        [card] = cards(sim, t.sre.id)
        assert (
            card_status(card) == "Resolved"
            and "Runbook: wiki/disk" in texts(sim, t.sre.id)[0]
            and "_Prod critical_" in texts(sim, t.sre.id)[0]
        )
        assert cards(sim, t.oncall.id) == []  # routing is by workflows now: no broadcast

    async def test_updated_waits_for_the_first_change(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "changes",
            trigger="updated",
            recipients=[channel_recipient(t.sre)],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        await deliver(alert())
        assert cards(sim, t.sre.id) == []
        await deliver(example("alert-resolved.json"))
        assert len(cards(sim, t.sre.id)) == 1

    async def test_a_workflow_created_with_existing_delivers_the_alerts_already_open(self, routed):
        sim, t = routed, routed.m365
        await deliver(alert(id="ALRT-7", severity="critical"))  # broadcast: only On call has the bot
        await deliver(alert(id="ALRT-8", severity="low"))
        saved = await put_workflow(
            "late",
            trigger="new_updated_existing",
            match={"minSeverity": "high"},
            recipients=[channel_recipient(t.sre)],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        assert saved["existingAlertsQueued"] is True
        assert await drain(sim.sink) == 1
        [card] = texts(sim, t.sre.id)
        assert "ALRT\\\\-7" in card or "ALRT-7" in card
        again = await put_workflow(
            "late",
            trigger="new_updated_existing",
            match={"minSeverity": "high"},
            recipients=[channel_recipient(t.sre)],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        assert again["changed"] is False and await drain(sim.sink) == 0  # the same definition queues nothing

    async def test_a_periodic_workflow_posts_one_digest_per_period(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "daily",
            trigger="periodic",
            intervalMinutes=1440,
            recipients=[channel_recipient(t.sre)],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        await deliver(alert(id="ALRT-1", severity="critical"))
        await deliver(alert(id="ALRT-2", severity="medium"))
        assert cards(sim, t.sre.id) == []  # a periodic workflow sends no card per change
        await tick()
        await tick()
        [digest] = texts(sim, t.sre.id)
        assert "2 open alert(s)" in digest and "CRITICAL 1" in digest and "MEDIUM 1" in digest

    async def test_two_workflows_to_one_channel_give_one_card(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "a",
            recipients=[channel_recipient(t.sre)],
            fallbackRecipients=[channel_recipient(t.oncall)],
            comment="from A",
        )
        await put_workflow(
            "b",
            recipients=[channel_recipient(t.sre)],
            fallbackRecipients=[channel_recipient(t.oncall)],
            comment="from B",
        )
        await deliver(alert())
        [card] = texts(sim, t.sre.id)
        assert "from A" in card and "from B" in card

    async def test_a_redelivered_event_still_gives_one_card_per_recipient(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "both",
            recipients=[channel_recipient(t.sre), person("adele@contoso.com")],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        sim.add_fault(
            "POST", r"/v3/conversations/[^/]*unq\.gbl\.spaces/activities$", status=503, times=4
        )  # Adele's chat is down for now
        body = alert()
        for _ in range(3):  # the event message delivered three times, its jobs retried meanwhile
            await deliver(body, message_id="same")
        assert len(cards(sim, t.sre.id)) == 1 and len(cards(sim, personal_chat(sim, t.adele))) == 1
        assert [r.status for r in sim.requests if "unq.gbl.spaces" in r.path and r.method == "POST"].count(503) == 4


class TestPeopleGroupsResponders:
    async def test_a_person_gets_the_card_in_a_one_to_one_chat_with_the_app(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "me", recipients=[person("adele@contoso.com")], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        await deliver(alert(id="ALRT-1"))
        await deliver(alert(id="ALRT-2"))
        chat = personal_chat(sim, t.adele)
        assert len(cards(sim, chat)) == 2
        installs = [r for r in sim.requests if r.method == "POST" and r.path.endswith("/teamwork/installedApps")]
        assert len(installs) == 1  # the second alert reuses the chat

    async def test_a_group_gets_one_group_chat_with_the_app_installed(self, routed):
        sim, t = routed, routed.m365
        group = {"kind": "group", "users": ["bob@contoso.com", "carol@contoso.com"], "name": "DB on call"}
        await put_workflow("group", recipients=[group], fallbackRecipients=[channel_recipient(t.oncall)])
        await deliver(alert(id="ALRT-1"))
        await deliver(alert(id="ALRT-2"))
        [chat] = [c for c in sim.directory.tenants[TENANT_ID].chats.values() if c.chat_type == "group"]
        assert (
            set(chat.members) == {t.bob.id, t.carol.id}
            and chat.topic == "DB on call"
            and CATALOG_ID in chat.installed_apps
        )
        assert len(cards(sim, chat.id)) == 2

    async def test_responders_each_get_the_card(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "resp", recipients=[{"kind": "responders"}], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        await deliver(alert(responders=["bob@contoso.com", "carol@contoso.com"]))
        assert len(cards(sim, personal_chat(sim, t.bob))) == 1 and len(cards(sim, personal_chat(sim, t.carol))) == 1


class TestFallback:
    def note(self, sim, t) -> str:
        [card] = texts(sim, t.oncall.id)
        return card

    async def test_a_person_not_found(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "ghost", recipients=[person("ghost@contoso.com")], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        await deliver(alert())
        assert "ghost@contoso.com could not be reached" in self.note(sim, t) and "not found" in self.note(sim, t)

    @pytest.mark.parametrize("routed", [{"without": "TeamsAppInstallation.ReadWriteSelfForUser.All"}], indirect=True)
    async def test_an_app_install_refused(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "me", recipients=[person("adele@contoso.com")], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        await deliver(alert())
        assert "TeamsAppInstallation.ReadWriteSelfForUser.All" in self.note(sim, t)

    @pytest.mark.parametrize(
        "status, code", [(404, "ConversationNotFound"), (403, "BotNotInConversationRoster"), (403, "Forbidden")]
    )
    async def test_a_conversation_gone_or_a_permanent_delivery_failure(self, routed, status, code):
        sim, t = routed, routed.m365
        await put_workflow(
            "sre", recipients=[channel_recipient(t.sre)], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        sim.add_fault(
            "POST",
            rf"/v3/conversations/{t.sre.id}/activities$",
            status=status,
            body={"error": {"code": code, "message": "refused"}},
        )
        await deliver(alert())
        assert f"Teams answered {status}" in self.note(sim, t)
        await deliver(example("alert-resolved.json"))
        [card] = cards(sim, t.oncall.id)
        assert card_status(card) == "Resolved"  # the fallback card keeps updating

    @pytest.mark.parametrize("routed", [{"connect": False}], indirect=True)
    async def test_a_tenant_not_connected(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "me", recipients=[person("adele@contoso.com")], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        await deliver(alert())
        assert "not connected to Microsoft Graph" in self.note(sim, t)

    async def test_when_the_fallback_fails_too_an_operator_sees_both_reasons(self, routed):
        await put_workflow(
            "ghosts", recipients=[person("ghost@contoso.com")], fallbackRecipients=[person("nobody@contoso.com")]
        )
        await deliver(alert())
        response = await admin("undeliverable", "GET", f"tenants/{TENANT_ID}/undeliverable")
        [record] = json.loads(response.get_body())["undeliverable"]
        assert (
            record["recipient"] == "ghost@contoso.com"
            and "not found" in record["reason"]
            and "nobody@contoso.com" in record["fallbackReason"]
        )


class TestDelegatedNeedsConsentAgain:
    async def test_a_delegated_workflow_falls_back_to_the_bot_when_the_token_is_refused(
        self, m365, queue_sink, monkeypatch
    ):
        sim, t = m365, m365.m365
        monkeypatch.setenv("LOCAL_QUEUE_HOST_URL", queue_sink.url)
        await bootstrap.reset()
        sim.directory.delegated_token_lifetime = 60  # every Graph call needs a refresh
        assert (await connect_delegated(sim)).status_code == 200
        team = {"id": "19:ops-team-thread@thread.tacv2", "name": "Operations", "aadGroupId": t.ops.id}
        install = sim.installation_update(
            "channel",
            bot_app_id=BOT_APP_ID,
            tenant_id=TENANT_ID,
            conversation_id=t.oncall.id,
            team=team,
            channel={"id": t.oncall.id, "name": "On call"},
        )
        assert (await post_activity(install, sim.auth_header(BOT_APP_ID, install["serviceUrl"]))).status_code in (
            200,
            201,
        )
        general = next(c for c in t.ops.channels.values() if c.display_name == "General")
        await put_workflow(
            "as-user",
            delivery="delegated",
            recipients=[{"kind": "channel", "teamId": t.ops.id, "channelId": general.id, "name": "General"}],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        sim.directory.refresh_error = (
            "invalid_grant",
            "AADSTS50173: The provided grant has expired due to it being revoked.",
        )
        await deliver(alert())
        assert general.messages == {}
        [card] = texts(sim, t.oncall.id)
        assert "General could not be reached" in card and "consent again" in card


class TestDelegatedThrottled:
    async def test_a_graph_retry_after_reschedules_the_job_instead_of_holding_the_send(
        self, m365, queue_sink, monkeypatch
    ):
        sim, t = m365, m365.m365
        monkeypatch.setenv("LOCAL_QUEUE_HOST_URL", queue_sink.url)
        await bootstrap.reset()
        queue_sink.jobs.clear()
        assert (await connect_delegated(sim)).status_code == 200
        general = next(c for c in t.ops.channels.values() if c.display_name == "General")
        await put_workflow(
            "as-user",
            delivery="delegated",
            recipients=[{"kind": "channel", "teamId": t.ops.id, "channelId": general.id, "name": "General"}],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        sim.add_fault("POST", rf"/channels/{general.id}/messages$", status=429, retry_after=20)
        from tests.support.app import queue_message, run_deliveries

        await functions()["alert_events"]([queue_message(alert())])
        ran = await run_deliveries()
        assert len(general.messages) == 1
        # The 429 was not waited out inside the send: the job went back to the queue for then.
        rescheduled = [j for j in ran if j["scheduled"] and j["body"].get("failures")]
        assert len(rescheduled) == 1


class TestManualSend:
    async def test_by_queue(self, routed):
        sim, t = routed, routed.m365
        await deliver(alert())  # broadcast: On call
        command = {
            "specversion": "1.0",
            "id": "send-42",
            "source": "https://alerts.example.com",
            "type": "teams.message.send",
            "subject": "ALRT-1042",
            "tenantid": TENANT_ID,
            "data": {
                "recipients": [person("adele@contoso.com")],
                "comment": "Can you take this?",
                "requestedBy": "grace@contoso.test",
            },
        }
        await deliver(command, message_id="send-42")
        await deliver(command, message_id="send-42")
        [card] = texts(sim, personal_chat(sim, t.adele))
        assert "Can you take this?" in card and "sent by grace@contoso.test" in card

    async def test_by_route_with_the_comment_in_the_thread_where_the_card_is(self, routed):
        sim, t = routed, routed.m365
        await deliver(alert())
        response = await admin(
            "alert_send",
            "POST",
            f"tenants/{TENANT_ID}/alerts/ALRT-1042/send",
            {"recipients": [channel_recipient(t.oncall)], "comment": "Escalating to the DBA"},
            alert_id="ALRT-1042",
        )
        assert response.status_code == 202, response.get_body()
        assert await drain(sim.sink) == 1
        [card] = cards(sim, t.oncall.id)
        replies = [a for a in sim.conversation(t.oncall.id).activities if a.text and "Escalating to the DBA" in a.text]
        assert len(replies) == 1 and replies[0].thread_root == card.id  # in the card's thread, not a second card

    async def test_the_route_names_a_bad_field(self, routed):
        await deliver(alert())
        response = await admin(
            "alert_send",
            "POST",
            f"tenants/{TENANT_ID}/alerts/ALRT-1042/send",
            {"recipients": [{"kind": "channel"}]},
            alert_id="ALRT-1042",
        )
        assert response.status_code == 400 and json.loads(response.get_body())["field"] == "recipients[0].teamId"


class TestAdminRoutes:
    async def test_put_get_list_delete(self, routed):
        t = routed.m365
        created = await put_workflow(
            "w1", recipients=[channel_recipient(t.sre)], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        assert created["revision"] == 1
        changed = await put_workflow(
            "w1", recipients=[channel_recipient(t.sre)], fallbackRecipients=[channel_recipient(t.oncall)], comment="new"
        )
        assert changed["revision"] == 2 and changed["changed"] is True
        listed = json.loads((await admin("workflows_list", "GET", f"tenants/{TENANT_ID}/workflows")).get_body())
        assert [w["id"] for w in listed["workflows"]] == ["w1"] and listed["broadcast"] is False
        assert (
            await admin("workflow_item", "DELETE", f"tenants/{TENANT_ID}/workflows/w1", workflow_id="w1")
        ).status_code == 204
        assert (
            await admin("workflow_item", "GET", f"tenants/{TENANT_ID}/workflows/w1", workflow_id="w1")
        ).status_code == 404

    async def test_an_invalid_workflow_is_refused_naming_the_field(self, routed):
        response = await admin(
            "workflow_item",
            "PUT",
            f"tenants/{TENANT_ID}/workflows/w1",
            {"name": "x", "trigger": "often", "recipients": [], "fallbackRecipients": []},
            workflow_id="w1",
        )
        assert response.status_code == 400 and json.loads(response.get_body())["field"] == "trigger"

    async def test_another_tenants_key_is_refused(self, routed):
        req = func.HttpRequest(
            "GET",
            "http://localhost/api/x",
            headers=tenant_headers("33333333-cccc-4000-8000-0000000000c3"),
            route_params={"tenant_id": TENANT_ID},
            body=b"",
        )
        assert (await functions()["workflows_list"](req)).status_code == 403

    async def test_the_dry_run_says_who_would_get_it_and_why_the_others_not(self, routed):
        t = routed.m365
        await put_workflow(
            "prod",
            name="Prod",
            match={"minSeverity": "critical"},
            recipients=[channel_recipient(t.sre)],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        await put_workflow(
            "all",
            name="All",
            recipients=[person("adele@contoso.com")],
            fallbackRecipients=[channel_recipient(t.oncall)],
        )
        response = await admin("workflow_test", "POST", f"tenants/{TENANT_ID}/workflows/test", alert(severity="high"))
        [result] = json.loads(response.get_body())["events"]
        assert [x["label"] for x in result["targets"]] == ["adele@contoso.com"]
        assert result["notMatched"] == [{"workflow": "Prod", "reason": "severity high is below critical"}]
        assert cards(routed, t.sre.id) == [] and routed.sink.messages == []  # nothing was sent

    async def test_the_dry_run_says_which_targets_cannot_be_reached(self, routed):
        t = routed.m365
        # Saved before recipients were checked: a chat the bot was never added to.
        definition = {
            "name": "Old",
            "trigger": "new_or_updated",
            "recipients": [
                {"kind": "chat", "chatId": "19:nobody-added-the-bot@thread.v2"},
                channel_recipient(t.oncall),
            ],
            "fallbackRecipients": [channel_recipient(t.oncall)],
        }
        table = await (await bootstrap.container()).store._t("workflows")
        await table.create(
            {"PartitionKey": TENANT_ID, "RowKey": "old", "Definition": json.dumps(definition), "Revision": "1"}
        )
        response = await admin("workflow_test", "POST", f"tenants/{TENANT_ID}/workflows/test", alert())
        [result] = json.loads(response.get_body())["events"]
        chat, channel = result["targets"]
        assert "not a conversation of tenant" in chat["unreachable"] and "unreachable" not in channel


class TestSubscribeFromTeams:
    async def say(self, sim, text: str, user_id: str) -> str:
        activity = sim.message(
            text,
            "channel",
            bot_app_id=BOT_APP_ID,
            tenant_id=TENANT_ID,
            conversation_id=sim.m365.oncall.id,
            team=sim.team,
            channel=sim.channel,
            user={"id": "29:someone", "name": "Someone", "aadObjectId": user_id},
        )
        response = await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
        assert response.status_code in (200, 201)
        return sim.conversation(sim.m365.oncall.id).activities[-1].text or ""

    async def test_a_team_owner_subscribes_the_channel_and_only_matching_alerts_come(self, routed):
        sim, t = routed, routed.m365
        t.oncall.members[t.admin.id] = ["owner"]
        reply = await self.say(sim, "subscribe severity>=critical", t.admin.id)
        assert reply.startswith("Subscribed"), reply
        await deliver(alert(id="ALRT-1", severity="critical"))
        await deliver(alert(id="ALRT-2", severity="high"))
        assert len(cards(sim, t.oncall.id)) == 1
        assert "critical, when new or changed" in await self.say(sim, "subscriptions", t.admin.id)
        assert (await self.say(sim, "unsubscribe", t.admin.id)).startswith("Unsubscribed")

    async def test_someone_else_is_refused_with_the_reason(self, routed):
        sim, t = routed, routed.m365
        reply = await self.say(sim, "subscribe", t.adele.id)
        assert "Only the team's owners and the connector's admins" in reply
        listed = json.loads((await admin("workflows_list", "GET", f"tenants/{TENANT_ID}/workflows")).get_body())
        assert listed["count"] == 0


class TestCardsOfRoutedAlerts:
    async def test_a_click_keeps_the_comment_and_the_workflow_on_the_refreshed_card(self, routed, queue_sink):
        sim, t = routed, routed.m365
        await put_workflow(
            "prod",
            name="Prod",
            recipients=[channel_recipient(t.oncall)],
            fallbackRecipients=[channel_recipient(t.sre)],
            comment="Runbook: wiki/disk",
        )
        await deliver(alert())
        [card] = cards(sim, t.oncall.id)
        data = next(a for a in card.attachments[0]["content"]["actions"] if a.get("verb") == "acknowledge")["data"]
        activity = sim.invoke_adaptive_card_action(
            "acknowledge",
            data,
            "channel",
            reply_to_id=card.id,
            bot_app_id=BOT_APP_ID,
            tenant_id=TENANT_ID,
            team=sim.team,
            channel=sim.channel,
            user={"id": "29:grace", "name": "Grace Hopper", "aadObjectId": t.admin.id},
        )
        response = await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
        refreshed = json.dumps(json.loads(response.get_body())["value"])
        assert (
            "Acknowledged by Grace Hopper" in refreshed and "Runbook: wiki/disk" in refreshed and "_Prod_" in refreshed
        )

"""Holes an attack review found, each closed where it was and tested through the app's own
entry points (the queue trigger, the bot route, the consent callback, the admin routes)."""

from __future__ import annotations

import json

import azure.functions as func

from tests.e2e.conftest import BOT_APP_ID, TENANT_ID
from tests.e2e.test_alert_flow import cards, example, install
from tests.support.app import deliver, post_activity

OTHER_TENANT = "0b5d2c1a-0000-4000-8000-0000000000b2"


async def install_in(sim, tenant_id: str, conversation_id: str) -> str:
    """The bot in a 1:1 chat of another tenant (conversation ids are unique across tenants)."""
    activity = sim.installation_update(
        "personal", bot_app_id=BOT_APP_ID, tenant_id=tenant_id, conversation_id=conversation_id
    )
    response = await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
    assert response.status_code in (200, 201), response.get_body()
    return activity["conversation"]["id"]


def strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


class TestTemplates:
    async def test_a_run_of_braces_in_alert_text_reaches_the_card_as_text(self, connector):
        sim = connector
        channel = await install(sim, "channel")
        event = example("alert-created.json")
        event["data"]["title"] = "Disk {{{DATE(2017-02-14T06:08:39Z, SHORT)}}} full"
        event["data"]["labels"] = {"when": "{{{{TIME(2017-02-14T06:08:39Z)}}}}"}
        await deliver(event)
        [card] = cards(sim, channel)
        # The card's own {{DATE()}} timestamps are meant; what came from the alert must be text.
        from_alert = [t for t in strings(card.attachments[0]["content"]) if "2017-02-14" in t]
        assert len(from_alert) == 2 and all("{{" not in t for t in from_alert), from_alert


class TestTenantsNeverShareEvents:
    async def test_the_same_source_and_id_in_two_tenants_are_two_events(self, connector):
        sim = connector
        mine = await install(sim, "channel")
        theirs = await install_in(sim, OTHER_TENANT, "a:1other-tenant-chat")
        event = example("alert-created.json")
        await deliver({**event, "tenantid": TENANT_ID})
        await deliver({**event, "tenantid": OTHER_TENANT})
        assert len(cards(sim, mine)) == 1 and len(cards(sim, theirs)) == 1


# ---------------------------------------------------------------- connecting tenants

from tests.e2e.test_card_actions_graph import connected as connected_graph  # noqa: E402,F401 - a fixture
from tests.e2e.test_consent import (  # noqa: E402 - the consent tests' fixture and helpers
    ADMIN_KEY,
    browser,
    call,
    callback,
    m365,  # noqa: F401 - a fixture
    request,
    start,
    stored_connection,
    tenant_headers,
)


class TestConsentProvesTheTenant:
    async def test_a_link_for_no_tenant_never_reconnects_a_disconnected_one(self, m365):
        assert (await callback(browser(m365, await start("bot")))).status_code == 200
        response = await call(
            "tenant_disconnect", request("POST", "t", headers=tenant_headers(), route_params={"tenant_id": TENANT_ID})
        )
        assert response.status_code == 200
        params = browser(m365, await start("bot"))  # made for no tenant
        params["tenant"] = TENANT_ID  # whoever holds the link names the disconnected tenant
        response = await callback(params)
        page = response.get_body().decode()
        assert response.status_code == 403 and "was disconnected" in page and f"tenant={TENANT_ID}" in page
        assert (await stored_connection()).status == "disconnected"
        # An administrator's explicit reconnect (a link made for the tenant) works.
        response = await callback(browser(m365, await start("bot", tenant=TENANT_ID)))
        assert response.status_code == 200 and (await stored_connection()).status == "connected"

    async def test_a_tenant_where_the_app_has_no_consent_is_not_connected(self, m365):
        params = browser(m365, await start("bot"))
        params["tenant"] = "44444444-dddd-4000-8000-0000000000d4"  # consent exists nowhere there
        response = await callback(params)
        assert response.status_code in (403, 502) and "Nothing was changed" in response.get_body().decode()
        assert await stored_connection("44444444-dddd-4000-8000-0000000000d4") is None

    async def test_a_callback_whose_tenant_is_not_a_tenant_id_is_refused_cleanly(self, m365):
        params = browser(m365, await start("bot"))
        params["tenant"] = "../../v2.0/x"
        response = await callback(params)
        assert response.status_code == 400 and "did not name a tenant id" in response.get_body().decode()

    async def test_a_connect_link_for_a_malformed_tenant_is_refused(self, m365):
        response = await call(
            "connect",
            request("GET", "connect", params={"method": "bot", "tenant": "x#y"}, headers={"X-Admin-Key": ADMIN_KEY}),
        )
        assert response.status_code == 400 and "tenant" in json.loads(response.get_body())["error"]


class TestTenantRoutes:
    async def test_a_route_tenant_that_is_not_a_tenant_id_is_a_400(self, m365):
        for bad in ("x" * 2000, "abc#def", "../../etc"):
            response = await call(
                "tenant_teams", request("GET", "t", headers=tenant_headers(), route_params={"tenant_id": bad})
            )
            assert response.status_code == 400 and "tenant" in json.loads(response.get_body())["error"]

    async def test_an_unreadable_token_cache_is_a_clear_409_and_the_tenant_needs_consent_again(self, m365):
        from dataclasses import replace

        from tests.e2e.test_consent import connect_delegated

        await connect_delegated(m365)
        store = await bootstrap_store()
        connector = await store.get_connection(TENANT_ID)
        await store.save_connection(replace(connector, token_cache="v1." + "A" * 80))  # sealed by no key we hold
        response = await call(
            "tenant_teams", request("GET", "t", headers=tenant_headers(), route_params={"tenant_id": TENANT_ID})
        )
        body = json.loads(response.get_body())
        assert response.status_code == 409 and "TOKEN_ENCRYPTION_KEY" in body["error"]
        assert (await stored_connection()).status == "needs_reconsent"


async def bootstrap_store():
    from shared import bootstrap

    return (await bootstrap.container()).store


# ---------------------------------------------------------------- bad input never crashes


class TestBadActivities:
    async def test_an_activity_without_a_conversation_or_sender_is_a_400(self, connector):
        sim = connector
        good = sim.installation_update("channel", bot_app_id=BOT_APP_ID, tenant_id=TENANT_ID)
        for broken in (
            {k: v for k, v in good.items() if k != "conversation"},
            {k: v for k, v in good.items() if k != "from"},
            {**good, "conversation": {**good["conversation"], "tenantId": "x" * 2000}, "channelData": {}},
        ):
            response = await post_activity(broken, sim.auth_header(BOT_APP_ID, good["serviceUrl"]))
            assert response.status_code == 400 and json.loads(response.get_body())["error"], broken.keys()


class TestBadTenantsInEvents:
    async def test_an_event_with_a_malformed_tenant_is_rejected_with_the_field_named(self, connector):
        from shared import bootstrap

        await install(connector, "channel")
        for bad in ("a" * 2000, f"{TENANT_ID}#x"):
            await deliver({**example("alert-created.json"), "tenantid": bad})
        rejected = await (await bootstrap.container()).store.list_rejected()
        assert len(rejected) == 2 and all(r.field == "tenantid" and "GUID" in r.reason for r in rejected)


# ---------------------------------------------------------------- logs


class TestNoSecretInLogs:
    async def test_a_delegated_sign_in_at_debug_logs_no_code_verifier_or_token(self, m365, caplog):
        import logging
        import re

        import function_app  # noqa: F401 - installs the log redaction, as the host's import does

        caplog.set_level(logging.DEBUG)
        params = browser(m365, await start("delegated"))
        code = params["code"]
        caplog.clear()  # from here on, what the connector and its libraries log
        response = await callback(params)
        assert response.status_code == 200
        text = "\n".join(record.getMessage() for record in caplog.records)
        assert any("code_verifier" in line for line in text.splitlines())  # MSAL did log the request...
        assert code not in text  # ...but not the authorization code,
        assert not re.search(r'"code_verifier":\s*"(?!\*\*\*)', text)  # the verifier,
        assert not re.search(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.", text)  # or any token


# ---------------------------------------------------------------- the meeting invitation


class TestMeetingInvitation:
    async def test_hostile_id_and_url_do_not_become_markup(self, connected_graph):
        sim = connected_graph
        hostile = example("alert-created.json") | {"tenantid": TENANT_ID, "id": "evt-hostile", "subject": None}
        hostile["data"] = {
            **hostile["data"],
            "id": "A-<img src=x onerror=alert(1)>",
            "title": "<b>bold</b>",
            "url": 'https://alerts.example.com/a?x="><script>alert(1)</script>',
        }
        await deliver(hostile)
        card = next(c for c in cards(sim, sim.m365.oncall.id) if "onerror" in json.dumps(c.attachments[0]["content"]))
        data = next(a for a in card.attachments[0]["content"]["actions"] if a.get("verb") == "acknowledge")["data"]
        activity = sim.invoke_adaptive_card_action(
            "create_meeting",
            {**data, "verb": "create_meeting"},
            "channel",
            reply_to_id=card.id,
            bot_app_id=BOT_APP_ID,
            tenant_id=TENANT_ID,
            team=sim.team,
            channel=sim.channel,
            user={"id": "29:grace", "name": "Grace Hopper", "aadObjectId": sim.m365.admin.id},
        )
        assert (await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))).status_code == 200
        [event] = sim.m365.events[sim.m365.admin.id]
        body = event["body"]["content"]
        assert "<img" not in body and "<script" not in body and "<b>" not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body and "&quot;&gt;&lt;script&gt;" in body


# ---------------------------------------------------------------- who may act


class TestOneRuleForActing:
    async def test_refused_on_the_channel_card_is_refused_from_a_chat_too(self, connected_graph, queue_sink):
        sim = connected_graph
        outsider = sim.m365.add_user("Mallory", "mallory@contoso.test")
        mallory = {"id": "29:mallory", "name": "Mallory", "aadObjectId": outsider.id}
        chat = "a:1mallory-bot-chat"
        install = sim.installation_update(
            "personal", bot_app_id=BOT_APP_ID, tenant_id=TENANT_ID, conversation_id=chat, user=mallory
        )
        assert (await post_activity(install, sim.auth_header(BOT_APP_ID, install["serviceUrl"]))).status_code in (
            200,
            201,
        )
        for text in ("ack ALRT-1042", "resolve ALRT-1042"):
            message = sim.message(
                text, "personal", tenant_id=TENANT_ID, bot_app_id=BOT_APP_ID, user=mallory, conversation_id=chat
            )
            assert (await post_activity(message, sim.auth_header(BOT_APP_ID, message["serviceUrl"]))).status_code == 200
            assert "where you can see it" in (sim.conversation(chat).activities[-1].text or "")
        assert queue_sink.messages == []
        [state] = await (await bootstrap_store()).find_alerts(TENANT_ID, "ALRT-1042")
        assert state.status == "open"

    async def test_a_channel_member_may_ack_from_a_chat(self, connected_graph, queue_sink):
        sim = connected_graph
        grace = {"id": "29:grace", "name": "Grace Hopper", "aadObjectId": sim.m365.admin.id}
        chat = "a:1grace-bot-chat"
        install = sim.installation_update(
            "personal", bot_app_id=BOT_APP_ID, tenant_id=TENANT_ID, conversation_id=chat, user=grace
        )
        assert (await post_activity(install, sim.auth_header(BOT_APP_ID, install["serviceUrl"]))).status_code in (
            200,
            201,
        )
        message = sim.message(
            "ack ALRT-1042", "personal", tenant_id=TENANT_ID, bot_app_id=BOT_APP_ID, user=grace, conversation_id=chat
        )
        await post_activity(message, sim.auth_header(BOT_APP_ID, message["serviceUrl"]))
        [state] = await (await bootstrap_store()).find_alerts(TENANT_ID, "ALRT-1042")
        assert state.status == "acknowledged"


# ---------------------------------------------------------------- account links


class TestLinksAreVerified:
    async def test_a_self_asserted_link_is_not_sent_until_an_admin_approves_it(self, connected_graph, queue_sink):
        from tests.e2e.test_card_actions_graph import click

        sim = connected_graph
        grace = {"id": "29:grace", "name": "Grace Hopper", "aadObjectId": sim.m365.admin.id}
        chat = "a:1grace-link-chat"
        install = sim.installation_update(
            "personal", bot_app_id=BOT_APP_ID, tenant_id=TENANT_ID, conversation_id=chat, user=grace
        )
        await post_activity(install, sim.auth_header(BOT_APP_ID, install["serviceUrl"]))
        message = sim.message(
            "link ceo@contoso.test",
            "personal",
            tenant_id=TENANT_ID,
            bot_app_id=BOT_APP_ID,
            user=grace,
            conversation_id=chat,
        )
        await post_activity(message, sim.auth_header(BOT_APP_ID, message["serviceUrl"]))
        reply = sim.conversation(chat).activities[-1].text or ""
        # What the reply says is what happens next (and what the README says).
        assert (
            "requested, not made" in reply and "until then your actions carry your own Microsoft 365 account" in reply
        )
        await click(sim, "acknowledge")
        [(_, _, event)] = queue_sink.messages
        assert (
            event["data"]["actor"]["linkedIdentity"] == "grace@contoso.test"
        )  # her own account, never the claimed one
        assert event["data"]["actor"]["linkVerifiedBy"] == "directory"
        listed = json.loads(
            (
                await call(
                    "tenant_links", request("GET", "t", headers=tenant_headers(), route_params={"tenant_id": TENANT_ID})
                )
            ).get_body()
        )
        assert [(link["platformIdentity"], link["verified"]) for link in listed["links"]] == [
            ("ceo@contoso.test", False)
        ]
        approve = func.HttpRequest(
            "PUT",
            "http://localhost:7071/api/t",
            headers=tenant_headers(),
            route_params={"tenant_id": TENANT_ID, "aad_object_id": sim.m365.admin.id},
            body=json.dumps({"platformIdentity": "ceo@contoso.test"}).encode(),
        )
        assert (await call("tenant_link", approve)).status_code == 200
        await click(sim, "resolve")
        event = queue_sink.messages[-1][2]
        assert (event["data"]["actor"]["linkedIdentity"], event["data"]["actor"]["linkVerifiedBy"]) == (
            "ceo@contoso.test",
            "admin",
        )


# ---------------------------------------------------------------- field limits and card size


class TestFieldLimits:
    async def test_oversized_fields_are_rejected_naming_the_field_and_never_crash(self, connector):
        from shared import bootstrap

        await install(connector, "channel")
        base = example("alert-created.json")
        oversized = {
            "data.labels.big": {**base, "id": "e-1", "data": {**base["data"], "labels": {"big": "v" * 100_000}}},
            "source": {**base, "id": "e-2", "source": "https://alerts.example.com/" + "s" * 100_000},
            "data.url": {
                **base,
                "id": "e-3",
                "data": {**base["data"], "url": "https://alerts.example.com/" + "u" * 30_000},
            },
            "data.source": {**base, "id": "e-4", "data": {**base["data"], "source": "S" * 100_000}},
            "": {**base, "id": "e-5", "data": {**base["data"], "description": "d" * 1_000_000}},  # the whole message
        }
        for body in oversized.values():
            await deliver(body)  # the trigger returns: nothing for Service Bus to retry ten times
        rejected = await (await bootstrap.container()).store.list_rejected()
        assert sorted(r.field for r in rejected) == sorted(oversized)
        assert all("characters" in r.reason or "bytes" in r.reason for r in rejected)

    async def test_a_cjk_and_emoji_alert_fits_the_teams_message_limit_as_sent(self, connector):
        from shared import cards as card_module

        sim = connector
        sim.max_activity_bytes = card_module.MAX_MESSAGE_BYTES  # Teams' limit, enforced by the simulator (413 above it)
        channel = await install(sim, "channel")
        event = example("alert-created.json")
        event["data"] = {
            **event["data"],
            "title": "磁盘空间不足 🔥" * 60,
            "description": "数据库服务器的磁盘空间即将耗尽 🚨。" * 800,
            "labels": {f"标签{i}": "值" * 200 for i in range(20)},
        }
        await deliver(event)
        [card] = cards(sim, channel)
        sent = json.dumps(card.attachments[0]["content"], separators=(",", ":"))  # as the client sends it: \\u escapes
        assert len(sent) <= card_module.MAX_CARD_BYTES


# ---------------------------------------------------------------- conversation records stay true


async def stored_channels(tenant_id: str = TENANT_ID) -> dict[str, str]:
    return {
        c.conversation_id: c.name
        for c in await (await bootstrap_store()).list_conversations(tenant_id)
        if c.conversation_type == "channel"
    }


async def send(sim, activity: dict) -> None:
    response = await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
    assert response.status_code in (200, 201), response.get_body()


class TestConversationRecordsStayTrue:
    async def test_a_message_without_channel_names_does_not_rename_the_channel(self, connector):
        sim = connector
        channel = await install(sim, "channel")
        before = await stored_channels()
        message = sim.message(
            "help",
            "channel",
            tenant_id=TENANT_ID,
            bot_app_id=BOT_APP_ID,
            mention_bot=True,
            conversation_id=channel,
            user={"id": "29:mallory", "name": "Mallory Sender", "aadObjectId": "00000000-0000-4000-8000-0000000000ab"},
        )
        message["channelData"].pop("channel", None)
        message["channelData"]["team"] = {"id": message["channelData"]["team"]["id"]}  # ids only, no names
        await send(sim, message)
        assert await stored_channels() == before and "Mallory Sender" not in (await stored_channels()).values()

    async def test_channel_events_keep_the_general_channel_and_follow_renames_and_deletes(self, connector):
        sim = connector
        channel = await install(sim, "channel")
        before = await stored_channels()
        created = sim.conversation_update(
            "channel",
            event_type="channelCreated",
            tenant_id=TENANT_ID,
            bot_app_id=BOT_APP_ID,
            conversation_id=channel,
            channel={"id": "19:new-incidents@thread.tacv2", "name": "Incidents"},
            members_added=[],
        )
        await send(sim, created)
        assert await stored_channels() == before  # General is not stored under the new channel's name or id
        renamed = sim.conversation_update(
            "channel",
            event_type="channelRenamed",
            tenant_id=TENANT_ID,
            bot_app_id=BOT_APP_ID,
            conversation_id=channel,
            channel={"id": channel, "name": "On call (renamed)"},
            members_added=[],
        )
        await send(sim, renamed)
        assert (await stored_channels())[channel] == "On call (renamed)"
        deleted = sim.conversation_update(
            "channel",
            event_type="channelDeleted",
            tenant_id=TENANT_ID,
            bot_app_id=BOT_APP_ID,
            conversation_id=channel,
            channel={"id": channel, "name": "On call (renamed)"},
            members_added=[],
        )
        await send(sim, deleted)
        assert channel not in await stored_channels()

    async def test_a_deleted_or_archived_team_gets_no_more_alerts(self, connector):
        for event in ("teamArchived", "teamDeleted"):
            sim = connector
            channel = await install(sim, "channel")
            assert channel in await stored_channels()
            gone = sim.conversation_update(
                "channel", event_type=event, tenant_id=TENANT_ID, bot_app_id=BOT_APP_ID, members_added=[]
            )
            await send(sim, gone)
            assert await stored_channels() == {}, event
        await deliver(example("alert-created.json") | {"id": "after-archive"})
        assert cards(sim, channel) == []

    async def test_a_resolution_of_an_alert_never_seen_open_posts_no_card(self, connector):
        sim = connector
        channel = await install(sim, "channel")
        await deliver(example("alert-resolved.json"))
        assert cards(sim, channel) == []
        [state] = await (await bootstrap_store()).find_alerts(TENANT_ID, example("alert-resolved.json")["data"]["id"])
        assert state.status == "resolved"  # recorded, so a reopen has its history

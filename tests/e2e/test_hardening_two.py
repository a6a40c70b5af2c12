"""A second attack review's findings, each closed where it was and tested through the app's
own entry points (the workflow routes, the queue trigger, the ingest route, the bot)."""

from __future__ import annotations

import json

import azure.functions as func

from tests.e2e import test_workflows
from tests.e2e.conftest import TENANT_ID
from tests.e2e.test_alert_flow import example
from tests.e2e.test_consent import (
    m365,  # noqa: F401 - a fixture
    tenant_headers,
)
from tests.e2e.test_ingest import ingesting  # noqa: F401 - a fixture
from tests.e2e.test_workflows import (  # noqa: F401 - routed is a fixture
    admin,
    alert,
    cards,
    channel_recipient,
    put_workflow,
    routed,
    texts,
)
from tests.support.app import deliver, functions


def regex_workflow(pattern: str) -> dict:
    return {
        "name": "pattern",
        "trigger": "new_or_updated",
        "match": {"labels": [{"key": "service", "op": "regex", "value": pattern}]},
    }


class TestACatastrophicPatternStallsNothing:
    async def test_a_nested_quantifier_is_matched_in_linear_time_over_a_long_label(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "pattern",
            match={"labels": [{"key": "service", "op": "regex", "value": "(a+)+$"}]},
            recipients=[channel_recipient(t.oncall)],
            fallbackRecipients=[channel_recipient(t.sre)],
        )
        # A backtracking engine takes 2^n steps here (n = 1,000: never ends); RE2 takes n.
        await deliver(alert(id="ALRT-LONG-1", labels={"service": "a" * 1000 + "!"}))
        await deliver(alert(id="ALRT-LONG-2", labels={"service": "a" * 1000}))
        shown = " ".join(texts(sim, t.oncall.id))
        assert "ALRT-LONG-2" in shown and "ALRT-LONG-1" not in shown

    async def test_a_pattern_that_needs_backtracking_is_refused_naming_the_field(self, routed):
        t = routed.m365
        body = {
            **regex_workflow(r"(a)\1"),
            "recipients": [channel_recipient(t.oncall)],
            "fallbackRecipients": [channel_recipient(t.sre)],
        }
        response = await admin(
            "workflow_item", "PUT", f"tenants/{TENANT_ID}/workflows/pattern", body, workflow_id="pattern"
        )
        answer = json.loads(response.get_body())
        assert response.status_code == 400 and answer["field"] == "match.labels[0].value", answer
        assert "linear time" in answer["error"]


class TestNoSubscriberCanStopATenantsAlerts:
    say = test_workflows.TestSubscribeFromTeams.say

    async def test_a_subscription_over_the_limits_is_refused_and_alerts_keep_coming(self, routed):
        sim, t = routed, routed.m365
        t.oncall.members[t.admin.id] = ["owner"]
        await put_workflow(
            "ops", recipients=[channel_recipient(t.sre)], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        labels = " ".join(f"label k{i}=v" for i in range(25))
        reply = await self.say(sim, f"subscribe {labels}", t.admin.id)
        assert "match.labels" in reply and "more than 20" in reply, reply
        reply = await self.say(sim, "subscribe title~" + "x" * 201, t.admin.id)
        assert "titleContains" in reply and "200" in reply, reply
        listed = json.loads((await admin("workflows_list", "GET", f"tenants/{TENANT_ID}/workflows")).get_body())
        assert [w["id"] for w in listed["workflows"]] == ["ops"]
        await deliver(alert(id="ALRT-9"))
        assert len(cards(sim, t.sre.id)) == 1

    async def test_a_stored_definition_that_cannot_be_read_takes_nothing_else_down_and_can_be_deleted(self, routed):
        from shared import bootstrap
        from shared.domain.workflows import subscription_id

        sim, t = routed, routed.m365
        t.oncall.members[t.admin.id] = ["owner"]
        await put_workflow(
            "ops", recipients=[channel_recipient(t.sre)], fallbackRecipients=[channel_recipient(t.oncall)]
        )
        # What an earlier version saved from `subscribe` with 25 label filters.
        broken = {
            "name": "Subscription: On call",
            "trigger": "new_or_updated",
            "recipients": [channel_recipient(t.oncall)],
            "fallbackRecipients": [channel_recipient(t.oncall)],
            "match": {"labels": [{"key": f"k{i}", "op": "exists"} for i in range(25)]},
        }
        store = (await bootstrap.container()).store
        table = await store._t("workflows")
        mine = subscription_id(t.oncall.id)
        await table.create(
            {"PartitionKey": TENANT_ID, "RowKey": mine, "Definition": json.dumps(broken), "Revision": "1"}
        )
        await deliver(alert(id="ALRT-10"))
        assert len(cards(sim, t.sre.id)) == 1  # the readable workflow still routes
        response = await admin("workflows_list", "GET", f"tenants/{TENANT_ID}/workflows")
        assert response.status_code == 200
        assert [w["id"] for w in json.loads(response.get_body())["workflows"]] == ["ops"]
        assert (await self.say(sim, "unsubscribe", t.admin.id)).startswith("Unsubscribed")
        assert not await store.has_workflow(TENANT_ID, mine)
        await table.create(
            {"PartitionKey": TENANT_ID, "RowKey": mine, "Definition": json.dumps(broken), "Revision": "1"}
        )
        response = await admin("workflow_item", "DELETE", f"tenants/{TENANT_ID}/workflows/{mine}", workflow_id=mine)
        assert response.status_code == 204 and not await store.has_workflow(TENANT_ID, mine)


DEEP = b"[" * 100_000


class TestDeeplyNestedJson:
    async def test_the_ingest_route_refuses_it_naming_the_problem(self, ingesting):
        from tests.e2e.test_ingest import call, post

        status, body = await call(post("cloudevents", DEEP))
        assert status == 400 and "more than 64 levels deep" in body["error"], body

    async def test_the_workflow_and_send_routes_refuse_it(self, routed):
        for name, route, params in (
            ("workflow_item", f"tenants/{TENANT_ID}/workflows/deep", {"workflow_id": "deep"}),
            ("alert_send", f"tenants/{TENANT_ID}/alerts/ALRT-1/send", {"alert_id": "ALRT-1"}),
        ):
            req = func.HttpRequest(
                "PUT" if name == "workflow_item" else "POST",
                f"http://localhost:7071/api/{route}",
                headers={**tenant_headers(), "Content-Type": "application/json"},
                route_params={"tenant_id": TENANT_ID, **params},
                body=DEEP[:60_000],  # under the routes' size limit
            )
            response = await functions()[name](req)
            assert response.status_code == 400, (name, response.get_body())
            assert "levels deep" in json.loads(response.get_body())["error"]

    async def test_on_the_queue_it_is_recorded_as_rejected_not_retried(self, connector):
        from shared import bootstrap

        event = {**example("alert-created.json")}
        event["data"] = {**event["data"], "labels": json.loads("[" * 60 + "]" * 60)}
        raw = json.dumps(event).replace('"labels": ' + "[" * 60 + "]" * 60, '"labels": ' + "[" * 5000 + "]" * 5000)
        await deliver(raw.encode(), message_id="deep")
        [rejected] = await (await bootstrap.container()).store.list_rejected()
        assert rejected.message_id == "deep" and "levels deep" in rejected.reason

    async def test_the_bot_route_refuses_it(self, connector):
        request = func.HttpRequest(
            "POST", "http://localhost:7071/api/messages", headers={"Content-Type": "application/json"}, body=DEEP
        )
        response = await functions()["bot_messages"](request)
        assert response.status_code == 400 and b"levels deep" in response.get_body()


class TestNoTenantReachesAnothersConversations:
    """Tenant A has the bot in a 1:1 chat; tenant B (connected, the bot in its "On call" channel)
    names A's chat as a recipient by every route there is."""

    OTHER = "0b5d2c1a-0000-4000-8000-0000000000b2"

    async def a_chat(self, sim) -> str:
        from tests.e2e.test_hardening import install_in

        return await install_in(sim, self.OTHER, "a:1tenant-a-private-chat")

    async def test_a_workflow_naming_it_is_refused_when_saved(self, routed):
        sim, t = routed, routed.m365
        theirs = await self.a_chat(sim)
        for field, body in (
            (
                "recipients[0]",
                {
                    "recipients": [{"kind": "chat", "chatId": theirs}],
                    "fallbackRecipients": [channel_recipient(t.oncall)],
                },
            ),
            (
                "fallbackRecipients[0]",
                {
                    "recipients": [channel_recipient(t.oncall)],
                    "fallbackRecipients": [{"kind": "chat", "chatId": theirs}],
                },
            ),
        ):
            response = await admin(
                "workflow_item",
                "PUT",
                f"tenants/{TENANT_ID}/workflows/steal",
                {"name": "steal", "trigger": "new_or_updated", **body},
                workflow_id="steal",
            )
            answer = json.loads(response.get_body())
            assert response.status_code == 400 and answer["field"] == field, answer
            assert "not a conversation of tenant" in answer["error"]

    async def test_a_manual_send_naming_it_is_refused_by_the_route_and_on_the_queue(self, routed):
        sim, t = routed, routed.m365
        theirs = await self.a_chat(sim)
        await deliver(alert())
        response = await admin(
            "alert_send",
            "POST",
            f"tenants/{TENANT_ID}/alerts/ALRT-1042/send",
            {"recipients": [{"kind": "chat", "chatId": theirs}]},
            alert_id="ALRT-1042",
        )
        assert response.status_code == 400 and json.loads(response.get_body())["field"] == "recipients[0]"
        command = {
            "specversion": "1.0",
            "id": "send-steal",
            "source": "https://alerts.example.com",
            "type": "teams.message.send",
            "subject": "ALRT-1042",
            "tenantid": TENANT_ID,
            "data": {
                "recipients": [{"kind": "chat", "chatId": theirs}],
                "fallbackRecipients": [channel_recipient(t.sre)],
            },
        }
        await deliver(command, message_id="send-steal")
        assert cards(sim, theirs) == []
        assert "could not be reached" in " ".join(texts(sim, t.sre.id))  # the fallback, with the reason

    async def test_a_workflow_stored_before_the_check_delivers_to_its_fallback_not_there(self, routed):
        from shared import bootstrap

        sim, t = routed, routed.m365
        theirs = await self.a_chat(sim)
        definition = {
            "name": "old",
            "trigger": "new_or_updated",
            "recipients": [{"kind": "chat", "chatId": theirs}],
            "fallbackRecipients": [channel_recipient(t.sre)],
        }
        table = await (await bootstrap.container()).store._t("workflows")
        await table.create(
            {"PartitionKey": TENANT_ID, "RowKey": "old", "Definition": json.dumps(definition), "Revision": "1"}
        )
        await deliver(alert())
        assert cards(sim, theirs) == []
        [note] = texts(sim, t.sre.id)
        assert "not a conversation of tenant" in note


class TestAnAlertThatPassesTheDoorFits:
    async def test_labels_of_9300_cjk_characters_become_a_card(self, ingesting, queue_sink):
        from tests.e2e.test_alert_flow import cards as cards_of
        from tests.e2e.test_alert_flow import install
        from tests.e2e.test_ingest import call, post, run_queued

        channel = await install(ingesting, "channel")
        event = example("alert-created.json")
        event["data"]["labels"] = {f"標籤{i}": "監控警報" * 232 for i in range(10)}  # 9,300 characters
        status, body = await call(post("cloudevents", event))
        assert status == 202, body
        await run_queued(queue_sink)
        [card] = cards_of(ingesting, channel)
        assert "監控警報" in json.dumps(card.attachments[0]["content"], ensure_ascii=False)

    async def test_labels_too_large_as_stored_are_refused_at_the_door_naming_them(self, ingesting):
        from tests.e2e.test_ingest import call, post

        event = example("alert-created.json")
        # 10,000 characters sent, each stored as six (\\u0001): 60,000, more than a property holds.
        event["data"]["labels"] = {f"k{i}": "\x01" * 1000 for i in range(10)}
        status, body = await call(post("cloudevents", event))
        assert status == 400 and body.get("field") == "data.labels" and "as stored" in body["error"], body


class TestKeysWithoutAGraphConnection:
    async def test_the_tenant_key_is_what_the_readme_says_and_opens_the_source_keys(self, ingesting):
        import base64
        import hashlib
        import hmac

        from tests.e2e.test_ingest import ADMIN_KEY

        def request(route: str, key: str, **params: str) -> func.HttpRequest:
            return func.HttpRequest(
                "GET",
                f"http://localhost:7071/api/{route}",
                headers={"X-Admin-Key": key},
                route_params={"tenant_id": TENANT_ID, **params},
                body=b"",
            )

        response = await functions()["tenant_admin_key"](request(f"tenants/{TENANT_ID}/admin-key", ADMIN_KEY))
        assert response.status_code == 200, response.get_body()  # GRAPH_APP_ID is not set here
        # The README: HMAC-SHA256 of "tenant-admin-key/v1/<tenant id in lower case>" under
        # ADMIN_API_KEY, base64url without padding.
        mac = hmac.new(ADMIN_KEY.encode(), f"tenant-admin-key/v1/{TENANT_ID.lower()}".encode(), hashlib.sha256)
        readme_key = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
        assert json.loads(response.get_body())["key"] == readme_key
        source = await functions()["ingest_source"](
            request(f"tenants/{TENANT_ID}/sources/prod-am", readme_key, source="prod-am")
        )
        assert source.status_code == 200 and json.loads(source.get_body())["key"], source.get_body()


class TestTheSourceKeyInTheFormsSourcesKeepSecret:
    def post(self, headers: dict[str, str], params: dict[str, str] | None = None) -> func.HttpRequest:
        return func.HttpRequest(
            "POST",
            "http://localhost:7071/api/events/cloudevents",
            headers=headers,
            params={"tenant": TENANT_ID, "source": "prod-am", **(params or {})},
            route_params={"format": "cloudevents"},
            body=json.dumps(example("alert-created.json")).encode(),
        )

    async def test_bearer_and_basic_auth_carry_it_as_alertmanager_and_grafana_send_it(self, ingesting):
        import base64

        from shared.security import ingest_key
        from tests.e2e.test_ingest import ADMIN_KEY

        key = ingest_key(ADMIN_KEY, TENANT_ID, "prod-am")
        json_type = {"Content-Type": "application/json"}
        basic = base64.b64encode(f"alertmanager:{key}".encode()).decode()
        for headers in ({"Authorization": f"Bearer {key}"}, {"Authorization": f"Basic {basic}"}):
            response = await functions()["ingest"](self.post({**json_type, **headers}))
            assert response.status_code == 202, (headers, response.get_body())
        for wrong in (
            {"Authorization": "Bearer nope"},
            {"Authorization": "Basic " + base64.b64encode(b"u:nope").decode()},
        ):
            assert (await functions()["ingest"](self.post({**json_type, **wrong}))).status_code == 401

    async def test_the_ready_urls_carry_no_key_except_where_the_source_has_no_other_way(self, ingesting):
        from shared.security import tenant_admin_key
        from tests.e2e.test_ingest import ADMIN_KEY

        req = func.HttpRequest(
            "GET",
            f"http://localhost:7071/api/tenants/{TENANT_ID}/sources/prod-am",
            headers={"X-Admin-Key": tenant_admin_key(ADMIN_KEY, TENANT_ID)},
            route_params={"tenant_id": TENANT_ID, "source": "prod-am"},
            body=b"",
        )
        body = json.loads((await functions()["ingest_source"](req)).get_body())
        with_key = sorted(name for name, url in body["urls"].items() if "key=" in url)
        assert with_key == ["azure-monitor"] and body["authorization"] == f"Bearer {body['key']}"

    async def test_json_sent_as_text_plain_is_refused(self, ingesting):
        from shared.security import ingest_key
        from tests.e2e.test_ingest import ADMIN_KEY

        key = ingest_key(ADMIN_KEY, TENANT_ID, "prod-am")
        # What a page on another site can make a browser send without asking first.
        response = await functions()["ingest"](self.post({"Content-Type": "text/plain"}, {"key": key}))
        assert response.status_code == 415 and b"application/json" in response.get_body()


class TestTheAlertsListKeepsToWhatThePersonMaySee:
    async def test_someone_in_a_chat_that_never_got_the_alert_sees_none_of_it(self, connector):
        from tests.e2e.conftest import BOT_APP_ID
        from tests.e2e.test_alert_flow import install
        from tests.support.app import post_activity

        sim = connector
        await install(sim, "channel")
        event = example("alert-created.json")
        await deliver(event)
        guest = {"id": "29:guest", "name": "A Guest", "aadObjectId": "0000guest-0000-4000-8000-000000000001"}
        chat = "a:1guest-chat"
        setup = sim.installation_update(
            "personal", bot_app_id=BOT_APP_ID, tenant_id=TENANT_ID, conversation_id=chat, user=guest
        )
        await post_activity(setup, sim.auth_header(BOT_APP_ID, setup["serviceUrl"]))
        message = sim.message(
            "alerts", "personal", tenant_id=TENANT_ID, bot_app_id=BOT_APP_ID, user=guest, conversation_id=chat
        )
        await post_activity(message, sim.auth_header(BOT_APP_ID, message["serviceUrl"]))
        listing = json.dumps(sim.conversation(chat).activities[-1].attachments[0]["content"])
        assert "Open alerts shown here (0)" in listing
        assert event["data"]["id"] not in listing and event["data"]["title"] not in listing


class TestARefusedPressShowsNothingOfTheOtherAlert:
    async def test_button_data_naming_another_alert_gets_the_reason_not_that_alerts_card(self, connector):
        from tests.e2e.conftest import BOT_APP_ID
        from tests.e2e.test_alert_flow import cards as cards_of
        from tests.e2e.test_alert_flow import install
        from tests.support.app import post_activity

        sim = connector
        await install(sim, "channel")
        secret = example("alert-created.json")
        secret["data"] = {
            **secret["data"],
            "id": "SECRET-1",
            "title": "Payroll database breached",
            "description": "db-hr-01 exfiltration",
        }
        secret["subject"], secret["id"] = "SECRET-1", "evt-secret-1"
        await deliver(secret)  # shown in the channel only
        group = await install(sim, "groupChat")
        await deliver(example("alert-created.json"))  # shown in the channel and the group chat
        [card] = cards_of(sim, group)
        data = next(a for a in card.attachments[0]["content"]["actions"] if a.get("verb") == "resolve")["data"]
        from shared import bootstrap

        [hidden] = await (await bootstrap.container()).store.find_alerts(TENANT_ID, "SECRET-1")
        forged = {**data, "alertKey": hidden.key, "verb": "resolve"}
        activity = sim.invoke_adaptive_card_action(
            "resolve",
            forged,
            "groupChat",
            reply_to_id=card.id,
            bot_app_id=BOT_APP_ID,
            tenant_id=TENANT_ID,
            conversation_id=group,
        )
        response = await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
        answer = response.get_body().decode()
        assert response.status_code == 200 and "Payroll" not in answer and "exfiltration" not in answer, answer
        assert "SECRET-1" not in answer
        assert hidden.status == "open"


class TestWhatASourceKeyMayDo:
    def post(self, source: str, key: str, event: dict) -> func.HttpRequest:
        return func.HttpRequest(
            "POST",
            "http://localhost:7071/api/events/cloudevents",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
            params={"tenant": TENANT_ID, "source": source},
            route_params={"format": "cloudevents"},
            body=json.dumps(event).encode(),
        )

    async def test_one_sources_key_cannot_change_another_sources_alert(self, ingesting, queue_sink):
        from shared import bootstrap
        from shared.security import ingest_key
        from tests.e2e.test_ingest import ADMIN_KEY, run_queued

        created = example("alert-created.json")
        resolved = example("alert-resolved.json")
        response = await functions()["ingest"](self.post("team-a", ingest_key(ADMIN_KEY, TENANT_ID, "team-a"), created))
        assert response.status_code == 202
        # Team B's key, with Team A's alert's source and id: accepted at the door (it cannot
        # know), refused when applied, with the reason.
        response = await functions()["ingest"](
            self.post("team-b", ingest_key(ADMIN_KEY, TENANT_ID, "team-b"), resolved)
        )
        assert response.status_code == 202
        await run_queued(queue_sink)
        store = (await bootstrap.container()).store
        [alert] = await store.find_alerts(TENANT_ID, created["data"]["id"])
        assert alert.status == "open" and alert.ingest_source == "team-a"
        [rejected] = await store.list_rejected()
        assert rejected.field == "source" and "team-a" in rejected.reason

    async def test_a_sources_key_is_rotated_alone(self, ingesting):
        from shared.security import ingest_key, tenant_admin_key
        from tests.e2e.test_ingest import ADMIN_KEY

        def setup(method: str) -> func.HttpRequest:
            return func.HttpRequest(
                method,
                f"http://localhost:7071/api/tenants/{TENANT_ID}/sources/team-a",
                headers={"X-Admin-Key": tenant_admin_key(ADMIN_KEY, TENANT_ID)},
                route_params={"tenant_id": TENANT_ID, "source": "team-a"},
                body=b"",
            )

        old = json.loads((await functions()["ingest_source"](setup("GET"))).get_body())["key"]
        rotated = json.loads((await functions()["ingest_source"](setup("POST"))).get_body())
        assert rotated["keyVersion"] == 2 and rotated["key"] != old
        event = example("alert-created.json")
        assert (await functions()["ingest"](self.post("team-a", old, event))).status_code == 401
        assert (await functions()["ingest"](self.post("team-a", rotated["key"], event))).status_code == 202
        other = ingest_key(ADMIN_KEY, TENANT_ID, "team-b")  # every other source's key stays
        assert (await functions()["ingest"](self.post("team-b", other, event))).status_code == 202

"""The connector as `make run` runs it, with the real Microsoft 365 Agents Playground as the
Teams client: the local Functions host serves function_app on a free port, Azurite keeps the
state, and the Playground installs the bot, chats with it and shows the cards it posts."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from shared import bootstrap
from tests.support.cards import status_of, text_of, texts, walk
from tests.support.playground import Playground, StreamEvent
from tools.localhost import COMPLETED, LocalHost

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.playground]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WAIT_SECONDS = 20.0


def local_settings() -> dict[str, str]:
    """The embedded local defaults, as Core Tools would load local.settings.json."""
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return {name: str(value) for name, value in values.items()}


def fresh_app():
    """A new FunctionApp from function_app.py: an app object can be indexed only once
    (get_functions), and other tests index function_app.app itself."""
    spec = importlib.util.spec_from_file_location("function_app_for_playground", ROOT / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


@pytest.fixture
async def local_run(azurite, table_prefix, monkeypatch):
    """The local host with function_app in-process, and the Playground pointed at its bot endpoint."""
    env = {
        **local_settings(),
        "STATE_TABLES_CONNECTION": azurite.connection_string,
        "STATE_TABLE_PREFIX": table_prefix,
        "DANGEROUSLY_ALLOW_UNAUTHENTICATED_BOT_REQUESTS": "true",
        "BOT_APP_ID": "",
        "BOT_APP_PASSWORD": "",
        "BOT_OPENID_METADATA_URL": "",
        "BOT_TOKEN_URL": "",
        "DEFAULT_TENANT_ID": "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the app reads its settings from the environment
    await bootstrap.reset()
    host = LocalHost(
        fresh_app(),
        port=0,
        env=env,
        host_json=ROOT / "host.json",
        app_directory=ROOT,
        duplicate_detection=(env["ALERT_EVENTS_QUEUE"], env["DELIVERY_QUEUE"], env["TEAMS_ACTIONS_QUEUE"]),
    )
    await host.start()
    # The app's own queues (deliveries, actions) are this host's, on the port it got.
    monkeypatch.setenv("LOCAL_QUEUE_HOST_URL", host.url)
    try:
        async with Playground(f"{host.url}/api/messages") as playground:
            yield host, playground, env["ALERT_EVENTS_QUEUE"]
            # The bot may still be answering the Playground (it streams a reply before the
            # bot's HTTP response ends): let it finish before the Playground goes away.
            await host.wait_idle(timeout=WAIT_SECONDS)
    finally:
        await host.stop()
        await bootstrap.reset()


def _status(card: dict[str, Any]) -> str | None:
    """The status badge's word, or None when the card has none (not an alert card)."""
    badges = [node for node in walk(card) if node.get("id") == "status"]
    return status_of(card) if badges else None


def alert_card(event: StreamEvent) -> bool:
    return any(_status(card) is not None for card in event.cards)


def status(event: StreamEvent) -> str | None:
    return next(_status(card) for card in event.cards)


async def publish(host, queue: str, example: str) -> None:
    message_id = await host.publish(queue, (EXAMPLES / example).read_bytes(), content_type="application/json")
    await host.wait_idle(timeout=WAIT_SECONDS)
    [message] = [m for m in host.messages(queue) if m.message_id == message_id]
    assert message.state == COMPLETED, f"{example} was not processed: {message.state}, errors {message.errors}"


async def install(playground: Playground, conversation_id: str | None = None) -> str:
    """Install the bot (the personal chat by default) and wait for its welcome: by then the
    connector has stored the conversation."""
    chat = conversation_id or playground.personal_chat_id
    await playground.install(chat)
    await playground.wait_for(
        "welcome message",
        lambda e: (
            e.action == "createMessage"
            and e.conversation_id == chat
            and "Thanks for adding" in (e.message.get("text") or "")
        ),
        WAIT_SECONDS,
    )
    return chat


class TestWithAgentsPlayground:
    async def test_installing_the_bot_stores_the_playground_conversation(self, local_run):
        _host, playground, _ = local_run
        chat = await install(playground)
        store = (await bootstrap.container()).store
        [record] = await store.list_conversations(playground.tenant_id)
        assert record.conversation_id == chat and record.conversation_type == "personal"
        assert record.service_url.rstrip("/").endswith("/_connector")

    async def test_help_from_the_chat_answers_with_the_command_list(self, local_run):
        _host, playground, _ = local_run
        chat = await install(playground)
        await playground.send_message(chat, "help")
        answer = await playground.wait_for(
            "help card",
            lambda e: (
                e.action == "createMessage"
                and e.conversation_id == chat
                and any("help" in json.dumps(c) for c in e.cards)
            ),
            WAIT_SECONDS,
        )
        assert answer.message["from"]["id"] == playground.config["bot"]["id"]

    async def test_an_alert_is_posted_once_then_updated_in_place_when_resolved(self, local_run):
        host, playground, queue = local_run
        chat = await install(playground)

        await publish(host, queue, "alert-created.json")
        posted = await playground.wait_for(
            "alert card", lambda e: e.action == "createMessage" and alert_card(e), WAIT_SECONDS
        )
        assert posted.conversation_id == chat and status(posted) == "Open", playground.describe()

        await publish(host, queue, "alert-resolved.json")
        updated = await playground.wait_for(
            "update of the alert card", lambda e: e.action == "updateMessage" and alert_card(e), WAIT_SECONDS
        )
        assert updated.message_id == posted.message_id, playground.describe()
        assert status(updated) == "Resolved", playground.describe()
        created_cards = [e for e in playground.events if e.action == "createMessage" and alert_card(e)]
        assert created_cards == [posted], f"expected exactly one alert card posted\n{playground.describe()}"

    async def test_a_subscribed_chat_gets_the_alerts_and_an_unsubscribed_one_does_not(self, local_run):
        host, playground, queue = local_run
        personal = await install(playground)  # installed: without workflows it would get every alert
        [group] = [c["id"] for c in playground.config["groupChats"]][:1]
        await playground.install(group)
        # A group chat may be subscribed by a connector admin: the local settings make the
        # Playground's user one.
        await playground.send_message(group, "subscribe severity>=high", mention_bot=True)
        await playground.wait_for(
            "subscription reply",
            lambda e: e.conversation_id == group and (e.message.get("text") or "").startswith("Subscribed"),
            WAIT_SECONDS,
        )

        await publish(host, queue, "alert-created.json")  # severity high
        posted = await playground.wait_for(
            "alert card", lambda e: e.action == "createMessage" and alert_card(e), WAIT_SECONDS
        )
        assert posted.conversation_id == group, playground.describe()
        assert "via workflow" in json.dumps(posted.cards), playground.describe()
        await host.wait_idle(timeout=WAIT_SECONDS)
        assert [e for e in playground.events if alert_card(e) and e.conversation_id == personal] == [], (
            playground.describe()
        )

    async def test_the_publisher_tells_what_became_of_each_event(self, local_run, tmp_path):
        """make publish: posted and where, updated, rejected with the reason (exit code 1), and
        every example reaches the Playground."""
        import asyncio
        import io

        from tools import publish as publisher

        host, playground, queue = local_run
        await install(playground)

        async def run(*files: Path) -> tuple[int, str]:
            out = io.StringIO()
            code = await asyncio.to_thread(
                publisher.main,
                [*map(str, files), "--queue", "--queue-name", queue, "--host", host.url, "--wait", str(WAIT_SECONDS)],
                out,
            )
            return code, out.getvalue()

        code, said = await run(EXAMPLES / "alert-created.json")
        assert (
            code == 0
            and "for alert ALRT-1042: processed, 1 delivery job(s) queued" in said
            and "card of ALRT-1042 posted in" in said
        ), said
        code, said = await run(EXAMPLES / "alert-resolved.json")
        assert code == 0 and "card of ALRT-1042 updated in" in said and "(resolved)" in said, said
        code, said = await run(EXAMPLES / "issue-created.json")  # names the Playground's tenant
        assert code == 0 and "posted in" in said, said
        bad = tmp_path / "bad.json"
        bad.write_text(
            json.dumps(
                {"specversion": "1.0", "id": "e-bad", "source": "x", "type": "alert.created", "data": {"id": "A-1"}}
            )
        )
        code, said = await run(bad)
        assert code == 1 and "REJECTED" in said and "title" in said, said

        # The console page shows the same: bodies, what became of them, escaped.
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(f"{host.url}/_localhost/console") as answer:
            page = await answer.text()
        assert answer.status == 200 and "card of ALRT-1042 posted in" in page and "rejected: data.title" in page, page[
            :3000
        ]
        assert "&quot;specversion&quot;" in page and '"specversion"' not in page  # bodies shown, escaped


@pytest.fixture
async def local_run_with_m365(azurite, table_prefix, monkeypatch):
    """What `make run` starts: the local host, the Playground, and the simulator's Microsoft 365
    seeded with the Playground's organisation, the tenant connected by admin consent."""
    import asyncio

    from shared.security import new_key
    from tools.local_m365 import LOCAL_GRAPH_APP_ID, LOCAL_TEAMS_APP_CATALOG_ID, connect_tenant, seed
    from tools.teams_simulator import TeamsSimulator

    simulator = TeamsSimulator().start()
    secret, admin_key = new_key(), new_key()
    simulator.directory.register_app(LOCAL_GRAPH_APP_ID, secret)
    env = {
        **local_settings(),
        "STATE_TABLES_CONNECTION": azurite.connection_string,
        "STATE_TABLE_PREFIX": table_prefix,
        "BOT_APP_ID": "",
        "BOT_APP_PASSWORD": "",
        "BOT_OPENID_METADATA_URL": "",
        "BOT_TOKEN_URL": "",
        "DEFAULT_TENANT_ID": "",
        "GRAPH_APP_ID": LOCAL_GRAPH_APP_ID,
        "TEAMS_APP_CATALOG_ID": LOCAL_TEAMS_APP_CATALOG_ID,  # as make run sets it
        "GRAPH_CLIENT_SECRET": secret,
        "GRAPH_BASE_URL": simulator.graph_url,
        "AUTHORITY_HOST": simulator.authority_host,
        "LOCAL_CA_CERT_FILE": simulator.ca_file,
        "ADMIN_API_KEY": admin_key,
        "TOKEN_ENCRYPTION_KEY": new_key(),
        "STATE_SIGNING_KEY": new_key(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    await bootstrap.reset()
    host = LocalHost(
        fresh_app(),
        port=0,
        env=env,
        host_json=ROOT / "host.json",
        app_directory=ROOT,
        duplicate_detection=(env["ALERT_EVENTS_QUEUE"], env["DELIVERY_QUEUE"], env["TEAMS_ACTIONS_QUEUE"]),
    )
    await host.start()
    monkeypatch.setenv("LOCAL_QUEUE_HOST_URL", host.url)
    monkeypatch.setenv("PUBLIC_BASE_URL", host.url)
    try:
        async with Playground(f"{host.url}/api/messages") as playground:
            monkeypatch.setenv("TEAMS_SERVICE_URL", f"{playground.url}/_connector")  # as make run sets it
            # The settings are read once per container: one built since the host started (a
            # trigger's first run) would address a person's new chat to Teams' global service URL.
            await bootstrap.reset()
            tenant = seed(simulator.directory, playground.config, playground.url)
            answer = await asyncio.to_thread(connect_tenant, host.url, admin_key, simulator.ca_file)
            assert answer.startswith("Connected"), answer
            host.m365 = simulator  # the revocation test reaches the identity side through it
            yield host, playground, env["ALERT_EVENTS_QUEUE"], tenant
            await host.wait_idle(timeout=WAIT_SECONDS)
    finally:
        await host.stop()
        await bootstrap.reset()  # the app's Graph and identity clients, before their server goes
        simulator.stop()


class TestButtonsThatNeedMicrosoft365:
    async def test_create_channel_and_meeting_from_a_card_in_the_playground_team(self, local_run_with_m365):
        host, playground, queue, tenant = local_run_with_m365
        [team] = playground.config["teams"]
        general = team["channels"][0]["id"]
        await install(playground, general)
        await publish(host, queue, "alert-created.json")
        posted = await playground.wait_for(
            "alert card",
            lambda e: e.action == "createMessage" and alert_card(e) and e.conversation_id == general,
            WAIT_SECONDS,
        )
        # The card's id in the conversation, as the Playground's page knows it (the stream's
        # messageId is the Playground's timestamp): the activity id the connector recorded.
        store = (await bootstrap.container()).store
        [state] = await store.find_alerts(playground.tenant_id, "ALRT-1042")
        card_id = (await store.get_delivery(playground.tenant_id, state.key, general)).activity_id
        buttons = {a.get("verb"): a for a in posted.cards[0]["actions"] if a["type"] == "Action.Execute"}

        answer = await playground.press(f"{general};messageid={card_id}", card_id, buttons["create_channel"])
        card = answer["value"]
        assert any(a.get("title") == "Open channel" for a in card["actions"]), [
            t for t in texts(card) if "\u26a0" in t or "\u2705" in t or "hannel" in t
        ]
        [made] = [c for c in tenant.teams[team["aadGroupId"]].channels.values() if "ALRT-1042" in c.display_name]
        assert "created" in text_of(card, "note")
        # The new channel is one the Playground shows (the spare one of tools/playground.yml), so the
        # alert's card is posted there, as in Teams: nothing undeliverable.
        assert made.id == "spare-channel-1"
        await playground.wait_for(
            "the card in the alert's channel",
            lambda e: e.action == "createMessage" and alert_card(e) and e.conversation_id.startswith(made.id),
            WAIT_SECONDS,
        )
        await host.wait_idle(timeout=WAIT_SECONDS)
        assert await store.list_undeliverable(playground.tenant_id) == []

        answer = await playground.press(f"{general};messageid={card_id}", card_id, buttons["create_meeting"])
        card = answer["value"]
        assert any(a.get("title") == "Join meeting" for a in card["actions"]), json.dumps(card)[:2000]
        organiser = playground.config["currentUser"]["aadObjectId"]
        [meeting] = tenant.events[organiser]  # on the calendar of the person who pressed it
        assert "High CPU" in meeting["subject"]


class TestTheWalkthrough:
    """The README's walkthrough under what `make run` starts: every example workflow saved with
    `make publish`, every example payload posted through the ingest route, the digest's timer:
    each says what it did, and every card reaches the Playground conversation it is for (its
    personal chat, its team's channels, its group chat), none undeliverable."""

    async def test_every_example_workflow_and_payload_delivers_in_the_playground(self, local_run_with_m365):
        import asyncio
        import io

        import aiohttp

        from shared.security import tenant_admin_key
        from tools import publish as publisher

        host, playground, _queue, _tenant = local_run_with_m365
        personal = await install(playground)
        tenant = playground.tenant_id
        [group_chat] = [c["id"] for c in playground.config["groupChats"]]
        [general] = [c["id"] for c in playground.config["teams"][0]["channels"] if c["name"] == "General"]

        async def run(path: Path) -> str:
            out = io.StringIO()
            code = await asyncio.to_thread(
                publisher.main, [str(path), "--tenant", tenant, "--host", host.url, "--wait", str(WAIT_SECONDS)], out
            )
            said = out.getvalue()
            assert code == 0, said
            assert "undeliverable" not in said.lower() and "REFUSED" not in said, said
            return said

        for workflow in sorted((EXAMPLES / "workflows").glob("*.json")):
            said = await run(workflow)
            assert f"workflow {workflow.stem} saved for tenant {tenant}" in said, said
        said = {
            name: await run(EXAMPLES / name)
            for name in (
                "alert-created.json",
                "alert-acknowledged.json",
                "alert-resolved.json",
                "alertmanager-firing.json",
                "alertmanager-resolved.json",
                "issue-created.json",
                "grafana-firing.json",
                "azure-monitor-metric-fired.json",
                "pagerduty-incident-triggered.json",
            )
        }
        assert "accepted (HTTP 202) as cloudevents" in said["alert-created.json"]
        assert "card of ALRT-1042 posted in channel My Team / General" in said["alert-created.json"], said
        assert "card of ALRT-1042 updated in" in said["alert-acknowledged.json"], said
        assert "(resolved)" in said["alert-resolved.json"], said
        assert "accepted (HTTP 202) as alertmanager" in said["alertmanager-firing.json"]
        assert "card of ISS-2207 posted in the group chat Security triage" in said["issue-created.json"], said
        assert "card of ISS-2207 posted in the personal chat of Alex Wilber" in said["issue-created.json"], said
        for name in ("grafana-firing.json", "azure-monitor-metric-fired.json", "pagerduty-incident-triggered.json"):
            assert "accepted (HTTP 202) as" in said[name] and "processed" in said[name], said[name]

        await host.run_timer("periodic")  # the daily digest's first period
        await host.wait_idle(timeout=WAIT_SECONDS)
        digest = await playground.wait_for(
            "daily digest",
            lambda e: e.action == "createMessage" and "Daily digest" in json.dumps(e.cards),
            WAIT_SECONDS,
        )
        assert digest.conversation_id == personal

        shown = {e.conversation_id.split(";")[0] for e in playground.events if e.action == "createMessage" and e.cards}
        assert {general, group_chat, personal} <= shown, playground.describe()
        key = {"X-Admin-Key": tenant_admin_key(os.environ["ADMIN_API_KEY"], tenant)}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{host.url}/api/tenants/{tenant}/undeliverable", headers=key) as answer:
                body = await answer.json()
        assert answer.status == 200 and body["count"] == 0 and body["undeliverable"] == [], body


class TestDeepHealth:
    async def test_every_dependency_is_tried_and_a_problem_is_named(self, local_run_with_m365):
        import aiohttp

        host, playground, _queue, tenant = local_run_with_m365
        key = {"X-Admin-Key": os.environ["ADMIN_API_KEY"]}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{host.url}/api/health?deep=1") as answer:
                assert answer.status == 401  # the admin key is required
            async with http.get(f"{host.url}/api/health?deep=1", headers=key) as answer:
                body = await answer.json()
            assert answer.status == 200 and body["status"] == "ok", body
            names = {c["name"] for c in body["checks"]}
            assert {
                "Table Storage",
                "bot token",
                "queue alert-events",
                "queue teams-deliveries",
                f"tenant {playground.tenant_id} (bot)",
            } <= names

            # A dead letter and a revoked consent: 503, each named.
            from tools.localhost.queues import QueuedMessage

            stuck = QueuedMessage(
                "teams-deliveries",
                "stuck",
                b"{}",
                None,
                {},
                10**6,
                state="deadlettered",
                dead_letter_reason="MaxDeliveryCountExceeded",
            )
            host.queue("teams-deliveries")._dead_letter.append(stuck)
            tenant.app_grants.clear()  # consent revoked: the tokens issued before stop working too
            host.m365.directory.access_tokens.clear()
            async with http.get(f"{host.url}/api/health?deep=1", headers=key) as answer:
                body = await answer.json()
        assert answer.status == 503 and body["status"] == "unwell"
        failed = {c["name"]: c["detail"] for c in body["checks"] if not c["ok"]}
        assert "1 dead-lettered" in failed["queue teams-deliveries"]
        assert f"tenant {playground.tenant_id} (bot)" in failed


class TestSmokeTest:
    async def test_a_test_alert_is_posted_then_resolved_in_place_and_a_tenant_without_the_bot_fails(
        self, local_run_with_m365
    ):
        import asyncio
        import io

        from tools import smoke_test

        host, playground, _, _ = local_run_with_m365
        await install(playground)

        async def run(tenant: str, wait: str) -> tuple[int, str]:
            out = io.StringIO()
            code = await asyncio.to_thread(
                smoke_test.main, ["--host", host.url, "--tenant", tenant, "--wait", wait], out
            )
            return code, out.getvalue()

        code, said = await run(playground.tenant_id, str(WAIT_SECONDS))
        assert code == 0 and "2. 1 card(s) posted" in said and "3. resolved: every card updated in place" in said, said
        assert os.environ["ADMIN_API_KEY"] not in said
        code, said = await run("bbbbbbbb-0000-4000-8000-00000000000b", "2")
        assert code == 1 and "FAILED: no card was posted: is the bot installed" in said, said

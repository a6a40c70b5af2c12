"""Card buttons through the real bot endpoint: a valid bot JWT and the invoke payload Teams
sends for Action.Execute (name adaptiveCard/action)."""

from __future__ import annotations

import json

import pytest

from shared import bootstrap
from tests.e2e.conftest import BOT_APP_ID, TENANT_ID
from tests.e2e.test_alert_flow import card_status, cards, example, install
from tests.support.app import deliver, post_activity, tick
from tests.support.cards import status_of, text_of, texts, walk

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


async def setup_alert(sim) -> tuple[str, str, dict]:
    """Bot in a team channel and a personal chat; one alert posted to both."""
    channel_id = await install(sim, "channel")
    personal_id = await install(sim, "personal")
    await deliver(example("alert-created.json"))
    [card] = cards(sim, channel_id)
    data = next(a for a in card.attachments[0]["content"]["actions"] if a.get("verb") == "acknowledge")["data"]
    return channel_id, personal_id, {"card_id": card.id, "data": data}


async def click(sim, verb: str, data: dict, channel_id: str, card_id: str, tenant_id: str = TENANT_ID):
    activity = sim.invoke_adaptive_card_action(
        verb,
        {**data, "verb": verb},
        "channel",
        reply_to_id=card_id,
        bot_app_id=BOT_APP_ID,
        tenant_id=tenant_id,
        channel={"id": channel_id, "name": "General"},
    )
    response = await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())


def status_in(invoke_body: dict) -> str:
    return status_of(invoke_body["value"])


class TestVerbs:
    @pytest.mark.parametrize("verb, status", [("acknowledge", "Acknowledged"), ("resolve", "Resolved")])
    async def test_a_click_changes_the_state_returns_the_card_updates_the_copies_and_publishes_once(
        self, acting_connector, queue_sink, verb, status
    ):
        sim = acting_connector
        channel_id, personal_id, alert = await setup_alert(sim)
        body = await click(sim, verb, alert["data"], channel_id, alert["card_id"])
        assert body["type"] == "application/vnd.microsoft.card.adaptive" and status_in(body) == status
        [other] = cards(sim, personal_id)
        assert card_status(other) == status and other.updates == 1
        [(queue, message_id, event)] = queue_sink.messages
        assert (
            queue == "teams-actions"
            and event["type"] == f"teams.alert.{'acknowledged' if verb == 'acknowledge' else 'resolved'}"
        )
        assert event["id"] == message_id and event["data"]["actor"]["aadObjectId"]
        [state] = await (await bootstrap.container()).store.find_alerts(
            TENANT_ID, example("alert-created.json")["data"]["id"]
        )
        assert state.status == status.lower()

    async def test_reopen_on_a_resolved_card(self, acting_connector, queue_sink):
        sim = acting_connector
        channel_id, _, alert = await setup_alert(sim)
        await click(sim, "resolve", alert["data"], channel_id, alert["card_id"])
        body = await click(sim, "reopen", alert["data"], channel_id, alert["card_id"])
        assert status_in(body) == "Reopened"
        # Who did what stays on the card: the reopen is not shown as a plain "Open".
        lines = [t.split(" \u00b7 ")[0] for t in texts(body["value"]) if " \u00b7 {{DATE(" in t]
        assert lines[-2:] == [
            "Resolved by Alex Wilber",
            "Reopened by Alex Wilber",
        ] and "Reopened by Alex Wilber." in text_of(body["value"], "note")
        assert [e["type"] for _, _, e in queue_sink.messages] == ["teams.alert.resolved", "teams.alert.reopened"]

    async def test_a_double_click_publishes_one_event(self, acting_connector, queue_sink):
        sim = acting_connector
        channel_id, _, alert = await setup_alert(sim)
        await click(sim, "acknowledge", alert["data"], channel_id, alert["card_id"])
        second = await click(sim, "acknowledge", alert["data"], channel_id, alert["card_id"])
        assert status_in(second) == "Acknowledged" and "already acknowledged" in json.dumps(second)
        assert len(queue_sink.messages) == 1

    async def test_a_click_from_another_tenant_is_refused(self, acting_connector, queue_sink):
        sim = acting_connector
        channel_id, _, alert = await setup_alert(sim)
        body = await click(
            sim,
            "acknowledge",
            alert["data"],
            channel_id,
            alert["card_id"],
            tenant_id="0f0f0f0f-0000-4000-8000-0000000000ff",
        )
        assert "another organisation" in json.dumps(body)
        assert queue_sink.messages == []
        [state] = await (await bootstrap.container()).store.list_open_alerts(TENANT_ID)
        assert state.status == "open"

    async def test_an_action_whose_publish_failed_is_published_by_the_timer(self, acting_connector, queue_sink):
        sim = acting_connector
        channel_id, _, alert = await setup_alert(sim)
        queue_sink.fail_next = 1
        await click(sim, "acknowledge", alert["data"], channel_id, alert["card_id"])
        assert queue_sink.messages == []
        await tick()
        assert [e["type"] for _, _, e in queue_sink.messages] == ["teams.alert.acknowledged"]


class TestCommands:
    async def test_ack_by_id_in_a_personal_chat(self, acting_connector, queue_sink):
        sim = acting_connector
        _, personal_id, _ = await setup_alert(sim)
        activity = sim.message("ack ALRT-1042", "personal", bot_app_id=BOT_APP_ID, tenant_id=TENANT_ID)
        await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
        assert "Acknowledged" in (sim.conversation(personal_id).activities[-1].text or "")
        assert [e["type"] for _, _, e in queue_sink.messages] == ["teams.alert.acknowledged"]

    async def test_alerts_with_an_at_mention_in_a_channel(self, acting_connector):
        sim = acting_connector
        channel_id, _, alert = await setup_alert(sim)
        activity = sim.message(
            "alerts",
            "channel",
            mention_bot=True,
            bot_app_id=BOT_APP_ID,
            tenant_id=TENANT_ID,
            channel={"id": channel_id, "name": "General"},
        )
        await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
        listing = sim.conversation(channel_id).activities[-1].attachments[0]["content"]
        assert "ALRT-1042" in json.dumps(listing) and "Open alerts shown here (1)" in json.dumps(listing)
        # Each alert in the list has its badges, age and buttons; a press answers with the list, refreshed.
        row = next(n for n in walk(listing) if n.get("type") == "Container")
        assert status_of(row, "status-0") == "Open" and text_of(row, "severity-0").endswith("HIGH")
        [ack] = [n for n in walk(row) if n.get("type") == "Action.Execute" and n["verb"] == "acknowledge"]
        listing_id = sim.conversation(channel_id).activities[-1].id
        body = await click(sim, "acknowledge", ack["data"], channel_id, listing_id)
        assert (
            "Open alerts shown here (1)" in json.dumps(body["value"])
            and status_of(body["value"], "status-0") == "Acknowledged"
        )
        assert text_of(body["value"], "note").endswith("Acknowledged by Alex Wilber.")
        assert not [n for n in walk(body["value"]) if n.get("type") == "Action.Execute" and n["verb"] == "acknowledge"]
        # The alert's own card in the same channel is updated too: the press was on the list.
        [own] = [a for a in cards(sim, channel_id) if a.id == alert["card_id"]]
        assert card_status(own) == "Acknowledged" and own.updates == 1


class TestTrace:
    async def test_a_button_press_and_a_command_are_logged_once_with_who_and_what(self, acting_connector, caplog):
        import logging

        sim = acting_connector
        channel_id, _, alert = await setup_alert(sim)
        caplog.set_level(logging.INFO, logger="shared.services.bot")
        await click(sim, "acknowledge", alert["data"], channel_id, alert["card_id"])
        activity = sim.message(
            "alerts",
            "channel",
            mention_bot=True,
            bot_app_id=BOT_APP_ID,
            tenant_id=TENANT_ID,
            channel={"id": channel_id, "name": "General"},
        )
        await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
        lines = [r.getMessage() for r in caplog.records if r.name == "shared.services.bot"]
        [button] = [line for line in lines if line.startswith("Button ")]
        [command] = [line for line in lines if line.startswith("Command ")]
        assert "acknowledge on alert ALRT-1042 pressed by" in button and button.endswith("Acknowledged by Alex Wilber.")
        assert command.startswith("Command 'alerts' from")

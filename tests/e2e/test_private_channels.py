"""Private and shared channels, through the real bot endpoint and the simulator's Bot Connector
and Graph: a bot installed in a team is in its standard channels, but in a private (or shared)
one only once it is added there; its members are the channel's own, not the team's."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import BOT_APP_ID, TENANT_ID
from tests.e2e.test_alert_flow import cards, example
from tests.e2e.test_card_actions_graph import install_in_channel, press
from tests.e2e.test_consent import browser, callback, m365, start  # noqa: F401 - m365 is a fixture
from tests.support.app import deliver

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


@pytest.fixture
async def private_channel(m365, queue_sink, monkeypatch):
    """The tenant connected; its team Operations has Grace and Adele, and a private channel
    Incidents of Grace's alone (its owner), where a workflow sends every alert. The bot is
    installed in the team, not yet added to the channel."""
    from shared import bootstrap
    from shared.domain.workflows import parse_workflow
    from shared.services.workflows import put_workflow

    queue_sink.messages.clear()
    monkeypatch.setenv("LOCAL_QUEUE_HOST_URL", queue_sink.url)
    # Where the bot posts in a conversation it has not heard from yet: the simulator's Bot Connector.
    monkeypatch.setenv("TEAMS_SERVICE_URL", m365.service_url)
    await bootstrap.reset()
    sim, tenant = m365, m365.m365
    tenant.adele = tenant.add_user("Adele Vance", "adele.vance@contoso.com")
    tenant.ops.members.add(tenant.adele.id)
    tenant.incidents = tenant.add_channel(
        tenant.ops,
        "Incidents",
        channel_id="19:incidents@thread.tacv2",
        membership_type="private",
        owners=(tenant.admin.id,),
    )
    assert (await callback(browser(sim, await start("bot")))).status_code == 200
    sim.team = {"id": "19:ops-team-thread@thread.tacv2", "name": "Operations", "aadGroupId": tenant.ops.id}
    sim.channel = {"id": tenant.incidents.id, "name": "Incidents"}
    recipient = {
        "kind": "channel",
        "teamId": tenant.ops.id,
        "channelId": tenant.incidents.id,
        "name": "Incidents",
        "mention": ["grace@contoso.test"],  # its cards @mention Grace
    }
    # Its fallback, Grace in a 1:1 chat, cannot be reached here (no app catalog id to install
    # the app for her): a card Teams refuses is recorded as undeliverable, with both reasons.
    fallback = [{"kind": "person", "user": "grace@contoso.test"}]
    body = {"name": "Incidents", "trigger": "new_or_updated", "recipients": [recipient], "fallbackRecipients": fallback}
    workflow = parse_workflow(body, TENANT_ID, "incidents")
    await put_workflow((await bootstrap.container()).store, TENANT_ID, workflow)
    yield sim


async def add_the_bot(sim) -> None:
    """The channel's owner adds the bot to the private channel: Teams tells the bot so."""
    sim.add_bot_to_channel(sim.channel["id"], BOT_APP_ID)
    await install_in_channel(sim)


def alert(alert_id: str) -> dict:
    event = example("alert-created.json") | {"tenantid": TENANT_ID, "id": f"evt-{alert_id}"}
    event["data"] = event["data"] | {"id": alert_id, "responders": ["adele.vance@contoso.com"]}
    return event


async def press_button(sim, card, verb: str, user: dict) -> dict:
    """Press the card's button of this verb in the private channel as ``user``."""
    data = next(a for a in card.attachments[0]["content"]["actions"] if a.get("verb") == verb)["data"]
    return await press(sim, card, data, user)


class TestAPrivateChannel:
    async def test_gets_cards_once_the_bot_is_added_and_only_its_members_may_act(self, private_channel, queue_sink):
        from shared import bootstrap

        sim = private_channel
        tenant = sim.m365
        store = (await bootstrap.container()).store

        # Installed in the team but not added to the private channel: Teams refuses the post,
        # and the alert is recorded as undeliverable with the reason.
        await deliver(alert("ALRT-1"))
        with pytest.raises(KeyError):  # nothing was ever posted there
            cards(sim, tenant.incidents.id)
        [undeliverable] = await store.list_undeliverable(TENANT_ID)
        assert "BotNotInConversationRoster" in undeliverable.reason or "not part of" in undeliverable.reason, (
            undeliverable
        )

        # Added to the channel (by its owner, in Teams): the next alert's card arrives.
        await add_the_bot(sim)
        await deliver(alert("ALRT-2"))
        [card] = cards(sim, tenant.incidents.id)
        # The mention reached Teams' Bot Connector as an entity naming Grace by her Entra object id.
        [entity] = card.attachments[0]["content"]["msteams"]["entities"]
        assert entity == {
            "type": "mention",
            "text": "<at>Grace Hopper</at>",
            "mentioned": {"id": tenant.admin.id, "name": "Grace Hopper"},
        }
        # The source is told, for the card that arrived (not for the one Teams refused).
        [(_, _, told)] = queue_sink.messages
        assert told["type"] == "teams.alert.mentioned" and told["subject"] == "ALRT-2"
        queue_sink.messages.clear()

        # Adele is in the team but not in the private channel: refused, nothing changes.
        adele = {"id": "29:adele", "name": "Adele Vance", "aadObjectId": tenant.adele.id}
        refused = await press_button(sim, card, "acknowledge", adele)
        assert "Only members of this channel" in json.dumps(refused)
        assert queue_sink.messages == []
        # Grace is its member: acknowledged, and sent back to the source.
        grace = {"id": "29:grace", "name": "Grace Hopper", "aadObjectId": tenant.admin.id}
        done = await press_button(sim, card, "acknowledge", grace)
        assert "Acknowledged by Grace Hopper" in json.dumps(done)
        assert [e["type"] for _, _, e in queue_sink.messages] == ["teams.alert.acknowledged"]

        # Its alert channel is private as well, Grace its owner: the team does not see the alert.
        made = await press_button(sim, card, "create_channel", grace)
        assert "created" in json.dumps(made), made
        [channel] = [c for c in tenant.ops.channels.values() if "ALRT-2" in c.display_name]
        assert channel.membership_type == "private" and channel.members[tenant.admin.id] == ["owner"]
        assert tenant.adele.id in channel.members  # a responder of the alert, added by name

"""Card buttons that need Microsoft Graph, through the real bot endpoint, with the tenant
connected by admin consent and the simulator's Graph serving channels, members and calendars."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import BOT_APP_ID, TENANT_ID
from tests.e2e.test_alert_flow import cards, example
from tests.e2e.test_consent import browser, callback, m365, start  # noqa: F401 - m365 is a fixture
from tests.support.app import deliver, post_activity

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


@pytest.fixture
async def connected(request, m365, queue_sink, monkeypatch):
    """Tenant connected (bot method), the bot installed in the team's "On call" channel, and an
    alert posted there. Responders: a user of the tenant and one the directory does not know.
    Parametrised indirectly with {"without": PERMISSION} to consent without one permission."""
    from shared import bootstrap

    withheld = getattr(request, "param", {}).get("without")
    if withheld:
        m365.directory.app_roles.discard(withheld)
    queue_sink.messages.clear()
    monkeypatch.setenv("LOCAL_QUEUE_HOST_URL", queue_sink.url)
    await bootstrap.reset()
    sim = m365
    tenant = sim.m365
    tenant.responder = tenant.add_user("Adele Vance", "adele.vance@contoso.com")
    assert (await callback(browser(sim, await start("bot")))).status_code == 200
    sim.team = {"id": "19:ops-team-thread@thread.tacv2", "name": "Operations", "aadGroupId": tenant.ops.id}
    sim.channel = {"id": tenant.oncall.id, "name": "On call"}
    await install_in_channel(sim)
    event = example("alert-created.json") | {"tenantid": TENANT_ID}
    event["data"] = event["data"] | {"responders": ["oncall@contoso.com", "adele.vance@contoso.com"]}
    await deliver(event)
    [card] = cards(sim, tenant.oncall.id)
    sim.card = card
    sim.card_data = next(a for a in card.attachments[0]["content"]["actions"] if a.get("verb") == "acknowledge")["data"]
    yield sim


async def install_in_channel(sim) -> None:
    """Teams tells the bot it was installed in ``sim.channel`` of ``sim.team`` (a signed activity)."""
    install = sim.installation_update(
        "channel",
        bot_app_id=BOT_APP_ID,
        tenant_id=TENANT_ID,
        conversation_id=sim.channel["id"],
        team=sim.team,
        channel=sim.channel,
    )
    assert (await post_activity(install, sim.auth_header(BOT_APP_ID, install["serviceUrl"]))).status_code in (200, 201)


async def press(sim, card, data: dict, user: dict) -> dict:
    """Press a button (its data) of ``card`` in ``sim.channel`` as ``user``, as Teams sends it."""
    activity = sim.invoke_adaptive_card_action(
        data["verb"],
        data,
        "channel",
        reply_to_id=card.id,
        bot_app_id=BOT_APP_ID,
        tenant_id=TENANT_ID,
        team=sim.team,
        channel=sim.channel,
        user=user,
    )
    response = await post_activity(activity, sim.auth_header(BOT_APP_ID, activity["serviceUrl"]))
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())


async def click(sim, verb: str, user: dict | None = None) -> dict:
    user = user or {"id": "29:grace", "name": "Grace Hopper", "aadObjectId": sim.m365.admin.id}
    return await press(sim, sim.card, {**sim.card_data, "verb": verb}, user)


def channels_named_like(sim, text: str) -> list:
    return [c for c in sim.m365.ops.channels.values() if text in c.display_name]


class TestAlertChannel:
    async def test_create_channel_twice_makes_one_channel_with_the_responders(self, connected, queue_sink):
        sim = connected
        first = await click(sim, "create_channel")
        second = await click(sim, "create_channel")
        [channel] = channels_named_like(sim, "ALRT-1042")
        assert len(channel.display_name) <= 50
        assert sim.m365.responder.id in channel.members
        assert "created with 1 responder" in json.dumps(first) and "oncall@contoso.com" in json.dumps(first)
        assert "already exists" in json.dumps(second)
        assert [e["type"] for _, _, e in queue_sink.messages] == ["teams.alert.channel_created"]
        # The alert's card is posted in the new channel, and the original links to it.
        assert len(cards(sim, channel.id)) == 1
        assert any(a.get("title") == "Open channel" for a in first["value"]["actions"])

    @pytest.mark.parametrize("connected", [{"without": "Channel.Create"}], indirect=True)
    async def test_a_missing_graph_permission_is_named_on_the_card(self, connected, queue_sink):
        sim = connected
        body = await click(sim, "create_channel")
        assert "Channel.Create" in json.dumps(body)
        assert channels_named_like(sim, "ALRT-1042") == [] and queue_sink.messages == []


class TestAlertMeeting:
    async def test_create_meeting_twice_makes_one_meeting_and_posts_its_link(self, connected, queue_sink):
        sim = connected
        first = await click(sim, "create_meeting")
        await click(sim, "create_meeting")
        [event] = sim.m365.events[sim.m365.admin.id]
        assert event["isOnlineMeeting"] is True and "High CPU" in event["subject"]
        join_url = event["onlineMeeting"]["joinUrl"]
        assert any(a.get("url") == join_url for a in first["value"]["actions"])
        thread = sim.conversation(sim.m365.oncall.id).thread(sim.card.id)
        assert any(join_url in (a.text or "") for a in thread)
        assert [e["type"] for _, _, e in queue_sink.messages] == ["teams.alert.meeting_created"]


class TestMembership:
    async def test_someone_who_is_not_a_member_of_the_channel_is_refused(self, connected, queue_sink):
        sim = connected
        outsider = sim.m365.add_user("Mallory", "mallory@contoso.test")
        body = await click(sim, "acknowledge", {"id": "29:mallory", "name": "Mallory", "aadObjectId": outsider.id})
        assert "Only members of this channel" in json.dumps(body)
        assert queue_sink.messages == []

    async def test_a_member_may_act_and_is_linked_from_the_directory(self, connected, queue_sink):
        sim = connected
        await click(sim, "acknowledge")
        [(_, _, event)] = queue_sink.messages
        assert event["data"]["actor"]["linkedIdentity"] == "grace@contoso.test"

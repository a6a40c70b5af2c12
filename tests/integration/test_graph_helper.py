"""The Graph helper on the real msgraph-sdk and azure-identity clients, against the simulator's
Graph and token endpoints over TLS (a CA made at test time, trusted explicitly)."""

from __future__ import annotations

import pytest

from shared.adapters.graph import GraphConfig, GraphDirectory
from shared.ports import GraphError
from shared.resilience import GRAPH, RetryPolicy

APP_ID = "3f1c2a9e-0000-4000-8000-00000000a991"
APP_SECRET = "graph-simulator-secret"
TENANT = "11111111-aaaa-4000-8000-0000000000a1"


@pytest.fixture(scope="module")
def running_sim():
    from tools.teams_simulator import TeamsSimulator

    with TeamsSimulator() as sim:
        yield sim


@pytest.fixture
def sim(running_sim):
    running_sim.reset()
    running_sim.directory.register_app(APP_ID, APP_SECRET)
    return running_sim


@pytest.fixture
def tenant(sim):
    tenant = sim.directory.add_tenant(TENANT, "Contoso Ops")
    tenant.ada = tenant.add_user("Ada Lovelace", "ada@contoso.test")
    tenant.bob = tenant.add_user("Bob Builder", "bob@contoso.test", mail="bob.builder@contoso.test")
    tenant.ops = tenant.add_team("Operations", members=(tenant.ada.id, tenant.bob.id))
    sim.directory.grant_admin_consent(TENANT, APP_ID)
    return tenant


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def graph(sim, sleep):
    config = GraphConfig(
        base_url=sim.graph_url,
        authority_host=sim.authority_host,
        app_id=APP_ID,
        client_secret=APP_SECRET,
        ca_file=sim.ca_file,
    )
    directory = GraphDirectory(config, sleep=sleep)
    yield directory
    await directory.close()


class TestReads:
    async def test_a_user_is_found_by_upn_and_by_email(self, graph, tenant):
        by_upn = await graph.get_user(TENANT, "ada@contoso.test")
        by_mail = await graph.find_user_by_email(TENANT, "bob.builder@contoso.test")
        assert by_upn["id"] == tenant.ada.id and by_mail["id"] == tenant.bob.id

    async def test_an_unknown_user_is_none_not_an_error(self, graph, tenant):
        assert await graph.get_user(TENANT, "nobody@contoso.test") is None

    async def test_teams_and_their_channels_are_listed(self, graph, tenant):
        [team] = await graph.list_teams(TENANT)
        channels = await graph.list_channels(TENANT, team["id"])
        assert team["displayName"] == "Operations" and [c["displayName"] for c in channels] == ["General"]

    async def test_the_organisation_name_is_read_with_an_app_only_token(self, graph, tenant, sim):
        assert (await graph.organization(TENANT))["displayName"] == "Contoso Ops"
        assert sim.directory.token_requests[-1]["grant_type"] == "client_credentials"


class TestWrites:
    async def test_a_private_channel_is_created_with_its_owners(self, graph, tenant):
        channel = await graph.create_channel(
            TENANT, tenant.ops.id, "inc-42 disk full", "Incident 42", private=True, owner_ids=(tenant.ada.id,)
        )
        assert await graph.channel_member_ids(TENANT, tenant.ops.id, channel["id"]) == {tenant.ada.id}
        await graph.add_channel_member(TENANT, tenant.ops.id, channel["id"], tenant.bob.id)
        assert await graph.channel_member_ids(TENANT, tenant.ops.id, channel["id"]) == {tenant.ada.id, tenant.bob.id}

    async def test_a_one_on_one_chat_is_returned_again_not_duplicated(self, graph, tenant):
        first = await graph.create_chat(TENANT, (tenant.ada.id, tenant.bob.id))
        second = await graph.create_chat(TENANT, (tenant.ada.id, tenant.bob.id))
        assert first["id"] == second["id"] and first["chatType"] == "oneOnOne"

    async def test_a_meeting_has_a_teams_join_url(self, graph, tenant):
        meeting = await graph.create_meeting(
            TENANT, tenant.ada.id, "Incident 42", ("bob@contoso.test",), "2030-01-01T10:00:00", "2030-01-01T10:30:00"
        )
        assert meeting["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")

    async def test_installing_the_app_twice_gives_the_same_chat(self, graph, tenant):
        first = await graph.install_app_for_user(TENANT, tenant.ada.id, "teams-app-1")
        second = await graph.install_app_for_user(TENANT, tenant.ada.id, "teams-app-1")
        assert first == second and tenant.ada.id in first

    async def test_the_app_is_installed_in_a_group_chat_and_a_second_install_is_fine(self, graph, tenant, sim):
        chat = await graph.create_chat(TENANT, (tenant.ada.id, tenant.bob.id), topic="inc-42")
        await graph.install_app_in_chat(TENANT, chat["id"], "teams-app-1")
        await graph.install_app_in_chat(TENANT, chat["id"], "teams-app-1")
        assert sim.directory.chat(TENANT, chat["id"]).installed_apps == {"teams-app-1"}
        assert [r.status for r in sim.requests if r.path.endswith("/installedApps")] == [201, 409]


class TestErrors:
    async def test_a_403_names_the_missing_permission(self, sim, tenant, graph):
        sim.directory.app_roles.discard("Channel.Create")
        sim.directory.grant_admin_consent(TENANT, APP_ID)
        with pytest.raises(GraphError) as caught:
            await graph.create_channel(TENANT, tenant.ops.id, "inc-1", "")
        assert caught.value.status == 403 and caught.value.permission == "Channel.Create"
        assert "Channel.Create" in str(caught.value)

    async def test_installing_in_a_chat_without_the_role_names_that_permission(self, sim, tenant, graph):
        sim.directory.app_roles.discard("TeamsAppInstallation.ReadWriteSelfForChat.All")
        sim.directory.grant_admin_consent(TENANT, APP_ID)
        chat = await graph.create_chat(TENANT, (tenant.ada.id, tenant.bob.id), topic="inc-42")
        with pytest.raises(GraphError) as caught:
            await graph.install_app_in_chat(TENANT, chat["id"], "teams-app-1")
        assert caught.value.status == 403 and caught.value.permission == "TeamsAppInstallation.ReadWriteSelfForChat.All"
        assert "install the app in a chat" in str(caught.value)

    async def test_installing_in_an_unknown_chat_names_the_chat(self, graph, tenant):
        with pytest.raises(GraphError) as caught:
            await graph.install_app_in_chat(TENANT, "19:nosuchchat@thread.v2", "teams-app-1")
        assert caught.value.status == 404 and caught.value.missing == "chat 19:nosuchchat@thread.v2 or app teams-app-1"

    async def test_a_404_names_the_missing_object(self, graph, tenant):
        with pytest.raises(GraphError) as caught:
            await graph.list_channels(TENANT, "no-such-team")
        assert caught.value.status == 404 and caught.value.missing == "team no-such-team"
        assert "team no-such-team was not found" in str(caught.value)

    async def test_a_tenant_that_never_consented_gives_no_token(self, graph, sim, tenant):
        sim.directory.add_tenant("22222222-bbbb-4000-8000-0000000000b2", "Fabrikam")
        with pytest.raises(GraphError) as caught:
            await graph.list_teams("22222222-bbbb-4000-8000-0000000000b2")
        assert caught.value.status == 401 and "consented" in str(caught.value)


class TestThrottling:
    async def test_429_waits_the_retry_after_and_then_succeeds(self, graph, sim, tenant, sleep):
        sim.add_fault("GET", r"/v1\.0/teams$", 429, retry_after=1)
        teams = await graph.list_teams(TENANT)
        assert sleep.waits == [1.0] and len(teams) == 1
        assert [r.status for r in sim.requests if r.path.endswith("/v1.0/teams")] == [429, 200]

    async def test_429_without_retry_after_backs_off_exponentially(self, sim, tenant):
        sleep = RecordingSleep()
        config = GraphConfig(
            base_url=sim.graph_url,
            authority_host=sim.authority_host,
            app_id=APP_ID,
            client_secret=APP_SECRET,
            ca_file=sim.ca_file,
        )
        directory = GraphDirectory(config, sleep=sleep, policy=RetryPolicy(backoff_seconds=0.5))
        sim.add_fault("GET", r"/v1\.0/teams$", 429, retry_after=None, times=2)
        try:
            assert len(await directory.list_teams(TENANT)) == 1
        finally:
            await directory.close()
        assert sleep.waits == [0.5, 1.0]

    async def test_retries_are_bounded(self, sim, tenant):
        sleep = RecordingSleep()
        config = GraphConfig(
            base_url=sim.graph_url,
            authority_host=sim.authority_host,
            app_id=APP_ID,
            client_secret=APP_SECRET,
            ca_file=sim.ca_file,
        )
        directory = GraphDirectory(config, sleep=sleep)
        sim.add_fault("GET", r"/v1\.0/teams$", 503, retry_after=2, times=10)
        try:
            with pytest.raises(GraphError) as caught:
                await directory.list_teams(TENANT)
        finally:
            await directory.close()
        assert caught.value.status == 503 and sleep.waits == [2.0] * (GRAPH.max_attempts - 1)

    async def test_a_retry_after_beyond_the_bound_is_not_waited_out(self, sim, tenant):
        sleep = RecordingSleep()
        config = GraphConfig(
            base_url=sim.graph_url,
            authority_host=sim.authority_host,
            app_id=APP_ID,
            client_secret=APP_SECRET,
            ca_file=sim.ca_file,
        )
        directory = GraphDirectory(config, sleep=sleep)
        sim.add_fault("GET", r"/v1\.0/teams$", 429, retry_after=3600)
        try:
            with pytest.raises(GraphError) as caught:
                await directory.list_teams(TENANT)
        finally:
            await directory.close()
        assert caught.value.status == 429 and caught.value.retry_after == 3600 and sleep.waits == []
        assert caught.value.code == "TooManyRequests"

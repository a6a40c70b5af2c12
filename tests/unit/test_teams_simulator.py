"""The Teams simulator speaks to the real botbuilder code: inbound JWT validation and the
Bot Connector client, with nothing inside the SDKs patched."""

from __future__ import annotations

import time
import urllib.parse
from types import SimpleNamespace

import jwt
import pytest
import requests
from botbuilder.core.teams.teams_activity_extensions import (
    teams_get_channel_data,
    teams_get_selected_channel_id,
)
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ChannelAccount, ConversationParameters
from botbuilder.schema.teams import ChannelInfo, TeamsChannelData
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import AppCredentials, PasswordServiceClientCredentialFactory
from botframework.connector.models import ErrorResponseException

from tools.teams_simulator import RateLimits, TeamsSimulator

BOT_APP_ID = "9c1d4c1e-5a0b-4f3e-8a52-3f0e6b7d2a11"
BOT_SECRET = "simulated-secret"
BOT_SCOPE = "https://api.botframework.com/.default"
GRAPH_APP_ID = "3f1c2a9e-0000-4000-8000-00000000b772"
GRAPH_SECRET = "graph-simulator-secret"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TENANT = "11111111-aaaa-4000-8000-0000000000c3"
TEAMS_APP_ID = "teams-app-1"


@pytest.fixture(scope="module")
def running_sim():
    with TeamsSimulator() as sim:
        yield sim


@pytest.fixture
def sim(running_sim):
    running_sim.reset()
    running_sim.register_bot(BOT_APP_ID, BOT_SECRET)
    return running_sim


class SimulatorCredentials(AppCredentials):
    """Client-credentials grant against the simulator's token endpoint (MSAL refuses http)."""

    def __init__(self, token_url: str, app_id: str, secret: str) -> None:
        super().__init__(app_id=app_id)
        self.token_url = token_url
        self.secret = secret
        self._token: str | None = None

    def get_access_token(self, force_refresh: bool = False) -> str:
        if self._token is None or force_refresh:
            response = requests.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.microsoft_app_id,
                    "client_secret": self.secret,
                    "scope": BOT_SCOPE,
                },
                timeout=5,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token


def connector(sim: TeamsSimulator) -> ConnectorClient:
    credentials = SimulatorCredentials(sim.token_url(), BOT_APP_ID, BOT_SECRET)
    return ConnectorClient(credentials, base_url=sim.service_url)


def channel_authentication(sim: TeamsSimulator) -> ConfigurationBotFrameworkAuthentication:
    configuration = SimpleNamespace(
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=sim.openid_metadata_url,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER="https://api.botframework.com",
    )
    return ConfigurationBotFrameworkAuthentication(
        configuration,
        credentials_factory=PasswordServiceClientCredentialFactory(BOT_APP_ID, BOT_SECRET),
    )


def quoted(conversation_id: str) -> str:
    return urllib.parse.quote(conversation_id, safe="")


class TestInboundChannelTokens:
    async def test_a_minted_token_is_accepted_by_botbuilder(self, sim):
        activity = Activity().deserialize(sim.message("hello", bot_app_id=BOT_APP_ID))

        result = await channel_authentication(sim).authenticate_request(activity, sim.auth_header(BOT_APP_ID))

        assert result.claims_identity.is_authenticated
        assert result.claims_identity.claims["aud"] == BOT_APP_ID
        assert result.claims_identity.claims["serviceurl"] == sim.service_url

    async def test_a_token_signed_with_a_key_outside_the_jwks_is_rejected(self, sim):
        activity = Activity().deserialize(sim.message("hello"))

        with pytest.raises(jwt.InvalidSignatureError):
            await channel_authentication(sim).authenticate_request(
                activity, sim.auth_header(BOT_APP_ID, signing="untrusted")
            )

    async def test_an_unsigned_token_is_rejected(self, sim):
        activity = Activity().deserialize(sim.message("hello"))

        with pytest.raises(Exception, match="signing algorithm not in allowed list"):
            await channel_authentication(sim).authenticate_request(
                activity, sim.auth_header(BOT_APP_ID, signing="none")
            )

    async def test_a_token_naming_an_unknown_key_is_rejected(self, sim):
        activity = Activity().deserialize(sim.message("hello"))

        # botbuilder looks the kid up with [...][0], so an unknown kid surfaces as IndexError.
        with pytest.raises(IndexError):
            await channel_authentication(sim).authenticate_request(
                activity, sim.auth_header(BOT_APP_ID, kid="not-in-the-jwks")
            )

    async def test_a_token_expired_beyond_the_clock_skew_is_rejected(self, sim):
        activity = Activity().deserialize(sim.message("hello"))

        with pytest.raises(jwt.ExpiredSignatureError):
            await channel_authentication(sim).authenticate_request(
                activity, sim.auth_header(BOT_APP_ID, expires_in=-600)
            )

    async def test_a_token_expired_within_the_five_minute_skew_is_still_accepted(self, sim):
        activity = Activity().deserialize(sim.message("hello"))

        result = await channel_authentication(sim).authenticate_request(
            activity, sim.auth_header(BOT_APP_ID, expires_in=-60)
        )

        assert result.claims_identity.is_authenticated

    async def test_a_token_for_another_bot_is_a_permission_error(self, sim):
        activity = Activity().deserialize(sim.message("hello"))

        with pytest.raises(PermissionError, match="Invalid AppId"):
            await channel_authentication(sim).authenticate_request(activity, sim.auth_header("another-bot-app-id"))

    async def test_a_token_for_another_service_url_is_a_permission_error(self, sim):
        activity = Activity().deserialize(sim.message("hello"))

        with pytest.raises(PermissionError, match="serviceurl"):
            await channel_authentication(sim).authenticate_request(
                activity, sim.auth_header(BOT_APP_ID, "https://smba.trafficmanager.net/amer/")
            )

    async def test_the_signing_key_speaks_for_msteams_only_among_listed_channels(self, sim):
        keys = requests.get(sim.jwks_url, timeout=5).json()["keys"]
        activity = Activity().deserialize({**sim.message("hello"), "channelId": "slack"})

        assert "msteams" in keys[0]["endorsements"]
        with pytest.raises(Exception, match="endorsement"):
            await channel_authentication(sim).authenticate_request(activity, sim.auth_header(BOT_APP_ID))


class TestConnectorClient:
    async def test_the_bot_starts_a_thread_replies_and_updates_in_place(self, sim):
        install = sim.installation_update("channel", bot_app_id=BOT_APP_ID)
        channel_id = install["channelData"]["settings"]["selectedChannel"]["id"]

        async with connector(sim) as client:
            thread = await client.conversations.create_conversation(
                ConversationParameters(
                    is_group=True,
                    bot=ChannelAccount(id=f"28:{BOT_APP_ID}"),
                    channel_data=TeamsChannelData(channel=ChannelInfo(id=channel_id)).serialize(),
                    activity=Activity(type="message", text="CPU high on web-1"),
                    tenant_id=install["conversation"]["tenantId"],
                )
            )
            reply = await client.conversations.send_to_conversation(
                thread.id, Activity(type="message", text="still firing")
            )
            answer = await client.conversations.reply_to_activity(
                thread.id, reply.id, Activity(type="message", text="acknowledged")
            )
            await client.conversations.update_activity(
                thread.id,
                thread.activity_id,
                Activity(type="message", text="CPU high on web-1 (resolved)"),
            )

        assert thread.id == f"{channel_id};messageid={thread.activity_id}"
        conversation = sim.conversation(thread.id)
        assert [a.id for a in conversation.activities] == [thread.activity_id, reply.id, answer.id]
        assert {a.thread_root for a in conversation.activities} == {thread.activity_id}
        assert conversation.activities[2].reply_to_id == reply.id
        root = conversation.activity(thread.activity_id)
        assert [v["text"] for v in root.versions] == ["CPU high on web-1", "CPU high on web-1 (resolved)"]
        assert {r.app_id for r in sim.requests if "/v3/" in r.path} == {BOT_APP_ID}

    async def test_a_private_channel_refuses_a_bot_not_added_to_it_as_teams_does(self, sim):
        tenant = sim.directory.add_tenant(TENANT, "Contoso")
        team = tenant.add_team("Ops")
        private = tenant.add_channel(team, "Incidents", membership_type="private")
        standard = tenant.add_channel(team, "General 2")

        async with connector(sim) as client:
            with pytest.raises(ErrorResponseException) as raised:
                await client.conversations.send_to_conversation(private.id, Activity(type="message", text="x"))
            sent = await client.conversations.send_to_conversation(standard.id, Activity(type="message", text="x"))
            sim.add_bot_to_channel(private.id, BOT_APP_ID)
            again = await client.conversations.send_to_conversation(private.id, Activity(type="message", text="y"))

        assert raised.value.response.status_code == 403
        assert raised.value.response.json()["error"]["code"] == "BotNotInConversationRoster"
        assert sent.id and again.id

    async def test_updating_an_unknown_activity_is_a_bot_connector_404(self, sim):
        async with connector(sim) as client:
            with pytest.raises(ErrorResponseException) as raised:
                await client.conversations.update_activity(
                    "a:1unknown", "1700000000000", Activity(type="message", text="x")
                )

        assert raised.value.response.status_code == 404
        assert raised.value.response.json()["error"]["code"] == "ActivityNotFoundInConversation"

    async def test_a_personal_chat_is_the_same_conversation_each_time_it_is_created(self, sim):
        parameters = ConversationParameters(
            bot=ChannelAccount(id=f"28:{BOT_APP_ID}"),
            members=[ChannelAccount(id="29:1user")],
            tenant_id="11111111-0000-4000-8000-000000000001",
        )
        async with connector(sim) as client:
            first = await client.conversations.create_conversation(parameters)
            second = await client.conversations.create_conversation(parameters)
            await client.conversations.send_to_conversation(first.id, Activity(type="message", text="hello"))
            members = await client.conversations.get_conversation_members(first.id)

        assert first.id == second.id and first.id.startswith("a:")
        assert sim.conversation(first.id).texts == ["hello"]
        assert [m.id for m in members] == ["29:1user"]

    async def test_a_deleted_activity_stays_listed_as_deleted(self, sim):
        async with connector(sim) as client:
            sent = await client.conversations.send_to_conversation("a:1chat", Activity(type="message", text="oops"))
            await client.conversations.delete_activity("a:1chat", sent.id)

        assert sim.conversation("a:1chat").activity(sent.id).deleted


class TestOutboundAuth:
    def test_connector_calls_without_a_token_are_refused(self, sim):
        response = requests.post(
            f"{sim.service_url}v3/conversations/{quoted('a:1chat')}/activities",
            json={"type": "message", "text": "hi"},
            timeout=5,
        )

        assert response.status_code == 401
        assert sim.conversations() == []

    def test_a_revoked_token_is_refused(self, sim):
        credentials = SimulatorCredentials(sim.token_url(), BOT_APP_ID, BOT_SECRET)
        headers = {"Authorization": f"Bearer {credentials.get_access_token()}"}
        url = f"{sim.service_url}v3/conversations/{quoted('a:1chat')}/activities"

        before = requests.post(url, json={"type": "message"}, headers=headers, timeout=5)
        sim.revoke_tokens()
        after = requests.post(url, json={"type": "message"}, headers=headers, timeout=5)

        assert (before.status_code, after.status_code) == (201, 401)

    def test_a_wrong_client_secret_gets_an_aad_invalid_client_error(self, sim):
        response = requests.post(
            sim.token_url(),
            data={
                "grant_type": "client_credentials",
                "client_id": BOT_APP_ID,
                "client_secret": "wrong",
                "scope": BOT_SCOPE,
            },
            timeout=5,
        )

        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.json()["error_description"].startswith("AADSTS7000215")


class TestFaults:
    async def test_a_throttling_fault_answers_429_with_retry_after_once_then_succeeds(self, sim):
        sim.add_fault("POST", r"/activities$", status=429, retry_after=2, times=1)

        async with connector(sim) as client:
            with pytest.raises(ErrorResponseException) as throttled:
                await client.conversations.send_to_conversation("a:1chat", Activity(type="message", text="first try"))
            sent = await client.conversations.send_to_conversation(
                "a:1chat", Activity(type="message", text="second try")
            )

        assert throttled.value.response.status_code == 429
        assert throttled.value.response.headers["Retry-After"] == "2"
        assert sim.conversation("a:1chat").activity(sent.id).text == "second try"
        assert [r.status for r in sim.requests if r.path.endswith("/activities")] == [429, 201]

    async def test_the_connector_client_retries_a_failed_update_itself_but_not_a_send(self, sim):
        async with connector(sim) as client:
            sent = await client.conversations.send_to_conversation("a:1chat", Activity(type="message", text="v1"))
            sim.add_fault("PUT", r"/activities/", status=502)
            await client.conversations.update_activity("a:1chat", sent.id, Activity(type="message", text="v2"))
            sim.add_fault("POST", r"/activities$", status=502)
            with pytest.raises(ErrorResponseException):
                await client.conversations.send_to_conversation("a:1chat", Activity(type="message", text="v3"))

        # msrest's urllib3 retry covers PUT and DELETE on 5xx, never POST.
        calls = [(r.method, r.status) for r in sim.requests if "/activities" in r.path]
        assert calls == [("POST", 201), ("PUT", 502), ("PUT", 200), ("POST", 502)]
        assert sim.conversation("a:1chat").texts == ["v2"]

    def test_faults_are_consumed_in_the_order_they_were_added(self, sim):
        sim.require_connector_auth = False
        sim.add_fault(status=403)
        sim.add_fault(status=412)
        url = f"{sim.service_url}v3/conversations/{quoted('a:1chat')}/activities"

        statuses = [requests.post(url, json={"type": "message"}, timeout=5) for _ in range(3)]

        assert [r.status_code for r in statuses] == [403, 412, 201]
        assert statuses[0].json()["error"]["code"] == "BotNotInConversationRoster"

    def test_a_latency_fault_delays_the_request_and_then_serves_it(self, sim):
        sim.require_connector_auth = False
        sim.add_fault(status=None, delay=0.3)
        started = time.monotonic()

        response = requests.post(
            f"{sim.service_url}v3/conversations/{quoted('a:1chat')}/activities",
            json={"type": "message", "text": "slow"},
            timeout=5,
        )

        assert response.status_code == 201
        assert time.monotonic() - started >= 0.3


class TestActivityBuilders:
    def test_a_team_installation_names_the_team_and_the_selected_channel(self, sim):
        activity = Activity().deserialize(sim.installation_update("channel", action="add"))

        assert activity.type == "installationUpdate" and activity.action == "add"
        assert activity.conversation.id == teams_get_channel_data(activity).team.id
        assert teams_get_selected_channel_id(activity) == sim.activities.channel["id"]
        assert activity.recipient.id == f"28:{sim.activities.bot_app_id}"

    def test_a_channel_message_mentioning_the_bot_carries_a_mention_entity(self, sim):
        message = sim.message("help", kind="channel", mention_bot=True)

        mention = next(e for e in message["entities"] if e["type"] == "mention")
        assert message["text"] == f"<at>{sim.activities.bot_name}</at> help"
        assert mention["mentioned"]["id"] == message["recipient"]["id"]
        assert message["conversation"]["id"].endswith(f";messageid={message['id']}")

    def test_an_adaptive_card_action_targets_the_card_it_came_from(self, sim):
        invoke = sim.invoke_adaptive_card_action(
            "acknowledge", {"alertId": "a-1"}, kind="channel", reply_to_id="1700000000001"
        )

        assert invoke["name"] == "adaptiveCard/action"
        assert invoke["value"]["action"] == {
            "type": "Action.Execute",
            "verb": "acknowledge",
            "data": {"alertId": "a-1"},
        }
        assert invoke["replyToId"] == "1700000000001"
        assert invoke["conversation"]["id"].endswith(";messageid=1700000000001")


class TestInspection:
    def test_conversations_are_served_as_json_for_people(self, sim):
        sim.require_connector_auth = False
        requests.post(
            f"{sim.service_url}v3/conversations/{quoted('a:1chat')}/activities",
            json={"type": "message", "text": "visible"},
            timeout=5,
        )

        listing = requests.get(f"{sim.url}/_sim/conversations", timeout=5).json()
        one = requests.get(f"{sim.url}/_sim/conversations/{quoted('a:1chat')}", timeout=5).json()

        assert [c["id"] for c in listing] == ["a:1chat"]
        assert one["activities"][0]["text"] == "visible"

    def test_reset_forgets_conversations_requests_and_faults(self, sim):
        sim.require_connector_auth = False
        sim.add_fault(status=500, times=5)
        requests.post(
            f"{sim.service_url}v3/conversations/{quoted('a:1chat')}/activities",
            json={"type": "message"},
            timeout=5,
        )

        sim.reset()

        assert (sim.conversations(), sim.requests, sim.faults.pending()) == ([], [], [])
        assert sim.require_connector_auth is True


class TestGraphChatInstallations:
    """``/chats/{chat}/installedApps``: how the connector gets the bot into a group chat it made."""

    @pytest.fixture
    def graph(self, sim):
        """A tenant with two users and a group chat; ``graph(method, path, json=...)`` calls
        Graph with an app-only token minted after the test narrowed ``directory.app_roles``."""
        sim.directory.register_app(GRAPH_APP_ID, GRAPH_SECRET)
        tenant = sim.directory.add_tenant(TENANT, "Contoso Ops")
        ada = tenant.add_user("Ada Lovelace", "ada@contoso.test")
        bob = tenant.add_user("Bob Builder", "bob@contoso.test")
        tokens: list[str] = []
        session = requests.Session()

        def call(method: str, path: str, **kwargs) -> requests.Response:
            if not tokens:
                sim.directory.grant_admin_consent(TENANT, GRAPH_APP_ID)
                answer = session.post(
                    f"{sim.authority_host}/{TENANT}/oauth2/v2.0/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": GRAPH_APP_ID,
                        "client_secret": GRAPH_SECRET,
                        "scope": GRAPH_SCOPE,
                    },
                    verify=sim.ca_file,
                    timeout=5,
                )
                answer.raise_for_status()
                tokens.append(answer.json()["access_token"])
            headers = {"Authorization": f"Bearer {tokens[0]}"}
            return session.request(
                method, sim.graph_url + path, headers=headers, verify=sim.ca_file, timeout=5, **kwargs
            )

        call.users = (ada.id, bob.id)
        with session:
            yield call

    @staticmethod
    def group_chat(graph) -> str:
        members = [
            {
                "@odata.type": "#microsoft.graph.aadUserConversationMember",
                "roles": ["owner"],
                "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{user}')",
            }
            for user in graph.users
        ]
        created = graph("POST", "/chats", json={"chatType": "group", "topic": "inc-42", "members": members})
        assert created.status_code == 201
        return created.json()["id"]

    @staticmethod
    def install(graph, chat_id: str, app_id: str = TEAMS_APP_ID) -> requests.Response:
        bind = f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/{app_id}"
        return graph("POST", f"/chats/{quoted(chat_id)}/installedApps", json={"teamsApp@odata.bind": bind})

    def test_the_app_is_installed_once_then_409(self, sim, graph):
        chat_id = self.group_chat(graph)

        first = self.install(graph, chat_id)
        second = self.install(graph, chat_id)

        assert (first.status_code, first.content) == (201, b"")
        assert second.status_code == 409 and second.json()["error"]["code"] == "Conflict"
        assert sim.directory.chat(TENANT, chat_id).installed_apps == {TEAMS_APP_ID}
        assert sim.graph.chat_installation_id(TENANT, chat_id, TEAMS_APP_ID) is not None

    def test_an_unknown_chat_is_a_graph_404(self, sim, graph):
        answer = self.install(graph, "19:nosuchchat@thread.v2")

        assert answer.status_code == 404 and answer.json()["error"]["code"] == "NotFound"

    def test_without_the_chat_installation_role_the_install_is_refused(self, sim, graph):
        sim.directory.app_roles.discard("TeamsAppInstallation.ReadWriteSelfForChat.All")
        chat_id = self.group_chat(graph)

        answer = self.install(graph, chat_id)

        assert answer.status_code == 403
        assert "TeamsAppInstallation.ReadWriteSelfForChat.All" in answer.json()["error"]["message"]
        assert sim.graph.chat_installation_id(TENANT, chat_id, TEAMS_APP_ID) is None

    def test_the_installation_is_listed_with_a_filter_on_the_app_id(self, sim, graph):
        chat_id = self.group_chat(graph)
        self.install(graph, chat_id)
        self.install(graph, chat_id, "another-app")
        path = f"/chats/{quoted(chat_id)}/installedApps"

        everything = graph("GET", path, params={"$expand": "teamsApp"}).json()["value"]
        ours = graph("GET", path, params={"$expand": "teamsApp", "$filter": f"teamsApp/id eq '{TEAMS_APP_ID}'"}).json()[
            "value"
        ]

        assert {i["teamsApp"]["id"] for i in everything} == {TEAMS_APP_ID, "another-app"}
        assert ours == [
            {"id": sim.graph.chat_installation_id(TENANT, chat_id, TEAMS_APP_ID), "teamsApp": {"id": TEAMS_APP_ID}}
        ]


class FakeClock:
    """The rate limits' clock: tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TestRateLimits:
    """Teams' documented bot limits: 7 / 1 s, 8 / 2 s, 60 / 30 s, 1,800 / 3,600 s per bot per
    conversation and 50 / 1 s per bot per tenant, enforced when asked to."""

    @pytest.fixture
    def clock(self):
        return FakeClock()

    @pytest.fixture
    def limits(self, sim, clock):
        return sim.enforce_limits(clock)

    @pytest.fixture
    def bot(self, sim):
        """``bot(method, conversation, activity=None, body=...)``: a raw Bot Connector call
        with the bot's token (requests does not retry, unlike msrest on a PUT with Retry-After)."""
        token = SimulatorCredentials(sim.token_url(), BOT_APP_ID, BOT_SECRET).get_access_token()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"

        def call(method: str, conversation_id: str, activity_id: str | None = None, body=None):
            url = f"{sim.service_url}v3/conversations/{quoted(conversation_id)}/activities"
            if activity_id is not None:
                url += f"/{activity_id}"
            return session.request(method, url, json=body or {"type": "message"}, timeout=5)

        with session:
            yield call

    async def test_seven_sends_in_a_second_pass_and_the_eighth_is_throttled_and_not_stored(self, sim, clock, limits):
        async with connector(sim) as client:
            for n in range(7):
                await client.conversations.send_to_conversation("a:1chat", Activity(type="message", text=f"m{n}"))
                clock.advance(0.1)
            with pytest.raises(ErrorResponseException) as throttled:
                await client.conversations.send_to_conversation(
                    "a:1chat", Activity(type="message", text="one too many")
                )

        response = throttled.value.response
        assert response.status_code == 429
        assert float(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["code"] == "Throttled"
        assert sim.conversation("a:1chat").texts == [f"m{n}" for n in range(7)]
        assert (limits.refused, limits.refusals) == (1, {"a:1chat": 1})
        assert [c for _, _, c in limits.sends] == ["a:1chat"] * 7

    def test_a_throttled_send_is_accepted_once_its_window_has_passed(self, sim, clock, bot):
        sim.enforce_limits(clock)
        statuses = [bot("POST", "a:1chat").status_code for _ in range(7)]
        clock.advance(0.5)
        refused = bot("POST", "a:1chat")
        clock.advance(0.5)  # the seven sends leave the 1 s window: the 8 / 2 s one has room
        eighth = bot("POST", "a:1chat")
        ninth = bot("POST", "a:1chat")
        clock.advance(1.0)  # and now they leave the 2 s window too
        tenth = bot("POST", "a:1chat")

        assert statuses == [201] * 7
        assert (refused.status_code, refused.headers["Retry-After"]) == (429, "1")
        assert (eighth.status_code, ninth.status_code, tenth.status_code) == (201, 429, 201)
        assert ninth.headers["Retry-After"] == "1"
        assert len(sim.conversation("a:1chat").activities) == 9

    def test_retry_after_is_the_time_until_the_oldest_send_leaves_the_full_window(self, sim, clock, bot):
        sim.enforce_limits(clock)
        for _ in range(60):  # 0.25 s apart: under 7 / 1 s and 8 / 2 s, and 60 in 14.75 s
            assert bot("POST", "a:1chat").status_code == 201
            clock.advance(0.25)

        refused = bot("POST", "a:1chat")  # 15 s after the first send: 15 s until it is 30 s old

        assert (refused.status_code, refused.headers["Retry-After"]) == (429, "15")
        assert sim.limits.max_in_window(30.0) == 60
        clock.advance(15.0)
        assert bot("POST", "a:1chat").status_code == 201

    def test_each_conversation_has_its_own_budget(self, sim, clock, bot):
        sim.enforce_limits(clock)

        first = [bot("POST", "a:1one").status_code for _ in range(8)]
        second = [bot("POST", "a:1two").status_code for _ in range(8)]

        assert first == second == [201] * 7 + [429]
        assert sim.limits.refusals == {"a:1one": 1, "a:1two": 1}

    def test_the_tenant_allows_fifty_sends_a_second_across_conversations(self, sim, clock, bot):
        sim.enforce_limits(clock)
        sim.state.ensure_conversation("a:1known", tenant_id=TENANT)  # the tenant the simulator knows

        def in_tenant(n: int, tenant: str = TENANT) -> dict:
            return {"type": "message", "conversation": {"id": f"a:1c{n}", "tenantId": tenant}}

        statuses = []
        for n in range(50):  # 1/64 s apart (exact in binary): 50 sends in 0.77 s
            statuses.append(bot("POST", f"a:1c{n}", body=in_tenant(n)).status_code)
            clock.advance(1 / 64)
        fifty_first = bot("POST", "a:1known")
        elsewhere = bot("POST", "a:1c99", body=in_tenant(99, "another-tenant"))
        stored_before_retry = len(sim.conversation("a:1known").activities)
        clock.advance(1 - 50 / 64)  # one second after the first send, which leaves the window
        retried = bot("POST", "a:1known")

        assert statuses == [201] * 50
        assert (fifty_first.status_code, fifty_first.headers["Retry-After"]) == (429, "1")
        assert fifty_first.json()["error"]["code"] == "Throttled"
        assert stored_before_retry == 0
        assert retried.status_code == 201
        assert [a.id for a in sim.conversation("a:1known").activities] == [retried.json()["id"]]
        assert elsewhere.status_code == 201
        assert sim.limits.max_in_window(1.0, tenant_id=TENANT) == 50
        assert sim.limits.refusals == {"a:1known": 1}

    def test_a_tenant_an_activity_names_is_remembered_for_its_conversation(self, sim, clock, bot):
        sim.enforce_limits(clock)
        named = {"type": "message", "channelData": {"tenant": {"id": TENANT}}}

        bot("POST", "a:1chat", body=named)
        bot("POST", "a:1chat")

        assert sim.conversation("a:1chat").tenant_id == TENANT
        assert [tenant for _, tenant, _ in sim.limits.sends] == [TENANT, TENANT]

    def test_updates_replies_and_created_conversations_count_as_sends(self, sim, clock, bot):
        sim.enforce_limits(clock)
        sent = bot("POST", "a:1chat").json()["id"]
        updates = [bot("PUT", "a:1chat", sent, {"type": "message", "text": f"v{n}"}).status_code for n in range(5)]
        reply = bot("POST", "a:1chat", sent)
        refused_update = bot("PUT", "a:1chat", sent, {"type": "message", "text": "too many"})

        assert updates == [200] * 5 and reply.status_code == 201
        assert refused_update.status_code == 429
        assert [v.get("text") for v in sim.conversation("a:1chat").activity(sent).versions] == [
            None,
            "v0",
            "v1",
            "v2",
            "v3",
            "v4",
        ]

    async def test_creating_a_conversation_counts_against_it(self, sim, clock, limits):
        parameters = ConversationParameters(
            bot=ChannelAccount(id=f"28:{BOT_APP_ID}"),
            members=[ChannelAccount(id="29:1user")],
            tenant_id=TENANT,
        )
        async with connector(sim) as client:
            created = await client.conversations.create_conversation(parameters)
            for n in range(6):
                await client.conversations.send_to_conversation(created.id, Activity(type="message", text=f"m{n}"))
            with pytest.raises(ErrorResponseException) as throttled:
                await client.conversations.create_conversation(parameters)

        assert throttled.value.response.status_code == 429
        assert {(tenant, c) for _, tenant, c in limits.sends} == {(TENANT, created.id)}
        assert len(limits.sends) == 7

    async def test_a_channels_threads_share_the_channels_budget(self, sim, clock, limits):
        install = sim.installation_update("channel", bot_app_id=BOT_APP_ID)
        channel_id = install["channelData"]["settings"]["selectedChannel"]["id"]
        tenant_id = install["conversation"]["tenantId"]

        def new_thread(text: str) -> ConversationParameters:
            return ConversationParameters(
                is_group=True,
                bot=ChannelAccount(id=f"28:{BOT_APP_ID}"),
                channel_data=TeamsChannelData(channel=ChannelInfo(id=channel_id)).serialize(),
                activity=Activity(type="message", text=text),
                tenant_id=tenant_id,
            )

        async with connector(sim) as client:
            thread = await client.conversations.create_conversation(new_thread("alert 1"))
            for n in range(5):
                await client.conversations.send_to_conversation(thread.id, Activity(type="message", text=f"update {n}"))
            other = await client.conversations.create_conversation(new_thread("alert 2"))
            with pytest.raises(ErrorResponseException) as throttled:
                await client.conversations.reply_to_activity(
                    other.id, other.activity_id, Activity(type="message", text="one too many")
                )

        assert throttled.value.response.status_code == 429
        assert len(sim.conversation(channel_id).activities) == 7
        assert {(tenant, c) for _, tenant, c in limits.sends} == {(tenant_id, channel_id)}

    def test_max_in_window_reports_the_busiest_sliding_window(self, sim, clock, bot):
        sim.enforce_limits(clock)
        for _ in range(5):
            bot("POST", "a:1one")
        clock.advance(0.9)
        for _ in range(2):
            bot("POST", "a:1one")
            bot("POST", "a:1two")
        clock.advance(0.2)  # the first five have left the 1 s window
        bot("POST", "a:1two")

        limits = sim.limits
        assert limits.max_in_window(1.0) == 9
        assert limits.max_in_window(1.0, conversation_id="a:1one") == 7
        assert limits.max_in_window(1.0, conversation_id="a:1two") == 3
        assert limits.max_in_window(0.5) == 5
        assert limits.max_in_window(2.0) == 10
        assert limits.max_in_window(2.0, tenant_id="no-such-tenant") == 0

    def test_a_fault_answers_first_and_is_not_counted(self, sim, clock, bot):
        sim.enforce_limits(clock)
        sim.add_fault("POST", r"/activities$", status=503, retry_after=5)

        statuses = [bot("POST", "a:1chat").status_code for _ in range(9)]

        assert statuses == [503] + [201] * 7 + [429]
        assert len(sim.limits.sends) == 7

    def test_without_enforcement_nothing_is_refused(self, sim, bot):
        statuses = [bot("POST", "a:1chat").status_code for _ in range(20)]

        assert statuses == [201] * 20
        assert sim.limits is None

    def test_reset_forgets_the_sends_and_turns_enforcement_off(self, sim, clock, bot):
        sim.enforce_limits(clock)
        bot("POST", "a:1chat")

        sim.reset()

        assert sim.limits is None and TeamsSimulator().limits is None
        with TeamsSimulator(enforce_limits=True, limits_clock=clock) as limited:
            assert limited.limits is not None
            limited.limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat")
            limited.reset()
            assert limited.limits is not None and limited.limits.sends == []

    def test_the_send_log_is_served_for_a_benchmark_in_another_process(self, sim, clock, bot):
        assert requests.get(f"{sim.url}/_sim/limits", timeout=5).json() == {"enforced": False}
        sim.enforce_limits(clock)
        for _ in range(8):
            bot("POST", "a:1chat")

        served = requests.get(f"{sim.url}/_sim/limits", timeout=5).json()

        assert served["enforced"] is True and served["refused"] == 1
        assert served["sends"][0] == {"time": clock.now, "tenantId": "", "conversationId": "a:1chat"}
        assert len(served["sends"]) == 7


class TestRateLimitWindows:
    """``RateLimits`` on its own: the hour window holds 1,800 sends per conversation."""

    def test_the_hour_allows_1800_sends_to_a_conversation(self):
        clock = FakeClock()
        limits = RateLimits(clock)
        for _ in range(1800):  # 1.5 s apart: under every shorter window
            assert limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat") is None
            clock.advance(1.5)

        retry_after = limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat")  # at 2,700 s

        assert retry_after == 900.0
        assert limits.max_in_window(3600.0) == 1800 and limits.refused == 1
        clock.advance(900.0)
        assert limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat") is None

    def test_each_bot_has_its_own_budget_and_a_short_wait_rounds_up_to_a_second(self):
        clock = FakeClock()
        limits = RateLimits(clock)
        for _ in range(7):
            limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat")
        clock.advance(0.999)

        assert limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat") == 1.0
        assert limits.check_and_record("another-bot", TENANT, "a:1chat") is None

    def test_with_several_windows_full_retry_after_waits_for_the_last_to_free_up(self):
        clock = FakeClock()
        limits = RateLimits(clock)
        for _ in range(53):  # 0.25 s apart, from 0 to 13 s
            limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat")
            clock.advance(0.25)
        clock.now += 20 - 13.25
        for _ in range(7):  # at 20 s: the 1 s window is full, and so is the 30 s one (60 sends)
            assert limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat") is None
        clock.advance(0.5)

        # The 1 s window frees up in 0.5 s, the 30 s one only in 9.5 s (at 30 s).
        assert limits.check_and_record(BOT_APP_ID, TENANT, "a:1chat") == 10.0

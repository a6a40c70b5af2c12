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

from tools.teams_simulator import TeamsSimulator

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

        result = await channel_authentication(sim).authenticate_request(
            activity, sim.auth_header(BOT_APP_ID)
        )

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
            await channel_authentication(sim).authenticate_request(
                activity, sim.auth_header("another-bot-app-id")
            )

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
            await channel_authentication(sim).authenticate_request(
                activity, sim.auth_header(BOT_APP_ID)
            )


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
                thread.id, thread.activity_id,
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
            tenant_id="tenant-1",
        )
        async with connector(sim) as client:
            first = await client.conversations.create_conversation(parameters)
            second = await client.conversations.create_conversation(parameters)
            await client.conversations.send_to_conversation(
                first.id, Activity(type="message", text="hello")
            )
            members = await client.conversations.get_conversation_members(first.id)

        assert first.id == second.id and first.id.startswith("a:")
        assert sim.conversation(first.id).texts == ["hello"]
        assert [m.id for m in members] == ["29:1user"]

    async def test_a_deleted_activity_stays_listed_as_deleted(self, sim):
        async with connector(sim) as client:
            sent = await client.conversations.send_to_conversation(
                "a:1chat", Activity(type="message", text="oops")
            )
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
                await client.conversations.send_to_conversation(
                    "a:1chat", Activity(type="message", text="first try")
                )
            sent = await client.conversations.send_to_conversation(
                "a:1chat", Activity(type="message", text="second try")
            )

        assert throttled.value.response.status_code == 429
        assert throttled.value.response.headers["Retry-After"] == "2"
        assert sim.conversation("a:1chat").activity(sent.id).text == "second try"
        assert [r.status for r in sim.requests if r.path.endswith("/activities")] == [429, 201]

    async def test_the_connector_client_retries_a_failed_update_itself_but_not_a_send(self, sim):
        async with connector(sim) as client:
            sent = await client.conversations.send_to_conversation(
                "a:1chat", Activity(type="message", text="v1")
            )
            sim.add_fault("PUT", r"/activities/", status=502)
            await client.conversations.update_activity(
                "a:1chat", sent.id, Activity(type="message", text="v2")
            )
            sim.add_fault("POST", r"/activities$", status=502)
            with pytest.raises(ErrorResponseException):
                await client.conversations.send_to_conversation(
                    "a:1chat", Activity(type="message", text="v3")
                )

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
            "type": "Action.Execute", "verb": "acknowledge", "data": {"alertId": "a-1"}
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
                    data={"grant_type": "client_credentials", "client_id": GRAPH_APP_ID, "client_secret": GRAPH_SECRET, "scope": GRAPH_SCOPE},
                    verify=sim.ca_file,
                    timeout=5,
                )
                answer.raise_for_status()
                tokens.append(answer.json()["access_token"])
            headers = {"Authorization": f"Bearer {tokens[0]}"}
            return session.request(method, sim.graph_url + path, headers=headers, verify=sim.ca_file, timeout=5, **kwargs)

        call.users = (ada.id, bob.id)
        with session:
            yield call

    @staticmethod
    def group_chat(graph) -> str:
        members = [
            {"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"], "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{user}')"}
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
        ours = graph("GET", path, params={"$expand": "teamsApp", "$filter": f"teamsApp/id eq '{TEAMS_APP_ID}'"}).json()["value"]

        assert {i["teamsApp"]["id"] for i in everything} == {TEAMS_APP_ID, "another-app"}
        assert ours == [{"id": sim.graph.chat_installation_id(TENANT, chat_id, TEAMS_APP_ID), "teamsApp": {"id": TEAMS_APP_ID}}]

"""Connecting a tenant end to end: function_app's routes, Azurite, and the simulator's identity
and Graph endpoints, with the real MSAL, azure-identity and msgraph-sdk clients over TLS."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import parse_qs, urlencode, urlparse

import azure.functions as func
import pytest
import requests

from shared import bootstrap
from shared.security import StateSigner, new_key, tenant_admin_key
from tests.e2e.conftest import TENANT_ID
from tests.support.app import deliver, functions

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

GRAPH_APP_ID = "0c7a9d55-0000-4000-8000-00000000c0de"
GRAPH_SECRET = "graph-app-simulator-secret"
ADMIN_KEY = new_key()
STATE_KEY = new_key()
OTHER_TENANT = "33333333-cccc-4000-8000-0000000000c3"


@pytest.fixture
async def m365(connector, monkeypatch):
    """The connector with tenant connection on, and a Microsoft 365 tenant in the simulator."""
    sim = connector
    env = {
        "GRAPH_APP_ID": GRAPH_APP_ID,
        "GRAPH_CLIENT_SECRET": GRAPH_SECRET,
        "GRAPH_BASE_URL": sim.graph_url,
        "AUTHORITY_HOST": sim.authority_host,
        "LOCAL_CA_CERT_FILE": sim.ca_file,
        "LOCAL_DEVELOPMENT": "true",
        "PUBLIC_BASE_URL": "http://localhost:7071",
        "TOKEN_ENCRYPTION_KEY": new_key(),
        "STATE_SIGNING_KEY": STATE_KEY,
        "ADMIN_API_KEY": ADMIN_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    await bootstrap.reset()
    sim.directory.register_app(GRAPH_APP_ID, GRAPH_SECRET)
    tenant = sim.directory.add_tenant(TENANT_ID, "Contoso Ops")
    tenant.admin = tenant.add_user("Grace Hopper", "grace@contoso.test")
    tenant.ops = tenant.add_team("Operations", members=(tenant.admin.id,))
    tenant.oncall = tenant.add_channel(tenant.ops, "On call", members=(tenant.admin.id,))
    sim.directory.sign_in(TENANT_ID, tenant.admin.id)
    other = sim.directory.add_tenant(OTHER_TENANT, "Fabrikam")
    other.add_team("Fabrikam secrets")
    sim.directory.grant_admin_consent(OTHER_TENANT, GRAPH_APP_ID)
    sim.m365 = tenant
    yield sim
    await bootstrap.reset()


def request(
    method: str,
    route: str,
    *,
    params: dict | None = None,
    headers: dict | None = None,
    route_params: dict | None = None,
) -> func.HttpRequest:
    return func.HttpRequest(
        method,
        f"http://localhost:7071/api/{route}",
        headers=headers or {},
        params=params or {},
        route_params=route_params or {},
        body=b"",
    )


async def call(name: str, req: func.HttpRequest) -> func.HttpResponse:
    return await functions()[name](req)


async def start(method: str, **params: str) -> str:
    response = await call(
        "connect", request("GET", "connect", params={"method": method, **params}, headers={"X-Admin-Key": ADMIN_KEY})
    )
    assert response.status_code == 302, response.get_body()
    return response.headers["Location"]


def browser(sim, url: str) -> dict[str, str]:
    """What Microsoft's page sends back (the browser step, over TLS): a redirect's query, or
    the fields of the form_post page (marked with ``_post``)."""
    answer = requests.get(url, allow_redirects=False, verify=sim.ca_file, timeout=10)
    if answer.status_code == 200:
        assert 'action="http://localhost:7071/api/consent/callback"' in answer.text
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', answer.text))
        return {k: html.unescape(v) for k, v in fields.items()} | {"_post": "1"}
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith("http://localhost:7071/api/consent/callback?")
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


async def callback(params: dict[str, str]) -> func.HttpResponse:
    if params.pop("_post", None):
        req = func.HttpRequest(
            "POST",
            "http://localhost:7071/api/consent/callback",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(params).encode(),
        )
        return await call("consent_callback", req)
    return await call("consent_callback", request("GET", "consent/callback", params=params))


async def stored_connection(tenant_id: str = TENANT_ID):
    return await (await bootstrap.container()).store.get_connection(tenant_id)


async def connect_delegated(sim, **params: str) -> func.HttpResponse:
    return await callback(browser(sim, await start("delegated", **params)))


def tenant_headers(tenant_id: str = TENANT_ID) -> dict:
    return {"X-Admin-Key": tenant_admin_key(ADMIN_KEY, tenant_id)}


class TestAdminConsent:
    async def test_the_round_trip_connects_the_tenant(self, m365):
        url = await start("bot")
        assert urlparse(url).path == "/organizations/v2.0/adminconsent"
        response = await callback(browser(m365, url))
        assert response.status_code == 200 and "Connected to Contoso Ops" in response.get_body().decode()
        connector = await stored_connection()
        assert (connector.method, connector.status, connector.organisation) == ("bot", "connected", "Contoso Ops")
        assert "Channel.Create" in connector.scopes and connector.connected_at is not None

    async def test_a_declined_consent_shows_what_happened_and_changes_nothing(self, m365):
        m365.directory.consent_error = ("access_denied", "AADSTS65004: User declined to consent to access the app.")
        params = browser(m365, await start("bot"))
        assert params["admin_consent"] == "True" and params["error"] == "access_denied"
        response = await callback(params)
        page = response.get_body().decode()
        assert response.status_code == 400 and "declined" in page and "retry" in page.lower()
        assert await stored_connection() is None

    async def test_the_error_page_escapes_what_microsoft_sent(self, m365):
        response = await callback({"error": "server_error", "error_description": "<script>alert(1)</script>"})
        assert "<script>" not in response.get_body().decode() and "&lt;script&gt;" in response.get_body().decode()


class TestState:
    async def test_a_tampered_state_is_refused_and_nothing_is_stored(self, m365):
        params = browser(m365, await start("bot"))
        body, _, mac = params["state"].partition(".")
        params["state"] = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
        response = await callback(params)
        assert response.status_code == 400 and "signature" in response.get_body().decode()
        assert await stored_connection() is None

    async def test_an_expired_state_is_refused_and_nothing_is_stored(self, m365):
        params = browser(m365, await start("bot"))
        flow_id = json.loads(
            __import__("shared.security", fromlist=["unb64url"]).unb64url(params["state"].split(".")[0])
        )["f"]
        params["state"] = StateSigner(STATE_KEY, ttl=-1).sign({"f": flow_id, "m": "bot"})
        response = await callback(params)
        assert response.status_code == 400 and "expired" in response.get_body().decode()
        assert await stored_connection() is None

    async def test_a_replayed_state_is_refused(self, m365):
        params = browser(m365, await start("bot"))
        assert (await callback(params)).status_code == 200
        await (await bootstrap.container()).connect.consent.disconnect(TENANT_ID)
        replay = await callback(params)
        assert replay.status_code == 400 and "already used" in replay.get_body().decode()
        assert (await stored_connection()).status == "disconnected"

    async def test_connect_needs_the_admin_key(self, m365):
        response = await call(
            "connect", request("GET", "connect", params={"method": "bot"}, headers={"X-Admin-Key": "wrong"})
        )
        assert response.status_code == 403


class TestDelegated:
    async def test_the_round_trip_stores_the_token_cache_encrypted(self, m365):
        response = await connect_delegated(m365)
        assert response.status_code == 200 and "Connected to Contoso Ops" in response.get_body().decode(), (
            response.get_body()
        )
        connector = await stored_connection()
        assert (connector.method, connector.status, connector.connected_by) == (
            "delegated",
            "connected",
            "grace@contoso.test",
        )
        assert "ChannelMessage.Send" in connector.scopes
        store = (await bootstrap.container()).store
        raw = json.dumps((await (await store._tables.table("connectors")).get("connector", TENANT_ID))[0], default=str)
        issued = list(m365.directory.refresh_tokens)
        assert issued and not any(token in raw for token in issued)
        assert connector.token_cache.startswith("v1.") and "refresh_token" not in raw.lower().replace("tokencache", "")

    async def test_a_graph_call_uses_the_delegated_token_and_writes_the_refreshed_cache_back(self, m365):
        m365.directory.delegated_token_lifetime = 60  # inside MSAL's 5-minute margin: every call refreshes
        await connect_delegated(m365)
        before = await stored_connection()
        refreshes = [r for r in m365.directory.token_requests if r["grant_type"] == "refresh_token"]
        response = await call(
            "tenant_teams",
            request("GET", "tenants/x/teams", headers=tenant_headers(), route_params={"tenant_id": TENANT_ID}),
        )
        assert response.status_code == 200, response.get_body()
        assert [t["displayName"] for t in json.loads(response.get_body())["value"]] == ["Operations"]
        after = await stored_connection()
        assert after.token_cache != before.token_cache and after.etag != before.etag
        assert (
            len([r for r in m365.directory.token_requests if r["grant_type"] == "refresh_token"]) == len(refreshes) + 1
        )


MANAGED_IDENTITY_CLIENT_ID = "7e57c11e-0000-4000-8000-0000000000f1"
MANAGED_IDENTITY_PRINCIPAL_ID = "7e57c11e-0000-4000-8000-0000000000f2"
HOME_TENANT = "44444444-dddd-4000-8000-0000000000d4"


@pytest.fixture
async def secretless(m365, monkeypatch):
    """What `azd up` deploys: the Graph app has no secret; its federated credential is the
    function app's user-assigned managed identity (infra/app/graph-app.bicep), whose token
    comes from App Service's identity endpoint."""
    sim = m365
    sim.directory.register_app(GRAPH_APP_ID, None)  # no secret: assertions only
    sim.directory.add_managed_identity(MANAGED_IDENTITY_CLIENT_ID, MANAGED_IDENTITY_PRINCIPAL_ID, HOME_TENANT)
    trust = {
        "issuer": f"{sim.authority_host}/{HOME_TENANT}/v2.0",
        "subject": MANAGED_IDENTITY_PRINCIPAL_ID,
        "audience": "api://AzureADTokenExchange",
    }
    monkeypatch.delenv("GRAPH_CLIENT_SECRET")
    for name, value in {
        "GRAPH_CREDENTIAL_TYPE": "federated_managed_identity",
        "MANAGED_IDENTITY_CLIENT_ID": MANAGED_IDENTITY_CLIENT_ID,
        "IDENTITY_ENDPOINT": f"{sim.url}/msi/token",
        "IDENTITY_HEADER": sim.directory.identity_header,
    }.items():
        monkeypatch.setenv(name, value)
    await bootstrap.reset()
    sim.trust = trust
    return sim


class TestSecretless:
    async def test_admin_consent_connects_with_the_managed_identity_as_the_apps_credential(self, secretless):
        secretless.directory.add_federated_credential(GRAPH_APP_ID, **secretless.trust)
        response = await callback(browser(secretless, await start("bot")))
        assert response.status_code == 200 and "Connected to Contoso Ops" in response.get_body().decode(), (
            response.get_body()
        )
        assert (await stored_connection()).status == "connected"
        app_tokens = [r for r in secretless.directory.token_requests if r["grant_type"] == "client_credentials"]
        assert app_tokens and {r["client_authentication"] for r in app_tokens} == {"assertion"}

    async def test_the_delegated_connection_redeems_the_code_with_the_managed_identity(self, secretless):
        secretless.directory.add_federated_credential(GRAPH_APP_ID, **secretless.trust)
        response = await connect_delegated(secretless)
        assert response.status_code == 200, response.get_body()
        redeemed = [r for r in secretless.directory.token_requests if r["grant_type"] == "authorization_code"]
        assert [r["client_authentication"] for r in redeemed] == ["assertion"]

    async def test_an_app_that_does_not_trust_this_identity_is_refused_and_says_why(self, secretless):
        secretless.directory.add_federated_credential(GRAPH_APP_ID, **{**secretless.trust, "subject": "someone-else"})
        response = await callback(browser(secretless, await start("bot")))
        page = response.get_body().decode()
        assert (
            response.status_code == 502
            and "AADSTS70021" in page
            and "no federated credential for this managed identity" in page
        ), page
        assert await stored_connection() is None


class TestLifecycle:
    async def test_invalid_grant_moves_to_needs_reconsent_and_records_the_alert_as_undeliverable(self, m365):
        m365.directory.delegated_token_lifetime = 60  # every Graph call needs a refresh
        await connect_delegated(m365, team=m365.m365.ops.id, channel=m365.m365.oncall.id)
        m365.directory.refresh_error = (
            "invalid_grant",
            "AADSTS50173: The provided grant has expired due to it being revoked.",
        )
        before = len([r for r in m365.directory.token_requests if r["grant_type"] == "refresh_token"])
        event = _example("alert-created.json")
        await deliver(event, message_id="needs-consent-1")  # returns normally: completed, not retried
        connector = await stored_connection()
        assert connector.status == "needs_reconsent" and "invalid_grant" in connector.status_reason
        store = (await bootstrap.container()).store
        [undeliverable] = await store.list_undeliverable(TENANT_ID)
        assert undeliverable.alert_id == "ALRT-1042" and "invalid_grant" in undeliverable.reason
        await deliver(event, message_id="needs-consent-1")  # a redelivery does not try the refresh token again
        assert len([r for r in m365.directory.token_requests if r["grant_type"] == "refresh_token"]) == before + 1
        assert m365.directory.channel(TENANT_ID, m365.m365.ops.id, m365.m365.oncall.id).messages == {}

    async def test_disconnect_stops_the_tenant_and_erases_its_tokens(self, m365):
        await connect_delegated(m365, team=m365.m365.ops.id, channel=m365.m365.oncall.id)
        response = await call(
            "tenant_disconnect",
            request("POST", "tenants/x/disconnect", headers=tenant_headers(), route_params={"tenant_id": TENANT_ID}),
        )
        assert response.status_code == 200 and json.loads(response.get_body())["status"] == "disconnected"
        connector = await stored_connection()
        assert (
            connector.token_cache == ""
            and await (await bootstrap.container()).store.list_conversations(TENANT_ID) == []
        )


class TestManagementReads:
    async def test_channels_and_users_are_read_for_a_connected_tenant(self, m365):
        await callback(browser(m365, await start("bot")))
        channels = await call(
            "tenant_channels",
            request(
                "GET", "c", headers=tenant_headers(), route_params={"tenant_id": TENANT_ID, "team_id": m365.m365.ops.id}
            ),
        )
        users = await call(
            "tenant_users",
            request(
                "GET", "u", params={"search": "grace"}, headers=tenant_headers(), route_params={"tenant_id": TENANT_ID}
            ),
        )
        assert sorted(c["displayName"] for c in json.loads(channels.get_body())["value"]) == ["General", "On call"]
        assert [u["userPrincipalName"] for u in json.loads(users.get_body())["value"]] == ["grace@contoso.test"]

    async def test_tenant_b_credentials_cannot_read_tenant_a(self, m365):
        await callback(browser(m365, await start("bot")))
        response = await call(
            "tenant_teams",
            request("GET", "t", headers=tenant_headers(OTHER_TENANT), route_params={"tenant_id": TENANT_ID}),
        )
        assert response.status_code == 403 and b"Operations" not in response.get_body()

    async def test_the_master_key_is_not_a_tenant_key(self, m365):
        await callback(browser(m365, await start("bot")))
        response = await call(
            "tenant_teams",
            request("GET", "t", headers={"X-Admin-Key": ADMIN_KEY}, route_params={"tenant_id": TENANT_ID}),
        )
        assert response.status_code == 403

    async def test_a_tenant_that_is_not_connected_is_refused(self, m365):
        response = await call(
            "tenant_teams",
            request("GET", "t", headers=tenant_headers(OTHER_TENANT), route_params={"tenant_id": OTHER_TENANT}),
        )
        assert response.status_code == 404

    async def test_a_missing_permission_is_named(self, m365):
        m365.directory.app_roles.discard("Team.ReadBasic.All")
        await callback(browser(m365, await start("bot")))
        response = await call(
            "tenant_teams", request("GET", "t", headers=tenant_headers(), route_params={"tenant_id": TENANT_ID})
        )
        assert response.status_code == 403 and json.loads(response.get_body())["permission"] == "Team.ReadBasic.All"

    async def test_a_throttled_read_waits_the_retry_after(self, m365):
        from tests.support import app

        await callback(browser(m365, await start("bot")))
        before = app.CLOCK.now
        m365.add_fault("GET", r"/v1\.0/teams$", 429, retry_after=1)
        response = await call(
            "tenant_teams", request("GET", "t", headers=tenant_headers(), route_params={"tenant_id": TENANT_ID})
        )
        assert response.status_code == 200
        assert [r.status for r in m365.requests if r.path == "/v1.0/teams"] == [429, 200]
        assert (app.CLOCK.now - before).total_seconds() >= 1.0  # the app's sleep waited it out


class TestDelegatedDelivery:
    async def test_an_alert_is_one_channel_message_updated_in_place_on_resolve(self, m365):
        await connect_delegated(m365, team=m365.m365.ops.id, channel=m365.m365.oncall.id)
        await deliver(_example("alert-created.json"))
        await deliver(_example("alert-resolved.json"))
        channel = m365.directory.channel(TENANT_ID, m365.m365.ops.id, m365.m365.oncall.id)
        [message] = channel.messages.values()
        assert message.from_user == m365.m365.admin.id and message.updates == 1
        card = json.loads(message.attachments[0]["content"])
        assert message.attachments[0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert "Resolved" in json.dumps(card)
        store = (await bootstrap.container()).store
        [alert] = await store.find_alerts(TENANT_ID, _example("alert-created.json")["data"]["id"])
        [delivery] = await store.list_deliveries(TENANT_ID, alert.key)
        assert delivery.activity_id == message.id and delivery.status == "posted"


def _example(name: str) -> dict:
    from tests.e2e.test_alert_flow import example

    return example(name)


class TestAGraphSettingKeyVaultCouldNotResolve:
    """azd writes the Graph app's id into Key Vault after the app; until App Service resolves the
    reference, the setting holds the reference itself. Tenant connection is then off and says why;
    everything else runs."""

    REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-tac.vault.azure.net/secrets/graph-app-id)"

    async def test_tenant_connection_is_off_and_says_why_while_the_rest_runs(self, m365, monkeypatch):
        monkeypatch.setenv("GRAPH_APP_ID", self.REFERENCE)
        await bootstrap.reset()
        health = await call("health", request("GET", "health"))
        assert health.status_code == 200
        said = json.loads(health.get_body())
        assert said["status"] == "degraded"
        assert said["off"].startswith("GRAPH_APP_ID is an unresolved Key Vault reference, so tenant connection")
        connect = await call(
            "connect", request("GET", "connect", params={"method": "bot"}, headers={"X-Admin-Key": ADMIN_KEY})
        )
        assert (
            connect.status_code == 503
            and "GRAPH_APP_ID is an unresolved Key Vault reference" in json.loads(connect.get_body())["error"]
        )
        assert "kv-tac" not in health.get_body().decode() + connect.get_body().decode()
        # The admin routes still open (ADMIN_API_KEY resolved): the connector itself is up.
        rejected = await call("rejected_events", request("GET", "events/rejected", headers={"X-Admin-Key": ADMIN_KEY}))
        assert rejected.status_code == 200

"""Microsoft Graph helper on ``msgraph-sdk``: the only module that imports it.

One :class:`GraphDirectory` serves every tenant. It builds a Graph client per tenant and kind
of token on first use:
- app-only (the bot-identity connection): a client secret, a certificate, or a user-assigned
  managed identity used as a federated credential (``ClientAssertionCredential``), chosen by
  ``GRAPH_CREDENTIAL_TYPE``;
- delegated (the identity-provider connection): :class:`DelegatedCredential`, backed by the
  connected user's MSAL token cache (shared/adapters/identity.py).

The request adapter is built here (not by ``GraphServiceClient(credentials)``) so the base URL
is configurable and a test CA can be trusted for a local simulator. The SDK's own retry
middleware is switched off: :meth:`GraphDirectory._call` retries 429/503/504 itself, honouring
``Retry-After`` with a bounded number of attempts and a bounded wait, and turns every failure
into :class:`shared.ports.GraphError` (403 names the missing permission, 404 the missing object).
"""

from __future__ import annotations

import html
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx
from azure.core.credentials import AccessToken
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.graph_request_adapter import options as MSGRAPH_OPTIONS
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import BaseGraphRequestAdapter, GraphClientFactory

from shared.adapters.app_registration import TOKEN_EXCHANGE_SCOPE, AppRegistration
from shared.cards import CARD_CONTENT_TYPE
from shared.permissions import GRAPH_DEFAULT_SCOPE, GRAPH_RESOURCE, OPERATIONS, permission_for
from shared.ports import GraphError, ReconsentRequired
from shared.resilience import GRAPH, RetryPolicy, Sleep, parse_retry_after, policy_now, real_sleep
from shared.security import unb64url

log = logging.getLogger(__name__)
T = TypeVar("T")

# Owner binding URLs are resource ids, not request URLs: always the public Graph host.
BIND_BASE = f"{GRAPH_RESOURCE}/v1.0"

CREDENTIAL_TYPES = ("secret", "certificate", "federated_managed_identity")


@dataclass(frozen=True, kw_only=True)
class GraphConfig(AppRegistration):
    base_url: str


def app_credential(config: GraphConfig, tenant_id: str) -> Any:
    """The app-only credential for one tenant (azure-identity, async)."""
    kwargs: dict[str, Any] = {"authority": config.authority_host}
    if config.ca_file:
        kwargs["connection_verify"] = config.ca_file
    if config.credential_type == "secret":
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(tenant_id, config.app_id, config.client_secret or "", **kwargs)
    if config.credential_type == "certificate":
        from azure.identity.aio import CertificateCredential

        return CertificateCredential(tenant_id, config.app_id, config.certificate_path, **kwargs)
    if config.credential_type == "federated_managed_identity":
        from azure.identity import ManagedIdentityCredential
        from azure.identity.aio import ClientAssertionCredential

        identity = ManagedIdentityCredential(client_id=config.managed_identity_client_id)
        return ClientAssertionCredential(
            tenant_id, config.app_id, lambda: identity.get_token(TOKEN_EXCHANGE_SCOPE).token, **kwargs
        )
    raise ValueError(
        f"unknown Graph credential type {config.credential_type!r}; use one of {', '.join(CREDENTIAL_TYPES)}"
    )


# Microsoft Entra error codes of a token request the app's own credential failed, and what to check.
_CREDENTIAL_HINTS = {
    "AADSTS70021": (
        "the app registration has no federated credential for this managed identity "
        "(issuer and subject: see its Certificates & secrets page)"
    ),
    "AADSTS700212": (
        "the app registration's federated credential names another audience than the managed identity's token "
        "carries (api://AzureADTokenExchange in the public cloud)"
    ),
    "AADSTS7000215": "the client secret is wrong or expired",
    "AADSTS7000222": "the client secret has expired",
    "AADSTS700016": (
        "the app registration does not exist in that tenant: has an administrator of the tenant consented to it?"
    ),
}


def _token_failure(tenant_id: str, exc: Exception) -> GraphError:
    """Microsoft's own first line (its AADSTS code names the cause), and what to check."""
    first = str(getattr(exc, "message", None) or exc).splitlines()[0]
    hint = next(
        (h for code, h in _CREDENTIAL_HINTS.items() if f"{code}:" in first),
        "has an administrator of that tenant consented to the app?",
    )
    return GraphError(
        f"No app-only token for tenant {tenant_id}: {first}. Check: {hint}", status=401, code="TokenFailed"
    )


class DelegatedCredential:
    """An async token credential over the connected user's token cache.

    ``acquire(tenant_id)`` returns ``(access_token, expires_on)`` and raises
    :class:`ReconsentRequired` when the refresh token is no longer accepted.
    """

    def __init__(self, tenant_id: str, acquire: Callable[[str], Awaitable[tuple[str, int]]]) -> None:
        self._tenant_id = tenant_id
        self._acquire = acquire

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token, expires_on = await self._acquire(self._tenant_id)
        return AccessToken(token, expires_on)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> DelegatedCredential:
        return self

    async def __aexit__(self, *args: Any) -> None:
        return None


def _ssl_context(ca_file: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return value if isinstance(value, str) else (value[0] if value else None)
    return None


def _retry_after(headers: Any) -> float | None:
    return parse_retry_after(_header(headers, "Retry-After"))


def _present(value: T | None, what: str) -> T:
    """What Graph's answer must carry; an answer without it is Graph's failure, not ours."""
    if value is None:
        raise GraphError(f"Microsoft Graph answered without {what}", status=502, code="EmptyResponse")
    return value


def _user(model: Any) -> dict[str, Any]:
    return {
        "id": model.id,
        "displayName": model.display_name,
        "userPrincipalName": model.user_principal_name,
        "mail": model.mail,
    }


def _card_message(card: dict[str, Any], summary: str) -> Any:
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.chat_message import ChatMessage
    from msgraph.generated.models.chat_message_attachment import ChatMessageAttachment
    from msgraph.generated.models.item_body import ItemBody

    attachment_id = uuid.uuid4().hex
    return ChatMessage(
        body=ItemBody(content_type=BodyType.Html, content=f'<attachment id="{attachment_id}"></attachment>'),
        attachments=[
            ChatMessageAttachment(
                id=attachment_id, content_type=CARD_CONTENT_TYPE, content=json.dumps(card, separators=(",", ":"))
            )
        ],
        summary=summary[:200] if summary else None,
    )


def _text_message(text: str) -> Any:
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.chat_message import ChatMessage
    from msgraph.generated.models.item_body import ItemBody

    return ChatMessage(body=ItemBody(content_type=BodyType.Html, content=html.escape(text).replace("\n", "<br>")))


def _member(user_id: str, owner: bool) -> Any:
    from msgraph.generated.models.aad_user_conversation_member import AadUserConversationMember

    return AadUserConversationMember(
        roles=["owner"] if owner else [], additional_data={"user@odata.bind": f"{BIND_BASE}/users('{user_id}')"}
    )


ModeLookup = Callable[[str], Awaitable[str]]  # tenant id -> "app" | "delegated"


class GraphDirectory:
    """Implements :class:`shared.ports.Directory` plus the delegated message operations."""

    def __init__(
        self,
        config: GraphConfig,
        *,
        mode_for: ModeLookup | None = None,
        delegated_tokens: Callable[[str], Awaitable[tuple[str, int]]] | None = None,
        sleep: Sleep = real_sleep,
        policy: RetryPolicy = GRAPH,
        credential_factory: Callable[[GraphConfig, str], Any] = app_credential,
    ) -> None:
        self._config = config
        self._mode_for = mode_for
        self._delegated_tokens = delegated_tokens
        self._sleep = sleep
        self._policy = policy
        self._credential_factory = credential_factory
        self._clients: dict[tuple[str, str], tuple[GraphServiceClient, Any, httpx.AsyncClient, Any]] = {}

    # ------------------------------------------------------------------ clients

    async def _mode(self, tenant_id: str) -> str:
        return await self._mode_for(tenant_id) if self._mode_for else "app"

    def client(self, tenant_id: str, mode: str) -> GraphServiceClient:
        """The tenant's Graph client for ``mode`` ("app" or "delegated"), built on first use."""
        key = (tenant_id, mode)
        if key not in self._clients:
            if mode == "delegated":
                if self._delegated_tokens is None:
                    raise GraphError("delegated Graph calls are not configured", status=None, code="NotConfigured")
                credential: Any = DelegatedCredential(tenant_id, self._delegated_tokens)
            else:
                credential = self._credential_factory(self._config, tenant_id)
            http = httpx.AsyncClient(verify=_ssl_context(self._config.ca_file), timeout=httpx.Timeout(30.0))
            # msgraph-core's AsyncGraphTransport does not close the transport it wraps: keep it.
            transport = http._transport
            http = GraphClientFactory.create_with_default_middleware(
                client=http,
                # msgraph's own options (``/users/me-token-to-replace`` -> ``/me``, telemetry),
                # with the SDK's retries off: _call retries.
                options={
                    **MSGRAPH_OPTIONS,
                    RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0, should_retry=False),
                },
            )
            http.base_url = self._config.base_url
            host = urlparse(self._config.base_url).hostname or ""
            auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_DEFAULT_SCOPE], allowed_hosts=[host])
            adapter = BaseGraphRequestAdapter(auth, http_client=http)
            adapter.base_url = self._config.base_url
            self._clients[key] = (GraphServiceClient(request_adapter=adapter), credential, http, transport)
        return self._clients[key][0]

    async def close(self) -> None:
        for _client, credential, http, transport in self._clients.values():
            await http.aclose()
            await transport.aclose()
            closer = getattr(credential, "close", None)
            if closer is not None:
                await closer()
        self._clients.clear()

    # ------------------------------------------------------------------ the call wrapper

    async def _call(
        self,
        tenant_id: str,
        operation: str,
        missing: str,
        make: Callable[[GraphServiceClient], Awaitable[T]],
        *,
        mode: str | None = None,
    ) -> T:
        mode = mode or await self._mode(tenant_id)
        client = self.client(tenant_id, mode)
        policy = policy_now(self._policy)  # a queued send tries once: its job is rescheduled instead
        attempt = 0
        while True:
            attempt += 1
            try:
                return await make(client)
            except ReconsentRequired:
                raise
            except APIError as exc:
                status = exc.response_status_code
                retry_after = _retry_after(exc.response_headers)
                wait = policy.wait_before_retry(attempt, status, retry_after)
                if wait is None:
                    raise self._error(tenant_id, operation, missing, mode, exc, retry_after) from exc
                log.info("Graph answered %s to %s in tenant %s; retrying in %.1f s", status, operation, tenant_id, wait)
                await self._sleep(wait)
            except httpx.HTTPError as exc:
                wait = policy.wait_before_retry(attempt, None, None)
                if wait is None:
                    # A timeout or a dropped answer: the request may have been done ("NoAnswer").
                    answered = not isinstance(exc, httpx.TimeoutException | httpx.RemoteProtocolError)
                    raise GraphError(
                        f"Microsoft Graph could not be reached to {OPERATIONS[operation][2]}: "
                        f"{type(exc).__name__}: {exc}",
                        status=None,
                        code="Unreachable" if answered or isinstance(exc, httpx.ConnectTimeout) else "NoAnswer",
                    ) from exc
                await self._sleep(wait)
            except GraphError:
                raise
            except Exception as exc:
                from azure.core.exceptions import ClientAuthenticationError

                if isinstance(exc, ClientAuthenticationError):
                    raise _token_failure(tenant_id, exc) from exc
                raise

    @staticmethod
    def _error(
        tenant_id: str, operation: str, missing: str, mode: str, exc: APIError, retry_after: float | None
    ) -> GraphError:
        status = exc.response_status_code
        main = getattr(exc, "error", None)
        code = str(getattr(main, "code", "") or "")
        said = str(getattr(main, "message", "") or exc.message or "")
        doing = OPERATIONS[operation][2]
        if status == 403:
            permission = permission_for(operation, mode == "delegated")
            kind = "delegated" if mode == "delegated" else "application"
            return GraphError(
                f"Microsoft Graph refused to {doing} in tenant {tenant_id}: the connector needs the {kind} permission "
                f"{permission}; grant it on the app registration and connect the tenant again. Graph said: {said}",
                status=403,
                code=code,
                permission=permission,
            )
        if status == 404:
            return GraphError(
                f"Microsoft Graph could not {doing}: {missing} was not found in tenant {tenant_id}. Graph said: {said}",
                status=404,
                code=code,
                missing=missing,
            )
        wait = f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""
        return GraphError(
            f"Microsoft Graph answered {status} {code} to {doing} in tenant {tenant_id}{wait}: {said}",
            status=status,
            code=code,
            retry_after=retry_after,
        )

    # ------------------------------------------------------------------ reads

    async def organization(self, tenant_id: str, *, mode: str | None = None) -> dict[str, Any]:
        """``{"id", "displayName"}`` of the tenant: a cheap read that proves the credential works."""
        page = await self._call(
            tenant_id, "organization", f"organization {tenant_id}", lambda c: c.organization.get(), mode=mode
        )
        org = page.value[0] if page is not None and page.value else None
        return {"id": getattr(org, "id", tenant_id), "displayName": getattr(org, "display_name", None) or tenant_id}

    async def app_token_claims(self, tenant_id: str) -> dict[str, Any]:
        """The claims of an app-only token Microsoft issues for the tenant (``tid``: the tenant
        it was issued in, which proves the app's consent there); {} when they cannot be read."""
        self.client(tenant_id, "app")
        credential = self._clients[(tenant_id, "app")][1]
        from azure.core.exceptions import ClientAuthenticationError

        try:
            token = await credential.get_token(GRAPH_DEFAULT_SCOPE)
        except ClientAuthenticationError as exc:
            raise _token_failure(tenant_id, exc) from exc
        try:
            return dict(json.loads(unb64url(token.token.split(".")[1])))
        except ValueError as exc:  # an opaque token: nothing to read
            log.info("Cannot read tenant %s's app-only token: %s", tenant_id, type(exc).__name__)
            return {}

    async def me(self, tenant_id: str) -> dict[str, Any]:
        """The connected user's profile (delegated)."""
        return _user(await self._call(tenant_id, "me", "the signed-in user", lambda c: c.me.get(), mode="delegated"))

    async def get_user(self, tenant_id: str, id_or_upn: str) -> dict[str, Any] | None:
        try:
            return _user(
                await self._call(
                    tenant_id, "get_user", f"user {id_or_upn}", lambda c: c.users.by_user_id(id_or_upn).get()
                )
            )
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise

    async def find_user_by_email(self, tenant_id: str, email: str) -> dict[str, Any] | None:
        from msgraph.generated.users.users_request_builder import UsersRequestBuilder

        escaped = email.replace("'", "''")
        config = RequestConfiguration(
            query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                filter=f"mail eq '{escaped}' or userPrincipalName eq '{escaped}'", top=2
            )
        )
        page = await self._call(
            tenant_id, "find_users", f"user {email}", lambda c: c.users.get(request_configuration=config)
        )
        users = (page.value if page is not None else None) or []
        return _user(users[0]) if users else None

    async def search_users(self, tenant_id: str, text: str, limit: int = 25) -> list[dict[str, Any]]:
        """Users whose name, mail or UPN contains ``text`` (``$search`` with ConsistencyLevel)."""
        from msgraph.generated.users.users_request_builder import UsersRequestBuilder

        cleaned = text.replace('"', "").strip()
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            search=f'"displayName:{cleaned}" OR "mail:{cleaned}" OR "userPrincipalName:{cleaned}"',
            top=limit,
            count=True,
        )
        config = RequestConfiguration(query_parameters=query)
        config.headers.add("ConsistencyLevel", "eventual")
        page = await self._call(tenant_id, "find_users", "users", lambda c: c.users.get(request_configuration=config))
        return [_user(u) for u in ((page.value if page is not None else None) or [])][:limit]

    async def _all(self, first: Any, builder: Any) -> list[Any]:
        items = list(first.value or []) if first else []
        page = first
        while page is not None and getattr(page, "odata_next_link", None):
            page = await builder.with_url(page.odata_next_link).get()
            items.extend(page.value or [])
        return items

    async def list_teams(self, tenant_id: str) -> list[dict[str, Any]]:
        mode = await self._mode(tenant_id)

        async def get(c: GraphServiceClient) -> list[Any]:
            builder = c.me.joined_teams if mode == "delegated" else c.teams
            return await self._all(await builder.get(), builder)

        teams = await self._call(tenant_id, "list_teams", "teams", get, mode=mode)
        return [{"id": t.id, "displayName": t.display_name, "description": t.description} for t in teams]

    async def list_channels(self, tenant_id: str, team_id: str) -> list[dict[str, Any]]:
        async def get(c: GraphServiceClient) -> list[Any]:
            builder = c.teams.by_team_id(team_id).channels
            return await self._all(await builder.get(), builder)

        channels = await self._call(tenant_id, "list_channels", f"team {team_id}", get)
        return [
            {
                "id": ch.id,
                "displayName": ch.display_name,
                "description": ch.description,
                "membershipType": getattr(ch.membership_type, "value", None),
                "webUrl": ch.web_url,
            }
            for ch in channels
        ]

    async def _channel_members(self, tenant_id: str, team_id: str, channel_id: str) -> list[Any]:
        """Everyone who can see the channel: ``allMembers`` is its direct members (a private
        channel's own, a standard channel's the team's) and, for a shared channel, the members
        of the teams it is shared with too (Graph v1.0, "List allMembers"); ``members`` would
        leave those out."""

        async def get(c: GraphServiceClient) -> list[Any]:
            builder = c.teams.by_team_id(team_id).channels.by_channel_id(channel_id).all_members
            return await self._all(await builder.get(), builder)

        return await self._call(tenant_id, "channel_members", f"channel {channel_id} of team {team_id}", get)

    async def channel_member_ids(self, tenant_id: str, team_id: str, channel_id: str) -> set[str]:
        return {
            m.user_id
            for m in await self._channel_members(tenant_id, team_id, channel_id)
            if getattr(m, "user_id", None)
        }

    async def channel_owner_ids(self, tenant_id: str, team_id: str, channel_id: str) -> set[str]:
        """AAD object ids of the channel's owners (a standard channel lists the team's owners)."""
        members = await self._channel_members(tenant_id, team_id, channel_id)
        return {
            m.user_id for m in members if getattr(m, "user_id", None) and "owner" in (getattr(m, "roles", None) or [])
        }

    # ------------------------------------------------------------------ writes

    async def create_channel(
        self,
        tenant_id: str,
        team_id: str,
        name: str,
        description: str,
        *,
        private: bool = False,
        owner_ids: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        from msgraph.generated.models.channel import Channel
        from msgraph.generated.models.channel_membership_type import ChannelMembershipType

        body = Channel(
            display_name=name,
            description=description,
            membership_type=ChannelMembershipType.Private if private else ChannelMembershipType.Standard,
            members=[_member(owner, True) for owner in owner_ids] if private else None,
        )
        created = await self._call(
            tenant_id, "create_channel", f"team {team_id}", lambda c: c.teams.by_team_id(team_id).channels.post(body)
        )
        channel = _present(created, "the channel it created")
        return {"id": channel.id, "displayName": channel.display_name, "webUrl": channel.web_url}

    async def add_channel_member(
        self, tenant_id: str, team_id: str, channel_id: str, user_id: str, *, owner: bool = False
    ) -> None:
        body = _member(user_id, owner)
        await self._call(
            tenant_id,
            "add_channel_member",
            f"channel {channel_id} of team {team_id} or user {user_id}",
            lambda c: c.teams.by_team_id(team_id).channels.by_channel_id(channel_id).members.post(body),
        )

    async def create_chat(
        self, tenant_id: str, member_ids: tuple[str, ...], topic: str | None = None
    ) -> dict[str, Any]:
        from msgraph.generated.models.chat import Chat
        from msgraph.generated.models.chat_type import ChatType

        one_on_one = len(member_ids) == 2 and not topic
        body = Chat(
            chat_type=ChatType.OneOnOne if one_on_one else ChatType.Group,
            topic=None if one_on_one else topic,
            members=[_member(user_id, True) for user_id in member_ids],
        )
        chat = await self._call(
            tenant_id, "create_chat", f"one of the users {', '.join(member_ids)}", lambda c: c.chats.post(body)
        )
        created = _present(chat, "the chat it created")
        return {"id": created.id, "chatType": getattr(created.chat_type, "value", None), "webUrl": created.web_url}

    async def create_meeting(
        self,
        tenant_id: str,
        organizer_id: str,
        subject: str,
        attendee_emails: tuple[str, ...],
        start: str,
        end: str,
        body_html: str = "",
    ) -> dict[str, Any]:
        from msgraph.generated.models.attendee import Attendee
        from msgraph.generated.models.attendee_type import AttendeeType
        from msgraph.generated.models.body_type import BodyType
        from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
        from msgraph.generated.models.email_address import EmailAddress
        from msgraph.generated.models.event import Event
        from msgraph.generated.models.item_body import ItemBody
        from msgraph.generated.models.online_meeting_provider_type import OnlineMeetingProviderType

        body = Event(
            subject=subject,
            body=ItemBody(content_type=BodyType.Html, content=body_html),
            start=DateTimeTimeZone(date_time=start, time_zone="UTC"),
            end=DateTimeTimeZone(date_time=end, time_zone="UTC"),
            attendees=[
                Attendee(email_address=EmailAddress(address=e), type=AttendeeType.Required) for e in attendee_emails
            ],
            is_online_meeting=True,
            online_meeting_provider=OnlineMeetingProviderType.TeamsForBusiness,
        )
        event = await self._call(
            tenant_id,
            "create_meeting",
            f"organizer {organizer_id}",
            lambda c: c.users.by_user_id(organizer_id).events.post(body),
        )
        created = _present(event, "the event it created")
        join_url = created.online_meeting.join_url if created.online_meeting else None
        return {"id": created.id, "joinUrl": join_url, "webLink": created.web_link}

    async def install_app_for_user(self, tenant_id: str, user_id: str, teams_app_id: str) -> str:
        """Install the Teams app for a user (if needed) and return the id of the app's 1:1 chat."""
        from msgraph.generated.models.user_scope_teams_app_installation import UserScopeTeamsAppInstallation
        from msgraph.generated.users.item.teamwork.installed_apps.installed_apps_request_builder import (
            InstalledAppsRequestBuilder,
        )

        body = UserScopeTeamsAppInstallation(
            additional_data={"teamsApp@odata.bind": f"{BIND_BASE}/appCatalogs/teamsApps/{teams_app_id}"}
        )
        try:
            await self._call(
                tenant_id,
                "install_app",
                f"user {user_id} or app {teams_app_id}",
                lambda c: c.users.by_user_id(user_id).teamwork.installed_apps.post(body),
                mode="app",
            )
        except GraphError as exc:
            if exc.status != 409:  # 409: already installed, which is what we want
                raise
        config = RequestConfiguration(
            query_parameters=InstalledAppsRequestBuilder.InstalledAppsRequestBuilderGetQueryParameters(
                filter=f"teamsApp/id eq '{teams_app_id}'", expand=["teamsApp"]
            )
        )
        page = await self._call(
            tenant_id,
            "install_app",
            f"installation of app {teams_app_id} for user {user_id}",
            lambda c: c.users.by_user_id(user_id).teamwork.installed_apps.get(request_configuration=config),
            mode="app",
        )
        if page is None or not page.value:
            raise GraphError(
                f"app {teams_app_id} is not installed for user {user_id} in tenant {tenant_id}",
                status=404,
                code="NotFound",
                missing=f"installation of app {teams_app_id}",
            )
        installation_id = _present(page.value[0].id, "the installation's id")
        chat = await self._call(
            tenant_id,
            "install_app",
            f"chat of installation {installation_id}",
            lambda c: (
                c.users.by_user_id(user_id)
                .teamwork.installed_apps.by_user_scope_teams_app_installation_id(installation_id)
                .chat.get()
            ),
            mode="app",
        )
        return _present(_present(chat, "the app's chat").id, "the chat's id")

    async def install_app_in_chat(self, tenant_id: str, chat_id: str, teams_app_id: str) -> None:
        """Install the Teams app in a chat (the group chat created for a group of recipients) so
        the bot can post there; an app already installed (409) is what we want."""
        from msgraph.generated.models.teams_app_installation import TeamsAppInstallation

        body = TeamsAppInstallation(
            additional_data={"teamsApp@odata.bind": f"{BIND_BASE}/appCatalogs/teamsApps/{teams_app_id}"}
        )
        try:
            await self._call(
                tenant_id,
                "install_app_in_chat",
                f"chat {chat_id} or app {teams_app_id}",
                lambda c: c.chats.by_chat_id(chat_id).installed_apps.post(body),
                mode="app",
            )
        except GraphError as exc:
            if exc.status != 409:
                raise

    # ------------------------------------------------------------------ delegated messages

    async def post_channel_message(
        self, tenant_id: str, team_id: str, channel_id: str, card: dict[str, Any], summary: str
    ) -> str:
        body = _card_message(card, summary)
        sent = await self._call(
            tenant_id,
            "channel_message",
            f"channel {channel_id} of team {team_id}",
            lambda c: c.teams.by_team_id(team_id).channels.by_channel_id(channel_id).messages.post(body),
            mode="delegated",
        )
        return _present(_present(sent, "the message it sent").id, "the message's id")

    async def update_channel_message(
        self, tenant_id: str, team_id: str, channel_id: str, message_id: str, card: dict[str, Any], summary: str
    ) -> None:
        body = _card_message(card, summary)
        await self._call(
            tenant_id,
            "update_channel_message",
            f"message {message_id} in channel {channel_id}",
            lambda c: (
                c.teams.by_team_id(team_id)
                .channels.by_channel_id(channel_id)
                .messages.by_chat_message_id(message_id)
                .patch(body)
            ),
            mode="delegated",
        )

    async def reply_channel_message(
        self, tenant_id: str, team_id: str, channel_id: str, message_id: str, text: str
    ) -> str:
        body = _text_message(text)
        sent = await self._call(
            tenant_id,
            "channel_message",
            f"message {message_id} in channel {channel_id}",
            lambda c: (
                c.teams.by_team_id(team_id)
                .channels.by_channel_id(channel_id)
                .messages.by_chat_message_id(message_id)
                .replies.post(body)
            ),
            mode="delegated",
        )
        return _present(_present(sent, "the message it sent").id, "the message's id")

    async def post_chat_message(
        self, tenant_id: str, chat_id: str, card: dict[str, Any] | None, summary: str = "", text: str | None = None
    ) -> str:
        body = _card_message(card, summary) if card is not None else _text_message(text or "")
        sent = await self._call(
            tenant_id,
            "chat_message",
            f"chat {chat_id}",
            lambda c: c.chats.by_chat_id(chat_id).messages.post(body),
            mode="delegated",
        )
        return _present(_present(sent, "the message it sent").id, "the message's id")

    async def update_chat_message(
        self, tenant_id: str, chat_id: str, message_id: str, card: dict[str, Any], summary: str
    ) -> None:
        body = _card_message(card, summary)
        await self._call(
            tenant_id,
            "update_chat_message",
            f"message {message_id} in chat {chat_id}",
            lambda c: c.chats.by_chat_id(chat_id).messages.by_chat_message_id(message_id).patch(body),
            mode="delegated",
        )

"""The simulated Microsoft 365 side: tenants, users, teams, channels, chats, messages, and the
grants and tokens the identity endpoints issue. Shared by identity.py and graph.py."""

from __future__ import annotations

import copy
import itertools
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# Every application permission the simulated app registration requests; admin consent grants
# them all unless a test narrows ``Directory.app_roles`` first.
DEFAULT_APP_ROLES = frozenset(
    {
        "Organization.Read.All",
        "User.Read.All",
        "Team.ReadBasic.All",
        "Channel.ReadBasic.All",
        "Channel.Create",
        "ChannelMember.ReadWrite.All",
        "Chat.Create",
        "Calendars.ReadWrite",
        "TeamsAppInstallation.ReadWriteSelfForUser.All",
        "TeamsAppInstallation.ReadWriteSelfForChat.All",
    }
)


@dataclass
class User:
    id: str
    display_name: str
    user_principal_name: str
    mail: str | None = None
    # Microsoft Entra directory roles (role template ids), sent in the ID token's ``wids`` claim.
    roles: tuple[str, ...] = ()

    def to_graph(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.user",
            "id": self.id,
            "displayName": self.display_name,
            "userPrincipalName": self.user_principal_name,
            "mail": self.mail,
        }


@dataclass
class Message:
    id: str
    body: dict[str, Any]
    attachments: list[dict[str, Any]]
    from_user: str | None
    reply_to: str | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def updates(self) -> int:
        return len(self.versions) - 1

    def to_graph(self, **where: Any) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.chatMessage",
            "id": self.id,
            "replyToId": self.reply_to,
            "messageType": "message",
            "body": self.body,
            "attachments": self.attachments,
            "from": {"user": {"id": self.from_user}} if self.from_user else None,
            **where,
        }


@dataclass
class Channel:
    id: str
    display_name: str
    description: str = ""
    membership_type: str = "standard"
    members: dict[str, list[str]] = field(default_factory=dict)  # user id -> roles
    messages: dict[str, Message] = field(default_factory=dict)
    team_id: str = ""  # the team (Microsoft 365 group) the channel belongs to
    # The bots (app ids) added to a private or shared channel: installed in the team, a bot is
    # in every standard channel, but in a private or shared one only once it is added there.
    apps: set[str] = field(default_factory=set)


@dataclass
class Team:
    id: str
    display_name: str
    description: str = ""
    members: set[str] = field(default_factory=set)
    channels: dict[str, Channel] = field(default_factory=dict)
    # Ids of channels that the Teams client in front of the simulator shows but that do not
    # exist yet: a channel created in this team takes the next one (graph.create_channel).
    spare_channel_ids: list[str] = field(default_factory=list)


@dataclass
class Chat:
    id: str
    chat_type: str
    topic: str | None
    members: list[str]
    messages: dict[str, Message] = field(default_factory=dict)
    installed_apps: set[str] = field(default_factory=set)  # Teams app catalog ids installed in the chat
    # A chat of the Teams client in front of the simulator (the Agents Playground, which shows
    # only the chats it made): a new group chat of its members is this one (graph.create_chat).
    shown_by_client: bool = False


@dataclass
class Tenant:
    id: str
    display_name: str
    users: dict[str, User] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    chats: dict[str, Chat] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # user id -> events
    installations: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # user -> id -> installation
    app_grants: dict[str, set[str]] = field(default_factory=dict)  # client id -> granted app roles
    # The Teams client in front of the simulator, when it keeps its own chats (the Agents
    # Playground): installing the app for a person makes the bot's 1:1 chat there, as Teams makes
    # it when the app is installed, and Graph answers with that chat (graph.install_app).
    personal_chat_maker: Callable[[str], Awaitable[str]] | None = None

    def add_user(
        self,
        display_name: str,
        upn: str,
        *,
        mail: str | None = None,
        user_id: str | None = None,
        roles: tuple[str, ...] = (),
    ) -> User:
        user = User(user_id or str(uuid.uuid4()), display_name, upn, mail if mail is not None else upn, roles)
        self.users[user.id] = user
        return user

    def find_user(self, id_or_upn: str) -> User | None:
        if id_or_upn in self.users:
            return self.users[id_or_upn]
        lowered = id_or_upn.lower()
        return next((u for u in self.users.values() if u.user_principal_name.lower() == lowered), None)

    def add_team(self, display_name: str, *, team_id: str | None = None, members: tuple[str, ...] = ()) -> Team:
        team = Team(team_id or str(uuid.uuid4()), display_name, members=set(members))
        general = Channel(
            f"19:{uuid.uuid4().hex}@thread.tacv2", "General", members={m: [] for m in members}, team_id=team.id
        )
        team.channels[general.id] = general
        self.teams[team.id] = team
        return team

    def add_channel(
        self,
        team: Team,
        display_name: str,
        *,
        channel_id: str | None = None,
        members: tuple[str, ...] = (),
        membership_type: str = "standard",
        owners: tuple[str, ...] = (),
    ) -> Channel:
        """A channel of ``team``; a private or shared one has only its own ``members`` (and
        ``owners``), not the team's."""
        channel = Channel(
            channel_id or f"19:{uuid.uuid4().hex}@thread.tacv2",
            display_name,
            membership_type=membership_type,
            members={m: ["owner"] if m in owners else [] for m in dict.fromkeys((*owners, *members))},
            team_id=team.id,
        )
        team.channels[channel.id] = channel
        return channel


@dataclass(frozen=True)
class ManagedIdentity:
    """A user-assigned managed identity: its client id, its principal (object) id, its tenant."""

    client_id: str
    principal_id: str
    tenant_id: str


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity credential of an app registration (Microsoft Graph
    federatedIdentityCredential): tokens from ``issuer`` about ``subject`` for ``audience``."""

    issuer: str
    subject: str
    audience: str


@dataclass
class IssuedAccessToken:
    tenant_id: str
    client_id: str
    user_id: str | None  # None: app-only
    permissions: frozenset[str]  # roles (app-only) or scopes (delegated)
    expires_at: float

    @property
    def delegated(self) -> bool:
        return self.user_id is not None


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    scopes: tuple[str, ...]
    tenant_id: str
    user_id: str
    nonce: str | None
    expires_at: float


@dataclass
class RefreshGrant:
    client_id: str
    tenant_id: str
    user_id: str
    scopes: tuple[str, ...]


class Directory:
    """Thread-safe: the simulator's handlers run on its own loop, tests read from theirs."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.apps: dict[str, str | None] = {}  # client id -> secret (None: assertions only)
        self.federated_credentials: dict[str, list[FederatedCredential]] = {}  # app client id -> its credentials
        self.managed_identities: dict[str, ManagedIdentity] = {}  # client id -> identity
        # App Service's X-IDENTITY-HEADER (IDENTITY_HEADER): the managed identity endpoint
        # answers only requests that carry it.
        self.identity_header = uuid.uuid4().hex
        self.app_roles: set[str] = set(DEFAULT_APP_ROLES)
        self.access_tokens: dict[str, IssuedAccessToken] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        # Who completes the next sign-in or admin consent: (tenant id, user id).
        self.signed_in: tuple[str, str] | None = None
        # The next consent fails with (error, description), e.g. ("access_denied", "...").
        self.consent_error: tuple[str, str] | None = None
        # Refresh-token redemptions answer invalid_grant while this is set (the reason text).
        self.refresh_error: tuple[str, str] | None = None
        self.delegated_token_lifetime = 3600.0
        self.app_token_lifetime = 3600.0
        self.token_requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    # -- seeding --------------------------------------------------------------------------

    def add_tenant(self, tenant_id: str, display_name: str) -> Tenant:
        with self.lock:
            tenant = Tenant(tenant_id, display_name)
            self.tenants[tenant_id] = tenant
            return tenant

    def register_app(self, client_id: str, secret: str | None = None) -> None:
        """The connector's Graph app registration (secret, or client assertions when None)."""
        with self.lock:
            self.apps[client_id] = secret

    def add_managed_identity(self, client_id: str, principal_id: str, tenant_id: str) -> ManagedIdentity:
        """A user-assigned managed identity whose tokens ``GET /msi/token`` issues."""
        with self.lock:
            identity = ManagedIdentity(client_id, principal_id, tenant_id)
            self.managed_identities[client_id] = identity
            return identity

    def add_federated_credential(self, client_id: str, *, issuer: str, subject: str, audience: str) -> None:
        """Trust tokens from ``issuer`` about ``subject`` as client assertions of app ``client_id``."""
        with self.lock:
            self.federated_credentials.setdefault(client_id, []).append(FederatedCredential(issuer, subject, audience))

    def sign_in(self, tenant_id: str, user_id: str) -> None:
        """The user (an admin of ``tenant_id``) who completes the next browser step."""
        with self.lock:
            self.signed_in = (tenant_id, user_id)

    def grant_admin_consent(self, tenant_id: str, client_id: str) -> None:
        with self.lock:
            self.tenants[tenant_id].app_grants[client_id] = set(self.app_roles)

    def reset(self) -> None:
        with self.lock:
            self.tenants.clear()
            self.federated_credentials.clear()
            self.managed_identities.clear()
            self.app_roles = set(DEFAULT_APP_ROLES)
            self.access_tokens.clear()
            self.codes.clear()
            self.refresh_tokens.clear()
            self.signed_in = None
            self.consent_error = None
            self.refresh_error = None
            self.delegated_token_lifetime = 3600.0
            self.app_token_lifetime = 3600.0
            self.token_requests.clear()

    # -- tokens ---------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}{uuid.uuid4().hex[:10]}"

    def token_info(self, authorization: str | None) -> IssuedAccessToken | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        with self.lock:
            issued = self.access_tokens.get(token.strip())
        if issued is None or issued.expires_at <= time.time():
            return None
        return issued

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far stops working (as after a password reset)."""
        with self.lock:
            self.refresh_tokens.clear()

    # -- inspection -----------------------------------------------------------------------

    def channel_by_id(self, channel_id: str) -> Channel | None:
        """The channel with this id in any tenant's team, or None."""
        with self.lock:
            for tenant in self.tenants.values():
                for team in tenant.teams.values():
                    if channel_id in team.channels:
                        return team.channels[channel_id]
        return None

    def channel(self, tenant_id: str, team_id: str, channel_id: str) -> Channel:
        with self.lock:
            return self.tenants[tenant_id].teams[team_id].channels[channel_id]

    def chat(self, tenant_id: str, chat_id: str) -> Chat:
        with self.lock:
            return self.tenants[tenant_id].chats[chat_id]

    def snapshot(self, value: Any) -> Any:
        with self.lock:
            return copy.deepcopy(value)

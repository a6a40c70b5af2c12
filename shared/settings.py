"""One typed, frozen settings object read from the environment.

Every app setting the connector reads is declared once in ``SETTINGS`` below. The same
names appear in ``local.settings.sample.json``, in the Bicep app settings and in the
settings table of docs/SETTINGS.md (a test keeps the four in step).

Parsing is strict: ``"yes"`` is not a boolean and ``"ten"`` is not a number. A bad or
missing value raises :class:`SettingsError` naming the setting and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.domain.retention import MIN_RESOLVED_ALERT_DAYS, Retention

# Set by App Service / Functions on Azure instances; which ones a plan sets varies (Flex and
# Linux Consumption may not set WEBSITE_INSTANCE_ID), so any of them means "in Azure".
AZURE_INSTANCE_MARKERS = ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME", "WEBSITE_HOSTNAME", "WEBSITE_POD_NAME")
AZURE_INSTANCE_MARKER = AZURE_INSTANCE_MARKERS[0]

# The development-only switches work only where the process positively knows it runs on a
# developer's machine: this setting is true (the local host and local.settings.json set it)
# and no Azure marker is present. A missing marker never makes a process "local".
LOCAL_DEVELOPMENT_SETTING = "LOCAL_DEVELOPMENT"
DANGEROUS_ANONYMOUS_SETTING = "DANGEROUSLY_ALLOW_UNAUTHENTICATED_BOT_REQUESTS"
LOCAL_CA_SETTING = "LOCAL_CA_CERT_FILE"

BOT_APP_TYPES = ("SingleTenant", "UserAssignedMSI")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it and says what to do."""


#: Teams' global Bot Connector service URL: where the bot posts before a tenant's own is known.
TEAMS_GLOBAL_SERVICE_URL = "https://smba.trafficmanager.net/teams/"


@dataclass(frozen=True)
class SettingSpec:
    name: str
    description: str
    default: str | None = None  # None: no default (optional unless `required`)
    required: bool = False
    secret: bool = False
    # Read by the Functions host (binding expression or connection), not by our code.
    binding: bool = False


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("ALERT_EVENTS_QUEUE", "Service Bus queue the alert events arrive on.", "alert-events", binding=True),
    SettingSpec("TEAMS_ACTIONS_QUEUE", "Service Bus queue that receives what people did in Teams.", "teams-actions"),
    SettingSpec(
        "DELIVERY_QUEUE",
        "Internal Service Bus queue of delivery jobs (sessions on: one session per conversation).",
        "teams-deliveries",
        binding=True,
    ),
    SettingSpec(
        "TEAMS_TENANT_SENDS_PER_SECOND",
        "Messages per second the whole app sends to one tenant, "
        "across every instance (Teams allows 50 per app per tenant).",
        "45",
    ),
    SettingSpec(
        "PERIODIC_SCHEDULE",
        "NCRONTAB schedule (6 fields) of the periodic run: reminders and maintenance.",
        "0 */5 * * * *",
        binding=True,
    ),
    SettingSpec(
        "ServiceBusConnection__fullyQualifiedNamespace",
        "Service Bus namespace host (identity-based connection of the queue trigger).",
        binding=True,
    ),
    SettingSpec(
        "STATE_TABLES_CONNECTION",
        "Table Storage connection string (local: UseDevelopmentStorage=true). "
        "Leave empty in Azure and set STATE_TABLES_ENDPOINT.",
        secret=True,
    ),
    SettingSpec(
        "STATE_TABLES_ENDPOINT",
        "Table Storage endpoint used with the managed identity, e.g. https://<account>.table.core.windows.net.",
    ),
    SettingSpec("STATE_TABLE_PREFIX", "Prefix of every table the connector creates (letters and digits).", "tac"),
    SettingSpec(
        "MANAGED_IDENTITY_CLIENT_ID", "Client id of the user-assigned managed identity used for Azure resources."
    ),
    SettingSpec("BOT_APP_ID", "The Azure Bot's Microsoft App ID (audience of inbound bot tokens)."),
    SettingSpec(
        "BOT_APP_TYPE",
        "SingleTenant (app id + secret) or UserAssignedMSI (the managed identity is the bot).",
        "SingleTenant",
    ),
    SettingSpec(
        "BOT_APP_PASSWORD", "The bot's client secret (SingleTenant); a Key Vault reference in Azure.", secret=True
    ),
    SettingSpec("BOT_TENANT_ID", "Tenant the bot's app registration lives in."),
    SettingSpec(
        "BOT_OPENID_METADATA_URL",
        "Override of the Bot Framework OpenID metadata used to validate inbound tokens. Leave empty in Azure.",
    ),
    SettingSpec(
        "BOT_TOKEN_URL",
        "Override of the token endpoint for the bot's outbound credential (client credentials). Leave empty in Azure.",
    ),
    SettingSpec(
        DANGEROUS_ANONYMOUS_SETTING,
        "Accept bot requests without a token. Local development only; the app refuses to start with it in Azure.",
        "false",
    ),
    SettingSpec(
        LOCAL_DEVELOPMENT_SETTING,
        "true only on a developer's machine (the local host sets it; so does local.settings.sample.json): "
        f"{DANGEROUS_ANONYMOUS_SETTING} and {LOCAL_CA_SETTING} work only with it, and never in Azure.",
        "false",
    ),
    SettingSpec(
        "DEFAULT_TENANT_ID", "Tenant used for events without a tenantid when the bot is installed in several tenants."
    ),
    SettingSpec(
        "REMINDER_AFTER_MINUTES",
        "Minutes an alert may stay open and unacknowledged before a reminder, and between reminders.",
        "30",
    ),
    # Data retention (docs/RETENTION.md): removal runs with the periodic run.
    SettingSpec(
        "RESOLVED_ALERT_RETENTION_DAYS",
        "Days a resolved alert, its card records and its storm-summary count are kept "
        f"(it can be reopened and its cards updated meanwhile); at least {MIN_RESOLVED_ALERT_DAYS}.",
        "30",
    ),
    SettingSpec(
        "ACTION_RETENTION_DAYS",
        "Days an action taken in Teams is kept once published to the source (an unpublished one is never removed).",
        "30",
    ),
    SettingSpec(
        "REJECTED_EVENT_RETENTION_DAYS",
        "Days a rejected event is kept with its reason and body (GET /api/events/rejected).",
        "14",
    ),
    SettingSpec(
        "UNDELIVERABLE_RETENTION_DAYS",
        "Days the record of an alert that reached no recipient is kept (GET /api/tenants/{tenant}/undeliverable).",
        "30",
    ),
    # Connecting a tenant (docs/CONNECTING.md): consent flows and Microsoft Graph.
    SettingSpec(
        "GRAPH_APP_ID",
        "App registration used for Microsoft Graph and the consent flows (often the bot's app id). "
        "Empty: tenant connection is off.",
    ),
    SettingSpec(
        "GRAPH_CREDENTIAL_TYPE",
        "How the Graph app proves itself: secret, certificate, "
        "or federated_managed_identity (the managed identity as a federated credential).",
        "secret",
    ),
    SettingSpec(
        "GRAPH_CLIENT_SECRET",
        "Client secret of the Graph app (GRAPH_CREDENTIAL_TYPE=secret); a Key Vault reference in Azure.",
        secret=True,
    ),
    SettingSpec(
        "GRAPH_CERTIFICATE_PATH",
        "PEM file with the Graph app's certificate and private key (GRAPH_CREDENTIAL_TYPE=certificate).",
    ),
    SettingSpec(
        "GRAPH_BASE_URL",
        "Microsoft Graph endpoint. Change only for a national cloud or a local simulator.",
        "https://graph.microsoft.com/v1.0",
    ),
    SettingSpec(
        "AUTHORITY_HOST",
        "Microsoft identity platform host for sign-in and tokens. "
        "Change only for a national cloud or a local simulator.",
        "https://login.microsoftonline.com",
    ),
    SettingSpec(
        "PUBLIC_BASE_URL",
        "Public https address of the function app (a custom domain); "
        "the consent redirect URI is <this>/api/consent/callback. "
        "Empty in Azure: https://<WEBSITE_HOSTNAME>, the app's real host name.",
    ),
    SettingSpec(
        "TOKEN_ENCRYPTION_KEY",
        "Key (urlsafe base64 of 32 bytes) that encrypts stored delegated token caches; comma-separated, "
        "newest first, to rotate. Key Vault reference in Azure.",
        secret=True,
    ),
    SettingSpec(
        "STATE_SIGNING_KEY",
        "Key (32+ characters) that signs the consent state parameter; a Key Vault reference in Azure.",
        secret=True,
    ),
    SettingSpec(
        "ADMIN_API_KEY",
        "Admin credential for /api/connect and the management routes (header X-Admin-Key), "
        "checked besides the function key; a Key Vault reference in Azure.",
        secret=True,
    ),
    SettingSpec(
        "LOCAL_CA_CERT_FILE",
        "PEM CA trusted instead of the system store for AUTHORITY_HOST and GRAPH_BASE_URL: "
        "a local simulator's only. Refused in Azure.",
    ),
    # Acting on alerts from Teams.
    SettingSpec(
        "REQUIRE_LINKED_ACCOUNT",
        "Refuse card buttons and commands from people whose Teams account "
        "is not linked to an alerting platform account.",
        "false",
    ),
    SettingSpec(
        "ALERT_CHANNEL_TEAM_ID",
        "Team (Microsoft 365 group id) where alert channels are created; empty: the team of the card that was clicked.",
    ),
    SettingSpec(
        "ALERT_CHANNEL_NAME_TEMPLATE",
        "Name of an alert channel, from {severity}, {id} and {title}; cleaned to Teams' rules (50 characters at most).",
        "{severity} {id} {title}",
    ),
    SettingSpec(
        "MEETING_ORGANIZER",
        "User (id or UPN) on whose calendar alert meetings are created; empty: the person who clicked.",
    ),
    # Routing alerts: workflows (docs/ROUTING.md).
    SettingSpec(
        "TEAMS_APP_CATALOG_ID",
        "The connector's app id in your organisation's Teams app catalog (Teams admin center > Manage apps > "
        "the app > App ID); needed to reach people 1:1 and groups. Empty: person and group recipients fall back.",
    ),
    SettingSpec(
        "TEAMS_SERVICE_URL",
        "Bot Connector service URL for a conversation the connector starts (a person's or group's chat) "
        "before it has heard from the tenant in Teams; Teams' global one by default. make run sets the "
        "Agents Playground's.",
        TEAMS_GLOBAL_SERVICE_URL,
    ),
    SettingSpec(
        "CONNECTOR_ADMINS",
        "Comma-separated Microsoft Entra object ids or UPNs of people who may subscribe any channel or chat "
        "from Teams (team owners may always subscribe their channels).",
    ),
    SettingSpec(
        "LOCAL_QUEUE_HOST_URL",
        "Local Functions host that receives outbound actions on its queue API (local development only; "
        "empty in Azure, where ServiceBusConnection__fullyQualifiedNamespace is used).",
    ),
)

SETTING_NAMES = frozenset(spec.name for spec in SETTINGS)


@dataclass(frozen=True)
class Settings:
    """The connector's configuration. Build it with :func:`load_settings`."""

    alert_events_queue: str
    teams_actions_queue: str
    periodic_schedule: str
    tables_connection: str | None
    tables_endpoint: str | None
    table_prefix: str
    managed_identity_client_id: str | None
    bot_app_id: str | None
    bot_app_type: str
    bot_app_password: str | None
    bot_tenant_id: str | None
    bot_openid_metadata_url: str | None
    bot_token_url: str | None
    allow_unauthenticated_bot_requests: bool
    default_tenant_id: str | None
    reminder_after_minutes: int
    running_in_azure: bool
    retention: Retention = field(default_factory=Retention)
    graph: GraphSettings | None = None  # None: GRAPH_APP_ID is not set (tenant connection off)
    service_bus_namespace: str | None = None
    local_queue_host_url: str | None = None
    require_linked_account: bool = False
    alert_channel_team_id: str | None = None
    alert_channel_name_template: str = "{severity} {id} {title}"
    meeting_organizer: str | None = None
    admin_api_key: str | None = None
    teams_app_catalog_id: str | None = None
    teams_service_url: str = TEAMS_GLOBAL_SERVICE_URL
    connector_admins: tuple[str, ...] = ()
    delivery_queue: str = "teams-deliveries"
    tenant_sends_per_second: int = 45
    unresolved: tuple[str, ...] = ()  # optional settings left unset: their Key Vault reference did not resolve

    def __repr__(self) -> str:  # never print secrets
        shown = {
            k: ("***" if k in {"tables_connection", "bot_app_password", "admin_api_key"} and v else v)
            for k, v in vars(self).items()
        }
        return f"Settings({shown})"


def _text(env: Mapping[str, str], name: str) -> str | None:
    spec = next(s for s in SETTINGS if s.name == name)
    value = env.get(name)
    if value is None or value.strip() == "":
        return spec.default
    return value.strip()


def _bool(env: Mapping[str, str], name: str) -> bool:
    value = (_text(env, name) or "false").lower()
    if value not in ("true", "false"):
        raise SettingsError(f"{name} must be 'true' or 'false', not {env.get(name)!r}.")
    return value == "true"


def _positive_int(env: Mapping[str, str], name: str) -> int:
    value = _text(env, name) or ""
    if not value.isdigit() or int(value) <= 0:
        raise SettingsError(f"{name} must be a whole number above 0, not {value!r}.")
    return int(value)


def azure_markers(env: Mapping[str, str]) -> list[str]:
    """The Azure instance markers present in ``env``."""
    return [name for name in AZURE_INSTANCE_MARKERS if env.get(name)]


def local_development(env: Mapping[str, str] = os.environ) -> bool:
    """This process is known to run locally: LOCAL_DEVELOPMENT=true and no Azure marker."""
    return _bool(env, LOCAL_DEVELOPMENT_SETTING) and not azure_markers(env)


def check_startup_safety(env: Mapping[str, str] = os.environ) -> None:
    """Refuse development-only switches unless this process is known to run locally. Fails
    closed: the switches need LOCAL_DEVELOPMENT=true *and* no Azure marker. Cheap: safe at import."""
    switches = [
        name
        for name in (DANGEROUS_ANONYMOUS_SETTING, LOCAL_CA_SETTING)
        if (_bool(env, name) if name == DANGEROUS_ANONYMOUS_SETTING else _text(env, name))
    ]
    if not switches:
        return
    markers = azure_markers(env)
    if markers:
        raise SettingsError(
            f"{' and '.join(switches)} {'is' if len(switches) == 1 else 'are'} set, but this instance runs in Azure "
            f"({', '.join(markers)} set): remove {'it' if len(switches) == 1 else 'them'}; "
            "they are for local development only."
        )
    if not _bool(env, LOCAL_DEVELOPMENT_SETTING):
        raise SettingsError(
            f"{' and '.join(switches)} {'is' if len(switches) == 1 else 'are'} for local development only and need "
            f"{LOCAL_DEVELOPMENT_SETTING}=true (the local host and local.settings.json set it). "
            "Nothing says this process is local, so it refuses to start."
        )


# What App Service leaves in a setting whose Key Vault reference it could not resolve: the
# reference itself (docs: "Use Key Vault references", troubleshooting). Taken as a value it would
# make "@Microsoft.KeyVault(...)" the admin key or a signing key.
_UNRESOLVED_REFERENCE = "@microsoft.keyvault("


_GRAPH_PART = "tenant connection (Microsoft Graph)"
# Settings the connector runs without, each with the part it turns off. An unresolved Key Vault
# reference in one of them is taken as unset: that part is off and says why (Settings.unresolved,
# /api/health), and the rest runs. A deployment that writes the secret after the app (azd writes
# the Graph app's id there) or a role not applied yet must not stop every function.
OPTIONAL_REFERENCES: dict[str, str] = {
    "GRAPH_APP_ID": _GRAPH_PART,
    "GRAPH_CLIENT_SECRET": _GRAPH_PART,
    "TOKEN_ENCRYPTION_KEY": _GRAPH_PART,
    "STATE_SIGNING_KEY": _GRAPH_PART,
    "ADMIN_API_KEY": "the admin routes and webhook ingest",
}


def _is_unresolved(value: str | None) -> bool:
    return (value or "").strip().lower().startswith(_UNRESOLVED_REFERENCE)


def without_unresolved_optional(env: Mapping[str, str]) -> tuple[Mapping[str, str], tuple[str, ...]]:
    """``env`` with each optional setting that is an unresolved reference taken out (all of Graph's
    when one of them is: a part of it is no use), and the names of those that were."""
    unresolved = tuple(sorted(name for name in OPTIONAL_REFERENCES if _is_unresolved(env.get(name))))
    if not unresolved:
        return env, ()
    off = set(unresolved)
    if any(OPTIONAL_REFERENCES[name] == _GRAPH_PART for name in unresolved):
        off |= {name for name, part in OPTIONAL_REFERENCES.items() if part == _GRAPH_PART}
    return {k: v for k, v in env.items() if k not in off}, unresolved


def unresolved_message(names: tuple[str, ...]) -> str:
    """What is off, and why, for the settings :func:`without_unresolved_optional` took out."""
    parts = sorted({OPTIONAL_REFERENCES[name] for name in names})
    return (
        f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} an unresolved Key Vault reference, so "
        f"{' and '.join(parts)} {'is' if len(parts) == 1 else 'are'} off: the secret does not exist or the app's "
        "identity cannot read it yet (Key Vault Secrets User; azd's postprovision refreshes the references and "
        "restarts the app)."
    )


def check_references_resolved(env: Mapping[str, str]) -> None:
    """Refuse to start when a setting the connector needs is still a Key Vault reference (the
    secret is missing, or the identity cannot read it yet: role assignments take a few minutes
    to apply). Optional ones: :data:`OPTIONAL_REFERENCES`."""
    unresolved = sorted(
        spec.name for spec in SETTINGS if spec.name not in OPTIONAL_REFERENCES and _is_unresolved(env.get(spec.name))
    )
    if unresolved:
        raise SettingsError(
            f"{', '.join(unresolved)} {'is' if len(unresolved) == 1 else 'are'} an unresolved Key Vault reference: "
            "the secret does not exist or the app's identity cannot read it yet "
            "(Key Vault Secrets User; allow a few minutes after deployment, then restart the app). "
            "See the portal's Environment variables page for the reference's status."
        )


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Read and validate every setting; raise :class:`SettingsError` naming the first problem."""
    check_startup_safety(env)
    check_references_resolved(env)
    env, unresolved = without_unresolved_optional(env)
    allow_anonymous = _bool(env, DANGEROUS_ANONYMOUS_SETTING)

    tables_connection = _text(env, "STATE_TABLES_CONNECTION")
    tables_endpoint = _text(env, "STATE_TABLES_ENDPOINT")
    if not tables_connection and not tables_endpoint:
        raise SettingsError(
            "STATE_TABLES_ENDPOINT (in Azure) or STATE_TABLES_CONNECTION (locally) must be set: "
            "the connector keeps its state in Table Storage."
        )
    if tables_endpoint and not tables_endpoint.startswith("https://"):
        raise SettingsError(f"STATE_TABLES_ENDPOINT must be an https:// URL, not {tables_endpoint!r}.")

    prefix = _text(env, "STATE_TABLE_PREFIX") or ""
    if not (prefix.isalnum() and prefix.isascii() and prefix[0].isalpha() and len(prefix) <= 20):
        raise SettingsError(
            f"STATE_TABLE_PREFIX must be 1-20 letters and digits starting with a letter, not {prefix!r}."
        )

    app_type = _text(env, "BOT_APP_TYPE") or ""
    if app_type not in BOT_APP_TYPES:
        raise SettingsError(f"BOT_APP_TYPE must be one of {', '.join(BOT_APP_TYPES)}, not {app_type!r}.")
    app_id = _text(env, "BOT_APP_ID")
    if not app_id and not allow_anonymous:
        raise SettingsError(
            "BOT_APP_ID must be set to the Azure Bot's app id (inbound bot requests are authenticated with it). "
            f"For local development only, set {DANGEROUS_ANONYMOUS_SETTING}=true instead."
        )
    if app_id and app_type == "SingleTenant":
        for needed in ("BOT_APP_PASSWORD", "BOT_TENANT_ID"):
            if not _text(env, needed):
                raise SettingsError(f"{needed} must be set when BOT_APP_TYPE is SingleTenant.")
    if app_id and app_type == "UserAssignedMSI" and not _text(env, "MANAGED_IDENTITY_CLIENT_ID"):
        raise SettingsError("MANAGED_IDENTITY_CLIENT_ID must be set when BOT_APP_TYPE is UserAssignedMSI.")

    for url_setting in ("BOT_OPENID_METADATA_URL", "BOT_TOKEN_URL"):
        url = _text(env, url_setting)
        if url and not url.startswith(("http://", "https://")):
            raise SettingsError(f"{url_setting} must be an http(s) URL, not {url!r}.")

    return Settings(
        alert_events_queue=_text(env, "ALERT_EVENTS_QUEUE") or "",
        teams_actions_queue=_text(env, "TEAMS_ACTIONS_QUEUE") or "",
        periodic_schedule=_text(env, "PERIODIC_SCHEDULE") or "",
        tables_connection=tables_connection,
        tables_endpoint=tables_endpoint,
        table_prefix=prefix,
        managed_identity_client_id=_text(env, "MANAGED_IDENTITY_CLIENT_ID"),
        bot_app_id=app_id,
        bot_app_type=app_type,
        bot_app_password=_text(env, "BOT_APP_PASSWORD"),
        bot_tenant_id=_text(env, "BOT_TENANT_ID"),
        bot_openid_metadata_url=_text(env, "BOT_OPENID_METADATA_URL"),
        bot_token_url=_text(env, "BOT_TOKEN_URL"),
        allow_unauthenticated_bot_requests=allow_anonymous,
        default_tenant_id=_tenant(env, "DEFAULT_TENANT_ID"),
        reminder_after_minutes=_positive_int(env, "REMINDER_AFTER_MINUTES"),
        retention=_retention(env),
        running_in_azure=bool(azure_markers(env)),
        graph=_graph_settings(env),
        admin_api_key=_text(env, "ADMIN_API_KEY"),
        service_bus_namespace=_text(env, "ServiceBusConnection__fullyQualifiedNamespace"),
        local_queue_host_url=_optional_url(env, "LOCAL_QUEUE_HOST_URL"),
        require_linked_account=_bool(env, "REQUIRE_LINKED_ACCOUNT"),
        alert_channel_team_id=_text(env, "ALERT_CHANNEL_TEAM_ID"),
        alert_channel_name_template=_text(env, "ALERT_CHANNEL_NAME_TEMPLATE") or "{severity} {id} {title}",
        meeting_organizer=_text(env, "MEETING_ORGANIZER"),
        teams_app_catalog_id=_text(env, "TEAMS_APP_CATALOG_ID"),
        teams_service_url=_text(env, "TEAMS_SERVICE_URL") or TEAMS_GLOBAL_SERVICE_URL,
        delivery_queue=_text(env, "DELIVERY_QUEUE") or "",
        tenant_sends_per_second=_positive_int(env, "TEAMS_TENANT_SENDS_PER_SECOND"),
        connector_admins=tuple(
            a.strip().lower() for a in (_text(env, "CONNECTOR_ADMINS") or "").split(",") if a.strip()
        ),
        unresolved=unresolved,
    )


def _tenant(env: Mapping[str, str], name: str) -> str | None:
    from shared.domain.tenants import InvalidTenantId, tenant_id

    value = _text(env, name)
    if not value:
        return None
    try:
        return tenant_id(value)
    except InvalidTenantId as exc:
        raise SettingsError(f"{name} {exc}.") from None


def _retention(env: Mapping[str, str]) -> Retention:
    resolved = _positive_int(env, "RESOLVED_ALERT_RETENTION_DAYS")
    if resolved < MIN_RESOLVED_ALERT_DAYS:
        raise SettingsError(
            f"RESOLVED_ALERT_RETENTION_DAYS must be at least {MIN_RESOLVED_ALERT_DAYS}, not {resolved}: "
            "an event may wait 7 days in the queue, and an alert removed sooner would be recreated by it."
        )
    return Retention(
        resolved_alert_days=resolved,
        action_days=_positive_int(env, "ACTION_RETENTION_DAYS"),
        rejected_event_days=_positive_int(env, "REJECTED_EVENT_RETENTION_DAYS"),
        undeliverable_days=_positive_int(env, "UNDELIVERABLE_RETENTION_DAYS"),
    )


def _optional_url(env: Mapping[str, str], name: str) -> str | None:
    value = _text(env, name)
    if value and not value.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must be an http(s) URL, not {value!r}.")
    return value


GRAPH_CREDENTIAL_TYPES = ("secret", "certificate", "federated_managed_identity")


@dataclass(frozen=True)
class GraphSettings:
    """Settings of the consent flows and the Graph helper (present when GRAPH_APP_ID is set)."""

    app_id: str
    credential_type: str
    client_secret: str | None
    certificate_path: str | None
    managed_identity_client_id: str | None
    base_url: str
    authority_host: str
    public_base_url: str
    token_encryption_key: str
    state_signing_key: str
    local_ca_cert_file: str | None

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_base_url}/api/consent/callback"

    def __repr__(self) -> str:  # never print secrets
        hidden = {"client_secret", "token_encryption_key", "state_signing_key"}
        return f"GraphSettings({ {k: ('***' if k in hidden and v else v) for k, v in vars(self).items()} })"


def _https_url(env: Mapping[str, str], name: str, *, allow_local_http: bool = False) -> str:
    value = (_text(env, name) or "").rstrip("/")
    local = value.startswith(("http://localhost", "http://127.0.0.1"))
    if not value.startswith("https://") and not (allow_local_http and local):
        raise SettingsError(f"{name} must be an https:// URL, not {value!r}.")
    return value


def _graph_settings(env: Mapping[str, str]) -> GraphSettings | None:
    app_id = _text(env, "GRAPH_APP_ID")
    if not app_id:
        return None
    credential_type = _text(env, "GRAPH_CREDENTIAL_TYPE") or ""
    if credential_type not in GRAPH_CREDENTIAL_TYPES:
        raise SettingsError(
            f"GRAPH_CREDENTIAL_TYPE must be one of {', '.join(GRAPH_CREDENTIAL_TYPES)}, not {credential_type!r}."
        )
    needed = {
        "secret": "GRAPH_CLIENT_SECRET",
        "certificate": "GRAPH_CERTIFICATE_PATH",
        "federated_managed_identity": "MANAGED_IDENTITY_CLIENT_ID",
    }[credential_type]
    if not _text(env, needed):
        raise SettingsError(f"{needed} must be set when GRAPH_CREDENTIAL_TYPE is {credential_type}.")
    host_name = (env.get("WEBSITE_HOSTNAME") or "").strip()
    if not _text(env, "PUBLIC_BASE_URL") and host_name:
        # In Azure the platform names the app's real host (WEBSITE_HOSTNAME, set by App Service):
        # the default, rather than a name guessed at deployment.
        env = {**env, "PUBLIC_BASE_URL": f"https://{host_name}"}
    for name in ("PUBLIC_BASE_URL", "TOKEN_ENCRYPTION_KEY", "STATE_SIGNING_KEY"):
        if not _text(env, name):
            raise SettingsError(f"{name} must be set when GRAPH_APP_ID is set (the consent flow needs it).")
    from shared.security import MIN_SIGNING_KEY_CHARS, parse_keys

    try:
        parse_keys(_text(env, "TOKEN_ENCRYPTION_KEY") or "")
    except ValueError as exc:
        raise SettingsError(str(exc) + ".") from None
    if len(_text(env, "STATE_SIGNING_KEY") or "") < MIN_SIGNING_KEY_CHARS:
        raise SettingsError(
            f"STATE_SIGNING_KEY must have at least {MIN_SIGNING_KEY_CHARS} characters "
            "(urlsafe base64 of 32 random bytes)."
        )
    ca_file = _text(env, LOCAL_CA_SETTING)  # allowed by check_startup_safety only on a known-local process
    return GraphSettings(
        app_id=app_id,
        credential_type=credential_type,
        client_secret=_text(env, "GRAPH_CLIENT_SECRET"),
        certificate_path=_text(env, "GRAPH_CERTIFICATE_PATH"),
        managed_identity_client_id=_text(env, "MANAGED_IDENTITY_CLIENT_ID"),
        base_url=_https_url(env, "GRAPH_BASE_URL"),
        authority_host=_https_url(env, "AUTHORITY_HOST"),
        public_base_url=_https_url(env, "PUBLIC_BASE_URL", allow_local_http=True),
        token_encryption_key=_text(env, "TOKEN_ENCRYPTION_KEY") or "",
        state_signing_key=_text(env, "STATE_SIGNING_KEY") or "",
        local_ca_cert_file=ca_file,
    )


def environment_names_a_proxy(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment names a proxy for HTTP clients to use: a ``*_proxy`` variable
    (any case, as urllib's ``getproxies`` reads them on Linux) or a netrc file.

    azure-core's aiohttp transport trusts the environment by default, and aiohttp then looks
    both up again on every request, each time in a worker thread (aiohttp ``client.py``,
    ``_request``: ``asyncio.to_thread(get_env_proxy_for_url, ...)`` and the netrc lookup).
    Measured against Azurite, that is a third of a Table request's CPU (1.0 ms against
    0.5-0.7 ms per read). Without either there is nothing to find, so it is skipped; with
    one, the environment is trusted as before."""
    if any(name.lower().endswith("_proxy") and value for name, value in env.items()):
        return True
    try:
        netrc = Path(env["NETRC"]) if "NETRC" in env else Path.home() / ".netrc"
    except RuntimeError:  # no home directory to look in: aiohttp finds no file either
        return False
    return netrc.is_file()

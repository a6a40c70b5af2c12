"""One typed, frozen settings object read from the environment.

Every app setting the connector reads is declared once in ``SETTINGS`` below. The same
names appear in ``local.settings.sample.json``, in the Bicep app settings and in the
README's settings table (a test keeps the four in step).

Parsing is strict: ``"yes"`` is not a boolean and ``"ten"`` is not a number. A bad or
missing value raises :class:`SettingsError` naming the setting and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

# Set by App Service / Functions on every Azure instance (never locally): used to refuse
# development-only switches in Azure.
AZURE_INSTANCE_MARKER = "WEBSITE_INSTANCE_ID"

DANGEROUS_ANONYMOUS_SETTING = "DANGEROUSLY_ALLOW_UNAUTHENTICATED_BOT_REQUESTS"

BOT_APP_TYPES = ("SingleTenant", "UserAssignedMSI")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it and says what to do."""


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
    SettingSpec("PERIODIC_SCHEDULE", "NCRONTAB schedule (6 fields) of the periodic run: reminders and maintenance.", "0 */5 * * * *", binding=True),
    SettingSpec(
        "ServiceBusConnection__fullyQualifiedNamespace",
        "Service Bus namespace host (identity-based connection of the queue trigger).",
        binding=True,
    ),
    SettingSpec(
        "STATE_TABLES_CONNECTION",
        "Table Storage connection string (local: UseDevelopmentStorage=true). Leave empty in Azure and set STATE_TABLES_ENDPOINT.",
        secret=True,
    ),
    SettingSpec(
        "STATE_TABLES_ENDPOINT",
        "Table Storage endpoint used with the managed identity, e.g. https://<account>.table.core.windows.net.",
    ),
    SettingSpec("STATE_TABLE_PREFIX", "Prefix of every table the connector creates (letters and digits).", "tac"),
    SettingSpec("MANAGED_IDENTITY_CLIENT_ID", "Client id of the user-assigned managed identity used for Azure resources."),
    SettingSpec("BOT_APP_ID", "The Azure Bot's Microsoft App ID (audience of inbound bot tokens)."),
    SettingSpec("BOT_APP_TYPE", "SingleTenant (app id + secret) or UserAssignedMSI (the managed identity is the bot).", "SingleTenant"),
    SettingSpec("BOT_APP_PASSWORD", "The bot's client secret (SingleTenant); a Key Vault reference in Azure.", secret=True),
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
    SettingSpec("DEFAULT_TENANT_ID", "Tenant used for events without a tenantid when the bot is installed in several tenants."),
    SettingSpec("REMINDER_AFTER_MINUTES", "Minutes an alert may stay open and unacknowledged before a reminder, and between reminders.", "30"),
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

    def __repr__(self) -> str:  # never print secrets
        shown = {k: ("***" if k in {"tables_connection", "bot_app_password"} and v else v) for k, v in vars(self).items()}
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
        raise SettingsError(f"{name} must be a whole number of minutes above 0, not {value!r}.")
    return int(value)


def check_startup_safety(env: Mapping[str, str] = os.environ) -> None:
    """Refuse development-only switches when running in Azure. Cheap: safe at import."""
    if env.get(AZURE_INSTANCE_MARKER) and _bool(env, DANGEROUS_ANONYMOUS_SETTING):
        raise SettingsError(
            f"{DANGEROUS_ANONYMOUS_SETTING} is on, but this instance runs in Azure "
            f"({AZURE_INSTANCE_MARKER} is set): remove the setting; bot requests must be authenticated."
        )


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Read and validate every setting; raise :class:`SettingsError` naming the first problem."""
    check_startup_safety(env)
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
        default_tenant_id=_text(env, "DEFAULT_TENANT_ID"),
        reminder_after_minutes=_positive_int(env, "REMINDER_AFTER_MINUTES"),
        running_in_azure=bool(env.get(AZURE_INSTANCE_MARKER)),
    )

"""Settings: strict parsing, errors that name the setting, no anonymous bot in Azure."""

from __future__ import annotations

from typing import ClassVar

import pytest

from shared.security import new_key
from shared.settings import (
    DANGEROUS_ANONYMOUS_SETTING,
    SettingsError,
    check_startup_safety,
    load_settings,
    unresolved_message,
)

LOCAL = {
    "STATE_TABLES_CONNECTION": "UseDevelopmentStorage=true",
    DANGEROUS_ANONYMOUS_SETTING: "true",
    "LOCAL_DEVELOPMENT": "true",
}
PRODUCTION = {
    "STATE_TABLES_ENDPOINT": "https://acct.table.core.windows.net",
    "BOT_APP_ID": "11111111-2222-3333-4444-555555555555",
    "BOT_APP_PASSWORD": "from-key-vault",
    "BOT_TENANT_ID": "aaaaaaaa-0000-4000-8000-00000000000a",
}


class TestDefaults:
    def test_the_local_defaults_load(self):
        settings = load_settings(LOCAL)
        assert settings.alert_events_queue == "alert-events" and settings.reminder_after_minutes == 30
        assert settings.allow_unauthenticated_bot_requests and not settings.running_in_azure

    def test_the_secret_is_not_shown_in_the_repr(self):
        assert "from-key-vault" not in repr(load_settings(PRODUCTION))


class TestErrorsNameTheSetting:
    @pytest.mark.parametrize(
        "changes, named",
        [
            ({"REMINDER_AFTER_MINUTES": "ten"}, "REMINDER_AFTER_MINUTES"),
            ({"REMINDER_AFTER_MINUTES": "0"}, "REMINDER_AFTER_MINUTES"),
            ({DANGEROUS_ANONYMOUS_SETTING: "yes"}, DANGEROUS_ANONYMOUS_SETTING),
            ({"BOT_APP_TYPE": "MultiTenant"}, "BOT_APP_TYPE"),
            ({"STATE_TABLE_PREFIX": "bad-prefix"}, "STATE_TABLE_PREFIX"),
            ({"STATE_TABLES_CONNECTION": ""}, "STATE_TABLES_ENDPOINT"),
            ({"BOT_TOKEN_URL": "ftp://x"}, "BOT_TOKEN_URL"),
        ],
    )
    def test_a_bad_value_is_refused_naming_it(self, changes, named):
        with pytest.raises(SettingsError, match=named):
            load_settings({**LOCAL, **changes})

    def test_without_an_app_id_the_bot_needs_the_dangerous_switch(self):
        with pytest.raises(SettingsError, match="BOT_APP_ID"):
            load_settings({"STATE_TABLES_CONNECTION": "UseDevelopmentStorage=true"})

    def test_a_single_tenant_bot_needs_its_secret(self):
        env = {k: v for k, v in PRODUCTION.items() if k != "BOT_APP_PASSWORD"}
        with pytest.raises(SettingsError, match="BOT_APP_PASSWORD"):
            load_settings(env)


class TestAzureRefusesAnonymousBots:
    def test_the_dangerous_switch_stops_the_app_in_azure(self):
        with pytest.raises(SettingsError, match=DANGEROUS_ANONYMOUS_SETTING):
            check_startup_safety({**LOCAL, "WEBSITE_INSTANCE_ID": "abc123"})

    def test_importing_the_function_app_in_azure_with_the_switch_fails(self, monkeypatch):
        import importlib
        import sys

        monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc123")
        monkeypatch.setenv(DANGEROUS_ANONYMOUS_SETTING, "true")
        sys.modules.pop("function_app", None)
        with pytest.raises(SettingsError):
            importlib.import_module("function_app")
        sys.modules.pop("function_app", None)

    def test_locally_the_switch_is_allowed(self):
        check_startup_safety(LOCAL)

    @pytest.mark.parametrize("marker", ["WEBSITE_SITE_NAME", "WEBSITE_HOSTNAME", "WEBSITE_POD_NAME"])
    def test_any_azure_marker_refuses_the_switches_even_with_the_local_setting(self, marker):
        with pytest.raises(SettingsError, match=marker):
            check_startup_safety({**LOCAL, marker: "tac-func-abc"})

    @pytest.mark.parametrize(
        "switch, value", [(DANGEROUS_ANONYMOUS_SETTING, "true"), ("LOCAL_CA_CERT_FILE", "/tmp/ca.pem")]
    )
    def test_without_a_positive_local_setting_the_switches_are_refused(self, switch, value):
        # No Azure marker at all (as on a plan that sets none): still refused, naming what is missing.
        with pytest.raises(SettingsError, match="LOCAL_DEVELOPMENT=true"):
            check_startup_safety({"STATE_TABLES_CONNECTION": "UseDevelopmentStorage=true", switch: value})

    def test_importing_the_function_app_without_the_local_setting_fails(self, monkeypatch):
        import importlib
        import sys

        for marker in (
            "WEBSITE_INSTANCE_ID",
            "WEBSITE_SITE_NAME",
            "WEBSITE_HOSTNAME",
            "WEBSITE_POD_NAME",
            "LOCAL_DEVELOPMENT",
        ):
            monkeypatch.delenv(marker, raising=False)
        monkeypatch.setenv(DANGEROUS_ANONYMOUS_SETTING, "true")
        sys.modules.pop("function_app", None)
        with pytest.raises(SettingsError, match="LOCAL_DEVELOPMENT"):
            importlib.import_module("function_app")
        sys.modules.pop("function_app", None)


class TestUnresolvedKeyVaultReferences:
    REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-tac.vault.azure.net/secrets/a-secret)"
    GRAPH: ClassVar = {
        **PRODUCTION,
        "GRAPH_APP_ID": "11111111-2222-3333-4444-555555555555",
        "GRAPH_CREDENTIAL_TYPE": "federated_managed_identity",
        "MANAGED_IDENTITY_CLIENT_ID": "99999999-2222-3333-4444-555555555555",
        "PUBLIC_BASE_URL": "https://func-tac.azurewebsites.net",
        "TOKEN_ENCRYPTION_KEY": new_key(),
        "STATE_SIGNING_KEY": new_key(),
    }

    def test_a_needed_setting_app_service_could_not_resolve_is_refused_not_used_as_the_value(self):
        with pytest.raises(SettingsError) as refused:
            load_settings(
                {**PRODUCTION, "BOT_APP_PASSWORD": self.REFERENCE, "STATE_TABLES_ENDPOINT": self.REFERENCE.lower()}
            )
        message = str(refused.value)
        assert (
            message.startswith("BOT_APP_PASSWORD, STATE_TABLES_ENDPOINT are an unresolved Key Vault reference")
            and "Key Vault Secrets User" in message
        )
        assert "kv-tac" not in message  # names the settings, not where the secrets are

    def test_an_unresolved_admin_key_closes_the_admin_routes_only(self):
        settings = load_settings({**PRODUCTION, "ADMIN_API_KEY": self.REFERENCE})
        assert settings.admin_api_key is None and settings.unresolved == ("ADMIN_API_KEY",)

    @pytest.mark.parametrize("name", ["GRAPH_APP_ID", "TOKEN_ENCRYPTION_KEY", "STATE_SIGNING_KEY"])
    def test_an_unresolved_graph_setting_turns_tenant_connection_off_not_every_function(self, name):
        assert load_settings(self.GRAPH).graph is not None
        settings = load_settings({**self.GRAPH, name: self.REFERENCE})
        assert settings.graph is None and settings.unresolved == (name,)
        assert unresolved_message(settings.unresolved).startswith(
            f"{name} is an unresolved Key Vault reference, so tenant connection (Microsoft Graph) is off"
        )

    def test_a_resolved_value_loads(self):
        assert (
            load_settings({**PRODUCTION, "ADMIN_API_KEY": "resolved-secret-value"}).admin_api_key
            == "resolved-secret-value"
        )


class TestPublicBaseUrl:
    GRAPH: ClassVar = {
        **PRODUCTION,
        "GRAPH_APP_ID": "11111111-2222-3333-4444-555555555555",
        "GRAPH_CLIENT_SECRET": "s",
        "TOKEN_ENCRYPTION_KEY": "",
        "STATE_SIGNING_KEY": "x" * 43,
    }

    def test_in_azure_it_is_the_real_host_name_the_platform_gives(self):
        from shared.security import new_key

        env = {**self.GRAPH, "TOKEN_ENCRYPTION_KEY": new_key(), "WEBSITE_HOSTNAME": "func-tac-abc.azurewebsites.net"}
        settings = load_settings(env)
        assert settings.graph is not None and settings.graph.public_base_url == "https://func-tac-abc.azurewebsites.net"
        custom = load_settings({**env, "PUBLIC_BASE_URL": "https://alerts.contoso.com"})
        assert custom.graph is not None and custom.graph.public_base_url == "https://alerts.contoso.com"

"""Settings: strict parsing, errors that name the setting, no anonymous bot in Azure."""

from __future__ import annotations

from typing import ClassVar

import pytest

from shared.settings import DANGEROUS_ANONYMOUS_SETTING, SettingsError, check_startup_safety, load_settings

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
    def test_a_reference_app_service_could_not_resolve_is_refused_not_used_as_the_key(self):
        reference = "@Microsoft.KeyVault(SecretUri=https://kv-tac.vault.azure.net/secrets/admin-api-key)"
        with pytest.raises(SettingsError) as refused:
            load_settings({**PRODUCTION, "ADMIN_API_KEY": reference, "BOT_APP_PASSWORD": reference.lower()})
        message = str(refused.value)
        assert (
            message.startswith("ADMIN_API_KEY, BOT_APP_PASSWORD are an unresolved Key Vault reference")
            and "Key Vault Secrets User" in message
        )
        assert "kv-tac" not in message  # names the settings, not where the secrets are

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

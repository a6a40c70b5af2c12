"""The Bicep templates pass checkov with no failed check and no parse error, and host.json
carries the settings the README explains."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
INSTALL_SCRIPT = ROOT / "tools" / "install_checkov.sh"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
# checkov's Bicep parser (pycep 0.5.1) cannot read `extension` (FACTS.md), and checkov has no check
# for Microsoft.Graph types: the Graph app module is left out of its scan, and only out of it
# (tools/bicep_refs.py and TestGraphApp below read it).
NOT_FOR_CHECKOV = INFRA / "app" / "graph-app.bicep"
CHECKOV_FILES = [p for p in BICEP_FILES if p != NOT_FOR_CHECKOV]


def _bicep(name: str) -> str:
    return (INFRA / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    if not CHECKOV.exists():
        message = f"checkov is not installed at {CHECKOV}: run tools/install_checkov.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    completed = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(INFRA),
            "--skip-path",
            NOT_FOR_CHECKOV.name,
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    # checkov exits 0 on a parse error and 1 on a failed check: read the report, not the code.
    assert completed.stdout.strip(), f"checkov printed no report:\n{completed.stderr[-2000:]}"
    report = json.loads(completed.stdout)
    if isinstance(report, list):  # one entry per framework
        (report,) = [r for r in report if r.get("check_type") == "bicep"]
    assert report.get("check_type") == "bicep", f"unexpected checkov report: {str(report)[:500]}"
    return report


class TestCheckov:
    def test_the_pinned_version_is_installed(self, checkov_report):
        pinned = re.search(r'CHECKOV_VERSION="([^"]+)"', INSTALL_SCRIPT.read_text()).group(1)
        assert checkov_report["summary"]["checkov_version"] == pinned

    def test_every_template_parses(self, checkov_report):
        assert checkov_report["summary"]["parsing_errors"] == 0
        assert checkov_report["results"].get("parsing_errors", []) == []

    def test_every_resource_was_read(self, checkov_report):
        declared = sum(len(re.findall(r"^(resource|module) \w+ ", p.read_text(), re.M)) for p in CHECKOV_FILES)
        assert checkov_report["summary"]["resource_count"] >= declared

    def test_no_check_fails(self, checkov_report):
        failed = [
            f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
            for c in checkov_report["results"]["failed_checks"]
        ]
        assert checkov_report["summary"]["failed"] == 0, "\n".join(failed)

    def test_checks_ran(self, checkov_report):
        assert checkov_report["summary"]["passed"] >= 25

    def test_every_skip_gives_its_reason(self, checkov_report):
        for check in checkov_report["results"]["skipped_checks"]:
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.strip()) >= 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"


class TestSkipComments:
    def test_every_skip_comment_carries_a_reason(self):
        for path in BICEP_FILES:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "checkov:skip" in line:
                    assert re.search(r"//\s*checkov:skip=CKV2?_[A-Z]+_\d+:\s*\S.{20,}", line), (
                        f"{path.name}:{number}: {line.strip()}"
                    )


class TestBicepStaysParseable:
    """pycep, the parser checkov uses, does not know newer Bicep syntax (FACTS.md)."""

    @pytest.mark.parametrize("path", CHECKOV_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
    def test_no_syntax_pycep_cannot_parse(self, path):
        code = "\n".join(re.sub(r"//.*$", "", line) for line in path.read_text().splitlines())
        assert not re.search(r"^\s*func\s", code, re.M), "user-defined functions"
        assert not re.search(r"^\s*import\s", code, re.M), "import ... from"
        assert ")." + "?" not in code.replace(" ", ""), ".? after a function call"
        assert not re.search(r"\bmap\(", code), "map()"


class TestTemplates:
    def test_main_names_every_module_under_app(self):
        modules = set(re.findall(r"^module \w+ '([^']+)'", _bicep("main.bicep"), re.M))
        assert modules == {
            f"app/{n}.bicep"
            for n in (
                "identity",
                "monitoring",
                "storage",
                "servicebus",
                "keyvault",
                "keyvault-secret",
                "rbac",
                "function",
                "bot",
                "graph-app",
                "operations",
            )
        }

    def test_ops_are_told_when_the_connector_is_unwell(self):
        from tools.bicep_refs import resources

        ops = _bicep("app/operations.bicep")
        types = [t for f, _, t in resources(INFRA / "main.bicep") if f == "operations.bicep"]
        assert (
            types.count("Microsoft.Insights/metricAlerts") == 2
            and "Microsoft.EventGrid/systemTopics/eventSubscriptions" in types
        )
        assert "metricName: 'DeadletteredMessages'" in ops and "metricName: 'exceptions/count'" in ops
        assert "'Microsoft.KeyVault.SecretNearExpiry'" in ops and "endpointType: 'MonitorAlert'" in ops
        assert ops.count("actionGroupId: actionGroup.id") == 2 and "emailAddress: alertEmail" in ops
        scopes = re.findall(r"^  scope: (\w+)$", ops, re.M)
        assert {"serviceBus", "vault", "storage", "tableServices", "blobServices"} <= set(scopes)
        assert "alertEmail: alertEmail" in _bicep("main.bicep")

    def test_every_resource_name_is_a_parameter(self):
        params = set(re.findall(r"^param (\w+Name) string = ", _bicep("main.bicep"), re.M))
        assert {
            "identityName",
            "storageAccountName",
            "deploymentContainerName",
            "serviceBusNamespaceName",
            "keyVaultName",
            "logAnalyticsName",
            "applicationInsightsName",
            "planName",
            "functionAppName",
            "botName",
            "alertEventsQueueName",
            "teamsActionsQueueName",
        } <= params

    def test_outputs_are_upper_snake(self):
        outputs = re.findall(r"^output (\w+) ", _bicep("main.bicep"), re.M)
        assert outputs and all(re.fullmatch(r"[A-Z][A-Z0-9_]*", o) for o in outputs), outputs

    def test_parameters_file_names_only_existing_parameters(self):
        params = set(re.findall(r"^param (\w+) ", _bicep("main.bicep"), re.M))
        parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
        assert set(parameters) <= params
        for secret in ("botAppPassword", "tokenEncryptionKey", "stateSigningKey"):
            assert secret not in parameters, "secrets are passed on the command line, never committed"

    def test_storage_accepts_identities_only(self):
        storage = _bicep("app/storage.bicep")
        for setting in (
            "allowSharedKeyAccess: false",
            "allowBlobPublicAccess: false",
            "minimumTlsVersion: 'TLS1_2'",
            "supportsHttpsTrafficOnly: true",
        ):
            assert setting in storage

    def test_queues_dead_letter_and_drop_duplicates(self):
        bus = _bicep("app/servicebus.bicep")
        assert bus.count("requiresDuplicateDetection: true") == 3
        assert bus.count("deadLetteringOnMessageExpiration: true") == 3
        assert bus.count("requiresSession: true") == 1  # the deliveries queue: one session per conversation
        assert "maxDeliveryCount: alertEventsMaxDeliveryCount" in bus
        assert "disableLocalAuth: true" in bus

    def test_key_vault_uses_rbac_and_keeps_deleted_secrets(self):
        vault = _bicep("app/keyvault.bicep")
        for setting in ("enableRbacAuthorization: true", "enableSoftDelete: true", "enablePurgeProtection: true"):
            assert setting in vault
        for secret in ("bot-app-password", "token-encryption-key", "state-signing-key"):
            assert f"'{secret}'" in vault

    def test_function_app_is_flex_consumption_python_311_with_identity_storage(self):
        function = _bicep("app/function.bicep")
        assert "tier: 'FlexConsumption'" in function
        assert "name: 'python'" in function and "version: '3.11'" in function
        assert "type: 'blobContainer'" in function and "type: 'UserAssignedIdentity'" in function
        assert "'AzureWebJobsStorage__credential'" in function
        assert "name: 'AzureWebJobsStorage'\n" not in function

    def test_bot_type_is_a_parameter_and_teams_is_enabled(self):
        bot = _bicep("app/bot.bicep")
        assert "msaAppType: appType" in bot
        assert "'MsTeamsChannel'" in bot
        assert "/api/messages" in _bicep("main.bicep")

    def test_roles_are_named_and_scoped_narrowly(self):
        rbac = _bicep("app/rbac.bicep")
        for role in (
            "storageTableDataContributor",
            "storageBlobDataOwner",
            "serviceBusDataReceiver",
            "serviceBusDataSender",
            "keyVaultSecretsUser",
        ):
            assert re.search(rf"^var {role} = '[0-9a-f-]{{36}}'", rbac, re.M)
        for role in ("serviceBusDataOwner", "monitoringMetricsPublisher"):
            assert re.search(rf"^var {role} = '[0-9a-f-]{{36}}'", rbac, re.M)
        # Service Bus roles on queues, never the namespace; the triggered queues also get Data
        # Owner (target-based scaling reads their length); Blob Data Owner on the account (the
        # host's containers and the deployment container, as Microsoft's Flex templates do).
        scopes = re.findall(r"^\s*scope: (\w+)$", rbac, re.M)
        assert "serviceBus" not in scopes and {"alertEvents", "teamsActions", "deliveries", "storage", "vault"} <= set(
            scopes
        )
        for queue in ("alertEvents", "deliveries"):
            assert re.search(rf"name: guid\({queue}\.id, principalId, serviceBusDataOwner\)\n  scope: {queue}\n", rbac)
        assert "name: guid(storage.id, principalId, storageBlobDataOwner)" in rbac
        names = re.findall(r"^\s*name: (.+)$", rbac, re.M)
        assignments = [n for n in names if n.startswith("guid(")]
        assert len(assignments) == rbac.count("Microsoft.Authorization/roleAssignments@")


def _timespan(value: str) -> timedelta:
    hours, minutes, seconds = value.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))


class TestHostJson:
    host = json.loads((ROOT / "host.json").read_text())

    def test_extension_bundle_is_version_4(self):
        assert self.host["extensionBundle"] == {
            "id": "Microsoft.Azure.Functions.ExtensionBundle",
            "version": "[4.*, 5.0.0)",
        }

    def test_service_bus_settings_are_chosen(self):
        service_bus = self.host["extensions"]["serviceBus"]
        assert {"maxConcurrentCalls", "maxAutoLockRenewalDuration", "autoCompleteMessages", "prefetchCount"} <= set(
            service_bus
        )

    def test_the_lock_outlives_the_function(self):
        # A lock that lapses while the function runs hands the message to another instance.
        renewal = _timespan(self.host["extensions"]["serviceBus"]["maxAutoLockRenewalDuration"])
        assert renewal > _timespan(self.host["functionTimeout"])

    def test_logging_and_sampling(self):
        logging = self.host["logging"]
        assert logging["logLevel"]["default"] and logging["logLevel"]["Function"] == "Information"
        sampling = logging["applicationInsights"]["samplingSettings"]
        assert sampling["isEnabled"] is True
        assert "Exception" in sampling["excludedTypes"], "exceptions are never sampled away"


class TestCheckovSeesEveryResource:
    """checkov's Bicep parser keeps only the last of sibling nested resources (it read one
    Service Bus queue of three): the templates declare siblings at the top level with `parent`,
    and checkov's parser must find every resource the reference check finds."""

    def test_checkov_parses_each_resource_of_each_file(self):
        from tools.bicep_refs import resources

        python = CHECKOV.parent / "python"
        if not python.exists():
            message = f"checkov is not installed at {CHECKOV}: run tools/install_checkov.sh"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        script = (
            "import json, sys\nfrom pathlib import Path\nfrom checkov.bicep.parser import Parser\n"
            "out = {}\nfor f in sys.argv[1:]:\n    t, _ = Parser().parse(Path(f))\n    out[Path(f).name] = "
            "sorted((t or {}).get('resources', {}))\n"
            "print(json.dumps(out))"
        )
        done = subprocess.run(
            [str(python), "-c", script, *map(str, CHECKOV_FILES)], capture_output=True, text=True, timeout=300, cwd=ROOT
        )
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        expected: dict[str, list[str]] = {}
        for path in CHECKOV_FILES:
            expected[path.name] = sorted({symbol for file, symbol, _ in resources(path) if file == path.name})
        assert seen == expected


class TestRegions:
    main = _bicep("main.bicep")

    def test_azd_offers_only_the_regions_that_have_flex_consumption(self):
        declaration = re.search(r"@allowed\(\[([^\]]*)\]\)\s*@metadata\(\{\s*azd: \{\s*type: 'location'", self.main)
        assert declaration, "location has @allowed and azd's location metadata"
        regions = re.findall(r"'(\w+)'", declaration.group(1))
        assert len(regions) > 20 and {"westeurope", "eastus", "swedencentral"} <= set(regions)
        assert re.search(
            r"@metadata\(\{\s*azd: \{\s*type: 'location'\s*\}\s*\}\)\s*@description\([^)]*\)\s*param location ",
            self.main,
        )

    def test_every_regional_resource_takes_the_location_parameter(self):
        for path in sorted(INFRA.rglob("*.bicep")):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"^\s+location: resourceGroup\(\)\.location", text, re.M), path.name
        for module in re.findall(r"^module (\w+) '[^']+' = (?:if \([^)]*\) )?\{(.*?)^\}", self.main, re.M | re.S):
            name, body = module
            target = re.search(rf"^module {name} '([^']+)'", self.main, re.M).group(1)
            if re.search(r"^param location ", _bicep(target), re.M):
                assert "location: location" in body, f"module {name} is not given the location"


class TestGraphApp:
    """`graphAppRegistration: 'create'` (azd's default) registers the Graph app with no secret:
    the managed identity is its federated credential (Microsoft Entra, "Configure an application
    to trust a managed identity"; Microsoft Graph Bicep reference v1.0)."""

    graph_app = _bicep("app/graph-app.bicep")
    main = _bicep("main.bicep")

    def test_the_extension_is_declared_and_configured(self):
        assert re.search(r"^extension microsoftGraphV1$", self.graph_app, re.M)
        config = "\n".join(
            line for line in (INFRA / "bicepconfig.json").read_text().splitlines() if not line.strip().startswith("//")
        )
        assert json.loads(config)["extensions"]["microsoftGraphV1"].startswith(
            "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:"
        )

    def test_the_managed_identity_is_the_apps_federated_credential(self):
        fic = self.graph_app.split("'federatedIdentityCredentials@v1.0'", 1)[1]
        assert "subject: identityPrincipalId" in fic
        assert "issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'" in fic
        assert (
            "AzureCloud: 'api://AzureADTokenExchange'" in self.graph_app
            and "tokenExchangeAudiences[environment().name]" in fic
        )
        assert "identityPrincipalId: identity.outputs.principalId" in self.main

    def test_the_audience_is_the_one_the_app_asks_for(self):
        from shared.adapters.app_registration import TOKEN_EXCHANGE_SCOPE

        # The Bicep's public-cloud audience is the one both Graph paths (azure-identity, MSAL) ask for.
        assert TOKEN_EXCHANGE_SCOPE == "api://AzureADTokenExchange/.default"
        for adapter in ("graph.py", "identity.py"):
            source = (ROOT / "shared" / "adapters" / adapter).read_text()
            assert "get_token(TOKEN_EXCHANGE_SCOPE)" in source and '"api://AzureADTokenExchange' not in source

    def test_other_organisations_can_connect_and_come_back_to_the_callback(self):
        assert "signInAudience: 'AzureADMultipleOrgs'" in self.graph_app
        assert "redirectUri: '${publicBase}/api/consent/callback'" in self.main

    def test_the_redirect_uri_is_the_one_the_app_sends(self):
        """The app sends PUBLIC_BASE_URL (else https://WEBSITE_HOSTNAME) + /api/consent/callback
        (shared/settings.py); a registration naming another address fails with AADSTS50011."""
        base = re.search(r"^var publicBase = (.+?)\n\n", self.main, re.M | re.S)
        assert base, "main.bicep declares publicBase"
        assert "empty(publicBaseUrl)" in base.group(1)
        assert "'https://${functionApp.outputs.defaultHostName}'" in base.group(1)
        assert "publicBaseUrl: publicBaseUrl" in self.main  # the app's PUBLIC_BASE_URL is the same parameter

    def test_the_permissions_are_shared_permissions(self):
        from shared.permissions import APPLICATION_PERMISSIONS, DELEGATED_SCOPES
        from tools import graph_permissions

        assert graph_permissions.main(["--check"]) == 0
        data = json.loads((INFRA / "app" / "graph-permissions.json").read_text())
        assert data["applicationPermissions"] == list(APPLICATION_PERMISSIONS) and data["delegatedScopes"] == list(
            DELEGATED_SCOPES
        )
        assert (
            "contains(applicationPermissions, role.value)" in self.graph_app
            and "contains(delegatedScopes, scope.value)" in self.graph_app
        )

    def test_a_created_app_has_no_secret_and_reaches_the_app_through_key_vault(self):
        assert (
            "var effectiveGraphCredentialType = createGraphApp ? 'federated_managed_identity' : graphCredentialType"
            in self.main
        )
        assert "graphClientSecretReference: effectiveGraphCredentialType == 'secret'" in self.main
        assert re.search(r"^module graphApp 'app/graph-app.bicep' = if \(createGraphApp\)", self.main, re.M)
        assert re.search(
            r"^module graphAppIdSecret 'app/keyvault-secret.bicep' = if \(createGraphApp\)", self.main, re.M
        )
        assert "value: graphApp.outputs.appId" in self.main and "graphAppId: graphAppIdSetting" in self.main

    def test_azd_creates_it_and_the_bicep_default_does_not(self):
        assert "param graphAppRegistration string = 'none'" in self.main
        parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
        assert parameters["graphAppRegistration"]["value"] == "${GRAPH_APP_REGISTRATION=create}"

"""azd: azure.yaml valid against azd's published schema, its hooks reading only what the Bicep
outputs, the parameters file filled from azd's environment, and the hooks themselves."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import sys
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator, validators

from tools import azd_hooks
from tools.bicep_refs import parse

ROOT = Path(__file__).resolve().parents[2]
AZURE_YAML = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
SCHEMA = json.loads((ROOT / "infra" / "schemas" / "azure.yaml.schema.json").read_text(encoding="utf-8"))
OUTPUTS = set(parse(ROOT / "infra" / "main.bicep").of("output"))
# Set by azd itself (azd docs: environment variables), or by a hook of ours.
AZD_VARIABLES = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_PRINCIPAL_ID", "AZURE_SUBSCRIPTION_ID"}
SET_BY_HOOKS = {"KEY_VAULT_CREATE_MODE", azd_hooks.APPLIED_GRAPH_APP}


def test_azure_yaml_is_valid_against_azds_schema():
    validator = validators.validator_for(SCHEMA, default=Draft7Validator)(SCHEMA)
    errors = sorted(validator.iter_errors(AZURE_YAML), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:200]}" for e in errors)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda doc: doc["services"]["connector"].update(language=3),  # a string
        lambda doc: doc.update(name="Teams Alert Connector"),  # lower case, digits and hyphens only
        lambda doc: doc["hooks"]["postprovision"]["posix"].update(shell="bash"),  # sh or pwsh
    ],
)
def test_the_schema_check_refuses_what_azd_refuses(break_it):
    broken = json.loads(json.dumps(AZURE_YAML))
    break_it(broken)
    validator = validators.validator_for(SCHEMA, default=Draft7Validator)(SCHEMA)
    assert list(validator.iter_errors(broken))


def test_the_service_deploys_to_the_app_the_bicep_tags_for_it():
    [service] = AZURE_YAML["services"]
    assert f"'azd-service-name': '{service}'" in (ROOT / "infra" / "app" / "function.bicep").read_text(encoding="utf-8")


def test_every_parameter_comes_from_azd_or_has_a_default():
    text = (ROOT / "infra" / "main.parameters.json").read_text(encoding="utf-8")
    for name, default in re.findall(r"\$\{(\w+)(=[^}]*)?\}", text):
        assert name in AZD_VARIABLES | SET_BY_HOOKS or default, f"{name} has no default and azd does not set it"
    declared = set(parse(ROOT / "infra" / "main.bicep").of("param"))
    assert set(json.loads(text)["parameters"]) <= declared


def test_the_hooks_read_only_bicep_outputs_and_azds_variables():
    source = (ROOT / "tools" / "azd_hooks.py").read_text(encoding="utf-8")
    read = set(re.findall(r'_env\("(\w+)"\)', source)) | set(re.findall(r'os\.environ\.get\("(\w+)"', source))
    read |= {azd_hooks.APPLIED_GRAPH_APP} if "os.environ.get(APPLIED_GRAPH_APP" in source else set()
    allowed = OUTPUTS | AZD_VARIABLES | SET_BY_HOOKS | {"GRAPH_APP_REGISTRATION"}
    assert read and read <= allowed, read - allowed


def test_every_hook_runs_through_the_launcher_that_finds_python_3_11():
    for name, hook in AZURE_YAML["hooks"].items():
        assert name in ("prepackage", "preprovision", "postprovision", "postdeploy", "postdown")
        assert hook["posix"]["run"] == f"sh tools/azd_hook.sh {name}"
        assert hook["windows"]["run"] == f"./tools/azd_hook.ps1 {name}"


@pytest.mark.parametrize("registration", ["create", "none"])
def test_postdeploy_builds_the_app_package_and_prints_the_next_steps_without_a_secret(
    tmp_path, monkeypatch, registration
):
    monkeypatch.setattr(azd_hooks, "ROOT", tmp_path)
    monkeypatch.setenv("GRAPH_APP_REGISTRATION", registration)
    monkeypatch.setenv("FUNCTION_APP_HOST_NAME", "func-tac-abc.azurewebsites.net")
    monkeypatch.setenv("BOT_APP_ID", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("KEY_VAULT_NAME", "kv-tac-abc")
    out = io.StringIO()
    with redirect_stdout(out):
        assert azd_hooks._postdeploy() == 0
    with zipfile.ZipFile(tmp_path / "build" / "appPackage.zip") as package:
        manifest = json.loads(package.read("manifest.json"))
    assert manifest["bots"][0]["botId"] == "11111111-2222-3333-4444-555555555555"
    said = out.getvalue()
    assert "--name admin-api-key" in said
    if registration == "create":
        assert "https://func-tac-abc.azurewebsites.net/api/connect?method=bot" in said and "no secret" in said
    else:
        assert "/api/connect" not in said and "GRAPH_APP_REGISTRATION create" in said


SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"


def deleted(name: str, group: str = "rg-prod", env: str = "prod", subscription: str = SUBSCRIPTION) -> dict:
    """One vault as `az keyvault list-deleted -o json` shows it."""
    return {
        "name": name,
        "properties": {
            "vaultId": (
                f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{name}"
            ),
            "tags": {"azd-env-name": env},
        },
    }


def stand_ins(folder: Path, answers: dict[str, str]) -> Path:
    """Recording `az`, `azd` (and others) on PATH: each call is logged; each prints its answer."""
    log = folder / "calls.log"
    for tool, answer in answers.items():
        script = folder / tool
        script.write_text(
            f"#!{sys.executable}\nimport sys\nopen({str(log)!r}, 'a').write({tool!r} + ' ' + ' "
            f"'.join(sys.argv[1:]) + '\\n')\nprint({answer!r})\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


@pytest.mark.parametrize(
    "found, recovered",
    [
        ([deleted("kv-tac-abc")], "kv-tac-abc"),
        ([deleted("kv-tac-abc", group="rg-other")], None),  # another group's: another name
        ([deleted("kv-tac-abc", env="staging")], None),
        ([deleted("kv-tac-abc", subscription="99999999-1111-2222-3333-444444444444")], None),
        ([deleted("kv-other"), deleted("kv-tac-xyz")], "kv-tac-xyz"),
    ],
)
def test_preprovision_recovers_only_the_vault_the_template_would_create(tmp_path, monkeypatch, found, recovered):
    log = stand_ins(tmp_path, {"az": json.dumps(found), "azd": ""})
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for name, value in (("AZURE_ENV_NAME", "prod"), ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-prod")
    monkeypatch.delenv("KEY_VAULT_NAME", raising=False)
    out = io.StringIO()
    with redirect_stdout(out):
        assert azd_hooks.main(["preprovision"]) == 0
    calls = log.read_text().splitlines()
    assert calls[0].startswith("az keyvault list-deleted") and calls[0].endswith(f"--subscription {SUBSCRIPTION}")
    assert calls[1] == f"azd env set KEY_VAULT_CREATE_MODE {'recover' if recovered else 'default'}"
    assert (f"{recovered} of environment prod was deleted" in out.getvalue()) == bool(recovered)


def test_preprovision_recovers_exactly_the_vault_this_environment_had(tmp_path, monkeypatch):
    stand_ins(tmp_path, {"az": json.dumps([deleted("kv-tac-abc"), deleted("kv-tac-def")]), "azd": ""})
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for name, value in (("AZURE_ENV_NAME", "prod"), ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-prod")
    monkeypatch.setenv("KEY_VAULT_NAME", "kv-tac-def")
    out = io.StringIO()
    with redirect_stdout(out):
        assert azd_hooks.main(["preprovision"]) == 0
    assert "kv-tac-def of environment prod was deleted" in out.getvalue()


def test_postdown_says_what_stays_and_how_to_remove_it(monkeypatch):
    monkeypatch.setenv("KEY_VAULT_NAME", "kv-tac-abc")
    monkeypatch.setenv("GRAPH_APP_REGISTRATION", "create")
    monkeypatch.setenv("GRAPH_APP_CLIENT_ID", "77777777-2222-3333-4444-555555555555")
    out = io.StringIO()
    with redirect_stdout(out):
        assert azd_hooks.main(["postdown"]) == 0
    said = out.getvalue()
    assert "Key Vault kv-tac-abc" in said and "90 days" in said and "azd down --purge" in said
    assert "az ad app delete --id 77777777-2222-3333-4444-555555555555" in said
    assert "directory/deletedItems/" in said and "uniqueName" in said


def test_a_hook_outside_azd_says_so(monkeypatch):
    monkeypatch.delenv("KEY_VAULT_NAME", raising=False)
    with pytest.raises(SystemExit, match="KEY_VAULT_NAME is not set"):
        azd_hooks.postprovision()

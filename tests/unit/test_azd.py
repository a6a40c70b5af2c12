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
SET_BY_HOOKS = {"KEY_VAULT_CREATE_MODE"}


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
    read = set(re.findall(r'_env\("(\w+)"\)', source))
    assert read and read <= OUTPUTS | AZD_VARIABLES, read - OUTPUTS - AZD_VARIABLES
    for hook in AZURE_YAML["hooks"].values():
        for shell in ("posix", "windows"):
            assert re.fullmatch(
                r"python3? -m tools\.azd_hooks (preprovision|postprovision|postdeploy)", hook[shell]["run"]
            )


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
        assert azd_hooks.main(["postdeploy"]) == 0
    with zipfile.ZipFile(tmp_path / "build" / "appPackage.zip") as package:
        manifest = json.loads(package.read("manifest.json"))
    assert manifest["bots"][0]["botId"] == "11111111-2222-3333-4444-555555555555"
    said = out.getvalue()
    assert "--name admin-api-key" in said
    if registration == "create":
        assert "https://func-tac-abc.azurewebsites.net/api/connect?method=bot" in said and "no secret" in said
    else:
        assert "/api/connect" not in said and "GRAPH_APP_REGISTRATION create" in said


def test_preprovision_recovers_the_deleted_vault_of_this_environment(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    for tool, answer in (("az", "kv-tac-abc"), ("azd", "")):
        script = tmp_path / tool
        script.write_text(
            f"#!{sys.executable}\nimport sys\nopen({str(log)!r}, 'a').write({tool!r} + ' ' + ' "
            f"'.join(sys.argv[1:]) + '\\n')\nprint({answer!r})\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AZURE_ENV_NAME", "prod")
    out = io.StringIO()
    with redirect_stdout(out):
        assert azd_hooks.main(["preprovision"]) == 0
    calls = log.read_text().splitlines()
    assert "azd-env-name\"=='prod'" in calls[0] and calls[1] == "azd env set KEY_VAULT_CREATE_MODE recover"
    assert "kv-tac-abc of environment prod was deleted" in out.getvalue()


def test_a_hook_outside_azd_says_so(monkeypatch):
    monkeypatch.delenv("KEY_VAULT_NAME", raising=False)
    with pytest.raises(SystemExit, match="KEY_VAULT_NAME is not set"):
        azd_hooks.postprovision()

"""The azd hooks as `azd up` and `azd down` run them on a clean machine: through
tools/azd_hook.sh, in a bare Python 3.11 environment (nothing installed but pip), with a copy of
the repository that has no node_modules, .venv or .tools, and recording stand-ins for az, azd and
npm on PATH (the real ones need an Azure subscription and a tenant). Each hook must install what
it needs itself."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
GRAPH_APP = "77777777-2222-3333-4444-555555555555"

# az: what each command the hooks use answers. The vault starts empty and keeps what is written.
AZ = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["STAND_IN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(["az", *args]) + "\\n")
vault = os.environ["STAND_IN_LOG"] + ".vault"
kept = open(vault).read().split() if os.path.exists(vault) else []
if args[:2] == ["keyvault", "list-deleted"]:
    print("[]")
elif args[:3] == ["keyvault", "secret", "show"]:
    name = args[args.index("--name") + 1]
    if name not in kept:
        print("ERROR: (SecretNotFound) A secret with (name/id) x was not found in this key vault.", file=sys.stderr)
        sys.exit(3)
    print("https://kv/secrets/" + name)
elif args[:3] == ["keyvault", "secret", "set"]:
    with open(vault, "a") as out:
        out.write(args[args.index("--name") + 1] + "\\n")
    print("ok")
else:
    print("ok")
"""
AZD = """#!{python}
import json, os, sys
with open(os.environ["STAND_IN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(["azd", *sys.argv[1:]]) + "\\n")
"""
# npm: `npm ci` leaves the locked @microsoft/app-manifest in node_modules (linked from this checkout's).
NPM = """#!{python}
import json, os, sys
with open(os.environ["STAND_IN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(["npm", *sys.argv[1:]]) + "\\n")
if sys.argv[1:2] == ["ci"]:
    os.makedirs("node_modules/@microsoft", exist_ok=True)
    os.symlink({manifest!r}, "node_modules/@microsoft/app-manifest")
"""


def tracked(*paths: str) -> list[str]:
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


@pytest.fixture(scope="module")
def clean_machine(tmp_path_factory):
    base = tmp_path_factory.mktemp("azd")
    repo = base / "repo"
    for name in tracked(
        "tools",
        "appPackage",
        "pyproject.toml",
        "package.json",
        "package-lock.json",
        "azure.yaml",
        "function_app.py",
        "shared",
    ):
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    bare = base / "bare"
    python311 = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python311, "-m", "venv", str(bare)], check=True)
    manifest = ROOT / "node_modules" / "@microsoft" / "app-manifest"
    assert manifest.exists(), "npm ci has not run in this checkout"
    tools = base / "stand-ins"
    tools.mkdir()
    for name, text in (("az", AZ), ("azd", AZD), ("npm", NPM)):
        script = tools / name
        script.write_text(text.format(python=sys.executable, manifest=str(manifest)))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = base / "calls.log"
    dev_venv = str(Path(sys.prefix) / "bin")
    system = [p for p in os.environ["PATH"].split(os.pathsep) if p and p != dev_venv]
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and "AZURE" not in k
    }
    env |= {
        "PATH": os.pathsep.join([str(tools), str(bare / "bin"), *system]),
        "STAND_IN_LOG": str(log),
        # What azd puts in the environment: its own variables and the Bicep outputs.
        "AZURE_ENV_NAME": "prod",
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "AZURE_RESOURCE_GROUP": "rg-prod",
        "KEY_VAULT_NAME": "kv-tac-abc",
        "FUNCTION_APP_NAME": "func-tac-abc",
        "FUNCTION_APP_HOST_NAME": "func-tac-abc.azurewebsites.net",
        "CONNECTOR_URL": "https://func-tac-abc.azurewebsites.net",
        "BOT_APP_ID": "11111111-2222-3333-4444-555555555555",
        "GRAPH_APP_REGISTRATION": "create",
        "GRAPH_APP_CLIENT_ID": GRAPH_APP,
    }

    def hook(step: str, **extra: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
        log.write_text("")
        done = subprocess.run(
            ["sh", "tools/azd_hook.sh", step],
            cwd=repo,
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done, [json.loads(line) for line in log.read_text().splitlines()]

    return repo, bare, hook


def test_the_environment_is_bare(clean_machine):
    _, bare, _ = clean_machine
    for module in ("jsonschema", "cryptography", "yaml"):
        done = subprocess.run([str(bare / "bin" / "python"), "-c", f"import {module}"], capture_output=True)
        assert done.returncode != 0, f"{module} is importable: the environment is not bare"


def test_prepackage_compiles_the_app_to_the_bytecode_the_package_carries(clean_machine):
    repo, _, hook = clean_machine
    done, _ = hook("prepackage")
    assert done.returncode == 0, done.stderr
    sources = [repo / "function_app.py", *(repo / "shared").rglob("*.py")]
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b11, f"{pyc} is not checked-hash bytecode"  # PEP 552: hash-based, checked
    assert f"Compiled {len(sources)} modules" in done.stdout


def test_preprovision(clean_machine):
    _, _, hook = clean_machine
    done, calls = hook("preprovision")
    assert done.returncode == 0, done.stderr
    assert calls == [
        ["az", "keyvault", "list-deleted", "--resource-type", "vault", "-o", "json", "--subscription", SUBSCRIPTION],
        ["azd", "env", "set", "KEY_VAULT_CREATE_MODE", "default"],
    ]


def test_postprovision(clean_machine):
    _, _, hook = clean_machine
    done, calls = hook("postprovision")
    assert done.returncode == 0, done.stderr
    written = [c for c in calls if c[1:4] == ["keyvault", "secret", "set"]]
    assert len(written) == 3 and all(c[-2:] == ["--subscription", SUBSCRIPTION] for c in written)
    assert [c[1] for c in calls[-3:]] == ["rest", "functionapp", "env"]
    assert calls[-1] == ["azd", "env", "set", "CONNECTOR_GRAPH_APP_APPLIED", GRAPH_APP]
    assert done.stdout.count("generated and stored") == 3 and "restarted (new keys and Graph app" in done.stdout


def test_postprovision_again_keeps_the_keys_and_restarts_only_for_a_new_graph_app(clean_machine):
    _, _, hook = clean_machine
    done, calls = hook("postprovision", CONNECTOR_GRAPH_APP_APPLIED=GRAPH_APP)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": kept") == 3 and "not restarted" in done.stdout
    assert not [c for c in calls if c[1] in ("rest", "functionapp") or c[0] == "azd"]
    other = "88888888-2222-3333-4444-555555555555"
    done, calls = hook("postprovision", CONNECTOR_GRAPH_APP_APPLIED=GRAPH_APP, GRAPH_APP_CLIENT_ID=other)
    assert done.returncode == 0 and f"restarted (Graph app {other})" in done.stdout
    assert [c[1] for c in calls[-3:]] == ["rest", "functionapp", "env"]


def test_postdeploy(clean_machine):
    repo, _, hook = clean_machine
    done, calls = hook("postdeploy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"] in calls
    assert (repo / ".tools" / "azd-hooks" / ".installed").exists()
    with zipfile.ZipFile(repo / "build" / "appPackage.zip") as package:
        manifest = json.loads(package.read("manifest.json"))
    assert manifest["bots"][0]["botId"] == "11111111-2222-3333-4444-555555555555"
    assert "Teams Alert Connector is deployed" in done.stdout
    assert "https://func-tac-abc.azurewebsites.net/api/connect?method=bot" in done.stdout
    again, calls = hook("postdeploy")  # the second time installs nothing
    assert again.returncode == 0 and not [c for c in calls if c[0] == "npm"] and "installing" not in again.stdout


def test_postdown(clean_machine):
    _, _, hook = clean_machine
    done, _ = hook("postdown")
    assert done.returncode == 0, done.stderr
    assert "Key Vault kv-tac-abc" in done.stdout and f"az ad app delete --id {GRAPH_APP}" in done.stdout


def test_the_launcher_names_what_it_needs_when_python_is_too_old(clean_machine, tmp_path):
    repo, _, _ = clean_machine
    old = tmp_path / "bin"
    old.mkdir()
    for name in ("python3", "python"):  # a Python older than 3.11: the version check fails
        script = old / name
        script.write_text("#!/bin/sh\nexit 1\n")
        script.chmod(0o755)
    done = subprocess.run(
        ["/bin/sh", "tools/azd_hook.sh", "preprovision"],
        cwd=repo,
        env={"PATH": str(old)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "need Python 3.11 or later" in done.stderr

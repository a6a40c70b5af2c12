"""The hooks `azd up` and `azd down` run (azure.yaml, through tools/azd_hook.sh or .ps1, which
find Python 3.11 or later): azd puts the Bicep outputs and its own variables in the environment.

    python -m tools.azd_hooks preprovision    # a Key Vault deleted with this environment: recover it
    python -m tools.azd_hooks postprovision   # generate the keys into Key Vault; refresh and restart the app
    python -m tools.azd_hooks postdeploy      # build the Teams app package, print the next steps
    python -m tools.azd_hooks postdown        # say what `azd down` left, and how to remove it

They import only the standard library, but for postdeploy's manifest schema check, which runs in
a virtual environment of its own (.tools/azd-hooks, from tools/requirements-azd.txt) made on
first use; the app package step installs the pinned npm tools (`npm ci`) when they are missing.
So the hooks need only Python 3.11, Node.js with npm, az and azd. Each step says what it did;
none prints a secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOOKS_ENV = ROOT / ".tools" / "azd-hooks"
HOOKS_REQUIREMENTS = ROOT / "tools" / "requirements-azd.txt"
# Set by postprovision: the Graph app id the app's Key Vault references were last refreshed for.
APPLIED_GRAPH_APP = "CONNECTOR_GRAPH_APP_APPLIED"


class HookError(Exception):
    """A hook cannot go on; the message says why and what to do."""


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(
            f"error: {name} is not set: run this through azd (azure.yaml's hooks), which sets the Bicep outputs"
        )
    return value


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no message)"])[0][:200]


def _az(*args: str) -> subprocess.CompletedProcess[str] | None:
    """An az call in the environment's subscription (AZURE_SUBSCRIPTION_ID), None without az."""
    az = shutil.which("az")
    if az is None:
        return None
    subscription = os.environ.get("AZURE_SUBSCRIPTION_ID", "")
    extra = ["--subscription", subscription] if subscription else []
    return subprocess.run([az, *args, *extra], capture_output=True, text=True, timeout=120)


def _azd_env_set(name: str, value: str) -> None:
    azd = shutil.which("azd")
    if azd is not None:
        subprocess.run([azd, "env", "set", name, value], check=True, timeout=60)


def deleted_vault_of_this_environment(deleted: list[dict[str, object]]) -> str | None:
    """The deleted vault the template would create again: the one of this subscription, resource
    group and environment (the inputs of the name main.bicep derives: kv-tac-<uniqueString(...)>),
    or exactly the vault this environment last had (KEY_VAULT_NAME, kept by azd after `azd down`)."""
    subscription = os.environ.get("AZURE_SUBSCRIPTION_ID", "").lower()
    group = os.environ.get("AZURE_RESOURCE_GROUP", "").lower()
    env_name = os.environ.get("AZURE_ENV_NAME", "")
    last = os.environ.get("KEY_VAULT_NAME", "").lower()
    for vault in deleted:
        name = str(vault.get("name", ""))
        properties = vault.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        tags = properties.get("tags") if isinstance(properties.get("tags"), dict) else {}
        vault_id = str(properties.get("vaultId", "")).lower()
        expected_id = f"/subscriptions/{subscription}/resourcegroups/{group}/providers/microsoft.keyvault/vaults/{name}"
        if not (subscription and group) or vault_id != expected_id.lower():
            continue
        if last and name.lower() == last:
            return name
        if not last and name.startswith("kv-tac-") and tags.get("azd-env-name") == env_name:
            return name
    return None


def preprovision() -> int:
    """Key Vault keeps a deleted vault 90 days (purge protection): an environment deleted and
    created again must recover its vault, or provisioning fails on the name."""
    env_name = _env("AZURE_ENV_NAME")
    mode = "default"
    done = _az("keyvault", "list-deleted", "--resource-type", "vault", "-o", "json")
    if done is None:
        print("  az not found: cannot look for a deleted Key Vault of this environment; creating a new one")
    elif done.returncode != 0:
        print(f"  cannot list deleted Key Vaults ({_first_line(done.stderr)}); creating a new one")
    else:
        try:
            deleted = json.loads(done.stdout or "[]")
        except json.JSONDecodeError:
            deleted = []
        name = deleted_vault_of_this_environment(deleted if isinstance(deleted, list) else [])
        if name:
            mode = "recover"
            print(f"  Key Vault {name} of environment {env_name} was deleted: it is recovered, with its keys")
    _azd_env_set("KEY_VAULT_CREATE_MODE", mode)
    return 0


def postprovision() -> int:
    from datetime import UTC, datetime

    from tools import deploy_keys

    vault, app, group = _env("KEY_VAULT_NAME"), _env("FUNCTION_APP_NAME"), _env("AZURE_RESOURCE_GROUP")
    az = deploy_keys.Azure(os.environ.get("AZURE_SUBSCRIPTION_ID") or None)
    graph_app = os.environ.get("GRAPH_APP_CLIENT_ID", "")
    print("Keys (Key Vault):")
    try:
        made = deploy_keys.generate_keys(az, vault, datetime.now(UTC))
        # The app reads the Graph app id through a Key Vault reference to a secret this deployment
        # may just have written; App Service fetches references again only daily or when asked.
        changed = graph_app != os.environ.get(APPLIED_GRAPH_APP, "")
        if made or changed:
            why = " and ".join(
                (["new keys"] if made else []) + ([f"Graph app {graph_app or '(none)'}"] if changed else [])
            )
            deploy_keys.refresh_and_restart(az, app, group, why)
            _azd_env_set(APPLIED_GRAPH_APP, graph_app)
        else:
            print(f"  {app}: not restarted (no new key, the same Graph app)")
    except deploy_keys.DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"The admin key: az keyvault secret show --vault-name {vault} --name admin-api-key --query value -o tsv")
    return 0


def _hooks_python() -> Path:
    """The Python of .tools/azd-hooks, with tools/requirements-azd.txt installed (made once, and
    again when that file changes)."""
    python = HOOKS_ENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = HOOKS_ENV / ".installed"
    wanted = hashlib.sha256(HOOKS_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return python
    print(
        f"  installing what the hooks import ({HOOKS_REQUIREMENTS.relative_to(ROOT)}) "
        f"into {HOOKS_ENV.relative_to(ROOT)}"
    )
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(HOOKS_ENV)], capture_output=True, text=True)
    if made.returncode != 0:
        raise HookError(
            f"cannot make a virtual environment with {sys.executable} ({_first_line(made.stderr)}): "
            "on Debian or Ubuntu install python3.11-venv"
        )
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, "-r", str(HOOKS_REQUIREMENTS)], capture_output=True, text=True)
    if installed.returncode != 0:
        raise HookError(f"cannot install {HOOKS_REQUIREMENTS.name}: {_first_line(installed.stderr)}")
    stamp.write_text(wanted, encoding="utf-8")
    return python


def _npm_tools() -> None:
    """The npm tools of package-lock.json (the Teams manifest schemas among them), installed with
    `npm ci` unless the locked version is there."""
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"]["node_modules/@microsoft/app-manifest"]["version"]
    installed = ROOT / "node_modules" / "@microsoft" / "app-manifest" / "package.json"
    if installed.exists() and json.loads(installed.read_text(encoding="utf-8")).get("version") == locked:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise HookError(
            "npm is needed to build the Teams app package (the manifest schemas come from the npm package "
            "@microsoft/app-manifest, pinned in package-lock.json): install Node.js 20 or later with npm, "
            "then run `azd hooks run postdeploy`"
        )
    print("  installing the npm tools of package-lock.json (npm ci)")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT)
    if done.returncode != 0:
        raise HookError(f"npm ci failed (exit code {done.returncode})")


def postdeploy() -> int:
    try:
        _npm_tools()
        if Path(sys.prefix).resolve() != HOOKS_ENV.resolve():
            python = _hooks_python()
            return subprocess.run([str(python), "-m", "tools.azd_hooks", "postdeploy"], cwd=ROOT).returncode
    except HookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _postdeploy()


def _postdeploy() -> int:
    from tools import build_app_package

    host = _env("FUNCTION_APP_HOST_NAME")
    url = os.environ.get("CONNECTOR_URL") or f"https://{host}"
    package = ROOT / "build" / "appPackage.zip"
    code = build_app_package.main(["--bot-app-id", _env("BOT_APP_ID"), "--app-host", host, "--out", str(package)])
    if code != 0:
        return code
    vault = _env("KEY_VAULT_NAME")
    if os.environ.get("GRAPH_APP_REGISTRATION") == "create":
        connect = (
            f"  3. Connect the tenant: open {url}/api/connect?method=bot&admin_key=<the admin key> as "
            "a tenant administrator\n"
            "                         (the Graph app this deployment registered has no secret: its credential "
            "is the app's managed identity;\n"
            "                         consenting grants its permissions, listed in docs/CONNECTING.md)\n"
        )
    else:
        connect = (
            "  3. Connect the tenant: Graph is off unless BOT_APP_TYPE is SingleTenant or GRAPH_APP_ID is set;\n"
            "                         `azd env set GRAPH_APP_REGISTRATION create` and `azd up` register a "
            "Graph app with no secret\n"
        )
    print(
        "\nTeams Alert Connector is deployed. Next:\n"
        f'  1. Check it:           curl -H "X-Admin-Key: $(az keyvault secret show --vault-name {vault} --name '
        'admin-api-key --query value -o tsv)" '
        f'"{url}/api/health?deep=1"\n'
        f"  2. Upload the app:     {package.relative_to(ROOT)} in the Teams admin center (Manage apps > "
        "Upload), then add it to a setup policy\n"
        f"{connect}"
        f"  4. Smoke test:         python3 -m tools.smoke_test --host {host} --tenant <the tenant> --vault {vault}\n"
        "  Remove it:             azd down (then read what it says stays)\n"
    )
    return 0


def postdown() -> int:
    """`azd down` deletes the resource group; what it leaves, and how to remove it."""
    vault = os.environ.get("KEY_VAULT_NAME", "")
    graph_app = os.environ.get("GRAPH_APP_CLIENT_ID", "")
    lines = ["", "What `azd down` left:"]
    if vault:
        lines += [
            f"  - Key Vault {vault}: deleted, and kept 90 days by purge protection, which nothing can lift (not "
            "even `azd down --purge`).",
            "    Its name stays taken meanwhile; `azd up` of this environment recovers it, with its keys.",
        ]
    if os.environ.get("GRAPH_APP_REGISTRATION") == "create" and graph_app:
        lines += [
            f"  - The Graph app registration {graph_app} and its service principal: app registrations live in "
            "Microsoft Entra, not in the resource group.",
            "    `azd up` of this environment uses it again. To remove it for good (a deleted registration keeps "
            "its uniqueName, and so blocks",
            "    a new one for this environment, for 30 days unless it is purged):",
            f"      object=$(az ad app show --id {graph_app} --query id -o tsv)",
            f"      az ad app delete --id {graph_app}",
            '      az rest --method delete --url "https://graph.microsoft.com/v1.0/directory/deletedItems/$object"',
        ]
    lines += [
        "  - The Log Analytics workspace: soft-deleted, recoverable for 14 days.",
        "  - The Teams app: remove it in the Teams admin center (Manage apps > Delete) and from its setup policy.",
    ]
    print("\n".join(lines))
    return 0


def prepackage() -> int:
    """Compile the app's code to the bytecode the package carries (tools/bytecode.py), with
    Python 3.11, the runtime's: this interpreter when it is 3.11, else python3.11 from PATH.
    Without one the package goes without it (the app then compiles its code at each cold start)."""
    if sys.version_info[:2] == (3, 11):
        from tools.bytecode import compile_app

        print(f"Compiled {len(compile_app())} modules of the app to bytecode for the package.")
        return 0
    python = shutil.which("python3.11")
    if python is None:
        print(
            "warning: no Python 3.11 found, so the package carries no bytecode of the app and each cold start "
            "compiles it (about 0.2 s); install Python 3.11 to avoid that"
        )
        return 0
    return subprocess.run([python, "-m", "tools.bytecode"], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    steps = {
        "prepackage": prepackage,
        "preprovision": preprovision,
        "postprovision": postprovision,
        "postdeploy": postdeploy,
        "postdown": postdown,
    }
    if len(args) != 1 or args[0] not in steps:
        print(f"usage: python -m tools.azd_hooks {{{'|'.join(steps)}}}", file=sys.stderr)
        return 2
    return steps[args[0]]()


if __name__ == "__main__":
    sys.exit(main())

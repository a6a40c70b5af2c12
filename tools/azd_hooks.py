"""The hooks `azd up` runs (azure.yaml): azd puts the Bicep outputs in the environment.

    python -m tools.azd_hooks preprovision    # a Key Vault deleted with this environment: recover it
    python -m tools.azd_hooks postprovision   # generate the keys into Key Vault, restart the app
    python -m tools.azd_hooks postdeploy      # build the Teams app package, print the next steps

Each step says what it did; none prints a secret.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(
            f"error: {name} is not set: run this through azd (azure.yaml's hooks), which sets the Bicep outputs"
        )
    return value


def preprovision() -> int:
    """Key Vault keeps a deleted vault 90 days (purge protection): an environment deleted and
    created again must recover its vault, or provisioning fails on the name."""
    env_name = _env("AZURE_ENV_NAME")
    mode = "default"
    az = shutil.which("az")
    if az is None:
        print("  az not found: cannot look for a deleted Key Vault of this environment; creating a new one")
    else:
        query = f"[?properties.tags.\"azd-env-name\"=='{env_name}'].name"
        done = subprocess.run(
            [az, "keyvault", "list-deleted", "--resource-type", "vault", "--query", query, "-o", "tsv"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode == 0 and done.stdout.strip():
            mode = "recover"
            print(
                f"  Key Vault {done.stdout.split()[0]} of environment {env_name} was deleted: it is recovered, "
                "with its keys"
            )
        elif done.returncode != 0:
            print(
                f"  cannot list deleted Key Vaults ({(done.stderr.strip().splitlines() or [''])[0][:200]}); "
                "creating a new one"
            )
    azd = shutil.which("azd")
    if azd is not None:
        subprocess.run([azd, "env", "set", "KEY_VAULT_CREATE_MODE", mode], check=True, timeout=60)
    return 0


def postprovision() -> int:
    from tools import deploy_keys

    print("Keys (Key Vault):")
    return deploy_keys.main(
        [
            "--vault",
            _env("KEY_VAULT_NAME"),
            "--app",
            _env("FUNCTION_APP_NAME"),
            "--resource-group",
            _env("AZURE_RESOURCE_GROUP"),
        ]
    )


def postdeploy() -> int:
    from tools import build_app_package

    host = _env("FUNCTION_APP_HOST_NAME")
    package = ROOT / "build" / "appPackage.zip"
    code = build_app_package.main(["--bot-app-id", _env("BOT_APP_ID"), "--app-host", host, "--out", str(package)])
    if code != 0:
        return code
    vault = _env("KEY_VAULT_NAME")
    if os.environ.get("GRAPH_APP_REGISTRATION") == "create":
        connect = (
            f"  3. Connect the tenant: open https://{host}/api/connect?method=bot&admin_key=<the admin key> as "
            "a tenant administrator\n"
            "                         (the Graph app this deployment registered has no secret: its credential "
            "is the app's managed identity;\n"
            "                         consenting grants its permissions, listed in the README's Connecting a tenant)\n"
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
        f'"https://{host}/api/health?deep=1"\n'
        f"  2. Upload the app:     {package.relative_to(ROOT)} in the Teams admin center (Manage apps > "
        "Upload), then add it to a setup policy\n"
        f"{connect}"
        f"  4. Smoke test:         python3 -m tools.smoke_test --host {host} --tenant <the tenant> --vault {vault}\n"
        "  Remove everything:     azd down --purge\n"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    steps = {"preprovision": preprovision, "postprovision": postprovision, "postdeploy": postdeploy}
    if len(args) != 1 or args[0] not in steps:
        print(f"usage: python -m tools.azd_hooks {{{'|'.join(steps)}}}", file=sys.stderr)
        return 2
    return steps[args[0]]()


if __name__ == "__main__":
    sys.exit(main())

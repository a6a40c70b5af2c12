"""Generate the connector's keys straight into Key Vault, after provisioning.

    python -m tools.deploy_keys --vault KEY_VAULT_NAME [--app FUNCTION_APP_NAME --resource-group GROUP]

For each key the app reads through a Key Vault reference (the token encryption key, the consent
state signing key, the admin API key), a missing secret is generated here and written with
``az keyvault secret set`` from a private temporary file that is removed at once: the value never
appears on a command line, in the shell history, in a log or in the repository. A secret that
exists is left alone (stored tokens stay readable). With ``--app``, the function app is
restarted so that its Key Vault references resolve now rather than within the day.

Needs the Azure CLI signed in with Key Vault Secrets Officer on the vault (the Bicep grants it
to ``deployerPrincipalId``; azd passes the signed-in user). ``azd up`` runs this after
provisioning. Prints what it did, never a value; the admin key is read with the command it
prints.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta

# Secret names: infra/app/keyvault.bicep (the app settings reference them).
KEYS = {
    "token-encryption-key": "encrypts stored delegated tokens",
    "state-signing-key": "signs the consent state",
    "admin-api-key": "admin credential of /api/connect and the operator routes",
}
EXPIRES_DAYS = 365


class DeployError(Exception):
    pass


def _az(*args: str) -> subprocess.CompletedProcess[str]:
    az = shutil.which("az")
    if az is None:
        raise DeployError("the Azure CLI (az) is needed: https://learn.microsoft.com/cli/azure/install-azure-cli")
    return subprocess.run([az, *args], capture_output=True, text=True, timeout=120)


def secret_exists(vault: str, name: str) -> bool:
    done = _az("keyvault", "secret", "show", "--vault-name", vault, "--name", name, "--query", "id", "-o", "tsv")
    if done.returncode == 0:
        return bool(done.stdout.strip())
    if "SecretNotFound" in done.stderr or "was not found" in done.stderr:
        return False
    raise DeployError(f"cannot read secret {name} of vault {vault}: {_first_line(done.stderr)}")


def new_value(name: str) -> str:
    from shared.security import new_key

    return new_key()  # urlsafe base64 of 32 random bytes, the format every key setting takes


def write_secret(vault: str, name: str, value: str, now: datetime) -> None:
    expires = (now + timedelta(days=EXPIRES_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    handle, path = tempfile.mkstemp(prefix="tac-key-")
    try:
        os.chmod(path, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(value)
        done = _az(
            "keyvault",
            "secret",
            "set",
            "--vault-name",
            vault,
            "--name",
            name,
            "--file",
            path,
            "--encoding",
            "utf-8",
            "--content-type",
            "text/plain; urlsafe base64 of 32 random bytes",
            "--expires",
            expires,
            "--query",
            "id",
            "-o",
            "tsv",
        )
    finally:
        os.unlink(path)
    if done.returncode != 0:
        raise DeployError(f"cannot write secret {name} to vault {vault}: {_first_line(done.stderr)}")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no message)"])[0][:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--vault",
        default=os.environ.get("KEY_VAULT_NAME"),
        help="Key Vault name (default: $KEY_VAULT_NAME, an azd output)",
    )
    parser.add_argument(
        "--app",
        default=os.environ.get("FUNCTION_APP_NAME"),
        help="function app to restart (default: $FUNCTION_APP_NAME)",
    )
    parser.add_argument(
        "--resource-group",
        default=os.environ.get("AZURE_RESOURCE_GROUP"),
        help="its resource group (default: $AZURE_RESOURCE_GROUP)",
    )
    args = parser.parse_args(argv)
    if not args.vault:
        print("error: name the vault with --vault (or set KEY_VAULT_NAME)", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    try:
        made = []
        for name, purpose in KEYS.items():
            if secret_exists(args.vault, name):
                print(f"  {name}: kept (it exists; {purpose})")
                continue
            write_secret(args.vault, name, new_value(name), now)
            made.append(name)
            print(f"  {name}: generated and stored ({purpose}; expires in {EXPIRES_DAYS} days)")
        if made and args.app and args.resource_group:
            done = _az("functionapp", "restart", "--name", args.app, "--resource-group", args.resource_group)
            if done.returncode != 0:
                raise DeployError(f"cannot restart {args.app}: {_first_line(done.stderr)}")
            print(f"  {args.app}: restarted, so its Key Vault references resolve now")
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"The admin key: az keyvault secret show --vault-name {args.vault} --name admin-api-key --query value -o tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

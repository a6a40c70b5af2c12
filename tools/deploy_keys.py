"""Generate the connector's keys straight into Key Vault, after provisioning.

    python -m tools.deploy_keys --vault KEY_VAULT_NAME [--app FUNCTION_APP_NAME --resource-group GROUP]
                                [--subscription SUBSCRIPTION_ID]

For each key the app reads through a Key Vault reference (the token encryption key, the consent
state signing key, the admin API key), a missing secret is generated here and written with
``az keyvault secret set`` from a private temporary file that is removed at once: the value never
appears on a command line, in the shell history, in a log or in the repository. A secret that
exists is left alone (stored tokens stay readable). With ``--app``, when a key was generated, the
function app's Key Vault references are refreshed and the app restarted, so they resolve now
rather than within the day.

Needs the Azure CLI signed in with Key Vault Secrets Officer on the vault (the Bicep grants it
to ``deployerPrincipalId``; azd passes the signed-in user). A role granted in the same deployment
takes a few minutes to apply: while Key Vault answers 403, this waits and tries again, up to
ten minutes, and says so. ``azd up`` runs this after provisioning. Prints what it did, never a
value; the admin key is read with the command it prints. Standard library only: the azd hooks
run it on a bare Python.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

# Secret names: infra/app/keyvault.bicep (the app settings reference them).
KEYS = {
    "token-encryption-key": "encrypts stored delegated tokens",
    "state-signing-key": "signs the consent state",
    "admin-api-key": "admin credential of /api/connect and the operator routes",
}
EXPIRES_DAYS = 365
KEY_BYTES = 32  # the format of every key setting: urlsafe base64 of 32 random bytes (shared/security.py)
# Key Vault's RBAC guide: a role assignment takes a few minutes to apply (its earlier version:
# "up to 10 minutes"). A 403 within that time is the role not applied yet, not a refusal.
ROLE_WAIT_SECONDS = 600
ROLE_RETRY_SECONDS = 20
# App Service, "Use Key Vault references": references are fetched again every 24 hours, or at once
# on a POST to .../config/configreferences/appsettings/refresh.
REFERENCES_API_VERSION = "2022-03-01"


class DeployError(Exception):
    pass


class Azure:
    """The Azure CLI, with the subscription every call is made in and the wait for a role."""

    def __init__(
        self,
        subscription: str | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.subscription = subscription
        self.sleep = sleep
        self.clock = clock

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        az = shutil.which("az")
        if az is None:
            raise DeployError("the Azure CLI (az) is needed: https://learn.microsoft.com/cli/azure/install-azure-cli")
        extra = ["--subscription", self.subscription] if self.subscription and args[0] != "rest" else []
        return subprocess.run([az, *args, *extra], capture_output=True, text=True, timeout=120)

    def vault(self, vault: str, *args: str) -> subprocess.CompletedProcess[str]:
        """A Key Vault data call, tried again while the caller's role is not applied yet."""
        deadline = self.clock() + ROLE_WAIT_SECONDS
        told = False
        while True:
            done = self.run(*args)
            if done.returncode == 0 or not _forbidden(done.stderr):
                return done
            left = deadline - self.clock()
            if left <= 0:
                raise DeployError(
                    f"Key Vault {vault} still refuses access after {ROLE_WAIT_SECONDS // 60} minutes "
                    f"({_first_line(done.stderr)}): check that you hold Key Vault Secrets Officer on it (the "
                    "deployment grants it to deployerPrincipalId, the signed-in user under azd), then run "
                    "`azd provision` again"
                )
            if not told:
                print(
                    f"  Key Vault {vault} answers 403: waiting for the Key Vault Secrets Officer role this "
                    f"deployment granted to apply (a few minutes), trying every {ROLE_RETRY_SECONDS} s for up to "
                    f"{ROLE_WAIT_SECONDS // 60} minutes",
                    flush=True,
                )
                told = True
            self.sleep(min(ROLE_RETRY_SECONDS, left))


def _forbidden(stderr: str) -> bool:
    return "ForbiddenByRbac" in stderr or "(Forbidden)" in stderr or "Code: Forbidden" in stderr


def secret_exists(az: Azure, vault: str, name: str) -> bool:
    done = az.vault(
        vault, "keyvault", "secret", "show", "--vault-name", vault, "--name", name, "--query", "id", "-o", "tsv"
    )
    if done.returncode == 0:
        return bool(done.stdout.strip())
    if "SecretNotFound" in done.stderr or "was not found" in done.stderr:
        return False
    raise DeployError(f"cannot read secret {name} of vault {vault}: {_first_line(done.stderr)}")


def new_value(name: str) -> str:
    return secrets.token_urlsafe(KEY_BYTES)  # urlsafe base64 of 32 random bytes, unpadded


def write_secret(az: Azure, vault: str, name: str, value: str, now: datetime) -> None:
    expires = (now + timedelta(days=EXPIRES_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    handle, path = tempfile.mkstemp(prefix="tac-key-")
    try:
        os.chmod(path, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(value)
        done = az.vault(
            vault,
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


def generate_keys(az: Azure, vault: str, now: datetime) -> list[str]:
    """Write every missing key; the names of those written."""
    made = []
    for name, purpose in KEYS.items():
        if secret_exists(az, vault, name):
            print(f"  {name}: kept (it exists; {purpose})")
            continue
        write_secret(az, vault, name, new_value(name), now)
        made.append(name)
        print(f"  {name}: generated and stored ({purpose}; expires in {EXPIRES_DAYS} days)")
    return made


def refresh_and_restart(az: Azure, app: str, resource_group: str, why: str) -> None:
    """Fetch the app's Key Vault references again, then restart it, so they resolve now."""
    subscription = az.subscription
    if not subscription:
        done = az.run("account", "show", "--query", "id", "-o", "tsv")
        subscription = done.stdout.strip() if done.returncode == 0 else ""
    if subscription:
        url = (
            f"https://management.azure.com/subscriptions/{subscription}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.Web/sites/{app}/config/configreferences/appsettings/refresh"
            f"?api-version={REFERENCES_API_VERSION}"
        )
        done = az.run("rest", "--method", "post", "--url", url)
        if done.returncode != 0:
            print(f"  {app}: could not ask for its Key Vault references again ({_first_line(done.stderr)})")
    done = az.run("functionapp", "restart", "--name", app, "--resource-group", resource_group)
    if done.returncode != 0:
        raise DeployError(f"cannot restart {app}: {_first_line(done.stderr)}")
    print(f"  {app}: Key Vault references refreshed and the app restarted ({why}), so they resolve now")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no message)"])[0][:300]


def main(
    argv: list[str] | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
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
    parser.add_argument(
        "--subscription",
        default=os.environ.get("AZURE_SUBSCRIPTION_ID"),
        help="subscription of the vault and the app (default: $AZURE_SUBSCRIPTION_ID, else az's default)",
    )
    args = parser.parse_args(argv)
    if not args.vault:
        print("error: name the vault with --vault (or set KEY_VAULT_NAME)", file=sys.stderr)
        return 2
    az = Azure(args.subscription, sleep=sleep, clock=clock)
    try:
        made = generate_keys(az, args.vault, datetime.now(UTC))
        if made and args.app and args.resource_group:
            refresh_and_restart(az, args.app, args.resource_group, "new keys")
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"The admin key: az keyvault secret show --vault-name {args.vault} --name admin-api-key --query value -o tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""After a deployment: does an alert reach Teams and follow its changes? A test alert goes in
through the ingest route (which queues it on the real Service Bus queue), the operator routes
say where its cards went, then its resolution follows and the cards must show it.

    python -m tools.smoke_test --host func-tac-abc.azurewebsites.net --tenant <tenant id> [--vault kv-tac-abc]

The admin key comes from ``ADMIN_API_KEY`` or, with ``--vault``, from Key Vault (read into this
process only; never printed). Prints each step; exit code 0 when a card was posted and then
updated to resolved, 1 otherwise (saying where it stopped), 2 for a usage error. The test
alert (severity info, id ``SMOKE-…``) ends resolved, so it is removed with the other resolved
alerts after the retention period.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

SOURCE = "smoke-test"
POLL_SECONDS = 2.0


class SmokeError(Exception):
    pass


def _request(method: str, url: str, headers: dict[str, str], body: dict | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={**headers, **({"content-type": "application/cloudevents+json"} if data else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}
    except (urllib.error.URLError, TimeoutError) as error:
        raise SmokeError(f"{url.split('?')[0]} cannot be reached: {getattr(error, 'reason', error)}") from None


def admin_key_from_vault(vault: str) -> str:
    az = shutil.which("az")
    if az is None:
        raise SmokeError("--vault needs the Azure CLI (az)")
    done = subprocess.run(
        [
            az,
            "keyvault",
            "secret",
            "show",
            "--vault-name",
            vault,
            "--name",
            "admin-api-key",
            "--query",
            "value",
            "-o",
            "tsv",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise SmokeError(
            f"cannot read admin-api-key from vault {vault}: {(done.stderr.strip().splitlines() or ['empty'])[0][:200]}"
        )
    return done.stdout.strip()


def event(alert_id: str, tenant: str, status: str, version: int) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "specversion": "1.0",
        "id": f"{alert_id}-{status}",
        "source": f"urn:teams-alert-connector:{SOURCE}",
        "type": f"alert.{status}",
        "time": now,
        "tenantid": tenant,
        "data": {
            "id": alert_id,
            "title": "Teams Alert Connector smoke test",
            "severity": "info",
            "version": version,
            "description": "A test alert sent by tools/smoke_test.py after a deployment; it resolves itself.",
        },
    }


def wait_for_cards(
    base: str, tenant: str, key: str, alert_id: str, revision_at_least: int, seconds: float, out: TextIO
) -> dict[str, Any]:
    """The alert once every card shows at least ``revision_at_least`` (or the time is up)."""
    url = f"{base}/api/tenants/{urllib.parse.quote(tenant)}/alerts/{urllib.parse.quote(alert_id)}"
    deadline = time.monotonic() + seconds
    while True:
        status, alert = _request("GET", url, {"X-Admin-Key": key})
        if (
            status == 200
            and alert.get("cards")
            and all(
                c["status"] != "in flight" and (c["status"] == "failed" or c["renderedRevision"] >= revision_at_least)
                for c in alert["cards"]
            )
        ):
            return alert
        if status not in (200, 404):
            raise SmokeError(f"GET {url.split('?')[0]} answered {status}: {alert.get('error', alert)}")
        if time.monotonic() >= deadline:
            if status == 404:
                raise SmokeError(
                    f"the alert never arrived within {seconds:.0f} s: look at GET /api/events/rejected and the "
                    "alert-events queue"
                )
            return alert
        time.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m tools.smoke_test", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", required=True, help="the function app's host name (FUNCTION_APP_HOST_NAME), or a full URL"
    )
    parser.add_argument("--tenant", required=True, help="a connected tenant where the bot is installed")
    parser.add_argument("--vault", help="read the admin key from this Key Vault (else ADMIN_API_KEY)")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for each step (default 120)")
    args = parser.parse_args(argv)
    base = args.host if args.host.startswith(("http://", "https://")) else f"https://{args.host}"
    base = base.rstrip("/")
    try:
        master = admin_key_from_vault(args.vault) if args.vault else os.environ.get("ADMIN_API_KEY", "")
        if not master:
            print("error: set ADMIN_API_KEY or pass --vault", file=sys.stderr)
            return 2
        from shared.security import ingest_key, tenant_admin_key

        tenant_key = tenant_admin_key(master, args.tenant)
        alert_id = f"SMOKE-{uuid.uuid4().hex[:8].upper()}"
        ingest = f"{base}/api/events/cloudevents?" + urllib.parse.urlencode({"tenant": args.tenant, "source": SOURCE})
        headers = {"X-Ingest-Key": ingest_key(master, args.tenant, SOURCE)}

        status, answer = _request("POST", ingest, headers, event(alert_id, args.tenant, "created", 1))
        if status != 202:
            raise SmokeError(f"the ingest route refused the test alert ({status}): {answer.get('error', answer)}")
        print(f"1. test alert {alert_id} queued (ingest route, then Service Bus)", file=out, flush=True)
        alert = wait_for_cards(base, args.tenant, tenant_key, alert_id, 1, args.wait, out)
        posted = [c for c in alert.get("cards", []) if c["status"] == "posted"]
        for card in alert.get("cards", []):
            print(
                f"   card in {card['conversationId']}: {card['status']}"
                + (f" ({card['failure']})" if card.get("failure") else ""),
                file=out,
            )
        if not posted:
            raise SmokeError(
                "no card was posted: is the bot installed in a team or chat of this tenant? (GET "
                "/api/tenants/{t}/undeliverable says more)"
            )
        print(f"2. {len(posted)} card(s) posted", file=out, flush=True)

        status, answer = _request("POST", ingest, headers, event(alert_id, args.tenant, "resolved", 2))
        if status != 202:
            raise SmokeError(f"the ingest route refused the resolution ({status}): {answer.get('error', answer)}")
        alert = wait_for_cards(base, args.tenant, tenant_key, alert_id, alert.get("revision", 1) + 1, args.wait, out)
        behind = [
            c for c in alert.get("cards", []) if c["status"] == "posted" and c["renderedRevision"] < alert["revision"]
        ]
        if alert.get("status") != "resolved" or behind:
            raise SmokeError(
                f"the resolution did not reach every card within {args.wait:.0f} s (alert "
                f"{alert.get('status')}, {len(behind)} card(s) behind)"
            )
        print("3. resolved: every card updated in place", file=out, flush=True)
    except SmokeError as exc:
        print(f"FAILED: {exc}", file=out, flush=True)
        return 1
    print("Smoke test passed.", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

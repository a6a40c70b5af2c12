"""``python -m tools.publish``: post JSON files to the local connector as an alert source
would (its ingest route), send them to a queue of the local host, or save a workflow.

    python -m tools.publish FILE [FILE...] [--tenant T] [--source NAME] [--key KEY] [--http FORMAT]
                            [--host URL] [--wait SECONDS]
    python -m tools.publish FILE [FILE...] --queue [--queue-name NAME] [--host URL] [--wait SECONDS]

By default each event file is posted to ``/api/events/FORMAT``, the format read from the
payload (CloudEvents, Alertmanager, Grafana, Azure Monitor, PagerDuty; ``--http FORMAT`` names
it), for the tenant the payload names (a CloudEvent's ``tenantid``), else ``--tenant``, else the
tenant ``make run`` connected; the key is ``--key``, else it is derived from ``ADMIN_API_KEY``
for the tenant and source. A workflow definition (``examples/workflows/``) is saved for that
tenant through ``PUT /api/tenants/{tenant}/workflows/{id}`` with the tenant's admin key.
``--queue`` sends the files to the queue as they are, one message each.

Then (unless ``--wait 0``) it prints what became of each event, as the connector reported it:
processed / duplicate / stale / rejected with the reason, and then each card it led to (posted
or updated, and where; or refused by Teams, with the reason), or why no card was sent. Exit
code 0 when every event was processed (or without waiting), 1 when an event was refused or
rejected, a message was dead-lettered or did not finish in time, or a card was refused; 2 for
a usage error or an unreachable host.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from tools.localhost.settings import lookup_setting

DEFAULT_HOST = "http://127.0.0.1:7071"
# Written by `make run`: the host it started and its keys (see tools/run_local.py).
RUN_FILE = Path(__file__).resolve().parents[1] / ".local" / "run.json"


def _run_file() -> dict[str, Any]:
    try:
        return json.loads(RUN_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def default_host() -> str:
    """The host `make run` started (its port may be another than 7071), else 127.0.0.1:7071."""
    return _run_file().get("host") or DEFAULT_HOST


#: The app setting naming the inbound queue, and its fallback.
QUEUE_SETTING = "ALERT_EVENTS_QUEUE"
DEFAULT_QUEUE = "alert-events"
DELIVERY_QUEUE_SETTING = "DELIVERY_QUEUE"
DEFAULT_DELIVERY_QUEUE = "teams-deliveries"
SETTLED = ("completed", "deadlettered")
POLL_INTERVAL_SECONDS = 0.2
REQUEST_TIMEOUT_SECONDS = 10
START_HINT = "make run"


class PublishError(Exception):
    """A file cannot be sent or the local host cannot be reached."""


def default_queue() -> str:
    """ALERT_EVENTS_QUEUE from the environment or local.settings(.sample).json, else alert-events."""
    return lookup_setting(QUEUE_SETTING) or DEFAULT_QUEUE


def _request(
    host: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    headers = dict(headers or {})
    token = _run_file().get("hostToken")
    if token and path.startswith("/_localhost/"):
        headers.setdefault("X-Local-Token", str(token))  # this run's token: the host's writes need it
    request = urllib.request.Request(host.rstrip("/") + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise PublishError(
            f"cannot reach the local host at {host} ({reason}): is the local host running? start it with: {START_HINT}"
        ) from None


def publish_file(path: Path, *, queue: str, host: str) -> str:
    """Send one JSON file as a message and return its message id."""
    body, _ = read_payload(path)
    status, answer = _request(
        host,
        "POST",
        f"/_localhost/queues/{urllib.parse.quote(queue, safe='')}/messages",
        body,
        {"content-type": "application/json"},
    )
    if status != 201 or "messageId" not in answer:
        raise PublishError(f"{path}: the local host refused the message (HTTP {status}: {answer.get('error', answer)})")
    return str(answer["messageId"])


def describe_outcome(message: dict[str, Any], waited: float) -> str:
    """One line for a message status returned by the management API."""
    count = message.get("deliveryCount", 0)
    deliveries = f"{count} deliver{'y' if count == 1 else 'ies'}"
    if message.get("status") == "completed":
        return f"completed after {deliveries}"
    if message.get("status") == "deadlettered":
        return (
            f"dead-lettered after {deliveries}: {message.get('deadLetterReason')} "
            f"({message.get('deadLetterErrorDescription')})"
        )
    if message.get("lastError"):
        return f"still retrying after {waited:.0f} s ({deliveries}, last error: {message['lastError']})"
    if not message.get("hasTrigger", True):
        return f"waiting: no function is triggered by queue {message.get('queue')!r}"
    return f"not processed yet after {waited:.0f} s"


def wait_for_message(message_id: str, *, queue: str, host: str, seconds: float) -> tuple[dict[str, Any] | None, float]:
    """Poll the message status until it is settled or ``seconds`` pass: (its status, seconds waited)."""
    path = f"/_localhost/queues/{urllib.parse.quote(queue, safe='')}/messages/{urllib.parse.quote(message_id, safe='')}"
    started = time.monotonic()
    while True:
        status, message = _request(host, "GET", path)
        if status != 200:
            return None, time.monotonic() - started
        waited = time.monotonic() - started
        if message.get("status") in SETTLED or waited >= seconds:
            return message, waited
        time.sleep(POLL_INTERVAL_SECONDS)


def event_lines(message: dict[str, Any]) -> tuple[list[str], bool]:
    """What the connector said of each event in a settled message: (lines, all processed)."""
    lines, ok = [], True
    for outcome in message.get("outcomes") or []:
        if outcome.get("kind") != "event":
            continue
        what = f"event {outcome.get('eventId') or '(no id)'}" + (
            f" for alert {outcome['alertId']}" if outcome.get("alertId") else ""
        )
        result = outcome.get("result")
        if result == "rejected":
            ok = False
            lines.append(f"{what}: REJECTED: {outcome.get('detail')}")
        elif result in ("duplicate", "stale"):
            lines.append(f"{what}: {result}: {outcome.get('detail') or 'nothing to do'}")
        else:
            detail = f"; {outcome['detail']}" if outcome.get("detail") else ""
            lines.append(f"{what}: processed, {outcome.get('queued', 0)} delivery job(s) queued{detail}")
            for unreachable in outcome.get("undeliverable") or []:
                ok = False
                lines.append(f"  undeliverable: {unreachable}")
    return lines, ok


def follow_cards(alert_ids: set[str], since: str, *, host: str, queue: str, seconds: float) -> tuple[list[str], bool]:
    """The cards the delivery jobs of these alerts (queued at or after ``since``) sent: waits
    until every such job is settled or ``seconds`` pass. (lines, no card refused)."""
    path = f"/_localhost/queues/{urllib.parse.quote(queue, safe='')}/messages"
    started = time.monotonic()
    while True:
        status, found = _request(host, "GET", path)
        if status != 200:
            return [f"  cards: the deliveries queue {queue!r} is unknown to the local host"], False
        jobs = [m for m in found if m.get("enqueuedTimeUtc", "") >= since and _job_alert(m) in alert_ids]
        if all(m.get("status") in SETTLED for m in jobs) or time.monotonic() - started >= seconds:
            break
        time.sleep(POLL_INTERVAL_SECONDS)
    lines, ok, seen = [], True, set()
    for job in jobs:
        for outcome in job.get("outcomes") or []:
            key = (outcome.get("result"), outcome.get("conversationId"), outcome.get("revision"))
            if outcome.get("kind") != "card" or outcome.get("alertId") not in alert_ids or key in seen:
                continue
            seen.add(key)
            if outcome.get("result") == "refused":
                ok = False
                lines.append(f"  card REFUSED in {outcome.get('conversation')}: {outcome.get('reason')}")
            else:
                lines.append(
                    f"  card of {outcome['alertId']} {outcome['result']} in {outcome.get('conversation')} "
                    f"({outcome.get('status')})"
                )
        if job.get("status") == "deadlettered":
            ok = False
            lines.append(
                f"  delivery job {job.get('messageId')} dead-lettered: {job.get('deadLetterErrorDescription')}"
            )
        elif job.get("status") not in SETTLED:
            when = f" (scheduled for {job['scheduledEnqueueTimeUtc']})" if job.get("scheduledEnqueueTimeUtc") else ""
            lines.append(f"  delivery job {job.get('messageId')} still waiting{when}")
    if jobs and not lines:
        lines.append("  cards: already up to date (nothing sent)")
    return lines, ok


def _job_alert(message: dict[str, Any]) -> str | None:
    try:
        return (json.loads(message.get("body") or "{}").get("alert") or {}).get("alertId")
    except (ValueError, AttributeError):
        return None


def report_message(path: Path, message_id: str, *, queue: str, host: str, seconds: float, out: TextIO) -> bool:
    """Wait for one message and print what became of it; True when all went well."""
    message, waited = wait_for_message(message_id, queue=queue, host=host, seconds=seconds)
    if message is None:
        print(f"{path}: {message_id} unknown to the local host", file=out, flush=True)
        return False
    if message.get("status") != "completed":
        print(f"{path}: {message_id} {describe_outcome(message, waited)}", file=out, flush=True)
        return False
    lines, ok = event_lines(message)
    for line in lines or [f"{message_id} {describe_outcome(message, waited)}; no event outcome was reported"]:
        print(f"{path}: {line}", file=out, flush=True)
    alerts = {
        o["alertId"]
        for o in message.get("outcomes") or []
        if o.get("kind") == "event" and o.get("queued") and o.get("alertId")
    }
    if alerts:
        deliveries = lookup_setting(DELIVERY_QUEUE_SETTING) or DEFAULT_DELIVERY_QUEUE
        card_lines, cards_ok = follow_cards(
            alerts, message.get("enqueuedTimeUtc", ""), host=host, queue=deliveries, seconds=seconds
        )
        for line in card_lines:
            print(f"{path}: {line}", file=out, flush=True)
        ok = ok and cards_ok
    return ok


def post_file(body: bytes, *, fmt: str, tenant: str, source: str, key: str, host: str) -> tuple[bool, str, list[str]]:
    """Post a payload to the ingest route; (accepted, one line saying what happened, the ids of
    the events it queued)."""
    query = urllib.parse.urlencode({"tenant": tenant, "source": source})
    status, answer = _request(
        host,
        "POST",
        f"/api/events/{urllib.parse.quote(fmt, safe='')}?{query}",
        body,
        {"content-type": "application/json", "X-Ingest-Key": key},
    )
    if status == 202:
        ids = [str(i) for i in answer.get("eventIds", [])]
        return True, f"accepted (HTTP 202) as {fmt}: {len(ids)} event(s) queued: {', '.join(ids)}", ids
    return False, _refusal(status, answer), []


def _refusal(status: int, answer: dict[str, Any], word: str = "refused") -> str:
    """A route's refusal, with the field it names."""
    field = f" [{answer['field']}]" if answer.get("field") else ""
    return f"{word} (HTTP {status}){field}: {answer.get('error', answer)}"


def _admin_key(purpose: str) -> str:
    """ADMIN_API_KEY from the environment or local settings, else the one `make run` made."""
    admin = lookup_setting("ADMIN_API_KEY") or _run_file().get("keys", {}).get("ADMIN_API_KEY")
    if not admin:
        raise PublishError(f"ADMIN_API_KEY is not set (environment or local settings) to derive {purpose}")
    return str(admin)


def _queued(host: str, queue: str) -> list[dict[str, Any]] | None:
    """The queue's messages, None when the host has no such queue (nothing to follow)."""
    status, found = _request(host, "GET", f"/_localhost/queues/{urllib.parse.quote(queue, safe='')}/messages")
    return found if status == 200 and isinstance(found, list) else None


def _event_id(message: dict[str, Any]) -> str | None:
    try:
        body = json.loads(message.get("body") or "{}")
    except ValueError:
        return None
    return str(body.get("id")) if isinstance(body, dict) and body.get("id") is not None else None


def read_payload(path: Path) -> tuple[bytes, Any]:
    """The file's bytes, and what they hold as JSON."""
    try:
        body = path.read_bytes()
        return body, json.loads(body)
    except FileNotFoundError:
        raise PublishError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PublishError(f"{path}: is a directory, not a JSON file") from None
    except OSError as error:
        raise PublishError(f"{path}: cannot be read ({error})") from None
    except ValueError as error:
        raise PublishError(f"{path}: not valid JSON ({error})") from None


def is_workflow(payload: Any) -> bool:
    """A workflow definition (schemas/workflow.schema.json), not an event."""
    return (
        isinstance(payload, dict)
        and "specversion" not in payload
        and "id" in payload
        and ("recipients" in payload or "trigger" in payload)
    )


def detect_format(payload: Any) -> str | None:
    """The ingest format that reads this payload, None when none does."""
    from shared.domain.inbound import claimants

    found = claimants(payload)
    return found[0].name if len(found) == 1 else None


def tenant_for(payload: Any, given: str | None) -> str:
    """The tenant to post for: a CloudEvent's own ``tenantid``, else ``--tenant``, else the one
    ``make run`` connected, else DEFAULT_TENANT_ID."""
    named = payload.get("tenantid") if isinstance(payload, dict) else None
    tenant = str(named or given or _run_file().get("tenant") or lookup_setting("DEFAULT_TENANT_ID") or "")
    if not tenant:
        raise PublishError(
            "no tenant to post for: give --tenant (make run connects the Playground's tenant and writes it "
            "to .local/run.json; is it running?)"
        )
    return tenant


def save_workflow(path: Path, payload: dict[str, Any], *, tenant: str, host: str, out: TextIO) -> bool:
    """PUT a workflow definition for the tenant with its admin key; print the answer."""
    from shared.security import tenant_admin_key

    admin = _admin_key("the tenant's admin key")
    workflow = urllib.parse.quote(str(payload["id"]), safe="")
    status, answer = _request(
        host,
        "PUT",
        f"/api/tenants/{urllib.parse.quote(tenant, safe='')}/workflows/{workflow}",
        json.dumps(payload).encode(),
        {"content-type": "application/json", "X-Admin-Key": tenant_admin_key(admin, tenant)},
    )
    if status in (200, 201):
        verb = "saved" if answer.get("changed", True) else "unchanged"
        extra = "; the open alerts it takes are queued to its recipients" if answer.get("existingAlertsQueued") else ""
        print(
            f"{path}: workflow {payload['id']} {verb} for tenant {tenant} (revision {answer.get('revision')}){extra}",
            file=out,
            flush=True,
        )
        return True
    print(f"{path}: workflow {_refusal(status, answer, 'REFUSED')}", file=out, flush=True)
    return False


def ingest_file(path: Path, arguments: argparse.Namespace, out: TextIO) -> bool:
    """Post one file through the ingest route (or save it, a workflow) and follow its events."""
    body, payload = read_payload(path)
    if is_workflow(payload):
        return save_workflow(path, payload, tenant=tenant_for(None, arguments.tenant), host=arguments.host, out=out)
    fmt = arguments.http or detect_format(payload)
    if fmt is None:
        print(
            f"{path}: REFUSED: not a payload the ingest route reads (CloudEvents, Alertmanager, Grafana, Azure "
            "Monitor, PagerDuty); --http FORMAT names its format, --queue sends it to the queue as it is",
            file=out,
            flush=True,
        )
        return False
    tenant = tenant_for(payload, arguments.tenant)
    key = arguments.key or ingest_key_for(tenant, arguments.source)
    queue = default_queue()
    listed = _queued(arguments.host, queue)  # also: is the host there at all
    before = {m.get("messageId") for m in listed or []}
    accepted, line, event_ids = post_file(
        body, fmt=fmt, tenant=tenant, source=arguments.source, key=key, host=arguments.host
    )
    print(f"{path}: {line}", file=out, flush=True)
    if not accepted or arguments.wait <= 0:
        return accepted
    if listed is None:
        print(f"{path}: not followed: the host has no queue {queue!r} to look in", file=out, flush=True)
        return accepted
    # The route queues each event before it answers: the new messages carry their ids.
    fresh = [m for m in _queued(arguments.host, queue) or [] if m.get("messageId") not in before]
    ok = True
    for event_id in event_ids:
        message = next((m for m in fresh if _event_id(m) == event_id), None)
        if message is None:
            print(
                f"{path}: event {event_id}: dropped by the queue as a duplicate (the same event was queued "
                "before, within the duplicate-detection window)",
                file=out,
                flush=True,
            )
            continue
        ok = (
            report_message(
                path, str(message["messageId"]), queue=queue, host=arguments.host, seconds=arguments.wait, out=out
            )
            and ok
        )
    return ok


def ingest_key_for(tenant: str, source: str) -> str:
    from shared.security import ingest_key

    return ingest_key(_admin_key(f"source {source}'s key (or give --key)"), tenant, source)


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Publish the files; return the process exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="python -m tools.publish",
        description="Post JSON files to the local connector's ingest route (or a queue), or save workflows.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JSON file: an event payload or a workflow")
    parser.add_argument("--queue", action="store_true", help="send each file to the inbound queue as it is")
    parser.add_argument(
        "--queue-name",
        metavar="NAME",
        help=f"with --queue: the queue (default: {QUEUE_SETTING} from the settings, else {DEFAULT_QUEUE})",
    )
    parser.add_argument(
        "--host", default=None, help=f"local host URL (default: the one `make run` started, else {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds to wait for each outcome (0: do not wait; default 10)",
    )
    parser.add_argument("--http", metavar="FORMAT", help="the ingest format (default: read from the payload)")
    parser.add_argument(
        "--tenant", help="the tenant (default: a CloudEvent's tenantid, else the one make run connected)"
    )
    parser.add_argument("--source", default="local", help="the source name for the ingest route (default: local)")
    parser.add_argument("--key", help="the source's key (default: derived from ADMIN_API_KEY)")
    arguments = parser.parse_args(argv)
    arguments.host = arguments.host or default_host()
    all_ok = True
    try:
        missing = [str(path) for path in arguments.files if not path.is_file()]
        if missing:
            raise PublishError(f"no such file: {', '.join(missing)}")
        if not arguments.queue:
            _queued(arguments.host, default_queue())  # says so first when no local host is running
            for path in arguments.files:
                all_ok = ingest_file(path, arguments, out) and all_ok
            return 0 if all_ok else 1
        queue = arguments.queue_name or default_queue()
        for path in arguments.files:
            message_id = publish_file(path, queue=queue, host=arguments.host)
            print(f"{path}: sent to {queue} as message {message_id}", file=out, flush=True)
            if arguments.wait > 0:
                all_ok = (
                    report_message(path, message_id, queue=queue, host=arguments.host, seconds=arguments.wait, out=out)
                    and all_ok
                )
    except PublishError as error:
        print(f"error: {error}", file=err)
        return 2
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The local host's console page (``/_localhost/console``): every queue, its messages newest
first with their bodies, what the app reported for each (its structured outcomes and log lines),
and the dead letters. Refreshes itself every few seconds."""

from __future__ import annotations

import html
import json
from typing import Any

MAX_MESSAGES = 50
REFRESH_SECONDS = 5

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #1b1b1b; background: #fafafa; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } code, pre { font: 12px/1.4 ui-monospace, monospace; }
pre { white-space: pre-wrap; word-break: break-all; margin: .3rem 0; max-height: 24rem; overflow: auto;
      background: #f6f6f6; padding: .4rem; }
.completed { color: #0b6a0b; } .deadlettered, .bad { color: #a4262c; font-weight: 600; }
.active, .scheduled { color: #8a5a00; }
.counts span { margin-right: 1rem; } summary { cursor: pointer; color: #1a55a3; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def describe_outcome(outcome: dict[str, Any]) -> tuple[str, bool]:
    """One line for a structured outcome the app logged, and whether it is a failure."""
    kind, result = outcome.get("kind"), outcome.get("result")
    if kind == "event":
        what = f"event {outcome.get('eventId') or '-'}" + (
            f" (alert {outcome['alertId']})" if outcome.get("alertId") else ""
        )
        if result == "rejected":
            return f"{what}: rejected: {outcome.get('detail')}", True
        detail = f": {outcome['detail']}" if outcome.get("detail") else ""
        queued = f", {outcome.get('queued', 0)} job(s) queued" if result == "processed" else ""
        return f"{what}: {result}{queued}{detail}", bool(outcome.get("undeliverable"))
    if kind == "card":
        if result == "refused":
            return (
                f"card of {outcome.get('alertId')} refused in {outcome.get('conversation')}: {outcome.get('reason')}",
                True,
            )
        return (
            f"card of {outcome.get('alertId')} {result} in {outcome.get('conversation')} ({outcome.get('status')})",
            False,
        )
    return json.dumps(outcome, ensure_ascii=False), False


def _message_row(message: dict[str, Any]) -> str:
    outcomes = [describe_outcome(o) for o in message.get("outcomes") or []]
    said = "<br>".join(f'<span class="{"bad" if bad else ""}">{_e(line)}</span>' for line, bad in outcomes)
    if message.get("lastError") and message.get("status") != "completed":
        said += f'<br><span class="bad">last error: {_e(message["lastError"])}</span>'
    if message.get("deadLetterReason"):
        said += (
            f'<br><span class="bad">{_e(message["deadLetterReason"])}: '
            f"{_e(message.get('deadLetterErrorDescription'))}</span>"
        )
    log = "".join(
        f"{_e(entry['level'])} {_e(entry['logger'])}: {_e(entry['message'])}\n" for entry in message.get("log") or []
    )
    details = f"<details><summary>body</summary><pre>{_e(_pretty(message.get('body', '')))}</pre></details>"
    if log:
        details += f"<details><summary>log ({len(message.get('log') or [])})</summary><pre>{log}</pre></details>"
    when = message.get("scheduledEnqueueTimeUtc") or message.get("enqueuedTimeUtc")
    return (
        f"<tr><td><code>{_e(message['messageId'])}</code><br><small>{_e(when)}</small></td>"
        f'<td class="{_e(message["status"])}">{_e(message["status"])}'
        f"<br><small>{_e(message.get('deliveryCount', 0))} deliveries</small></td>"
        f"<td>{said or '<small>—</small>'}{details}</td></tr>"
    )


def render(
    queues: list[dict[str, Any]],
    messages: dict[str, list[dict[str, Any]]],
    dead_letters: dict[str, list[dict[str, Any]]],
) -> str:
    """The page: ``queues`` as the management API summarises them; messages per queue."""
    parts = [
        f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        f"<title>Local host console</title><style>{_STYLE}</style></head><body>",
        "<h1>Local Functions host: queues and what became of each message</h1>",
        f"<p>Newest first, at most {MAX_MESSAGES} per queue; refreshes every {REFRESH_SECONDS} s. "
        "The same as JSON: <code>/_localhost/queues/NAME/messages</code>.</p>",
    ]
    for queue in queues:
        name = queue["name"]
        counts = " ".join(
            f"<span>{_e(k)}: <b>{_e(v)}</b></span>"
            for k, v in queue.items()
            if isinstance(v, int) and not isinstance(v, bool)
        )
        parts.append(f'<h2 id="{_e(name)}">{_e(name)}</h2><p class="counts">{counts}</p>')
        shown = list(reversed(messages.get(name, [])))[:MAX_MESSAGES]
        if shown:
            parts.append("<table><tr><th>message</th><th>status</th><th>what the app reported</th></tr>")
            parts.extend(_message_row(m) for m in shown)
            parts.append("</table>")
        else:
            parts.append("<p><small>No messages yet.</small></p>")
        dead = dead_letters.get(name, [])
        if dead:
            parts.append(
                f"<h3>Dead letters of {_e(name)} "
                f"({len(dead)})</h3><table><tr><th>message</th><th>status</th><th>reason</th></tr>"
            )
            parts.extend(_message_row(m) for m in reversed(dead))
            parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)

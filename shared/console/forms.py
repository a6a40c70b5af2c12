"""The console's forms as the JSON the services take, and back: a workflow's form fields to the
body the admin route accepts (the same parser checks both), the recipient picker's search."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from shared.domain.events import SEVERITIES

log = logging.getLogger(__name__)

TRIGGERS = (
    ("new_or_updated", "New or updated", "the new alert and every later change"),
    ("updated", "Updated", "every change after the first event, not the new alert itself"),
    ("new_updated_existing", "New, updated or existing", "as new or updated, and the alerts already open"),
    ("periodic", "Periodic", "a digest of the matching open alerts every interval"),
)
KINDS = ("alert", "issue")
MAX_RECIPIENT_CHARS = 2000
MAX_ALERTS_SHOWN = 200
MAX_DRY_RUN_ALERTS = 50
MIN_SEARCH = 2
MAX_RESULTS = 25
# The dry run's starting point: a CloudEvent of a new alert (docs/EVENTS.md).
EXAMPLE_EVENT = json.dumps(
    {
        "specversion": "1.0",
        "id": "dry-run-1",
        "source": "https://alerts.example.com",
        "type": "alert.created",
        "data": {
            "id": "DRY-1",
            "title": "Disk almost full on db-1",
            "severity": "high",
            "status": "open",
            "version": 1,
            "labels": {"environment": "production"},
        },
    },
    indent=2,
)
_LABEL = re.compile(r"^\s*(?P<key>[^=~\s]+)\s*(?:(?P<op>=|~|\bin\b|\bexists\b)\s*(?P<value>.*?))?\s*$")


def blank_workflow() -> dict[str, Any]:
    return {
        "id": "",
        "name": "",
        "enabled": True,
        "trigger": "new_or_updated",
        "intervalMinutes": "60",
        "recipients": [],
        "responders": False,
        "fallback": [],
        "comment": "",
        "delivery": "bot",
        "minSeverity": "",
        "severities": [],
        "kinds": [],
        "sources": "",
        "titleContains": "",
        "labels": "",
    }


def _chip(recipient: dict[str, Any]) -> dict[str, Any]:
    """A chosen recipient as the picker shows it (label), posts it (value) and the services take it."""
    return {
        "label": recipient_label(recipient),
        "value": json.dumps(recipient, separators=(",", ":")),
        "recipient": recipient,
    }


def recipient_label(recipient: dict[str, Any]) -> str:
    kind = recipient.get("kind", "")
    name = recipient.get("name")
    if kind == "responders":
        return "The alert's responders"
    if name:
        return f"{name} ({kind})"
    what = (
        recipient.get("user")
        or recipient.get("chatId")
        or recipient.get("channelId")
        or ", ".join(recipient.get("users") or [])
    )
    return f"{what} ({kind})"


def workflow_values(public: dict[str, Any]) -> dict[str, Any]:
    """A stored workflow (its public JSON) as the form shows it."""
    values = blank_workflow()
    match = public.get("match") or {}
    recipients = public.get("recipients") or []
    values.update(
        id=public.get("id", ""),
        name=public.get("name", ""),
        enabled=bool(public.get("enabled", True)),
        trigger=public.get("trigger", "new_or_updated"),
        intervalMinutes=str(public.get("intervalMinutes") or 60),
        recipients=[_chip(r) for r in recipients if r.get("kind") != "responders"],
        responders=any(r.get("kind") == "responders" for r in recipients),
        fallback=[_chip(r) for r in public.get("fallbackRecipients") or []],
        comment=public.get("comment") or "",
        delivery=public.get("delivery") or "bot",
        minSeverity=match.get("minSeverity") or "",
        severities=list(match.get("severities") or []),
        kinds=list(match.get("kinds") or []),
        sources=", ".join(match.get("sources") or []),
        titleContains=match.get("titleContains") or "",
        labels="\n".join(_label_line(s) for s in match.get("labels") or []),
    )
    return values


def _label_line(selector: dict[str, Any]) -> str:
    op = selector.get("op", "equals")
    key = selector.get("key", "")
    if op == "exists":
        return f"{key} exists"
    if op == "regex":
        return f"{key} ~ {selector.get('value', '')}"
    if op == "one_of":
        return f"{key} in {', '.join(selector.get('values') or [])}"
    return f"{key} = {selector.get('value', '')}"


def read_workflow_form(form: dict[str, list[str]]) -> dict[str, Any]:
    """The posted form as the form's values (shown again, with the errors, when it is refused)."""

    def one(name: str, default: str = "") -> str:
        return (form.get(name) or [default])[0]

    def chips(name: str) -> list[dict[str, Any]]:
        found = []
        for text in form.get(name) or []:
            try:
                recipient = json.loads(text) if len(text) <= MAX_RECIPIENT_CHARS else None
            except ValueError:
                recipient = None
            if isinstance(recipient, dict):
                found.append(_chip(recipient))
        return found

    return {
        "id": one("id").strip(),
        "name": one("name").strip(),
        "enabled": one("enabled") == "on",
        "trigger": one("trigger", "new_or_updated"),
        "intervalMinutes": one("intervalMinutes", "60").strip(),
        "recipients": chips("recipient"),
        "responders": one("responders") == "on",
        "fallback": chips("fallback"),
        "comment": one("comment"),
        "delivery": one("delivery", "bot"),
        "minSeverity": one("minSeverity"),
        "severities": [s for s in form.get("severity") or [] if s in SEVERITIES],
        "kinds": [k for k in form.get("kind") or [] if k in KINDS],
        "sources": one("sources"),
        "titleContains": one("titleContains"),
        "labels": one("labels"),
    }


def workflow_body(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The admin route's JSON for the form's values, and the problems only the form can have
    (a label line it cannot read); everything else is the workflow parser's to refuse."""
    problems: dict[str, str] = {}
    labels = []
    for number, line in enumerate(values["labels"].splitlines(), start=1):
        if not line.strip():
            continue
        selector = _parse_label(line)
        if selector is None:
            problems["labels"] = (
                f"line {number} is not a label condition: write key = value, key in a, b, key ~ pattern or key exists"
            )
            break
        labels.append(selector)
    match: dict[str, Any] = {}
    if values["minSeverity"]:
        match["minSeverity"] = values["minSeverity"]
    if values["severities"]:
        match["severities"] = values["severities"]
    if values["kinds"]:
        match["kinds"] = values["kinds"]
    sources = [s.strip() for s in values["sources"].split(",") if s.strip()]
    if sources:
        match["sources"] = sources
    if values["titleContains"].strip():
        match["titleContains"] = values["titleContains"].strip()
    if labels:
        match["labels"] = labels
    recipients = [c["recipient"] for c in values["recipients"]]
    if values["responders"]:
        recipients.append({"kind": "responders"})
    body: dict[str, Any] = {
        "id": values["id"],
        "name": values["name"],
        "enabled": values["enabled"],
        "match": match,
        "trigger": values["trigger"],
        "recipients": recipients,
        "fallbackRecipients": [c["recipient"] for c in values["fallback"]],
        "comment": values["comment"],
        "delivery": values["delivery"],
    }
    if values["trigger"] == "periodic":
        try:
            body["intervalMinutes"] = int(values["intervalMinutes"])
        except ValueError:
            problems["intervalMinutes"] = "the interval is a whole number of minutes"
    return body, problems


def _parse_label(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if text.endswith(" exists"):
        return {"key": text[: -len(" exists")].strip(), "op": "exists"}
    for sign, op in (("~", "regex"), ("=", "equals")):
        key, found, value = text.partition(sign)
        if found and key.strip():
            return {"key": key.strip(), "op": op, "value": value.strip()}
    key, found, rest = text.partition(" in ")
    if found and key.strip():
        return {"key": key.strip(), "op": "one_of", "values": [v.strip() for v in rest.split(",") if v.strip()]}
    return None


def form_field(path: str) -> str:
    """The form field where the workflow parser's complaint about ``path`` is shown."""
    top = re.split(r"[.\\[]", path or "", maxsplit=1)[0]
    if path.startswith("match."):
        top = re.split(r"[.\\[]", path[len("match.") :], maxsplit=1)[0]
    return {
        "recipients": "recipients",
        "fallbackRecipients": "fallback",
        "intervalMinutes": "intervalMinutes",
        "severities": "severities",
    }.get(top, top)


async def search_recipients(c: Any, tenant_id: str, text: str) -> dict[str, Any]:
    """People, teams' channels and the chats the connector knows, matching ``text``: the picker's
    options, each with the recipient JSON a workflow takes. Microsoft Graph's refusal is said."""
    from shared.ports import GraphError, ReconsentRequired, TransientError

    text = text.strip()[:100]
    if len(text) < MIN_SEARCH:
        return {"results": [], "note": f"type at least {MIN_SEARCH} characters"}
    lowered = text.lower()
    results: list[dict[str, Any]] = []
    note = ""
    for record in await c.store.list_conversations(tenant_id):
        if record.conversation_type in ("groupChat", "personal") and lowered in record.label.lower():
            recipient = {"kind": "chat", "chatId": record.conversation_id, "name": record.name or record.label}
            results.append({"label": record.label, "detail": "chat", "recipient": recipient})
    directory = c.connect.directory if c.connect is not None else None
    if directory is not None:
        try:
            for user in await directory.search_users(tenant_id, text):
                recipient = {"kind": "person", "user": user.get("id"), "name": user.get("displayName")}
                results.append(
                    {
                        "label": str(user.get("displayName") or user.get("userPrincipalName")),
                        "detail": str(user.get("userPrincipalName") or user.get("mail") or "person"),
                        "recipient": recipient,
                    }
                )
            teams = await directory.list_teams(tenant_id)
            for team in teams[:50]:
                team_name = str(team.get("displayName") or "")
                team_match = lowered in team_name.lower()
                if not team_match and len(teams) > 10:
                    continue
                for channel in await directory.list_channels(tenant_id, str(team.get("id"))):
                    channel_name = str(channel.get("displayName") or "")
                    if team_match or lowered in channel_name.lower():
                        label = f"{team_name} / {channel_name}"
                        recipient = {
                            "kind": "channel",
                            "teamId": team.get("id"),
                            "channelId": channel.get("id"),
                            "name": label,
                        }
                        results.append({"label": label, "detail": "channel", "recipient": recipient})
        except ReconsentRequired as exc:
            note = f"Microsoft Graph needs consent again: {exc}"
        except (GraphError, TransientError) as exc:
            note = f"Microsoft Graph did not answer the search: {exc}"
    else:
        note = "the tenant is not connected: only the chats the connector knows are searched"
    return {"results": results[:MAX_RESULTS], "note": note}


def read_send_form(form: dict[str, list[str]]) -> dict[str, Any]:
    """Send to Teams: the recipients and fallback chosen with the pickers, and the comment."""
    values = read_workflow_form(form)
    return {"recipients": values["recipients"], "fallback": values["fallback"], "comment": values["comment"]}


def timeline(state: Any) -> list[tuple[datetime, str]]:
    """What happened to an alert, oldest first: created, its status changes, its notes."""
    events: list[tuple[datetime, str]] = []
    if state.created:
        events.append((state.created, "created"))
    for step in state.steps:
        who = f" by {step.by}" if step.by else ""
        via = f" ({step.via})" if step.via else ""
        events.append((step.at, f"{step.status}{who}{via}"))
    for note in state.notes:
        events.append(
            (datetime.fromisoformat(str(note["at"])), f"note by {note.get('by') or 'someone'}: {note['text']}")
        )
    return sorted(events, key=lambda event: event[0])


def when(text: Any) -> str:
    """An ISO time as the console shows times."""
    return datetime.fromisoformat(str(text)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def card_row(delivery: Any) -> dict[str, str]:
    """One card of an alert as the Alerts pages show it: where, its state, and why it is there."""
    from shared.domain.jobs import conversation_from_json

    where = (
        conversation_from_json(delivery.conversation).label
        if delivery.conversation
        else delivery.recipient or delivery.conversation_id
    )
    state = {
        "posted": "posted",
        "posting": "being posted",
        "failed": "refused",
        "folded": "counted in a storm summary",
    }.get(delivery.status, delivery.status)
    fallback = (delivery.context or {}).get("fallbackFor") or ""
    return {
        "where": str(where),
        "state": state,
        "reason": delivery.reason or "",
        "failure": delivery.failure or "",
        "fallback": str(fallback),
        "shows": f"revision {delivery.rendered_version}" if delivery.rendered_version >= 0 else "",
    }


def source_snippets(setup: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Ready-to-paste settings for each format: (where it goes, the text)."""
    urls, key = setup["urls"], setup["key"]
    return {
        "alertmanager": (
            "alertmanager.yml: a receiver, and a route that sends to it",
            "receivers:\n"
            "  - name: teams\n"
            "    webhook_configs:\n"
            f"      - url: {urls['alertmanager']}\n"
            "        send_resolved: true\n"
            "        http_config:\n"
            "          authorization:\n"
            f"            credentials: {key}\n",
        ),
        "grafana": (
            "Grafana: Alerting > Contact points > New > Webhook",
            f"URL: {urls['grafana']}\nHTTP method: POST\nAuthorization header - scheme: Bearer\n"
            f"Authorization header - credentials: {key}\n",
        ),
        "azure-monitor": (
            "Azure Monitor: an action group's Webhook action, common alert schema on",
            f"URI: {urls['azure-monitor']}\nEnable the common alert schema: Yes\n",
        ),
        "pagerduty": (
            "PagerDuty: Integrations > Generic Webhooks (v3) > New Webhook",
            f"Webhook URL: {urls['pagerduty']}\nCustom header: {setup['header']} = {key}\n",
        ),
        "cloudevents": (
            "Any system that sends CloudEvents (docs/EVENTS.md), for example with curl",
            f"curl -X POST '{urls['cloudevents']}' \\\n"
            f"  -H '{setup['header']}: {key}' \\\n"
            "  -H 'Content-Type: application/cloudevents+json' \\\n"
            "  --data @event.json\n",
        ),
    }


def event_for(state: Any) -> dict[str, Any]:
    """A stored alert as the event of its next change: what the dry run routes for it."""
    return {
        "specversion": "1.0",
        "id": f"dry-run-{state.key[:16]}",
        "source": state.event_source,
        "type": f"{state.kind}.updated",
        "data": {
            "id": state.alert_id,
            "kind": state.kind,
            "title": state.title,
            "description": state.description,
            "severity": state.severity,
            "status": state.status,
            "source": state.source,
            "labels": dict(state.labels),
            "responders": list(state.responders),
            "version": state.version + 1,
        },
    }

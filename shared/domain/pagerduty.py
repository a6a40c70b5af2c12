"""PagerDuty's v3 webhooks (a webhook subscription on a service or account) → alert events.
Pure Python.

Recognised by ``event.event_type`` starting with ``incident.`` and ``event.resource_type``
(PagerDuty developer docs: "V3 Webhook Overview"). One payload is one event about one incident:

- id: the incident's id (``event.data.id``); the event id is PagerDuty's ``event.id``; the event
  source is the account's address (the origin of ``html_url``), else ``pagerduty``;
- the event type: ``incident.triggered`` → ``alert.created``; ``incident.acknowledged`` →
  ``alert.acknowledged``; ``incident.resolved`` → ``alert.resolved``; ``incident.reopened`` →
  ``alert.reopened``; any other ``incident.*`` about the incident itself (reassigned,
  priority_updated, escalated, unacknowledged...) → ``alert.updated`` with the incident's
  ``status``; events whose data is not the incident (``incident.annotated``: a note) change no
  alert and give no event;
- version: ``occurred_at``; severity: the priority (``P1`` critical … ``P5`` info) when set, else
  the urgency (``high`` → high, ``low`` → low), the original kept as labels.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shared.domain.events import AlertData, AlertEvent, InvalidEvent, epoch_micros, parse_time

PRIORITIES = {"p1": "critical", "p2": "high", "p3": "medium", "p4": "low", "p5": "info"}
URGENCIES = {"high": "high", "low": "low"}
TYPES = {
    "incident.triggered": "alert.created",
    "incident.acknowledged": "alert.acknowledged",
    "incident.resolved": "alert.resolved",
    "incident.reopened": "alert.reopened",
}
STATUSES = {"triggered": "open", "acknowledged": "acknowledged", "resolved": "resolved"}


def is_pagerduty_payload(obj: Any) -> bool:
    event = obj.get("event") if isinstance(obj, dict) else None
    return (
        isinstance(event, dict)
        and isinstance(event.get("event_type"), str)
        and event["event_type"].startswith("incident.")
        and "resource_type" in event
        and "specversion" not in obj
    )


def parse_pagerduty(obj: Any) -> list[AlertEvent]:
    event = obj.get("event") if isinstance(obj, dict) else None
    if not isinstance(event, dict):
        raise InvalidEvent("event", "must be an object (PagerDuty's v3 webhook)")
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or not event_type.startswith("incident."):
        raise InvalidEvent("event.event_type", f"must be an incident event (incident.*), not {event_type!r}")
    data = event.get("data")
    if not isinstance(data, dict):
        raise InvalidEvent("event.data", "must be an object")
    if data.get("type") != "incident":
        return []  # a note or another object about the incident: no alert changes
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidEvent("event.id", "is required")
    incident_id = data.get("id")
    if not isinstance(incident_id, str) or not incident_id:
        raise InvalidEvent("event.data.id", "is required")
    occurred = parse_time(event.get("occurred_at"), "event.occurred_at")
    if occurred is None:
        raise InvalidEvent("event.occurred_at", "is required")
    status = STATUSES.get(str(data.get("status") or ""))
    if status is None:
        raise InvalidEvent(
            "event.data.status", f"must be triggered, acknowledged or resolved, not {data.get('status')!r}"
        )
    given_title = data.get("title")
    title = given_title if isinstance(given_title, str) and given_title else f"PagerDuty incident {incident_id}"

    def summary(name: str) -> str:
        value = data.get(name)
        return str(value.get("summary") or "") if isinstance(value, dict) else ""

    priority = summary("priority")
    urgency = str(data.get("urgency") or "")
    severity = PRIORITIES.get(priority.lower()) or URGENCIES.get(urgency.lower()) or "medium"
    assignees = [str(a.get("summary")) for a in data.get("assignees") or [] if isinstance(a, dict) and a.get("summary")]
    labels = {
        k: v
        for k, v in {
            "service": summary("service"),
            "priority": priority,
            "urgency": urgency,
            "escalation_policy": summary("escalation_policy"),
            "assignees": ", ".join(assignees),
            "number": str(data.get("number") or ""),
            "incident_key": str(data.get("incident_key") or ""),
            "event": event_type,
        }.items()
        if v
    }
    html_url = data.get("html_url") if isinstance(data.get("html_url"), str) else None
    parts = urlsplit(html_url) if html_url and html_url.startswith("https://") else None
    alert = AlertData(
        id=incident_id,
        title=title,
        kind="alert",
        severity=severity,
        status=status,
        source=f"PagerDuty ({summary('service')})" if summary("service") else "PagerDuty",
        url=html_url if parts else None,
        labels=labels,
        created=parse_time(data.get("created_at"), "event.data.created_at") if data.get("created_at") else None,
        updated=occurred,
        version=epoch_micros(occurred),
    )
    source = f"{parts.scheme}://{parts.netloc}" if parts else "pagerduty"
    return [
        AlertEvent(
            event_id=event_id, type=TYPES.get(event_type, "alert.updated"), source=source, data=alert, time=occurred
        )
    ]

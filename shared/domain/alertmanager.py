"""Prometheus Alertmanager webhook payloads (version "4") normalised into :class:`AlertEvent`.

Alertmanager posts one payload per notification of an alert group; each alert in it becomes
one event. The mapping, in short (docs/EVENTS.md has the full table):

- ``data.id`` is the alert's ``fingerprint`` (a hash of its labels when absent), so every
  notification about the same alert updates the same Teams card.
- a firing alert is ``alert.created`` with version = ``startsAt``; a resolved alert is
  ``alert.resolved`` with version = ``endsAt``. The connector orders events by version, so a
  repeated notification changes nothing and a resolve always wins over the firing before it.
- ``event_id`` is derived from (alert id, status, version): a redelivered message and a
  repeated notification (``repeat_interval``) carry the same id and are deduplicated.
- the optional label or annotation ``teams_tenant_id`` names the Microsoft tenant, and the
  optional annotation ``responders`` (comma-separated UPNs or e-mail addresses) the responders.

Pure Python: no SDK imports. Errors name the field path, e.g. ``alerts[2].startsAt``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from shared.domain import tenants
from shared.domain.events import (
    MAX_DESCRIPTION_LENGTH,
    MAX_ID_LENGTH,
    MAX_LABELS,
    MAX_RESPONDERS,
    MAX_TITLE_LENGTH,
    AlertData,
    AlertEvent,
    InvalidEvent,
    epoch_micros,
    parse_time,
)

WEBHOOK_VERSION = "4"
DEFAULT_EVENT_SOURCE = "alertmanager"
DATA_SOURCE = "alertmanager"

TENANT_KEY = "teams_tenant_id"
RESPONDERS_ANNOTATION = "responders"
# Annotations that other data fields already carry; the rest are kept as labels.
CONSUMED_ANNOTATIONS = frozenset({"summary", "title", "description", "message", RESPONDERS_ANNOTATION, TENANT_KEY})
# Prometheus label names match [a-zA-Z_][a-zA-Z0-9_]*, so a dotted prefix cannot collide with a label.
ANNOTATION_LABEL_PREFIX = "annotation."

SEVERITY_MAP: dict[str, str] = {
    "critical": "critical",
    "page": "critical",
    "error": "high",
    "high": "high",
    "major": "high",
    "warning": "medium",
    "warn": "medium",
    "medium": "medium",
    "low": "low",
    "minor": "low",
    "info": "info",
    "informational": "info",
    "none": "info",
    # Priorities and syslog levels that sources put in a severity label.
    "p1": "critical",
    "p2": "high",
    "p3": "medium",
    "p4": "low",
    "p5": "info",
    "sev0": "critical",
    "sev1": "high",
    "sev2": "medium",
    "sev3": "low",
    "sev4": "info",
    "emergency": "critical",
    "fatal": "critical",
    "alert": "critical",
    "notice": "info",
    "debug": "info",
}
# The label that says how an unknown severity was shown (never silently).
SEVERITY_NOTE_LABEL = "severity.note"
DEFAULT_SEVERITY = "medium"

# Go's zero time.Time: Alertmanager sends it as endsAt of every firing alert.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def map_severity(value: str | None) -> str:
    """Alertmanager's free-form ``severity`` label → one of the connector's severities."""
    if not value:
        return DEFAULT_SEVERITY
    return SEVERITY_MAP.get(value.strip().lower(), DEFAULT_SEVERITY)


def labels_fingerprint(labels: dict[str, str]) -> str:
    """A stable id for an alert sent without ``fingerprint``: the same labels, the same id."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def alert_event_id(alert_id: str, status: str, version: int) -> str:
    """Deterministic event id, so redeliveries and repeated notifications deduplicate."""
    digest = hashlib.sha256(f"{alert_id}\n{status}\n{version}".encode()).hexdigest()
    return f"alertmanager-{digest[:32]}"


def parse_alertmanager(obj: Any) -> list[AlertEvent]:
    """Validate an Alertmanager webhook payload (version "4") into one event per alert.

    Raises :class:`InvalidEvent` naming the field path (``version``, ``alerts[2].startsAt``)
    when the payload cannot be processed; one invalid alert rejects the whole payload, so
    nothing is applied half-way.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent("", "an Alertmanager webhook payload must be a JSON object")
    version = obj.get("version")
    if version is None:
        raise InvalidEvent("version", f"is required (Alertmanager webhook payload version {WEBHOOK_VERSION!r})")
    if version != WEBHOOK_VERSION:
        raise InvalidEvent("version", f"must be {WEBHOOK_VERSION!r} (the Alertmanager webhook format), not {version!r}")

    receiver = _optional_string(obj, "receiver", "receiver")
    external_url = _optional_string(obj, "externalURL", "externalURL")
    group_status = _optional_string(obj, "status", "status")

    alerts = obj.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidEvent("alerts", "must be a list of alerts")
    if not alerts:
        raise InvalidEvent("alerts", "must contain at least one alert")

    event_source = external_url.strip() if external_url and external_url.strip() else DEFAULT_EVENT_SOURCE
    data_source = f"{DATA_SOURCE}/{receiver.strip()}" if receiver and receiver.strip() else DATA_SOURCE
    return distinguish_titles(
        [
            parse_alert(
                alert, f"alerts[{index}]", event_source=event_source, data_source=data_source, group_status=group_status
            )
            for index, alert in enumerate(alerts)
        ]
    )


# Labels that never tell two alerts of a group apart on a card.
_NOT_DISTINGUISHING = ("annotation.", "value.")
MAX_DISTINGUISHING_LABELS = 3


def distinguish_titles(events: list[AlertEvent]) -> list[AlertEvent]:
    """Alerts of one notification that would read the same (one summary for the group) get the
    labels that differ between them in their titles, e.g. "Filesystem almost full
    (mountpoint=/, instance=db-01)", so two cards never read the same."""
    from dataclasses import replace

    by_title: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        by_title.setdefault(event.data.title, []).append(index)
    out = list(events)
    for title, indexes in by_title.items():
        if len(indexes) < 2:
            continue
        group = [events[i].data.labels for i in indexes]
        names = sorted(
            {
                name
                for labels in group
                for name in labels
                if not name.startswith(_NOT_DISTINGUISHING) and name != TENANT_KEY
            }
        )
        differing = [name for name in names if len({labels.get(name, "") for labels in group}) > 1][
            :MAX_DISTINGUISHING_LABELS
        ]
        for i in indexes:
            labels = events[i].data.labels
            suffix = ", ".join(f"{name}={labels.get(name, '')}" for name in differing) or events[i].data.id
            out[i] = replace(events[i], data=replace(events[i].data, title=f"{title} ({suffix})"[:MAX_TITLE_LENGTH]))
    return out


def parse_alert(alert: Any, path: str, *, event_source: str, data_source: str, group_status: str | None) -> AlertEvent:
    if not isinstance(alert, dict):
        raise InvalidEvent(path, "must be a JSON object")

    status = _optional_string(alert, "status", f"{path}.status") or group_status
    if status not in ("firing", "resolved"):
        raise InvalidEvent(f"{path}.status", f"must be 'firing' or 'resolved', not {status!r}")

    labels = _string_map(alert, "labels", f"{path}.labels", required=True)
    if len(labels) > MAX_LABELS:
        raise InvalidEvent(f"{path}.labels", f"has more than {MAX_LABELS} entries")
    annotations = _string_map(alert, "annotations", f"{path}.annotations", required=False)

    fingerprint = _optional_string(alert, "fingerprint", f"{path}.fingerprint")
    alert_id = fingerprint.strip() if fingerprint and fingerprint.strip() else labels_fingerprint(labels)
    if len(alert_id) > MAX_ID_LENGTH:
        raise InvalidEvent(f"{path}.fingerprint", f"is longer than {MAX_ID_LENGTH} characters")

    starts_at = parse_time(alert.get("startsAt"), f"{path}.startsAt")
    if starts_at is None or starts_at == GO_ZERO_TIME:
        raise InvalidEvent(f"{path}.startsAt", "is required")
    if starts_at.timestamp() < 0:
        raise InvalidEvent(f"{path}.startsAt", f"is before 1970: {alert.get('startsAt')!r}")
    ends_at = parse_time(alert.get("endsAt"), f"{path}.endsAt")
    if ends_at == GO_ZERO_TIME:
        ends_at = None

    if status == "firing":
        event_type, data_status = "alert.created", "open"
        moment, version = starts_at, epoch_micros(starts_at)
        # A firing alert's endsAt is Go's zero time, or a guess at when it will time out:
        # neither is a resolution, so it does not enter the event.
    else:
        if ends_at is None:
            raise InvalidEvent(f"{path}.endsAt", "is required for a resolved alert")
        event_type, data_status = "alert.resolved", "resolved"
        moment = ends_at
        # The resolve must order after the firing event even if the clocks say otherwise.
        version = max(epoch_micros(ends_at), epoch_micros(starts_at) + 1)

    generator_url = _optional_string(alert, "generatorURL", f"{path}.generatorURL")
    url = generator_url if generator_url and generator_url.startswith(("https://", "http://")) else None

    tenant_id = _first_nonblank(labels.get(TENANT_KEY), annotations.get(TENANT_KEY))
    if tenant_id is not None:
        try:
            tenant_id = tenants.tenant_id(tenant_id)
        except tenants.InvalidTenantId as exc:
            raise InvalidEvent(f"{path}.labels.{TENANT_KEY}", str(exc)) from None
    responders = tuple(r.strip() for r in annotations.get(RESPONDERS_ANNOTATION, "").split(",") if r.strip())
    if len(responders) > MAX_RESPONDERS:
        raise InvalidEvent(f"{path}.annotations.{RESPONDERS_ANNOTATION}", f"has more than {MAX_RESPONDERS} entries")

    merged = _merge_labels(labels, annotations)
    given = (labels.get("severity") or "").strip()
    if given and given.lower() not in SEVERITY_MAP:
        if len(merged) >= MAX_LABELS:  # room for the note: the last annotation makes way
            merged.pop(next(reversed(merged)))
        merged[SEVERITY_NOTE_LABEL] = (
            f"{given[:100]!r} is not a severity the connector knows: shown as {DEFAULT_SEVERITY}"
        )
    data = AlertData(
        id=alert_id,
        title=_title(labels, annotations, alert_id)[:MAX_TITLE_LENGTH],
        kind="alert",
        description=(_first_nonblank(annotations.get("description"), annotations.get("message")) or "")[
            :MAX_DESCRIPTION_LENGTH
        ],
        severity=map_severity(labels.get("severity")),
        status=data_status,
        source=data_source,
        url=url,
        labels=merged,
        responders=responders,
        created=starts_at,
        updated=moment,
        version=version,
    )
    return AlertEvent(
        event_id=alert_event_id(alert_id, status, version),
        type=event_type,
        source=event_source,
        data=data,
        tenant_id=tenant_id,
        time=moment,
    )


def _title(labels: dict[str, str], annotations: dict[str, str], alert_id: str) -> str:
    explicit = _first_nonblank(annotations.get("summary"), annotations.get("title"))
    if explicit:
        return explicit
    name = _first_nonblank(labels.get("alertname"))
    if not name:
        return f"Alertmanager alert {alert_id}"
    instance = _first_nonblank(labels.get("instance"))
    if instance:
        return f"{name} on {instance}"
    job = _first_nonblank(labels.get("job"))
    return f"{name} ({job})" if job else name


def _merge_labels(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, str]:
    """The alert's labels, then its other annotations (runbook_url, dashboard…) while room is left.

    Labels identify the alert and always fit (checked before); extra annotations are context,
    so the ones past the label limit are left out rather than rejecting the alert.
    """
    merged = dict(sorted(labels.items()))
    for name, value in sorted(annotations.items()):
        if name in CONSUMED_ANNOTATIONS or not value.strip():
            continue
        if len(merged) >= MAX_LABELS:
            break
        merged[f"{ANNOTATION_LABEL_PREFIX}{name}"] = value
    return merged


def _first_nonblank(*values: str | None) -> str | None:
    for value in values:
        if value and value.strip():
            return value.strip()
    return None


def _optional_string(obj: dict[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(path, f"must be a string, not {type(value).__name__}")
    return value


def _string_map(obj: dict[str, Any], key: str, path: str, *, required: bool) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        if required:
            raise InvalidEvent(path, "is required")
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(path, "must be an object of string values")
    for name, item in value.items():
        if not isinstance(item, str):
            raise InvalidEvent(f"{path}.{name}", f"must be a string, not {type(item).__name__}")
    return dict(value)


def identifying_labels(labels: dict[str, str]) -> dict[str, str]:
    """An alert's own labels as Alertmanager identifies it: without the annotations the
    connector keeps beside them (``annotation.*``) or its note on an unknown severity."""
    return {
        name: value
        for name, value in labels.items()
        if not name.startswith(ANNOTATION_LABEL_PREFIX) and name != SEVERITY_NOTE_LABEL
    }

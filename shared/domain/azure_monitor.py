"""Azure Monitor's common alert schema (an action group's webhook) → alert events. Pure Python.

Recognised by ``schemaId: "azureMonitorCommonAlertSchema"`` (Azure Monitor docs: "Common
alert schema"). One payload is one alert instance at one moment:

- id: the last segment of ``data.essentials.alertId`` (the instance's GUID; the same for its
  Fired and Resolved notifications); the event source is ``azure-monitor``;
- ``monitorCondition``: ``Fired`` → ``alert.created`` / open, ``Resolved`` → ``alert.resolved``,
  at ``firedDateTime`` / ``resolvedDateTime`` (a resolution orders after its firing);
- severity: ``Sev0`` critical, ``Sev1`` high, ``Sev2`` medium, ``Sev3`` low, ``Sev4`` info; the
  original is kept as the label ``severity``;
- title: the rule's name, and the first resource it fired on, so the alerts of one rule on
  several resources read differently;
- labels: the signal type, monitoring service, rule, resource, and for metric alerts each
  condition's metric, operator, threshold and value.
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.domain.events import AlertData, AlertEvent, InvalidEvent, epoch_micros, parse_time

SCHEMA_ID = "azureMonitorCommonAlertSchema"
EVENT_SOURCE = "azure-monitor"
SEVERITIES = {"sev0": "critical", "sev1": "high", "sev2": "medium", "sev3": "low", "sev4": "info"}
CONDITIONS = {"fired": ("alert.created", "open"), "resolved": ("alert.resolved", "resolved")}


def is_azure_monitor_payload(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("schemaId") == SCHEMA_ID


def parse_azure_monitor(obj: Any) -> list[AlertEvent]:
    if not isinstance(obj, dict) or obj.get("schemaId") != SCHEMA_ID:
        raise InvalidEvent(
            "schemaId", f"must be {SCHEMA_ID!r} (turn on the common alert schema in the action group's webhook)"
        )
    data = obj.get("data")
    if not isinstance(data, dict):
        raise InvalidEvent("data", "must be an object")
    essentials = data.get("essentials")
    if not isinstance(essentials, dict):
        raise InvalidEvent("data.essentials", "must be an object")
    given_context = data.get("alertContext")
    context: dict[str, Any] = given_context if isinstance(given_context, dict) else {}

    def text(name: str, *, required: bool = False) -> str:
        value = essentials.get(name)
        if value is None or value == "":
            if required:
                raise InvalidEvent(f"data.essentials.{name}", "is required")
            return ""
        if not isinstance(value, str):
            raise InvalidEvent(f"data.essentials.{name}", "must be a string")
        return value

    alert_path = text("alertId", required=True)
    alert_id = alert_path.rstrip("/").rsplit("/", 1)[-1]
    condition = text("monitorCondition", required=True)
    if condition.lower() not in CONDITIONS:
        raise InvalidEvent("data.essentials.monitorCondition", f"must be Fired or Resolved, not {condition!r}")
    event_type, status = CONDITIONS[condition.lower()]
    original_severity = text("severity", required=True)
    severity = SEVERITIES.get(original_severity.lower())
    if severity is None:
        raise InvalidEvent(
            "data.essentials.severity", f"must be one of Sev0, Sev1, Sev2, Sev3, Sev4, not {original_severity!r}"
        )
    fired = parse_time(essentials.get("firedDateTime"), "data.essentials.firedDateTime")
    if fired is None:
        raise InvalidEvent("data.essentials.firedDateTime", "is required")
    moment, version = fired, epoch_micros(fired)
    if status == "resolved":
        resolved = parse_time(essentials.get("resolvedDateTime"), "data.essentials.resolvedDateTime")
        if resolved is None:
            raise InvalidEvent("data.essentials.resolvedDateTime", "is required when monitorCondition is Resolved")
        moment, version = resolved, max(epoch_micros(resolved), epoch_micros(fired) + 1)

    rule = text("alertRule") or "Azure Monitor alert"
    given_items, given_targets = essentials.get("configurationItems"), essentials.get("alertTargetIDs")
    items: list[Any] = given_items if isinstance(given_items, list) else []
    targets: list[Any] = given_targets if isinstance(given_targets, list) else []
    resource = next((str(i) for i in items if i), "") or (
        str(targets[0]).rstrip("/").rsplit("/", 1)[-1] if targets else ""
    )
    labels = {
        k: v
        for k, v in {
            "signalType": text("signalType"),
            "monitoringService": text("monitoringService"),
            "alertRule": rule,
            "severity": original_severity,
            "resource": resource,
            "targetResourceType": text("targetResourceType"),
            "targetResourceGroup": text("targetResourceGroup"),
            "alertTargetID": str(targets[0]) if targets else "",
        }.items()
        if v
    }
    for index, criterion in enumerate(
        ((context.get("condition") or {}).get("allOf") or [])[:5] if isinstance(context.get("condition"), dict) else []
    ):
        if not isinstance(criterion, dict):
            continue
        prefix = f"condition{index + 1}." if index else "condition."
        for key in ("metricName", "operator", "threshold", "metricValue", "searchQuery"):
            if criterion.get(key) not in (None, ""):
                labels[prefix + key] = str(criterion[key])[:1024]

    alert = AlertData(
        id=alert_id,
        title=f"{rule} on {resource}" if resource else rule,
        kind="alert",
        description=text("description"),
        severity=severity,
        status=status,
        source=f"Azure Monitor ({text('monitoringService')})" if text("monitoringService") else "Azure Monitor",
        url=None,
        labels=labels,
        created=fired,
        updated=moment,
        version=version,
    )
    digest = hashlib.sha256(f"{alert_path}\n{status}\n{version}".encode()).hexdigest()[:32]
    return [
        AlertEvent(event_id=f"azure-monitor-{digest}", type=event_type, source=EVENT_SOURCE, data=alert, time=moment)
    ]

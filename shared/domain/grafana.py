"""Grafana alerting's webhook contact point → alert events. Pure Python.

Grafana sends an Alertmanager-shaped payload (docs: "Configure the webhook notifier for
Alerting"): ``version: "1"``, ``orgId``, ``alerts[]`` each with ``status``, ``labels``,
``annotations``, ``startsAt``/``endsAt``, ``fingerprint``, ``generatorURL`` (the rule),
``values`` (what the rule's queries returned) and deprecated ``dashboardURL``/``panelURL``.
Each alert is read with the Alertmanager rules (shared.domain.alertmanager: id = fingerprint,
firing → ``alert.created`` at ``startsAt``, resolved → ``alert.resolved`` at ``endsAt``,
severity from the ``severity`` label), and in addition:

- the event source is Grafana's ``externalURL`` (else ``grafana``), the card's source
  ``grafana/<receiver>``, and the event ids start with ``grafana-``;
- each of ``values`` becomes a label ``value.<query>``, so the card shows what fired;
- ``dashboardURL`` and ``panelURL``, when set, are kept as the annotations ``dashboard_url``
  and ``panel_url``: the card's Dashboard button (shared.cards.LINK_ANNOTATIONS), like the
  rule's ``runbook_url`` annotation is its Runbook button.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.domain import alertmanager
from shared.domain.events import AlertEvent, InvalidEvent

WEBHOOK_VERSION = "1"
DEFAULT_EVENT_SOURCE = "grafana"
DATA_SOURCE = "grafana"
VALUE_LABEL_PREFIX = "value."
# Grafana's links from an alert to its dashboard and panel, kept as annotations.
LINK_FIELDS = (("dashboardURL", "dashboard_url"), ("panelURL", "panel_url"))
MAX_LINK_CHARS = 2_000


def is_grafana_payload(obj: Any) -> bool:
    """Grafana's webhook: Alertmanager's shape with the organisation id Grafana adds."""
    return isinstance(obj, dict) and isinstance(obj.get("alerts"), list) and "orgId" in obj and "specversion" not in obj


def parse_grafana(obj: Any) -> list[AlertEvent]:
    if not isinstance(obj, dict):
        raise InvalidEvent("", "a Grafana webhook payload must be a JSON object")
    version = obj.get("version")
    if version != WEBHOOK_VERSION:
        raise InvalidEvent("version", f"must be {WEBHOOK_VERSION!r} (Grafana's webhook format), not {version!r}")
    alerts = obj.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise InvalidEvent("alerts", "must be a list of at least one alert")
    given_receiver, given_external, given_status = obj.get("receiver"), obj.get("externalURL"), obj.get("status")
    receiver = given_receiver if isinstance(given_receiver, str) else ""
    external = given_external if isinstance(given_external, str) else ""
    group_status = given_status if isinstance(given_status, str) else None
    event_source = external.strip() or DEFAULT_EVENT_SOURCE
    data_source = f"{DATA_SOURCE}/{receiver.strip()}" if receiver.strip() else DATA_SOURCE
    events = []
    for index, alert in enumerate(alerts):
        path = f"alerts[{index}]"
        event = alertmanager.parse_alert(
            alert, path, event_source=event_source, data_source=data_source, group_status=group_status
        )
        values = alert.get("values") or {}
        if not isinstance(values, dict):
            raise InvalidEvent(f"{path}.values", "must be an object of query values")
        links = {
            f"{alertmanager.ANNOTATION_LABEL_PREFIX}{annotation}": alert[field].strip()
            for field, annotation in LINK_FIELDS
            if isinstance(alert.get(field), str) and 0 < len(alert[field].strip()) <= MAX_LINK_CHARS
        }
        labels = {
            **event.data.labels,
            **{f"{VALUE_LABEL_PREFIX}{name}": _value(v) for name, v in values.items()},
            **links,
        }
        events.append(
            replace(
                event,
                event_id="grafana-" + event.event_id.removeprefix("alertmanager-"),
                data=replace(event.data, labels=labels),
            )
        )
    return alertmanager.distinguish_titles(events)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)

"""Turn one payload into alert events, whatever format it is in: a registry of formats.

Each format says whether a payload is its own by explicit markers (never by "has a data
field") and normalises it into the alert model. At most one format may claim a payload (a test
holds every golden payload to that), so the order of the registry decides nothing. The queue
trigger detects the format; the HTTP ingest route (``POST /api/events/{format}``) names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.domain.events import MAX_EVENT_BYTES, AlertEvent, InvalidEvent, check_limits, decode_json, parse_cloudevent


@dataclass(frozen=True)
class Format:
    name: str
    title: str
    claims: Callable[[Any], bool]  # explicit markers only
    parse: Callable[[Any], list[AlertEvent]]
    # Where an event's fields are in the payload, for error messages: "data." or "alerts[2]."
    prefix: Callable[[int], str]


def _is_cloudevent(obj: Any) -> bool:
    return isinstance(obj, dict) and "specversion" in obj


def is_alertmanager_payload(obj: Any) -> bool:
    # Alertmanager's webhook: a list of alerts and the group key; Grafana's look-alike carries
    # orgId, and a CloudEvent specversion.
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("alerts"), list)
        and ("groupKey" in obj or obj.get("version") == "4")
        and "orgId" not in obj
        and "specversion" not in obj
    )


def _parse_cloudevent(obj: Any) -> list[AlertEvent]:
    return [parse_cloudevent(obj)]


def _parse_grafana(obj: Any) -> list[AlertEvent]:
    from shared.domain.grafana import parse_grafana

    return parse_grafana(obj)


def _is_grafana(obj: Any) -> bool:
    from shared.domain.grafana import is_grafana_payload

    return is_grafana_payload(obj)


def _is_azure_monitor(obj: Any) -> bool:
    from shared.domain.azure_monitor import is_azure_monitor_payload

    return is_azure_monitor_payload(obj)


def _parse_azure_monitor(obj: Any) -> list[AlertEvent]:
    from shared.domain.azure_monitor import parse_azure_monitor

    return parse_azure_monitor(obj)


def _is_pagerduty(obj: Any) -> bool:
    from shared.domain.pagerduty import is_pagerduty_payload

    return is_pagerduty_payload(obj)


def _parse_pagerduty(obj: Any) -> list[AlertEvent]:
    from shared.domain.pagerduty import parse_pagerduty

    return parse_pagerduty(obj)


def _parse_alertmanager(obj: Any) -> list[AlertEvent]:
    from shared.domain.alertmanager import parse_alertmanager

    return parse_alertmanager(obj)


FORMATS: tuple[Format, ...] = (
    Format(
        "cloudevents",
        "CloudEvents (structured JSON, specversion 1.0)",
        _is_cloudevent,
        _parse_cloudevent,
        lambda i: "data.",
    ),
    Format(
        "alertmanager",
        "Prometheus Alertmanager webhook (version 4)",
        is_alertmanager_payload,
        _parse_alertmanager,
        lambda i: f"alerts[{i}].",
    ),
    Format(
        "grafana",
        "Grafana alerting webhook contact point (version 1)",
        _is_grafana,
        _parse_grafana,
        lambda i: f"alerts[{i}].",
    ),
    Format(
        "azure-monitor",
        "Azure Monitor common alert schema (an action group's webhook)",
        _is_azure_monitor,
        _parse_azure_monitor,
        lambda i: "",
    ),
    Format("pagerduty", "PagerDuty v3 webhook (incident events)", _is_pagerduty, _parse_pagerduty, lambda i: ""),
)
FORMAT_NAMES = tuple(f.name for f in FORMATS)


def format_named(name: str) -> Format | None:
    return next((f for f in FORMATS if f.name == name), None)


def claimants(obj: Any) -> list[Format]:
    """Every format that recognises ``obj`` as its own (at most one, for a valid payload)."""
    return [f for f in FORMATS if f.claims(obj)]


def parse_message(body: bytes | str) -> list[AlertEvent]:
    """Parse a payload of any registered format. Raises :class:`InvalidEvent` naming the field
    when it is no format's, is invalid, or is over a limit (shared.domain.events: MAX_*)."""
    return parse_events(decode_json(body))


def parse_events(obj: Any) -> list[AlertEvent]:
    """:func:`parse_message` on a body already decoded from JSON (the format detected)."""
    found = claimants(obj)
    if len(found) == 1:
        return parse_as(found[0], obj)
    if len(found) > 1:  # a payload two formats claim: refuse rather than guess
        raise InvalidEvent(
            "",
            f"the message looks like more than one format ({', '.join(f.name for f in found)}); "
            "send it to the route of its format",
        )
    if (
        isinstance(obj, dict)
        and ("type" in obj or "id" in obj or "data" in obj)
        and "alerts" not in obj
        and "schemaId" not in obj
    ):
        # Looks like a CloudEvent that forgot its specversion: say so rather than "unknown format".
        return parse_as(FORMATS[0], obj)
    raise InvalidEvent("", "the message is in no format the connector reads: " + "; ".join(f.title for f in FORMATS))


def parse_as(fmt: Format, obj: Any) -> list[AlertEvent]:
    """Parse ``obj`` as ``fmt`` (named by the caller, or detected) and check every field limit."""
    events = fmt.parse(obj)
    for index, event in enumerate(events):
        try:
            check_limits(event.data, fmt.prefix(index))
        except InvalidEvent as exc:
            exc.event_id = event.event_id
            raise
    return events


__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "MAX_EVENT_BYTES",
    "Format",
    "claimants",
    "format_named",
    "parse_as",
    "parse_events",
    "parse_message",
]

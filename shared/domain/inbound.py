"""Turn one queue message body into alert events, whatever format it is in."""

from __future__ import annotations

from typing import Any

from shared.domain.events import MAX_EVENT_BYTES, AlertEvent, InvalidEvent, check_limits, decode_json, parse_cloudevent


def is_alertmanager_payload(obj: Any) -> bool:
    return isinstance(obj, dict) and "alerts" in obj and "specversion" not in obj


def parse_message(body: bytes | str) -> list[AlertEvent]:
    """Parse a CloudEvent (structured JSON) or an Alertmanager webhook payload (version 4).

    Raises :class:`InvalidEvent` naming the field when the body is neither, is invalid, or is
    over a limit (shared.domain.events: MAX_*).
    """
    size = len(body.encode("utf-8") if isinstance(body, str) else body)
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent("", f"the message is {size:,} bytes; at most {MAX_EVENT_BYTES:,} are accepted")
    return parse_events(decode_json(body))


def parse_events(obj: Any) -> list[AlertEvent]:
    """:func:`parse_message` on a body already decoded from JSON."""
    if isinstance(obj, dict) and "specversion" in obj:
        event = parse_cloudevent(obj)
        _bounded(event, "data.")
        return [event]
    if is_alertmanager_payload(obj):
        from shared.domain.alertmanager import parse_alertmanager

        events = parse_alertmanager(obj)
        for index, event in enumerate(events):
            _bounded(event, f"alerts[{index}].")
        return events
    if isinstance(obj, dict) and ("type" in obj or "id" in obj or "data" in obj):
        # Looks like a CloudEvent that forgot its specversion: say so rather than "unknown format".
        return [parse_cloudevent(obj)]
    raise InvalidEvent(
        "",
        "the message is neither a CloudEvent (structured JSON with specversion) "
        "nor an Alertmanager webhook payload (with alerts)",
    )


def _bounded(event: AlertEvent, prefix: str) -> None:
    try:
        check_limits(event.data, prefix)
    except InvalidEvent as exc:
        exc.event_id = event.event_id
        raise

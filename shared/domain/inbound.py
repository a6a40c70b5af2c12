"""Turn one queue message body into alert events, whatever format it is in."""

from __future__ import annotations

from typing import Any

from shared.domain.events import AlertEvent, InvalidEvent, decode_json, parse_cloudevent


def is_alertmanager_payload(obj: Any) -> bool:
    return isinstance(obj, dict) and "alerts" in obj and "specversion" not in obj


def parse_message(body: bytes | str) -> list[AlertEvent]:
    """Parse a CloudEvent (structured JSON) or an Alertmanager webhook payload (version 4).

    Raises :class:`InvalidEvent` naming the field when the body is neither, or is invalid.
    """
    return parse_events(decode_json(body))


def parse_events(obj: Any) -> list[AlertEvent]:
    """:func:`parse_message` on a body already decoded from JSON."""
    if isinstance(obj, dict) and "specversion" in obj:
        return [parse_cloudevent(obj)]
    if is_alertmanager_payload(obj):
        from shared.domain.alertmanager import parse_alertmanager

        return parse_alertmanager(obj)
    if isinstance(obj, dict) and ("type" in obj or "id" in obj or "data" in obj):
        # Looks like a CloudEvent that forgot its specversion: say so rather than "unknown format".
        return [parse_cloudevent(obj)]
    raise InvalidEvent(
        "",
        "the message is neither a CloudEvent (structured JSON with specversion) "
        "nor an Alertmanager webhook payload (with alerts)",
    )

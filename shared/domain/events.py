"""The canonical inbound event model and the CloudEvents 1.0 (structured JSON) parser.

Pure Python: no SDK imports. Every validation error names the field that was wrong, so
the rejected event's reason tells the alert source what to fix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.domain import tenants
from shared.domain.jsondepth import too_deep

ALERT_EVENT_TYPES = (
    "alert.created",
    "alert.updated",
    "alert.acknowledged",
    "alert.escalated",
    "alert.resolved",
    "alert.reopened",
)
ISSUE_EVENT_TYPES = ("issue.created", "issue.updated")
EVENT_TYPES = ALERT_EVENT_TYPES + ISSUE_EVENT_TYPES

SEVERITIES = ("critical", "high", "medium", "low", "info")
STATUSES = ("open", "acknowledged", "resolved")
# An alert in one of these is "open" for reminders, digests and the alerts command.
UNRESOLVED = ("open", "acknowledged")
KINDS = ("alert", "issue")

# The status an event type implies; `None`: keep the status the data gives (or the current one).
STATUS_BY_TYPE: dict[str, str | None] = {
    "alert.created": "open",
    "alert.updated": None,
    "alert.acknowledged": "acknowledged",
    "alert.escalated": "open",
    "alert.resolved": "resolved",
    "alert.reopened": "open",
    "issue.created": "open",
    "issue.updated": None,
}

# Every field's limit, and why. An alert's state is one Table Storage entity (at most 1 MiB,
# each string property at most 64 KiB = 32K characters: Table service data model), and its
# card must fit a Teams message (about 28 KB: Teams limits). Over a limit, an event is
# rejected naming the field; only the title and description are trimmed (with "…"), because
# a shortened text still says what it said, where a shortened URL, id or label does not.
MAX_EVENT_BYTES = 256 * 1024  # a Service Bus Standard message (the alert-events queue)
MAX_ID_LENGTH = 256  # event id, alert id, subject: keys of the alert
MAX_SOURCE_LENGTH = 1024  # the event's source (a URI reference): part of the alert's key
MAX_TITLE_LENGTH = 1024  # trimmed
MAX_DESCRIPTION_LENGTH = 16_000  # trimmed
MAX_DISPLAY_SOURCE_LENGTH = 256  # data.source, the system's display name
MAX_URL_LENGTH = 2048  # data.url: links longer than this are not opened by every browser
MAX_LABELS = 64
MAX_LABEL_NAME_LENGTH = 256
MAX_LABEL_VALUE_LENGTH = 1024
MAX_LABELS_CHARS = 16_000  # all names and values together: one table property
MAX_RESPONDERS = 50
MAX_RESPONDER_LENGTH = 320  # an e-mail address (RFC 3696) or user principal name
# What one Table Storage string property holds: 64 KiB, UTF-16 (32,000 units, with room). The
# labels and the responders are each stored as one JSON property, so their limit is checked on
# the JSON as stored (stored_json), not on the characters sent.
MAX_STORED_PROPERTY_CHARS = 32_000


def stored_json(value: Any) -> str:
    """The JSON a field is stored as (one table property): compact, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def stored_size(text: str) -> int:
    """Its size as Table Storage counts it: UTF-16 code units (a character beyond U+FFFF is two)."""
    return len(text.encode("utf-16-le")) // 2


class InvalidEvent(ValueError):
    """The message cannot be processed as sent; never retried. ``field`` names the culprit."""

    def __init__(self, field_path: str, problem: str, event_id: str | None = None) -> None:
        self.field = field_path
        self.problem = problem
        self.event_id = event_id
        super().__init__(f"{field_path}: {problem}" if field_path else problem)


@dataclass(frozen=True)
class AlertData:
    """What the alert source says about one alert or issue."""

    id: str
    title: str
    kind: str = "alert"
    description: str = ""
    severity: str = "medium"
    status: str | None = None
    source: str = ""
    url: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    responders: tuple[str, ...] = ()
    created: datetime | None = None
    updated: datetime | None = None
    version: int = 0


def check_limits(data: AlertData, prefix: str) -> None:
    """Reject ``data`` when a field is over its limit (see MAX_*), naming the field with
    ``prefix`` ("data." for a CloudEvent, "alerts[2]." for an Alertmanager alert)."""
    if len(data.id) > MAX_ID_LENGTH:
        raise InvalidEvent(f"{prefix}id", f"is longer than {MAX_ID_LENGTH} characters")
    if len(data.source) > MAX_DISPLAY_SOURCE_LENGTH:
        raise InvalidEvent(f"{prefix}source", f"is longer than {MAX_DISPLAY_SOURCE_LENGTH} characters")
    if data.url is not None and len(data.url) > MAX_URL_LENGTH:
        raise InvalidEvent(f"{prefix}url", f"is longer than {MAX_URL_LENGTH} characters")
    if len(data.labels) > MAX_LABELS:
        raise InvalidEvent(f"{prefix}labels", f"has more than {MAX_LABELS} entries")
    total = 0
    for name, value in data.labels.items():
        if len(name) > MAX_LABEL_NAME_LENGTH:
            raise InvalidEvent(
                f"{prefix}labels", f"has a label name longer than {MAX_LABEL_NAME_LENGTH} characters ({name[:40]}…)"
            )
        if len(value) > MAX_LABEL_VALUE_LENGTH:
            raise InvalidEvent(f"{prefix}labels.{name}", f"is longer than {MAX_LABEL_VALUE_LENGTH} characters")
        total += len(name) + len(value)
    if total > MAX_LABELS_CHARS:
        raise InvalidEvent(f"{prefix}labels", f"are longer than {MAX_LABELS_CHARS} characters together")
    if len(data.responders) > MAX_RESPONDERS:
        raise InvalidEvent(f"{prefix}responders", f"has more than {MAX_RESPONDERS} entries")
    for responder in data.responders:
        if len(responder) > MAX_RESPONDER_LENGTH:
            raise InvalidEvent(f"{prefix}responders", f"has an entry longer than {MAX_RESPONDER_LENGTH} characters")
    stored: tuple[tuple[str, Any], ...] = (("labels", data.labels), ("responders", list(data.responders)))
    for field_name, field_value in stored:
        size = stored_size(stored_json(field_value))
        if size > MAX_STORED_PROPERTY_CHARS:
            raise InvalidEvent(
                f"{prefix}{field_name}",
                f"take {size:,} characters as stored (JSON, counted in UTF-16 as Table Storage does); "
                f"at most {MAX_STORED_PROPERTY_CHARS:,}",
            )


@dataclass(frozen=True)
class AlertEvent:
    """One change to one alert, from any input format."""

    event_id: str
    type: str
    source: str
    data: AlertData
    tenant_id: str | None = None
    time: datetime | None = None
    # The ingest route's source whose key let the event in (CloudEvents extension
    # "ingestsource", set by the route only); empty for events put on the queue directly.
    ingest_source: str = ""

    @property
    def dedupe_key(self) -> str:
        """CloudEvents make (source, id) unique within a sender; the tenant is part of the key,
        so two tenants' sources that reuse ids never look like one event. Hashed to a safe,
        bounded table key."""
        return hashlib.sha256(f"{self.tenant_id or ''}\n{self.source}\n{self.event_id}".encode()).hexdigest()

    @property
    def new_status(self) -> str | None:
        return STATUS_BY_TYPE[self.type] or self.data.status


def alert_key(source: str, alert_id: str) -> str:
    """Stable key of one alert across its events (the same alert id may exist in two sources)."""
    return hashlib.sha256(f"{source}\n{alert_id}".encode()).hexdigest()[:40]


def decode_json(body: bytes | str) -> Any:
    """Decode a message body, naming the problem when it is not JSON or too large."""
    size = len(body.encode("utf-8") if isinstance(body, str) else body)
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent("", f"the message is {size:,} bytes; at most {MAX_EVENT_BYTES:,} are accepted")
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError as exc:
        raise InvalidEvent("", f"the message body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise InvalidEvent("", "the message body is empty")
    if (problem := too_deep(text)) is not None:
        raise InvalidEvent("", problem)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(
            "", f"the message body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


def _string(
    obj: dict[str, Any], key: str, path: str, *, required: bool = False, max_length: int | None = None
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise InvalidEvent(path, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(path, f"must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise InvalidEvent(path, "must not be empty")
    if max_length is not None and len(value) > max_length:
        raise InvalidEvent(path, f"is longer than {max_length} characters")
    return value


def _choice(obj: dict[str, Any], key: str, path: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = _string(obj, key, path)
    if value is None:
        return default
    if value.lower() not in choices:
        raise InvalidEvent(path, f"must be one of {', '.join(choices)}, not {value!r}")
    return value.lower()


def parse_time(value: Any, path: str) -> datetime | None:
    """RFC 3339 timestamp → aware datetime (UTC when no offset is given)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(path, "must be an RFC 3339 timestamp string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.11 accepts at most 6 fractional digits; Go (Alertmanager) writes 9.
    if "." in text:
        head, _, rest = text.partition(".")
        # Only the digits right after the point: the offset that follows has digits too.
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(path, f"is not an RFC 3339 timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def to_cloudevent(event: AlertEvent, tenant_id: str, ingest_source: str = "") -> dict[str, Any]:
    """The event as a structured CloudEvent of this connector's schema, for the tenant: what
    the HTTP ingest route puts on the alert-events queue, whatever format it arrived in.
    Parsing it again gives the same event (the same alert key, version and dedupe key)."""
    data = event.data
    body: dict[str, Any] = {
        "id": data.id,
        "title": data.title,
        "kind": data.kind,
        "severity": data.severity,
        "version": data.version,
        "labels": dict(data.labels),
        "responders": list(data.responders),
    }
    for name, value in (
        ("description", data.description or None),
        ("status", data.status),
        ("source", data.source or None),
        ("url", data.url),
        ("created", data.created.isoformat() if data.created else None),
        ("updated", data.updated.isoformat() if data.updated else None),
    ):
        if value is not None:
            body[name] = value
    out: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.event_id,
        "source": event.source,
        "type": event.type,
        "subject": data.id,
        "datacontenttype": "application/json",
        "tenantid": tenant_id,
        "data": body,
    }
    if event.time is not None:
        out["time"] = event.time.isoformat()
    if ingest_source:
        out["ingestsource"] = ingest_source
    return out


def parse_alert_data(data: Any, *, event_time: datetime | None, subject: str | None) -> AlertData:
    if not isinstance(data, dict):
        raise InvalidEvent("data", "must be a JSON object")
    alert_id = _string(data, "id", "data.id", max_length=MAX_ID_LENGTH) or subject
    if not alert_id:
        raise InvalidEvent("data.id", "is required (or set the event's subject to the alert id)")
    title = _string(data, "title", "data.title", required=True)
    assert title is not None

    labels_in = data.get("labels") or {}
    if not isinstance(labels_in, dict):
        raise InvalidEvent("data.labels", "must be an object of string values")
    if len(labels_in) > MAX_LABELS:
        raise InvalidEvent("data.labels", f"has more than {MAX_LABELS} entries")
    labels: dict[str, str] = {}
    for name, value in labels_in.items():
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidEvent(f"data.labels.{name}", "must be a string")
        labels[str(name)] = str(value)

    responders_in = data.get("responders") or []
    if not isinstance(responders_in, list) or not all(isinstance(r, str) for r in responders_in):
        raise InvalidEvent("data.responders", "must be a list of user principal names or e-mail addresses")
    if len(responders_in) > MAX_RESPONDERS:
        raise InvalidEvent("data.responders", f"has more than {MAX_RESPONDERS} entries")

    url = _string(data, "url", "data.url")
    if url is not None and not url.startswith(("https://", "http://")):
        raise InvalidEvent("data.url", f"must be an http(s) URL, not {url!r}")

    updated = parse_time(data.get("updated"), "data.updated")
    version = data.get("version")
    if version is None:
        moment = updated or event_time
        if moment is None:
            raise InvalidEvent("data.version", "is required when neither data.updated nor the event's time is given")
        version = epoch_micros(moment)
    elif isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidEvent("data.version", f"must be a whole number of 0 or more, not {version!r}")

    return AlertData(
        id=alert_id,
        title=title[:MAX_TITLE_LENGTH],
        kind=_choice(data, "kind", "data.kind", KINDS, "alert") or "alert",
        description=(_string(data, "description", "data.description") or "")[:MAX_DESCRIPTION_LENGTH],
        severity=_choice(data, "severity", "data.severity", SEVERITIES, "medium") or "medium",
        status=_choice(data, "status", "data.status", STATUSES, None),
        source=_string(data, "source", "data.source") or "",
        url=url,
        labels=labels,
        responders=tuple(r.strip() for r in responders_in if r.strip()),
        created=parse_time(data.get("created"), "data.created"),
        updated=updated,
        version=version,
    )


def parse_cloudevent(obj: Any) -> AlertEvent:
    """Validate one CloudEvents 1.0 structured-mode JSON object into an :class:`AlertEvent`."""
    if not isinstance(obj, dict):
        raise InvalidEvent("", "a CloudEvent must be a JSON object")
    event_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    try:
        spec = _string(obj, "specversion", "specversion", required=True)
        if spec != "1.0":
            raise InvalidEvent("specversion", f"must be '1.0', not {spec!r}")
        _string(obj, "id", "id", required=True, max_length=MAX_ID_LENGTH)
        source = _string(obj, "source", "source", required=True, max_length=MAX_SOURCE_LENGTH)
        event_type = _string(obj, "type", "type", required=True)
        if event_type not in EVENT_TYPES:
            raise InvalidEvent("type", f"must be one of {', '.join(EVENT_TYPES)}, not {event_type!r}")
        content_type = _string(obj, "datacontenttype", "datacontenttype")
        if content_type is not None and not content_type.startswith("application/json"):
            raise InvalidEvent("datacontenttype", f"must be application/json, not {content_type!r}")
        if "data" not in obj:
            raise InvalidEvent("data", "is required")
        time = parse_time(obj.get("time"), "time")
        tenant_id = _string(obj, "tenantid", "tenantid")
        if tenant_id is not None:
            try:
                tenant_id = tenants.tenant_id(tenant_id)
            except tenants.InvalidTenantId as exc:
                raise InvalidEvent("tenantid", str(exc)) from None
        subject = _string(obj, "subject", "subject")
        ingest_source = _string(obj, "ingestsource", "ingestsource", max_length=63) or ""
        data = parse_alert_data(obj["data"], event_time=time, subject=subject)
    except InvalidEvent as exc:
        exc.event_id = event_id
        raise
    assert event_id is not None and source is not None and event_type is not None
    return AlertEvent(
        event_id=event_id,
        type=event_type,
        source=source,
        data=data,
        tenant_id=tenant_id,
        time=time,
        ingest_source=ingest_source,
    )

"""Commands that arrive on the alert-events queue beside alert events. Pure Python.

- ``teams.message.send``: the manual "send to Teams" of one alert or issue: its current card,
  with a comment, to the recipients named (an alert source or the admin route sends it);
- ``teams.workflow.existing``: deliver the open alerts a workflow matches to its recipients,
  sent by the connector itself when a workflow with the ``new_updated_existing`` trigger is
  created or changed (the queue paces the work and makes it survive a restart).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared.domain import tenants
from shared.domain.events import MAX_ID_LENGTH, InvalidEvent
from shared.domain.workflows import MAX_COMMENT_CHARS, MAX_RECIPIENTS, InvalidWorkflow, Recipient, parse_recipient

SEND_TYPE = "teams.message.send"
EXISTING_TYPE = "teams.workflow.existing"
COMMAND_TYPES = (SEND_TYPE, EXISTING_TYPE)
CONNECTOR_SOURCE = "urn:teams-alert-connector"


@dataclass(frozen=True)
class SendCommand:
    event_id: str
    source: str
    tenant_id: str | None
    alert_id: str
    alert_source: str  # the CloudEvents source of the alert's own events (keys the alert)
    recipients: tuple[Recipient, ...]
    fallback: tuple[Recipient, ...]
    comment: str
    requested_by: str

    @property
    def dedupe_key(self) -> str:
        return hashlib.sha256(f"{self.tenant_id or ''}\n{self.source}\n{self.event_id}".encode()).hexdigest()


@dataclass(frozen=True)
class ExistingCommand:
    event_id: str
    tenant_id: str
    workflow_id: str
    revision: int

    @property
    def dedupe_key(self) -> str:
        return hashlib.sha256(f"{self.tenant_id}\n{CONNECTOR_SOURCE}\n{self.event_id}".encode()).hexdigest()


Command = SendCommand | ExistingCommand


def _recipient_list(data: dict[str, Any], key: str, path: str, *, required: bool) -> tuple[Recipient, ...]:
    value = data.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        raise InvalidEvent(
            path, "must be a non-empty list of recipients" if required else "must be a list of recipients"
        )
    if len(value) > MAX_RECIPIENTS:
        raise InvalidEvent(path, f"has more than {MAX_RECIPIENTS} recipients")
    try:
        return tuple(parse_recipient(item, f"{path}[{i}]") for i, item in enumerate(value))
    except InvalidWorkflow as exc:
        raise InvalidEvent(exc.field, exc.problem) from None


def _text(obj: dict[str, Any], key: str, path: str, *, required: bool = False, max_chars: int = MAX_ID_LENGTH) -> str:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidEvent(path, "is required")
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(path, f"must be a string, not {type(value).__name__}")
    if len(value) > max_chars:
        raise InvalidEvent(path, f"is longer than {max_chars} characters")
    return value.strip()


def parse_command(obj: dict[str, Any]) -> Command:
    """Validate a command CloudEvent (``type`` is one of :data:`COMMAND_TYPES`)."""
    event_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    try:
        if obj.get("specversion") != "1.0":
            raise InvalidEvent("specversion", 'must be "1.0"')
        eid = _text(obj, "id", "id", required=True)
        source = _text(obj, "source", "source", required=True, max_chars=1024)
        tenant = _text(obj, "tenantid", "tenantid") or None
        if tenant is not None:
            try:
                tenant = tenants.tenant_id(tenant)
            except tenants.InvalidTenantId as exc:
                raise InvalidEvent("tenantid", str(exc)) from None
        data = obj.get("data")
        if not isinstance(data, dict):
            raise InvalidEvent("data", "must be a JSON object")
        if obj["type"] == EXISTING_TYPE:
            if source != CONNECTOR_SOURCE:
                raise InvalidEvent("source", f"{EXISTING_TYPE} is sent by the connector itself ({CONNECTOR_SOURCE})")
            if not tenant:
                raise InvalidEvent("tenantid", "is required")
            revision = data.get("revision")
            if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
                raise InvalidEvent("data.revision", "must be a whole number of 1 or more")
            return ExistingCommand(eid, tenant, _text(data, "workflowId", "data.workflowId", required=True), revision)
        alert_id = _text(data, "alertId", "data.alertId") or _text(obj, "subject", "subject")
        if not alert_id:
            raise InvalidEvent("subject", "is required: the id of the alert or issue to send (or data.alertId)")
        return SendCommand(
            event_id=eid,
            source=source,
            tenant_id=tenant,
            alert_id=alert_id,
            alert_source=_text(data, "alertSource", "data.alertSource", max_chars=1024) or source,
            recipients=_recipient_list(data, "recipients", "data.recipients", required=True),
            fallback=_recipient_list(data, "fallbackRecipients", "data.fallbackRecipients", required=False),
            comment=_text(data, "comment", "data.comment", max_chars=MAX_COMMENT_CHARS),
            requested_by=_text(data, "requestedBy", "data.requestedBy", max_chars=200),
        )
    except InvalidEvent as exc:
        exc.event_id = event_id
        raise


def send_command(
    event_id: str,
    source: str,
    tenant_id: str,
    alert_id: str,
    alert_source: str,
    recipients: Any,
    *,
    fallback: Any = None,
    comment: str = "",
    requested_by: str = "",
) -> dict[str, Any]:
    """The ``teams.message.send`` CloudEvent that sends an alert's current card to recipients
    (checked by :func:`parse_command` when it is read)."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": SEND_TYPE,
        "subject": alert_id,
        "tenantid": tenant_id,
        "datacontenttype": "application/json",
        "data": {
            "alertId": alert_id,
            "alertSource": alert_source,
            "recipients": recipients,
            "fallbackRecipients": fallback or [],
            "comment": comment,
            "requestedBy": requested_by,
        },
    }


def existing_command(tenant_id: str, workflow_id: str, revision: int) -> dict[str, Any]:
    """The CloudEvent that asks for a workflow's already-open alerts; its id is stable per
    workflow revision, so a resend is a duplicate."""
    event_id = f"existing-{workflow_id}-r{revision}"
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": CONNECTOR_SOURCE,
        "type": EXISTING_TYPE,
        "tenantid": tenant_id,
        "subject": workflow_id,
        "datacontenttype": "application/json",
        "data": {"workflowId": workflow_id, "revision": revision},
    }

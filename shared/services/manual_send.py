"""The manual "send to Teams" of one alert (the admin route's and the console's): checked here,
then queued as a ``teams.message.send`` command on the alert-events queue, which delivers it
like any event (paced, retried, to the fallback recipients when a recipient cannot be reached)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from shared.domain.commands import SendCommand, parse_command, send_command
from shared.domain.events import InvalidEvent
from shared.domain.workflows import InvalidWorkflow
from shared.ports import ActionPublisher, StateStore
from shared.services.actions import find_alert
from shared.services.workflows import check_recipients_of


class SendRefused(Exception):
    """The send was not queued: ``status`` as HTTP would say it, ``field`` the culprit ("" for none)."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.field = field


async def send_alert(
    store: StateStore,
    resolver: Any,  # shared.services.recipients.RecipientResolver
    commands: ActionPublisher | None,
    tenant_id: str,
    alert_id: str,
    body: Any,
    *,
    requested_by: str,
) -> dict[str, str]:
    """Queue the send; what was queued (event id, alert id). SendRefused says why not."""
    if not isinstance(body, dict):
        raise SendRefused(400, "the body must be a JSON object with recipients (and comment, fallbackRecipients)")
    state = await find_alert(store, tenant_id, alert_id)
    if state is None:
        raise SendRefused(404, f"tenant {tenant_id} has no alert {alert_id}")
    given = body.get("id")
    event_id = given if isinstance(given, str) and given else f"send-{uuid.uuid4()}"
    command = send_command(
        event_id,
        "urn:teams-alert-connector:admin",
        tenant_id,
        state.alert_id,
        state.event_source,
        body.get("recipients"),
        fallback=body.get("fallbackRecipients"),
        comment=body.get("comment") or "",
        requested_by=body.get("requestedBy") or requested_by,
    )
    try:
        parsed = parse_command(command)
    except InvalidEvent as exc:
        field = exc.field.removeprefix("data.")
        raise SendRefused(400, f"{field}: {exc.problem}", field) from None
    assert isinstance(parsed, SendCommand)
    try:
        await check_recipients_of(
            resolver,
            tenant_id,
            [(f"recipients[{i}]", r, "bot") for i, r in enumerate(parsed.recipients)]
            + [(f"fallbackRecipients[{i}]", r, "bot") for i, r in enumerate(parsed.fallback)],
        )
    except InvalidWorkflow as exc:
        raise SendRefused(400, str(exc), exc.field) from None
    if commands is None:
        raise SendRefused(
            503,
            "no queue to send through: set ServiceBusConnection__fullyQualifiedNamespace (or LOCAL_QUEUE_HOST_URL "
            "locally)",
        )
    await commands.publish(hashlib.sha256(f"{tenant_id}\n{event_id}".encode()).hexdigest()[:32], command)
    return {"eventId": event_id, "alertId": state.alert_id, "status": "queued"}

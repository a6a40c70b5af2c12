"""The alert state machine: open → acknowledged → resolved, reopen; newest version wins."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from shared.domain.events import AlertEvent, alert_key
from shared.domain.model import AlertState, StatusStep


def apply_event(current: AlertState | None, event: AlertEvent, tenant_id: str, now: datetime) -> AlertState | None:
    """The alert's state after ``event``, or ``None`` when the event is not newer than what we
    hold (events for one alert may arrive out of order: only a higher ``version`` applies)."""
    data = event.data
    if current is not None and data.version <= current.version:
        return None
    status = event.new_status or (current.status if current else "open")
    changed = current is None or current.status != status
    base = current or AlertState(
        tenant_id=tenant_id,
        key=alert_key(event.source, data.id),
        alert_id=data.id,
        source=data.source,
        event_source=event.source,
        title=data.title,
        status=status,
        severity=data.severity,
        created=data.created or event.time or now,
    )
    moment = data.updated or event.time or now
    if current is not None and changed:
        # The source changed the status: every copy of the card says so, as for a change in Teams.
        step = "reopened" if current.status == "resolved" and status == "open" else status
        base = base.with_step(StatusStep(step, moment, via=data.source or base.source or "the source"))
    return replace(
        base,
        title=data.title,
        status=status,
        severity=data.severity,
        kind=data.kind,
        description=data.description,
        source=data.source or base.source,
        url=data.url,
        labels=dict(data.labels),
        responders=tuple(data.responders),
        version=data.version,
        revision=(current.revision if current else 0) + 1,
        updated=moment,
        status_changed=now if changed else (base.status_changed or now),
    )


def needs_reminder(state: AlertState, now: datetime, after_minutes: int) -> bool:
    """Open (never acknowledged since it last opened) for longer than ``after_minutes``."""
    if state.status != "open":
        return False
    since = state.status_changed or state.updated or state.created
    return since is not None and (now - since).total_seconds() >= after_minutes * 60

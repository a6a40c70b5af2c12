"""run_periodic: reminders for alerts left open and unacknowledged."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable

from shared.domain.alerts import needs_reminder
from shared.ports import ConcurrencyConflict, DeliveryError, StateStore, TeamsMessenger

log = logging.getLogger(__name__)


@dataclass
class PeriodicReport:
    alerts_checked: int = 0
    reminders_sent: int = 0
    failures: list[str] = field(default_factory=list)


def reminder_text(minutes_open: int) -> str:
    hours, minutes = divmod(minutes_open, 60)
    span = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"⏰ Reminder: this alert has been open and unacknowledged for {span}."


async def run_periodic(
    *,
    store: StateStore,
    messenger: TeamsMessenger,
    reminder_after_minutes: int,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> PeriodicReport:
    """Reply in each open alert's card thread once per ``reminder_after_minutes``.

    The time of each reminder is recorded on the delivery *before* the reply is sent (an
    ETag-conditional write), so overlapping runs or a retried run never remind twice in one
    interval.
    """
    report = PeriodicReport()
    now = clock()
    interval = timedelta(minutes=reminder_after_minutes)
    for state in await store.list_alerts(statuses=("open",)):
        report.alerts_checked += 1
        if not needs_reminder(state, now, reminder_after_minutes):
            continue
        since = state.status_changed or state.created or now
        text = reminder_text(int((now - since).total_seconds() // 60))
        for delivery in await store.list_deliveries(state.tenant_id, state.key):
            if delivery.status != "posted" or not delivery.activity_id:
                continue
            if delivery.last_reminder and now - delivery.last_reminder < interval:
                continue
            conversation = await store.get_conversation(state.tenant_id, delivery.conversation_id)
            if conversation is None:
                continue  # the bot was removed from that conversation
            try:
                claimed = await store.save_delivery(replace(delivery, last_reminder=now))
            except ConcurrencyConflict:
                continue  # another run is sending this reminder
            try:
                await messenger.reply(conversation, delivery.activity_id, text)
                report.reminders_sent += 1
            except DeliveryError as exc:
                report.failures.append(f"{state.alert_id} in {delivery.conversation_id}: {exc}")
                if not exc.permanent:  # try again next run
                    await store.save_delivery(replace(claimed, last_reminder=delivery.last_reminder))
    log.info("Periodic run: %d open alerts checked, %d reminders sent, %d failures", report.alerts_checked, report.reminders_sent, len(report.failures))
    return report

"""run_periodic: reminders for alerts left open and unacknowledged; run_digests: the digests of
periodic workflows."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import cards
from shared.domain import retention
from shared.domain import workflows as routing
from shared.domain.alerts import needs_reminder, snoozed
from shared.domain.jobs import DIGEST, REMINDER, DeliveryJob
from shared.domain.model import AlertState, ConversationRecord
from shared.ports import ConcurrencyConflict, JobQueue, StateStore
from shared.services.delivery import digest_elsewhere
from shared.services.processing import Delivering
from shared.services.recipients import Unreachable

log = logging.getLogger(__name__)


@dataclass
class PeriodicReport:
    alerts_checked: int = 0
    reminders_queued: int = 0
    failures: list[str] = field(default_factory=list)
    # Open alerts whose silence made from Teams has run out: their source is asked about them.
    silences_ended: list[AlertState] = field(default_factory=list)
    # Alerts whose snooze has run out: their cards stop saying so.
    snoozes_ended: list[AlertState] = field(default_factory=list)


def reminder_text(minutes_open: int) -> str:
    hours, minutes = divmod(minutes_open, 60)
    span = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"⏰ Reminder: this alert has been open and unacknowledged for {span}."


async def run_periodic(
    *,
    store: StateStore,
    jobs: JobQueue,
    reminder_after_minutes: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PeriodicReport:
    """Remind in each open alert's card thread once per ``reminder_after_minutes``.

    A reminder is a job on the deliveries queue, in its conversation's session like every
    other send: paced under Teams' limits and the tenant's budget, retried by the queue when
    Teams fails it for now. The time of each reminder is recorded on the delivery *before* the
    job is queued (an ETag-conditional write), so overlapping runs or a retried run never
    remind twice in one interval."""
    report = PeriodicReport()
    now = clock()
    interval = timedelta(minutes=reminder_after_minutes)
    # Read through the open-alert index (O(open alerts)); its rows of alerts resolved a while
    # ago are dropped on the way.
    for state in await store.list_open_alerts(prune_before=now - retention.STALE_INDEX_GRACE):
        if state.silence and datetime.fromisoformat(str(state.silence["until"])) <= now:
            report.silences_ended.append(state)
        if state.snooze and not snoozed(state, now):
            report.snoozes_ended.append(state)
        if state.status != "open":
            continue
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
                continue  # another run is queueing this reminder
            job = DeliveryJob(
                conversation,
                REMINDER,
                None,
                text=text,
                extra={"alertKey": state.key},
                request=f"reminder-{now:%Y%m%dT%H%M}",
            )
            try:
                await jobs.send([job])
                report.reminders_queued += 1
            except Exception as exc:  # noqa: BLE001 - the next run reminds instead
                report.failures.append(f"{state.alert_id} in {delivery.conversation_id}: {exc}")
                with contextlib.suppress(ConcurrencyConflict):
                    await store.save_delivery(replace(claimed, last_reminder=delivery.last_reminder))
    log.info(
        "Periodic run: %d open alerts checked, %d reminders queued, %d failures",
        report.alerts_checked,
        report.reminders_queued,
        len(report.failures),
    )
    return report


async def run_timer(ctx: Delivering, actions: Any, reminder_after_minutes: int) -> None:
    """Everything the timer does: reminders, digests, actions waiting to be published, and
    removal of what has outlived its retention. Each part reads an index or schedule of what
    is open, due or pending, so a run costs the same however much history is stored."""
    from shared.services.actions import publish_pending, silence_ended, snooze_ended

    report = await run_periodic(
        store=ctx.store, jobs=ctx.jobs, reminder_after_minutes=reminder_after_minutes, clock=ctx.clock
    )
    for state in report.silences_ended:
        try:
            await silence_ended(actions, state)
        except Exception as exc:  # noqa: BLE001 - the next run asks again
            log.warning("The end of the silence of alert %s was not reconciled: %s", state.alert_id, exc)
    for state in report.snoozes_ended:  # one whose silence ended too is read again on its ETag
        try:
            await snooze_ended(actions, state)
        except Exception as exc:  # noqa: BLE001 - the next run tries again
            log.warning("The end of the snooze of alert %s was not drawn: %s", state.alert_id, exc)
    await run_digests(ctx)
    published = await publish_pending(actions)
    if published:
        log.info("Published %d actions that had waited for the outbound queue", published)
    await run_removals(ctx.store, ctx.clock())


# ---------------------------------------------------------------------------- retention


async def run_removals(store: StateStore, now: datetime) -> Any:
    """Remove what has outlived its retention (shared.domain.retention), a bounded amount per run."""
    report = await store.remove_due(now)
    if report.handled or report.failures:
        log.info("Retention: %s", report.summary())
    for failure in report.failures[:10]:
        log.warning("Retention: could not remove %s; trying again in an hour", failure)
    return report


# ---------------------------------------------------------------------------- digests


@dataclass
class DigestReport:
    workflows: int = 0
    queued: int = 0
    fallback: int = 0
    undeliverable: list[str] = field(default_factory=list)


async def run_digests(ctx: Delivering) -> DigestReport:
    """One digest card per recipient of each periodic workflow, once per its interval.

    A digest is a **new message** each period, not one card updated in place: it is a report
    of what was open at that moment, it notifies the people it is for (an edit does not), and
    the previous digests stay readable as history. A period with nothing open posts nothing.
    Each digest is a job on the deliveries queue, in its conversation's session, paced like
    every send; the job claims (workflow, period, conversation) with a conditional insert before
    the post, so overlapping or retried runs post a period's digest once. A recipient that
    cannot be reached now, or that refuses the digest for good, has it sent to the workflow's
    fallback recipients with a note, or recorded as undeliverable."""
    report = DigestReport()
    now = ctx.clock()
    open_by_tenant: dict[str, list[AlertState]] = {}
    for workflow in await ctx.store.list_all_workflows():
        if not workflow.enabled or workflow.trigger != "periodic":
            continue
        report.workflows += 1
        if workflow.tenant_id not in open_by_tenant:
            open_by_tenant[workflow.tenant_id] = await ctx.store.list_open_alerts(workflow.tenant_id)
        alerts = [a for a in open_by_tenant[workflow.tenant_id] if workflow.match.why_not(a) is None]
        if not alerts:
            continue
        key = f"digest:{workflow.id}:{routing.periodic_slot(workflow, now)}"
        period = f"Every {workflow.interval_minutes} minutes."
        context = {"workflows": [workflow.name], **({"comments": [workflow.comment]} if workflow.comment else {})}
        card = cards.digest_card(workflow.name, alerts, period, context)
        for recipient in workflow.recipients:
            if recipient.kind == "responders":
                continue  # a digest covers many alerts: it has no single set of responders
            template = DeliveryJob(
                ConversationRecord(workflow.tenant_id, "", "channel", "", {}),  # the recipient's, once resolved
                DIGEST,
                None,
                recipient=recipient.label(),
                reason=f"workflow {workflow.name}",
                fallback=tuple(r.to_json() for r in workflow.fallback_recipients),
                request=key,
                extra={"key": key, "card": card, "summary": f"Digest: {workflow.name}"},
            )
            assert ctx.resolver is not None
            try:
                conversation = await ctx.resolver.resolve(workflow.tenant_id, recipient, workflow.delivery)
            except Unreachable as exc:
                if await digest_elsewhere(ctx, template, recipient.label(), str(exc)):
                    report.fallback += 1
                else:
                    report.undeliverable.append(recipient.label())
                continue
            if await ctx.store.get_delivery(workflow.tenant_id, key, conversation.conversation_id) is not None:
                continue  # this period's digest is there (or on its way) already
            await ctx.jobs.send([replace(template, conversation=conversation)])
            report.queued += 1
    if report.workflows:
        log.info(
            "Digests: %d periodic workflows, %d queued, %d to a fallback, %d undeliverable",
            report.workflows,
            report.queued,
            report.fallback,
            len(report.undeliverable),
        )
    return report

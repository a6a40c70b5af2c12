"""process_message: one queue message → alert state → routing plan → one card per recipient.

Service Bus delivers at least once; the visible effect in Teams is exactly once:
- every event id is recorded once processed, and a redelivered event is skipped; an event
  applied before a failure is recognised (the alert records it) and routed the same way again;
- every card is recorded (alert and conversation → activity id) and a later change updates
  that card in place, never posts again;
- a delivery is *claimed* (a conditional insert) before the post, so two workers handling
  events of the same alert at once cannot both post.

Routing decides who gets a new card (:mod:`shared.domain.workflows`); delivery never decides.
A card already delivered is always kept current, whether or not a workflow still matches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import cards
from shared.domain import workflows as routing
from shared.domain.alerts import apply_event
from shared.domain.commands import COMMAND_TYPES, ExistingCommand, SendCommand, parse_command
from shared.domain.events import AlertEvent, InvalidEvent, alert_key, decode_json
from shared.domain.inbound import parse_events
from shared.domain.jobs import CARD, COMMENT, DeliveryJob, JobBundle, bundle, conversation_from_json
from shared.domain.model import AlertState, ConversationRecord, RejectedEvent
from shared.domain.source_api import silenceable_source
from shared.ports import (
    ActionPublisher,
    ConcurrencyConflict,
    ConversationStore,
    EventLog,
    JobQueue,
    StateStore,
    TeamsMessenger,
    TransientError,
)
from shared.resilience import tried_again
from shared.services.delivery import TenantBudget, send_to_fallback
from shared.services.recipients import RecipientResolver, Unreachable

log = logging.getLogger(__name__)

# A claim older than this belongs to a worker that died between claiming and recording the
# post; it may be taken over. Longer than a bot send with retries can take.
CLAIM_TIMEOUT = timedelta(minutes=2)
# Optimistic-concurrency retries on the alert entity before giving the message back.
MAX_STATE_ATTEMPTS = 5
# A workflow created with the new_updated_existing trigger delivers at most this many of the
# alerts already open (newest first); the rest stay in the `alerts` command's list.
MAX_EXISTING_ALERTS = 100


@dataclass
class Outcome:
    """What happened to one event (or to a message that could not be parsed)."""

    event_id: str | None
    result: str  # processed | duplicate | stale | rejected
    detail: str = ""
    alert_id: str | None = None
    posted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)  # conversations that got a card for someone unreachable
    undeliverable: list[str] = field(default_factory=list)  # recipients reached by nobody
    queued: list[str] = field(default_factory=list)  # conversations a delivery job was queued for

    def summary(self) -> str:
        parts = [f"queued {len(self.queued)} delivery job(s)"]
        if self.posted or self.updated or self.failed:
            parts += [f"posted {len(self.posted)}", f"updated {len(self.updated)}", f"failed {len(self.failed)}"]
        if self.fallback:
            parts.append(f"fallback {len(self.fallback)}")
        if self.undeliverable:
            parts.append(f"undeliverable {len(self.undeliverable)} ({'; '.join(self.undeliverable)})")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The structured form logged with the outcome (``extra={"outcome": ...}``)."""
        return {
            "kind": "event",
            "eventId": self.event_id,
            "alertId": self.alert_id,
            "result": self.result,
            "detail": self.detail,
            "queued": len(self.queued),
            "undeliverable": list(self.undeliverable),
        }


class UnroutableEvent(InvalidEvent):
    """The event names no tenant and the connector cannot choose one."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Delivering:
    """What delivery needs besides the alert: the store, the deliveries queue, the messenger
    (for the queue's consumer), the recipient resolver, the tenant's send budget, a clock."""

    store: StateStore
    messenger: TeamsMessenger
    jobs: JobQueue
    resolver: RecipientResolver | None = None
    clock: Callable[[], datetime] = _now
    tenant_rate: TenantBudget | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # Where events about alerts go back to their source (the outbound queue): whom a card mentioned.
    outbound: ActionPublisher | None = None

    def __post_init__(self) -> None:
        if self.resolver is None:
            self.resolver = RecipientResolver(self.store, clock=self.clock)


# Events of one batch processed at once (as many as the single-message trigger ran per instance).
BATCH_CONCURRENCY = 16
# A message of a batch that fails for now is tried again this many times in the run, 0.2, 0.4,
# 0.8 s apart, before the batch fails: one event's brief Table Storage failure would otherwise
# send the whole batch round again (and, repeated, into the dead letters with it).
BATCH_RETRIES = 3


@dataclass(frozen=True)
class QueuedEvent:
    """One alert-events message: its body, id, and how many times it was delivered."""

    body: bytes | str
    message_id: str
    delivery_count: int = 1


class _CollectedJobs:
    """The deliveries queue of one batch of events: jobs are kept, then sent together, each
    conversation's as one bundle (shared.domain.jobs.bundle)."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.jobs: list[DeliveryJob] = []
        self._ids: set[str] = set()

    async def send(self, jobs: Sequence[DeliveryJob | JobBundle]) -> None:
        for job in jobs:
            for one in job.jobs if isinstance(job, JobBundle) else (job,):
                if one.message_id not in self._ids:  # a message tried again in the run routes the same jobs again
                    self._ids.add(one.message_id)
                    self.jobs.append(one)

    async def flush(self) -> None:
        jobs, self.jobs, self._ids = self.jobs, [], set()
        if jobs:
            await self.queue.send(bundle(jobs))

    async def close(self) -> None:
        return None


async def process_batch(
    messages: Sequence[QueuedEvent], ctx: Delivering, *, default_tenant_id: str | None = None
) -> list[list[Outcome]]:
    """Process a batch of alert-events messages, :data:`BATCH_CONCURRENCY` at a time; their
    delivery jobs go out at the end, one bundle per conversation. The jobs of the messages that
    were processed are sent even when others failed; then a failure raises (TransientError: the
    batch is delivered again). A redelivered event finds its alert holding it and is routed
    again with jobs that are not "new" (only the call that created an alert makes new jobs), so
    a bundle made differently the second time looks up what the first one's jobs did."""
    collected = _CollectedJobs(ctx.jobs)
    batch_ctx = replace(ctx, jobs=collected)
    slots = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(message: QueuedEvent) -> list[Outcome]:
        async with slots:
            return await tried_again(
                lambda _: process_message(
                    message.body, message.message_id, batch_ctx, default_tenant_id=default_tenant_id
                ),
                retry_on=TransientError,
                retries=BATCH_RETRIES,
                sleep=ctx.sleep,
            )

    results = await asyncio.gather(*(one(m) for m in messages), return_exceptions=True)
    await collected.flush()
    failures = [(m, r) for m, r in zip(messages, results, strict=True) if isinstance(r, BaseException)]
    for _, result in failures:
        if not isinstance(result, Exception):
            raise result  # cancellation and the like
    if failures:
        if all(isinstance(r, TransientError) for _, r in failures):
            raise TransientError("; ".join(f"message {m.message_id}: {r}" for m, r in failures))
        raise next(r for _, r in failures if not isinstance(r, TransientError))
    return [r for r in results if not isinstance(r, BaseException)]


async def process_message(
    body: bytes | str,
    message_id: str,
    ctx: Delivering,
    *,
    default_tenant_id: str | None = None,
) -> list[Outcome]:
    """Process one queue message. Invalid input is recorded as rejected and never raises;
    transient failures raise :class:`TransientError` so Service Bus redelivers."""
    store, clock = ctx.store, ctx.clock
    try:
        obj = decode_json(body)
        if isinstance(obj, dict) and obj.get("type") in COMMAND_TYPES and "specversion" in obj:
            command = parse_command(obj)
            return [await process_command(command, ctx, default_tenant_id=default_tenant_id)]
        events = parse_events(obj)
    except InvalidEvent as exc:
        return [await _reject(store, message_id, body, exc, clock(), _named_tenant(body) or default_tenant_id)]

    outcomes: list[Outcome] = []
    transient: list[str] = []
    for event in events:
        try:
            outcomes.append(await process_event(event, ctx, default_tenant_id=default_tenant_id))
        except InvalidEvent as exc:
            outcomes.append(await _reject(store, message_id, body, exc, clock(), event.tenant_id or default_tenant_id))
        except TransientError as exc:
            transient.append(f"event {event.event_id}: {exc}")
    if transient:
        raise TransientError("; ".join(transient))
    return outcomes


def _named_tenant(body: bytes | str) -> str | None:
    """The tenant a message that could not be parsed names (its tenantid), if one can be read."""
    from shared.domain.tenants import InvalidTenantId, tenant_id

    try:
        obj = decode_json(body)
    except InvalidEvent:
        return None
    first = obj[0] if isinstance(obj, list) and obj else obj
    named = first.get("tenantid") if isinstance(first, dict) else None
    try:
        return tenant_id(named) if isinstance(named, str) else None
    except InvalidTenantId:
        return None


async def _reject(
    store: EventLog, message_id: str, body: bytes | str, exc: InvalidEvent, now: datetime, tenant: str | None
) -> Outcome:
    text = body.decode("utf-8", errors="replace") if isinstance(body, (bytes, bytearray)) else body
    reason = str(exc)
    await store.record_rejected(
        RejectedEvent(
            message_id=message_id,
            reason=reason,
            field=exc.field,
            event_id=exc.event_id,
            body=text,
            received=now,
            tenant_id=tenant,
        )
    )
    outcome = Outcome(event_id=exc.event_id, result="rejected", detail=reason)
    # Bad input, not a fault of the connector: a warning, once; the message is completed.
    log.warning(
        "Rejected message %s (event %s): %s",
        message_id,
        exc.event_id or "-",
        reason,
        extra={"outcome": outcome.to_json()},
    )
    return outcome


async def resolve_tenant(
    tenant_id: str | None, event_id: str, store: ConversationStore, default_tenant_id: str | None
) -> str:
    if tenant_id:
        return tenant_id
    if default_tenant_id:
        return default_tenant_id
    tenants = sorted({c.tenant_id for c in await store.list_conversations()})
    if len(tenants) == 1:
        return tenants[0]
    if not tenants:
        raise UnroutableEvent(
            "tenantid",
            "no Teams conversation has the bot installed yet, so there is nowhere to post; "
            "install the app in a team or chat (or name the tenant with the tenantid attribute)",
            event_id,
        )
    raise UnroutableEvent(
        "tenantid",
        (
            f"the bot is installed in {len(tenants)} tenants; name one with the tenantid attribute or set "
            "DEFAULT_TENANT_ID"
        ),
        event_id,
    )


async def process_event(event: AlertEvent, ctx: Delivering, *, default_tenant_id: str | None = None) -> Outcome:
    """Apply the event to its alert, route the change, queue the delivery jobs.

    No separate processed-events record is needed: the alert remembers the event whose
    version it holds, so a redelivered event is either older (nothing to do) or that very
    event (routed again the same way; its jobs have the same message ids, which Service Bus
    drops as duplicates, and a job never renders a revision the card already shows)."""
    store = ctx.store
    tenant_id = await resolve_tenant(event.tenant_id, event.event_id, store, default_tenant_id)
    state, change, created = await _apply(event, tenant_id, store, ctx.clock())
    if created and state.status == "resolved":
        # First seen resolved (its firing never reached the connector, or came before it was
        # connected): kept, so a later reopen has its history, but no card. An on-call channel
        # does not want a card for an alert it never saw open.
        first = Outcome(
            event.event_id, "processed", "the alert was first seen resolved: recorded, no card", alert_id=event.data.id
        )
        log.info(
            "Event %s: alert %s first seen resolved; recorded, no card",
            event.event_id,
            event.data.id,
            extra={"outcome": first.to_json()},
        )
        return first
    outcome = Outcome(
        event.event_id,
        "processed" if change else "stale",
        "" if change else f"version {event.data.version} is not newer than {state.version}",
        alert_id=event.data.id,
    )
    # Only a change routes: a stale event syncs the cards already delivered (it heals a card
    # whose update failed earlier).
    plan = routing.plan(state, change, await store.list_workflows(tenant_id)) if change else None
    await deliver(state, plan, ctx, outcome, request=event.dedupe_key[:16], new=created)
    log.info(
        "Event %s (%s) for alert %s: %s; %s",
        event.event_id,
        event.type,
        event.data.id,
        outcome.result,
        outcome.summary(),
        extra={"outcome": outcome.to_json()},
    )
    return outcome


async def _silenceable(event: AlertEvent, tenant_id: str, store: StateStore) -> bool:
    """The alert's source is an Alertmanager or Grafana that came through the ingest route, and
    its tenant's admin set that source's API: its card can offer Silence. Read through the
    store's cache (a few seconds old at most), and only for those sources."""
    if not event.ingest_source or not silenceable_source(event.data.source):
        return False
    return await store.get_source_api(tenant_id, event.ingest_source) is not None


async def _apply(
    event: AlertEvent, tenant_id: str, store: StateStore, now: datetime
) -> tuple[AlertState, str | None, bool]:
    """Apply the event; returns the state, the change it made ("new", "updated", or None when
    it is older than what is held) and whether this call created the alert. An event applied
    before (redelivered after a failure) returns the change it made then, so it is routed
    again the same way."""
    key = alert_key(event.source, event.data.id)
    silenceable = await _silenceable(event, tenant_id, store)
    if event.type.endswith(".created"):
        # Most "created" events name a new alert: try the insert first (one request, not two).
        first = apply_event(None, event, tenant_id, now)
        assert first is not None
        try:
            saved = await store.save_alert(
                replace(first, first_event=event.dedupe_key, last_event=event.dedupe_key, silenceable=silenceable),
                every_attempt=True,
            )
            return saved, "new", True
        except ConcurrencyConflict:
            pass  # it exists: decide on what is there
    for _ in range(MAX_STATE_ATTEMPTS):
        current = await store.get_alert(tenant_id, key)
        if current is not None and current.ingest_source and event.ingest_source not in ("", current.ingest_source):
            # What a source key may do: create alerts, and change the ones its own source created.
            raise InvalidEvent(
                "source",
                f"alert {event.data.id} belongs to ingest source {current.ingest_source}; "
                f"source {event.ingest_source}'s key cannot change it",
                event.event_id,
            )
        if current is not None and current.last_event == event.dedupe_key:
            return current, "new" if current.first_event == event.dedupe_key else "updated", False
        new = apply_event(current, event, tenant_id, now)
        if new is None:
            assert current is not None
            return current, None, False
        new = replace(
            new,
            last_event=event.dedupe_key,
            first_event=current.first_event if current else event.dedupe_key,
            silenceable=silenceable,
        )
        try:
            return await store.save_alert(new), "new" if current is None else "updated", current is None
        except ConcurrencyConflict:
            continue  # another worker changed the alert: read again and re-decide
    raise TransientError(f"alert {event.data.id} kept changing under concurrent updates")


# ---------------------------------------------------------------------------- delivery


@dataclass
class _Slot:
    """One conversation that should show the alert, and what its card says about why."""

    conversation: ConversationRecord
    recipient: str
    reason: str
    context: dict[str, Any] | None = None
    fallback: dict[str, dict[str, Any]] = field(default_factory=dict)  # recipient key -> recipient JSON

    def merge(self, context: dict[str, Any] | None, target: routing.Target | None) -> None:
        if target is not None:
            self.fallback.update({r.key: r.to_json() for r in target.fallback})
        if not context:
            return
        mine = self.context or {}
        self.context = {
            key: list(dict.fromkeys((mine.get(key) or []) + (context.get(key) or [])))
            for key in ("comments", "workflows")
        } | {k: v for k, v in (mine | context).items() if k not in ("comments", "workflows")}


def target_context(target: routing.Target, note: str = "") -> dict[str, Any] | None:
    context: dict[str, Any] = {}
    if target.comments:
        context["comments"] = list(target.comments)
    if target.workflows:
        context["workflows"] = list(target.workflows)
    elif target.reason.startswith("sent by "):
        context["sentBy"] = target.reason.removeprefix("sent by ")
    if note:
        context["note"] = note
    return context or None


async def deliver(
    state: AlertState,
    plan: routing.Plan | None,
    ctx: Delivering,
    outcome: Outcome | None = None,
    *,
    request: str = "",
    new: bool = False,
    except_conversation: str | None = None,
) -> Outcome:
    """Queue a delivery job for every conversation that should show ``state``: the plan's
    recipients (or, broadcast, every conversation where the bot is installed), the alert's own
    channel, and every conversation that already has its card. ``plan`` None: only the cards
    that exist. ``new``: the alert was just created, so no card of it exists yet.

    A recipient that cannot be reached sends the card to its fallback recipients with a note
    (or records the alert as undeliverable); a refusal by Teams is handled the same way by the
    job. Sending happens in the deliveries queue's consumer (:mod:`shared.services.delivery`)."""
    outcome = outcome or Outcome(None, "processed")
    store = ctx.store
    slots: dict[str, _Slot] = {}
    unreachable: list[tuple[str, str, tuple[dict[str, Any], ...], dict[str, Any] | None]] = []

    def add(
        conversation: ConversationRecord,
        recipient: str,
        reason: str,
        context: dict[str, Any] | None = None,
        target: routing.Target | None = None,
    ) -> None:
        slot = slots.get(conversation.conversation_id)
        if slot is None:
            slot = slots[conversation.conversation_id] = _Slot(conversation, recipient, reason, context)
            if target is not None:
                slot.fallback.update({r.key: r.to_json() for r in target.fallback})
        else:
            slot.merge(context, target)

    existing = {} if new else {d.conversation_id: d for d in await store.list_deliveries(state.tenant_id, state.key)}
    if plan is not None and plan.broadcast:
        for conversation in await store.list_conversations(state.tenant_id):
            if conversation.origin == "teams" and conversation.alert_key in (None, state.key):
                add(
                    conversation,
                    conversation.name or conversation.conversation_id,
                    "broadcast: the tenant has no workflows",
                )
    elif plan is not None:
        assert ctx.resolver is not None
        for target in plan.targets:
            try:
                conversation = await ctx.resolver.resolve(state.tenant_id, target.recipient, target.delivery)
            except Unreachable as exc:
                unreachable.append(
                    (
                        target.recipient.label(),
                        str(exc),
                        tuple(r.to_json() for r in target.fallback),
                        target_context(target),
                    )
                )
                continue
            context = target_context(target)
            if target.mention:
                context = {**(context or {}), **await ctx.resolver.mentions(state.tenant_id, target.mention)}
            add(conversation, target.recipient.label(), target.reason, context, target)
    channel = state.channel or {}
    if channel.get("status") == "created" and channel.get("id") and channel["id"] not in slots:
        record = await store.get_conversation(state.tenant_id, channel["id"])
        if record is not None:
            add(record, record.name, "the alert's own channel")
    for conversation_id, delivery in existing.items():
        if conversation_id in slots:
            continue
        record = (
            conversation_from_json(delivery.conversation)
            if delivery.conversation
            else await store.get_conversation(state.tenant_id, conversation_id)
        )
        if record is not None:
            add(record, delivery.recipient, delivery.reason, delivery.context)

    jobs = [
        DeliveryJob(
            slot.conversation,
            CARD,
            state,
            recipient=slot.recipient,
            reason=slot.reason,
            context=slot.context,
            # Only the event that created the alert can promise no card of it exists anywhere: a
            # later event may run before the first card's job has recorded it.
            fallback=tuple(slot.fallback.values()),
            new=new,
            request=request,
        )
        for conversation_id, slot in slots.items()
        if conversation_id != except_conversation
        and (existing.get(conversation_id) is None or existing[conversation_id].status != "failed")
    ]
    await ctx.jobs.send(jobs)
    outcome.queued.extend(job.conversation_id for job in jobs)
    if unreachable:
        await send_to_fallback(state, unreachable, ctx, outcome, request=request)
    if not jobs and not unreachable and plan is not None and not outcome.detail:
        # Say why nothing is sent: the usual first-run surprise is a tenant with no bot.
        outcome.detail = (
            f"no card: the bot is installed in no Teams conversation of tenant {state.tenant_id}"
            if plan.broadcast
            else "no card: no workflow recipient takes this alert"
        )
    return outcome


async def sync_cards(state: AlertState, ctx: Delivering, *, except_conversation: str | None = None) -> Outcome:
    """Queue updates of every card ``state`` already has (and of its alert channel's)."""
    return await deliver(state, None, ctx, request=f"sync-{state.revision}", except_conversation=except_conversation)


# ---------------------------------------------------------------------------- commands


async def process_command(
    command: SendCommand | ExistingCommand, ctx: Delivering, *, default_tenant_id: str | None = None
) -> Outcome:
    store = ctx.store
    if await store.was_processed(command.dedupe_key):
        duplicate = Outcome(command.event_id, "duplicate", "already processed")
        log.info("Command %s was processed before: ignored", command.event_id, extra={"outcome": duplicate.to_json()})
        return duplicate
    if isinstance(command, ExistingCommand):
        outcome = await deliver_existing(command, ctx)
    else:
        outcome = await send_to_recipients(command, ctx, default_tenant_id)
    await store.mark_processed(command.dedupe_key, command.event_id)
    return outcome


async def send_to_recipients(command: SendCommand, ctx: Delivering, default_tenant_id: str | None = None) -> Outcome:
    """The manual "send to Teams": the alert's current card, with the comment, to these
    recipients. Where the card is already shown, the comment is posted in its thread instead
    of a second card."""
    tenant_id = await resolve_tenant(command.tenant_id, command.event_id, ctx.store, default_tenant_id)
    state = await ctx.store.get_alert(tenant_id, alert_key(command.alert_source, command.alert_id))
    if state is None:
        raise InvalidEvent(
            "subject",
            f"no alert {command.alert_id} from source {command.alert_source} in tenant {tenant_id}",
            command.event_id,
        )
    outcome = Outcome(command.event_id, "processed")
    plan = routing.manual_plan(state, command.recipients, command.fallback, command.comment, command.requested_by)
    request = command.dedupe_key[:24]
    if command.comment:
        existing = {d.conversation_id: d for d in await ctx.store.list_deliveries(tenant_id, state.key)}
        assert ctx.resolver is not None
        remaining, comments = [], []
        who = f" ({cards.escape_text(command.requested_by, 100)})" if command.requested_by else ""
        for target in plan.targets:
            try:
                conversation = await ctx.resolver.resolve(tenant_id, target.recipient, target.delivery)
            except Unreachable:
                remaining.append(target)  # deliver() sends it to the fallback with the reason
                continue
            shown = existing.get(conversation.conversation_id)
            if shown is not None and shown.activity_id:
                text = f"\U0001f4ac {cards.escape_text(command.comment, cards.MAX_COMMENT_CHARS)}{who}"
                comments.append(DeliveryJob(conversation, COMMENT, state, text=text, request=request))
            else:
                remaining.append(target)
        await ctx.jobs.send(comments)
        outcome.queued.extend(j.conversation_id for j in comments)
        plan = routing.Plan(targets=tuple(remaining))
    await deliver(state, plan, ctx, outcome, request=request)
    outcome.alert_id = state.alert_id
    log.info(
        "Sent alert %s to %d recipient(s) for %s: %s",
        state.alert_id,
        len(command.recipients),
        command.requested_by or "-",
        outcome.summary(),
        extra={"outcome": outcome.to_json()},
    )
    return outcome


async def deliver_existing(command: ExistingCommand, ctx: Delivering) -> Outcome:
    """Deliver the alerts already open that a (new or changed) workflow matches."""
    outcome = Outcome(command.event_id, "processed")
    workflow = await ctx.store.get_workflow(command.tenant_id, command.workflow_id)
    if workflow is None or workflow.revision != command.revision or not workflow.enabled:
        outcome.detail = "the workflow was deleted, disabled or changed again since; nothing to do"
        return outcome
    alerts = [a for a in await ctx.store.list_open_alerts(command.tenant_id) if workflow.match.why_not(a) is None]
    alerts.sort(key=lambda a: a.updated or a.created or datetime.min.replace(tzinfo=UTC), reverse=True)
    transient: list[str] = []
    for state in alerts[:MAX_EXISTING_ALERTS]:
        try:
            await deliver(
                state, routing.plan(state, "existing", [workflow]), ctx, outcome, request=command.dedupe_key[:16]
            )
        except TransientError as exc:
            transient.append(f"{state.alert_id}: {exc}")
    skipped = max(len(alerts) - MAX_EXISTING_ALERTS, 0)
    outcome.detail = f"{min(len(alerts), MAX_EXISTING_ALERTS)} open alert(s) delivered" + (
        f"; {skipped} older ones not (limit {MAX_EXISTING_ALERTS})" if skipped else ""
    )
    log.info(
        "Workflow %s (revision %d) in tenant %s: %s; %s",
        workflow.name,
        workflow.revision,
        workflow.tenant_id,
        outcome.detail,
        outcome.summary(),
    )
    if transient:
        raise TransientError("; ".join(transient))
    return outcome

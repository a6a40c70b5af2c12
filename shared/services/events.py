"""process_message: one queue message → alert state → routing plan → one card per recipient.

Service Bus delivers at least once; the visible effect in Teams is exactly once:
- every event id is recorded once processed, and a redelivered event is skipped; an event
  applied before a failure is recognised (the alert records it) and routed the same way again;
- every card is recorded (alert × conversation → activity id) and a later change updates
  that card in place, never posts again;
- a delivery is *claimed* (a conditional insert) before the post, so two workers handling
  events of the same alert at once cannot both post.

Routing decides who gets a new card (:mod:`shared.domain.workflows`); delivery never decides.
A card already delivered is always kept current, whether or not a workflow still matches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable

from shared import cards
from shared.domain import workflows as routing
from shared.domain.alerts import apply_event
from shared.domain.commands import COMMAND_TYPES, ExistingCommand, SendCommand, parse_command
from shared.domain.events import AlertEvent, InvalidEvent, alert_key, decode_json
from shared.domain.inbound import parse_events
from shared.domain.model import AlertState, ConversationRecord, Delivery, RejectedEvent, Undeliverable
from shared.ports import ConcurrencyConflict, DeliveryError, ReconsentRequired, StateStore, TeamsMessenger, TransientError
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
    posted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)  # conversations that got a card for someone unreachable
    undeliverable: list[str] = field(default_factory=list)  # recipients reached by nobody

    def summary(self) -> str:
        parts = [f"posted {len(self.posted)}", f"updated {len(self.updated)}", f"failed {len(self.failed)}"]
        if self.fallback:
            parts.append(f"fallback {len(self.fallback)}")
        if self.undeliverable:
            parts.append(f"undeliverable {len(self.undeliverable)} ({'; '.join(self.undeliverable)})")
        return ", ".join(parts)


class UnroutableEvent(InvalidEvent):
    """The event names no tenant and the connector cannot choose one."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Delivering:
    """What delivery needs besides the alert: the store, the messenger, the recipient resolver."""

    store: StateStore
    messenger: TeamsMessenger
    resolver: RecipientResolver | None = None
    clock: Callable[[], datetime] = _now

    def __post_init__(self) -> None:
        if self.resolver is None:
            self.resolver = RecipientResolver(self.store, clock=self.clock)


async def process_message(
    body: bytes | str,
    message_id: str,
    *,
    store: StateStore,
    messenger: TeamsMessenger,
    resolver: RecipientResolver | None = None,
    default_tenant_id: str | None = None,
    clock: Callable[[], datetime] = _now,
) -> list[Outcome]:
    """Process one queue message. Invalid input is recorded as rejected and never raises;
    transient failures raise :class:`TransientError` so Service Bus redelivers."""
    ctx = Delivering(store, messenger, resolver, clock)
    try:
        obj = decode_json(body)
        if isinstance(obj, dict) and obj.get("type") in COMMAND_TYPES and "specversion" in obj:
            command = parse_command(obj)
            return [await process_command(command, ctx, default_tenant_id=default_tenant_id)]
        events = parse_events(obj)
    except InvalidEvent as exc:
        return [await _reject(store, message_id, body, exc, clock())]

    outcomes: list[Outcome] = []
    transient: list[str] = []
    for event in events:
        try:
            outcomes.append(await process_event(event, ctx, default_tenant_id=default_tenant_id))
        except InvalidEvent as exc:
            outcomes.append(await _reject(store, message_id, body, exc, clock()))
        except TransientError as exc:
            transient.append(f"event {event.event_id}: {exc}")
    if transient:
        raise TransientError("; ".join(transient))
    return outcomes


async def _reject(store: StateStore, message_id: str, body: bytes | str, exc: InvalidEvent, now: datetime) -> Outcome:
    text = body.decode("utf-8", errors="replace") if isinstance(body, (bytes, bytearray)) else body
    reason = str(exc)
    await store.record_rejected(RejectedEvent(message_id=message_id, reason=reason, field=exc.field, event_id=exc.event_id, body=text, received=now))
    log.error("Rejected message %s (event %s): %s", message_id, exc.event_id or "-", reason)
    return Outcome(event_id=exc.event_id, result="rejected", detail=reason)


async def resolve_tenant(tenant_id: str | None, event_id: str, store: StateStore, default_tenant_id: str | None) -> str:
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
        f"the bot is installed in {len(tenants)} tenants; name one with the tenantid attribute or set DEFAULT_TENANT_ID",
        event_id,
    )


async def process_event(event: AlertEvent, ctx: Delivering, *, default_tenant_id: str | None = None) -> Outcome:
    store = ctx.store
    if await store.was_processed(event.dedupe_key):
        log.info("Event %s (%s) for alert %s was processed before: ignored", event.event_id, event.type, event.data.id)
        return Outcome(event.event_id, "duplicate", "already processed")
    tenant_id = await resolve_tenant(event.tenant_id, event.event_id, store, default_tenant_id)
    state, change = await _apply(event, tenant_id, store, ctx.clock())
    outcome = Outcome(event.event_id, "processed" if change else "stale", "" if change else f"version {event.data.version} is not newer than {state.version}")
    # Only a change routes: a stale event syncs the cards already delivered (it costs reads
    # only, and heals a card whose update failed earlier).
    plan = routing.plan(state, change, await store.list_workflows(tenant_id)) if change else None
    await deliver(state, plan, ctx, outcome)
    await store.mark_processed(event.dedupe_key, event.event_id)
    log.info("Event %s (%s) for alert %s: %s; %s", event.event_id, event.type, event.data.id, outcome.result, outcome.summary())
    return outcome


async def _apply(event: AlertEvent, tenant_id: str, store: StateStore, now: datetime) -> tuple[AlertState, str | None]:
    """Apply the event; returns the state and the change it made: "new", "updated", or None
    when it is older than what is held. An event applied before (the message is redelivered
    after a failure) returns the change it made then, so it is routed again the same way."""
    key = alert_key(event.source, event.data.id)
    for _ in range(MAX_STATE_ATTEMPTS):
        current = await store.get_alert(tenant_id, key)
        if current is not None and current.last_event == event.dedupe_key:
            return current, "new" if current.first_event == event.dedupe_key else "updated"
        new = apply_event(current, event, tenant_id, now)
        if new is None:
            assert current is not None
            return current, None
        new = replace(new, last_event=event.dedupe_key, first_event=current.first_event if current else event.dedupe_key)
        try:
            return await store.save_alert(new), "new" if current is None else "updated"
        except ConcurrencyConflict:
            continue  # another worker changed the alert: read again and re-decide
    raise TransientError(f"alert {event.data.id} kept changing under concurrent updates")


# ---------------------------------------------------------------------------- delivery


@dataclass
class _Slot:
    """One conversation to bring up to date, and what its card says about why it is there."""

    conversation: ConversationRecord
    recipient: str
    reason: str
    context: dict | None = None
    targets: list[routing.Target] = field(default_factory=list)  # plan targets that chose it (for fallback)

    def merge(self, context: dict | None, target: routing.Target | None) -> None:
        if target is not None:
            self.targets.append(target)
        if not context:
            return
        mine = self.context or {}
        self.context = {
            key: list(dict.fromkeys((mine.get(key) or []) + (context.get(key) or [])))
            for key in ("comments", "workflows")
        } | {k: v for k, v in (mine | context).items() if k not in ("comments", "workflows")}


def target_context(target: routing.Target, note: str = "") -> dict | None:
    context: dict = {}
    if target.comments:
        context["comments"] = list(target.comments)
    if target.workflows:
        context["workflows"] = list(target.workflows)
    elif target.reason.startswith("sent by "):
        context["sentBy"] = target.reason.removeprefix("sent by ")
    if note:
        context["note"] = note
    return context or None


async def deliver(state: AlertState, plan: routing.Plan | None, ctx: Delivering, outcome: Outcome | None = None) -> Outcome:
    """Make every conversation that should show ``state`` show it: the plan's recipients (or,
    broadcast, every conversation where the bot is installed), the alert's own channel, and
    every conversation that already has its card. ``plan`` None: only the cards that exist.

    A recipient that cannot be reached, or whose post fails for good, sends the card to the
    fallback recipients with a note saying who could not be reached and why; if those fail
    too, the alert is recorded as undeliverable for that recipient. Transient failures are
    raised (after everything else was tried) so the queue redelivers."""
    outcome = outcome or Outcome(None, "processed")
    store = ctx.store
    slots: dict[str, _Slot] = {}
    unreachable: list[tuple[routing.Target, str]] = []

    def add(conversation: ConversationRecord, recipient: str, reason: str, context: dict | None = None, target: routing.Target | None = None) -> None:
        slot = slots.get(conversation.conversation_id)
        if slot is None:
            slots[conversation.conversation_id] = _Slot(conversation, recipient, reason, context, [target] if target else [])
        else:
            slot.merge(context, target)

    existing = {d.conversation_id: d for d in await store.list_deliveries(state.tenant_id, state.key)}
    if plan is not None and plan.broadcast:
        for conversation in await store.list_conversations(state.tenant_id):
            if conversation.origin == "teams" and conversation.alert_key in (None, state.key):
                add(conversation, conversation.name or conversation.conversation_id, "broadcast: the tenant has no workflows")
    elif plan is not None:
        assert ctx.resolver is not None
        for target in plan.targets:
            try:
                conversation = await ctx.resolver.resolve(state.tenant_id, target.recipient, target.delivery)
            except Unreachable as exc:
                unreachable.append((target, str(exc)))
                continue
            add(conversation, target.recipient.label(), target.reason, target_context(target), target)
    channel = state.channel or {}
    if channel.get("status") == "created" and channel.get("id") and channel["id"] not in slots:
        record = await store.get_conversation(state.tenant_id, channel["id"])
        if record is not None:
            add(record, record.name, "the alert's own channel")
    for conversation_id, delivery in existing.items():
        if conversation_id not in slots:
            record = await store.get_conversation(state.tenant_id, conversation_id)
            if record is not None:
                add(record, delivery.recipient, delivery.reason, delivery.context)

    transient = await _sync_slots(state, slots, existing, ctx, outcome, unreachable)
    if unreachable:
        transient += await _fallback(state, unreachable, ctx, outcome)
    if transient:
        raise TransientError("delivery will be retried: " + "; ".join(transient))
    return outcome


async def _sync_slots(
    state: AlertState, slots: dict[str, _Slot], existing: dict[str, Delivery], ctx: Delivering, outcome: Outcome,
    unreachable: list[tuple[routing.Target, str]] | None,
) -> list[str]:
    """Post or update each slot. Permanent failures of plan targets go to ``unreachable`` (for
    the fallback pass) when it is given; returns the transient failures."""
    transient: list[str] = []
    summary = cards.summary_text(state)
    for conversation_id, slot in slots.items():
        card = cards.fit_card(state, slot.context)
        try:
            await _sync_one(state, slot, card, summary, existing.get(conversation_id), ctx, outcome)
        except DeliveryError as exc:
            if not exc.permanent:
                transient.append(f"{conversation_id}: {exc}")
                continue
            outcome.failed.append(conversation_id)
            await _record_failure(state, slot, ctx.store, str(exc), ctx.clock())
            log.warning("Cannot deliver alert %s to %s: %s", state.alert_id, conversation_id, exc)
            if exc.conversation_gone:
                # The bot was removed without telling us (or the chat is gone): stop sending there.
                await ctx.store.remove_conversation(slot.conversation.tenant_id, conversation_id)
                log.warning("Forgot conversation %s: Teams says the bot can no longer post there", conversation_id)
            if unreachable is not None:
                unreachable.extend((t, f"Teams refused the card ({exc})") for t in slot.targets)
        except ReconsentRequired as exc:
            if unreachable is None or not slot.targets:
                raise  # broadcast: the queue entry point records the event with this reason
            unreachable.extend((t, str(exc)) for t in slot.targets)
        except TransientError as exc:
            transient.append(f"{conversation_id}: {exc}")
    return transient


async def _fallback(state: AlertState, unreachable: list[tuple[routing.Target, str]], ctx: Delivering, outcome: Outcome) -> list[str]:
    """Send the card to the fallback recipients of everyone who could not be reached."""
    assert ctx.resolver is not None
    slots: dict[str, _Slot] = {}
    reached_by: dict[str, list[tuple[routing.Target, str]]] = {}
    nobody: list[tuple[routing.Target, str, str]] = []
    for target, reason in unreachable:
        label = target.recipient.label()
        log.warning("Alert %s could not reach %s: %s", state.alert_id, label, reason)
        if not target.fallback:
            nobody.append((target, reason, "no fallback recipients were given"))
            continue
        fallback_reasons: list[str] = []
        for fallback in target.fallback:
            try:
                # Fallbacks go through the bot whatever the workflow's method: the bot needs no
                # user's token, so a broken delegated connection still reaches them.
                conversation = await ctx.resolver.resolve(state.tenant_id, fallback, "bot")
            except Unreachable as exc:
                fallback_reasons.append(f"{fallback.label()}: {exc}")
                continue
            note = f"Sent here because {label} could not be reached: {reason}"
            context = target_context(target, note)
            slot = slots.get(conversation.conversation_id)
            if slot is None:
                slots[conversation.conversation_id] = _Slot(conversation, fallback.label(), f"fallback for {label}: {reason}", context)
            elif note not in (slot.context or {}).get("note", ""):
                slot.context = {**(slot.context or {}), "note": f"{(slot.context or {}).get('note', '')} {note}".strip()}
            reached_by.setdefault(conversation.conversation_id, []).append((target, reason))
        if not any(target in [t for t, _ in v] for v in reached_by.values()):
            nobody.append((target, reason, "; ".join(fallback_reasons) or "no fallback recipient could be reached"))
    if slots:
        existing = {d.conversation_id: d for d in await ctx.store.list_deliveries(state.tenant_id, state.key)}
        failed_before = set(outcome.failed)
        transient = await _sync_slots(state, slots, existing, ctx, outcome, None)
        for conversation_id in slots:
            if conversation_id in outcome.failed and conversation_id not in failed_before:
                nobody.extend((t, r, f"the fallback {slots[conversation_id].recipient} failed too") for t, r in reached_by[conversation_id])
            elif not any(conversation_id in t for t in transient):
                outcome.fallback.append(conversation_id)
    else:
        transient = []
    for target, reason, fallback_reason in nobody:
        label = target.recipient.label()
        outcome.undeliverable.append(label)
        await ctx.store.record_undeliverable(Undeliverable(state.tenant_id, state.key, state.alert_id, label, reason, fallback_reason, ctx.clock()))
        log.error("Alert %s reached neither %s (%s) nor a fallback (%s)", state.alert_id, label, reason, fallback_reason)
    return transient


async def _sync_one(state: AlertState, slot: _Slot, card: dict, summary: str, delivery: Delivery | None, ctx: Delivering, outcome: Outcome) -> None:
    store, messenger = ctx.store, ctx.messenger
    conversation = slot.conversation
    conv_id = conversation.conversation_id
    now = ctx.clock()
    if delivery is not None and delivery.status == "failed":
        return  # recorded as permanently failed for this conversation
    claim_free = delivery is None or (
        delivery.activity_id is None and (delivery.claimed_at is None or now - delivery.claimed_at > CLAIM_TIMEOUT)
    )
    if claim_free:
        claim = Delivery(
            state.tenant_id, state.key, conv_id, status="posting", claimed_at=now, recipient=slot.recipient, reason=slot.reason,
            context=slot.context, etag=delivery.etag if delivery else None,
        )
        try:
            claim = await store.save_delivery(claim)
        except ConcurrencyConflict:
            raise TransientError("another worker is posting this card") from None
        try:
            activity_id = await messenger.post(conversation, card, summary)
        except Exception as exc:
            if not (isinstance(exc, DeliveryError) and exc.permanent):
                await store.save_delivery(replace(claim, claimed_at=None))  # release the claim for the retry
            raise
        await store.save_delivery(replace(claim, activity_id=activity_id, rendered_version=state.revision, status="posted"))
        outcome.posted.append(conv_id)
        return
    assert delivery is not None
    if delivery.activity_id is None:
        raise TransientError("another worker is posting this card")
    context_changed = (slot.context or None) != (delivery.context or None)
    if delivery.rendered_version >= state.revision and not context_changed:
        return  # the card already shows this revision (or a newer one)
    await messenger.update(conversation, delivery.activity_id, card, summary)
    try:
        await store.save_delivery(replace(delivery, rendered_version=max(state.revision, delivery.rendered_version), context=slot.context))
    except ConcurrencyConflict:
        pass  # another worker recorded a render at the same time; the next event reconciles
    outcome.updated.append(conv_id)


async def _record_failure(state: AlertState, slot: _Slot, store: StateStore, reason: str, now: datetime) -> None:
    current = await store.get_delivery(state.tenant_id, state.key, slot.conversation.conversation_id)
    if current is not None and current.activity_id:
        return  # the card exists; a failed update will be retried by the next change
    failed = Delivery(
        state.tenant_id, state.key, slot.conversation.conversation_id, status="failed", failure=reason, claimed_at=now,
        recipient=slot.recipient, reason=slot.reason, context=slot.context, etag=current.etag if current else None,
    )
    try:
        await store.save_delivery(failed)
    except ConcurrencyConflict:
        pass


async def sync_cards(state: AlertState, *, store: StateStore, messenger: TeamsMessenger, clock: Callable[[], datetime] = _now, outcome: Outcome | None = None) -> Outcome:
    """Bring every card ``state`` already has (and its alert channel's) up to date."""
    return await deliver(state, None, Delivering(store, messenger, None, clock), outcome)


# ---------------------------------------------------------------------------- commands


async def process_command(command: SendCommand | ExistingCommand, ctx: Delivering, *, default_tenant_id: str | None = None) -> Outcome:
    store = ctx.store
    if await store.was_processed(command.dedupe_key):
        log.info("Command %s was processed before: ignored", command.event_id)
        return Outcome(command.event_id, "duplicate", "already processed")
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
        raise InvalidEvent("subject", f"no alert {command.alert_id} from source {command.alert_source} in tenant {tenant_id}", command.event_id)
    outcome = Outcome(command.event_id, "processed")
    plan = routing.manual_plan(state, command.recipients, command.fallback, command.comment, command.requested_by)
    if command.comment:
        existing = {d.conversation_id: d for d in await ctx.store.list_deliveries(tenant_id, state.key)}
        assert ctx.resolver is not None
        remaining = []
        for target in plan.targets:
            try:
                conversation = await ctx.resolver.resolve(tenant_id, target.recipient, target.delivery)
            except Unreachable:
                remaining.append(target)  # deliver() sends it to the fallback with the reason
                continue
            shown = existing.get(conversation.conversation_id)
            if shown is not None and shown.activity_id:
                await _comment_once(state, conversation, shown.activity_id, command, ctx)
                outcome.updated.append(conversation.conversation_id)
            else:
                remaining.append(target)
        plan = routing.Plan(targets=tuple(remaining))
    await deliver(state, plan, ctx, outcome)
    log.info("Sent alert %s to %d recipient(s) for %s: %s", state.alert_id, len(command.recipients), command.requested_by or "-", outcome.summary())
    return outcome


async def _comment_once(state: AlertState, conversation: ConversationRecord, activity_id: str, command: SendCommand, ctx: Delivering) -> None:
    """Reply with the comment in the card's thread, once per command (a claim row first)."""
    claim_key = f"{state.key}:send:{command.dedupe_key[:24]}"
    try:
        claim = await ctx.store.save_delivery(Delivery(state.tenant_id, claim_key, conversation.conversation_id, claimed_at=ctx.clock()))
    except ConcurrencyConflict:
        return  # this command's comment was posted here already
    who = f" ({cards.escape_text(command.requested_by, 100)})" if command.requested_by else ""
    try:
        reply_id = await ctx.messenger.reply(conversation, activity_id, f"\U0001f4ac {cards.escape_text(command.comment, cards.MAX_COMMENT_CHARS)}{who}")
    except Exception:
        await ctx.store.delete_delivery(state.tenant_id, claim_key, conversation.conversation_id)
        raise
    await ctx.store.save_delivery(replace(claim, activity_id=reply_id, status="posted"))


async def deliver_existing(command: ExistingCommand, ctx: Delivering) -> Outcome:
    """Deliver the alerts already open that a (new or changed) workflow matches."""
    outcome = Outcome(command.event_id, "processed")
    workflow = await ctx.store.get_workflow(command.tenant_id, command.workflow_id)
    if workflow is None or workflow.revision != command.revision or not workflow.enabled:
        outcome.detail = "the workflow was deleted, disabled or changed again since; nothing to do"
        return outcome
    alerts = [a for a in await ctx.store.list_alerts(command.tenant_id, statuses=("open", "acknowledged")) if workflow.match.why_not(a) is None]
    alerts.sort(key=lambda a: a.updated or a.created or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
    transient: list[str] = []
    for state in alerts[:MAX_EXISTING_ALERTS]:
        try:
            await deliver(state, routing.plan(state, "existing", [workflow]), ctx, outcome)
        except TransientError as exc:
            transient.append(f"{state.alert_id}: {exc}")
    skipped = max(len(alerts) - MAX_EXISTING_ALERTS, 0)
    outcome.detail = f"{min(len(alerts), MAX_EXISTING_ALERTS)} open alert(s) delivered" + (f"; {skipped} older ones not (limit {MAX_EXISTING_ALERTS})" if skipped else "")
    log.info("Workflow %s (revision %d) in tenant %s: %s; %s", workflow.name, workflow.revision, workflow.tenant_id, outcome.detail, outcome.summary())
    if transient:
        raise TransientError("; ".join(transient))
    return outcome

"""process_message: one queue message → alert state → one card per conversation, kept current.

Service Bus delivers at least once; the visible effect in Teams is exactly once:
- every event id is recorded once processed, and a redelivered event is skipped;
- every card is recorded (alert × conversation → activity id) and a later change updates
  that card in place, never posts again;
- a delivery is *claimed* (a conditional insert) before the post, so two workers handling
  events of the same alert at once cannot both post.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable

from shared import cards
from shared.domain.alerts import apply_event
from shared.domain.events import AlertEvent, InvalidEvent, alert_key
from shared.domain.inbound import parse_message
from shared.domain.model import AlertState, ConversationRecord, Delivery, RejectedEvent
from shared.ports import ConcurrencyConflict, DeliveryError, StateStore, TeamsMessenger, TransientError

log = logging.getLogger(__name__)

# A claim older than this belongs to a worker that died between claiming and recording the
# post; it may be taken over. Longer than a bot send with retries can take.
CLAIM_TIMEOUT = timedelta(minutes=2)
# Optimistic-concurrency retries on the alert entity before giving the message back.
MAX_STATE_ATTEMPTS = 5


@dataclass
class Outcome:
    """What happened to one event (or to a message that could not be parsed)."""

    event_id: str | None
    result: str  # processed | duplicate | stale | rejected
    detail: str = ""
    posted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class UnroutableEvent(InvalidEvent):
    """The event names no tenant and the connector cannot choose one."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def process_message(
    body: bytes | str,
    message_id: str,
    *,
    store: StateStore,
    messenger: TeamsMessenger,
    default_tenant_id: str | None = None,
    clock: Callable[[], datetime] = _now,
) -> list[Outcome]:
    """Process one queue message. Invalid input is recorded as rejected and never raises;
    transient failures raise :class:`TransientError` so Service Bus redelivers."""
    try:
        events = parse_message(body)
    except InvalidEvent as exc:
        return [await _reject(store, message_id, body, exc, clock())]

    outcomes: list[Outcome] = []
    transient: list[str] = []
    for event in events:
        try:
            outcomes.append(await process_event(event, store=store, messenger=messenger, default_tenant_id=default_tenant_id, clock=clock))
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


async def resolve_tenant(event: AlertEvent, store: StateStore, default_tenant_id: str | None) -> str:
    if event.tenant_id:
        return event.tenant_id
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
            event.event_id,
        )
    raise UnroutableEvent(
        "tenantid",
        f"the bot is installed in {len(tenants)} tenants; name one with the tenantid attribute or set DEFAULT_TENANT_ID",
        event.event_id,
    )


async def process_event(
    event: AlertEvent,
    *,
    store: StateStore,
    messenger: TeamsMessenger,
    default_tenant_id: str | None = None,
    clock: Callable[[], datetime] = _now,
) -> Outcome:
    if await store.was_processed(event.dedupe_key):
        log.info("Event %s (%s) for alert %s was processed before: ignored", event.event_id, event.type, event.data.id)
        return Outcome(event.event_id, "duplicate", "already processed")
    tenant_id = await resolve_tenant(event, store, default_tenant_id)
    state, applied = await _apply(event, tenant_id, store, clock())
    outcome = Outcome(event.event_id, "processed" if applied else "stale", "" if applied else f"version {event.data.version} is not newer than {state.version}")
    # Even a stale event syncs the cards: it costs reads only, and heals a card whose update
    # failed earlier.
    await sync_cards(state, store=store, messenger=messenger, outcome=outcome, clock=clock)
    await store.mark_processed(event.dedupe_key, event.event_id)
    log.info(
        "Event %s (%s) for alert %s: %s; posted %d, updated %d, failed %d",
        event.event_id, event.type, event.data.id, outcome.result, len(outcome.posted), len(outcome.updated), len(outcome.failed),
    )
    return outcome


async def _apply(event: AlertEvent, tenant_id: str, store: StateStore, now: datetime) -> tuple[AlertState, bool]:
    key = alert_key(event.source, event.data.id)
    for _ in range(MAX_STATE_ATTEMPTS):
        current = await store.get_alert(tenant_id, key)
        new = apply_event(current, event, tenant_id, now)
        if new is None:
            assert current is not None
            return current, False
        try:
            return await store.save_alert(new), True
        except ConcurrencyConflict:
            continue  # another worker changed the alert: read again and re-decide
    raise TransientError(f"alert {event.data.id} kept changing under concurrent updates")


async def sync_cards(
    state: AlertState,
    *,
    store: StateStore,
    messenger: TeamsMessenger,
    outcome: Outcome | None = None,
    clock: Callable[[], datetime] = _now,
    conversations: list[ConversationRecord] | None = None,
) -> Outcome:
    """Make every target conversation show ``state``: post where missing, update where older.

    Permanent failures (403, 404) are recorded on the delivery and do not stop the others;
    transient ones are raised after every conversation has been tried.
    """
    outcome = outcome or Outcome(None, "processed")
    if conversations is None:
        # An alert channel shows only its own alert.
        conversations = [c for c in await store.list_conversations(state.tenant_id) if c.alert_key in (None, state.key)]
    targets = conversations
    card = cards.fit_card(state)
    summary = cards.summary_text(state)
    transient: list[str] = []
    for conversation in targets:
        try:
            await _sync_one(state, conversation, card, summary, store, messenger, outcome, clock)
        except DeliveryError as exc:
            if not exc.permanent:
                transient.append(f"{conversation.conversation_id}: {exc}")
                continue
            outcome.failed.append(conversation.conversation_id)
            await _record_failure(state, conversation, store, str(exc), clock())
            log.warning("Cannot deliver alert %s to %s: %s", state.alert_id, conversation.conversation_id, exc)
            if exc.conversation_gone:
                # The bot was removed without telling us (or the chat is gone): stop sending there.
                await store.remove_conversation(conversation.tenant_id, conversation.conversation_id)
                log.warning("Forgot conversation %s: Teams says the bot can no longer post there", conversation.conversation_id)
        except TransientError as exc:
            transient.append(f"{conversation.conversation_id}: {exc}")
    if transient:
        raise TransientError("delivery will be retried: " + "; ".join(transient))
    return outcome


async def _sync_one(state, conversation, card, summary, store, messenger, outcome, clock) -> None:
    conv_id = conversation.conversation_id
    delivery = await store.get_delivery(state.tenant_id, state.key, conv_id)
    now = clock()
    if delivery is not None and delivery.status == "failed":
        return  # recorded as permanently failed for this conversation
    claim_free = delivery is None or (
        delivery.activity_id is None and (delivery.claimed_at is None or now - delivery.claimed_at > CLAIM_TIMEOUT)
    )
    if claim_free:
        claim = Delivery(state.tenant_id, state.key, conv_id, status="posting", claimed_at=now, etag=delivery.etag if delivery else None)
        try:
            claim = await store.save_delivery(claim)
        except ConcurrencyConflict:
            raise TransientError("another worker is posting this card") from None
        try:
            activity_id = await messenger.post(conversation, card, summary)
        except DeliveryError as exc:
            if not exc.permanent:
                await store.save_delivery(replace(claim, claimed_at=None))  # release the claim for the retry
            raise
        await store.save_delivery(replace(claim, activity_id=activity_id, rendered_version=state.revision, status="posted"))
        outcome.posted.append(conv_id)
        return
    if delivery.activity_id is None:
        raise TransientError("another worker is posting this card")
    if delivery.rendered_version >= state.revision:
        return  # the card already shows this revision (or a newer one)
    await messenger.update(conversation, delivery.activity_id, card, summary)
    try:
        await store.save_delivery(replace(delivery, rendered_version=state.revision))
    except ConcurrencyConflict:
        pass  # another worker recorded a render at the same time; the next event reconciles
    outcome.updated.append(conv_id)


async def _record_failure(state: AlertState, conversation: ConversationRecord, store: StateStore, reason: str, now: datetime) -> None:
    current = await store.get_delivery(state.tenant_id, state.key, conversation.conversation_id)
    if current is not None and current.activity_id:
        return  # the card exists; a failed update will be retried by the next change
    failed = Delivery(state.tenant_id, state.key, conversation.conversation_id, status="failed", failure=reason, claimed_at=now, etag=current.etag if current else None)
    try:
        await store.save_delivery(failed)
    except ConcurrencyConflict:
        pass

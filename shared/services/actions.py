"""What people do with alerts in Teams: acknowledge, resolve, reopen, create an alert channel
or meeting; and sending each action back to the alert source.

Every action that changes something is recorded (outbox) *before* it is published, with a
stable id, so a publish failure is retried by the periodic run and no action is lost; a
second click finds nothing to change and publishes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import cards
from shared.domain.alerts import OUTBOUND_TYPES, TRANSITIONS, Verb, change_status
from shared.domain.channels import channel_name_from_template, clean_channel_name
from shared.domain.model import AccountLink, ActionRecord, AlertState, ConversationRecord
from shared.ports import (
    ActionPublisher,
    AlertStore,
    ConcurrencyConflict,
    Directory,
    GraphError,
    SourceRefused,
    SourceSilences,
    StateStore,
    TeamsMessenger,
    TransientError,
)
from shared.services.processing import sync_cards

log = logging.getLogger(__name__)

EVENT_SOURCE = "urn:teams-alert-connector"
MEMBERSHIP_CACHE_SECONDS = 60
MAX_CHANNEL_NAME_ATTEMPTS = 5
MEETING_MINUTES = 30

_membership_cache: dict[tuple[str, str, str], tuple[float, set[str]]] = {}


@dataclass(frozen=True)
class Actor:
    """The Teams user who acted, as the Teams activity names them."""

    tenant_id: str
    aad_object_id: str
    name: str = ""


@dataclass(frozen=True)
class Where:
    """Where the action came from: the conversation, and for channels the team's group id."""

    conversation: ConversationRecord | None = None
    team_group_id: str | None = None
    channel_id: str | None = None
    via: str = "card"  # card | command
    # The message whose button was pressed (the invoke's replyToId): the alert's own card, or
    # another card that carries its buttons (the `alerts` list).
    card_activity_id: str | None = None


@dataclass
class ActionResult:
    state: AlertState | None
    changed: bool
    message: str  # one line for the person: what happened, or why not

    def card(self, context: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The refreshed card, with what this conversation's copy says about why it is there."""
        if self.state is None:
            return None
        card = cards.fit_card(self.state, context)
        return cards.with_note(card, self.message, self.changed) if self.message else card


@dataclass
class ActionContext:
    store: StateStore
    messenger: TeamsMessenger
    publisher: ActionPublisher | None
    directory: Directory | None
    require_linked_account: bool = False
    channel_team_id: str | None = None
    channel_name_template: str = "{severity} {id} {title}"
    meeting_organizer: str | None = None
    connector_admins: tuple[str, ...] = ()  # Entra object ids / UPNs, lower case (CONNECTOR_ADMINS)
    delivering: Any = None  # shared.services.processing.Delivering: the other copies of a card go through its queue
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # A source's own API, decrypted (tenant, source name) → SourceApi | None: where silences go,
    # and the silences client for one (shared.adapters.silences).
    source_api: Callable[[str, str], Awaitable[Any]] | None = None
    silences: Callable[[Any], SourceSilences] | None = None
    # The alert-events queue, for the commands an action gives (the assignee's card in their chat).
    commands: ActionPublisher | None = None


def is_connector_admin(ctx: ActionContext | None, actor: Actor) -> bool:
    """Whether the person is one of the connector's admins (CONNECTOR_ADMINS, by Entra object id)."""
    return ctx is not None and bool(actor.aad_object_id) and actor.aad_object_id.lower() in ctx.connector_admins


class Refused(Exception):
    """The person may not do this; the message says why."""


# ------------------------------------------------------------------------ authorisation


async def authorize(ctx: ActionContext, state: AlertState | None, actor: Actor, where: Where) -> AccountLink | None:
    """The one rule for acting on an alert, whatever the way (a card button, a command in any
    chat): the person must be able to see the alert in Teams (docs/TEAMS.md: Who may act on an alert).

    - never across tenants;
    - a connector admin (CONNECTOR_ADMINS) may act on any alert of the tenant;
    - from a conversation that shows the alert's card: in a channel, its members (checked with
      Microsoft Graph when the tenant is connected; without a connection, Teams shows the card
      only to the channel's members); in a 1:1 or group chat, whoever is in it;
    - from anywhere else (a command in a 1:1 chat, say): someone the alert was sent to in a 1:1
      chat, or a member of a channel that shows it (checked with Graph);
    - and, with REQUIRE_LINKED_ACCOUNT, only people whose platform account is linked.
    Returns the actor's link, if any."""
    if state is None or state.tenant_id != actor.tenant_id:
        raise Refused("This alert belongs to another organisation, or no longer exists.")
    if not is_connector_admin(ctx, actor):
        await _may_see(ctx, state, actor, where)
    link = await ensure_link(ctx, actor)
    if link is not None and not link.verified:
        link = None  # asked for but not verified: the action carries no platform identity
    if ctx.require_linked_account and link is None:
        raise Refused(
            "Link your alerting platform account first: send me 'link' (your Microsoft 365 account), or ask a "
            "connector admin to approve another."
        )
    return link


async def _may_see(ctx: ActionContext, state: AlertState, actor: Actor, where: Where) -> None:
    conversation = where.conversation
    if conversation is not None and await _shows(ctx, state, conversation):
        if conversation.conversation_type == "channel" and ctx.directory is not None:
            if not where.team_group_id or not where.channel_id:
                raise Refused("Your membership of this channel cannot be verified, so the action was not taken.")
            try:
                members = await _channel_members(ctx.directory, actor.tenant_id, where.team_group_id, where.channel_id)
            except GraphError as exc:
                raise Refused(
                    f"Your membership of this channel could not be verified ({exc}), so the action was not taken."
                ) from exc
            if actor.aad_object_id not in members:
                raise Refused("Only members of this channel can act on its alerts.")
        return
    # Not where the alert is shown: it must have been sent to this person, or to a channel
    # they are a member of.
    unverified = []
    for delivery in await ctx.store.list_deliveries(state.tenant_id, state.key):
        if not delivery.activity_id:
            continue
        record = await ctx.store.get_conversation(state.tenant_id, delivery.conversation_id)
        if record is None:
            continue
        if record.conversation_type == "personal" and _user_of(record) == actor.aad_object_id:
            return
        if (
            record.conversation_type == "channel"
            and ctx.directory is not None
            and record.team_group_id
            and record.channel_id
        ):
            try:
                if actor.aad_object_id in await _channel_members(
                    ctx.directory, state.tenant_id, record.team_group_id, record.channel_id
                ):
                    return
            except GraphError as exc:
                unverified.append(str(exc))
    why = f" (membership could not be checked: {unverified[0]})" if unverified else ""
    raise Refused(f"You can act on this alert where you can see it: on its card, or from a chat it was sent to{why}.")


async def _shown_or_none(ctx: ActionContext, state: AlertState | None, actor: Actor, where: Where) -> AlertState | None:
    """The refused alert, for its card to carry the refusal, only where the press came from its
    own card in a conversation that shows it: a refusal shows nothing of an alert the person may
    not see (button data naming another alert gets the reason alone)."""
    if state is None or state.tenant_id != actor.tenant_id or where.conversation is None:
        return None
    if where.via != "card" or not await _shows(ctx, state, where.conversation):
        return None
    if where.card_activity_id is not None:
        shown = await ctx.store.get_delivery(state.tenant_id, state.key, where.conversation.conversation_id)
        if shown is None or shown.activity_id != where.card_activity_id:
            return None  # pressed on another card than this alert's
    return state


async def _shows(ctx: ActionContext, state: AlertState, conversation: ConversationRecord) -> bool:
    """Whether the alert's card is in this conversation (or it is the alert's own channel)."""
    if conversation.alert_key == state.key:
        return True
    delivery = await ctx.store.get_delivery(state.tenant_id, state.key, conversation.conversation_id)
    return delivery is not None and bool(delivery.activity_id)


def _user_of(record: ConversationRecord) -> str:
    """The Entra object id of the person in a 1:1 conversation (from its reference)."""
    user = (record.reference or {}).get("user") or {}
    return str(user.get("aadObjectId") or "")


async def _channel_members(directory: Directory, tenant_id: str, team_id: str, channel_id: str) -> set[str]:
    key = (tenant_id, team_id, channel_id)
    cached = _membership_cache.get(key)
    if cached and time.monotonic() - cached[0] < MEMBERSHIP_CACHE_SECONDS:
        return cached[1]
    members = await directory.channel_member_ids(tenant_id, team_id, channel_id)
    _membership_cache[key] = (time.monotonic(), members)
    return members


# How a link sent to the source was verified (outbound event: data.actor.linkVerifiedBy).
LINK_VERIFIED_BY = {"auto": "directory", "directory": "directory", "admin": "admin"}


async def ensure_link(ctx: ActionContext, actor: Actor) -> AccountLink | None:
    """The actor's platform link; made automatically from their UPN / e-mail when Graph can tell."""
    link = await ctx.store.get_link(actor.tenant_id, actor.aad_object_id)
    if (link is not None and link.verified) or ctx.directory is None or not actor.aad_object_id:
        return link
    try:
        user = await ctx.directory.get_user(actor.tenant_id, actor.aad_object_id)
    except GraphError as exc:
        log.info("No automatic account link for %s: %s", actor.aad_object_id, exc)
        return None
    if user is None:
        return None
    identity = user.get("mail") or user.get("userPrincipalName")
    if not identity:
        return None
    auto = AccountLink(
        actor.tenant_id, actor.aad_object_id, identity.lower(), "auto", user.get("userPrincipalName"), ctx.clock()
    )
    if link is None:  # a requested link stays for an admin to approve; meanwhile the own account is used
        await ctx.store.save_link(auto)
    return auto


# ------------------------------------------------------------------------ state changes


async def change_state(
    ctx: ActionContext, verb: Verb, tenant_id: str, alert_key: str, actor: Actor, where: Where
) -> ActionResult:
    """Acknowledge, resolve or reopen. A stale click gets the current card, never an error."""
    for _ in range(5):
        allowed = await _allowed(ctx, alert_key, actor, where)
        if isinstance(allowed, ActionResult):
            return allowed
        state, link = allowed
        changed = change_status(state, verb, ctx.clock(), by=actor.name or "someone in Teams")
        if changed is None:
            return ActionResult(
                state, False, f"This alert is already {cards.STATUS_LABEL.get(state.status, state.status).lower()}."
            )
        try:
            new = await ctx.store.save_alert(changed)
        except ConcurrencyConflict:
            continue  # someone else changed it: decide again on what is there now
        await record_and_publish(ctx, verb, new, actor, link, where)
        await _sync_everywhere(ctx, new, where)
        who = actor.name or "You"
        return ActionResult(new, True, f"{cards.STEP_LABEL[TRANSITIONS[verb].step]} by {who}.")
    raise TransientError(f"alert {alert_key} kept changing while {verb} was applied")


async def _sync_everywhere(ctx: ActionContext, state: AlertState, where: Where) -> None:
    """Every other copy of the card is updated through the deliveries queue; the clicked copy
    is answered in the invoke response only, so its render is recorded here (conditionally:
    if that fails, it gets a job like the others)."""
    clicked = where.conversation.conversation_id if where.via == "card" and where.conversation is not None else None
    if clicked is not None:
        shown = await ctx.store.get_delivery(state.tenant_id, state.key, clicked)
        try:
            # Only the alert's own card is refreshed by the invoke response; a button on another
            # card (the `alerts` list) leaves the alert's card to the queue like every other copy.
            pressed_elsewhere = (
                where.card_activity_id is not None and shown is not None and shown.activity_id != where.card_activity_id
            )
            if shown is None or not shown.activity_id or shown.rendered_version >= state.revision or pressed_elsewhere:
                clicked = None
            else:
                await ctx.store.save_delivery(replace(shown, rendered_version=state.revision))
        except ConcurrencyConflict:
            clicked = None
    if ctx.delivering is None:
        log.warning("No deliveries queue: the other copies of alert %s are not updated", state.alert_id)
        return
    try:
        await sync_cards(state, ctx.delivering, except_conversation=clicked)
    except TransientError as exc:
        # The person's own card is refreshed by the invoke response; the other copies catch
        # up with the next change. Not a reason to fail the click.
        log.warning("Some copies of alert %s were not queued for update: %s", state.alert_id, exc)


async def find_alert(store: AlertStore, tenant_id: str, alert_id: str) -> AlertState | None:
    """The newest alert with this id in the tenant (ids may repeat across sources)."""
    matches = await store.find_alerts(tenant_id, alert_id)
    return max(matches, key=lambda a: a.updated or datetime.min.replace(tzinfo=UTC), default=None)


# ------------------------------------------------------------------------ back to the source


def action_id(tenant_id: str, alert_key: str, verb: str, discriminator: str) -> str:
    return hashlib.sha256(f"{tenant_id}\n{alert_key}\n{verb}\n{discriminator}".encode()).hexdigest()[:32]


def outbound_event(
    verb: Verb,
    state: AlertState,
    actor: Actor,
    link: AccountLink | None,
    where: Where,
    identifier: str,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return _envelope(
        identifier,
        OUTBOUND_TYPES[verb],
        state,
        now,
        {
            "version": state.version,
            "actor": {
                "aadObjectId": actor.aad_object_id,
                "name": actor.name,
                "linkedIdentity": link.platform_identity if link else None,
                "linkVerifiedBy": LINK_VERIFIED_BY.get(link.method) if link else None,
            },
            "via": where.via,
            "conversationId": where.conversation.conversation_id if where.conversation else None,
            **(extra or {}),
        },
    )


def _envelope(
    identifier: str, event_type: str, state: AlertState, now: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """The CloudEvent every event sent back to the source is (docs/EVENTS.md, outbound)."""
    return {
        "specversion": "1.0",
        "id": identifier,
        "source": EVENT_SOURCE,
        "type": event_type,
        "subject": state.alert_id,
        "time": now.isoformat(),
        "datacontenttype": "application/json",
        "tenantid": state.tenant_id,
        "data": {"alertId": state.alert_id, "alertSource": state.event_source, "status": state.status, **data},
    }


async def record_and_publish(
    ctx: ActionContext,
    verb: Verb,
    state: AlertState,
    actor: Actor,
    link: AccountLink | None,
    where: Where,
    discriminator: str | None = None,
    extra: dict[str, Any] | None = None,
) -> ActionRecord:
    identifier = action_id(state.tenant_id, state.key, verb, discriminator or str(state.revision))
    now = ctx.clock()
    event = outbound_event(verb, state, actor, link, where, identifier, now, extra)
    return await _keep_and_publish(
        ctx.store, ctx.publisher, ActionRecord(state.tenant_id, identifier, event, created=now)
    )


async def publish_system_event(
    store: StateStore,
    publisher: ActionPublisher | None,
    state: AlertState,
    event_type: str,
    data: dict[str, Any],
    *,
    discriminator: str,
    clock: Callable[[], datetime],
) -> ActionRecord:
    """An event the connector itself sends the source about an alert (no one pressed anything:
    whom its card mentioned), through the same outbox as people's actions."""
    identifier = action_id(state.tenant_id, state.key, event_type, discriminator)
    now = clock()
    event = _envelope(identifier, event_type, state, now, data)
    return await _keep_and_publish(store, publisher, ActionRecord(state.tenant_id, identifier, event, created=now))


async def _keep_and_publish(store: StateStore, publisher: ActionPublisher | None, record: ActionRecord) -> ActionRecord:
    """The outbox: the event is recorded first (its stable id), then published; a failed publish
    stays pending for the timer, and a second try of the same action finds it recorded."""
    try:
        record = await store.save_action(record)
    except ConcurrencyConflict:
        return record  # already recorded (a retried request or event): published or pending
    return await _publish_with(store, publisher, record)


async def _publish(ctx: ActionContext, record: ActionRecord) -> ActionRecord:
    return await _publish_with(ctx.store, ctx.publisher, record)


async def _publish_with(store: StateStore, publisher: ActionPublisher | None, record: ActionRecord) -> ActionRecord:
    if publisher is None:
        log.warning("Action %s recorded; no outbound queue is configured to publish it", record.action_id)
        return record
    try:
        await publisher.publish(record.action_id, record.event)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the action pending for the retry
        log.warning("Publishing action %s failed (%s); the periodic run retries it", record.action_id, exc)
        try:
            return await store.save_action(replace(record, attempts=record.attempts + 1, last_error=str(exc)[:500]))
        except ConcurrencyConflict:
            return record
    try:
        return await store.save_action(
            replace(record, status="published", attempts=record.attempts + 1, last_error=None)
        )
    except ConcurrencyConflict:
        return record  # a concurrent retry published it too; the stable message id dedupes


async def publish_pending(ctx: ActionContext) -> int:
    """Publish actions whose first publish failed. Returns how many were published now."""
    published = 0
    for record in await ctx.store.list_pending_actions():
        if (await _publish(ctx, record)).status == "published":
            published += 1
    return published


# ------------------------------------------------------------------------ channel and meeting


async def create_alert_channel(
    ctx: ActionContext, tenant_id: str, alert_key: str, actor: Actor, where: Where, team_group_id: str | None = None
) -> ActionResult:
    """One channel per alert, whatever is clicked twice: the alert entity is claimed first."""
    team_id = ctx.channel_team_id or team_group_id or where.team_group_id
    claim = await _claim(
        ctx,
        "channel",
        alert_key,
        actor,
        where,
        needs=None
        if team_id
        else (
            "No team to create the channel in: set ALERT_CHANNEL_TEAM_ID, or use the button on a card in a team "
            "channel."
        ),
    )
    if isinstance(claim, ActionResult):
        return claim
    claimed, link = claim
    assert team_id is not None
    try:
        owner = actor.aad_object_id if await _pressed_in_a_restricted_channel(ctx, where) else None
        channel = await _create_channel_with_unique_name(ctx, claimed, team_id, owner)
    except GraphError as exc:
        await _release(ctx, claimed, "channel")
        reason = f"missing the Microsoft Graph permission {exc.permission}" if exc.permission else str(exc)
        return ActionResult(claimed, False, f"The alert channel could not be created: {reason}.")
    added, missing = await _add_responders(ctx, claimed, team_id, channel["id"])
    done = await ctx.store.save_alert(
        replace(
            claimed,
            revision=claimed.revision + 1,
            channel={
                "status": "created",
                "id": channel["id"],
                "name": channel.get("displayName", ""),
                "webUrl": channel.get("webUrl"),
                "teamId": team_id,
            },
        )
    )
    await _post_card_in_channel(ctx, done, where, team_id, channel["id"])
    await record_and_publish(
        ctx,
        Verb.CREATE_CHANNEL,
        done,
        actor,
        link,
        where,
        discriminator=channel["id"],
        extra={
            "channel": {
                "id": channel["id"],
                "name": channel.get("displayName"),
                "webUrl": channel.get("webUrl"),
                "teamId": team_id,
            }
        },
    )
    await _sync_everywhere(ctx, done, where)
    note = f"Alert channel {channel.get('displayName', '')} created with {added} responder(s)."
    if missing:
        note += f" Not found in the directory: {', '.join(missing)}."
    return ActionResult(done, True, note)


async def _claim(
    ctx: ActionContext, field: str, alert_key: str, actor: Actor, where: Where, needs: str | None = None
) -> ActionResult | tuple[AlertState, AccountLink | None]:
    """Authorise, then claim the alert's ``field`` ("channel" or "meeting") with an
    ETag-conditional write, so only one click creates it. An ActionResult means: stop here."""
    allowed = await _allowed(ctx, alert_key, actor, where)
    if isinstance(allowed, ActionResult):
        return allowed
    state, link = allowed
    current = getattr(state, field) or {}
    if current.get("status") == "created":
        return ActionResult(state, False, f"The alert {field} already exists.")
    if current.get("status") == "creating" and not _claim_expired(current, ctx.clock()):
        return ActionResult(state, False, f"The alert {field} is being created.")
    if ctx.directory is None:
        return ActionResult(
            state,
            False,
            f"Creating a {field} needs the tenant connected to Microsoft Graph (see docs/CONNECTING.md).",
        )
    if needs:
        return ActionResult(state, False, needs)
    try:
        claimed = await ctx.store.save_alert(
            _with_claim(state, field, {"status": "creating", "since": ctx.clock().isoformat()})
        )
    except ConcurrencyConflict:
        return ActionResult(
            await ctx.store.get_alert(actor.tenant_id, alert_key), False, f"The alert {field} is being created."
        )
    return claimed, link


def _with_claim(state: AlertState, field: str, value: dict[str, Any] | None) -> AlertState:
    """The alert with its channel or meeting record set to ``value``."""
    return replace(state, channel=value) if field == "channel" else replace(state, meeting=value)


def _claim_expired(claim: dict[str, Any], now: datetime) -> bool:
    since = claim.get("since")
    return not since or now - datetime.fromisoformat(since) > timedelta(minutes=2)


async def _release(ctx: ActionContext, state: AlertState, field: str) -> None:
    with contextlib.suppress(ConcurrencyConflict):
        await ctx.store.save_alert(_with_claim(state, field, None))


async def _pressed_in_a_restricted_channel(ctx: ActionContext, where: Where) -> bool:
    """Whether the button was pressed in a private or shared channel: its alert's channel is then
    private too, so the alert stays among people who could see it (not the whole team)."""
    conversation = where.conversation
    if ctx.directory is None or conversation is None or conversation.conversation_type != "channel":
        return False
    if not where.team_group_id or not where.channel_id:
        return False
    channels = await ctx.directory.list_channels(conversation.tenant_id, where.team_group_id)
    here = next((c for c in channels if c.get("id") == where.channel_id), None)
    return here is not None and here.get("membershipType") in RESTRICTED_CHANNEL_TYPES


# Channels whose members are not simply the team's (Graph's channel membershipType).
RESTRICTED_CHANNEL_TYPES = ("private", "shared")


async def _create_channel_with_unique_name(
    ctx: ActionContext, state: AlertState, team_id: str, private_owner: str | None = None
) -> dict[str, Any]:
    """``private_owner``: the channel is private, with this person (Entra object id) its owner."""
    assert ctx.directory is not None
    base = channel_name_from_template(
        ctx.channel_name_template, alert_id=state.alert_id, title=state.title, severity=state.severity
    )
    for attempt in range(1, MAX_CHANNEL_NAME_ATTEMPTS + 1):
        name = clean_channel_name(base, "" if attempt == 1 else f" {attempt}")
        try:
            return await ctx.directory.create_channel(
                state.tenant_id,
                team_id,
                name,
                f"Alert {state.alert_id}: {state.title}"[:1024],
                private=private_owner is not None,
                owner_ids=(private_owner,) if private_owner else (),
            )
        except GraphError as exc:
            if exc.status != 409 or attempt == MAX_CHANNEL_NAME_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _add_responders(
    ctx: ActionContext, state: AlertState, team_id: str, channel_id: str
) -> tuple[int, list[str]]:
    assert ctx.directory is not None
    added, missing = 0, []
    for responder in state.responders:
        user = await ctx.directory.get_user(state.tenant_id, responder)
        if user is None:
            user = await ctx.directory.find_user_by_email(state.tenant_id, responder)
        if user is None:
            missing.append(responder)
            continue
        try:
            await ctx.directory.add_channel_member(state.tenant_id, team_id, channel_id, user["id"])
            added += 1
        except GraphError as exc:
            if exc.status == 409:  # already a member (standard channels include the team)
                added += 1
            else:
                missing.append(responder)
    return added, missing


async def _post_card_in_channel(
    ctx: ActionContext, state: AlertState, where: Where, team_id: str, channel_id: str
) -> None:
    """Remember the new channel as a conversation that shows only this alert, and post there."""
    template = where.conversation or next(
        (c for c in await ctx.store.list_conversations(state.tenant_id) if c.conversation_type == "channel"), None
    )
    if template is None:
        log.warning(
            "The bot is in no team of tenant %s: alert %s's card is not posted in its channel",
            state.tenant_id,
            state.alert_id,
        )
        return
    reference = {
        **template.reference,
        "conversation": {
            **(template.reference.get("conversation") or {}),
            "id": channel_id,
            "conversationType": "channel",
        },
    }
    record = replace(
        template,
        conversation_id=channel_id,
        conversation_type="channel",
        channel_id=channel_id,
        reference=reference,
        name=(state.channel or {}).get("name", ""),
        alert_key=state.key,
        updated=ctx.clock(),
        team_group_id=team_id,
    )
    await ctx.store.save_conversation(record)


def meeting_body(state: AlertState) -> str:
    """The invitation's HTML body. Everything from the alert source is escaped, and the link is
    kept only when it is an http(s) URL, so alert text can never become markup in a calendar."""
    body = f"<p>Alert {html.escape(state.alert_id)}: {html.escape(state.title)}</p>"
    if state.url and state.url.lower().startswith(("https://", "http://")):
        body += f'<p><a href="{html.escape(state.url, quote=True)}">Open the alert</a></p>'
    return body


async def create_alert_meeting(
    ctx: ActionContext, tenant_id: str, alert_key: str, actor: Actor, where: Where
) -> ActionResult:
    """One Teams meeting per alert, on the organiser's calendar, responders invited."""
    claim = await _claim(ctx, "meeting", alert_key, actor, where)
    if isinstance(claim, ActionResult):
        return claim
    claimed, link = claim
    state = claimed
    organizer = ctx.meeting_organizer or actor.aad_object_id
    start = ctx.clock()
    try:
        assert ctx.directory is not None  # _claim answered already when the tenant has no Graph
        meeting = await ctx.directory.create_meeting(
            state.tenant_id,
            organizer,
            f"[{state.severity.upper()}] {state.title}"[:255],
            tuple(state.responders),
            start.isoformat(),
            (start + timedelta(minutes=MEETING_MINUTES)).isoformat(),
            meeting_body(state),
        )
    except GraphError as exc:
        await _release(ctx, claimed, "meeting")
        reason = f"missing the Microsoft Graph permission {exc.permission}" if exc.permission else str(exc)
        return ActionResult(claimed, False, f"The alert meeting could not be created: {reason}.")
    done = await ctx.store.save_alert(
        replace(
            claimed,
            revision=claimed.revision + 1,
            meeting={"status": "created", "id": meeting.get("id"), "joinUrl": meeting.get("joinUrl")},
        )
    )
    await record_and_publish(
        ctx,
        Verb.CREATE_MEETING,
        done,
        actor,
        link,
        where,
        discriminator=str(meeting.get("id")),
        extra={"meeting": {"id": meeting.get("id"), "joinUrl": meeting.get("joinUrl")}},
    )
    await _announce_meeting(ctx, done, where)
    await _sync_everywhere(ctx, done, where)
    return ActionResult(done, True, "Alert meeting created.")


async def _announce_meeting(ctx: ActionContext, state: AlertState, where: Where) -> None:
    """Post the join link in the thread of the card that was clicked."""
    if where.conversation is None or not (state.meeting or {}).get("joinUrl"):
        return
    delivery = await ctx.store.get_delivery(state.tenant_id, state.key, where.conversation.conversation_id)
    if delivery is None or not delivery.activity_id:
        return
    try:
        await ctx.messenger.reply(
            where.conversation, delivery.activity_id, f"Alert meeting: {(state.meeting or {}).get('joinUrl')}"
        )
    except Exception as exc:  # noqa: BLE001 - the link is on the card as well
        log.warning("Could not post the meeting link for %s: %s", state.alert_id, exc)


def reset_membership_cache() -> None:
    _membership_cache.clear()


# ------------------------------------------------------------------------ silences in the source


async def _allowed(
    ctx: ActionContext, alert_key: str, actor: Actor, where: Where
) -> tuple[AlertState, AccountLink | None] | ActionResult:
    """The alert and the actor's link when the one authorisation rule lets them act on it; else
    the refusal, with the card as they may see it."""
    state = await ctx.store.get_alert(actor.tenant_id, alert_key)
    try:
        link = await authorize(ctx, state, actor, where)
    except Refused as refusal:
        return ActionResult(await _shown_or_none(ctx, state, actor, where), False, str(refusal))
    assert state is not None
    return state, link


async def _source_api(ctx: ActionContext, state: AlertState) -> Any:
    """The API of the ingest source that sent the alert, as its tenant admin set it; or None."""
    if ctx.source_api is None or not state.ingest_source:
        return None
    return await ctx.source_api(state.tenant_id, state.ingest_source)


async def silence_alert(
    ctx: ActionContext, alert_key: str, actor: Actor, where: Where, seconds: int, comment: str = ""
) -> ActionResult:
    """Make a silence in the alert's source (Alertmanager's API v2, or Grafana's), matching the
    alert's own labels, for ``seconds``; the card says so until it is expired or replaced."""
    from shared.domain.alertmanager import identifying_labels
    from shared.domain.source_api import matchers_for, silenceable_source

    allowed = await _allowed(ctx, alert_key, actor, where)
    if isinstance(allowed, ActionResult):
        return allowed
    state, link = allowed
    if not silenceable_source(state.source):
        return ActionResult(
            state,
            False,
            f"Silences are made in Alertmanager or Grafana; this alert came from {state.source or 'another source'}.",
        )
    api = await _source_api(ctx, state)
    if api is None or ctx.silences is None:
        return ActionResult(
            state,
            False,
            "This alert's source has no API set for silences: a tenant admin sets it "
            "(docs/SOURCES.md, a source's own API).",
        )
    labels = identifying_labels(state.labels)
    if not labels:
        return ActionResult(state, False, "This alert has no labels to silence it by.")
    now = ctx.clock()
    until = now + timedelta(seconds=seconds)
    who = actor.name or "someone in Teams"
    created_by = (
        link.platform_identity
        if link is not None and link.verified
        else f"{who} ({actor.aad_object_id or 'unknown'}) in Teams"
    )
    try:
        silence_id = await ctx.silences(api).create(
            matchers_for(labels), now, until, created_by, (comment or f"Silenced from Teams by {who}")[:1000]
        )
    except SourceRefused as exc:
        return ActionResult(state, False, f"The source did not make the silence: {exc}")
    silence = {"id": silence_id, "until": until.isoformat(), "by": who}
    new = await _change_and_tell(
        ctx,
        state,
        lambda current: replace(current, silence=silence),
        _Told(Verb.SILENCE, actor, link, where, silence_id, {"silenceId": silence_id, "until": until.isoformat()}),
    )
    log.info(
        "Alert %s silenced in %s until %s by %s (silence %s)",
        new.alert_id,
        api.kind,
        until.isoformat(),
        who,
        silence_id,
    )
    return ActionResult(new, True, f"Silenced in {api.kind} by {who} (silence {silence_id}).")


async def expire_alert_silence(ctx: ActionContext, alert_key: str, actor: Actor, where: Where) -> ActionResult:
    """Expire the silence made from Teams for this alert, in its source."""
    allowed = await _allowed(ctx, alert_key, actor, where)
    if isinstance(allowed, ActionResult):
        return allowed
    state, link = allowed
    if not state.silence:
        return ActionResult(state, False, "This alert has no silence made from Teams.")
    api = await _source_api(ctx, state)
    if api is None or ctx.silences is None:
        return ActionResult(state, False, "This alert's source has no API set any more: expire the silence there.")
    silence_id = str(state.silence.get("id"))
    try:
        await ctx.silences(api).expire(silence_id)
    except SourceRefused as exc:
        if exc.status != 404:  # already gone from the source: the card stops saying so
            return ActionResult(state, False, f"The source did not expire the silence: {exc}")
    new = await _save_with(ctx, state, lambda current: replace(current, silence=None))
    await record_and_publish(
        ctx, Verb.EXPIRE_SILENCE, new, actor, link, where, discriminator=silence_id, extra={"silenceId": silence_id}
    )
    new = await _reconcile(ctx, new, api)
    await _sync_everywhere(ctx, new, where)
    who = actor.name or "someone in Teams"
    log.info("Silence %s of alert %s expired by %s", silence_id, new.alert_id, who)
    return ActionResult(new, True, f"Silence {silence_id} expired by {who}.")


@dataclass(frozen=True)
class _Told:
    """Who did an action and where, for its outbound event: the verb, and what only it carries."""

    verb: Verb
    actor: Actor
    link: AccountLink | None
    where: Where
    discriminator: str
    extra: dict[str, Any]


async def _change_and_tell(
    ctx: ActionContext, state: AlertState, change: Callable[[AlertState], AlertState], told: _Told
) -> AlertState:
    """The alert changed by a person's action, saved on its ETag; the action sent back to the
    source; every copy of its card drawn again."""
    new = await _save_with(ctx, state, change)
    await record_and_publish(
        ctx, told.verb, new, told.actor, told.link, told.where, discriminator=told.discriminator, extra=told.extra
    )
    await _sync_everywhere(ctx, new, told.where)
    return new


async def _save_with(ctx: ActionContext, state: AlertState, change: Callable[[AlertState], AlertState]) -> AlertState:
    """The alert with ``change`` made to it, saved on its ETag (read again on a conflict); the
    revision moves so every copy of its card is drawn again."""
    for _ in range(5):
        try:
            changed = change(state)
            return await ctx.store.save_alert(replace(changed, revision=state.revision + 1, updated=ctx.clock()))
        except ConcurrencyConflict:
            current = await ctx.store.get_alert(state.tenant_id, state.key)
            if current is None:
                raise
            state = current
    raise TransientError(f"alert {state.key} kept changing")


async def silence_ended(ctx: ActionContext, state: AlertState) -> AlertState:
    """A silence made from Teams ran out (the timer found it): the card stops saying so, and the
    source is asked whether the alert still fires (:func:`_reconcile`)."""
    if not state.silence:
        return state
    api = await _source_api(ctx, state)
    new = await _save_with(ctx, state, lambda current: replace(current, silence=None))
    if api is not None and ctx.silences is not None:
        new = await _reconcile(ctx, new, api)
    log.info("The silence of alert %s ran out", new.alert_id)
    await _sync_everywhere(ctx, new, Where())
    return new


async def _reconcile(ctx: ActionContext, state: AlertState, api: Any) -> AlertState:
    """The alert as its source sees it once the silence is over. Alertmanager holds back every
    notification of a silenced alert, its resolution too, and does not send it when the silence
    ends: an alert that stopped firing meanwhile would stay open here for good. So the source is
    asked (its alerts with these labels); one it no longer has is resolved here."""
    from shared.domain.alertmanager import identifying_labels
    from shared.domain.model import StatusStep

    if state.status == "resolved" or ctx.silences is None:
        return state
    labels = identifying_labels(state.labels)
    try:
        held = await ctx.silences(api).alerts(labels)
    except SourceRefused as exc:
        log.warning("Could not ask %s about alert %s after its silence: %s", api.kind, state.alert_id, exc)
        return state
    if any(alert.get("labels") == labels for alert in held):
        return state
    now = ctx.clock()
    via = f"{api.kind} (no longer firing when its silence ended)"
    return await _save_with(
        ctx,
        state,
        lambda current: (
            current
            if current.status == "resolved"
            else replace(current, status="resolved", status_changed=now).with_step(StatusStep("resolved", now, via=via))
        ),
    )


# ------------------------------------------------------------------------ note, snooze, assign


def _who(actor: Actor) -> str:
    return actor.name or "someone in Teams"


async def _reply_in_thread(
    ctx: ActionContext, state: AlertState, where: Where, text: str, request: str, mentions: list[dict[str, Any]]
) -> None:
    """A reply in the thread of the card the person acted on (through the deliveries queue, so
    it is paced and retried like every send); nothing where the card is not."""
    from shared.domain.jobs import COMMENT, DeliveryJob

    conversation = where.conversation
    if conversation is None or ctx.delivering is None:
        return
    shown = await ctx.store.get_delivery(state.tenant_id, state.key, conversation.conversation_id)
    if shown is None or not shown.activity_id:
        return
    job = DeliveryJob(conversation, COMMENT, state, text=text, request=request, extra={"mentions": mentions})
    try:
        await ctx.delivering.jobs.send([job])
    except TransientError as exc:  # the card says it too: not a reason to fail the press
        log.warning("The reply about alert %s was not queued: %s", state.alert_id, exc)


async def note_alert(ctx: ActionContext, alert_key: str, actor: Actor, where: Where, text: str) -> ActionResult:
    """Add a note: kept in the alert's timeline (every copy of the card shows the latest), posted
    in the thread of the card it was added on with its author, and sent back to the source."""
    from shared.domain.alerts import MAX_NOTE_CHARS, with_note

    text = " ".join(text.split()) if "\n" not in text else text.strip()
    if not text:
        return ActionResult(None, False, "Write the note first.")
    if len(text) > MAX_NOTE_CHARS:
        return ActionResult(None, False, f"A note is at most {MAX_NOTE_CHARS} characters; this one is {len(text)}.")
    allowed = await _allowed(ctx, alert_key, actor, where)
    if isinstance(allowed, ActionResult):
        return allowed
    state, link = allowed
    now, who = ctx.clock(), _who(actor)
    discriminator = hashlib.sha256(f"{actor.aad_object_id}\n{now.isoformat()}\n{text}".encode()).hexdigest()[:16]
    new = await _change_and_tell(
        ctx,
        state,
        lambda current: with_note(current, text, who, now),
        _Told(Verb.NOTE, actor, link, where, discriminator, {"note": text}),
    )
    await _reply_in_thread(
        ctx,
        new,
        where,
        f"\U0001f4dd **Note** by {cards.escape_text(who, 100)}: {cards.escape_text(text)}",
        f"note-{discriminator}",
        [],
    )
    log.info("Note added to alert %s by %s (%d characters)", new.alert_id, who, len(text))
    return ActionResult(new, True, f"Note added by {who}.")


async def snooze_alert(ctx: ActionContext, alert_key: str, actor: Actor, where: Where, until: datetime) -> ActionResult:
    """Hold back an open alert's reminders until ``until``; every copy of the card says so. The
    snooze ends by itself (the timer draws the cards again) or when the alert's status changes."""
    from shared.domain.alerts import MAX_SNOOZE_SECONDS

    now = ctx.clock()
    if until <= now:
        return ActionResult(None, False, "Choose a time in the future to snooze until.")
    if (until - now).total_seconds() > MAX_SNOOZE_SECONDS:
        return ActionResult(None, False, f"A snooze lasts at most {MAX_SNOOZE_SECONDS // 86400} days.")
    allowed = await _allowed(ctx, alert_key, actor, where)
    if isinstance(allowed, ActionResult):
        return allowed
    state, link = allowed
    if state.status != "open":
        return ActionResult(state, False, f"Only an open alert has reminders to snooze; this one is {state.status}.")
    who = _who(actor)
    snooze = {"until": until.astimezone(UTC).isoformat(), "by": who}
    new = await _change_and_tell(
        ctx,
        state,
        lambda current: replace(current, snooze=snooze),
        _Told(Verb.SNOOZE, actor, link, where, snooze["until"], {"until": snooze["until"]}),
    )
    log.info("Alert %s snoozed until %s by %s", new.alert_id, snooze["until"], who)
    return ActionResult(new, True, f"Snoozed by {who}: no reminders until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC.")


async def snooze_ended(ctx: ActionContext, state: AlertState) -> AlertState:
    """A snooze ran out (the timer found it): the cards stop saying so, and reminders resume."""
    new = await _save_with(ctx, state, lambda current: replace(current, snooze=None))
    await _sync_everywhere(ctx, new, Where())
    log.info("The snooze of alert %s ended", new.alert_id)
    return new


async def assign_alert(
    ctx: ActionContext, alert_key: str, actor: Actor, where: Where, assignee: str | None
) -> ActionResult:
    """Assign the alert to the person who acts (``assignee`` None) or to someone in the tenant's
    directory (their Microsoft Entra object id). Every copy of the card shows the assignee; the
    assignee is mentioned in the thread of the card and sent the card in their 1:1 chat."""
    allowed = await _allowed(ctx, alert_key, actor, where)
    if isinstance(allowed, ActionResult):
        return allowed
    state, link = allowed
    if state.status == "resolved":
        return ActionResult(state, False, "This alert is resolved: reopen it to assign it.")
    who = _who(actor)
    if assignee is None or assignee.lower() == actor.aad_object_id.lower():
        person = {"id": actor.aad_object_id, "name": who}
    else:
        found = await _directory_user(ctx, actor.tenant_id, assignee)
        if isinstance(found, str):
            return ActionResult(state, False, found)
        person = found
    if state.assignee and str(state.assignee.get("id", "")).lower() == person["id"].lower():
        return ActionResult(state, False, f"This alert is already assigned to {person['name']}.")
    now = ctx.clock()
    record = {**person, "by": who, "at": now.isoformat()}
    new = await _change_and_tell(
        ctx,
        state,
        lambda current: replace(current, assignee=record),
        _Told(
            Verb.ASSIGN,
            actor,
            link,
            where,
            f"{person['id']}\n{now.isoformat()}",
            {"assignee": {"aadObjectId": person["id"], "name": person["name"]}},
        ),
    )
    if person["id"] != actor.aad_object_id:
        seed = f"{person['id']}\n{now.isoformat()}"
        request = f"assign-{hashlib.sha256(seed.encode()).hexdigest()[:16]}"
        tag = cards.mention_tag(person)
        await _reply_in_thread(
            ctx,
            new,
            where,
            f"\U0001f464 {tag} is assigned to this alert by {cards.escape_text(who, 100)}.",
            request,
            [person],
        )
        await _tell_assignee(ctx, new, person, who, request)
    log.info("Alert %s assigned to %s by %s", new.alert_id, person["id"], who)
    return ActionResult(new, True, f"Assigned to {person['name']} by {who}.")


async def _directory_user(ctx: ActionContext, tenant_id: str, id_or_upn: str) -> dict[str, str] | str:
    """{"id", "name"} of a person in the tenant's directory, or why they cannot be assigned."""
    if ctx.directory is None:
        return "Assigning someone else needs the organisation connected to Microsoft Graph: use Assign to me."
    try:
        user = await ctx.directory.get_user(tenant_id, id_or_upn)
    except GraphError as exc:
        return f"That person could not be looked up ({exc})."
    if user is None or not user.get("id"):
        return "That person is not in this organisation's directory."
    return {"id": str(user["id"]), "name": str(user.get("displayName") or user.get("userPrincipalName") or "someone")}


async def _tell_assignee(ctx: ActionContext, state: AlertState, person: dict[str, str], who: str, request: str) -> None:
    """The alert's card in the assignee's 1:1 chat with the bot (a send command, delivered like
    a manual send: into the card's thread there when the card is already in that chat)."""
    from shared.domain.commands import send_command

    if ctx.commands is None:
        log.warning("No alert-events queue: the assignee of alert %s is not told in their chat", state.alert_id)
        return
    command = send_command(
        request,
        EVENT_SOURCE,
        state.tenant_id,
        state.alert_id,
        state.event_source,
        [{"kind": "person", "user": person["id"], "name": person["name"]}],
        comment=f"Assigned to you by {who}.",
        requested_by=who,
    )
    try:
        await ctx.commands.publish(hashlib.sha256(f"{state.tenant_id}\n{request}".encode()).hexdigest()[:32], command)
    except Exception as exc:  # noqa: BLE001 - the card shows the assignment; the chat message is extra
        log.warning("The assignee of alert %s was not told in their chat: %s", state.alert_id, exc)


async def search_people(ctx: ActionContext, actor: Actor, text: str) -> list[dict[str, str]]:
    """The Assign box's type-ahead: people of the actor's tenant whose name, mail or UPN
    contains ``text`` (at most 15, Teams' limit), as {"title", "value"} choices."""
    if ctx.directory is None or len(text.strip()) < 2:
        return []
    try:
        users = await ctx.directory.search_users(actor.tenant_id, text.strip()[:100], limit=15)
    except GraphError as exc:
        log.info("People search for an Assign box failed: %s", exc)
        return []
    choices = []
    for user in users[:15]:
        if not user.get("id"):
            continue
        name = str(user.get("displayName") or user.get("userPrincipalName") or "")
        mail = str(user.get("mail") or user.get("userPrincipalName") or "")
        choices.append({"title": f"{name} ({mail})" if mail and mail != name else name, "value": str(user["id"])})
    return choices

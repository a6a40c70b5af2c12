"""handle_activity: what the bot does with each inbound Teams activity.

Works on the activity as JSON (the Bot Framework wire shape), so it never imports botbuilder;
the bot adapter sends whatever this returns.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import cards
from shared.domain.alerts import (
    MAX_SNOOZE_SECONDS,
    SILENCE_DURATIONS,
    TRANSITIONS,
    Verb,
    silence_seconds,
    snooze_until,
)
from shared.domain.model import AccountLink, AlertState, ConversationRecord
from shared.ports import StateStore
from shared.services import actions as action_service
from shared.services.actions import ActionContext, ActionResult, Actor, Where

log = logging.getLogger(__name__)

COMMANDS: list[tuple[str, str]] = [
    ("help", "Show this list."),
    ("alerts", "List this organisation's open and acknowledged alerts, most severe first, with their buttons."),
    # Placeholders in capitals: Teams reads "<id>" as markup and shows nothing.
    ("ack ID", "Acknowledge an alert, e.g. ack ALRT-1042."),
    ("resolve ID", "Resolve an alert."),
    ("reopen ID", "Reopen a resolved alert."),
    (
        "silence ID DURATION [why]",
        "Silence an Alertmanager or Grafana alert in its source, e.g. silence ALRT-1042 4h deploying a fix.",
    ),
    ("expire-silence ID", "End the silence made from Teams."),
    ("note ID TEXT", "Add a note to an alert: every copy of its card shows it, e.g. note ALRT-1042 rolled back 4.12."),
    (
        "snooze ID DURATION",
        "No reminders of an open alert for a while (30m to 7d), or until a time: snooze ALRT-1042 until 14:30.",
    ),
    ("assign ID [me|PERSON]", "Assign an alert to yourself, or to someone by e-mail or UPN: assign ALRT-1042 me."),
    (
        "link [NAME]",
        (
            "Link your Teams account to your alerting platform account: without a name, your Microsoft 365 "
            "account; another name waits for an admin's approval."
        ),
    ),
    ("whoami", "Show who you are to the connector."),
    (
        "subscribe [filters]",
        (
            "Send this conversation the alerts that match, e.g. subscribe severity>=high source=prometheus label "
            "env=prod; add mention=me (or mention=responders) to be @mentioned on their cards."
        ),
    ),
    ("unsubscribe", "Stop this conversation's subscription."),
    ("subscriptions", "List what sends alerts to this conversation."),
]

_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
INVOKE_CARD_ACTION = "adaptiveCard/action"
# A card's type-ahead asks the bot for choices (Teams docs, dynamic-search: "application/search",
# value {queryText, dataset, queryOptions}; answered with a searchResponse of {title, value}).
INVOKE_SEARCH = "application/search"
MAX_SEARCH_TEXT = 100


@dataclass
class BotReply:
    """Messages to send back in the conversation (text or an Adaptive Card)."""

    texts: list[str] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    invoke_response: tuple[int, dict[str, Any]] | None = None


def conversation_record(
    activity: dict[str, Any], reference: dict[str, Any], now: datetime
) -> ConversationRecord | None:
    """The conversation an activity came from, or None when it names no tenant."""
    conversation = activity.get("conversation") or {}
    channel_data = activity.get("channelData") or {}
    tenant_id = conversation.get("tenantId") or (channel_data.get("tenant") or {}).get("id")
    if not tenant_id or not conversation.get("id"):
        return None
    team = channel_data.get("team") or {}
    channel = channel_data.get("channel") or {}
    kind = conversation.get("conversationType") or ("channel" if team else "personal")
    conversation_id = conversation["id"]
    if kind == "channel":
        # Replies in a thread carry "<channel>;messageid=<root>": post new cards to the channel.
        conversation_id = conversation_id.split(";messageid=")[0]
        reference = {**reference, "conversation": {**(reference.get("conversation") or {}), "id": conversation_id}}
        reference.pop("activityId", None)
    # A channel is named by Teams' channel (or team) data only: a message or click that carries
    # none must not rename it after its sender. A personal chat is named by the person, a group
    # chat by its topic (none: unnamed).
    if kind == "channel":
        # Teams sends no name for a team's General channel (its id is the team's): named as
        # Teams shows it, with its team, not after the team alone.
        name = channel.get("name") or (f"General ({team['name']})" if team.get("name") else "")
    elif kind == "personal":
        name = conversation.get("name") or (activity.get("from") or {}).get("name") or ""
    else:  # a group chat is named by its topic only: its sender is one member among several
        name = conversation.get("name") or ""
    return ConversationRecord(
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        conversation_type=kind,
        service_url=activity.get("serviceUrl", ""),
        reference=reference,
        name=name,
        team_id=team.get("id"),
        channel_id=channel.get("id") or (conversation_id if kind == "channel" else None),
        updated=now,
        team_group_id=team.get("aadGroupId") or None,
    )


def command_text(activity: dict[str, Any]) -> str:
    """The message text without @mentions of the bot, with white space folded."""
    text = _MENTION.sub(" ", activity.get("text") or "")
    return " ".join(text.split())


def actor_of(activity: dict[str, Any]) -> Actor:
    sender = activity.get("from") or {}
    conversation = activity.get("conversation") or {}
    tenant_id = (
        conversation.get("tenantId") or ((activity.get("channelData") or {}).get("tenant") or {}).get("id") or ""
    )
    return Actor(tenant_id=tenant_id, aad_object_id=sender.get("aadObjectId") or "", name=sender.get("name") or "")


def where_of(activity: dict[str, Any], record: ConversationRecord | None, via: str) -> Where:
    channel_data = activity.get("channelData") or {}
    team = channel_data.get("team") or {}
    # Teams does not always put the team's group id on a click or message; the channel's stored
    # record has it from when the bot was installed in the team.
    group = team.get("aadGroupId") or (
        record.team_group_id if record is not None and record.conversation_type == "channel" else None
    )
    return Where(
        conversation=record,
        team_group_id=group,
        channel_id=(channel_data.get("channel") or {}).get("id"),
        via=via,
        card_activity_id=activity.get("replyToId") if via == "card" else None,
    )


async def run_verb(ctx: ActionContext, verb: Verb, alert_key: str, actor: Actor, where: Where) -> ActionResult:
    if verb in TRANSITIONS:
        return await action_service.change_state(ctx, verb, actor.tenant_id, alert_key, actor, where)
    if verb is Verb.CREATE_CHANNEL:
        return await action_service.create_alert_channel(ctx, actor.tenant_id, alert_key, actor, where)
    if verb is Verb.CREATE_MEETING:
        return await action_service.create_alert_meeting(ctx, actor.tenant_id, alert_key, actor, where)
    if verb is Verb.EXPIRE_SILENCE:
        return await action_service.expire_alert_silence(ctx, alert_key, actor, where)
    return ActionResult(None, False, "Say for how long: silence ALERT-ID 1h (or 4h, 24h, 30m, 2d) and why.")


async def handle_search(activity: dict[str, Any], ctx: ActionContext | None) -> BotReply:
    """The Assign box's type-ahead: people of the person's own tenant (never another's)."""
    given = activity.get("value")
    value: dict[str, Any] = given if isinstance(given, dict) else {}
    query = value.get("queryText")
    text = query if isinstance(query, str) else ""
    results: list[dict[str, str]] = []
    if ctx is not None and value.get("dataset") == cards.PEOPLE_DATASET:
        results = await action_service.search_people(ctx, actor_of(activity), text[:MAX_SEARCH_TEXT])
    return BotReply(invoke_response=cards.search_invoke_response(results))


def time_zone_of(activity: dict[str, Any]) -> str | None:
    """The person's time zone as Teams sends it with an activity (its IANA name)."""
    zone = activity.get("localTimezone")
    return zone[:64] if isinstance(zone, str) else None


# The verbs whose card button sends a form's inputs with it.
FORM_VERBS = (Verb.NOTE, Verb.SNOOZE, Verb.ASSIGN)


async def form_action(
    ctx: ActionContext, verb: Verb, data: dict[str, Any], activity: dict[str, Any], actor: Actor, where: Where
) -> ActionResult:
    """Add note, Snooze and Assign from the card: their inputs come with the action's data."""
    key = data["alertKey"]
    if verb is Verb.NOTE:
        return await action_service.note_alert(ctx, key, actor, where, str(data.get("noteText") or ""))
    if verb is Verb.SNOOZE:
        until = snooze_until(
            str(data.get("snoozeFor") or ""),
            str(data.get("snoozeDate") or ""),
            str(data.get("snoozeTime") or ""),
            time_zone_of(activity),
            ctx.clock(),
        )
        if isinstance(until, str):
            return ActionResult(None, False, until)
        return await action_service.snooze_alert(ctx, key, actor, where, until)
    if data.get("me") is True:
        return await action_service.assign_alert(ctx, key, actor, where, None)
    chosen = str(data.get("assignTo") or "").strip()
    if not chosen:
        return ActionResult(None, False, "Type a name and choose someone, or press Assign to me.")
    return await action_service.assign_alert(ctx, key, actor, where, chosen[:320])


async def handle_card_action(
    activity: dict[str, Any], record: ConversationRecord | None, ctx: ActionContext
) -> BotReply:
    action = (activity.get("value") or {}).get("action") or {}
    verb = Verb.parse(action["verb"]) if isinstance(action.get("verb"), str) else None
    data = action.get("data") or {}
    if verb is None or action["verb"] != verb.value or not isinstance(data.get("alertKey"), str):
        return BotReply(invoke_response=cards.message_invoke_response("This button is not recognised."))
    actor = actor_of(activity)
    where = where_of(activity, record, "card")
    if verb in FORM_VERBS:
        result = await form_action(ctx, verb, data, activity, actor, where)
    elif verb is Verb.SILENCE:
        # The form's inputs come with the action's data: how long (one of the offered
        # durations) and why.
        seconds = SILENCE_DURATIONS.get(str(data.get("duration") or ""))
        comment = str(data.get("comment") or "")[: cards.MAX_SILENCE_COMMENT_CHARS]
        result = (
            await action_service.silence_alert(ctx, data["alertKey"], actor, where, seconds, comment)
            if seconds is not None
            else ActionResult(None, False, "Choose for how long to silence it.")
        )
    else:
        result = await run_verb(ctx, verb, data["alertKey"], actor, where)
    log.info(
        "Button %s on alert %s pressed by %s (%s) in %s: %s",
        verb,
        data.get("alertId") or data["alertKey"],
        actor.name or "-",
        actor.aad_object_id or "-",
        record.label if record is not None else "-",
        result.message,
    )
    shown = None
    if record is not None and result.state is not None:
        shown = await ctx.store.get_delivery(result.state.tenant_id, result.state.key, record.conversation_id)
    if data.get("list") is True:
        # Pressed in the answer to "alerts": the list stays, refreshed, with what happened under it.
        return BotReply(
            invoke_response=cards.card_invoke_response(
                await open_alerts_card(ctx.store, actor_of(activity), record, ctx, result.message, result.changed)
            )
        )
    card = result.card(shown.context if shown else None)
    if card is None:
        return BotReply(invoke_response=cards.message_invoke_response(result.message))
    return BotReply(invoke_response=cards.card_invoke_response(card))


async def open_alerts_card(
    store: StateStore,
    actor: Actor,
    record: ConversationRecord | None,
    ctx: ActionContext | None,
    note: str = "",
    done: bool = True,
) -> dict[str, Any]:
    """The open alerts this person may see, by the one authorisation rule: a connector admin
    sees the organisation's; anyone else those shown in this conversation (a card, counted in
    its storm summary, or its own alert channel), which they are in."""
    now = ctx.clock() if ctx is not None else datetime.now(UTC)
    alerts = await store.list_open_alerts(actor.tenant_id)
    if action_service.is_connector_admin(ctx, actor):
        return cards.alerts_card(alerts, now, note, done)
    here = record.conversation_id if record is not None and record.tenant_id == actor.tenant_id else None
    if here is None:
        return cards.alerts_card([], now, note, done, scope="shown here")

    async def shown_here(state: AlertState) -> bool:
        if record is not None and record.alert_key == state.key:
            return True
        delivery = await store.get_delivery(state.tenant_id, state.key, here)
        return delivery is not None and (bool(delivery.activity_id) or delivery.status == "folded")

    visible: list[AlertState] = []
    for start in range(0, len(alerts), 50):
        chunk = alerts[start : start + 50]
        flags = await asyncio.gather(*(shown_here(state) for state in chunk))
        visible.extend(state for state, shown in zip(chunk, flags, strict=True) if shown)
    return cards.alerts_card(visible, now, note, done, scope="shown here")


async def handle_command(
    text: str, activity: dict[str, Any], record: ConversationRecord | None, store: StateStore, ctx: ActionContext | None
) -> BotReply:
    word, _, rest = text.partition(" ")
    word, rest = word.lower(), rest.strip()
    actor = actor_of(activity)
    # The command word and its first argument (an alert id, a name), never a whole message.
    log.info(
        "Command %r from %s (%s) in %s",
        " ".join([word, *rest.split()[:1]])[:80],
        actor.name or "-",
        actor.aad_object_id or "-",
        record.label if record is not None else "-",
    )
    if word == "alerts":
        return BotReply(cards=[await open_alerts_card(store, actor, record, ctx)])
    command_verb = Verb.parse(word)
    if command_verb in ALERT_COMMANDS and ctx is not None:
        assert command_verb is not None
        return BotReply(texts=[await alert_command(command_verb, word, rest, activity, record, store, ctx)])
    if word in ("subscribe", "unsubscribe", "subscriptions"):
        return BotReply(texts=[await subscription_command(word, rest, activity, record, store, ctx)])
    if word == "link":
        return BotReply(texts=[await link_account(rest, actor, store, ctx)])
    if word == "whoami":
        link = await store.get_link(actor.tenant_id, actor.aad_object_id) if actor.aad_object_id else None
        if link is None:
            linked = "not linked to an alerting platform account (send 'link')"
        elif link.verified:
            linked = (
                f"linked to **{cards.escape_text(link.platform_identity, 200)}** (verified: "
                f"{action_service.LINK_VERIFIED_BY[link.method]})"
            )
        else:
            linked = (
                f"your link to **{cards.escape_text(link.platform_identity, 200)}** waits for a connector admin's "
                "approval"
            )
        return BotReply(
            texts=[
                (
                    f"You are {cards.escape_text(actor.name or 'unknown', 100)} (Microsoft Entra object id "
                    f"{actor.aad_object_id or 'unknown'}) in tenant {actor.tenant_id or 'unknown'}; {linked}."
                )
            ]
        )
    return BotReply(cards=[cards.help_card(COMMANDS)])


# The commands that act on one alert, named by its id: ``<word> ID [argument]``.
ALERT_COMMANDS = (*TRANSITIONS, Verb.SILENCE, Verb.EXPIRE_SILENCE, *FORM_VERBS)
COMMAND_EXAMPLES = {
    Verb.SILENCE: "silence ALRT-1042 4h deploying a fix",
    Verb.NOTE: "note ALRT-1042 rolled back 4.12",
    Verb.SNOOZE: "snooze ALRT-1042 2h (or: until 14:30)",
    Verb.ASSIGN: "assign ALRT-1042 me (or an e-mail address)",
}


async def alert_command(
    verb: Verb,
    word: str,
    rest: str,
    activity: dict[str, Any],
    record: ConversationRecord | None,
    store: StateStore,
    ctx: ActionContext,
) -> str:
    """``ack ID``, ``silence ID 4h why``, ``note ID text`` and the others: the alert the id
    names in the person's organisation, then the verb with the rest of the command."""
    given, _, argument = rest.partition(" ")
    example = COMMAND_EXAMPLES.get(verb, f"{word} ALRT-1042")
    if not given:
        return f"Which alert? For example: {example}"
    state = await action_service.find_alert(store, actor_of(activity).tenant_id, given)
    if state is None:
        return f"No alert {cards.escape_text(given, 100)} in this organisation."
    result = await _run_command(
        verb, state, argument.strip(), example, activity, where_of(activity, record, "command"), ctx
    )
    if isinstance(result, str):
        return result
    return f"{cards.escape_text(state.alert_id, 100)}: {cards.escape_text(result.message)}"


async def _run_command(
    verb: Verb,
    state: AlertState,
    argument: str,
    example: str,
    activity: dict[str, Any],
    where: Where,
    ctx: ActionContext,
) -> ActionResult | str:
    """The verb done to the alert with what the command gave after its id; a str says what is missing."""
    actor = actor_of(activity)
    if verb is Verb.SILENCE:
        duration, _, comment = argument.partition(" ")
        seconds = silence_seconds(duration) if duration else None
        if seconds is None:
            return f"For how long? For example: {example} (30m to 7d)."
        return await action_service.silence_alert(ctx, state.key, actor, where, seconds, comment.strip())
    if verb is Verb.NOTE:
        if not argument:
            return f"What does the note say? For example: {example}"
        return await action_service.note_alert(ctx, state.key, actor, where, argument)
    if verb is Verb.SNOOZE:
        words = argument.split()
        if len(words) == 2 and words[0].lower() == "until":
            until = snooze_until("", "", words[1], time_zone_of(activity), ctx.clock())
        else:
            seconds = silence_seconds(argument, MAX_SNOOZE_SECONDS) if argument else None
            until = (
                ctx.clock() + timedelta(seconds=seconds)
                if seconds is not None
                else f"For how long? For example: {example}; 30m to 7d."
            )
        if isinstance(until, str):
            return until
        return await action_service.snooze_alert(ctx, state.key, actor, where, until)
    if verb is Verb.ASSIGN:
        who = None if argument.lower() in ("", "me") else argument[:320]
        return await action_service.assign_alert(ctx, state.key, actor, where, who)
    return await run_verb(ctx, verb, state.key, actor, where)


async def may_subscribe(
    record: ConversationRecord, actor: Actor, activity: dict[str, Any], ctx: ActionContext | None
) -> str | None:
    """Who may change what reaches a conversation: anyone their own personal chat; a
    connector admin (CONNECTOR_ADMINS) anywhere; an owner of the team its channel (checked
    with Microsoft Graph, so the tenant must be connected). None: allowed, else why not."""
    if record.conversation_type == "personal":
        return None
    if action_service.is_connector_admin(ctx, actor):
        return None
    if record.conversation_type == "channel" and ctx is not None and ctx.directory is not None:
        where = where_of(activity, record, "command")
        if where.team_group_id and where.channel_id:
            try:
                if actor.aad_object_id in await ctx.directory.channel_owner_ids(
                    actor.tenant_id, where.team_group_id, where.channel_id
                ):
                    return None
            except Exception as exc:  # noqa: BLE001 - a Graph failure is a refusal with its reason
                return f"Your ownership of this team could not be verified ({exc})."
        return "Only the team's owners and the connector's admins can subscribe this channel."
    if record.conversation_type == "channel":
        return (
            "Only the connector's admins can subscribe this channel while the tenant is not connected to Microsoft "
            "Graph (team owners can once it is)."
        )
    return "Only the connector's admins (CONNECTOR_ADMINS) can subscribe a group chat."


async def subscription_command(
    word: str,
    rest: str,
    activity: dict[str, Any],
    record: ConversationRecord | None,
    store: StateStore,
    ctx: ActionContext | None,
) -> str:
    from shared.domain.workflows import InvalidWorkflow, subscription_id
    from shared.services import workflows as workflow_service

    if record is None:
        return "This conversation names no organisation, so it cannot be subscribed."
    workflows = await store.list_workflows(record.tenant_id)
    if word == "subscriptions":
        reaching = [w for w in workflows if w.reaches(record.conversation_id)]
        if not workflows:
            return (
                "This organisation has no workflows: every conversation where I am installed gets every alert. "
                "Send 'subscribe' to choose what comes here."
            )
        if not reaching:
            return (
                f"No workflow sends alerts here ({len(workflows)} workflow(s) send them elsewhere). Send "
                "'subscribe [filters]' to change that."
            )
        return (
            "Alerts come here from: "
            + "; ".join(
                cards.escape_text(workflow_service.describe(w), 300) for w in sorted(reaching, key=lambda w: w.name)
            )
            + "."
        )
    actor = actor_of(activity)
    refusal = await may_subscribe(record, actor, activity, ctx)
    if refusal is not None:
        return refusal
    if word == "unsubscribe":
        mine = subscription_id(record.conversation_id)
        if not await store.has_workflow(record.tenant_id, mine):  # readable or not: it can go
            others = [w.name for w in workflows if w.reaches(record.conversation_id)]
            extra = f" Alerts still come here from {', '.join(others)}, which an admin manages." if others else ""
            return "This conversation has no subscription." + cards.escape_text(extra)
        await store.delete_workflow(record.tenant_id, mine)
        return (
            "Unsubscribed: this conversation gets no new alerts from its subscription. Cards already here still update."
        )
    try:
        rest, mention = workflow_service.subscription_mentions(rest, actor.aad_object_id)
        match = workflow_service.parse_subscription(rest)
    except InvalidWorkflow as exc:
        return cards.escape_text(f"{exc.field}: {exc.problem}", 500)
    workflow = workflow_service.subscription(record, match, actor.aad_object_id, actor.name, mention)
    saved = await workflow_service.put_workflow(
        store, record.tenant_id, workflow, updated_by=actor.name or actor.aad_object_id
    )
    first = (
        " This is the organisation's first workflow: from now on only subscribed conversations get alerts."
        if saved.created and len(workflows) == 0
        else ""
    )
    verb = "Subscribed" if saved.created else ("Subscription changed" if saved.changed else "Already subscribed")
    mentions = (
        f" Its cards mention {len(mention)} {'person' if len(mention) == 1 else 'people'}, so Teams notifies them."
        if mention
        else ""
    )
    return (
        f"{verb}: this conversation gets {cards.escape_text(match.describe(), 300)}, as they are created and "
        f"change.{first}{mentions}"
    )


async def _own_identities(ctx: ActionContext | None, actor: Actor) -> set[str]:
    """The person's own mail and UPN (lower case) from Microsoft Graph; empty when unknown."""
    if ctx is None or ctx.directory is None:
        return set()
    try:
        user = await ctx.directory.get_user(actor.tenant_id, actor.aad_object_id)
    except Exception as exc:  # noqa: BLE001 - not verifiable now: the link waits for an admin
        log.info("Cannot read the account of %s to verify a link: %s", actor.aad_object_id, exc)
        return set()
    return {str(v).lower() for v in ((user or {}).get("mail"), (user or {}).get("userPrincipalName")) if v}


async def link_account(name: str, actor: Actor, store: StateStore, ctx: ActionContext | None) -> str:
    """`link <name>`: a link to a name is verified against the person's own Microsoft Entra
    account (mail or UPN); any other name waits for a connector admin's approval and, until
    then, actions carry the person's own directory account (or none when it cannot be read).
    `link` alone links the person's own account."""
    if not actor.aad_object_id:
        return "Your Teams account has no Microsoft Entra id here, so it cannot be linked."
    if name:
        name = name[:200]
        own = await _own_identities(ctx, actor)
        if name.lower() in own:
            await store.save_link(
                AccountLink(actor.tenant_id, actor.aad_object_id, name.lower(), "directory", None, datetime.now(UTC))
            )
            return (
                f"Linked to {cards.escape_text(name, 200)} (your Microsoft 365 account). Your actions on alerts "
                "now carry this identity."
            )
        await store.save_link(
            AccountLink(actor.tenant_id, actor.aad_object_id, name, "requested", None, datetime.now(UTC))
        )
        why = (
            "it is not your Microsoft 365 account's mail or user name"
            if own
            else "your Microsoft 365 account cannot be read to check it"
        )
        # What authorize() does meanwhile (actions.ensure_link): the person's own directory
        # account when it can be read, else no platform identity.
        meanwhile = "your own Microsoft 365 account" if own else "no platform identity"
        return (
            f"Link to {cards.escape_text(name, 200)} requested, not made: {why}. A connector admin can approve it "
            f"(PUT /api/tenants/{actor.tenant_id}/links/{actor.aad_object_id}); until then your actions carry "
            f"{meanwhile}."
        )
    link = await action_service.ensure_link(ctx, actor) if ctx is not None else None
    if link is None:
        return (
            "I could not find your e-mail address to link automatically. Send link followed by your alerting "
            "platform user name, e.g. link alex.wilber."
        )
    return f"Linked to {cards.escape_text(link.platform_identity, 200)} (from your Microsoft 365 account)."


# Teams' channelData.eventType of a conversationUpdate about the team's channels and the team
# itself: the activity's conversation is then the team (its General channel), and
# channelData.channel the channel the event is about (Teams docs: conversation events).
CHANNEL_EVENTS = (
    "channelCreated",
    "channelRenamed",
    "channelDeleted",
    "channelRestored",
    "channelShared",
    "channelUnshared",
)
TEAM_GONE_EVENTS = ("teamDeleted", "teamHardDeleted", "teamArchived")


async def _team_event(activity: dict[str, Any], store: StateStore, now: datetime) -> bool:
    """Keep the stored conversations true to a channel or team event; True when the activity
    was one (nothing else to do with it)."""
    channel_data = activity.get("channelData") or {}
    event = channel_data.get("eventType")
    if event not in CHANNEL_EVENTS + TEAM_GONE_EVENTS:
        return False
    conversation = activity.get("conversation") or {}
    tenant_id = conversation.get("tenantId") or (channel_data.get("tenant") or {}).get("id")
    if not tenant_id:
        return True
    team = channel_data.get("team") or {}
    if event in TEAM_GONE_EVENTS:
        # A deleted or archived team's channels get no more alerts (unarchived: installing
        # the app again, or any message to the bot there, enrols it again).
        for record in await store.list_conversations(tenant_id):
            if record.conversation_type == "channel" and (
                (team.get("id") and record.team_id == team.get("id"))
                or (team.get("aadGroupId") and record.team_group_id == team.get("aadGroupId"))
            ):
                await store.remove_conversation(tenant_id, record.conversation_id)
        log.info(
            "Team %s of tenant %s: %s; its channels were removed", team.get("name") or team.get("id"), tenant_id, event
        )
        return True
    channel = channel_data.get("channel") or {}
    known = await store.get_conversation(tenant_id, channel["id"]) if channel.get("id") else None
    if known is None:
        return True  # a channel the connector does not post to (created ones are not enrolled)
    if event == "channelDeleted":
        await store.remove_conversation(tenant_id, known.conversation_id)
    elif event == "channelRenamed" and channel.get("name"):
        await store.save_conversation(replace(known, name=channel["name"], updated=now))
    return True


async def handle_activity(
    activity: dict[str, Any], reference: dict[str, Any], *, store: StateStore, actions: ActionContext | None = None
) -> BotReply:
    """Remember where the bot is (every activity refreshes the conversation reference), answer
    commands and card buttons."""
    now = datetime.now(UTC)
    kind = activity.get("type")
    if kind == "conversationUpdate" and await _team_event(activity, store, now):
        return BotReply()
    record = conversation_record(activity, reference, now)
    if record is not None:
        existing = await store.get_conversation(record.tenant_id, record.conversation_id)
        removed = kind == "installationUpdate" and activity.get("action") in ("remove", "remove-upgrade")
        bot_left = kind == "conversationUpdate" and any(
            member.get("id") == (activity.get("recipient") or {}).get("id")
            for member in activity.get("membersRemoved") or []
        )
        if removed or bot_left:
            await store.remove_conversation(record.tenant_id, record.conversation_id)
            return BotReply()
        if existing is not None:
            record = replace(
                record,
                alert_key=existing.alert_key,
                name=record.name or existing.name,
                team_group_id=record.team_group_id or existing.team_group_id,
            )
        # Chats are enrolled by any activity (the bot is installed there). A team channel is
        # enrolled when the bot is installed in the team; a message in another channel only
        # refreshes a channel already known, so talking to the bot somewhere does not
        # subscribe that channel to every alert.
        enrol = (
            record.conversation_type != "channel"
            or kind in ("installationUpdate", "conversationUpdate")
            or existing is not None
        )
        if enrol:
            await store.save_conversation(record)

    if kind == "invoke" and activity.get("name") == INVOKE_CARD_ACTION:
        if actions is None:
            return BotReply(invoke_response=cards.message_invoke_response("Actions are not available."))
        return await handle_card_action(activity, record, actions)
    if kind == "invoke" and activity.get("name") == INVOKE_SEARCH:
        return await handle_search(activity, actions)
    if kind == "message":
        text = command_text(activity)
        return await handle_command(text, activity, record, store, actions) if text else BotReply()
    if kind == "installationUpdate" and activity.get("action") in ("add", "add-upgrade"):
        ask = (
            "Type **help**" if record is None or record.conversation_type == "personal" else "Mention me with **help**"
        )
        return BotReply(
            texts=[
                (
                    f"Thanks for adding Teams Alert Connector. Alerts for this tenant will appear here. {ask} for "
                    "the commands."
                )
            ]
        )
    return BotReply()

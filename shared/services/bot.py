"""handle_activity: what the bot does with each inbound Teams activity.

Works on the activity as JSON (the Bot Framework wire shape), so it never imports botbuilder;
the bot adapter sends whatever this returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from shared import cards
from shared.domain.model import ConversationRecord
from shared.ports import StateStore

COMMANDS: list[tuple[str, str]] = [
    ("help", "Show this list."),
    ("alerts", "List this tenant's open alerts, newest first."),
    ("ack <id>", "Acknowledge an alert."),
    ("resolve <id>", "Resolve an alert."),
    ("link", "Link your Teams account to your alerting platform account."),
    ("whoami", "Show who you are to the connector."),
]

_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)


@dataclass
class BotReply:
    """Messages to send back in the conversation (text or an Adaptive Card)."""

    texts: list[str] = field(default_factory=list)
    cards: list[dict] = field(default_factory=list)


def conversation_record(activity: dict, reference: dict, now: datetime) -> ConversationRecord | None:
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
    name = channel.get("name") or team.get("name") or conversation.get("name") or (activity.get("from") or {}).get("name") or ""
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
    )


def command_text(activity: dict) -> str:
    """The message text without @mentions of the bot, trimmed and lower-cased."""
    text = _MENTION.sub(" ", activity.get("text") or "")
    return " ".join(text.split()).lower()


async def handle_activity(activity: dict, reference: dict, *, store: StateStore) -> BotReply:
    """Remember where the bot is (every activity refreshes the conversation reference) and
    answer messages."""
    now = datetime.now(timezone.utc)
    record = conversation_record(activity, reference, now)
    kind = activity.get("type")
    if record is not None:
        removed = kind == "installationUpdate" and activity.get("action") in ("remove", "remove-upgrade")
        bot_left = kind == "conversationUpdate" and any(
            member.get("id") == (activity.get("recipient") or {}).get("id") for member in activity.get("membersRemoved") or []
        )
        if removed or bot_left:
            await store.remove_conversation(record.tenant_id, record.conversation_id)
            return BotReply()
        await store.save_conversation(record)

    if kind == "message":
        return BotReply(cards=[cards.help_card(COMMANDS)]) if command_text(activity) else BotReply()
    if kind == "installationUpdate" and activity.get("action") in ("add", "add-upgrade"):
        return BotReply(texts=["Thanks for adding Teams Alert Connector. Alerts for this tenant will appear here. Type **help** for the commands."])
    return BotReply()

"""Inbound activities in the shapes Teams (and Agents Playground) send to a bot.

Every builder returns a plain JSON-serialisable dict, ready for ``Activity().deserialize``
or an HTTP POST to the bot's messaging endpoint.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["personal", "groupChat", "channel"]
KINDS = ("personal", "groupChat", "channel")

DEFAULT_TENANT_ID = "72f988bf-0000-4000-8000-00000000a1e7"
DEFAULT_BOT_APP_ID = "00000000-0000-4000-8000-0000000b0700"
DEFAULT_BOT_NAME = "Alert Connector"
DEFAULT_USER = {
    "id": "29:1sim-user-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "name": "Alex Wilber",
    "aadObjectId": "6e5f4a3b-0000-4000-8000-0000000a1e55",
}
DEFAULT_TEAM = {
    "id": "19:sim-team-general0000000000000000@thread.tacv2",
    "name": "Operations",
    "aadGroupId": "0f1e2d3c-0000-4000-8000-000000007ea3",
}
# The General channel of a team has the team's id; installs pick another channel here.
DEFAULT_CHANNEL = {"id": "19:sim-channel-alerts00000000000000@thread.tacv2", "name": "Alerts"}
DEFAULT_GROUP_CHAT_ID = "19:sim-groupchat-0000000000000000000000@thread.v2"
DEFAULT_PERSONAL_CONVERSATION_ID = "a:1sim-personal-chat-0000000000000000000000000000"


def _now() -> tuple[str, str]:
    now = datetime.now(UTC)
    utc = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    local = now.astimezone().isoformat(timespec="milliseconds")
    return utc, local


def _event_id() -> str:
    return f"f:{uuid.uuid4()}"


@dataclass
class ActivityBuilder:
    """Builds Teams activities with consistent defaults for one simulated tenant."""

    service_url: str
    tenant_id: str = DEFAULT_TENANT_ID
    bot_app_id: str = DEFAULT_BOT_APP_ID
    bot_name: str = DEFAULT_BOT_NAME
    user: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_USER))
    team: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TEAM))
    channel: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CHANNEL))
    group_chat_id: str = DEFAULT_GROUP_CHAT_ID
    personal_conversation_id: str = DEFAULT_PERSONAL_CONVERSATION_ID
    locale: str = "en-US"
    _message_ids: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        start = int(datetime.now(UTC).timestamp() * 1000)
        self._message_ids = itertools.count(start)

    def new_message_id(self) -> str:
        """A Teams-style message id (milliseconds since the epoch)."""
        return str(next(self._message_ids))

    # -- pieces -------------------------------------------------------------------------

    def conversation_id(self, kind: Kind, *, team_id: str | None = None) -> str:
        """The conversation id a builder uses for a kind (the team id for channels)."""
        if kind == "personal":
            return self.personal_conversation_id
        if kind == "groupChat":
            return self.group_chat_id
        return team_id or self.team["id"]

    def bot_account(self, bot_app_id: str | None = None) -> dict[str, Any]:
        return {"id": f"28:{bot_app_id or self.bot_app_id}", "name": self.bot_name}

    def _base(
        self,
        activity_type: str,
        kind: Kind,
        *,
        tenant_id: str | None,
        bot_app_id: str | None,
        user: dict[str, Any] | None,
        conversation_id: str | None,
        team: dict[str, Any] | None,
        channel: dict[str, Any] | None,
        service_url: str | None,
        activity_id: str | None = None,
    ) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        tenant_id = tenant_id or self.tenant_id
        team = {**self.team, **(team or {})}
        channel = {**self.channel, **(channel or {})}
        timestamp, local_timestamp = _now()
        conversation: dict[str, Any] = {
            "conversationType": kind,
            "tenantId": tenant_id,
            "id": conversation_id or self.conversation_id(kind, team_id=team["id"]),
        }
        if kind != "personal":
            conversation = {"isGroup": True, **conversation}
        channel_data: dict[str, Any] = {"tenant": {"id": tenant_id}}
        if kind == "channel":
            channel_data = {
                "teamsChannelId": channel["id"],
                "teamsTeamId": team["id"],
                "channel": {"id": channel["id"], "name": channel.get("name")},
                "team": {k: team[k] for k in ("id", "name", "aadGroupId") if k in team},
                **channel_data,
            }
        return {
            "type": activity_type,
            "id": activity_id or _event_id(),
            "timestamp": timestamp,
            "localTimestamp": local_timestamp,
            "channelId": "msteams",
            "serviceUrl": service_url or self.service_url,
            "from": copy.deepcopy({**self.user, **(user or {})}),
            "conversation": conversation,
            "recipient": self.bot_account(bot_app_id),
            "entities": [
                {
                    "locale": self.locale,
                    "country": self.locale.split("-")[-1],
                    "platform": "Web",
                    "timezone": "Europe/Berlin",
                    "type": "clientInfo",
                }
            ],
            "channelData": channel_data,
            "locale": self.locale,
        }

    # -- activities ---------------------------------------------------------------------

    def installation_update(
        self,
        kind: Kind = "personal",
        *,
        action: Literal["add", "remove"] = "add",
        tenant_id: str | None = None,
        bot_app_id: str | None = None,
        user: dict[str, Any] | None = None,
        conversation_id: str | None = None,
        team: dict[str, Any] | None = None,
        channel: dict[str, Any] | None = None,
        service_url: str | None = None,
    ) -> dict[str, Any]:
        """The bot was installed (``add``) or uninstalled (``remove``) in a chat or team.

        For a team install the conversation is the team (its General channel) and the channel
        the installer picked is in ``channelData.settings.selectedChannel``.
        """
        if action not in ("add", "remove"):
            raise ValueError(f"action must be 'add' or 'remove', got {action!r}")
        activity = self._base(
            "installationUpdate",
            kind,
            tenant_id=tenant_id,
            bot_app_id=bot_app_id,
            user=user,
            conversation_id=conversation_id,
            team=team,
            channel=channel,
            service_url=service_url,
        )
        activity["action"] = action
        if kind == "channel":
            channel_data = activity["channelData"]
            channel_data["settings"] = {"selectedChannel": {"id": channel_data["channel"]["id"]}}
            channel_data["source"] = {"name": "message"}
        return activity

    def conversation_update(
        self,
        kind: Kind = "channel",
        *,
        event_type: str | None = None,
        members_added: list[dict[str, Any]] | None = None,
        members_removed: list[dict[str, Any]] | None = None,
        tenant_id: str | None = None,
        bot_app_id: str | None = None,
        user: dict[str, Any] | None = None,
        conversation_id: str | None = None,
        team: dict[str, Any] | None = None,
        channel: dict[str, Any] | None = None,
        service_url: str | None = None,
    ) -> dict[str, Any]:
        """A conversationUpdate; by default the bot itself was added to the conversation.

        ``event_type`` is Teams' ``channelData.eventType`` (``teamMemberAdded``,
        ``teamMemberRemoved``, ``channelCreated``, ``channelRenamed``, ``channelDeleted``,
        ``teamRenamed``, ...); for channels it defaults from the members changed.
        """
        activity = self._base(
            "conversationUpdate",
            kind,
            tenant_id=tenant_id,
            bot_app_id=bot_app_id,
            user=user,
            conversation_id=conversation_id,
            team=team,
            channel=channel,
            service_url=service_url,
        )
        if members_added is None and members_removed is None:
            members_added = [activity["recipient"]]
        if members_added:
            activity["membersAdded"] = members_added
        if members_removed:
            activity["membersRemoved"] = members_removed
        if kind == "channel":
            default = "teamMemberRemoved" if members_removed and not members_added else "teamMemberAdded"
            activity["channelData"]["eventType"] = event_type or default
        elif event_type:
            activity["channelData"]["eventType"] = event_type
        return activity

    def message(
        self,
        text: str,
        kind: Kind = "personal",
        *,
        mention_bot: bool = False,
        thread_id: str | None = None,
        reply_to_id: str | None = None,
        value: dict[str, Any] | None = None,
        tenant_id: str | None = None,
        bot_app_id: str | None = None,
        user: dict[str, Any] | None = None,
        conversation_id: str | None = None,
        team: dict[str, Any] | None = None,
        channel: dict[str, Any] | None = None,
        service_url: str | None = None,
    ) -> dict[str, Any]:
        """A user's message. In a channel it is a new post unless ``thread_id`` names the root.

        With ``mention_bot`` the text reads ``<at>BotName</at> text`` and a mention entity is
        added, as Teams does when the bot is @mentioned.
        """
        message_id = self.new_message_id()
        if kind == "channel" and conversation_id is None:
            channel_id = (channel or {}).get("id") or self.channel["id"]
            conversation_id = f"{channel_id};messageid={thread_id or message_id}"
        activity = self._base(
            "message",
            kind,
            tenant_id=tenant_id,
            bot_app_id=bot_app_id,
            user=user,
            conversation_id=conversation_id,
            team=team,
            channel=channel,
            service_url=service_url,
            activity_id=message_id,
        )
        html = text
        if mention_bot:
            mention = f"<at>{self.bot_name}</at>"
            text = f"{mention} {text}"
            html = f'<at id="0">{self.bot_name}</at>&nbsp;{html}'
            activity["entities"].insert(
                0,
                {"type": "mention", "text": mention, "mentioned": activity["recipient"]},
            )
        activity["text"] = text
        activity["textFormat"] = "plain"
        activity["attachments"] = [{"contentType": "text/html", "content": f"<p>{html}</p>"}]
        if thread_id and kind == "channel":
            activity["replyToId"] = reply_to_id or thread_id
        elif reply_to_id:
            activity["replyToId"] = reply_to_id
        if value is not None:
            activity["value"] = value
        return activity

    def invoke_adaptive_card_action(
        self,
        verb: str,
        data: dict[str, Any] | None = None,
        kind: Kind = "personal",
        *,
        reply_to_id: str | None = None,
        thread_id: str | None = None,
        title: str | None = None,
        tenant_id: str | None = None,
        bot_app_id: str | None = None,
        user: dict[str, Any] | None = None,
        conversation_id: str | None = None,
        team: dict[str, Any] | None = None,
        channel: dict[str, Any] | None = None,
        service_url: str | None = None,
    ) -> dict[str, Any]:
        """A user pressed an ``Action.Execute`` button on the card ``reply_to_id``.

        In a channel the conversation id carries the thread root (``thread_id``, defaulting to
        the card's id) as Teams sends it.
        """
        if kind == "channel" and conversation_id is None:
            channel_id = (channel or {}).get("id") or self.channel["id"]
            root = thread_id or reply_to_id
            conversation_id = f"{channel_id};messageid={root}" if root else channel_id
        activity = self._base(
            "invoke",
            kind,
            tenant_id=tenant_id,
            bot_app_id=bot_app_id,
            user=user,
            conversation_id=conversation_id,
            team=team,
            channel=channel,
            service_url=service_url,
        )
        activity["name"] = "adaptiveCard/action"
        action: dict[str, Any] = {"type": "Action.Execute", "verb": verb, "data": data or {}}
        if title:
            action["title"] = title
        activity["value"] = {"action": action, "trigger": "manual"}
        if reply_to_id:
            activity["replyToId"] = reply_to_id
        activity["channelData"]["source"] = {"name": "message"}
        return activity

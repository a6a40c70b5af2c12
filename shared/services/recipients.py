"""Reaching a workflow recipient: turn a :class:`Recipient` into a conversation to post in.

- a channel or chat: the conversation the bot already knows, or one made from the tenant's
  service URL (the bot must be in that team or chat; Teams refuses the post otherwise);
- a person: install the app for the user through Graph and use the app's 1:1 chat;
- a group: create the group chat through Graph, install the app in it, post as the bot;
- with the delegated method: the chat or channel through Graph as the connected user, a
  person or group as a chat the connected user creates.

Every resolved recipient is cached in Table Storage (recipient → conversation id), so the next
alert costs no Graph call; a recipient that cannot be reached is cached with its reason for
:data:`FAILURE_CACHE` so a broken recipient does not cost Graph calls on every event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.connections import DeliveryTarget
from shared.domain.model import ConversationRecord
from shared.domain.workflows import Recipient
from shared.ports import Directory, GraphError, ReconsentRequired, StateStore, TransientError
from shared.services.consent import delivery_conversation
from shared.settings import TEAMS_GLOBAL_SERVICE_URL

log = logging.getLogger(__name__)

# Teams' global Bot Connector endpoint for proactive messages when the bot has not yet heard
# from the tenant (Teams docs, "Send proactive messages": the service URL).
DEFAULT_SERVICE_URL = TEAMS_GLOBAL_SERVICE_URL
# How long "this person could not be found / the app could not be installed" is believed.
FAILURE_CACHE = timedelta(minutes=30)
# How long a worker setting up a group chat holds its claim (longer than the Graph calls take).
SETUP_CLAIM = timedelta(minutes=2)
# How long a person looked up for a mention is believed in this process (a directory read, not
# a decision other instances must share: each may look people up for itself).
MENTION_CACHE_SECONDS = 600
MAX_MENTION_CACHE = 10_000
_MENTION_CACHE: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}


class Unreachable(Exception):
    """The recipient cannot be reached; the message says why, for the fallback note."""


def _unreachable(exc: GraphError, prefix: str = "") -> Exception:
    """A Graph failure that may pass (throttled beyond the retries, unavailable, unreachable)
    is transient: the queue redelivers. Anything else makes the recipient unreachable."""
    if exc.status is None or exc.status == 429 or exc.status >= 500:
        return TransientError(f"Microsoft Graph failed for now: {exc}")
    return Unreachable(f"{prefix}{exc}")


def _trusted(record: ConversationRecord) -> bool:
    """A conversation known to be the tenant's: Teams told the bot of it (installed there), or
    the tenant's own Graph connection made or found it. (A record made from an id alone is not.)"""
    return record.origin == "teams" or (record.reference or {}).get("verifiedBy") == "graph"


@dataclass
class RecipientResolver:
    store: StateStore
    directory: Directory | None = None  # None: the tenant connection is off (GRAPH_APP_ID unset)
    teams_app_catalog_id: str | None = None
    bot_app_id: str = ""
    # Where the bot posts in a conversation of a tenant it has not heard from in Teams yet
    # (TEAMS_SERVICE_URL): Teams' global service URL, or locally the Agents Playground's.
    default_service_url: str = DEFAULT_SERVICE_URL
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def resolve(self, tenant_id: str, recipient: Recipient, delivery: str = "bot") -> ConversationRecord:
        """The conversation for ``recipient``; raises :class:`Unreachable` with the reason."""
        if recipient.kind == "responders":
            raise Unreachable("'responders' is expanded into people before delivery")
        if delivery == "delegated":
            await self._connected(tenant_id, delegated=True)
        if recipient.kind in ("channel", "chat"):
            return await self._conversation(tenant_id, recipient, delivery)
        cache_key = f"{delivery}|{recipient.key}"
        cached = await self.store.get_recipient(tenant_id, cache_key)
        now = self.clock()
        if cached and cached["conversationId"]:
            known = await self.store.get_conversation(tenant_id, cached["conversationId"])
            if known is not None:
                return known
        if cached and cached["failure"] and cached["until"] and cached["until"] > now:
            raise Unreachable(cached["failure"])
        if recipient.kind == "group" and not await self.store.claim_recipient(tenant_id, cache_key, now, SETUP_CLAIM):
            # Another worker is creating this group's chat: wait for it rather than make a second.
            raise TransientError(f"the group chat of {recipient.label()} is being set up by another worker")
        try:
            record = await (
                self._person(tenant_id, recipient, delivery)
                if recipient.kind == "person"
                else self._group(tenant_id, recipient, delivery)
            )
        except Unreachable as exc:
            await self.store.save_recipient(tenant_id, cache_key, None, str(exc), now + FAILURE_CACHE)
            raise
        await self.store.save_conversation(record)
        await self.store.save_recipient(tenant_id, cache_key, record.conversation_id)
        return record

    # ------------------------------------------------------------------ channels and chats

    async def check_belongs(self, tenant_id: str, recipient: Recipient, delivery: str = "bot") -> None:
        """Refuse (Unreachable) a channel or chat named by id that is not one of the tenant's: a
        workflow or a manual send of one tenant never reaches another tenant's conversations.
        Sent as the connected user (``delegated``), Graph itself keeps to the user's tenant."""
        if recipient.kind not in ("channel", "chat") or delivery == "delegated":
            return
        known = await self.store.get_conversation(tenant_id, recipient.channel_id or recipient.chat_id or "")
        if known is None or not _trusted(known):
            await self._verify(tenant_id, recipient)

    async def _verify(self, tenant_id: str, recipient: Recipient) -> None:
        """A channel the bot was never added to is the tenant's if the tenant's own Graph
        connection finds it in the team named; a chat must be one the bot is in."""
        why = f"{recipient.label()} is not a conversation of tenant {tenant_id} that the bot was added to"
        if recipient.kind != "channel" or not recipient.team_id:
            raise Unreachable(f"{why} (add the bot to the chat first)")
        try:
            directory = await self._connected(tenant_id)
        except Unreachable as exc:
            raise Unreachable(f"{why}, and the channel cannot be looked up: {exc}") from None
        try:
            channels = await directory.list_channels(tenant_id, recipient.team_id)
        except GraphError as exc:
            raise _unreachable(exc, f"{why}, and looking its team up failed: ") from exc
        if not any(channel.get("id") == recipient.channel_id for channel in channels):
            raise Unreachable(f"{why}, and the tenant's team {recipient.team_id} has no such channel")

    async def _conversation(self, tenant_id: str, recipient: Recipient, delivery: str) -> ConversationRecord:
        conversation_id = recipient.channel_id or recipient.chat_id or ""
        known = await self.store.get_conversation(tenant_id, conversation_id)
        if (
            known is not None
            and (delivery == "delegated") == known.through_graph
            and (delivery == "delegated" or _trusted(known))
        ):
            return known
        if delivery != "delegated" and (known is None or not _trusted(known)):
            await self._verify(tenant_id, recipient)
        now = self.clock()
        if delivery == "delegated":
            target = (
                DeliveryTarget(team_id=recipient.team_id, channel_id=recipient.channel_id)
                if recipient.kind == "channel"
                else DeliveryTarget(chat_id=recipient.chat_id)
            )
            record = delivery_conversation(tenant_id, target, now)
        else:
            kind = (
                "channel"
                if recipient.kind == "channel"
                else ("personal" if conversation_id.startswith("a:") else "groupChat")
            )
            record = await self._bot_conversation(tenant_id, conversation_id, kind, recipient.label())
            if recipient.kind == "channel":
                record = ConversationRecord(
                    **{
                        **record.__dict__,
                        "team_id": recipient.team_id,
                        "channel_id": recipient.channel_id,
                        "team_group_id": recipient.team_id,
                    }
                )
        record = ConversationRecord(**{**record.__dict__, "origin": "routed", "name": recipient.name or record.name})
        if delivery != "delegated":  # found through the tenant's own connection
            record = ConversationRecord(**{**record.__dict__, "reference": {**record.reference, "verifiedBy": "graph"}})
        await self.store.save_conversation(record)
        return record

    async def _bot_conversation(self, tenant_id: str, conversation_id: str, kind: str, name: str) -> ConversationRecord:
        """A conversation reference the bot can post to, built from what the bot knows of the
        tenant (its service URL and its own id in a conversation it was installed in)."""
        template = next(
            (
                c
                for c in await self.store.list_conversations(tenant_id)
                if c.origin == "teams" and c.service_url and not c.through_graph
            ),
            None,
        )
        service_url = template.service_url if template else self.default_service_url
        bot = (template.reference.get("bot") if template else None) or {
            "id": f"28:{self.bot_app_id}",
            "name": "Teams Alert Connector",
        }
        reference = {
            "bot": bot,
            "channelId": "msteams",
            "serviceUrl": service_url,
            "conversation": {
                "id": conversation_id,
                "conversationType": kind,
                "tenantId": tenant_id,
                "isGroup": kind != "personal",
            },
        }
        return ConversationRecord(
            tenant_id, conversation_id, kind, service_url, reference, name=name, updated=self.clock(), origin="routed"
        )

    # ------------------------------------------------------------------ people and groups

    async def _connected(self, tenant_id: str, *, delegated: bool = False) -> Directory:
        connection = await self.store.get_connection(tenant_id)
        if self.directory is None:
            raise Unreachable(
                "the connector's Microsoft Graph connection is off (GRAPH_APP_ID is not set), so people and "
                "groups cannot be reached"
            )
        if connection is None:
            raise Unreachable(f"tenant {tenant_id} is not connected to Microsoft Graph (see docs/CONNECTING.md)")
        if connection.status == "needs_reconsent":
            raise Unreachable(f"the tenant's Microsoft 365 connection needs consent again ({connection.status_reason})")
        if connection.status != "connected":
            raise Unreachable(f"the tenant's Microsoft 365 connection is {connection.status}")
        if delegated and connection.method != "delegated":
            raise Unreachable(
                "the workflow delivers as the connected user, but the tenant is connected with the bot method"
            )
        return self.directory

    async def mentions(self, tenant_id: str, people: tuple[str, ...]) -> dict[str, Any]:
        """The people a card mentions, looked up in the tenant's directory: ``{"mentions":
        [{"id", "name"}], "unresolvedMentions": [who]}`` (a card names the unresolved as text).
        A lookup that fails for now fails the event (the queue tries it again)."""
        found: list[dict[str, str]] = []
        unresolved: list[str] = []
        try:
            directory = await self._connected(tenant_id)
        except Unreachable:
            return {"unresolvedMentions": list(people)}
        for who in people:
            person = await self._mentioned(directory, tenant_id, who)
            if person is None:
                unresolved.append(who)
            elif all(p["id"] != person["id"] for p in found):
                found.append(person)
        context: dict[str, Any] = {}
        if found:
            context["mentions"] = found
        if unresolved:
            context["unresolvedMentions"] = unresolved
        return context

    async def _mentioned(self, directory: Directory, tenant_id: str, who: str) -> dict[str, str] | None:
        """{"id", "name"} of a person to mention, or None when the directory does not have them
        (believed for :data:`MENTION_CACHE_SECONDS` either way)."""
        cached = _MENTION_CACHE.get((tenant_id, who.lower()))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        person: dict[str, str] | None = None
        try:
            user = await self._user(directory, tenant_id, who)
            person = {"id": str(user["id"]), "name": str(user.get("displayName") or who)}
        except Unreachable:
            pass
        except GraphError as exc:
            failure = _unreachable(exc)
            if isinstance(failure, TransientError):
                raise failure from exc
            # refused for good (not found, not allowed): named as text
        if len(_MENTION_CACHE) >= MAX_MENTION_CACHE:
            _MENTION_CACHE.clear()  # bounded: a process that has mentioned many people starts over
        _MENTION_CACHE[(tenant_id, who.lower())] = (time.monotonic() + MENTION_CACHE_SECONDS, person)
        return person

    async def _user(self, directory: Directory, tenant_id: str, who: str) -> dict[str, Any]:
        user = await directory.get_user(tenant_id, who)
        if user is None and "@" in who:
            user = await directory.find_user_by_email(tenant_id, who)
        if user is None:
            raise Unreachable(f"{who} was not found in the organisation's directory")
        return user

    async def _person(self, tenant_id: str, recipient: Recipient, delivery: str) -> ConversationRecord:
        directory = await self._connected(tenant_id, delegated=delivery == "delegated")
        who = recipient.user or ""
        try:
            user = await self._user(directory, tenant_id, who)
            if delivery == "delegated":
                me = await directory.me(tenant_id)
                chat = await directory.create_chat(tenant_id, (me["id"], user["id"]))
                return delivery_conversation(tenant_id, DeliveryTarget(chat_id=chat["id"]), self.clock())
            if not self.teams_app_catalog_id:
                raise Unreachable(
                    "TEAMS_APP_CATALOG_ID is not set, so the app cannot be installed for a person to message them 1:1"
                )
            chat_id = await directory.install_app_for_user(tenant_id, user["id"], self.teams_app_catalog_id)
        except GraphError as exc:
            raise _unreachable(exc) from exc
        except ReconsentRequired as exc:
            raise Unreachable(f"the tenant's Microsoft 365 connection needs consent again ({exc})") from exc
        record = await self._bot_conversation(tenant_id, chat_id, "personal", user.get("displayName") or who)
        return ConversationRecord(
            **{
                **record.__dict__,
                "reference": {
                    **record.reference,
                    "user": {"id": user["id"], "aadObjectId": user["id"]},
                    "verifiedBy": "graph",
                },
            }
        )

    async def _group(self, tenant_id: str, recipient: Recipient, delivery: str) -> ConversationRecord:
        directory = await self._connected(tenant_id, delegated=delivery == "delegated")
        topic = (recipient.name or "Alerts")[:250]
        try:
            ids = [(await self._user(directory, tenant_id, who))["id"] for who in recipient.users]
            if delivery == "delegated":
                me = await directory.me(tenant_id)
                chat = await directory.create_chat(tenant_id, tuple(dict.fromkeys([me["id"], *ids])), topic)
                return delivery_conversation(tenant_id, DeliveryTarget(chat_id=chat["id"]), self.clock())
            if not self.teams_app_catalog_id:
                raise Unreachable("TEAMS_APP_CATALOG_ID is not set, so the app cannot be added to a group chat")
            chat = await directory.create_chat(tenant_id, tuple(dict.fromkeys(ids)), topic)
            await directory.install_app_in_chat(tenant_id, chat["id"], self.teams_app_catalog_id)
        except GraphError as exc:
            raise _unreachable(exc, "the group chat could not be set up: ") from exc
        except ReconsentRequired as exc:
            raise Unreachable(f"the tenant's Microsoft 365 connection needs consent again ({exc})") from exc
        record = await self._bot_conversation(tenant_id, chat["id"], "groupChat", topic)
        return ConversationRecord(**{**record.__dict__, "reference": {**record.reference, "verifiedBy": "graph"}})

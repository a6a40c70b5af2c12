"""Teams messages through Microsoft Graph as the connected user (the delegated connection),
and the messenger that chooses between it and the bot for each conversation.

Both implement :class:`shared.ports.TeamsMessenger`, so alert processing is the same for both
connection methods: the same deliveries table, the same claim-then-post, the same update in
place (Graph ``PATCH`` instead of Bot Connector ``PUT``). No SDK import here: the Graph helper
comes in as an object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from shared.domain.model import ConversationRecord
from shared.ports import DeliveryError, GraphError, Mention, ReconsentRequired, StateStore, TeamsMessenger
from shared.resilience import is_permanent, queued_send

if TYPE_CHECKING:
    from shared.adapters.graph import GraphDirectory

# Statuses worth another delivery later: throttling, timeouts, server errors, an expired token.


def _reconsent(tenant_id: str, reason: str) -> ReconsentRequired:
    return ReconsentRequired(f"the Microsoft 365 connection of tenant {tenant_id} needs consent again ({reason})")


def _delivery_error(exc: GraphError) -> DeliveryError:
    # Graph's Retry-After reaches the delivery job, which is rescheduled for then.
    return DeliveryError(
        str(exc),
        status=exc.status,
        permanent=is_permanent(exc.status),
        retry_after=exc.retry_after,
        maybe_sent=exc.code == "NoAnswer",
    )


class GraphMessenger:
    """Posts, updates and replies through Graph for conversations of delegated connectors.

    A connector that needs consent again raises :class:`ReconsentRequired` from ``post`` and
    ``update``: the delivery job sends the card to its fallback recipients, or records the
    alert as undeliverable with that reason, rather than retrying until Service Bus gives up.
    """

    def __init__(self, directory: Callable[[], GraphDirectory], store: StateStore) -> None:
        self._directory = directory
        self._store = store

    async def _check(self, conversation: ConversationRecord) -> None:
        connection = await self._store.get_connection(conversation.tenant_id)
        if connection is None or connection.method != "delegated":
            raise DeliveryError(
                f"tenant {conversation.tenant_id} has no delegated connection to post through", permanent=True
            )
        if connection.status == "needs_reconsent":
            raise _reconsent(conversation.tenant_id, connection.status_reason)
        if connection.status == "disconnected":
            raise DeliveryError(
                f"the Microsoft 365 connection of tenant {conversation.tenant_id} is disconnected", permanent=True
            )

    @staticmethod
    def _where(conversation: ConversationRecord) -> tuple[str, str] | str:
        """(team id, channel id) of a channel, or the chat id of a chat."""
        ref = conversation.reference or {}
        team, channel, chat = ref.get("teamId"), ref.get("channelId"), ref.get("chatId")
        if isinstance(team, str) and team and isinstance(channel, str) and channel:
            return team, channel
        if isinstance(chat, str) and chat:
            return chat
        raise DeliveryError(f"{conversation.label} names no channel or chat to reach through Graph", permanent=True)

    async def post(self, conversation: ConversationRecord, card: dict[str, Any], summary: str) -> str:
        await self._check(conversation)
        where = self._where(conversation)
        try:
            with queued_send():
                if isinstance(where, tuple):
                    return await self._directory().post_channel_message(conversation.tenant_id, *where, card, summary)
                return await self._directory().post_chat_message(conversation.tenant_id, where, card, summary)
        except ReconsentRequired as exc:
            raise _reconsent(conversation.tenant_id, str(exc)) from exc
        except GraphError as exc:
            raise _delivery_error(exc) from exc

    async def update(
        self, conversation: ConversationRecord, activity_id: str, card: dict[str, Any], summary: str
    ) -> None:
        await self._check(conversation)
        where = self._where(conversation)
        try:
            with queued_send():
                if isinstance(where, tuple):
                    await self._directory().update_channel_message(
                        conversation.tenant_id, *where, activity_id, card, summary
                    )
                else:
                    await self._directory().update_chat_message(
                        conversation.tenant_id, where, activity_id, card, summary
                    )
        except ReconsentRequired as exc:
            raise _reconsent(conversation.tenant_id, str(exc)) from exc
        except GraphError as exc:
            raise _delivery_error(exc) from exc

    async def reply(
        self, conversation: ConversationRecord, activity_id: str, text: str, mentions: Sequence[Mention] = ()
    ) -> str:
        # As the connected user through Graph, mentions are sent as the names alone (Graph's
        # chatMessage mentions are not built here): nobody is notified by them.
        text = text.replace("<at>", "").replace("</at>", "")
        where = self._where(conversation)
        try:
            await self._check(conversation)
            with queued_send():
                if isinstance(where, tuple):
                    return await self._directory().reply_channel_message(
                        conversation.tenant_id, *where, activity_id, text
                    )
                return await self._directory().post_chat_message(conversation.tenant_id, where, None, text=text)
        except ReconsentRequired as exc:
            # Replies (reminders) are not tied to one queue message: record, do not raise.
            raise DeliveryError(str(exc), permanent=True) from exc
        except GraphError as exc:
            raise _delivery_error(exc) from exc


class RoutingMessenger:
    """The bot for conversations the bot is in; Graph for a delegated connector's targets."""

    def __init__(self, bot: TeamsMessenger, graph: GraphMessenger) -> None:
        self._bot = bot
        self._graph = graph

    def _for(self, conversation: ConversationRecord) -> TeamsMessenger:
        return self._graph if conversation.through_graph else self._bot

    async def post(self, conversation: ConversationRecord, card: dict[str, Any], summary: str) -> str:
        return await self._for(conversation).post(conversation, card, summary)

    async def update(
        self, conversation: ConversationRecord, activity_id: str, card: dict[str, Any], summary: str
    ) -> None:
        await self._for(conversation).update(conversation, activity_id, card, summary)

    async def reply(
        self, conversation: ConversationRecord, activity_id: str, text: str, mentions: Sequence[Mention] = ()
    ) -> str:
        return await self._for(conversation).reply(conversation, activity_id, text, mentions)

"""Honest fakes: they keep state that tests assert on, like the real thing would."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from shared.domain.model import ConversationRecord
from shared.ports import DeliveryError


@dataclass
class SentMessage:
    activity_id: str
    conversation_id: str
    card: dict | None
    text: str | None = None
    reply_to: str | None = None
    versions: list[dict] = field(default_factory=list)


class RecordingMessenger:
    """A TeamsMessenger that records what each conversation would show.

    ``fail_next`` queues errors (DeliveryError) to raise on the next sends.
    """

    def __init__(self) -> None:
        self.messages: dict[str, SentMessage] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_next: list[DeliveryError] = []
        self._ids = itertools.count(1)

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    async def post(self, conversation: ConversationRecord, card: dict, summary: str) -> str:
        self.calls.append(("post", conversation.conversation_id))
        self._maybe_fail()
        activity_id = f"act-{next(self._ids)}"
        self.messages[activity_id] = SentMessage(activity_id, conversation.conversation_id, card, versions=[card])
        return activity_id

    async def update(self, conversation: ConversationRecord, activity_id: str, card: dict, summary: str) -> None:
        self.calls.append(("update", conversation.conversation_id))
        self._maybe_fail()
        message = self.messages[activity_id]
        message.card = card
        message.versions.append(card)

    async def reply(self, conversation: ConversationRecord, activity_id: str, text: str) -> str:
        self.calls.append(("reply", conversation.conversation_id))
        self._maybe_fail()
        reply_id = f"act-{next(self._ids)}"
        self.messages[reply_id] = SentMessage(reply_id, conversation.conversation_id, None, text=text, reply_to=activity_id)
        return reply_id

    def cards_in(self, conversation_id: str) -> list[SentMessage]:
        return [m for m in self.messages.values() if m.conversation_id == conversation_id and m.card is not None]

    def replies_to(self, activity_id: str) -> list[SentMessage]:
        return [m for m in self.messages.values() if m.reply_to == activity_id]


def conversation(tenant_id: str = "tenant-a", conversation_id: str = "19:general@thread.tacv2", kind: str = "channel") -> ConversationRecord:
    return ConversationRecord(
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        conversation_type=kind,
        service_url="https://smba.example.invalid/teams/",
        reference={"conversation": {"id": conversation_id, "conversationType": kind, "tenantId": tenant_id}, "channelId": "msteams"},
        name="General",
    )

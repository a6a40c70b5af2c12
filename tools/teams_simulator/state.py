"""What the simulator remembers: conversations, the activities the bot sent, and requests."""

from __future__ import annotations

import copy
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

THREAD_SEPARATOR = ";messageid="


def split_conversation_id(conversation_id: str) -> tuple[str, str | None]:
    """Split a Teams conversation id into (conversation, thread root message id).

    Teams addresses a channel thread as ``<channel id>;messageid=<root message id>``.
    """
    base, sep, root = conversation_id.partition(THREAD_SEPARATOR)
    return base, (root if sep else None)


@dataclass
class SentActivity:
    """One activity the bot posted, with every version it had."""

    id: str
    conversation_id: str
    thread_root: str | None
    reply_to_id: str | None
    versions: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    app_id: str | None = None

    @property
    def current(self) -> dict[str, Any]:
        """The activity as it stands now (the last version)."""
        return self.versions[-1]

    @property
    def type(self) -> str | None:
        return self.current.get("type")

    @property
    def text(self) -> str | None:
        return self.current.get("text")

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return self.current.get("attachments") or []

    @property
    def updates(self) -> int:
        """How many times the activity was updated in place."""
        return len(self.versions) - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversationId": self.conversation_id,
            "threadRoot": self.thread_root,
            "replyToId": self.reply_to_id,
            "type": self.type,
            "text": self.text,
            "attachments": self.attachments,
            "deleted": self.deleted,
            "appId": self.app_id,
            "versions": self.versions,
        }


@dataclass
class Conversation:
    """A conversation the simulator knows, with what the bot sent there in order.

    ``id`` never carries a ``;messageid=`` suffix: replies in a channel thread are stored in
    the channel's conversation with ``thread_root`` set.
    """

    id: str
    kind: str = "personal"
    tenant_id: str | None = None
    members: list[dict[str, Any]] = field(default_factory=list)
    activities: list[SentActivity] = field(default_factory=list)

    def activity(self, activity_id: str) -> SentActivity | None:
        """The activity with this id, or None."""
        return next((a for a in self.activities if a.id == activity_id), None)

    def thread(self, root_id: str) -> list[SentActivity]:
        """The activities of one channel thread: the root post (if the bot sent it) and replies."""
        return [a for a in self.activities if a.id == root_id or a.thread_root == root_id]

    @property
    def texts(self) -> list[str | None]:
        """The current text of each activity, in order (handy in assertions)."""
        return [a.text for a in self.activities]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "tenantId": self.tenant_id,
            "members": self.members,
            "activities": [a.to_dict() for a in self.activities],
        }


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the simulator answered."""

    method: str
    path: str
    status: int
    time: float
    app_id: str | None = None
    body: Any = None
    fault: bool = False


class SimulatorState:
    """Thread-safe store shared by the HTTP handlers and the test-facing API."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._conversations: dict[str, Conversation] = {}
        self._requests: list[RequestRecord] = []
        # Teams channel message ids are millisecond timestamps; keep them strictly increasing.
        self._last_id = 0
        self._counter = itertools.count(1)

    def reset(self) -> None:
        with self.lock:
            self._conversations.clear()
            self._requests.clear()

    def new_message_id(self) -> str:
        with self.lock:
            self._last_id = max(self._last_id + 1, int(time.time() * 1000))
            return str(self._last_id)

    def new_personal_conversation_id(self) -> str:
        return f"a:1sim{next(self._counter):08d}"

    def ensure_conversation(self, conversation_id: str, **fields: Any) -> Conversation:
        base, _ = split_conversation_id(conversation_id)
        with self.lock:
            conversation = self._conversations.get(base)
            if conversation is None:
                conversation = Conversation(id=base, **fields)
                self._conversations[base] = conversation
            else:
                for name, value in fields.items():
                    if value is not None and not getattr(conversation, name):
                        setattr(conversation, name, value)
            return conversation

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        base, _ = split_conversation_id(conversation_id)
        with self.lock:
            return self._conversations.get(base)

    def conversations(self) -> list[Conversation]:
        with self.lock:
            return list(self._conversations.values())

    def add_activity(
        self,
        conversation_id: str,
        activity: dict[str, Any],
        *,
        reply_to_id: str | None = None,
        thread_root: str | None = None,
        activity_id: str | None = None,
        app_id: str | None = None,
    ) -> SentActivity:
        with self.lock:
            conversation = self.ensure_conversation(conversation_id)
            activity_id = activity_id or self.new_message_id()
            stored = copy.deepcopy(activity)
            stored["id"] = activity_id
            if reply_to_id:
                stored["replyToId"] = reply_to_id
            sent = SentActivity(
                id=activity_id,
                conversation_id=conversation.id,
                thread_root=thread_root,
                reply_to_id=reply_to_id,
                versions=[stored],
                app_id=app_id,
            )
            conversation.activities.append(sent)
            return sent

    def find_activity(self, conversation_id: str, activity_id: str) -> SentActivity | None:
        with self.lock:
            conversation = self.get_conversation(conversation_id)
            return conversation.activity(activity_id) if conversation else None

    def log_request(self, record: RequestRecord) -> None:
        with self.lock:
            self._requests.append(record)

    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._requests)

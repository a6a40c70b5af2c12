"""In-memory queues with the Service Bus semantics the app relies on.

At-least-once delivery with peek-lock: a receive increments the delivery count (the
first delivery has count 1), success completes the message, failure abandons it so it
is delivered again, and once the delivery count reaches the queue's maximum delivery
count the message moves to the dead-letter sub-queue with reason
``MaxDeliveryCountExceeded`` (Service Bus docs, "Service Bus dead-letter queues").

Sessions (Service Bus docs, "Message sessions"): a message may carry a session id; a
session receiver locks one session and gets its messages in order, and no other receiver
gets that session's messages until the lock is released. Scheduled messages
(``scheduled_enqueue_time``) become visible at that time.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

#: Service Bus default MaxDeliveryCount for a queue.
DEFAULT_MAX_DELIVERY_COUNT = 10
#: Service Bus dead-letter reason when the maximum delivery count is exceeded.
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
#: Service Bus default duplicate detection history window.
DEFAULT_DUPLICATE_WINDOW = timedelta(minutes=10)
#: Settled messages kept per queue for inspection; the oldest settled ones are dropped first.
MAX_RETAINED_MESSAGES = 10_000
#: Attempt outcomes kept per queue for GET /_localhost/queues/{queue}.
RECENT_OUTCOMES = 50

ACTIVE = "active"
COMPLETED = "completed"
DEAD_LETTERED = "deadlettered"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MessageInfo:
    """A snapshot of one message: where it is and what happened to it."""

    queue: str
    message_id: str
    body: bytes
    content_type: str | None
    application_properties: dict[str, Any]
    sequence_number: int
    enqueued_time: datetime
    delivery_count: int
    state: str
    errors: tuple[str, ...]
    dead_letter_reason: str | None
    dead_letter_error_description: str | None
    session_id: str | None = None
    scheduled_enqueue_time: datetime | None = None
    log: tuple[dict[str, Any], ...] = ()  # what the app logged during the last delivery

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    @property
    def last_error(self) -> str | None:
        """The message of the exception raised by the last failed delivery, if any."""
        return self.errors[-1] if self.errors else None

    def to_json(self) -> dict[str, Any]:
        """The camelCase form served by the management API."""
        return {
            "queue": self.queue,
            "messageId": self.message_id,
            "status": self.state,
            "body": self.text,
            "contentType": self.content_type,
            "applicationProperties": self.application_properties,
            "sequenceNumber": self.sequence_number,
            "enqueuedTimeUtc": self.enqueued_time.isoformat(),
            "deliveryCount": self.delivery_count,
            "sessionId": self.session_id,
            "scheduledEnqueueTimeUtc": self.scheduled_enqueue_time.isoformat() if self.scheduled_enqueue_time else None,
            "lastError": self.last_error,
            "deadLetterReason": self.dead_letter_reason,
            "deadLetterErrorDescription": self.dead_letter_error_description,
            "log": list(self.log),
            "outcomes": [entry["outcome"] for entry in self.log if "outcome" in entry],
        }


@dataclass(eq=False)
class QueuedMessage:
    """A message inside a queue (mutable; hand out :class:`MessageInfo` snapshots)."""

    queue: str
    message_id: str
    body: bytes
    content_type: str | None
    application_properties: dict[str, Any]
    sequence_number: int
    enqueued_time: datetime = field(default_factory=_now)
    delivery_count: int = 0
    state: str = ACTIVE
    errors: list[str] = field(default_factory=list)
    dead_letter_reason: str | None = None
    dead_letter_error_description: str | None = None
    session_id: str | None = None
    scheduled_enqueue_time: datetime | None = None
    log: tuple[dict[str, Any], ...] = ()

    def __lt__(self, other: QueuedMessage) -> bool:  # ready lists stay in sequence order
        return self.sequence_number < other.sequence_number

    def snapshot(self) -> MessageInfo:
        """An immutable copy of the message's current state."""
        return MessageInfo(
            queue=self.queue,
            message_id=self.message_id,
            body=self.body,
            content_type=self.content_type,
            application_properties=dict(self.application_properties),
            sequence_number=self.sequence_number,
            enqueued_time=self.enqueued_time,
            delivery_count=self.delivery_count,
            state=self.state,
            errors=tuple(self.errors),
            dead_letter_reason=self.dead_letter_reason,
            dead_letter_error_description=self.dead_letter_error_description,
            session_id=self.session_id,
            scheduled_enqueue_time=self.scheduled_enqueue_time,
            log=self.log,
        )


class MemoryQueue:
    """One queue and its dead-letter sub-queue."""

    def __init__(
        self,
        name: str,
        *,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        duplicate_detection: bool = False,
        duplicate_window: timedelta = DEFAULT_DUPLICATE_WINDOW,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        self.name = name
        self.max_delivery_count = max_delivery_count
        self.duplicate_detection = duplicate_detection
        self.duplicate_window = duplicate_window
        self.has_trigger = False
        self._on_change = on_change
        self._sequence = itertools.count(1)
        self._ready: list[QueuedMessage] = []  # messages without a session, in sequence order
        self._sessions: dict[str, list[QueuedMessage]] = {}  # session id -> its ready messages, in order
        self._available = asyncio.Event()
        self._locked = 0
        self._locked_sessions: set[str] = set()
        self._scheduled: dict[asyncio.TimerHandle, QueuedMessage] = {}
        self._redeliveries: dict[asyncio.TimerHandle, QueuedMessage] = {}
        self._records: dict[int, QueuedMessage] = {}
        self._seen_ids: dict[str, datetime] = {}
        self._dead_letter: list[QueuedMessage] = []
        self._completed = 0
        self._failed_deliveries = 0
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_OUTCOMES)

    # Sending

    def send(
        self,
        body: bytes,
        *,
        message_id: str | None = None,
        content_type: str | None = None,
        application_properties: dict[str, Any] | None = None,
        session_id: str | None = None,
        scheduled_enqueue_time: datetime | None = None,
    ) -> tuple[str, bool]:
        """Enqueue a message; return its id and whether it was dropped as a duplicate."""
        message_id = message_id or uuid.uuid4().hex
        now = _now()
        if self.duplicate_detection:
            self._seen_ids = {seen: at for seen, at in self._seen_ids.items() if now - at < self.duplicate_window}
            if message_id in self._seen_ids:
                # Service Bus accepts the send and silently drops the duplicate.
                return message_id, True
            self._seen_ids[message_id] = now
        message = QueuedMessage(
            queue=self.name,
            message_id=message_id,
            body=bytes(body),
            content_type=content_type,
            application_properties=dict(application_properties or {}),
            sequence_number=next(self._sequence),
            enqueued_time=now,
            session_id=session_id,
            scheduled_enqueue_time=scheduled_enqueue_time,
        )
        self._records[message.sequence_number] = message
        self._prune()
        delay = (scheduled_enqueue_time - now).total_seconds() if scheduled_enqueue_time else 0.0
        self._ready_after(message, delay, self._scheduled)
        return message_id, False

    def _ready_after(
        self, message: QueuedMessage, delay: float, pending: dict[asyncio.TimerHandle, QueuedMessage]
    ) -> None:
        """Make the message ready now, or after ``delay`` seconds (kept in ``pending`` meanwhile)."""
        if delay <= 0:
            self._make_ready(message)
            return
        handle: asyncio.TimerHandle | None = None

        def ready() -> None:
            pending.pop(handle, None)  # type: ignore[arg-type]
            self._make_ready(message)

        handle = asyncio.get_running_loop().call_later(delay, ready)
        pending[handle] = message
        self._on_change()

    def _make_ready(self, message: QueuedMessage) -> None:
        if message.session_id is None:
            bisect.insort(self._ready, message)
        else:
            bisect.insort(self._sessions.setdefault(message.session_id, []), message)
        self._available.set()
        self._on_change()

    def _prune(self) -> None:
        excess = len(self._records) - MAX_RETAINED_MESSAGES
        if excess <= 0:
            return
        for sequence in [s for s, m in self._records.items() if m.state == COMPLETED][:excess]:
            del self._records[sequence]

    # Receiving and settling (peek-lock)

    async def wait_for_message(self) -> None:
        """Return when at least one message is ready to be received."""
        while not self._ready:
            self._available.clear()
            await self._available.wait()

    def receive(self) -> QueuedMessage | None:
        """Lock the next ready message and count the delivery."""
        if not self._ready:
            return None
        message = self._ready.pop(0)
        message.delivery_count += 1
        self._locked += 1
        return message

    def _open_sessions(self) -> list[str]:
        return [sid for sid, ready in self._sessions.items() if ready and sid not in self._locked_sessions]

    async def wait_for_session(self) -> None:
        """Return when a message of a session nobody holds is ready."""
        while not self._open_sessions():
            self._available.clear()
            await self._available.wait()

    def accept_session(self) -> str | None:
        """Lock the session whose oldest ready message is the oldest among sessions no receiver
        holds (Service Bus: AcceptNextSession), or None when there is none."""
        open_sessions = self._open_sessions()
        if not open_sessions:
            return None
        session = min(open_sessions, key=lambda sid: self._sessions[sid][0].sequence_number)
        self._locked_sessions.add(session)
        self._on_change()
        return session

    def receive_from_session(self, session: str, max_count: int) -> list[QueuedMessage]:
        """Take up to ``max_count`` of a locked session's ready messages, in order (maybe none)."""
        if session not in self._locked_sessions:
            raise ValueError(f"session {session!r} is not locked by a receiver")
        ready = self._sessions.get(session, [])
        batch, rest = ready[:max_count], ready[max_count:]
        if rest:
            self._sessions[session] = rest
        else:
            self._sessions.pop(session, None)
        for message in batch:
            message.delivery_count += 1
            self._locked += 1
        return batch

    async def wait_in_session(self, session: str) -> None:
        """Return when the session has a ready message."""
        while not self._sessions.get(session):
            self._available.clear()
            await self._available.wait()

    def receive_session(self, max_count: int) -> tuple[str, list[QueuedMessage]] | None:
        """Accept the next session and take up to ``max_count`` of its ready messages."""
        session = self.accept_session()
        if session is None:
            return None
        return session, self.receive_from_session(session, max_count)

    def release_session(self, session: str) -> None:
        """Give the session's lock back: its next messages may go to any receiver."""
        self._locked_sessions.discard(session)
        self._available.set()
        self._on_change()

    def complete(self, message: QueuedMessage, duration_ms: float = 0.0, log: tuple[dict[str, Any], ...] = ()) -> None:
        """Settle a delivery that succeeded."""
        self._locked -= 1
        message.log = log
        message.state = COMPLETED
        self._completed += 1
        self._record(message, COMPLETED, None, duration_ms)
        self._on_change()

    def abandon(
        self,
        message: QueuedMessage,
        error: str,
        *,
        delay: float = 0.0,
        duration_ms: float = 0.0,
        log: tuple[dict[str, Any], ...] = (),
    ) -> bool:
        """Settle a failed delivery: redeliver after ``delay`` seconds or dead-letter.

        Returns True when the message was dead-lettered.
        """
        self._locked -= 1
        message.log = log
        self._failed_deliveries += 1
        message.errors.append(error)
        if message.delivery_count >= self.max_delivery_count:
            self._move_to_dead_letter(message, MAX_DELIVERY_COUNT_EXCEEDED, error)
            self._record(message, DEAD_LETTERED, error, duration_ms)
            self._on_change()
            return True
        self._record(message, "failed", error, duration_ms)
        self._ready_after(message, delay, self._redeliveries)
        self._on_change()
        return False

    def _move_to_dead_letter(self, message: QueuedMessage, reason: str, description: str) -> None:
        message.state = DEAD_LETTERED
        message.dead_letter_reason = reason
        message.dead_letter_error_description = description
        self._dead_letter.append(message)

    def _record(self, message: QueuedMessage, outcome: str, error: str | None, duration_ms: float) -> None:
        self.recent.append(
            {
                "messageId": message.message_id,
                "outcome": outcome,
                "deliveryCount": message.delivery_count,
                "error": error,
                "durationMs": round(duration_ms, 1),
                "time": _now().isoformat(),
            }
        )

    def close(self) -> None:
        """Cancel pending redeliveries; their messages go back to the ready list."""
        for pending in (self._redeliveries, self._scheduled):
            for handle, message in list(pending.items()):
                handle.cancel()
                if message.session_id is None:
                    bisect.insort(self._ready, message)
                else:
                    bisect.insort(self._sessions.setdefault(message.session_id, []), message)
            pending.clear()

    # Inspection

    @property
    def busy(self) -> bool:
        """True while a message is ready, locked or waiting to be redelivered (a session held by
        a receiver waiting for more messages is not work)."""
        return bool(self._ready or self._sessions or self._locked or self._redeliveries or self._scheduled)

    @property
    def locked_sessions(self) -> frozenset[str]:
        """The sessions a receiver holds now."""
        return frozenset(self._locked_sessions)

    def messages(self) -> list[MessageInfo]:
        """Every retained message, oldest first."""
        return [message.snapshot() for message in self._records.values()]

    def dead_letters(self) -> list[MessageInfo]:
        """The dead-letter sub-queue, oldest first."""
        return [message.snapshot() for message in self._dead_letter]

    def find(self, message_id: str) -> MessageInfo | None:
        """The most recent message with this id."""
        for message in reversed(self._records.values()):
            if message.message_id == message_id:
                return message.snapshot()
        return None

    def counts(self) -> dict[str, int]:
        """Message counts in the shape of Service Bus runtime properties."""
        active = sum(1 for m in self._records.values() if m.state == ACTIVE)
        return {
            "activeMessageCount": active,
            "readyMessageCount": len(self._ready) + sum(len(ready) for ready in self._sessions.values()),
            "lockedMessageCount": self._locked,
            "scheduledRedeliveryCount": len(self._redeliveries),
            "scheduledMessageCount": len(self._scheduled),
            "lockedSessionCount": len(self._locked_sessions),
            "deadLetterMessageCount": len(self._dead_letter),
            "completedMessageCount": self._completed,
            "failedDeliveryCount": self._failed_deliveries,
        }

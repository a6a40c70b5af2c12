"""The small interfaces the service layer depends on. Adapters implement them; the service
layer never imports an SDK."""

from __future__ import annotations

from typing import Protocol

from shared.domain.model import AlertState, ConversationRecord, Delivery, RejectedEvent


class ConcurrencyConflict(Exception):
    """A conditional write lost a race (ETag mismatch, or the row already exists)."""


class TransientError(Exception):
    """A dependency failed in a way that may pass: let Service Bus redeliver the message."""


class StateStore(Protocol):
    async def save_conversation(self, record: ConversationRecord) -> None: ...
    async def remove_conversation(self, tenant_id: str, conversation_id: str) -> None: ...
    async def get_conversation(self, tenant_id: str, conversation_id: str) -> ConversationRecord | None: ...
    async def list_conversations(self, tenant_id: str | None = None) -> list[ConversationRecord]: ...

    async def get_alert(self, tenant_id: str, key: str) -> AlertState | None: ...
    async def save_alert(self, state: AlertState) -> AlertState:
        """Create when ``state.etag`` is None, else replace only if the ETag still matches.
        Returns the state with its new ETag; raises :class:`ConcurrencyConflict`."""
        ...
    async def list_alerts(self, tenant_id: str | None = None, statuses: tuple[str, ...] | None = None) -> list[AlertState]: ...

    async def get_delivery(self, tenant_id: str, alert_key: str, conversation_id: str) -> Delivery | None: ...
    async def list_deliveries(self, tenant_id: str, alert_key: str) -> list[Delivery]: ...
    async def save_delivery(self, delivery: Delivery) -> Delivery:
        """Same ETag rules as :meth:`save_alert`."""
        ...

    async def was_processed(self, dedupe_key: str) -> bool: ...
    async def mark_processed(self, dedupe_key: str, event_id: str) -> None: ...

    async def record_rejected(self, rejected: RejectedEvent) -> None: ...
    async def list_rejected(self, limit: int = 100) -> list[RejectedEvent]: ...

    async def close(self) -> None: ...


class DeliveryError(Exception):
    """Teams refused or failed a send. ``permanent`` failures are recorded, not retried."""

    def __init__(self, message: str, *, status: int | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent


class TeamsMessenger(Protocol):
    async def post(self, conversation: ConversationRecord, card: dict, summary: str) -> str:
        """Post a new card; returns the activity id."""
        ...
    async def update(self, conversation: ConversationRecord, activity_id: str, card: dict, summary: str) -> None: ...
    async def reply(self, conversation: ConversationRecord, activity_id: str, text: str) -> str:
        """Reply in the card's thread (channels) or after it (chats); returns the activity id."""
        ...

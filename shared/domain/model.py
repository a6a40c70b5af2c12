"""Records the connector keeps: conversations, alerts, deliveries. Pure Python."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

CONVERSATION_TYPES = ("personal", "groupChat", "channel")


@dataclass(frozen=True)
class ConversationRecord:
    """Where the bot can post: a team channel, a group chat or a personal chat in one tenant.

    ``reference`` is the Bot Framework conversation reference as JSON (kept opaque here so the
    domain never imports botbuilder).
    """

    tenant_id: str
    conversation_id: str
    conversation_type: str
    service_url: str
    reference: dict
    name: str = ""
    team_id: str | None = None
    channel_id: str | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class AlertState:
    """The connector's current view of one alert."""

    tenant_id: str
    key: str
    alert_id: str
    source: str
    event_source: str
    title: str
    status: str
    severity: str
    kind: str = "alert"
    description: str = ""
    url: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    responders: tuple[str, ...] = ()
    version: int = 0
    created: datetime | None = None
    updated: datetime | None = None
    status_changed: datetime | None = None
    etag: str | None = None

    def with_etag(self, etag: str | None) -> "AlertState":
        return replace(self, etag=etag)


@dataclass(frozen=True)
class Delivery:
    """One alert's card in one conversation.

    ``activity_id`` is None while a post is in flight (a claim that stops two workers from
    posting the same card twice). ``rendered_version`` is the alert version the card shows.
    """

    tenant_id: str
    alert_key: str
    conversation_id: str
    activity_id: str | None = None
    rendered_version: int = -1
    status: str = "posting"  # posting | posted | failed
    failure: str | None = None
    claimed_at: datetime | None = None
    last_reminder: datetime | None = None
    etag: str | None = None


@dataclass(frozen=True)
class RejectedEvent:
    """An inbound message that could not be processed as sent (our dead letter record)."""

    message_id: str
    reason: str
    field: str
    event_id: str | None
    body: str
    received: datetime

"""Records the connector keeps: conversations, alerts, deliveries. Pure Python."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

CONVERSATION_TYPES = ("personal", "groupChat", "channel")


# ``reference["delivery"]`` of a conversation a delegated connection posts to through Graph.
GRAPH_DELIVERY = "graph"


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
    reference: dict[str, Any]
    name: str = ""
    team_id: str | None = None
    channel_id: str | None = None
    updated: datetime | None = None
    # Set on an alert channel: it receives only that alert's card, not the tenant's others.
    alert_key: str | None = None
    # "teams": the bot learned of it from Teams (installed there); "routed": made by the
    # connector to reach a workflow recipient. Only "teams" conversations get broadcast alerts.
    origin: str = "teams"
    # A channel's team as a Microsoft 365 group (Graph's team id): what membership checks need.
    team_group_id: str | None = None

    @property
    def through_graph(self) -> bool:
        """Cards reach it through Microsoft Graph as a connected user (a delegated connection),
        not through the bot."""
        return (self.reference or {}).get("delivery") == GRAPH_DELIVERY

    @property
    def label(self) -> str:
        """How logs and the publisher name it: "the personal chat of Alex Wilber", "the group
        chat Ops", "channel General" (or what is known of it)."""
        kind, name = self.conversation_type, self.name
        if kind == "personal":
            return f"the personal chat of {name}" if name else "a personal chat"
        if kind == "groupChat":
            return f"the group chat {name}" if name else "a group chat"
        return f"channel {name}" if name else "a channel"


@dataclass(frozen=True)
class StatusStep:
    """One change of an alert's status, shown on every copy of its card: what happened, who did
    it in Teams (``by``, a display name) or which source reported it (``via``), and when."""

    status: str  # "acknowledged" | "resolved" | "reopened" | "open"
    at: datetime
    by: str = ""
    via: str = ""

    def to_json(self) -> dict[str, str]:
        return {"status": self.status, "at": self.at.isoformat(), "by": self.by, "via": self.via}

    @staticmethod
    def from_json(data: dict[str, str]) -> StatusStep:
        return StatusStep(data["status"], datetime.fromisoformat(data["at"]), data.get("by", ""), data.get("via", ""))


MAX_STATUS_STEPS = 5  # the card shows the last few; older ones are dropped


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
    version: int = 0  # the source's: orders source events (only a higher one applies)
    revision: int = 0  # ours: +1 on every change, from the source or from Teams; cards track it
    created: datetime | None = None
    updated: datetime | None = None
    status_changed: datetime | None = None
    # When it last began to fire: its first firing, or when it fired again after it was resolved
    # (None in rows older than the field: ``created`` then).
    fired: datetime | None = None
    # The last MAX_STATUS_STEPS status changes, oldest first.
    steps: tuple[StatusStep, ...] = ()
    # The alert's channel and meeting once created: {"status": "creating"|"created", "id",
    # "name", "webUrl"} and {"status", "id", "joinUrl"}. "creating" is a claim (ETag-guarded).
    channel: dict[str, Any] | None = None
    meeting: dict[str, Any] | None = None
    # A silence made from Teams in the alert's source: {"id", "until", "by"} (until: ISO time).
    silence: dict[str, Any] | None = None
    # Its source (Alertmanager or Grafana, through the ingest route) has an API set by the
    # tenant's admin, so a silence can be made there: the card offers Silence.
    silenceable: bool = False
    # Notes people added in Teams, oldest first ({"text", "by", "at"}; the last MAX_NOTES).
    notes: tuple[dict[str, str], ...] = ()
    # Its reminders held back until a time: {"until", "by"} (until: ISO time).
    snooze: dict[str, Any] | None = None
    # Who is on it: {"id" (Microsoft Entra object id), "name", "by", "at"}.
    assignee: dict[str, Any] | None = None
    # The dedupe keys of the event that created the alert and of the event whose version is
    # applied: a redelivered event is recognised and routed exactly as the first time.
    first_event: str = ""
    last_event: str = ""
    # The ingest route's source (its key) that created the alert, if it came that way: only
    # that source's key may change it (shared.services.processing).
    ingest_source: str = ""
    etag: str | None = None
    # The status as last read from or written to the store (None: never stored): the store
    # keeps its open-alert index and removal schedule by the transitions it sees.
    stored_status: str | None = field(default=None, compare=False, repr=False)

    def with_etag(self, etag: str | None) -> AlertState:
        return replace(self, etag=etag)

    def with_step(self, step: StatusStep) -> AlertState:
        return replace(self, steps=(*self.steps, step)[-MAX_STATUS_STEPS:])

    @property
    def reopened(self) -> bool:
        """Open again after it was resolved (the last change says so)."""
        return self.status == "open" and bool(self.steps) and self.steps[-1].status == "reopened"


@dataclass(frozen=True)
class Delivery:
    """One alert's card in one conversation.

    ``activity_id`` is None while a post is in flight (a claim that stops two workers from
    posting the same card twice). ``rendered_version`` is the alert revision the card shows.
    """

    tenant_id: str
    alert_key: str
    conversation_id: str
    activity_id: str | None = None
    rendered_version: int = -1
    status: str = "posting"  # posting | posted | failed | folded (counted in the storm summary, no card)
    failure: str | None = None
    claimed_at: datetime | None = None
    last_reminder: datetime | None = None
    # Who this card is for and why: the recipient as the workflow named it, the reason (the
    # workflows, a manual send, a fallback) and what the card says about it (comments, the
    # workflow names, a fallback note), so every later render shows the same.
    recipient: str = ""
    reason: str = ""
    context: dict[str, Any] | None = None
    # The conversation (its reference, as JSON) the card is in, so updating every card of an
    # alert needs one query, not a read per conversation.
    conversation: dict[str, Any] | None = None
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
    # The tenant the event named (its tenantid: the ingest route sets it from the source's key),
    # when it could be read: that tenant's admins see the rejection in the console.
    tenant_id: str | None = None


@dataclass(frozen=True)
class ActionRecord:
    """Something a person did in Teams, kept until it is published to the source (outbox)."""

    tenant_id: str
    action_id: str
    event: dict[str, Any]  # the outbound CloudEvent
    status: str = "pending"  # pending | published
    attempts: int = 0
    last_error: str | None = None
    created: datetime | None = None
    etag: str | None = None


# Links whose identity the connector checked (or an admin set): only these are sent to the
# source and count for REQUIRE_LINKED_ACCOUNT.
VERIFIED_LINK_METHODS = ("auto", "directory", "admin")


@dataclass(frozen=True)
class AccountLink:
    """A Teams user's identity on the alerting platform."""

    tenant_id: str
    aad_object_id: str
    platform_identity: str
    # How it was made: "auto" (the person's own mail or UPN, read from Microsoft Graph),
    # "directory" (asked for with `link`, and it is the person's own mail or UPN), "admin"
    # (set by a connector admin), or "requested" (asked for, not verified: not used).
    method: str
    upn: str | None = None
    updated: datetime | None = None

    @property
    def verified(self) -> bool:
        return self.method in VERIFIED_LINK_METHODS


@dataclass(frozen=True)
class Undeliverable:
    """An alert that reached neither a recipient nor its fallback: both reasons, for operators."""

    tenant_id: str
    alert_key: str
    alert_id: str
    recipient: str
    reason: str
    fallback_reason: str
    recorded: datetime

"""Delivery jobs: the second stage of delivery. Pure Python.

The alert-events trigger decides (state, routing) and enqueues one job per (alert,
conversation) on the internal deliveries queue. The job's **session id is the conversation**,
so Service Bus hands all jobs of one conversation to one consumer at a time, in order, across
every instance: per-conversation order and pacing hold however far the app scales out.

A job carries what it needs so the consumer reads nothing it can be given: the conversation
reference, a snapshot of the alert at the revision that asked for the job, and what the card
says about why it is there. The consumer never lets an older revision replace a newer one (the
rendered revision is recorded with an ETag-conditional write).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.domain.model import AlertState, ConversationRecord, StatusStep

CARD = "card"  # bring the alert's card in this conversation to the job's revision
COMMENT = "comment"  # reply in the thread of the alert's card (a manual send's comment)
SUMMARY = "summary"  # bring the conversation's storm summary card up to date
REMINDER = "reminder"  # remind in the thread of an alert's card that it is still open (the timer)
DIGEST = "digest"  # post a periodic workflow's digest card (the timer), once per period
KINDS = (CARD, COMMENT, SUMMARY, REMINDER, DIGEST)


def session_of(tenant_id: str, conversation_id: str) -> str:
    """The Service Bus session id of a conversation (at most 128 characters, any id length)."""
    return hashlib.sha256(f"{tenant_id}\n{conversation_id}".encode()).hexdigest()[:40]


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def alert_to_json(state: AlertState) -> dict[str, Any]:
    return {
        "tenantId": state.tenant_id,
        "key": state.key,
        "alertId": state.alert_id,
        "source": state.source,
        "eventSource": state.event_source,
        "title": state.title,
        "status": state.status,
        "severity": state.severity,
        "kind": state.kind,
        "description": state.description,
        "url": state.url,
        "labels": state.labels,
        "responders": list(state.responders),
        "version": state.version,
        "revision": state.revision,
        "created": state.created.isoformat() if state.created else None,
        "fired": state.fired.isoformat() if state.fired else None,
        "updated": state.updated.isoformat() if state.updated else None,
        "statusChanged": state.status_changed.isoformat() if state.status_changed else None,
        "steps": [step.to_json() for step in state.steps],
        "channel": state.channel,
        "meeting": state.meeting,
        "silence": state.silence,
        "silenceable": state.silenceable,
        "notes": list(state.notes),
        "snooze": state.snooze,
        "assignee": state.assignee,
    }


def alert_from_json(data: dict[str, Any]) -> AlertState:
    return AlertState(
        tenant_id=data["tenantId"],
        key=data["key"],
        alert_id=data["alertId"],
        source=data.get("source", ""),
        event_source=data.get("eventSource", ""),
        title=data["title"],
        status=data["status"],
        severity=data["severity"],
        kind=data.get("kind", "alert"),
        description=data.get("description", ""),
        url=data.get("url"),
        labels=dict(data.get("labels") or {}),
        responders=tuple(data.get("responders") or ()),
        version=int(data.get("version", 0)),
        revision=int(data.get("revision", 0)),
        created=_dt(data.get("created")),
        fired=_dt(data.get("fired")),
        updated=_dt(data.get("updated")),
        status_changed=_dt(data.get("statusChanged")),
        steps=tuple(StatusStep.from_json(step) for step in data.get("steps") or ()),
        channel=data.get("channel"),
        meeting=data.get("meeting"),
        silence=data.get("silence"),
        silenceable=bool(data.get("silenceable")),
        notes=tuple(data.get("notes") or ()),
        snooze=data.get("snooze"),
        assignee=data.get("assignee"),
    )


def conversation_to_json(record: ConversationRecord) -> dict[str, Any]:
    return {
        "tenantId": record.tenant_id,
        "id": record.conversation_id,
        "type": record.conversation_type,
        "serviceUrl": record.service_url,
        "reference": record.reference,
        "name": record.name,
        "teamId": record.team_id,
        "channelId": record.channel_id,
        "alertKey": record.alert_key,
        "origin": record.origin,
    }


def conversation_from_json(data: dict[str, Any]) -> ConversationRecord:
    return ConversationRecord(
        tenant_id=data["tenantId"],
        conversation_id=data["id"],
        conversation_type=data["type"],
        service_url=data.get("serviceUrl", ""),
        reference=data.get("reference") or {},
        name=data.get("name", ""),
        team_id=data.get("teamId"),
        channel_id=data.get("channelId"),
        alert_key=data.get("alertKey"),
        origin=data.get("origin", "teams"),
    )


@dataclass(frozen=True)
class DeliveryJob:
    conversation: ConversationRecord
    kind: str = CARD
    alert: AlertState | None = None  # the snapshot to render (card, comment)
    recipient: str = ""
    reason: str = ""
    context: dict[str, Any] | None = None
    # Recipients (JSON) to try when this conversation refuses the card for good.
    fallback: tuple[dict[str, Any], ...] = ()
    fallback_for: str = ""  # the recipient the fallback stands in for (shown in the note)
    new: bool = False  # no card of this alert existed here when the job was made: no need to look
    text: str = ""  # the comment of a COMMENT job
    request: str = ""  # what asked for the job (event or command id): keeps message ids apart
    attempt: int = 0  # times the job was rescheduled (pacing, the tenant's budget, failures)
    failures: int = 0  # of those, the times Teams failed it for now (5xx, 429, a timeout)
    not_before: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str:
        return self.conversation.tenant_id

    @property
    def conversation_id(self) -> str:
        return self.conversation.conversation_id

    @property
    def alert_key(self) -> str:
        return self.alert.key if self.alert else str(self.extra.get("alertKey", ""))

    @property
    def session_id(self) -> str:
        return session_of(self.tenant_id, self.conversation_id)

    @property
    def message_id(self) -> str:
        """Stable for the same job, so Service Bus duplicate detection drops a resend (an
        event redelivered after its jobs were sent)."""
        revision = self.alert.revision if self.alert else 0
        what = json.dumps([self.recipient, self.context, self.text], sort_keys=True, separators=(",", ":"))
        raw = (
            f"{self.tenant_id}\n{self.conversation_id}\n{self.kind}\n{self.alert_key}\n"
            f"{revision}\n{self.request}\n{self.attempt}\n{what}"
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def again(self, at: datetime, *, failed: bool = False) -> DeliveryJob:
        """The same job rescheduled (a new message: the attempt is part of its id); ``failed``:
        because Teams failed it for now, not because its turn is later."""
        return replace(self, attempt=self.attempt + 1, failures=self.failures + int(failed), not_before=at)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": 1, "kind": self.kind, "conversation": conversation_to_json(self.conversation)}
        if self.alert is not None:
            out["alert"] = alert_to_json(self.alert)
        for name, value in (
            ("recipient", self.recipient),
            ("reason", self.reason),
            ("context", self.context),
            ("fallbackFor", self.fallback_for),
            ("text", self.text),
            ("request", self.request),
            ("extra", self.extra),
        ):
            if value:
                out[name] = value
        if self.fallback:
            out["fallback"] = list(self.fallback)
        if self.new:
            out["new"] = True
        if self.attempt:
            out["attempt"] = self.attempt
        if self.failures:
            out["failures"] = self.failures
        return out

    def body(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


# A bundle's body stays under this (Service Bus Standard takes messages up to 256 KB).
MAX_BUNDLE_BYTES = 192 * 1024
BUNDLE = "bundle"


@dataclass(frozen=True)
class JobBundle:
    """Several jobs of one conversation in one message: what one batch of alert events asked of
    it. A storm of alerts into one channel is then a few messages, each decided on at once (its
    folds recorded together), not one message per alert run one after another."""

    jobs: tuple[DeliveryJob, ...]
    kind: str = BUNDLE
    not_before: datetime | None = None

    @property
    def session_id(self) -> str:
        return self.jobs[0].session_id

    @property
    def message_id(self) -> str:
        """Stable for the same jobs: a resend of the same bundle is dropped as a duplicate."""
        return hashlib.sha256("\n".join(j.message_id for j in self.jobs).encode()).hexdigest()[:32]

    def body(self) -> str:
        return json.dumps({"v": 1, "bundle": [j.to_json() for j in self.jobs]}, separators=(",", ":"))


def bundle(jobs: list[DeliveryJob]) -> list[DeliveryJob | JobBundle]:
    """What to send for ``jobs``: each conversation's jobs as bundles (in order, each under
    :data:`MAX_BUNDLE_BYTES`), a lone job as itself. Jobs scheduled for later go together when
    they are due within the same second, scheduled at the end of it (a storm's put-off cards are
    then a few messages, not one each)."""
    out: list[DeliveryJob | JobBundle] = []
    groups: dict[tuple[str, datetime | None], list[DeliveryJob]] = {}  # (session, when due) -> jobs
    for job in jobs:
        due = None
        if job.not_before is not None:
            whole = job.not_before.replace(microsecond=0)
            due = whole if whole == job.not_before else whole + timedelta(seconds=1)
        groups.setdefault((job.session_id, due), []).append(job)
    for (_, due), group in groups.items():
        chunk: list[DeliveryJob] = []
        size = 0
        for job in group:
            job_size = len(job.body().encode()) + 1
            if chunk and size + job_size > MAX_BUNDLE_BYTES:
                out.append(chunk[0] if len(chunk) == 1 else JobBundle(tuple(chunk), not_before=due))
                chunk, size = [], 0
            chunk.append(job)
            size += job_size
        if chunk:
            out.append(chunk[0] if len(chunk) == 1 else JobBundle(tuple(chunk), not_before=due))
    return out


def jobs_from_message(body: bytes | str, delivery_count: int) -> list[DeliveryJob]:
    """The jobs in a deliveries-queue message: one job, or a bundle's (see :func:`job_from_message`)."""
    data = json.loads(body)
    if isinstance(data, dict) and "bundle" in data:
        jobs = [job_from_json(item) for item in data["bundle"]]
        return [replace(j, new=False) if delivery_count > 1 and j.new else j for j in jobs]
    return [job_from_message(body, delivery_count)]


def job_from_message(body: bytes | str, delivery_count: int) -> DeliveryJob:
    """The job in a deliveries-queue message. A message delivered before (its batch failed
    part-way) is no longer "new": what the earlier attempt posted or counted is looked up, so
    an alert never ends both as its own card and in the storm summary."""
    import json

    job = job_from_json(json.loads(body))
    return replace(job, new=False) if delivery_count > 1 and job.new else job


def job_from_json(data: dict[str, Any]) -> DeliveryJob:
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown delivery job kind {kind!r}")
    return DeliveryJob(
        conversation=conversation_from_json(data["conversation"]),
        kind=kind,
        alert=alert_from_json(data["alert"]) if data.get("alert") else None,
        recipient=data.get("recipient", ""),
        reason=data.get("reason", ""),
        context=data.get("context"),
        fallback=tuple(data.get("fallback") or ()),
        fallback_for=data.get("fallbackFor", ""),
        new=bool(data.get("new")),
        text=data.get("text", ""),
        request=data.get("request", ""),
        attempt=int(data.get("attempt", 0)),
        failures=int(data.get("failures", 0)),
        extra=dict(data.get("extra") or {}),
    )

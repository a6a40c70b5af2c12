"""Conversion between the domain records and flat table entities (shared by both stores,
so the in-memory fake stores exactly what Table Storage would)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeAlias

from shared.domain.events import stored_json
from shared.domain.model import (
    AccountLink,
    ActionRecord,
    AlertState,
    ConversationRecord,
    Delivery,
    RejectedEvent,
    StatusStep,
    Undeliverable,
)
from shared.domain.workflows import InvalidWorkflow, Workflow, parse_workflow

# Table Storage keys may not contain / \ # ? or control characters (Table service data
# model docs); percent-encode those and '%' itself so every id round-trips.
_KEY_UNSAFE = re.compile(r"[/\\#?%\x00-\x1f\x7f-\x9f]")

# A table entity as both backends read and write it: property name -> value (str, int, bool or
# datetime: what Table Storage keeps; AzureTable turns the SDK's entities into plain dicts).
Entity: TypeAlias = dict[str, Any]

# A string property holds at most 64 KiB (32K UTF-16 code units): Table service data model.
MAX_STRING_PROPERTY_CHARS = 32_000


def encode_key(value: str) -> str:
    return _KEY_UNSAFE.sub(lambda m: f"%{ord(m.group(0)):02X}", value)


# A tenant's deliveries (each alert's card in each conversation) and its conversations' send
# windows in one partition (docs/SCALE.md, *Partitioning*): a card's claim and its record are
# each written in one transaction with the window of its conversation; an alert's cards are one
# range of rows.
CARD_ROW = "card|"  # + alert key + "|" + conversation: an alert's card (or claim) in a conversation
WINDOW_ROW = "window|"  # + conversation: its send window and storm summary (shared.domain.pacing)


def delivery_partition(tenant_id: str) -> str:
    return tenant_id


def delivery_row(alert_key: str, conversation_id: str) -> str:
    return f"{CARD_ROW}{alert_key}|{encode_key(conversation_id)}"


def delivery_rows(alert_key: str) -> tuple[str, str]:
    """The rows of an alert's cards (alert keys hold no "|")."""
    return rows_starting(f"{CARD_ROW}{alert_key}|")


def window_row(conversation_id: str) -> str:
    return WINDOW_ROW + encode_key(conversation_id)


def window_to_entity(tenant_id: str, conversation_id: str, window: str, summary: dict[str, Any] | None) -> Entity:
    return {
        "PartitionKey": delivery_partition(tenant_id),
        "RowKey": window_row(conversation_id),
        "Window": window,
        "Summary": json.dumps(summary, separators=(",", ":")) if summary else "",
    }


# A tenant's alerts in ALERT_PARTITIONS partitions, by a hash of the alert key (docs/SCALE.md,
# *Partitioning*): each alert's row beside its open-alert index row, so that the two are written
# in one entity group transaction (one request); the timer reads a tenant's open alerts with one
# range of rows in each. Eight partitions give one tenant's storm 8 x 2,000 entities a second
# (Table Storage's target for one partition).
ALERT_PARTITIONS = 8
ALERT_ROW = "alert|"  # + alert key: the alert
OPEN_ROW = "open|"  # + alert key: its open-alert index row, while it is open and a while after


def alert_partition(tenant_id: str, alert_key: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(alert_key.encode()).digest()[:4], "big") % ALERT_PARTITIONS
    return f"{tenant_id}|{bucket}"


def alert_partitions(tenant_id: str) -> list[str]:
    """Every partition that holds alerts of the tenant."""
    return [f"{tenant_id}|{bucket}" for bucket in range(ALERT_PARTITIONS)]


def rows_starting(prefix: str) -> tuple[str, str]:
    """The RowKey range [from, to) of the rows whose key starts with ``prefix``."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _dt(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def conversation_to_entity(record: ConversationRecord) -> Entity:
    return {
        "PartitionKey": record.tenant_id,
        "RowKey": encode_key(record.conversation_id),
        "ConversationId": record.conversation_id,
        "ConversationType": record.conversation_type,
        "ServiceUrl": record.service_url,
        "Reference": json.dumps(record.reference, separators=(",", ":")),
        "Name": record.name,
        "TeamId": record.team_id or "",
        "ChannelId": record.channel_id or "",
        "Updated": _iso(record.updated) or "",
        "AlertKey": record.alert_key or "",
        "Origin": record.origin,
        "TeamGroupId": record.team_group_id or "",
    }


def conversation_from_entity(entity: Entity) -> ConversationRecord:
    return ConversationRecord(
        tenant_id=entity["PartitionKey"],
        conversation_id=entity["ConversationId"],
        conversation_type=entity["ConversationType"],
        service_url=entity["ServiceUrl"],
        reference=json.loads(entity["Reference"]),
        name=entity.get("Name", ""),
        team_id=entity.get("TeamId") or None,
        channel_id=entity.get("ChannelId") or None,
        updated=_dt(entity.get("Updated")),
        alert_key=entity.get("AlertKey") or None,
        origin=entity.get("Origin") or "teams",
        team_group_id=entity.get("TeamGroupId") or None,
    )


def alert_to_entity(state: AlertState) -> Entity:
    return {
        "PartitionKey": alert_partition(state.tenant_id, state.key),
        "RowKey": ALERT_ROW + state.key,
        "TenantId": state.tenant_id,
        "AlertKey": state.key,
        "AlertId": state.alert_id,
        "Source": state.source,
        "EventSource": state.event_source,
        "Title": state.title,
        "Status": state.status,
        "Severity": state.severity,
        "Kind": state.kind,
        "Description": state.description[:MAX_STRING_PROPERTY_CHARS],
        "Url": state.url or "",
        # As the door measured them (shared.domain.events.check_limits): the same JSON.
        "Labels": stored_json(state.labels),
        "Responders": stored_json(list(state.responders)),
        # Versions are epoch microseconds or counters: kept as strings so they stay exact
        # (Table Storage's Int64 needs an explicit EDM type; ordering is done in Python).
        "Version": str(state.version),
        "Revision": str(state.revision),
        "Created": _iso(state.created) or "",
        "Fired": _iso(state.fired) or "",
        "Updated": _iso(state.updated) or "",
        "StatusChanged": _iso(state.status_changed) or "",
        "Steps": json.dumps([step.to_json() for step in state.steps], separators=(",", ":")) if state.steps else "",
        "Channel": json.dumps(state.channel) if state.channel else "",
        "Meeting": json.dumps(state.meeting) if state.meeting else "",
        "Silence": json.dumps(state.silence) if state.silence else "",
        "Silenceable": state.silenceable,
        "Notes": json.dumps(list(state.notes), separators=(",", ":")) if state.notes else "",
        "Snooze": json.dumps(state.snooze) if state.snooze else "",
        "Assignee": json.dumps(state.assignee) if state.assignee else "",
        "FirstEvent": state.first_event,
        "IngestSource": state.ingest_source,
        "LastEvent": state.last_event,
    }


def alert_from_entity(entity: Entity, etag: str | None) -> AlertState:
    return AlertState(
        tenant_id=entity["TenantId"],
        key=entity["AlertKey"],
        alert_id=entity["AlertId"],
        source=entity.get("Source", ""),
        event_source=entity.get("EventSource", ""),
        title=entity["Title"],
        status=entity["Status"],
        severity=entity["Severity"],
        kind=entity.get("Kind", "alert"),
        description=entity.get("Description", ""),
        url=entity.get("Url") or None,
        labels=json.loads(entity.get("Labels") or "{}"),
        responders=tuple(json.loads(entity.get("Responders") or "[]")),
        version=int(entity.get("Version") or 0),
        revision=int(entity.get("Revision") or 0),
        created=_dt(entity.get("Created")),
        fired=_dt(entity.get("Fired")),
        updated=_dt(entity.get("Updated")),
        status_changed=_dt(entity.get("StatusChanged")),
        steps=tuple(StatusStep.from_json(step) for step in json.loads(entity.get("Steps") or "[]")),
        channel=json.loads(entity["Channel"]) if entity.get("Channel") else None,
        meeting=json.loads(entity["Meeting"]) if entity.get("Meeting") else None,
        silence=json.loads(entity["Silence"]) if entity.get("Silence") else None,
        silenceable=bool(entity.get("Silenceable")),
        notes=tuple(json.loads(entity.get("Notes") or "[]")),
        snooze=json.loads(entity["Snooze"]) if entity.get("Snooze") else None,
        assignee=json.loads(entity["Assignee"]) if entity.get("Assignee") else None,
        first_event=entity.get("FirstEvent", ""),
        ingest_source=entity.get("IngestSource", ""),
        last_event=entity.get("LastEvent", ""),
        etag=etag,
        stored_status=entity["Status"],
    )


def delivery_to_entity(delivery: Delivery) -> Entity:
    return {
        "PartitionKey": delivery_partition(delivery.tenant_id),
        "RowKey": delivery_row(delivery.alert_key, delivery.conversation_id),
        "TenantId": delivery.tenant_id,
        "AlertKey": delivery.alert_key,
        "ConversationId": delivery.conversation_id,
        "ActivityId": delivery.activity_id or "",
        "RenderedVersion": str(delivery.rendered_version),
        "Status": delivery.status,
        "Failure": (delivery.failure or "")[:2000],
        "ClaimedAt": _iso(delivery.claimed_at) or "",
        "LastReminder": _iso(delivery.last_reminder) or "",
        "Recipient": delivery.recipient[:1000],
        "Reason": delivery.reason[:2000],
        "Context": json.dumps(delivery.context, separators=(",", ":")) if delivery.context else "",
        "Conversation": json.dumps(delivery.conversation, separators=(",", ":"))[:MAX_STRING_PROPERTY_CHARS]
        if delivery.conversation
        else "",
    }


def delivery_from_entity(entity: Entity, etag: str | None) -> Delivery:
    return Delivery(
        tenant_id=entity["TenantId"],
        alert_key=entity["AlertKey"],
        conversation_id=entity["ConversationId"],
        activity_id=entity.get("ActivityId") or None,
        rendered_version=int(entity.get("RenderedVersion") or -1),
        status=entity.get("Status", "posting"),
        failure=entity.get("Failure") or None,
        claimed_at=_dt(entity.get("ClaimedAt")),
        last_reminder=_dt(entity.get("LastReminder")),
        recipient=entity.get("Recipient", ""),
        reason=entity.get("Reason", ""),
        context=json.loads(entity["Context"]) if entity.get("Context") else None,
        conversation=json.loads(entity["Conversation"]) if entity.get("Conversation") else None,
        etag=etag,
    )


def rejected_partition(day: datetime) -> str:
    """One partition per day, the newest day first (Table Storage returns keys in ascending order)."""
    return f"{99_999_999 - int(day.strftime('%Y%m%d')):08d}"


def rejected_to_entity(rejected: RejectedEvent) -> Entity:
    # Newest first within a day: an inverted timestamp sorts ascending = newest first.
    inverted = f"{10**16 - int(rejected.received.timestamp() * 1_000_000):017d}"
    return {
        "PartitionKey": rejected_partition(rejected.received),
        "RowKey": f"{inverted}-{encode_key(rejected.message_id)}"[:512],
        "MessageId": rejected.message_id,
        "Reason": rejected.reason[:2000],
        "Field": rejected.field,
        "EventId": rejected.event_id or "",
        "Body": rejected.body[:MAX_STRING_PROPERTY_CHARS],
        "Received": rejected.received.isoformat(),
        "TenantId": rejected.tenant_id or "",
    }


def rejected_from_entity(entity: Entity) -> RejectedEvent:
    return RejectedEvent(
        message_id=entity["MessageId"],
        reason=entity["Reason"],
        field=entity.get("Field", ""),
        event_id=entity.get("EventId") or None,
        body=entity.get("Body", ""),
        received=datetime.fromisoformat(entity["Received"]),
        tenant_id=entity.get("TenantId") or None,
    )


def action_to_entity(action: ActionRecord) -> Entity:
    return {
        "PartitionKey": action.tenant_id,
        "RowKey": action.action_id,
        "Event": json.dumps(action.event, separators=(",", ":")),
        "Status": action.status,
        "Attempts": action.attempts,
        "LastError": (action.last_error or "")[:2000],
        "Created": _iso(action.created) or "",
    }


def action_from_entity(entity: Entity, etag: str | None) -> ActionRecord:
    return ActionRecord(
        tenant_id=entity["PartitionKey"],
        action_id=entity["RowKey"],
        event=json.loads(entity["Event"]),
        status=entity.get("Status", "pending"),
        attempts=int(entity.get("Attempts") or 0),
        last_error=entity.get("LastError") or None,
        created=_dt(entity.get("Created")),
        etag=etag,
    )


def link_to_entity(link: AccountLink) -> Entity:
    return {
        "PartitionKey": link.tenant_id,
        "RowKey": encode_key(link.aad_object_id),
        "AadObjectId": link.aad_object_id,
        "PlatformIdentity": link.platform_identity,
        "Method": link.method,
        "Upn": link.upn or "",
        "Updated": _iso(link.updated) or "",
    }


def link_from_entity(entity: Entity) -> AccountLink:
    return AccountLink(
        tenant_id=entity["PartitionKey"],
        aad_object_id=entity["AadObjectId"],
        platform_identity=entity["PlatformIdentity"],
        method=entity.get("Method", "command"),
        upn=entity.get("Upn") or None,
        updated=_dt(entity.get("Updated")),
    )


def workflow_to_entity(workflow: Workflow) -> Entity:
    return {
        "PartitionKey": workflow.tenant_id,
        "RowKey": workflow.id,
        "Definition": json.dumps(workflow.to_json(), separators=(",", ":")),
        "Revision": str(workflow.revision),
        "Updated": _iso(workflow.updated) or "",
        "UpdatedBy": workflow.updated_by[:200],
    }


def workflow_from_entity(entity: Entity, etag: str | None) -> Workflow:
    try:
        workflow = parse_workflow(json.loads(entity["Definition"]), entity["PartitionKey"], entity["RowKey"])
    except (InvalidWorkflow, ValueError) as exc:  # written by this code, so only a hand edit breaks it
        raise ValueError(
            f"stored workflow {entity['RowKey']} of tenant {entity['PartitionKey']} is invalid: {exc}"
        ) from exc
    return replace(
        workflow,
        revision=int(entity.get("Revision") or 1),
        updated=_dt(entity.get("Updated")),
        updated_by=entity.get("UpdatedBy", ""),
        etag=etag,
    )


def undeliverable_to_entity(record: Undeliverable, row_key: str) -> Entity:
    return {
        "PartitionKey": record.tenant_id,
        "RowKey": row_key,
        "AlertKey": record.alert_key,
        "AlertId": record.alert_id,
        "Recipient": record.recipient[:1000],
        "Reason": record.reason[:2000],
        "FallbackReason": record.fallback_reason[:2000],
        "Recorded": record.recorded.isoformat(),
    }


def undeliverable_from_entity(entity: Entity) -> Undeliverable:
    return Undeliverable(
        tenant_id=entity["PartitionKey"],
        alert_key=entity["AlertKey"],
        alert_id=entity["AlertId"],
        recipient=entity.get("Recipient", ""),
        reason=entity.get("Reason", ""),
        fallback_reason=entity.get("FallbackReason", ""),
        recorded=datetime.fromisoformat(entity["Recorded"]),
    )

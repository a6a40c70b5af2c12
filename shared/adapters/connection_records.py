"""Table entities of tenant connections (table ``connectors``) and pending consent flows
(shared by both table backends)."""

from __future__ import annotations

import json
from datetime import datetime

from shared.adapters.records import MAX_STRING_PROPERTY_CHARS, Entity
from shared.domain.connections import DeliveryTarget, PendingFlow, TenantConnection

CONNECTOR_PARTITION = "connector"
FLOW_PARTITION = "flow"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def connection_to_entity(c: TenantConnection) -> Entity:
    if len(c.token_cache) > MAX_STRING_PROPERTY_CHARS:
        raise ValueError(f"the token cache of tenant {c.tenant_id} is too large for one table property")
    return {
        "PartitionKey": CONNECTOR_PARTITION,
        "RowKey": c.tenant_id,
        "Method": c.method,
        "Status": c.status,
        "Organisation": c.organisation,
        "Scopes": " ".join(c.scopes),
        "ConnectedAt": _iso(c.connected_at),
        "ConnectedBy": c.connected_by,
        "StatusReason": c.status_reason[:2000],
        "StatusChanged": _iso(c.status_changed),
        "TokenCache": c.token_cache,
        "AccountId": c.account_id,
    }


def connection_from_entity(entity: Entity, etag: str | None) -> TenantConnection:
    return TenantConnection(
        tenant_id=entity["RowKey"],
        method=entity["Method"],
        status=entity["Status"],
        organisation=entity.get("Organisation", ""),
        scopes=tuple((entity.get("Scopes") or "").split()),
        connected_at=_dt(entity.get("ConnectedAt")),
        connected_by=entity.get("ConnectedBy", ""),
        status_reason=entity.get("StatusReason", ""),
        status_changed=_dt(entity.get("StatusChanged")),
        token_cache=entity.get("TokenCache", ""),
        account_id=entity.get("AccountId", ""),
        etag=etag,
    )


def flow_to_entity(f: PendingFlow, used: bool = False) -> Entity:
    return {
        "PartitionKey": FLOW_PARTITION,
        "RowKey": f.flow_id,
        "Method": f.method,
        "TenantHint": f.tenant_hint or "",
        "Flow": f.flow,
        "Targets": json.dumps([t.__dict__ for t in f.targets]),
        "StartedBy": f.started_by,
        "Created": _iso(f.created),
        "Used": used,
    }


def flow_from_entity(entity: Entity, etag: str | None) -> PendingFlow:
    return PendingFlow(
        flow_id=entity["RowKey"],
        method=entity["Method"],
        tenant_hint=entity.get("TenantHint") or None,
        flow=entity.get("Flow", ""),
        targets=tuple(DeliveryTarget(**t) for t in json.loads(entity.get("Targets") or "[]")),
        started_by=entity.get("StartedBy", ""),
        created=_dt(entity.get("Created")),
        etag=etag,
    )

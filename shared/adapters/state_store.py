"""The state store: conversations, alerts, deliveries, processed events, rejected events.

All logic lives in :class:`TableStateStore`, written against a tiny entity-table interface
with two backends: :class:`MemoryTables` (tests, and the honest fake) and
:class:`AzureTables` (``azure-data-tables``: Azurite locally, identity-based in Azure). The
same contract tests run against both.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from shared.adapters import connector_records, records
from shared.domain.connectors import Connector, PendingFlow
from shared.domain.model import AccountLink, ActionRecord, AlertState, ConversationRecord, Delivery, RejectedEvent, Undeliverable
from shared.domain.workflows import Workflow
from shared.ports import ConcurrencyConflict, TransientError



class EntityTable(Protocol):
    async def get(self, pk: str, rk: str) -> tuple[dict, str] | None: ...
    async def create(self, entity: dict) -> str: ...
    async def replace(self, entity: dict, etag: str) -> str: ...
    async def upsert(self, entity: dict) -> str: ...
    async def delete(self, pk: str, rk: str) -> None: ...
    async def query(self, partition: str | None = None, any_of: tuple[str, tuple[str, ...]] | None = None) -> list[tuple[dict, str]]: ...
    async def upsert_many(self, entities: list[dict]) -> None:
        """Upsert entities of ONE partition in one request (an entity group transaction)."""
        ...


class Tables(Protocol):
    async def table(self, name: str) -> EntityTable: ...
    async def close(self) -> None: ...


# Table Storage: an entity group transaction holds at most 100 operations, all in one partition.
MAX_TRANSACTION = 100

# ---------------------------------------------------------------------------- in memory


class MemoryTable:
    """Entities in a dict, with ETags, copy-on-read: behaves like a table, not like a mock."""

    _etags = itertools.count(1)

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[dict, str]] = {}

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    async def get(self, pk: str, rk: str) -> tuple[dict, str] | None:
        row = self.rows.get((pk, rk))
        return (copy.deepcopy(row[0]), row[1]) if row else None

    async def create(self, entity: dict) -> str:
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in self.rows:
            raise ConcurrencyConflict(f"entity {key} already exists")
        etag = self._etag()
        self.rows[key] = (copy.deepcopy(entity), etag)
        return etag

    async def replace(self, entity: dict, etag: str) -> str:
        key = (entity["PartitionKey"], entity["RowKey"])
        current = self.rows.get(key)
        if current is None or current[1] != etag:
            raise ConcurrencyConflict(f"entity {key} changed since it was read")
        new = self._etag()
        self.rows[key] = (copy.deepcopy(entity), new)
        return new

    async def upsert(self, entity: dict) -> str:
        etag = self._etag()
        self.rows[(entity["PartitionKey"], entity["RowKey"])] = (copy.deepcopy(entity), etag)
        return etag

    async def delete(self, pk: str, rk: str) -> None:
        self.rows.pop((pk, rk), None)

    async def upsert_many(self, entities: list[dict]) -> None:
        if len({e["PartitionKey"] for e in entities}) > 1 or len(entities) > MAX_TRANSACTION:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACTION} entities of one partition")
        for entity in entities:
            await self.upsert(entity)

    async def query(self, partition: str | None = None, any_of: tuple[str, tuple[str, ...]] | None = None) -> list[tuple[dict, str]]:
        found = []
        for (pk, _rk), (entity, etag) in sorted(self.rows.items()):
            if partition is not None and pk != partition:
                continue
            if any_of is not None and entity.get(any_of[0]) not in any_of[1]:
                continue
            found.append((copy.deepcopy(entity), etag))
        return found


class MemoryTables:
    def __init__(self) -> None:
        self._tables: dict[str, MemoryTable] = {}

    async def table(self, name: str) -> MemoryTable:
        return self._tables.setdefault(name, MemoryTable())

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------------- Azure Tables


# Table Storage requests this process made (each entity operation and each query call): what
# the benchmark reports per event.
_counted = [0]


def table_requests() -> int:
    """Table Storage requests made by this process so far."""
    return _counted[0]


class AzureTable:
    """One Azure table through ``azure.data.tables.aio``; SDK errors become the port's."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @staticmethod
    def _plain(entity: Any) -> dict:
        return {k: v for k, v in dict(entity).items()}

    async def _call(self, coro):
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        _counted[0] += 1
        try:
            return await coro
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise ConcurrencyConflict(str(exc).splitlines()[0]) from exc
        except ResourceNotFoundError:
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TransientError(f"Table Storage is unreachable: {str(exc).splitlines()[0]}") from exc

    async def get(self, pk: str, rk: str) -> tuple[dict, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = await self._call(self._client.get_entity(pk, rk))
        except ResourceNotFoundError:
            return None
        return self._plain(entity), entity.metadata["etag"]

    async def create(self, entity: dict) -> str:
        result = await self._call(self._client.create_entity(entity))
        return result["etag"]

    async def replace(self, entity: dict, etag: str) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            result = await self._call(
                self._client.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified)
            )
        except ResourceNotFoundError as exc:
            raise ConcurrencyConflict("entity was deleted since it was read") from exc
        return result["etag"]

    async def upsert(self, entity: dict) -> str:
        from azure.data.tables import UpdateMode

        result = await self._call(self._client.upsert_entity(entity, mode=UpdateMode.REPLACE))
        return result["etag"]

    async def delete(self, pk: str, rk: str) -> None:
        await self._call(self._client.delete_entity(pk, rk))

    async def upsert_many(self, entities: list[dict]) -> None:
        from azure.data.tables import UpdateMode

        await self._call(self._client.submit_transaction([("upsert", entity, {"mode": UpdateMode.REPLACE}) for entity in entities]))

    async def query(self, partition: str | None = None, any_of: tuple[str, tuple[str, ...]] | None = None) -> list[tuple[dict, str]]:
        clauses, params = [], {}
        if partition is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = partition
        if any_of is not None:
            name, values = any_of
            ors = []
            for i, value in enumerate(values):
                ors.append(f"{name} eq @v{i}")
                params[f"v{i}"] = value
            # The SDK substitutes @names only between spaces: keep the parentheses apart.
            clauses.append("( " + " or ".join(ors) + " )")
        _counted[0] += 1
        if clauses:
            pager = self._client.query_entities(" and ".join(clauses), parameters=params)
        else:
            pager = self._client.list_entities()
        found = []
        async for entity in pager:
            found.append((self._plain(entity), entity.metadata["etag"]))
        return found


class AzureTables:
    """Table clients built on first use; each table is created once per process if missing."""

    def __init__(self, *, connection_string: str | None = None, endpoint: str | None = None, credential: Any = None, prefix: str = "tac") -> None:
        if not connection_string and not endpoint:
            raise ValueError("AzureTables needs a connection string or an endpoint")
        self._connection_string = connection_string
        self._endpoint = endpoint
        self._credential = credential
        self._prefix = prefix
        self._service: Any = None
        self._tables: dict[str, AzureTable] = {}
        self._lock = asyncio.Lock()

    def _service_client(self) -> Any:
        from azure.data.tables.aio import TableServiceClient

        if self._service is None:
            if self._connection_string:
                self._service = TableServiceClient.from_connection_string(self._connection_string)
            else:
                self._service = TableServiceClient(endpoint=self._endpoint, credential=self._credential)
        return self._service

    async def table(self, name: str) -> AzureTable:
        if name in self._tables:
            return self._tables[name]
        async with self._lock:
            if name not in self._tables:
                full_name = f"{self._prefix}{name}"
                try:
                    client = await self._service_client().create_table_if_not_exists(full_name)
                except Exception as exc:  # noqa: BLE001 - re-raised as the port's transient error
                    from azure.core.exceptions import HttpResponseError, ServiceRequestError

                    if isinstance(exc, (ServiceRequestError, HttpResponseError)):
                        raise TransientError(f"cannot open table {full_name}: {str(exc).splitlines()[0]}") from exc
                    raise
                self._tables[name] = AzureTable(client)
        return self._tables[name]

    async def close(self) -> None:
        for table in self._tables.values():
            await table._client.close()
        self._tables.clear()
        if self._service is not None:
            await self._service.close()
            self._service = None


# ---------------------------------------------------------------------------- the store


class TableStateStore:
    """Implements :class:`shared.ports.StateStore` over any :class:`Tables` backend."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def _t(self, name: str) -> EntityTable:
        return await self._tables.table(name)

    # conversations
    async def save_conversation(self, record: ConversationRecord) -> None:
        await (await self._t("conversations")).upsert(records.conversation_to_entity(record))

    async def remove_conversation(self, tenant_id: str, conversation_id: str) -> None:
        await (await self._t("conversations")).delete(tenant_id, records.encode_key(conversation_id))

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> ConversationRecord | None:
        row = await (await self._t("conversations")).get(tenant_id, records.encode_key(conversation_id))
        return records.conversation_from_entity(row[0]) if row else None

    async def list_conversations(self, tenant_id: str | None = None) -> list[ConversationRecord]:
        rows = await (await self._t("conversations")).query(partition=tenant_id)
        return [records.conversation_from_entity(entity) for entity, _ in rows]

    # alerts
    async def get_alert(self, tenant_id: str, key: str) -> AlertState | None:
        row = await (await self._t("alerts")).get(tenant_id, key)
        return records.alert_from_entity(*row) if row else None

    async def save_alert(self, state: AlertState) -> AlertState:
        table = await self._t("alerts")
        entity = records.alert_to_entity(state)
        etag = await (table.create(entity) if state.etag is None else table.replace(entity, state.etag))
        return state.with_etag(etag)

    async def list_alerts(self, tenant_id: str | None = None, statuses: tuple[str, ...] | None = None) -> list[AlertState]:
        rows = await (await self._t("alerts")).query(partition=tenant_id, any_of=("Status", statuses) if statuses else None)
        return [records.alert_from_entity(entity, etag) for entity, etag in rows]

    # deliveries
    async def get_delivery(self, tenant_id: str, alert_key: str, conversation_id: str) -> Delivery | None:
        row = await (await self._t("deliveries")).get(records.delivery_partition(tenant_id, alert_key), records.encode_key(conversation_id))
        return records.delivery_from_entity(*row) if row else None

    async def list_deliveries(self, tenant_id: str, alert_key: str) -> list[Delivery]:
        rows = await (await self._t("deliveries")).query(partition=records.delivery_partition(tenant_id, alert_key))
        return [records.delivery_from_entity(entity, etag) for entity, etag in rows]

    async def save_delivery(self, delivery: Delivery) -> Delivery:
        table = await self._t("deliveries")
        entity = records.delivery_to_entity(delivery)
        etag = await (table.create(entity) if delivery.etag is None else table.replace(entity, delivery.etag))
        return Delivery(**{**delivery.__dict__, "etag": etag})

    async def delete_delivery(self, tenant_id: str, alert_key: str, conversation_id: str) -> None:
        await (await self._t("deliveries")).delete(records.delivery_partition(tenant_id, alert_key), records.encode_key(conversation_id))

    # processed events (idempotency)
    async def was_processed(self, dedupe_key: str) -> bool:
        return await (await self._t("events")).get(dedupe_key[:2], dedupe_key) is not None

    async def mark_processed(self, dedupe_key: str, event_id: str) -> None:
        await (await self._t("events")).upsert(
            {"PartitionKey": dedupe_key[:2], "RowKey": dedupe_key, "EventId": event_id[:1000], "Processed": datetime.now(timezone.utc).isoformat()}
        )

    # rejected events
    async def record_rejected(self, rejected: RejectedEvent) -> None:
        await (await self._t("rejected")).upsert(records.rejected_to_entity(rejected))

    async def list_rejected(self, limit: int = 100) -> list[RejectedEvent]:
        rows = await (await self._t("rejected")).query()
        found = [records.rejected_from_entity(entity) for entity, _ in rows]
        found.sort(key=lambda r: r.received, reverse=True)
        return found[:limit]

    # connectors (one per Microsoft tenant) and pending consent flows
    async def get_connector(self, tenant_id: str) -> Connector | None:
        row = await (await self._t("connectors")).get(connector_records.CONNECTOR_PARTITION, tenant_id)
        return connector_records.connector_from_entity(*row) if row else None

    async def save_connector(self, connector: Connector) -> Connector:
        """Create when ``etag`` is None, else replace only if the ETag still matches."""
        table = await self._t("connectors")
        entity = connector_records.connector_to_entity(connector)
        etag = await (table.create(entity) if connector.etag is None else table.replace(entity, connector.etag))
        return replace(connector, etag=etag)

    async def list_connectors(self) -> list[Connector]:
        rows = await (await self._t("connectors")).query(partition=connector_records.CONNECTOR_PARTITION)
        return [connector_records.connector_from_entity(entity, etag) for entity, etag in rows]

    async def save_pending_flow(self, flow: PendingFlow) -> None:
        await (await self._t("consentflows")).create(connector_records.flow_to_entity(flow))

    async def take_pending_flow(self, flow_id: str) -> PendingFlow | None:
        """The flow, exactly once: a conditional write marks it used before it is removed, so
        two callbacks racing with the same state cannot both get it."""
        table = await self._t("consentflows")
        row = await table.get(connector_records.FLOW_PARTITION, flow_id)
        if row is None or row[0].get("Used"):
            return None
        flow = connector_records.flow_from_entity(*row)
        try:
            await table.replace(connector_records.flow_to_entity(flow, used=True), row[1])
        except ConcurrencyConflict:
            return None
        await table.delete(connector_records.FLOW_PARTITION, flow_id)
        return flow

    # actions taken in Teams, kept until published (outbox)
    async def save_action(self, action: ActionRecord) -> ActionRecord:
        """Create when ``etag`` is None (ConcurrencyConflict if the action exists), else replace."""
        table = await self._t("actions")
        entity = records.action_to_entity(action)
        etag = await (table.create(entity) if action.etag is None else table.replace(entity, action.etag))
        return replace(action, etag=etag)

    async def list_pending_actions(self) -> list[ActionRecord]:
        rows = await (await self._t("actions")).query(any_of=("Status", ("pending",)))
        return [records.action_from_entity(entity, etag) for entity, etag in rows]

    # links between Teams users and their alerting platform identity
    async def save_link(self, link: AccountLink) -> None:
        await (await self._t("links")).upsert(records.link_to_entity(link))

    async def get_link(self, tenant_id: str, aad_object_id: str) -> AccountLink | None:
        row = await (await self._t("links")).get(tenant_id, records.encode_key(aad_object_id))
        return records.link_from_entity(row[0]) if row else None

    # workflows (routing), one partition per tenant
    async def list_workflows(self, tenant_id: str) -> list[Workflow]:
        rows = await (await self._t("workflows")).query(partition=tenant_id)
        return [records.workflow_from_entity(entity, etag) for entity, etag in rows]

    async def list_all_workflows(self) -> list[Workflow]:
        """Every tenant's workflows (the periodic run's digests); a small table."""
        rows = await (await self._t("workflows")).query()
        return [records.workflow_from_entity(entity, etag) for entity, etag in rows]

    async def get_workflow(self, tenant_id: str, workflow_id: str) -> Workflow | None:
        row = await (await self._t("workflows")).get(tenant_id, workflow_id)
        return records.workflow_from_entity(*row) if row else None

    async def save_workflow(self, workflow: Workflow) -> Workflow:
        """Create when ``etag`` is None (ConcurrencyConflict if it exists), else replace if unchanged."""
        table = await self._t("workflows")
        entity = records.workflow_to_entity(workflow)
        etag = await (table.create(entity) if workflow.etag is None else table.replace(entity, workflow.etag))
        return replace(workflow, etag=etag)

    async def delete_workflow(self, tenant_id: str, workflow_id: str) -> None:
        await (await self._t("workflows")).delete(tenant_id, workflow_id)

    # recipients resolved to conversations (so the next alert costs no Graph call)
    @staticmethod
    def _recipient_row(recipient_key: str) -> str:
        return hashlib.sha256(recipient_key.encode()).hexdigest()[:40]

    async def get_recipient(self, tenant_id: str, recipient_key: str) -> dict | None:
        """``{"conversationId", "failure", "until"}`` recorded for a recipient, or None."""
        row = await (await self._t("recipients")).get(tenant_id, self._recipient_row(recipient_key))
        if row is None:
            return None
        entity = row[0]
        return {"conversationId": entity.get("ConversationId") or None, "failure": entity.get("Failure") or None, "until": records._dt(entity.get("Until"))}

    async def save_recipient(self, tenant_id: str, recipient_key: str, conversation_id: str | None, failure: str | None = None, until: datetime | None = None) -> None:
        await (await self._t("recipients")).upsert({
            "PartitionKey": tenant_id, "RowKey": self._recipient_row(recipient_key), "Recipient": recipient_key[:1000],
            "ConversationId": conversation_id or "", "Failure": (failure or "")[:2000], "Until": until.isoformat() if until else "",
        })

    async def claim_recipient(self, tenant_id: str, recipient_key: str, now: datetime, hold: timedelta) -> bool:
        """Claim setting up a recipient (a conditional write), so two workers never create two
        group chats for one group; False while another worker's claim is younger than ``hold``."""
        table = await self._t("recipients")
        row_key = self._recipient_row(recipient_key)
        entity = {"PartitionKey": tenant_id, "RowKey": row_key, "Recipient": recipient_key[:1000], "ConversationId": "", "Failure": "", "Until": "", "Claimed": now.isoformat()}
        row = await table.get(tenant_id, row_key)
        try:
            if row is None:
                await table.create(entity)
                return True
            claimed = records._dt(row[0].get("Claimed"))
            if claimed is not None and now - claimed < hold:
                return False
            await table.replace(entity, row[1])
            return True
        except ConcurrencyConflict:
            return False

    # a conversation's send window and storm summary (written only by its session's holder)
    async def get_pacing(self, tenant_id: str, conversation_id: str) -> tuple[str | None, dict | None]:
        row = await (await self._t("pacing")).get(tenant_id, records.encode_key(conversation_id))
        if row is None:
            return None, None
        entity = row[0]
        return entity.get("Window") or None, json.loads(entity["Summary"]) if entity.get("Summary") else None

    async def save_pacing(self, tenant_id: str, conversation_id: str, window: str, summary: dict | None) -> None:
        await (await self._t("pacing")).upsert({
            "PartitionKey": tenant_id, "RowKey": records.encode_key(conversation_id), "Window": window,
            "Summary": json.dumps(summary, separators=(",", ":")) if summary else "",
        })

    # each tenant's send budget, leased in slots by the instances (shared.services.delivery.TenantBudget)
    async def list_budget_slots(self, tenant_id: str) -> list[tuple[int, str, datetime | None, str]]:
        rows = await (await self._t("budget")).query(partition=tenant_id)
        return [(int(e["RowKey"]), e.get("Holder", ""), records._dt(e.get("Until")), etag) for e, etag in rows]

    async def save_budget_slot(self, tenant_id: str, slot: int, holder: str, until: datetime, etag: str | None) -> None:
        """Lease a slot: create it, or replace it only if unchanged since read (ConcurrencyConflict)."""
        table = await self._t("budget")
        entity = {"PartitionKey": tenant_id, "RowKey": str(slot), "Holder": holder, "Until": until.isoformat()}
        await (table.create(entity) if etag is None else table.replace(entity, etag))

    # alerts counted in a conversation's storm summary (one partition per conversation)
    @staticmethod
    def _members_partition(tenant_id: str, conversation_id: str) -> str:
        return f"{tenant_id}|{records.encode_key(conversation_id)}"[:1000]

    async def save_summary_members(self, tenant_id: str, conversation_id: str, members: list[dict]) -> None:
        """Record alerts as counted in the summary: ``{"alertKey", "severity", "status", "revision"}``,
        written in transactions of up to 100."""
        table = await self._t("summarymembers")
        partition = self._members_partition(tenant_id, conversation_id)
        entities = [{"PartitionKey": partition, "RowKey": m["alertKey"], "Severity": m["severity"], "Status": m["status"], "Revision": str(m["revision"])}
                    for m in members]
        await asyncio.gather(*(table.upsert_many(entities[start:start + MAX_TRANSACTION]) for start in range(0, len(entities), MAX_TRANSACTION)))

    async def get_summary_member(self, tenant_id: str, conversation_id: str, alert_key: str) -> dict | None:
        row = await (await self._t("summarymembers")).get(self._members_partition(tenant_id, conversation_id), alert_key)
        if row is None:
            return None
        e = row[0]
        return {"alertKey": alert_key, "severity": e["Severity"], "status": e["Status"], "revision": int(e["Revision"])}

    # alerts that reached no one (recipient and fallback failed)
    async def record_undeliverable(self, record: Undeliverable) -> None:
        row = hashlib.sha256(f"{record.alert_key}\n{record.recipient}".encode()).hexdigest()[:40]
        await (await self._t("undeliverable")).upsert(records.undeliverable_to_entity(record, row))

    async def list_undeliverable(self, tenant_id: str, limit: int = 100) -> list[Undeliverable]:
        rows = await (await self._t("undeliverable")).query(partition=tenant_id)
        found = [records.undeliverable_from_entity(entity) for entity, _ in rows]
        found.sort(key=lambda r: r.recorded, reverse=True)
        return found[:limit]

    async def close(self) -> None:
        await self._tables.close()


def memory_store() -> TableStateStore:
    return TableStateStore(MemoryTables())


class CachedStore:
    """The store, with a tenant's conversations and workflows kept for :attr:`ttl` seconds.

    Every event reads both (the broadcast default and routing); they change rarely. Writes made
    through this object drop the tenant's entries at once; a change made by another instance
    shows within ``ttl`` seconds (README: Routing alerts). Everything else goes straight to the
    store."""

    def __init__(self, store: TableStateStore, ttl: float = 10.0, clock=None) -> None:
        import time

        self._store = store
        self.ttl = ttl
        self._clock = clock or time.monotonic
        self._conversations: dict[str, tuple[float, list[ConversationRecord]]] = {}
        self._workflows: dict[str, tuple[float, list[Workflow]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _fresh(self, cache: dict, tenant_id: str) -> Any:
        entry = cache.get(tenant_id)
        return entry[1] if entry is not None and self._clock() - entry[0] < self.ttl else None

    async def list_conversations(self, tenant_id: str | None = None) -> list[ConversationRecord]:
        if tenant_id is None:
            return await self._store.list_conversations(None)
        found = self._fresh(self._conversations, tenant_id)
        if found is None:
            found = await self._store.list_conversations(tenant_id)
            self._conversations[tenant_id] = (self._clock(), found)
        return list(found)

    async def list_workflows(self, tenant_id: str) -> list[Workflow]:
        found = self._fresh(self._workflows, tenant_id)
        if found is None:
            found = await self._store.list_workflows(tenant_id)
            self._workflows[tenant_id] = (self._clock(), found)
        return list(found)

    async def save_conversation(self, record: ConversationRecord) -> None:
        self._conversations.pop(record.tenant_id, None)
        await self._store.save_conversation(record)

    async def remove_conversation(self, tenant_id: str, conversation_id: str) -> None:
        self._conversations.pop(tenant_id, None)
        await self._store.remove_conversation(tenant_id, conversation_id)

    async def save_workflow(self, workflow: Workflow) -> Workflow:
        self._workflows.pop(workflow.tenant_id, None)
        return await self._store.save_workflow(workflow)

    async def delete_workflow(self, tenant_id: str, workflow_id: str) -> None:
        self._workflows.pop(tenant_id, None)
        await self._store.delete_workflow(tenant_id, workflow_id)

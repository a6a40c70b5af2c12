"""The state store: conversations, alerts, deliveries, processed events, rejected events.

All logic lives in :class:`TableStateStore`, written against a tiny entity-table interface
with two backends: :class:`MemoryTables` (tests, and the honest fake) and
:class:`AzureTables` (``azure-data-tables``: Azurite locally, identity-based in Azure). The
same contract tests run against both.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from shared.adapters import connection_records, records
from shared.adapters.records import Entity
from shared.adapters.table_batch import Write
from shared.domain import retention
from shared.domain.connections import PendingFlow, TenantConnection
from shared.domain.events import UNRESOLVED
from shared.domain.model import (
    AccountLink,
    ActionRecord,
    AlertState,
    ConversationRecord,
    Delivery,
    RejectedEvent,
    Undeliverable,
)
from shared.domain.retention import Retention
from shared.domain.workflows import Workflow, parse_workflow
from shared.ports import ConcurrencyConflict, TransientError
from shared.resilience import is_permanent
from shared.settings import environment_names_a_proxy

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables import TableEntity
    from azure.data.tables.aio import TableClient, TableServiceClient

T = TypeVar("T")


class EntityTable(Protocol):
    async def get(self, pk: str, rk: str) -> tuple[Entity, str] | None: ...
    async def create(self, entity: Entity) -> str: ...
    async def replace(self, entity: Entity, etag: str) -> str: ...
    async def upsert(self, entity: Entity) -> str: ...
    async def delete(self, pk: str, rk: str, etag: str | None = None) -> None:
        """Delete if present; with ``etag``, only if unchanged since read (else ConcurrencyConflict)."""
        ...

    async def query(
        self,
        partition: str | None = None,
        any_of: tuple[str, tuple[str, ...]] | None = None,
        *,
        rows: tuple[str, str] | None = None,
        partitions_below: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[Entity, str]]:
        """Entities by key: one partition, or every partition below a key (a range: only the
        rows in it are read), optionally a RowKey range [from, to) and at most ``limit``."""
        ...

    async def upsert_many(self, entities: list[Entity]) -> None:
        """Upsert entities of ONE partition in one request (an entity group transaction)."""
        ...

    async def transact(self, writes: list[Write]) -> list[str]:
        """Make writes to rows of ONE partition in one request, all or none (an entity group
        transaction); their new ETags, in order. ConcurrencyConflict when one's condition fails
        (a create of a row that exists, a replace of a row changed or gone): then none is made."""
        ...

    async def delete_many(self, pk: str, rks: list[str]) -> None:
        """Delete rows of one partition, a transaction of up to 100 at a time."""
        ...


class Tables(Protocol):
    async def table(self, name: str) -> EntityTable: ...
    async def close(self) -> None: ...


# Table Storage: an entity group transaction holds at most 100 operations, all in one partition.
MAX_TRANSACTION = 100


# Point reads in flight at once when a list is read through an index.
log = logging.getLogger(__name__)

READ_CONCURRENCY = 50
WANT_ROW = "want|"  # a budget row of an instance that wants send slots (TenantBudget)
WINDOWS_REMEMBERED = 10_000  # conversations' window rows a process remembers (TableStateStore.last_pacing)
TENANTS_PARTITION = "tenants"  # the tenants with alerts: one row each (TableStateStore._list_tenant)

# ---------------------------------------------------------------------------- in memory


class MemoryTable:
    """Entities in a dict, with ETags, copy-on-read: behaves like a table, not like a mock.

    Counts what it is asked for as Table Storage would bill and serve it: every request, and
    every entity a read returns (:class:`ReadCounter`)."""

    _etags = itertools.count(1)

    def __init__(self, counter: ReadCounter | None = None) -> None:
        self.rows: dict[tuple[str, str], tuple[Entity, str]] = {}
        self.counter = counter or ReadCounter()

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    async def get(self, pk: str, rk: str) -> tuple[Entity, str] | None:
        self.counter.requests += 1
        row = self.rows.get((pk, rk))
        if row:
            self.counter.entities += 1
        return (copy.deepcopy(row[0]), row[1]) if row else None

    async def create(self, entity: Entity) -> str:
        self.counter.requests += 1
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in self.rows:
            raise ConcurrencyConflict(f"entity {key} already exists")
        etag = self._etag()
        self.rows[key] = (copy.deepcopy(entity), etag)
        return etag

    async def replace(self, entity: Entity, etag: str) -> str:
        self.counter.requests += 1
        key = (entity["PartitionKey"], entity["RowKey"])
        current = self.rows.get(key)
        if current is None or current[1] != etag:
            raise ConcurrencyConflict(f"entity {key} changed since it was read")
        new = self._etag()
        self.rows[key] = (copy.deepcopy(entity), new)
        return new

    async def upsert(self, entity: Entity) -> str:
        self.counter.requests += 1
        etag = self._etag()
        self.rows[(entity["PartitionKey"], entity["RowKey"])] = (copy.deepcopy(entity), etag)
        return etag

    async def delete(self, pk: str, rk: str, etag: str | None = None) -> None:
        self.counter.requests += 1
        current = self.rows.get((pk, rk))
        if current is not None and etag is not None and current[1] != etag:
            raise ConcurrencyConflict(f"entity {(pk, rk)} changed since it was read")
        self.rows.pop((pk, rk), None)

    async def upsert_many(self, entities: list[Entity]) -> None:
        await self.transact([Write("upsert", entity) for entity in entities])

    async def transact(self, writes: list[Write]) -> list[str]:
        keys = [(w.entity["PartitionKey"], w.entity["RowKey"]) for w in writes]
        if len({pk for pk, _ in keys}) > 1 or len(writes) > MAX_TRANSACTION:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACTION} entities of one partition")
        if len(set(keys)) < len(keys):
            raise ValueError("a transaction holds each row at most once")  # Table Storage: InvalidDuplicateRow
        self.counter.requests += 1
        for index, (write, key) in enumerate(zip(writes, keys, strict=True)):
            current = self.rows.get(key)
            if write.kind == "create" and current is not None:
                raise ConcurrencyConflict(f"entity {key} already exists", index)
            if write.kind == "replace" and (current is None or current[1] != write.etag):
                raise ConcurrencyConflict(f"entity {key} changed since it was read", index)
            if write.kind not in ("create", "upsert", "replace"):
                raise ValueError(f"unknown kind of write {write.kind!r}")
        etags = []
        for write, key in zip(writes, keys, strict=True):
            etags.append(self._etag())
            self.rows[key] = (copy.deepcopy(write.entity), etags[-1])
        return etags

    async def delete_many(self, pk: str, rks: list[str]) -> None:
        for start in range(0, len(rks), MAX_TRANSACTION):
            self.counter.requests += 1
            for rk in rks[start : start + MAX_TRANSACTION]:
                self.rows.pop((pk, rk), None)

    async def query(
        self,
        partition: str | None = None,
        any_of: tuple[str, tuple[str, ...]] | None = None,
        *,
        rows: tuple[str, str] | None = None,
        partitions_below: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[Entity, str]]:
        self.counter.requests += 1
        found = []
        for (pk, rk), (entity, etag) in sorted(self.rows.items()):
            if partition is not None and pk != partition:
                continue
            if partitions_below is not None and pk >= partitions_below:
                continue
            if rows is not None and not rows[0] <= rk < rows[1]:
                continue
            # A filter on other properties is applied by the service to every entity of the
            # key range: those count as read even when they do not match.
            self.counter.entities += 1
            if any_of is not None and entity.get(any_of[0]) not in any_of[1]:
                continue
            found.append((copy.deepcopy(entity), etag))
            if limit is not None and len(found) >= limit:
                break
        return found


@dataclass
class ReadCounter:
    """Requests made and entities read (scanned) by the in-memory tables."""

    requests: int = 0
    entities: int = 0


class MemoryTables:
    def __init__(self) -> None:
        self._tables: dict[str, MemoryTable] = {}
        self.counter = ReadCounter()

    async def table(self, name: str) -> MemoryTable:
        return self._tables.setdefault(name, MemoryTable(self.counter))

    def rows(self, name: str) -> dict[tuple[str, str], tuple[Entity, str]]:
        """Every row of a table (tests look at what is stored)."""
        return self._tables.setdefault(name, MemoryTable(self.counter)).rows

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------------- Azure Tables


# Table Storage requests this process made (each entity operation and each query call): what
# the benchmark reports per event.
_counted: dict[str, int] = {}


# Tries of a write that may be repeated (an upsert), when Table Storage fails it for now. The
# SDK has already retried with backoff (azure-core's retry policy); a storm's many one-row writes
# make one such failure in a batch likely, and redoing the whole batch costs far more.
IDEMPOTENT_TRIES = 3


async def _idempotent(write: Callable[[], Awaitable[T]]) -> T:
    for attempt in range(IDEMPOTENT_TRIES):
        try:
            return await write()
        except TransientError:
            if attempt == IDEMPOTENT_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def table_requests() -> int:
    """Table Storage requests made by this process so far."""
    return sum(_counted.values())


def table_requests_by_table() -> dict[str, int]:
    """Table Storage requests made by this process so far, per table (without the prefix)."""
    return dict(_counted)


class AzureTable:
    """One Azure table through ``azure.data.tables.aio``; SDK errors become the port's."""

    def __init__(self, client: TableClient, name: str = "") -> None:
        self._client = client
        self._name = name

    @staticmethod
    def _plain(entity: Entity) -> Entity:
        return dict(entity)

    @staticmethod
    def _read_etag(entity: TableEntity) -> str:
        # The SDK types it Optional, but an entity read from the service always has one (the SDK
        # makes one from the entity's Timestamp when the response carries none).
        return cast(str, entity.metadata["etag"])

    @staticmethod
    def _written_etag(result: Mapping[str, Any]) -> str:
        """The new ETag of a write (the SDK returns the response's metadata as a mapping of Any)."""
        etag: str = result["etag"]
        return etag

    async def _call(self, coro: Awaitable[T]) -> T:
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        _counted[self._name] = _counted.get(self._name, 0) + 1
        try:
            return await coro
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise ConcurrencyConflict(str(exc).splitlines()[0]) from exc
        except ResourceNotFoundError:
            raise
        except Exception as exc:
            transient = _transient(exc)
            if transient is not None:
                raise transient from exc
            raise

    async def get(self, pk: str, rk: str) -> tuple[Entity, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = await self._call(self._client.get_entity(pk, rk))
        except ResourceNotFoundError:
            return None
        return self._plain(entity), self._read_etag(entity)

    async def create(self, entity: Entity) -> str:
        result = await self._call(self._client.create_entity(entity))
        return self._written_etag(result)

    async def replace(self, entity: Entity, etag: str) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            result = await self._call(
                self._client.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            )
        except ResourceNotFoundError as exc:
            raise ConcurrencyConflict("entity was deleted since it was read") from exc
        return self._written_etag(result)

    async def upsert(self, entity: Entity) -> str:
        from azure.data.tables import UpdateMode

        result = await self._call(self._client.upsert_entity(entity, mode=UpdateMode.REPLACE))
        return self._written_etag(result)

    async def delete(self, pk: str, rk: str, etag: str | None = None) -> None:
        if etag is None:
            await self._call(self._client.delete_entity(pk, rk))  # a missing entity is no error (the SDK ignores 404)
            return
        from azure.core import MatchConditions

        await self._call(self._client.delete_entity(pk, rk, etag=etag, match_condition=MatchConditions.IfNotModified))

    async def upsert_many(self, entities: list[Entity]) -> None:
        await self.transact([Write("upsert", entity) for entity in entities])

    async def transact(self, writes: list[Write]) -> list[str]:
        if len(writes) == 1:  # one row: the plain request, with the same conditions (and less CPU)
            [write] = writes
            try:
                if write.kind == "create":
                    return [await self.create(write.entity)]
                if write.kind == "replace":
                    assert write.etag is not None
                    return [await self.replace(write.entity, write.etag)]
                return [await self.upsert(write.entity)]
            except ConcurrencyConflict as exc:
                raise ConcurrencyConflict(str(exc), 0) from exc
        from shared.adapters import table_batch

        return await self._call(table_batch.submit(self._client, writes))

    async def delete_many(self, pk: str, rks: list[str]) -> None:
        from azure.data.tables import TableTransactionError

        for start in range(0, len(rks), MAX_TRANSACTION):
            chunk = rks[start : start + MAX_TRANSACTION]
            try:
                await self._call(
                    self._client.submit_transaction([("delete", {"PartitionKey": pk, "RowKey": rk}) for rk in chunk])
                )
            except TableTransactionError:
                # One row was gone already (a transaction fails whole): delete them one by one.
                for rk in chunk:
                    await self.delete(pk, rk)

    async def query(
        self,
        partition: str | None = None,
        any_of: tuple[str, tuple[str, ...]] | None = None,
        *,
        rows: tuple[str, str] | None = None,
        partitions_below: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[Entity, str]]:
        clauses, params = [], {}
        if partition is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = partition
        if partitions_below is not None:
            clauses.append("PartitionKey lt @pb")
            params["pb"] = partitions_below
        if rows is not None:
            clauses.append("RowKey ge @r0 and RowKey lt @r1")
            params["r0"], params["r1"] = rows
        if any_of is not None:
            name, values = any_of
            ors = []
            for i, value in enumerate(values):
                ors.append(f"{name} eq @v{i}")
                params[f"v{i}"] = value
            # The SDK substitutes @names only between spaces: keep the parentheses apart.
            clauses.append("( " + " or ".join(ors) + " )")
        per_page = min(limit, 1000) if limit else None
        if clauses:
            pager = self._client.query_entities(" and ".join(clauses), parameters=params, results_per_page=per_page)
        else:
            pager = self._client.list_entities(results_per_page=per_page)
        found: list[tuple[Entity, str]] = []
        try:
            async for page in pager.by_page():
                _counted[self._name] = _counted.get(self._name, 0) + 1  # each page is one request
                async for entity in page:
                    found.append((self._plain(entity), self._read_etag(entity)))
                    if limit is not None and len(found) >= limit:
                        return found
        except Exception as exc:
            transient = _transient(exc)
            if transient is not None:
                raise transient from exc
            raise
        return found


def _transient(exc: BaseException) -> TransientError | None:
    """The TransientError a failed Table request is, or None when trying again would not help:
    no connection, no answer, or an answer that says "later"."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError(f"Table Storage is unreachable: {str(exc).splitlines()[0]}")
    # Table Storage's InternalError and OperationTimedOut are 500, ServerBusy 503: statuses the
    # one retry policy (shared/resilience.py) says to try again later.
    if isinstance(exc, HttpResponseError) and exc.status_code is not None and not is_permanent(exc.status_code):
        return TransientError(f"Table Storage answered {exc.status_code}: {str(exc).splitlines()[0]}")
    return None


class AzureTables:
    """Table clients built on first use; each table is created once per process if missing."""

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        credential: AsyncTokenCredential | None = None,
        prefix: str = "tac",
    ) -> None:
        if not connection_string and not endpoint:
            raise ValueError("AzureTables needs a connection string or an endpoint")
        self._connection_string = connection_string
        self._endpoint = endpoint
        self._credential = credential
        self._prefix = prefix
        self._service: TableServiceClient | None = None
        self._tables: dict[str, AzureTable] = {}
        self._lock = asyncio.Lock()

    def _service_client(self) -> TableServiceClient:
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.data.tables.aio import TableServiceClient

        if self._service is None:
            transport = AioHttpTransport(use_env_settings=environment_names_a_proxy())
            if self._connection_string:
                self._service = TableServiceClient.from_connection_string(self._connection_string, transport=transport)
            else:
                assert self._endpoint is not None  # the constructor requires one of the two
                self._service = TableServiceClient(
                    endpoint=self._endpoint, credential=self._credential, transport=transport
                )
        return self._service

    async def table(self, name: str) -> AzureTable:
        if name in self._tables:
            return self._tables[name]
        async with self._lock:
            if name not in self._tables:
                full_name = f"{self._prefix}{name}"
                try:
                    client = await self._service_client().create_table_if_not_exists(full_name)
                except Exception as exc:
                    from azure.core.exceptions import HttpResponseError, ServiceRequestError

                    if isinstance(exc, (ServiceRequestError, HttpResponseError)):
                        raise TransientError(f"cannot open table {full_name}: {str(exc).splitlines()[0]}") from exc
                    raise
                self._tables[name] = AzureTable(client, name)
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
    """Implements :class:`shared.ports.StateStore` over any :class:`Tables` backend.

    Besides the records, it keeps two indexes and a removal schedule, each written *before*
    the record it serves or in one transaction with it (a crash leaves a harmless extra row,
    never a missing one):

    - open-alert index rows (``open|`` + alert key, beside the alert in its partition of
      ``alerts``, one of the tenant's eight, written in one transaction with it): every alert
      not resolved. The periodic work reads them, so it costs O(open alerts), not O(every
      alert ever stored); ``tenants`` lists the tenants whose partitions it reads.
    - ``alertids`` (partition: tenant + hash of the alert id): finds an alert by the id people
      type (``ack ALRT-1042``) with one partition read once it has left the open-alert index,
      whose rows carry the id too (a filtered read of the tenant's partition finds an open one).
    - ``expiry`` (partition: due hour + shard): what becomes removable when (module
      :mod:`shared.domain.retention`); :meth:`remove_due` reads only the due rows.
    """

    def __init__(
        self, tables: Tables, retention: Retention | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._tables = tables
        self.retention = retention or Retention()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._listed_tenants: dict[str, datetime] = {}  # tenant -> when this process last listed it
        # Each conversation's window row as this process last read or wrote it (last_pacing).
        self._windows: OrderedDict[tuple[str, str], tuple[str | None, dict[str, Any] | None, str]] = OrderedDict()

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
        row = await (await self._t("alerts")).get(records.alert_partition(tenant_id, key), records.ALERT_ROW + key)
        return records.alert_from_entity(*row) if row else None

    async def save_alert(self, state: AlertState, *, every_attempt: bool = False) -> AlertState:
        """Create (``etag`` None) or replace if unchanged, with what the transition needs: into
        open or acknowledged → its open-alert index row, in the same transaction (one request),
        and its tenant in the tenant list; a new alert that does not open → its id index row; into
        resolved → its removal, due after the retention period. The rows of other tables are
        written first (a crash leaves a harmless extra row, never a missing one).

        ``every_attempt``: the caller makes this very create on every attempt of its message
        (the insert-first of a ``*.created`` event, whose retry repeats it even when the alert
        exists), so a row of another table that fails is written by the retry: those rows are
        written at the same time as the alert instead of before it (one round trip, not two)."""
        was = state.stored_status
        opens = state.status in UNRESOLVED and was not in UNRESOLVED
        ahead = []
        if opens:
            ahead.append(self._list_tenant(state.tenant_id))
        elif state.etag is None:
            # Found by its id through the open-alert index while it is there; one that never
            # opens needs its id row now (the timer writes the others' when it prunes them).
            ahead.append(self._index_alert_id(state))
        if state.status == "resolved" and was != "resolved":
            since = state.status_changed or self._clock()
            ahead.append(
                self._schedule("alert", {"t": state.tenant_id, "k": state.key}, since + self.retention.resolved_alert)
            )
        table = await self._t("alerts")
        entity = records.alert_to_entity(state)
        alert = Write("create", entity) if state.etag is None else Write("replace", entity, state.etag)
        writes = [alert, Write("upsert", self._open_row(state))] if opens else [alert]
        if every_attempt and state.etag is None:
            *listed, written = await asyncio.gather(*ahead, table.transact(writes), return_exceptions=True)
            # A row that failed wins over "it exists": a retry finds the alert created by an
            # earlier try, and unless this failure is raised, nothing writes that row again.
            for outcome in (*listed, written):
                if isinstance(outcome, BaseException):
                    raise outcome
            assert isinstance(written, list)
            return replace(state, etag=written[0], stored_status=state.status)
        if ahead:
            await asyncio.gather(*ahead)
        etags = await table.transact(writes)
        return replace(state, etag=etags[0], stored_status=state.status)

    def _open_row(self, state: AlertState) -> Entity:
        return {
            "PartitionKey": records.alert_partition(state.tenant_id, state.key),
            "RowKey": records.OPEN_ROW + state.key,
            "TenantId": state.tenant_id,
            "AlertKey": state.key,
            "AlertId": state.alert_id[:1000],
            "AlertIdKey": self._id_key(state.alert_id),
            "Written": self._clock().isoformat(),
        }

    async def _list_tenant(self, tenant_id: str) -> None:
        """Put the tenant in the list of tenants with alerts, which the timer reads to visit each
        one's open alerts: at most once per :data:`retention.TENANT_RELIST` per process (the
        timer drops a tenant only when it has no open alert and was listed longer ago than
        twice that, so no alert can be on its way in without its tenant listed)."""
        now = self._clock()
        listed = self._listed_tenants.get(tenant_id)
        if listed is not None and now - listed < retention.TENANT_RELIST:
            return
        await (await self._t("tenants")).upsert(
            {"PartitionKey": TENANTS_PARTITION, "RowKey": tenant_id, "Listed": now.isoformat()}
        )
        self._listed_tenants[tenant_id] = now

    async def _drop_idle_tenants(
        self, tenants: list[tuple[Entity, str]], rows: list[tuple[Entity, str]], pruned: set[tuple[str, str]]
    ) -> None:
        """Take out of the tenant list the tenants left without an open-alert index row and
        listed longer ago than twice :data:`retention.TENANT_RELIST` (if unchanged since read: one
        listed again meanwhile stays)."""
        busy = {entity["TenantId"] for entity, _ in rows if (entity["PartitionKey"], entity["RowKey"]) not in pruned}
        before = self._clock() - 2 * retention.TENANT_RELIST
        table = await self._t("tenants")
        for entity, etag in tenants:
            listed = records._dt(entity.get("Listed"))
            if entity["RowKey"] not in busy and (listed is None or listed < before):
                with contextlib.suppress(ConcurrencyConflict):
                    await table.delete(TENANTS_PARTITION, entity["RowKey"], etag)

    @staticmethod
    def _id_key(alert_id: str) -> str:
        """The id as people may type it: any case, spaces around (an index column, bounded)."""
        return alert_id.strip().lower()[:1000]

    @staticmethod
    def _id_partition(tenant_id: str, alert_id: str) -> str:
        return f"{tenant_id}|{hashlib.sha256(alert_id.strip().lower().encode()).hexdigest()[:32]}"

    async def _index_alert_id(self, state: AlertState) -> None:
        await (await self._t("alertids")).upsert(
            {"PartitionKey": self._id_partition(state.tenant_id, state.alert_id), "RowKey": state.key}
        )

    async def _alerts(self, keys: list[tuple[str, str]]) -> list[AlertState]:
        """Point reads, a bounded number at a time."""
        found: list[AlertState] = []
        for start in range(0, len(keys), READ_CONCURRENCY):
            chunk = await asyncio.gather(*(self.get_alert(t, k) for t, k in keys[start : start + READ_CONCURRENCY]))
            found.extend(a for a in chunk if a is not None)
        return found

    async def _open_rows(self, tenant_ids: list[str], id_key: str | None = None) -> list[tuple[Entity, str]]:
        """The open-alert index rows of these tenants (with ``id_key``, only those of alerts
        with that id): a range of rows in each of their alert partitions, a bounded number of
        partitions at a time."""
        table = await self._t("alerts")
        partitions = [p for tenant_id in tenant_ids for p in records.alert_partitions(tenant_id)]
        found: list[tuple[Entity, str]] = []
        for start in range(0, len(partitions), READ_CONCURRENCY):
            pages = await asyncio.gather(
                *(
                    table.query(
                        partition=p,
                        rows=records.rows_starting(records.OPEN_ROW),
                        any_of=("AlertIdKey", (id_key,)) if id_key is not None else None,
                    )
                    for p in partitions[start : start + READ_CONCURRENCY]
                )
            )
            found.extend(row for page in pages for row in page)
        return found

    async def list_open_alerts(
        self, tenant_id: str | None = None, *, prune_before: datetime | None = None
    ) -> list[AlertState]:
        """The alerts not resolved (one tenant's, or every listed tenant's), read through the
        open-alert index.

        With ``prune_before``, index rows of alerts resolved (or removed) and written before
        that moment are deleted, if unchanged since read: an alert reopened meanwhile rewrote
        its row, so it keeps it."""
        tenants = await (await self._t("tenants")).query(partition=TENANTS_PARTITION) if tenant_id is None else []
        rows = await self._open_rows([tenant_id] if tenant_id is not None else [e["RowKey"] for e, _ in tenants])
        alerts = await self._alerts([(e["TenantId"], e["AlertKey"]) for e, _ in rows])
        by_key = {(a.tenant_id, a.key): a for a in alerts}
        if prune_before is not None:
            table = await self._t("alerts")
            pruned: set[tuple[str, str]] = set()
            for entity, etag in rows:
                state = by_key.get((entity["TenantId"], entity["AlertKey"]))
                written = records._dt(entity.get("Written"))
                if state is not None and (
                    state.status in UNRESOLVED or (state.status_changed and state.status_changed >= prune_before)
                ):
                    continue
                if written is None or written < prune_before:
                    if state is not None:
                        await self._index_alert_id(state)  # found by its id from now on through this row
                    # A conflict: rewritten just now, the alert is being reopened.
                    with contextlib.suppress(ConcurrencyConflict):
                        await table.delete(entity["PartitionKey"], entity["RowKey"], etag)
                        pruned.add((entity["PartitionKey"], entity["RowKey"]))
            await self._drop_idle_tenants(tenants, rows, pruned)
        return [a for a in alerts if a.status in UNRESOLVED]

    async def list_recent_alerts(self, tenant_id: str, limit: int = 200) -> list[AlertState]:
        rows = await self._open_rows([tenant_id])
        rows.sort(key=lambda row: str(row[0].get("Written") or ""), reverse=True)
        alerts = await self._alerts([(tenant_id, e["AlertKey"]) for e, _ in rows[:limit]])
        return sorted(alerts, key=lambda a: a.updated or a.created or datetime.min.replace(tzinfo=UTC), reverse=True)

    async def find_alerts(self, tenant_id: str, alert_id: str) -> list[AlertState]:
        """The tenant's alerts with this id (any status; the same id may come from two sources):
        an open one through the open-alert index, one resolved a while ago through the id index
        (the timer writes its row when it drops the alert from the open-alert index)."""
        open_rows, id_rows = await asyncio.gather(
            self._open_rows([tenant_id], self._id_key(alert_id)),
            (await self._t("alertids")).query(partition=self._id_partition(tenant_id, alert_id)),
        )
        keys = {e["AlertKey"] for e, _ in open_rows} | {e["RowKey"] for e, _ in id_rows}
        found = await self._alerts([(tenant_id, key) for key in sorted(keys)])
        return [a for a in found if a.alert_id.strip().lower() == alert_id.strip().lower()]

    # deliveries (and each conversation's send window, in the same partition: written together)
    async def get_delivery(self, tenant_id: str, alert_key: str, conversation_id: str) -> Delivery | None:
        row = await (await self._t("deliveries")).get(
            records.delivery_partition(tenant_id), records.delivery_row(alert_key, conversation_id)
        )
        return records.delivery_from_entity(*row) if row else None

    async def list_deliveries(self, tenant_id: str, alert_key: str) -> list[Delivery]:
        rows = await (await self._t("deliveries")).query(
            partition=records.delivery_partition(tenant_id), rows=records.delivery_rows(alert_key)
        )
        return [records.delivery_from_entity(entity, etag) for entity, etag in rows]

    async def save_delivery(self, delivery: Delivery) -> Delivery:
        table = await self._t("deliveries")
        entity = records.delivery_to_entity(delivery)
        etag = await (table.create(entity) if delivery.etag is None else table.replace(entity, delivery.etag))
        return replace(delivery, etag=etag)

    async def save_delivery_paced(
        self, delivery: Delivery, window: str, summary: dict[str, Any] | None, pacing_etag: str | None
    ) -> tuple[Delivery, str]:
        """:meth:`save_delivery` and :meth:`save_pacing` of its conversation in one transaction:
        both or neither (ConcurrencyConflict, ``write`` 0 when the window changed, 1 when the
        delivery did); the delivery and the window's new ETags."""
        table = await self._t("deliveries")
        paced = records.window_to_entity(delivery.tenant_id, delivery.conversation_id, window, summary)
        entity = records.delivery_to_entity(delivery)
        try:
            etags = await table.transact(
                [
                    Write("create", paced) if pacing_etag is None else Write("replace", paced, pacing_etag),
                    Write("create", entity) if delivery.etag is None else Write("replace", entity, delivery.etag),
                ]
            )
        except ConcurrencyConflict as exc:
            if exc.write == 0:
                self._windows.pop((delivery.tenant_id, delivery.conversation_id), None)
            raise
        self._remember_window(delivery.tenant_id, delivery.conversation_id, window, summary, etags[0])
        return replace(delivery, etag=etags[1]), etags[0]

    async def mark_folded(self, deliveries: list[Delivery]) -> None:
        """Record that each alert is counted in a conversation's storm summary (status
        ``folded``, no card): a later change of the alert finds the conversation through
        :meth:`list_deliveries`, like a card's. Written whatever was there (a put-off claim), a
        transaction of up to 100 rows at a time (a tenant's deliveries share a partition)."""
        table = await self._t("deliveries")
        by_partition: dict[str, list[Entity]] = {}
        for d in deliveries:
            entity = records.delivery_to_entity(replace(d, status="folded", activity_id=None))
            by_partition.setdefault(entity["PartitionKey"], []).append(entity)
        chunks = [
            rows[start : start + MAX_TRANSACTION]
            for rows in by_partition.values()
            for start in range(0, len(rows), MAX_TRANSACTION)
        ]
        await asyncio.gather(*(_idempotent(partial(table.upsert_many, chunk)) for chunk in chunks))

    async def delete_delivery(self, tenant_id: str, alert_key: str, conversation_id: str) -> None:
        await (await self._t("deliveries")).delete(
            records.delivery_partition(tenant_id), records.delivery_row(alert_key, conversation_id)
        )

    # processed events (idempotency)
    async def was_processed(self, dedupe_key: str) -> bool:
        return await (await self._t("events")).get(dedupe_key[:2], dedupe_key) is not None

    async def mark_processed(self, dedupe_key: str, event_id: str) -> None:
        now = self._clock()
        await self._schedule("event", {"d": dedupe_key}, now + retention.PROCESSED_COMMAND)
        await (await self._t("events")).upsert(
            {
                "PartitionKey": dedupe_key[:2],
                "RowKey": dedupe_key,
                "EventId": event_id[:1000],
                "Processed": now.isoformat(),
            }
        )

    # rejected events, one partition per day
    async def record_rejected(self, rejected: RejectedEvent) -> None:
        entity = records.rejected_to_entity(rejected)
        day_end = rejected.received.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            days=1
        )
        await self._schedule("rejected", {"day": entity["PartitionKey"]}, day_end + self.retention.rejected_event)
        await (await self._t("rejected")).upsert(entity)

    async def list_rejected(self, limit: int = 100, tenant_id: str | None = None) -> list[RejectedEvent]:
        """Newest first; reads ``limit`` entities at most (keys sort newest first); with
        ``tenant_id``, only those that named that tenant."""
        any_of = ("TenantId", (tenant_id,)) if tenant_id else None
        rows = await (await self._t("rejected")).query(any_of=any_of, limit=limit)
        return [records.rejected_from_entity(entity) for entity, _ in rows]

    # connectors (one per Microsoft tenant) and pending consent flows
    async def get_connection(self, tenant_id: str) -> TenantConnection | None:
        row = await (await self._t("connectors")).get(connection_records.CONNECTOR_PARTITION, tenant_id)
        return connection_records.connection_from_entity(*row) if row else None

    async def save_connection(self, connection: TenantConnection) -> TenantConnection:
        """Create when ``etag`` is None, else replace only if the ETag still matches."""
        table = await self._t("connectors")
        entity = connection_records.connection_to_entity(connection)
        etag = await (table.create(entity) if connection.etag is None else table.replace(entity, connection.etag))
        return replace(connection, etag=etag)

    async def list_connections(self) -> list[TenantConnection]:
        rows = await (await self._t("connectors")).query(partition=connection_records.CONNECTOR_PARTITION)
        return [connection_records.connection_from_entity(entity, etag) for entity, etag in rows]

    async def save_pending_flow(self, flow: PendingFlow) -> None:
        await self._schedule("flow", {"f": flow.flow_id}, (flow.created or self._clock()) + retention.CONSENT_FLOW)
        await (await self._t("consentflows")).create(connection_records.flow_to_entity(flow))

    async def take_pending_flow(self, flow_id: str) -> PendingFlow | None:
        """The flow, exactly once: a conditional write marks it used before it is removed, so
        two callbacks racing with the same state cannot both get it."""
        table = await self._t("consentflows")
        row = await table.get(connection_records.FLOW_PARTITION, flow_id)
        if row is None or row[0].get("Used"):
            return None
        flow = connection_records.flow_from_entity(*row)
        try:
            await table.replace(connection_records.flow_to_entity(flow, used=True), row[1])
        except ConcurrencyConflict:
            return None
        await table.delete(connection_records.FLOW_PARTITION, flow_id)
        return flow

    # actions taken in Teams, kept until published (outbox)
    async def save_action(self, action: ActionRecord) -> ActionRecord:
        """Create when ``etag`` is None (ConcurrencyConflict if the action exists), else replace.

        A new action is first put in the ``outbox`` (the pending ones, which the periodic run
        retries) and given its removal; a published one leaves the outbox."""
        if action.etag is None:
            created = action.created or self._clock()
            await asyncio.gather(
                self._schedule(
                    "action", {"t": action.tenant_id, "a": action.action_id}, created + self.retention.action
                ),
                (await self._t("outbox")).upsert(
                    {"PartitionKey": action.tenant_id, "RowKey": action.action_id, "Written": self._clock().isoformat()}
                ),
            )
        table = await self._t("actions")
        entity = records.action_to_entity(action)
        etag = await (table.create(entity) if action.etag is None else table.replace(entity, action.etag))
        if action.status != "pending":
            await (await self._t("outbox")).delete(action.tenant_id, action.action_id)
        return replace(action, etag=etag)

    async def _get_action(self, tenant_id: str, action_id: str) -> ActionRecord | None:
        row = await (await self._t("actions")).get(tenant_id, action_id)
        return records.action_from_entity(*row) if row else None

    async def list_pending_actions(self) -> list[ActionRecord]:
        """The actions not yet published, read through the outbox (O(pending), not O(all))."""
        outbox = await self._t("outbox")
        rows = await outbox.query()
        found = []
        for entity, etag in rows:
            action = await self._get_action(entity["PartitionKey"], entity["RowKey"])
            if action is not None and action.status == "pending":
                found.append(action)
            elif action is not None or self._written_before(entity):
                # Published (its outbox row outlived a crash), or never created.
                with contextlib.suppress(ConcurrencyConflict):
                    await outbox.delete(entity["PartitionKey"], entity["RowKey"], etag)
        return found

    def _written_before(self, entity: Entity) -> bool:
        """An index row older than the grace period (its record's own write cannot be in flight)."""
        written = records._dt(entity.get("Written"))
        return written is None or written < self._clock() - retention.STALE_INDEX_GRACE

    # links between Teams users and their alerting platform identity
    async def save_link(self, link: AccountLink) -> None:
        await (await self._t("links")).upsert(records.link_to_entity(link))

    async def list_links(self, tenant_id: str) -> list[AccountLink]:
        rows = await (await self._t("links")).query(partition=tenant_id)
        return [records.link_from_entity(entity) for entity, _ in rows]

    async def get_link(self, tenant_id: str, aad_object_id: str) -> AccountLink | None:
        row = await (await self._t("links")).get(tenant_id, records.encode_key(aad_object_id))
        return records.link_from_entity(row[0]) if row else None

    async def delete_link(self, tenant_id: str, aad_object_id: str) -> None:
        await (await self._t("links")).delete(tenant_id, records.encode_key(aad_object_id))

    # workflows (routing), one partition per tenant
    async def list_workflows(self, tenant_id: str) -> list[Workflow]:
        """The tenant's workflows; one whose stored definition cannot be read (saved before a
        limit it breaks) is left out with an error naming it, never taking the others down."""
        return self._readable(await (await self._t("workflows")).query(partition=tenant_id))

    async def list_all_workflows(self) -> list[Workflow]:
        """Every tenant's workflows (the periodic run's digests); a small table."""
        return self._readable(await (await self._t("workflows")).query())

    @staticmethod
    def _readable(rows: list[tuple[Entity, str]]) -> list[Workflow]:
        workflows = []
        for entity, etag in rows:
            try:
                workflows.append(records.workflow_from_entity(entity, etag))
            except ValueError as exc:
                log.error(
                    "Skipping a workflow: %s; delete it (DELETE .../workflows/%s) or save it again",
                    exc,
                    entity["RowKey"],
                )
        return workflows

    async def has_workflow(self, tenant_id: str, workflow_id: str) -> bool:
        """Whether a workflow is stored under this id, readable or not (so it can be deleted)."""
        return await (await self._t("workflows")).get(tenant_id, workflow_id) is not None

    async def get_workflow(self, tenant_id: str, workflow_id: str) -> Workflow | None:
        row = await (await self._t("workflows")).get(tenant_id, workflow_id)
        return records.workflow_from_entity(*row) if row else None

    async def save_workflow(self, workflow: Workflow) -> Workflow:
        """Create when ``etag`` is None (ConcurrencyConflict if it exists), else replace if unchanged.
        The definition is checked as it will be read back, whatever path built it (the routes,
        ``subscribe``): InvalidWorkflow naming the field, and nothing is stored."""
        parse_workflow(workflow.to_json(), workflow.tenant_id, workflow.id)
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

    async def get_recipient(self, tenant_id: str, recipient_key: str) -> dict[str, Any] | None:
        """``{"conversationId", "failure", "until"}`` recorded for a recipient, or None."""
        row = await (await self._t("recipients")).get(tenant_id, self._recipient_row(recipient_key))
        if row is None:
            return None
        entity = row[0]
        return {
            "conversationId": entity.get("ConversationId") or None,
            "failure": entity.get("Failure") or None,
            "until": records._dt(entity.get("Until")),
        }

    async def save_recipient(
        self,
        tenant_id: str,
        recipient_key: str,
        conversation_id: str | None,
        failure: str | None = None,
        until: datetime | None = None,
    ) -> None:
        await (await self._t("recipients")).upsert(
            {
                "PartitionKey": tenant_id,
                "RowKey": self._recipient_row(recipient_key),
                "Recipient": recipient_key[:1000],
                "ConversationId": conversation_id or "",
                "Failure": (failure or "")[:2000],
                "Until": until.isoformat() if until else "",
            }
        )

    async def claim_recipient(self, tenant_id: str, recipient_key: str, now: datetime, hold: timedelta) -> bool:
        """Claim setting up a recipient (a conditional write), so two workers never create two
        group chats for one group; False while another worker's claim is younger than ``hold``."""
        table = await self._t("recipients")
        row_key = self._recipient_row(recipient_key)
        entity = {
            "PartitionKey": tenant_id,
            "RowKey": row_key,
            "Recipient": recipient_key[:1000],
            "ConversationId": "",
            "Failure": "",
            "Until": "",
            "Claimed": now.isoformat(),
        }
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
    async def get_pacing(
        self, tenant_id: str, conversation_id: str
    ) -> tuple[str | None, dict[str, Any] | None, str | None]:
        row = await (await self._t("deliveries")).get(
            records.delivery_partition(tenant_id), records.window_row(conversation_id)
        )
        if row is None:
            return None, None, None
        entity, etag = row
        summary = json.loads(entity["Summary"]) if entity.get("Summary") else None
        window = entity.get("Window") or None
        self._remember_window(tenant_id, conversation_id, window, summary, etag)
        return window, summary, etag

    async def save_pacing(
        self, tenant_id: str, conversation_id: str, window: str, summary: dict[str, Any] | None, etag: str | None
    ) -> str:
        table = await self._t("deliveries")
        entity = records.window_to_entity(tenant_id, conversation_id, window, summary)
        try:
            written = await (table.create(entity) if etag is None else table.replace(entity, etag))
        except ConcurrencyConflict:
            self._windows.pop((tenant_id, conversation_id), None)
            raise
        self._remember_window(tenant_id, conversation_id, window, summary, written)
        return written

    def last_pacing(self, tenant_id: str, conversation_id: str) -> tuple[str | None, dict[str, Any] | None, str] | None:
        """The conversation's window row as this process last read or wrote it, without a
        request. Another instance may have written it since: a write conditional on its ETag
        finds out (shared.services.delivery uses it for a batch of new cards, whose claim is
        such a write)."""
        row = self._windows.get((tenant_id, conversation_id))
        return (row[0], copy.deepcopy(row[1]), row[2]) if row else None

    def _remember_window(
        self, tenant_id: str, conversation_id: str, window: str | None, summary: dict[str, Any] | None, etag: str
    ) -> None:
        key = (tenant_id, conversation_id)
        self._windows[key] = (window, copy.deepcopy(summary), etag)
        self._windows.move_to_end(key)
        while len(self._windows) > WINDOWS_REMEMBERED:
            self._windows.popitem(last=False)

    # each tenant's send budget, leased in slots by the instances (shared.services.delivery.TenantBudget)
    async def list_budget_slots(self, tenant_id: str) -> list[tuple[int, str, datetime | None, str]]:
        return (await self.read_budget(tenant_id))[0]

    async def read_budget(
        self, tenant_id: str
    ) -> tuple[list[tuple[int, str, datetime | None, str]], dict[str, datetime]]:
        """The tenant's slots and, in the same partition (one request), the instances that
        want slots they could not get: instance -> until when."""
        slots, wants = [], {}
        for e, etag in await (await self._t("budget")).query(partition=tenant_id):
            if e["RowKey"].startswith(WANT_ROW):
                until = records._dt(e.get("Until"))
                if until is not None:
                    wants[e["RowKey"][len(WANT_ROW) :]] = until
            else:
                slots.append((int(e["RowKey"]), e.get("Holder", ""), records._dt(e.get("Until")), etag))
        return slots, wants

    async def save_budget_want(self, tenant_id: str, instance: str, until: datetime) -> None:
        await (await self._t("budget")).upsert(
            {"PartitionKey": tenant_id, "RowKey": f"{WANT_ROW}{instance}"[:1000], "Until": until.isoformat()}
        )

    async def save_budget_slot(self, tenant_id: str, slot: int, holder: str, until: datetime, etag: str | None) -> str:
        """Lease a slot: create it, or replace it only if unchanged since read (ConcurrencyConflict)."""
        table = await self._t("budget")
        entity = {"PartitionKey": tenant_id, "RowKey": str(slot), "Holder": holder, "Until": until.isoformat()}
        return await (table.create(entity) if etag is None else table.replace(entity, etag))

    # alerts counted in a conversation's storm summary (one partition per conversation)
    @staticmethod
    def _members_partition(tenant_id: str, conversation_id: str) -> str:
        return f"{tenant_id}|{records.encode_key(conversation_id)}"[:1000]

    async def save_summary_members(
        self, tenant_id: str, conversation_id: str, members: list[dict[str, Any]], *, first: bool = True
    ) -> None:
        """Record alerts as counted in the summary: ``{"alertKey", "severity", "status", "revision"}``,
        written in transactions of up to 100. ``first``: newly counted, so the conversation's
        sweep is scheduled (one schedule row, not one per member): a member goes once its alert
        is removed."""
        table = await self._t("summarymembers")
        partition = self._members_partition(tenant_id, conversation_id)
        if first:
            await self._schedule(
                "members", {"t": tenant_id, "c": conversation_id}, self._clock() + self.retention.resolved_alert
            )
        entities = [
            {
                "PartitionKey": partition,
                "RowKey": m["alertKey"],
                "Severity": m["severity"],
                "Status": m["status"],
                "Revision": str(m["revision"]),
                "Seq": str(m.get("seq", 0)),
                "Storm": str(m.get("storm", 1)),
                "Recipient": str(m.get("recipient", ""))[:1000],
                "Fallback": json.dumps(m.get("fallback") or [], separators=(",", ":"))[
                    : records.MAX_STRING_PROPERTY_CHARS
                ],
            }
            for m in members
        ]
        await asyncio.gather(
            *(
                _idempotent(partial(table.upsert_many, entities[start : start + MAX_TRANSACTION]))
                for start in range(0, len(entities), MAX_TRANSACTION)
            )
        )

    async def delete_summary_member(self, tenant_id: str, conversation_id: str, alert_key: str) -> None:
        await (await self._t("summarymembers")).delete(self._members_partition(tenant_id, conversation_id), alert_key)

    async def get_summary_member(self, tenant_id: str, conversation_id: str, alert_key: str) -> dict[str, Any] | None:
        row = await (await self._t("summarymembers")).get(
            self._members_partition(tenant_id, conversation_id), alert_key
        )
        return self._member(row[0]) if row else None

    async def list_summary_members(self, tenant_id: str, conversation_id: str, storm: int) -> list[dict[str, Any]]:
        """The alerts counted in one storm's summary of the conversation."""
        rows = await (await self._t("summarymembers")).query(
            partition=self._members_partition(tenant_id, conversation_id)
        )
        return [m for m in (self._member(e) for e, _ in rows) if m["storm"] == storm]

    @staticmethod
    def _member(e: Entity) -> dict[str, Any]:
        try:
            fallback = json.loads(e.get("Fallback") or "[]")
        except ValueError:  # cut at the property limit: the member keeps no fallback
            fallback = []
        return {
            "alertKey": e["RowKey"],
            "severity": e["Severity"],
            "status": e["Status"],
            "revision": int(e["Revision"]),
            "seq": int(e.get("Seq") or 0),
            "storm": int(e.get("Storm") or 1),
            "recipient": e.get("Recipient", ""),
            "fallback": fallback if isinstance(fallback, list) else [],
        }

    # ingest sources' key versions (one partition per tenant)
    async def source_key_version(self, tenant_id: str, source: str) -> int:
        row = await (await self._t("sources")).get(tenant_id, source)
        return int(row[0].get("KeyVersion") or 1) if row else 1

    async def rotate_source_key(self, tenant_id: str, source: str) -> int:
        now = self._clock().isoformat()
        entity = await self._change_source(
            tenant_id,
            source,
            lambda row: {**row, "KeyVersion": str(int(row.get("KeyVersion") or 1) + 1), "Rotated": now},
        )
        return int(entity["KeyVersion"])

    async def get_source_api(self, tenant_id: str, source: str) -> str | None:
        """The source's API settings as stored (encrypted by the caller), or None."""
        row = await (await self._t("sources")).get(tenant_id, source)
        return (row[0].get("Api") or None) if row else None

    async def save_source_api(self, tenant_id: str, source: str, sealed: str | None) -> None:
        """Store (``sealed``: encrypted by the caller) or forget (None) the source's API
        settings, keeping its key version."""
        if sealed is not None and len(sealed) > records.MAX_STRING_PROPERTY_CHARS:
            raise ValueError(f"the API settings of source {source} are too large for one table property")
        now = self._clock().isoformat()
        await self._change_source(tenant_id, source, lambda row: {**row, "Api": sealed or "", "ApiChanged": now})

    async def _change_source(self, tenant_id: str, source: str, change: Callable[[Entity], Entity]) -> Entity:
        """The source's row (its key version and API), changed on its ETag: a change made
        meanwhile (a rotation, the API set) is read again and the change made over it."""
        table = await self._t("sources")
        for _ in range(5):
            row = await table.get(tenant_id, source)
            entity = change(dict(row[0]) if row else {"PartitionKey": tenant_id, "RowKey": source})
            try:
                await (table.replace(entity, row[1]) if row else table.create(entity))
                return entity
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(f"source {source} kept changing")

    # alerts that reached no one (recipient and fallback failed)
    async def record_undeliverable(self, record: Undeliverable) -> None:
        row = hashlib.sha256(f"{record.alert_key}\n{record.recipient}".encode()).hexdigest()[:40]
        await self._schedule(
            "undeliverable", {"t": record.tenant_id, "r": row}, record.recorded + self.retention.undeliverable
        )
        await (await self._t("undeliverable")).upsert(records.undeliverable_to_entity(record, row))

    async def list_undeliverable(self, tenant_id: str, limit: int = 100) -> list[Undeliverable]:
        rows = await (await self._t("undeliverable")).query(partition=tenant_id)
        found = [records.undeliverable_from_entity(entity) for entity, _ in rows]
        found.sort(key=lambda r: r.recorded, reverse=True)
        return found[:limit]

    # claims (a digest period's, a comment's): removed once nothing can post that again
    async def claim(self, delivery: Delivery, keep: timedelta) -> Delivery:
        """Create a claim row (ConcurrencyConflict when it exists), removed ``keep`` after it was made."""
        target = {"t": delivery.tenant_id, "k": delivery.alert_key, "c": delivery.conversation_id}
        await self._schedule("delivery", target, (delivery.claimed_at or self._clock()) + keep)
        return await self.save_delivery(delivery)

    # ------------------------------------------------------------------ removal schedule

    @staticmethod
    def _schedule_row(kind: str, target: dict[str, str], due: datetime, shard_of: str | None = None) -> Entity:
        text = json.dumps(target, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(f"{kind}\n{text}".encode()).hexdigest()
        shard = hashlib.sha256(shard_of.encode()).hexdigest()[0] if shard_of else digest[0]
        return {
            "PartitionKey": f"{due.astimezone(UTC):%Y%m%d%H}|{shard}",
            "RowKey": f"{kind}|{digest[:40]}",
            "Kind": kind,
            "Target": text,
            "Due": due.isoformat(),
        }

    async def _schedule(self, kind: str, target: dict[str, str], due: datetime) -> None:
        await (await self._t("expiry")).upsert(self._schedule_row(kind, target, due))

    async def remove_due(
        self, now: datetime | None = None, max_removals: int = retention.MAX_REMOVALS_PER_RUN
    ) -> RemovalReport:
        """Remove what is due (due in an hour before ``now``'s), at most ``max_removals``
        schedule rows, a page of :data:`retention.REMOVAL_PAGE` at a time. Each row's record is
        checked again first; a row whose record must stay is dropped (a later transition
        schedules it again) or moved to the record's new due time. Idempotent: a run that
        stops half-way leaves rows that the next run finishes."""
        now = now or self._clock()
        report = RemovalReport()
        table = await self._t("expiry")
        below = f"{now.astimezone(UTC):%Y%m%d%H}"
        while report.handled < max_removals:
            page = await table.query(
                partitions_below=below, limit=min(retention.REMOVAL_PAGE, max_removals - report.handled)
            )
            if not page:
                return report
            outcomes = await asyncio.gather(
                *(self._remove_one(entity, now) for entity, _ in page), return_exceptions=True
            )
            done: dict[str, list[str]] = {}
            for (entity, _), outcome in zip(page, outcomes, strict=True):
                report.handled += 1
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome
                    report.failures.append(f"{entity['Kind']} {entity['Target']}: {outcome}")
                    # Looked at again in an hour, so one bad row never blocks the rest.
                    await self._schedule(entity["Kind"], json.loads(entity["Target"]), now + timedelta(hours=1))
                else:
                    verdict, records_done = outcome
                    report.count(entity["Kind"], verdict, records_done)
                    if verdict == "again":
                        continue  # more of the same to do (a large day of rejected events): keep the row
                done.setdefault(entity["PartitionKey"], []).append(entity["RowKey"])
            await asyncio.gather(*(table.delete_many(pk, rks) for pk, rks in done.items()))
        report.more = True
        return report

    async def _remove_one(self, entity: Entity, now: datetime) -> tuple[str, int]:
        """Remove one scheduled record (or a page of a day's or a conversation's): "removed",
        "kept" (it must stay; scheduled again if it becomes due later) or "again" (a page done,
        keep the schedule row), with how many records."""
        kind, target = entity["Kind"], json.loads(entity["Target"])
        if kind == "alert":
            return await self._remove_alert(target, now)
        if kind == "members":
            return await self._sweep_members(target, now)
        if kind == "action":
            action = await self._get_action(target["t"], target["a"])
            if action is not None and action.status == "pending":
                await self._schedule(
                    "action", target, now + retention.PENDING_ACTION_RECHECK
                )  # never dropped unpublished
                return "kept", 1
            await (await self._t("actions")).delete(target["t"], target["a"])
            return "removed", 1
        if kind == "rejected":
            table = await self._t("rejected")
            rows = await table.query(partition=target["day"], limit=retention.REMOVAL_PAGE)
            await table.delete_many(target["day"], [e["RowKey"] for e, _ in rows])
            return ("again" if len(rows) == retention.REMOVAL_PAGE else "removed"), len(rows)
        single: dict[str, tuple[str, Callable[[dict[str, str]], tuple[str, str]]]] = {
            "event": ("events", lambda t: (t["d"][:2], t["d"])),
            "undeliverable": ("undeliverable", lambda t: (t["t"], t["r"])),
            "flow": ("consentflows", lambda t: (connection_records.FLOW_PARTITION, t["f"])),
            "delivery": (
                "deliveries",
                lambda t: (records.delivery_partition(t["t"]), records.delivery_row(t["k"], t["c"])),
            ),
        }
        if kind not in single:
            raise ValueError(f"unknown kind of scheduled removal {kind!r}")
        name, key = single[kind]
        await (await self._t(name)).delete(*key(target))
        return "removed", 1

    async def _remove_alert(self, target: dict[str, str], now: datetime) -> tuple[str, int]:
        """A resolved alert past its retention, with its deliveries, its id index row and its
        alert channel's conversation record; nothing of an alert that is open again."""
        state = await self.get_alert(target["t"], target["k"])
        if state is not None:
            if state.status != "resolved":
                return "kept", 1  # reopened: its next resolution schedules it again
            due = (state.status_changed or now) + self.retention.resolved_alert
            if due > now:
                await self._schedule("alert", target, due)
                return "kept", 1
            assert state.etag is not None
            # The alert first, if unchanged: an event that reopens it now wins.
            await (await self._t("alerts")).delete(
                records.alert_partition(state.tenant_id, state.key), records.ALERT_ROW + state.key, state.etag
            )
            await (await self._t("alertids")).delete(self._id_partition(state.tenant_id, state.alert_id), state.key)
            channel = state.channel or {}
            if channel.get("id"):
                record = await self.get_conversation(state.tenant_id, channel["id"])
                if record is not None and record.alert_key == state.key:
                    await self.remove_conversation(state.tenant_id, channel["id"])
        deliveries = await self._t("deliveries")
        partition = records.delivery_partition(target["t"])
        cards = await deliveries.query(partition=partition, rows=records.delivery_rows(target["k"]))
        await deliveries.delete_many(partition, [e["RowKey"] for e, _ in cards])
        return "removed", 1

    async def _sweep_members(self, target: dict[str, str], now: datetime) -> tuple[str, int]:
        """A conversation's storm-summary members whose alerts are gone or past retention, a
        page at a time (``after``: where the previous page stopped). While members of alerts
        still open or recently resolved remain, the sweep comes back a day later."""
        table = await self._t("summarymembers")
        partition = self._members_partition(target["t"], target["c"])
        after = target.get("after", "")
        # Members are alert keys (40 hex digits): every key after ``after`` sorts at or above after + " ".
        rows = await table.query(
            partition=partition, rows=(after + " ", "~") if after else None, limit=retention.REMOVAL_PAGE
        )
        alerts = await asyncio.gather(*(self.get_alert(target["t"], e["RowKey"]) for e, _ in rows))
        gone = [
            e["RowKey"]
            for (e, _), state in zip(rows, alerts, strict=True)
            if state is None
            or (state.status == "resolved" and (state.status_changed or now) + self.retention.resolved_alert <= now)
        ]
        await table.delete_many(partition, gone)
        if len(rows) == retention.REMOVAL_PAGE:
            await self._schedule(
                "members", {**target, "after": rows[-1][0]["RowKey"]}, now
            )  # the next page, within the hour
        elif len(gone) < len(rows) or after:
            await self._schedule("members", {"t": target["t"], "c": target["c"]}, now + timedelta(days=1))
        return ("removed", len(gone)) if gone else ("kept", 1)

    async def close(self) -> None:
        await self._tables.close()


@dataclass
class RemovalReport:
    """What one :meth:`TableStateStore.remove_due` run did, per kind of record."""

    handled: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    more: bool = False  # stopped at its limit: more is due

    def count(self, kind: str, outcome: str, records: int = 1) -> None:
        bucket = self.kept if outcome == "kept" else self.removed
        bucket[kind] = bucket.get(kind, 0) + records

    def summary(self) -> str:
        def show(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing"

        text = f"removed {show(self.removed)}; kept {show(self.kept)}; {len(self.failures)} failed"
        return text + ("; more is due, the next run goes on" if self.more else "")


def memory_store() -> TableStateStore:
    return TableStateStore(MemoryTables())


class CachedStore:
    """The store, with a tenant's conversations and workflows kept for :attr:`ttl` seconds.

    Every event reads both (the broadcast default and routing); they change rarely. Writes made
    through this object drop the tenant's entries at once; a change made by another instance
    shows within ``ttl`` seconds (docs/ROUTING.md). Everything else goes straight to the
    store."""

    def __init__(self, store: TableStateStore, ttl: float = 10.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self._store = store
        self.ttl = ttl
        self._clock = clock or time.monotonic
        self._conversations: dict[str, tuple[float, list[ConversationRecord]]] = {}
        self._workflows: dict[str, tuple[float, list[Workflow]]] = {}
        self._source_apis: dict[str, tuple[float, list[str | None]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _fresh(self, cache: dict[str, tuple[float, list[T]]], tenant_id: str) -> list[T] | None:
        entry = cache.get(tenant_id)
        return entry[1] if entry is not None and self._clock() - entry[0] < self.ttl else None

    async def list_conversations(self, tenant_id: str | None = None) -> list[ConversationRecord]:
        # None: every tenant's (an event that names no tenant, when DEFAULT_TENANT_ID is unset).
        key = tenant_id if tenant_id is not None else "\x00all"
        found = self._fresh(self._conversations, key)
        if found is None:
            found = await self._store.list_conversations(tenant_id)
            # An empty list is not kept: the bot may have been installed a moment ago (by this
            # instance's other client, or another instance), and "nowhere to post" must not
            # outlive that by the cache's age.
            if found:
                self._conversations[key] = (self._clock(), found)
        return list(found)

    async def list_workflows(self, tenant_id: str) -> list[Workflow]:
        found = self._fresh(self._workflows, tenant_id)
        if found is None:
            found = await self._store.list_workflows(tenant_id)
            self._workflows[tenant_id] = (self._clock(), found)
        return list(found)

    async def get_source_api(self, tenant_id: str, source: str) -> str | None:
        """Read for every Alertmanager or Grafana event (does its card offer Silence?): kept as
        long as the tenant's workflows."""
        key = f"{tenant_id}\n{source}"
        found = self._fresh(self._source_apis, key)
        if found is None:
            found = [await self._store.get_source_api(tenant_id, source)]
            self._source_apis[key] = (self._clock(), found)
        return found[0]

    async def save_source_api(self, tenant_id: str, source: str, sealed: str | None) -> None:
        self._source_apis.pop(f"{tenant_id}\n{source}", None)
        await self._store.save_source_api(tenant_id, source, sealed)

    async def save_conversation(self, record: ConversationRecord) -> None:
        self._conversations.pop(record.tenant_id, None)
        self._conversations.pop("\x00all", None)
        await self._store.save_conversation(record)

    async def remove_conversation(self, tenant_id: str, conversation_id: str) -> None:
        self._conversations.pop(tenant_id, None)
        self._conversations.pop("\x00all", None)
        await self._store.remove_conversation(tenant_id, conversation_id)

    async def save_workflow(self, workflow: Workflow) -> Workflow:
        self._workflows.pop(workflow.tenant_id, None)
        return await self._store.save_workflow(workflow)

    async def delete_workflow(self, tenant_id: str, workflow_id: str) -> None:
        self._workflows.pop(tenant_id, None)
        await self._store.delete_workflow(tenant_id, workflow_id)

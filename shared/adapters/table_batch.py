"""Entity group transactions (Table Storage's ``$batch``), written and read by the connector.

Why not ``TableClient.submit_transaction``: azure-data-tables (12.7) builds and parses a
transaction's multipart bodies with azure-core's generic multipart support, which runs the
standard library's ``email`` package (a generator, a parser and a regular expression compiled
per request). On the development machine that is 1.8 ms of CPU for a transaction of one or two
rows, against 0.6 ms for a single-row request (docs/PERFORMANCE.md), and a card's claim and its
record are each a transaction. So this module writes the request in the documented wire format
and reads the documented answer (Table service REST API, "Performing entity group
transactions"), and sends it through the table client's own pipeline, as the SDK's own
transaction does: the same authentication, retries, transport and API version. The rows are
serialized by the SDK's own entity serializer. The contract tests run every transaction the
store makes against Azurite.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.ports import ConcurrencyConflict

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient


@dataclass(frozen=True)
class Write:
    """One write of a transaction: ``create`` (the row must not exist), ``upsert``, or
    ``replace`` (the row must still have ``etag``)."""

    kind: str
    entity: dict[str, Any]
    etag: str | None = None


_STATUS = re.compile(r"^HTTP/1\.1 (\d{3})")


class TransactionFailed(Exception):
    """The service refused the transaction: nothing of it was written."""

    def __init__(self, status: int, message: str, index: int) -> None:
        super().__init__(message)
        self.status_code = status
        self.index = index


def _key(value: str) -> str:
    # OData key literal: a quote doubled, then percent-encoded into the URL.
    return quote(value.replace("'", "''"), safe="")


def request_body(table_url: str, writes: Sequence[Write], batch: str, changeset: str) -> bytes:
    from azure.data.tables._serialize import _add_entity_properties

    lines = [f"--{batch}", f"Content-Type: multipart/mixed; boundary={changeset}", ""]
    for write in writes:
        kind, entity = write.kind, write.entity
        if kind == "create":
            start = f"POST {table_url} HTTP/1.1"
        elif kind in ("upsert", "replace"):
            keys = f"PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}'"
            start = f"PUT {table_url}({keys}) HTTP/1.1"
        else:
            raise ValueError(f"unknown kind of write {kind!r}")
        lines += [f"--{changeset}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", "", start]
        lines += [
            "Content-Type: application/json",
            "Accept: application/json;odata=minimalmetadata",
            "Prefer: return-no-content",
            "DataServiceVersion: 3.0",
        ]
        if kind == "replace":
            lines.append(f"If-Match: {write.etag}")
        lines += ["", json.dumps(_add_entity_properties(entity), separators=(",", ":"))]
    lines += [f"--{changeset}--", f"--{batch}--", ""]
    return "\r\n".join(lines).encode()


def _parts(body: str) -> list[tuple[int, dict[str, str], str]]:
    """Each answer in the multipart body: its status, headers (lower-case names) and body. An
    answer is "HTTP/1.1 <status> <reason>", its headers, a blank line and its body, which ends
    where the next boundary line (``--...``) begins."""
    parts: list[tuple[int, dict[str, str], str]] = []
    lines = iter(body.splitlines())
    for line in lines:
        status = _STATUS.match(line)
        if not status:
            continue
        headers: dict[str, str] = {}
        for header in lines:
            if not header.strip():
                break
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        content: list[str] = []
        for text in lines:
            if text.startswith("--"):
                break
            content.append(text)
        parts.append((int(status.group(1)), headers, "\n".join(content).strip()))
    return parts


def read_answer(body: str, count: int) -> list[str]:
    """The new ETags of the writes, in order; TransactionFailed when a part failed."""
    parts = _parts(body)
    for status, _headers, content in parts:
        if not 200 <= status < 300:
            message, index = f"Table Storage answered {status}", 0
            try:
                value = json.loads(content)["odata.error"]["message"]["value"]
                message = f"{message}: {value.splitlines()[0]}"
                index = int(value.split(":", 1)[0])
            except (ValueError, KeyError, TypeError):
                pass
            raise TransactionFailed(status, message, index)
    etags = [headers["etag"] for _status, headers, _content in parts if "etag" in headers]
    if len(parts) != count or len(etags) != count:
        raise ValueError(f"a transaction of {count} writes was answered with {len(parts)} parts")
    return etags


async def submit(client: TableClient, writes: Sequence[Write]) -> list[str]:
    """Make the writes (rows of one partition) in one transaction: their new ETags.
    ConcurrencyConflict (with the index of the write) when a condition failed."""
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

    base = f"{client.scheme}://{client._primary_hostname}"
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    request = HttpRequest(
        "POST",
        f"{base}/$batch",
        headers={
            "x-ms-version": client.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=request_body(f"{base}/{client.table_name}", writes, batch, changeset),
    )
    response = await client._client.send_request(request, stream=True)  # as the SDK: no decoding of a multipart answer
    await response.read()
    if response.status_code != 202:
        raise HttpResponseError(response=response)
    try:
        return read_answer(response.text(), len(writes))
    except TransactionFailed as exc:
        if exc.status_code in (404, 409, 412):
            raise ConcurrencyConflict(str(exc), exc.index) from exc
        error = HttpResponseError(message=str(exc))
        error.status_code = exc.status_code
        raise error from exc

"""The Table clients' HTTP transport against Azurite: it looks in the environment for a proxy
(and a netrc file) only when the environment names one, since aiohttp otherwise looks again on
every request, in a worker thread; a proxy named there is used as before."""

from __future__ import annotations

import asyncio

import pytest

from shared.adapters.state_store import AzureTables
from shared.ports import TransientError
from shared.settings import environment_names_a_proxy

pytestmark = pytest.mark.azurite


@pytest.fixture
def plain_environment(monkeypatch, tmp_path):
    """An environment that names no proxy and no netrc file."""
    import os

    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


async def test_without_a_proxy_in_the_environment_no_request_looks_for_one(azurite, table_prefix, plain_environment):
    import aiohttp.client

    looked = []
    real = aiohttp.client.get_env_proxy_for_url

    def counting(url):
        looked.append(url)
        return real(url)

    plain_environment.setattr(aiohttp.client, "get_env_proxy_for_url", counting)
    assert not environment_names_a_proxy()
    tables = AzureTables(connection_string=azurite.connection_string, prefix=table_prefix)
    try:
        table = await tables.table("transport")
        for n in range(5):
            await table.upsert({"PartitionKey": "p", "RowKey": str(n)})
            assert (await table.get("p", str(n))) is not None
    finally:
        await tables.close()
    assert looked == []


async def test_a_proxy_named_in_the_environment_carries_the_requests(azurite, table_prefix, plain_environment):
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())  # the request line, with the absolute URL a proxy gets
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    plain_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    assert environment_names_a_proxy()
    tables = AzureTables(connection_string=azurite.connection_string, prefix=table_prefix)
    try:
        with pytest.raises(TransientError, match="cannot open table"):  # the proxy refuses it
            await tables.table("proxied")
    finally:
        await tables.close()
        server.close()
        await server.wait_closed()
    assert seen and all(line.split()[1].startswith(b"http://127.0.0.1:") for line in seen), seen
    assert any(b"Tables" in line for line in seen), seen


async def test_with_the_root_logger_at_info_as_the_python_worker_sets_it_a_request_logs_nothing(
    azurite, table_prefix, caplog
):
    """The Python worker sends every record at INFO or above to the host (its dispatcher sets
    the root logger to INFO): the app keeps the SDKs' per-request lines out of it."""
    import logging

    import function_app  # noqa: F401 - its logging set-up

    caplog.set_level(logging.INFO)
    tables = AzureTables(connection_string=azurite.connection_string, prefix=table_prefix)
    try:
        table = await tables.table("quiet")
        await table.upsert({"PartitionKey": "p", "RowKey": "r"})
        assert (await table.get("p", "r")) is not None
    finally:
        await tables.close()
    assert [r.getMessage()[:80] for r in caplog.records if r.name.startswith("azure")] == []

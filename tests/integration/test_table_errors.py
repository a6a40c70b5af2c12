"""The Table Storage adapter through the real SDK, against a loopback server answering as Table
Storage does when it is busy or failing: what may succeed later is a TransientError (the
delivery record's retries and Service Bus redelivery rely on it), what will not is raised as is."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.data.tables.aio import TableClient

from shared.adapters.state_store import AzureTable
from shared.ports import TransientError

# Azurite's well-known development account (public: Azurite docs).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def storage_error(status: int, code: str) -> web.Response:
    body = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": f"{code} for this test."}}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


@pytest.fixture
async def answering():
    """Start a server answering every request with the given status and Storage error code."""
    runners: list[web.AppRunner] = []
    clients: list[TableClient] = []

    async def start(status: int, code: str) -> AzureTable:
        async def handler(request: web.Request) -> web.Response:
            return storage_error(status, code)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        client = TableClient(
            endpoint=f"http://127.0.0.1:{port}/{ACCOUNT}",
            table_name="alerts",
            credential=AzureNamedKeyCredential(ACCOUNT, KEY),
            retry_total=0,  # the SDK's own retries are not under test
        )
        clients.append(client)
        return AzureTable(client, "alerts")

    yield start
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize("status, code", [(500, "InternalError"), (503, "ServerBusy"), (500, "OperationTimedOut")])
async def test_a_busy_or_failing_table_is_transient(answering, status, code):
    table = await answering(status, code)
    with pytest.raises(TransientError, match=f"answered {status}"):
        await table.get("pk", "rk")
    with pytest.raises(TransientError):
        await table.query(limit=1)


async def test_a_refused_request_is_not_transient(answering):
    table = await answering(403, "AuthorizationFailure")
    with pytest.raises(HttpResponseError) as refused:
        await table.get("pk", "rk")
    assert not isinstance(refused.value, TransientError)

"""POST /api/events/{format}: webhooks from alert sources, checked at the door, queued, and
turned into cards by the queue trigger."""

from __future__ import annotations

import json
from pathlib import Path

import azure.functions as func
import pytest

from shared import bootstrap
from shared.security import ingest_key, tenant_admin_key
from tests.e2e.conftest import TENANT_ID
from tests.e2e.test_alert_flow import cards, example, install
from tests.support.app import deliver, functions

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "ingest-tests-admin-key-0123456789abcdef"
SOURCE = "prod-alertmanager"


@pytest.fixture
async def ingesting(connector, queue_sink, monkeypatch):
    monkeypatch.setenv("ADMIN_API_KEY", ADMIN_KEY)
    await bootstrap.reset()
    queue_sink.messages.clear()
    yield connector


def post(
    fmt: str,
    body: bytes | dict,
    *,
    key: str | None = None,
    tenant: str = TENANT_ID,
    source: str = SOURCE,
    header: bool = True,
) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = ingest_key(ADMIN_KEY, tenant, source) if key is None else key
    params = {"tenant": tenant, "source": source} | ({} if header else {"key": key})
    headers = {"Content-Type": "application/json"} | ({"X-Ingest-Key": key} if header else {})
    return func.HttpRequest(
        "POST",
        f"http://localhost:7071/api/events/{fmt}",
        headers=headers,
        params=params,
        route_params={"format": fmt},
        body=raw,
    )


async def call(req: func.HttpRequest) -> tuple[int, dict]:
    response = await functions()["ingest"](req)
    return response.status_code, json.loads(response.get_body() or b"{}")


async def run_queued(queue_sink) -> None:
    """What the alert-events trigger does with the queued messages."""
    queued = [(mid, body) for queue, mid, body in queue_sink.messages if queue == "alert-events"]
    for message_id, body in queued:
        await deliver(body, message_id)


def alertmanager_payload() -> dict:
    return json.loads((ROOT / "tests/golden/alertmanager/firing-node-filesystem-group.json").read_text())


def azure_monitor_payload() -> dict:
    return json.loads((ROOT / "tests/golden/azure-monitor/metric-dynamic-fired.json").read_text())


def pagerduty_payload() -> dict:
    return json.loads((ROOT / "tests/golden/pagerduty/incident-triggered-2025.json").read_text())


def grafana_payload() -> dict:
    return json.loads((ROOT / "tests/golden/grafana/firing-docs-example.json").read_text())


class TestIngest:
    @pytest.mark.parametrize(
        "fmt, payload, header",
        [
            ("cloudevents", lambda: example("alert-created.json"), True),
            ("alertmanager", alertmanager_payload, False),  # Alertmanager sends the key in the URL
            ("grafana", grafana_payload, True),
            ("azure-monitor", azure_monitor_payload, True),
            ("pagerduty", pagerduty_payload, True),
        ],
    )
    async def test_a_webhook_becomes_cards(self, ingesting, queue_sink, fmt, payload, header):
        sim = ingesting
        channel = await install(sim, "channel")
        status, body = await call(post(fmt, payload(), header=header))
        assert status == 202 and body["status"] == "queued" and body["eventIds"]
        queued = [m for m in queue_sink.messages if m[0] == "alert-events"]
        assert len(queued) == len(body["eventIds"]) and all(m[2]["tenantid"] == TENANT_ID for m in queued)
        await run_queued(queue_sink)
        assert len(cards(sim, channel)) == len(body["eventIds"])

    async def test_refusals_say_why_and_queue_nothing(self, ingesting, queue_sink):
        good = example("alert-created.json")
        assert (await call(post("cloudevents", good, key="not-the-key")))[0] == 401
        assert (await call(post("cloudevents", good, key=ingest_key(ADMIN_KEY, TENANT_ID, "another-source"))))[0] == 401
        status, body = await call(post("cloudevents", {**good, "data": {**good["data"], "severity": "severe"}}))
        assert status == 400 and body["field"] == "data.severity"
        status, body = await call(post("alertmanager", good))
        assert status == 400 and body["field"] == "version"  # a CloudEvent is not an Alertmanager payload
        status, body = await call(post("cloudevents", {**good, "tenantid": "0b5d2c1a-0000-4000-8000-0000000000b2"}))
        assert status == 400 and body["field"] == "tenantid"  # a source posts only to its own tenant
        status, _ = await call(post("cloudevents", b"{" + b" " * 300_000 + b"}"))
        assert status == 413
        assert (await call(post("nagios", good)))[0] == 404
        assert (await call(post("cloudevents", good, tenant="not-a-tenant")))[0] == 400
        assert [m for m in queue_sink.messages if m[0] == "alert-events"] == []

    async def test_the_tenant_admin_gets_the_source_key_and_urls(self, ingesting):
        req = func.HttpRequest(
            "GET",
            "http://localhost:7071/api/tenants/x/sources/prod-alertmanager",
            headers={"X-Admin-Key": tenant_admin_key(ADMIN_KEY, TENANT_ID)},
            route_params={"tenant_id": TENANT_ID, "source": SOURCE},
            body=b"",
        )
        response = await functions()["ingest_source"](req)
        body = json.loads(response.get_body())
        assert response.status_code == 200 and body["key"] == ingest_key(ADMIN_KEY, TENANT_ID, SOURCE)
        assert (
            set(body["urls"]) == {"cloudevents", "alertmanager", "grafana", "azure-monitor", "pagerduty"}
            and f"tenant={TENANT_ID}" in body["urls"]["alertmanager"]
        )

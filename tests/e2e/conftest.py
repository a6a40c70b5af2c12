"""The connector wired to real local parts: Azurite and the Teams simulator."""

from __future__ import annotations

import pytest

from shared import bootstrap

BOT_APP_ID = "6a3a1f0e-1b2c-4d5e-8f90-a1b2c3d4e5f6"
BOT_SECRET = "simulator-only-secret"
TENANT_ID = "72f988bf-0000-4000-8000-00000000a1e7"


@pytest.fixture(scope="session")
def simulator():
    from tools.teams_simulator import TeamsSimulator

    sim = TeamsSimulator().start()
    sim.register_bot(BOT_APP_ID, BOT_SECRET)
    yield sim
    sim.stop()


@pytest.fixture
async def connector(simulator, azurite, table_prefix, queue_sink, monkeypatch):
    """Settings as a deployment would have them, pointed at the local parts; the app's queues
    (deliveries, commands, actions) are the recording queue sink."""
    from tests.support import app

    queue_sink.messages.clear()
    queue_sink.jobs.clear()
    queue_sink.job_ids.clear()
    queue_sink.fail_next = 0
    app.SINK = queue_sink
    app.CLOCK = app.TestClock()
    bootstrap.use_time(app.CLOCK, app.CLOCK.sleep)
    simulator.reset()
    simulator.register_bot(BOT_APP_ID, BOT_SECRET)
    env = {
        "STATE_TABLES_CONNECTION": azurite.connection_string,
        "STATE_TABLE_PREFIX": table_prefix,
        "BOT_APP_ID": BOT_APP_ID,
        "BOT_APP_PASSWORD": BOT_SECRET,
        "BOT_TENANT_ID": TENANT_ID,
        "BOT_OPENID_METADATA_URL": simulator.openid_metadata_url,
        "BOT_TOKEN_URL": simulator.token_url(),
        "REMINDER_AFTER_MINUTES": "30",
        "LOCAL_QUEUE_HOST_URL": queue_sink.url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DANGEROUSLY_ALLOW_UNAUTHENTICATED_BOT_REQUESTS", raising=False)
    await bootstrap.reset()
    yield simulator
    await bootstrap.reset()
    bootstrap.use_time(None)


@pytest.fixture(scope="session")
def queue_sink():
    from tests.support.queue_sink import QueueSink

    sink = QueueSink().start()
    yield sink
    sink.stop()


@pytest.fixture
async def acting_connector(connector, queue_sink, monkeypatch):
    """The connector with its outbound actions going to a recording queue."""
    queue_sink.messages.clear()
    queue_sink.fail_next = 0
    monkeypatch.setenv("LOCAL_QUEUE_HOST_URL", queue_sink.url)
    await bootstrap.reset()
    yield connector

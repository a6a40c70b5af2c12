"""The composition root (shared/bootstrap.py): a typed container built from settings, with any
part replaced by a fake or a local part, and no environment variables involved."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared import bootstrap, ports
from shared.adapters.state_store import CachedStore, MemoryTables, TableStateStore
from shared.bootstrap import Overrides, Time
from shared.settings import load_settings
from tests.support.fakes import (
    Clock,
    FakeDirectory,
    MemoryJobQueue,
    RecordingBot,
    RecordingMessenger,
    RecordingPublisher,
    conversation,
)

ROOT = Path(__file__).resolve().parents[2]
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
SETTINGS = load_settings(
    {
        "STATE_TABLES_CONNECTION": "UseDevelopmentStorage=true",
        "LOCAL_DEVELOPMENT": "true",
        "DEFAULT_TENANT_ID": TENANT,
        "BOT_APP_ID": "11111111-2222-3333-4444-555555555555",
        "BOT_APP_PASSWORD": "local",
        "BOT_TENANT_ID": TENANT,
    }
)


class RecordingSleep:
    def __init__(self, clock: Clock) -> None:
        self.clock, self.waits = clock, []

    async def __call__(self, seconds: float) -> None:
        from datetime import timedelta

        self.waits.append(seconds)
        self.clock.now += timedelta(seconds=seconds)


@pytest.fixture
def parts():
    clock = Clock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    return Overrides(
        store=TableStateStore(MemoryTables(), clock=clock),
        bot=RecordingBot(),
        directory=FakeDirectory(),
        publisher=RecordingPublisher(),
        commands=RecordingPublisher(),
        jobs=MemoryJobQueue(),
        time=Time(clock, RecordingSleep(clock)),
    )


class TestBuiltFromParts:
    async def test_every_given_part_is_used_and_nothing_else_is_built(self, parts):
        c = bootstrap.bootstrap(SETTINGS, overrides=parts)
        assert (c.store, c.bot, c.publisher, c.commands, c.jobs, c.time) == (
            parts.store,
            parts.bot,
            parts.publisher,
            parts.commands,
            parts.jobs,
            parts.time,
        )
        assert c.graph() is parts.directory and c.connect is None and c.messenger is parts.bot
        delivering = bootstrap.delivering(c)
        assert delivering.jobs is parts.jobs and delivering.clock is parts.time.clock

    async def test_an_alert_goes_from_event_to_card_through_the_containers_parts(self, parts):
        from shared.services.processing import process_message

        c = bootstrap.bootstrap(SETTINGS, overrides=parts)
        await c.store.save_conversation(conversation(TENANT))
        body = (ROOT / "examples" / "alert-created.json").read_bytes()
        delivering = bootstrap.delivering(c)
        [outcome] = await process_message(body, "m-1", delivering, default_tenant_id=TENANT)
        assert outcome.result == "processed", outcome
        await parts.jobs.drain(delivering)
        [card] = parts.bot.cards_in(conversation().conversation_id)
        assert json.loads(json.dumps(card.card))["type"] == "AdaptiveCard"

    async def test_a_button_press_uses_the_containers_clock_publisher_and_graph(self, parts):
        c = bootstrap.bootstrap(SETTINGS, overrides=parts)
        ctx = await bootstrap.action_context(c, TENANT)
        assert ctx.publisher is parts.publisher and ctx.clock is parts.time.clock
        assert ctx.directory is None  # Graph only for a connected tenant

    async def test_close_closes_the_parts(self, parts):
        c = bootstrap.bootstrap(SETTINGS, overrides=parts)
        await c.close()
        assert parts.bot.closed


class TestBuiltFromSettings:
    def test_without_overrides_the_azure_parts_are_chosen_and_nothing_heavy_is_built_yet(self):
        c = bootstrap.bootstrap(SETTINGS)
        assert isinstance(c.store, CachedStore) and c.publisher is None and c.jobs is None and c.graph() is None
        assert type(c.bot).__name__ == "_LazyBot" and c.bot._bot is None  # botbuilder not imported by building


def _methods(protocol: type) -> dict[str, inspect.Signature]:
    names = {
        n
        for klass in protocol.__mro__
        if klass not in (object,) and getattr(klass, "_is_protocol", False)
        for n, v in vars(klass).items()
        if inspect.isfunction(v) and not n.startswith("_")
    }
    return {n: inspect.signature(getattr(protocol, n)) for n in names}


@pytest.mark.parametrize(
    ("fake", "port"),
    [
        (RecordingMessenger, ports.TeamsMessenger),
        (RecordingBot, ports.Bot),
        (FakeDirectory, ports.Directory),
        (RecordingPublisher, ports.ActionPublisher),
        (MemoryJobQueue, ports.JobQueue),
        (TableStateStore, ports.StateStore),
        (CachedStore(TableStateStore(MemoryTables())), ports.StateStore),  # forwards what it does not cache
    ],
    ids=lambda x: getattr(x, "__name__", type(x).__name__),
)
def test_every_fake_and_store_implements_its_whole_port(fake, port):
    """Each method of the port exists with the port's parameter names (a fake that drifts from
    its port would let a service call something the real adapter does not have)."""
    for name, wanted in _methods(port).items():
        assert hasattr(fake, name), f"{getattr(fake, '__name__', fake)} lacks {port.__name__}.{name}"
        have = inspect.signature(getattr(fake, name))
        expected = [p for p in wanted.parameters if p != "self"]
        assert [p for p in have.parameters if p != "self"][: len(expected)] == expected, (
            f"{name}{have} differs from {port.__name__}.{name}{wanted}"
        )

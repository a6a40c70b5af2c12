"""The per-instance cache of conversations and workflows: every event reads both."""

from __future__ import annotations

from dataclasses import replace

from shared.adapters.state_store import CachedStore, MemoryTables, TableStateStore
from tests.support.fakes import conversation


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def cached() -> tuple[CachedStore, MemoryTables, Ticks]:
    tables, ticks = MemoryTables(), Ticks()
    store = CachedStore(TableStateStore(tables), ttl=10.0, clock=ticks)
    await store.save_conversation(conversation("aaaaaaaa-0000-4000-8000-00000000000a", "19:a@thread.tacv2"))
    await store.save_conversation(conversation("bbbbbbbb-0000-4000-8000-00000000000b", "19:b@thread.tacv2"))
    return store, tables, ticks


class TestCachedStore:
    async def test_a_tenants_conversations_are_read_once_per_ttl(self):
        store, tables, ticks = await cached()
        await store.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a")
        before = tables.counter.requests
        assert [c.conversation_id for c in await store.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a")] == [
            "19:a@thread.tacv2"
        ]
        assert tables.counter.requests == before
        ticks.now = 10.5
        await store.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a")
        assert tables.counter.requests == before + 1

    async def test_every_tenants_conversations_are_cached_too_and_a_write_drops_them(self):
        store, tables, _ = await cached()
        assert len(await store.list_conversations()) == 2
        before = tables.counter.requests
        await store.list_conversations()
        assert tables.counter.requests == before
        await store.save_conversation(conversation("cccccccc-0000-4000-8000-00000000000c", "19:c@thread.tacv2"))
        assert len(await store.list_conversations()) == 3

    async def test_a_removed_conversation_is_gone_from_the_cache_at_once(self):
        store, _, _ = await cached()
        await store.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a")
        await store.remove_conversation("aaaaaaaa-0000-4000-8000-00000000000a", "19:a@thread.tacv2")
        assert await store.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a") == []
        await store.save_conversation(
            replace(conversation("aaaaaaaa-0000-4000-8000-00000000000a", "19:a@thread.tacv2"), name="Back")
        )
        assert [c.name for c in await store.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a")] == ["Back"]

    async def test_nowhere_to_post_is_not_remembered(self):
        """An empty list would make an event that names no tenant "nowhere to post" (rejected) for
        the cache's age after the bot was installed through another instance."""
        tables, ticks = MemoryTables(), Ticks()
        this, other = (CachedStore(TableStateStore(tables), ttl=10.0, clock=ticks) for _ in range(2))
        assert (
            await this.list_conversations() == []
            and await this.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a") == []
        )
        await other.save_conversation(conversation("aaaaaaaa-0000-4000-8000-00000000000a", "19:a@thread.tacv2"))
        assert (
            len(await this.list_conversations()) == 1
            and len(await this.list_conversations("aaaaaaaa-0000-4000-8000-00000000000a")) == 1
        )

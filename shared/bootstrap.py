"""The composition root: builds the adapters from settings on first use, once per process.

Heavy SDKs (botbuilder, azure-data-tables, azure-identity) are imported here, inside the
builders, never at module import: cold start on a consumption plan pays only for what the
first trigger needs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from shared.settings import Settings, load_settings


@dataclass
class Container:
    settings: Settings
    store: Any  # shared.ports.StateStore
    bot: Any  # shared.adapters.teams_bot.TeamsBot (also the TeamsMessenger)

    @property
    def messenger(self) -> Any:
        return self.bot


_container: Container | None = None
_lock: asyncio.Lock | None = None


def build_store(settings: Settings) -> Any:
    from shared.adapters.state_store import AzureTables, TableStateStore

    if settings.tables_connection:
        tables = AzureTables(connection_string=settings.tables_connection, prefix=settings.table_prefix)
    else:
        from azure.identity.aio import ManagedIdentityCredential

        credential = ManagedIdentityCredential(client_id=settings.managed_identity_client_id) if settings.managed_identity_client_id else ManagedIdentityCredential()
        tables = AzureTables(endpoint=settings.tables_endpoint, credential=credential, prefix=settings.table_prefix)
    return TableStateStore(tables)


class _LazyBot:
    """Builds the botbuilder adapter on first use: a timer or queue run that sends nothing
    never pays for importing botbuilder."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._bot: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._bot is None:
            from shared.adapters.teams_bot import TeamsBot

            self._bot = TeamsBot(self._settings)
        return getattr(self._bot, name)


async def container() -> Container:
    """The process-wide container, built on first call."""
    global _container, _lock
    if _container is not None:
        return _container
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _container is None:
            settings = load_settings()
            _container = Container(settings=settings, store=build_store(settings), bot=_LazyBot(settings))
    return _container


async def reset() -> None:
    """Forget the container (tests change settings between cases)."""
    global _container, _lock
    if _container is not None:
        await _container.store.close()
    _container = None
    _lock = None

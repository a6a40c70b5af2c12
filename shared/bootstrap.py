"""The composition root: builds the adapters from settings on first use, once per process.

Heavy SDKs (botbuilder, azure-data-tables, azure-identity) are imported here, inside the
builders, never at module import: cold start on a consumption plan pays only for what the
first trigger needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.resilience import real_sleep
from shared.settings import Settings, SettingsError, load_settings


@dataclass
class Container:
    settings: Settings
    store: Any  # shared.ports.StateStore
    bot: Any  # shared.adapters.teams_bot.TeamsBot (also the TeamsMessenger)
    connect: Any = None  # _LazyConnect: consent flows and Graph (None while GRAPH_APP_ID is unset)
    publisher: Any = None  # shared.ports.ActionPublisher, built on first use by action_context()
    commands: Any = None  # the same kind of publisher, to the alert-events queue (commands)
    jobs: Any = None  # shared.ports.JobQueue: the deliveries queue, built on first use
    tenant_rate: Any = None  # shared.services.delivery.TenantBudget: this process's share of each tenant's budget

    @property
    def messenger(self) -> Any:
        return self.connect.messenger(self.bot) if self.connect is not None else self.bot


_container: Container | None = None
_lock: asyncio.Lock | None = None
# Tests drive the app's clock and waits (delivery pacing, Retry-After, schedules) with these;
# None: the real ones.
_time: tuple[Callable[[], datetime], Callable[[float], Awaitable[None]]] | None = None


def _now_utc() -> datetime:

    return datetime.now(UTC)


def clock() -> datetime:
    """The app's current time (a test's clock when one is set)."""
    return _time[0]() if _time is not None else _now_utc()


def sleep() -> Callable[[float], Awaitable[None]]:
    """The app's sleep: a test's when one is set (nothing then waits in real time)."""
    return _time[1] if _time is not None else real_sleep


def use_time(clock: Callable[[], datetime] | None, sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
    """Tests: the clock and the sleep the app's delivery uses (None: the real ones)."""
    global _time
    _time = (clock, sleep or asyncio.sleep) if clock is not None else None


def build_store(settings: Settings) -> Any:
    from shared.adapters.state_store import AzureTables, CachedStore, TableStateStore

    if settings.tables_connection:
        tables = AzureTables(connection_string=settings.tables_connection, prefix=settings.table_prefix)
    else:
        from azure.identity.aio import ManagedIdentityCredential

        credential = (
            ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
            if settings.managed_identity_client_id
            else ManagedIdentityCredential()
        )
        tables = AzureTables(endpoint=settings.tables_endpoint, credential=credential, prefix=settings.table_prefix)
    return CachedStore(TableStateStore(tables, settings.retention, clock=lambda: clock()))


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

    async def close(self) -> None:
        if self._bot is not None:
            await self._bot.close()


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
            store = build_store(settings)
            connect = _LazyConnect(settings, store) if settings.graph is not None else None
            _container = Container(settings=settings, store=store, bot=_LazyBot(settings), connect=connect)
    return _container


async def reset() -> None:
    """Forget the container (tests change settings between cases)."""
    global _container, _lock
    if _container is not None:
        if _container.connect is not None:
            await _container.connect.close()
        await _container.bot.close()
        for closable in (_container.jobs, _container.commands, _container.publisher):
            if closable is not None:
                await closable.close()
        await _container.store.close()
    _container = None
    _lock = None


class _LazyConnect:
    """Consent flows, MSAL and the Graph helper, each built on first use: msgraph and msal are
    imported only by a run that needs them."""

    def __init__(self, settings: Settings, store: Any) -> None:
        assert settings.graph is not None
        self._settings = settings
        self._graph = settings.graph
        self._store = store
        self._directory: Any = None
        self._identity: Any = None
        self._messenger: Any = None

    @property
    def cipher(self) -> Any:
        from shared.security import TokenCipher

        return TokenCipher.from_setting(self._graph.token_encryption_key)

    @property
    def identity(self) -> Any:
        if self._identity is None:
            from shared.adapters.identity import IdentityConfig, MsalIdentity

            g = self._graph
            self._identity = MsalIdentity(
                IdentityConfig(
                    app_id=g.app_id,
                    authority_host=g.authority_host,
                    redirect_uri=g.redirect_uri,
                    credential_type=g.credential_type,
                    client_secret=g.client_secret,
                    certificate_path=g.certificate_path,
                    managed_identity_client_id=g.managed_identity_client_id,
                    ca_file=g.local_ca_cert_file,
                )
            )
        return self._identity

    @property
    def directory(self) -> Any:
        """The Graph helper (shared.adapters.graph.GraphDirectory) for every tenant."""
        if self._directory is None:
            from shared.adapters.graph import GraphConfig, GraphDirectory
            from shared.adapters.identity import DelegatedTokens
            from shared.services.consent import mark_needs_reconsent

            g = self._graph
            store = self._store

            async def mode_for(tenant_id: str) -> str:
                connector = await store.get_connector(tenant_id)
                return "delegated" if connector is not None and connector.method == "delegated" else "app"

            async def on_reconsent(tenant_id: str, reason: str) -> None:
                await mark_needs_reconsent(store, tenant_id, reason)

            self._directory = GraphDirectory(
                GraphConfig(
                    base_url=g.base_url,
                    authority_host=g.authority_host,
                    app_id=g.app_id,
                    credential_type=g.credential_type,
                    client_secret=g.client_secret,
                    certificate_path=g.certificate_path,
                    managed_identity_client_id=g.managed_identity_client_id,
                    ca_file=g.local_ca_cert_file,
                ),
                mode_for=mode_for,
                delegated_tokens=DelegatedTokens(self.identity, store, self.cipher, on_reconsent),
                sleep=sleep(),
            )
        return self._directory

    @property
    def consent(self) -> Any:
        from shared.security import StateSigner
        from shared.services.consent import ConsentService

        return ConsentService(
            store=self._store,
            signer=StateSigner(self._graph.state_signing_key),
            cipher=self.cipher,
            identity=self.identity,
            directory=self.directory,
            app_id=self._graph.app_id,
            authority_host=self._graph.authority_host,
            redirect_uri=self._graph.redirect_uri,
        )

    def messenger(self, bot: Any) -> Any:
        if self._messenger is None:
            from shared.adapters.delegated_messenger import GraphMessenger, RoutingMessenger

            self._messenger = RoutingMessenger(bot, GraphMessenger(lambda: self.directory, self._store))
        return self._messenger

    async def close(self) -> None:
        if self._directory is not None:
            await self._directory.close()
        if self._identity is not None:
            self._identity.close()


def build_publisher(settings: Settings, queue: str | None = None) -> Any:
    """Where actions go back to the source (or, with ``queue``, where commands are queued):
    Service Bus in Azure, the local host's queue locally."""
    from shared.adapters.outbound import LocalQueuePublisher, ServiceBusPublisher

    queue = queue or settings.teams_actions_queue
    if settings.service_bus_namespace:
        return ServiceBusPublisher(settings.service_bus_namespace, queue, settings.managed_identity_client_id)
    if settings.local_queue_host_url:
        return LocalQueuePublisher(settings.local_queue_host_url, queue)
    return None


def command_queue(c: Container) -> Any:
    """The publisher to the alert-events queue, for commands the connector gives itself."""
    if c.commands is None:
        c.commands = build_publisher(c.settings, c.settings.alert_events_queue)
    return c.commands


class _LazyDirectory:
    """The Graph helper, built (and msgraph imported) only when a recipient needs Graph."""

    def __init__(self, connect: _LazyConnect) -> None:
        self._connect = connect

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connect.directory, name)


def queue_probes(settings: Settings) -> list[Any]:
    """What the deep health check reads of each queue (depth, dead letters): the events and
    deliveries queues, which the app consumes (the actions queue's consumers are the sources')."""
    from shared.adapters.queue_probe import LocalQueueProbe, ServiceBusQueueProbe

    queues = (settings.alert_events_queue, settings.delivery_queue)
    if settings.service_bus_namespace:
        return [
            ServiceBusQueueProbe(settings.service_bus_namespace, q, settings.managed_identity_client_id) for q in queues
        ]
    if settings.local_queue_host_url:
        return [LocalQueueProbe(settings.local_queue_host_url, q) for q in queues]
    return []


def build_job_queue(settings: Settings) -> Any:
    """The deliveries queue: Service Bus in Azure, the local host's queue locally."""
    from shared.adapters.job_queue import LocalJobQueue, ServiceBusJobQueue

    if settings.service_bus_namespace:
        return ServiceBusJobQueue(
            settings.service_bus_namespace, settings.delivery_queue, settings.managed_identity_client_id
        )
    if settings.local_queue_host_url:
        return LocalJobQueue(settings.local_queue_host_url, settings.delivery_queue)
    raise SettingsError(
        "no deliveries queue: set ServiceBusConnection__fullyQualifiedNamespace (in Azure) or LOCAL_QUEUE_HOST_URL (locally) "
        f"so alerts can be delivered through the {settings.delivery_queue} queue"
    )


def delivering(c: Container) -> Any:
    """What delivering an alert needs: the store, the deliveries queue, the messenger, the
    recipient resolver and this process's share of the tenants' send budgets."""
    from shared.services.delivery import TenantBudget
    from shared.services.events import Delivering
    from shared.services.recipients import RecipientResolver

    if c.jobs is None:
        c.jobs = build_job_queue(c.settings)
    if c.tenant_rate is None:
        import os
        import uuid

        # One holder id per process: slots leased by this process are its own.
        instance = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        c.tenant_rate = TenantBudget(
            c.store, c.settings.tenant_sends_per_second, instance, clock=_time[0] if _time else _now_utc
        )
    resolver = RecipientResolver(
        c.store,
        directory=_LazyDirectory(c.connect) if c.connect is not None else None,
        teams_app_catalog_id=c.settings.teams_app_catalog_id,
        bot_app_id=c.settings.bot_app_id or "",
    )
    if _time is not None:
        clock, sleep = _time
        resolver.clock = clock
        return Delivering(c.store, c.messenger, c.jobs, resolver, clock=clock, tenant_rate=c.tenant_rate, sleep=sleep)
    return Delivering(c.store, c.messenger, c.jobs, resolver, tenant_rate=c.tenant_rate)


async def action_context(c: Container, tenant_id: str | None) -> Any:
    """What the card actions and commands need. Graph is offered only for a tenant whose
    connection is up: an unconnected tenant gets no membership checks, channels or meetings."""
    from shared.services.actions import ActionContext

    if c.publisher is None:
        c.publisher = build_publisher(c.settings)
    directory = None
    if c.connect is not None and tenant_id:
        connector = await c.store.get_connector(tenant_id)
        if connector is not None and connector.status == "connected":
            directory = c.connect.directory
    s = c.settings
    return ActionContext(
        store=c.store,
        messenger=c.messenger,
        publisher=c.publisher,
        directory=directory,
        require_linked_account=s.require_linked_account,
        channel_team_id=s.alert_channel_team_id,
        channel_name_template=s.alert_channel_name_template,
        meeting_organizer=s.meeting_organizer,
        connector_admins=s.connector_admins,
        delivering=delivering(c),
    )

"""The composition root: builds the adapters from settings on first use, once per process.

Heavy SDKs (botbuilder, azure-data-tables, azure-identity) are imported here, inside the
builders, never at module import: cold start on a consumption plan pays only for what the
first trigger needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.ports import ActionPublisher, Bot, Directory, JobQueue, StateStore, TeamsMessenger
from shared.resilience import Sleep, real_sleep
from shared.settings import Settings, SettingsError, load_settings, unresolved_message

if TYPE_CHECKING:
    from shared.services.actions import ActionContext
    from shared.services.delivery import TenantBudget
    from shared.services.processing import Delivering


@dataclass(frozen=True)
class Time:
    """The app's clock and sleep. Tests pass their own: nothing then waits in real time, and
    pacing, Retry-After and schedules follow the test's clock."""

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Sleep = real_sleep


@dataclass(frozen=True)
class Overrides:
    """Parts given to :func:`bootstrap` instead of being built from the settings: a test's
    fakes or local parts. Anything left None is built as in Azure."""

    store: StateStore | None = None
    bot: Bot | None = None
    # Microsoft Graph for every tenant (otherwise Graph is built when GRAPH_APP_ID is set).
    directory: Directory | None = None
    publisher: ActionPublisher | None = None
    commands: ActionPublisher | None = None
    jobs: JobQueue | None = None
    time: Time | None = None


NO_OVERRIDES = Overrides()


@dataclass
class Container:
    """What the entry points use, built by :func:`bootstrap`. The queues' publishers and the
    Graph parts are built on first use (:func:`publisher`, :func:`command_queue`,
    :func:`delivering`), so a run pays only for what it touches."""

    settings: Settings
    store: StateStore
    bot: Bot
    time: Time
    connect: _LazyConnect | None = None  # consent flows and Graph (None while GRAPH_APP_ID is unset)
    directory: Directory | None = None  # Graph given by the caller (Overrides.directory)
    publisher: ActionPublisher | None = None  # back to the source; built on first use
    commands: ActionPublisher | None = None  # the alert-events queue (commands); built on first use
    source_cipher: Any = None  # the sources' API settings' cipher; made on first use (source_cipher)
    jobs: JobQueue | None = None  # the deliveries queue; built on first use
    tenant_rate: TenantBudget | None = None  # this process's share of each tenant's budget

    @property
    def messenger(self) -> TeamsMessenger:
        return self.connect.messenger(self.bot) if self.connect is not None else self.bot

    def graph(self) -> Directory | None:
        """Microsoft Graph, when the connector has it (given, or GRAPH_APP_ID set)."""
        if self.directory is not None:
            return self.directory
        return self.connect.directory if self.connect is not None else None

    async def close(self) -> None:
        if self.connect is not None:
            await self.connect.close()
        await self.bot.close()
        for closable in (self.jobs, self.commands, self.publisher):
            if closable is not None:
                await closable.close()
        await self.store.close()


def bootstrap(settings: Settings, *, overrides: Overrides = NO_OVERRIDES) -> Container:
    """The composition root: the container for ``settings``, with ``overrides`` in place of the
    parts built from them. Nothing heavy is imported until a part is first used."""
    time = overrides.time or Time()
    store = overrides.store if overrides.store is not None else build_store(settings, time)
    connect = (
        _LazyConnect(settings, store, time) if settings.graph is not None and overrides.directory is None else None
    )
    return Container(
        settings=settings,
        store=store,
        bot=overrides.bot if overrides.bot is not None else _LazyBot(settings),
        time=time,
        connect=connect,
        directory=overrides.directory,
        publisher=overrides.publisher,
        commands=overrides.commands,
        jobs=overrides.jobs,
    )


_container: Container | None = None
_lock: asyncio.Lock | None = None
# The process's overrides (tests, the local host): what container() builds with.
_overrides: Overrides = NO_OVERRIDES


def use(overrides: Overrides | None) -> None:
    """The overrides the process-wide :func:`container` is built with from now on (None: none).
    Call :func:`reset` for a container built before to be rebuilt."""
    global _overrides
    _overrides = overrides or NO_OVERRIDES


def use_time(clock: Callable[[], datetime] | None, sleep: Sleep | None = None) -> None:
    """Tests: the app's clock and sleep (None: the real ones)."""
    use(replace(_overrides, time=Time(clock, sleep or real_sleep) if clock is not None else None))


def clock() -> datetime:
    """The app's current time (a test's clock when one is set)."""
    return (_overrides.time or Time()).clock()


def sleep() -> Sleep:
    """The app's sleep: a test's when one is set."""
    return (_overrides.time or Time()).sleep


def build_store(settings: Settings, time: Time | None = None) -> StateStore:
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
    return CachedStore(TableStateStore(tables, settings.retention, clock=(time or Time()).clock))


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
    """The process-wide container (settings from the environment, the overrides of :func:`use`),
    built on first call."""
    global _container, _lock
    if _container is not None:
        return _container
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _container is None:
            settings = load_settings()
            if settings.unresolved:
                logging.getLogger(__name__).warning("Settings: %s", unresolved_message(settings.unresolved))
            _container = bootstrap(settings, overrides=_overrides)
    return _container


async def reset() -> None:
    """Close and forget the process-wide container (tests change settings between cases)."""
    global _container, _lock
    if _container is not None:
        await _container.close()
    _container = None
    _lock = None


class _LazyConnect:
    """Consent flows, MSAL and the Graph helper, each built on first use: msgraph and msal are
    imported only by a run that needs them."""

    def __init__(self, settings: Settings, store: StateStore, time: Time) -> None:
        assert settings.graph is not None
        self._settings = settings
        self._graph = settings.graph
        self._store = store
        self._time = time
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
                connection = await store.get_connection(tenant_id)
                return "delegated" if connection is not None and connection.method == "delegated" else "app"

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
                sleep=self._time.sleep,
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


def build_publisher(settings: Settings, queue: str | None = None) -> ActionPublisher | None:
    """Where actions go back to the source (or, with ``queue``, where commands are queued):
    Service Bus in Azure, the local host's queue locally."""
    from shared.adapters.outbound import LocalQueuePublisher, ServiceBusPublisher

    queue = queue or settings.teams_actions_queue
    if settings.service_bus_namespace:
        return ServiceBusPublisher(settings.service_bus_namespace, queue, settings.managed_identity_client_id)
    if settings.local_queue_host_url:
        return LocalQueuePublisher(settings.local_queue_host_url, queue)
    return None


def command_queue(c: Container) -> ActionPublisher | None:
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


def build_job_queue(settings: Settings) -> JobQueue:
    """The deliveries queue: Service Bus in Azure, the local host's queue locally."""
    from shared.adapters.job_queue import LocalJobQueue, ServiceBusJobQueue

    if settings.service_bus_namespace:
        return ServiceBusJobQueue(
            settings.service_bus_namespace, settings.delivery_queue, settings.managed_identity_client_id
        )
    if settings.local_queue_host_url:
        return LocalJobQueue(settings.local_queue_host_url, settings.delivery_queue)
    raise SettingsError(
        "no deliveries queue: set ServiceBusConnection__fullyQualifiedNamespace (in Azure) "
        "or LOCAL_QUEUE_HOST_URL (locally) "
        f"so alerts can be delivered through the {settings.delivery_queue} queue"
    )


def delivering(c: Container) -> Delivering:
    """What delivering an alert needs: the store, the deliveries queue, the messenger, the
    recipient resolver and this process's share of the tenants' send budgets."""
    from shared.services.delivery import TenantBudget
    from shared.services.processing import Delivering
    from shared.services.recipients import RecipientResolver

    if c.jobs is None:
        c.jobs = build_job_queue(c.settings)
    if c.tenant_rate is None:
        import os
        import uuid

        # One holder id per process: slots leased by this process are its own.
        instance = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        c.tenant_rate = TenantBudget(c.store, c.settings.tenant_sends_per_second, instance, clock=c.time.clock)
    directory: Directory | None = c.directory
    if directory is None and c.connect is not None:
        directory = _LazyDirectory(c.connect)
    resolver = RecipientResolver(
        c.store,
        directory=directory,
        teams_app_catalog_id=c.settings.teams_app_catalog_id,
        bot_app_id=c.settings.bot_app_id or "",
        default_service_url=c.settings.teams_service_url,
    )
    resolver.clock = c.time.clock
    return Delivering(
        c.store,
        c.messenger,
        c.jobs,
        resolver,
        clock=c.time.clock,
        tenant_rate=c.tenant_rate,
        sleep=c.time.sleep,
        outbound=publisher(c),
    )


def publisher(c: Container) -> ActionPublisher | None:
    """Where actions go back to the source, built on first use."""
    if c.publisher is None:
        c.publisher = build_publisher(c.settings)
    return c.publisher


async def action_context(c: Container, tenant_id: str | None) -> ActionContext:
    """What the card actions and commands need. Graph is offered only for a tenant whose
    connection is up: an unconnected tenant gets no membership checks, channels or meetings."""
    from shared.services.actions import ActionContext

    directory = None
    graph = c.graph()
    if graph is not None and tenant_id:
        connection = await c.store.get_connection(tenant_id)
        if connection is not None and connection.status == "connected":
            directory = graph
    s = c.settings
    return ActionContext(
        store=c.store,
        messenger=c.messenger,
        publisher=publisher(c),
        directory=directory,
        require_linked_account=s.require_linked_account,
        channel_team_id=s.alert_channel_team_id,
        channel_name_template=s.alert_channel_name_template,
        meeting_organizer=s.meeting_organizer,
        connector_admins=s.connector_admins,
        delivering=delivering(c),
        clock=c.time.clock,
        source_api=_source_api(c),
        silences=_silences,
        commands=command_queue(c),
    )


def _silences(api: Any) -> Any:
    from shared.adapters.silences import Silences
    from shared.settings import local_development

    return Silences(api, allow_private=local_development())


def source_cipher(c: Container) -> Any:
    """The cipher of the sources' API settings (TOKEN_ENCRYPTION_KEY), made once; None without one."""
    key = c.settings.graph.token_encryption_key if c.settings.graph else ""
    if not key:
        return None
    if c.source_cipher is None:
        from shared.security import TokenCipher

        c.source_cipher = TokenCipher.from_setting(key)
    return c.source_cipher


def _source_api(c: Container) -> Any:
    """A source's own API, decrypted with TOKEN_ENCRYPTION_KEY: None without one."""
    if source_cipher(c) is None:
        return None

    async def read(tenant_id: str, source: str) -> Any:
        from shared.services.sources import source_api

        return await source_api(c.store, source_cipher(c), tenant_id, source)

    return read

"""Teams Alert Connector: every trigger of the app, each a few lines of wiring."""

import logging
from types import ModuleType
from typing import TYPE_CHECKING

import azure.functions as func

from shared import logsafety
from shared.settings import check_startup_safety

logsafety.install()  # no log line shows a secret, at any level
check_startup_safety()  # refuse development-only switches in Azure before serving anything
# The Python worker sets the root logger to INFO and sends every record to the host
# (azure-functions-python-worker, dispatcher.py, dispatch_forever). The Azure SDKs log at INFO
# each request and its response (azure-core's HttpLoggingPolicy: two records per Table request),
# and AMQP link states: the SDKs' warnings and errors are enough.
logging.getLogger("azure").setLevel(logging.WARNING)


class _Surfaces:
    """shared.entrypoints' modules, one per surface (bot, ingest, delivery, admin, consent,
    console), each imported when one of its triggers first runs, not when the host indexes the
    app: a cold start that only indexes pays for azure.functions and the settings check, and a
    trigger loads its own surface's code (and the services it imports) only."""

    def __getattr__(self, surface: str) -> ModuleType:
        import importlib

        module = importlib.import_module(f"shared.entrypoints.{surface}")
        setattr(self, surface, module)
        return module


if TYPE_CHECKING:  # the surfaces as mypy sees them: entrypoints.<surface> is that module
    import shared.entrypoints.admin
    import shared.entrypoints.bot
    import shared.entrypoints.consent
    import shared.entrypoints.console
    import shared.entrypoints.delivery
    import shared.entrypoints.ingest  # noqa: F401
    from shared import entrypoints
else:
    entrypoints = _Surfaces()

app = func.FunctionApp()


@app.route(route="messages", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def bot_messages(req: func.HttpRequest) -> func.HttpResponse:
    """Bot Framework endpoint: the request's JWT is the authentication."""
    return await entrypoints.bot.bot_messages(req)


@app.service_bus_queue_trigger(
    arg_name="messages", queue_name="%ALERT_EVENTS_QUEUE%", connection="ServiceBusConnection", cardinality="many"
)
async def alert_events(messages: list[func.ServiceBusMessage]) -> None:
    """Alert and issue events, a batch at a time: CloudEvents or a source's native payloads."""
    await entrypoints.ingest.alert_events(messages)


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%DELIVERY_QUEUE%", connection="ServiceBusConnection", is_sessions_enabled=True
)
async def deliveries(msg: func.ServiceBusMessage) -> None:
    """Delivery jobs: one Service Bus session per conversation, many conversations at once."""
    await entrypoints.delivery.deliveries(msg)


@app.timer_trigger(arg_name="timer", schedule="%PERIODIC_SCHEDULE%", run_on_startup=False)
async def periodic(timer: func.TimerRequest) -> None:
    """Reminders for alerts left open."""
    await entrypoints.delivery.periodic(timer)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness and configuration check."""
    return await entrypoints.admin.health(req)


@app.route(route="connect", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def connect(req: func.HttpRequest) -> func.HttpResponse:
    """Start connecting a Microsoft tenant: ?method=bot|delegated (admin key required)."""
    return await entrypoints.consent.connect_start(req)


@app.route(route="consent/callback", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    """Microsoft redirects here; the signed, single-use state is the authentication."""
    return await entrypoints.consent.consent_callback(req)


@app.route(route="console/{*rest}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def console(req: func.HttpRequest) -> func.HttpResponse:
    """The console, web pages for a tenant's admins: Sign in with Microsoft is the authentication."""
    return await entrypoints.console.console(req)


@app.route(route="tenants/{tenant_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def tenant_status(req: func.HttpRequest) -> func.HttpResponse:
    """A connector's status (tenant admin key)."""
    return await entrypoints.admin.tenant_status(req)


@app.route(route="tenants/{tenant_id}/disconnect", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def tenant_disconnect(req: func.HttpRequest) -> func.HttpResponse:
    """Stop using a tenant's connection (tenant admin key)."""
    return await entrypoints.admin.tenant_disconnect(req)


@app.route(route="tenants/{tenant_id}/admin-key", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def tenant_admin_key(req: func.HttpRequest) -> func.HttpResponse:
    """Derive a tenant's admin key (ADMIN_API_KEY required)."""
    return await entrypoints.admin.tenant_admin_key(req)


@app.route(route="tenants/{tenant_id}/teams", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def tenant_teams(req: func.HttpRequest) -> func.HttpResponse:
    """Management read: the tenant's teams."""
    return await entrypoints.admin.tenant_teams(req)


@app.route(route="tenants/{tenant_id}/teams/{team_id}/channels", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def tenant_channels(req: func.HttpRequest) -> func.HttpResponse:
    """Management read: a team's channels."""
    return await entrypoints.admin.tenant_channels(req)


@app.route(route="tenants/{tenant_id}/users", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def tenant_users(req: func.HttpRequest) -> func.HttpResponse:
    """Management read: users matching ?search=."""
    return await entrypoints.admin.tenant_users(req)


@app.route(route="events/rejected", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def rejected_events(req: func.HttpRequest) -> func.HttpResponse:
    """Events that could not be processed as sent, with the reason (admin key)."""
    return await entrypoints.admin.rejected_events(req)


@app.route(route="tenants/{tenant_id}/workflows", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def workflows_list(req: func.HttpRequest) -> func.HttpResponse:
    """The tenant's workflows (tenant admin key); none means broadcast."""
    return await entrypoints.admin.workflows_list(req)


@app.route(route="tenants/{tenant_id}/workflows/test", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def workflow_test(req: func.HttpRequest) -> func.HttpResponse:
    """Dry run: who an event would reach, through which workflow, and why not the others."""
    return await entrypoints.admin.workflow_test(req)


@app.route(
    route="tenants/{tenant_id}/workflows/{workflow_id}",
    methods=["GET", "PUT", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def workflow_item(req: func.HttpRequest) -> func.HttpResponse:
    """Read, create or replace, delete one workflow (tenant admin key)."""
    return await entrypoints.admin.workflow_item(req)


@app.route(route="tenants/{tenant_id}/alerts/{alert_id}/send", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def alert_send(req: func.HttpRequest) -> func.HttpResponse:
    """Send an alert's card with a comment to recipients (queued; tenant admin key)."""
    return await entrypoints.admin.alert_send(req)


@app.route(route="tenants/{tenant_id}/alerts/{alert_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def alert_status(req: func.HttpRequest) -> func.HttpResponse:
    """One alert and where its cards are (tenant admin key)."""
    return await entrypoints.admin.alert_status(req)


@app.route(route="tenants/{tenant_id}/undeliverable", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def undeliverable(req: func.HttpRequest) -> func.HttpResponse:
    """Alerts that reached neither a recipient nor its fallback (tenant admin key)."""
    return await entrypoints.admin.undeliverable(req)


@app.route(route="tenants/{tenant_id}/links", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def tenant_links(req: func.HttpRequest) -> func.HttpResponse:
    """The tenant's account links (tenant admin key)."""
    return await entrypoints.admin.links(req)


@app.route(route="tenants/{tenant_id}/links/{aad_object_id}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
async def tenant_link(req: func.HttpRequest) -> func.HttpResponse:
    """Set or approve a person's platform identity (tenant admin key)."""
    return await entrypoints.admin.put_link(req)


@app.route(route="events/{format}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def ingest(req: func.HttpRequest) -> func.HttpResponse:
    """Webhooks from alert sources (the source's key): checked, then queued as alert events."""
    return await entrypoints.ingest.ingest(req)


@app.route(route="tenants/{tenant_id}/sources/{source}", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
async def ingest_source(req: func.HttpRequest) -> func.HttpResponse:
    """A source's ingest key and URLs (tenant admin key); POST rotates that source's key alone."""
    return await entrypoints.admin.ingest_setup(req)


@app.route(
    route="tenants/{tenant_id}/sources/{source}/api",
    methods=["GET", "PUT", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def source_api(req: func.HttpRequest) -> func.HttpResponse:
    """A source's own API, where silences are made (tenant admin key): shown without its
    credential, set, or removed."""
    return await entrypoints.admin.source_api(req)

"""Decode each trigger's input, call one service function, encode the output.

Imported by function_app at start: keep it light (no SDK imports at module level).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared import bootstrap
from shared.services import bot as bot_service
from shared.services import periodic as periodic_service
from shared.services import processing as event_service
from shared.services.sources import INGEST_KEY_HEADER, SOURCE_NAME
from shared.settings import SettingsError, unresolved_message

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.bootstrap import _LazyConnect as _Connect
    from shared.domain.connections import TenantConnection
    from shared.domain.model import AccountLink

log = logging.getLogger(__name__)


def _json_response(status: int, body: object | None) -> func.HttpResponse:
    if body is None:
        return func.HttpResponse(status_code=status)
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


class _Answer(Exception):
    """The answer a route gives before doing its work: the app is misconfigured, the caller is
    refused, the input is bad. Raised by the checks below; :func:`_answers` returns it."""

    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


Route = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def _answers(route: Route) -> Route:
    @functools.wraps(route)
    async def run(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await route(req)
        except _Answer as answer:
            return answer.response

    return run


async def _configured() -> Container:
    """The container, or the 500 a misconfigured app answers (the reason goes to the log)."""
    try:
        return await bootstrap.container()
    except SettingsError as exc:
        log.error("Configuration error: %s", exc)
        raise _Answer(_json_response(500, {"error": "the connector is not configured; see its log"})) from None


@_answers
async def bot_messages(req: func.HttpRequest) -> func.HttpResponse:
    c = await _configured()

    async def handle(activity: dict[str, Any], reference: dict[str, Any]) -> bot_service.BotReply:
        actions = await bootstrap.action_context(c, bot_service.actor_of(activity).tenant_id)
        return await bot_service.handle_activity(activity, reference, store=c.store, actions=actions)

    status, body = await c.bot.process(req.get_body(), req.headers.get("Authorization"), handle)
    return _json_response(status, body)


async def alert_events(messages: list[func.ServiceBusMessage]) -> None:
    """A batch of alert-events messages. An invalid event is recorded in the rejected-events
    table with its reason and logged once; completing the batch (returning normally) keeps it
    from being retried. A transient failure fails the batch: Service Bus delivers it again."""
    c = await bootstrap.container()
    await event_service.process_batch(
        [
            event_service.QueuedEvent(msg.get_body(), msg.message_id or "(no message id)", msg.delivery_count or 1)
            for msg in messages
        ],
        bootstrap.delivering(c),
        default_tenant_id=c.settings.default_tenant_id,
    )


async def deliveries(msg: func.ServiceBusMessage) -> None:
    """One message of the deliveries queue (a job, or a bundle of one conversation's jobs), in
    its conversation's session: one consumer at a time, in order."""
    from shared.domain.jobs import jobs_from_message
    from shared.services.delivery import run_message

    c = await bootstrap.container()
    try:
        jobs = jobs_from_message(msg.get_body(), msg.delivery_count or 1)
    except (ValueError, KeyError, TypeError) as exc:
        # Only the connector writes this queue: a job it cannot read is a bug, not input.
        log.error("Delivery job %s cannot be read and is dropped: %s", msg.message_id, exc)
        jobs = []
    if jobs:
        report = await run_message(jobs, bootstrap.delivering(c))
        log.info(
            "Delivered %d job(s) for one conversation: posted %d, updated %d, folded into the summary %d, "
            "rescheduled %d, failed %d",
            len(jobs),
            len(report.posted),
            len(report.updated),
            len(report.folded),
            report.rescheduled,
            len(report.failed),
        )


async def periodic(timer: func.TimerRequest) -> None:
    c = await bootstrap.container()
    if timer.past_due:
        log.info("The periodic run is late; running now")
    await periodic_service.run_timer(
        bootstrap.delivering(c), await bootstrap.action_context(c, None), c.settings.reminder_after_minutes
    )


@_answers
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """``/api/health``: the settings parse. ``?deep=1`` (with the admin key): every dependency is
    tried (Table Storage, the queues and their dead letters, the bot's token, each connected
    tenant's Graph credential); 200 when all are well, else 503, each check saying what it saw."""
    try:
        c = await bootstrap.container()
    except SettingsError as exc:
        return _json_response(503, {"status": "misconfigured", "error": str(exc)})
    if req.params.get("deep", "").lower() not in ("1", "true", "yes"):
        if c.settings.unresolved:
            return _json_response(200, {"status": "degraded", "off": unresolved_message(c.settings.unresolved)})
        return _json_response(200, {"status": "ok"})
    _admin_check(req, c)
    from shared.services import health as checks

    todo: dict[str, checks.Check] = {
        "Table Storage": checks.tables_check(c.store),
        "bot token": checks.bot_token_check(c.bot),
    }
    for probe in bootstrap.queue_probes(c.settings):
        todo[f"queue {probe.queue}"] = checks.queue_check(probe)
    if c.connect is not None:
        for connection in await c.store.list_connections():
            if connection.status == "connected":
                todo[f"tenant {connection.tenant_id} ({connection.method})"] = checks.tenant_check(
                    c.connect.directory, connection
                )
    results = await checks.run_checks(todo)
    healthy = all(r.ok for r in results)
    for result in results:
        if not result.ok:
            log.warning("Health check %s failed: %s", result.name, result.detail)
    return _json_response(
        200 if healthy else 503, {"status": "ok" if healthy else "unwell", "checks": [r.to_json() for r in results]}
    )


@_answers
async def console(req: func.HttpRequest) -> func.HttpResponse:
    """The console's pages (shared.console): Sign in with Microsoft is their authentication."""
    from shared.console.pages import handle

    return await handle(req, await _configured())


# ---------------------------------------------------------------- connecting a tenant
# Admin routes are deployed with auth level FUNCTION (the Functions host checks the key in
# Azure) and also require ADMIN_API_KEY in the X-Admin-Key header, because a local host does
# not enforce function keys. Tenant-scoped routes take only that tenant's admin key
# (shared.security.tenant_admin_key), so one tenant's key never reads another tenant.

ADMIN_KEY_HEADER = "X-Admin-Key"
# Only /api/connect is opened by a browser, which cannot add a header: it may carry the key
# in the query, like a function key's ?code=.
ADMIN_KEY_QUERY = "admin_key"


def _html(status: int, title: str, message: str) -> func.HttpResponse:
    import html

    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:sans-serif;max-width:40em;margin:3em auto">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        "<p><small>Teams Alert Connector</small></p></body></html>"
    )
    return func.HttpResponse(
        body,
        status_code=status,
        mimetype="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def _connect_container() -> tuple[Container, _Connect]:
    c = await _configured()
    if c.connect is None:
        off = (
            unresolved_message(c.settings.unresolved)
            if c.settings.unresolved
            else "tenant connection is off: set GRAPH_APP_ID and the settings docs/CONNECTING.md names"
        )
        raise _Answer(_json_response(503, {"error": off}))
    return c, c.connect


def _master_key(c: Container) -> str:
    """ADMIN_API_KEY: 503 while it is not set (every admin route is then closed)."""
    if not c.settings.admin_api_key:
        why = "is an unresolved Key Vault reference" if "ADMIN_API_KEY" in c.settings.unresolved else "is not set"
        raise _Answer(_json_response(503, {"error": f"ADMIN_API_KEY {why}: admin routes are closed"}))
    return c.settings.admin_api_key


def _admin_check(req: func.HttpRequest, c: Container, tenant_id: str | None = None, allow_query: bool = False) -> None:
    """The admin key (or, with ``tenant_id``, that tenant's key) must be presented: 503, 401 or 403 otherwise."""
    from shared.security import same_secret, tenant_admin_key

    master = _master_key(c)
    presented = req.headers.get(ADMIN_KEY_HEADER) or (req.params.get(ADMIN_KEY_QUERY) if allow_query else None)
    expected = tenant_admin_key(master, tenant_id) if tenant_id else master
    if not same_secret(presented, expected):
        what = f"the admin key of tenant {tenant_id}" if tenant_id else "the admin key"
        raise _Answer(_json_response(401 if not presented else 403, {"error": f"{ADMIN_KEY_HEADER} must carry {what}"}))


@_answers
async def connect_start(req: func.HttpRequest) -> func.HttpResponse:
    c, connect = await _connect_container()
    _admin_check(req, c, allow_query=True)
    from shared.services.consent import ConsentInputError, parse_targets

    try:
        targets = parse_targets(req.params)
        url = await connect.consent.start(
            req.params.get("method", ""),
            tenant=req.params.get("tenant") or None,
            targets=targets,
            started_by=req.headers.get("X-MS-CLIENT-PRINCIPAL-NAME", ""),
        )
    except ConsentInputError as exc:
        return _json_response(400, {"error": str(exc)})
    return func.HttpResponse(status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@_answers
async def consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    _c, connect = await _connect_container()
    params = dict(req.params)
    if req.method == "POST":  # response_mode=form_post (the delegated flow)
        from urllib.parse import parse_qsl

        params.update(parse_qsl(req.get_body().decode("utf-8", errors="replace")))
    page = await connect.consent.complete(params)
    return _html(page.status, page.title, page.message)


def _route_tenant(req: func.HttpRequest) -> str:
    """The route's {tenant_id}, checked before it is used as a key: 400 when it is not one."""
    from shared.domain.tenants import InvalidTenantId, tenant_id

    try:
        return tenant_id(req.route_params.get("tenant_id", ""))
    except InvalidTenantId as exc:
        raise _Answer(_json_response(400, {"error": f"the tenant in the address {exc}"})) from None


async def _tenant_connection(
    req: func.HttpRequest, *, need_connected: bool
) -> tuple[Container, _Connect, TenantConnection]:
    c, connect = await _connect_container()
    tenant_id = _route_tenant(req)
    _admin_check(req, c, tenant_id=tenant_id)
    connection = await c.store.get_connection(tenant_id)
    if connection is None:
        raise _Answer(_json_response(404, {"error": f"tenant {tenant_id} is not connected"}))
    if need_connected and connection.status != "connected":
        raise _Answer(
            _json_response(409, {"error": f"tenant {tenant_id} is {connection.status}: {connection.status_reason}"})
        )
    return c, connect, connection


async def _graph_read(req: func.HttpRequest, read: Callable[[Any, str], Awaitable[Any]]) -> func.HttpResponse:
    from shared.ports import GraphError, ReconsentRequired

    _c, connect, connection = await _tenant_connection(req, need_connected=True)
    try:
        return _json_response(200, {"value": await read(connect.directory, connection.tenant_id)})
    except ReconsentRequired as exc:
        return _json_response(409, {"error": f"the connection needs consent again: {exc}"})
    except GraphError as exc:
        status = exc.status if exc.status in (403, 404) else 502
        return _json_response(status, {"error": str(exc), "permission": exc.permission, "missing": exc.missing})


@_answers
async def tenant_teams(req: func.HttpRequest) -> func.HttpResponse:
    return await _graph_read(req, lambda d, tid: d.list_teams(tid))


@_answers
async def tenant_channels(req: func.HttpRequest) -> func.HttpResponse:
    team_id = req.route_params.get("team_id", "")
    return await _graph_read(req, lambda d, tid: d.list_channels(tid, team_id))


@_answers
async def tenant_users(req: func.HttpRequest) -> func.HttpResponse:
    search = (req.params.get("search") or "").strip()
    if len(search) < 2:
        return _json_response(400, {"error": "search must have at least 2 characters"})
    return await _graph_read(req, lambda d, tid: d.search_users(tid, search[:100]))


@_answers
async def tenant_status(req: func.HttpRequest) -> func.HttpResponse:
    _c, _connect, connection = await _tenant_connection(req, need_connected=False)
    return _json_response(200, connection.public())


@_answers
async def tenant_disconnect(req: func.HttpRequest) -> func.HttpResponse:
    _c, connect, connection = await _tenant_connection(req, need_connected=False)
    saved = await connect.consent.disconnect(connection.tenant_id)
    return _json_response(200, saved.public() if saved else None)


@_answers
async def tenant_admin_key(req: func.HttpRequest) -> func.HttpResponse:
    """The tenant-bound admin key, for the holder of ADMIN_API_KEY to hand to that tenant's UI."""
    from shared.security import tenant_admin_key as derive

    c = await _configured()  # needs ADMIN_API_KEY only: no tenant connection (Graph)
    _admin_check(req, c)
    tenant_id = _route_tenant(req)
    return _json_response(
        200, {"tenantId": tenant_id, "header": ADMIN_KEY_HEADER, "key": derive(_master_key(c), tenant_id)}
    )


@_answers
async def rejected_events(req: func.HttpRequest) -> func.HttpResponse:
    """Events the connector could not process as sent, newest first, with the reason: the
    connector's dead letters (the Service Bus trigger completes such messages)."""
    c = await bootstrap.container()
    _admin_check(req, c)
    try:
        limit = min(max(int(req.params.get("limit", "50")), 1), 500)
    except ValueError:
        return _json_response(400, {"error": "limit must be a whole number from 1 to 500"})
    rejected = await c.store.list_rejected(limit)
    return _json_response(
        200,
        {
            "count": len(rejected),
            "rejected": [
                {
                    "messageId": r.message_id,
                    "eventId": r.event_id,
                    "field": r.field,
                    "reason": r.reason,
                    "received": r.received.isoformat(),
                    "body": r.body,
                }
                for r in rejected
            ],
        },
    )


# ---------------------------------------------------------------- routing alerts: workflows
# Tenant-scoped admin routes: the tenant's admin key (X-Admin-Key), like the management reads.
# They need no Microsoft Graph connection: a workflow of channels and chats where the bot is
# installed works without one.

# A workflow definition or a send request is a few KiB; anything near this is a mistake.
MAX_ADMIN_BODY_BYTES = 64 * 1024


async def _tenant_admin(req: func.HttpRequest) -> tuple[Container, str]:
    c = await _configured()
    tenant_id = _route_tenant(req)
    _admin_check(req, c, tenant_id=tenant_id)
    return c, tenant_id


def _json_body(req: func.HttpRequest) -> Any:
    """The request's JSON (size-limited): 413 or 400 otherwise."""
    raw = req.get_body() or b""
    if len(raw) > MAX_ADMIN_BODY_BYTES:
        raise _Answer(_json_response(413, {"error": f"the request body is larger than {MAX_ADMIN_BODY_BYTES} bytes"}))
    from shared.domain.jsondepth import too_deep

    try:
        text = raw.decode("utf-8") if raw else "null"
        if (problem := too_deep(text)) is not None:
            raise _Answer(_json_response(400, {"error": problem}))
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Answer(_json_response(400, {"error": f"the request body is not valid JSON ({exc})"})) from None


async def _tenant_admin_body(req: func.HttpRequest) -> tuple[Container, str, Any]:
    """The tenant admin check, then the JSON body (size-limited)."""
    c, tenant_id = await _tenant_admin(req)
    return c, tenant_id, _json_body(req)


def _caller(req: func.HttpRequest) -> str:
    return req.headers.get("X-MS-CLIENT-PRINCIPAL-NAME", "") or "admin API"


@_answers
async def workflows_list(req: func.HttpRequest) -> func.HttpResponse:
    c, tenant_id = await _tenant_admin(req)
    found = sorted(await c.store.list_workflows(tenant_id), key=lambda w: w.id)
    return _json_response(200, {"count": len(found), "broadcast": not found, "workflows": [w.public() for w in found]})


@_answers
async def workflow_item(req: func.HttpRequest) -> func.HttpResponse:
    from shared.domain.workflows import InvalidWorkflow
    from shared.ports import TransientError
    from shared.services import workflows as workflow_service

    c, tenant_id = await _tenant_admin(req)
    workflow_id = req.route_params.get("workflow_id", "")
    if req.method == "GET":
        found = await c.store.get_workflow(tenant_id, workflow_id)
        return (
            _json_response(200, found.public())
            if found
            else _json_response(404, {"error": f"tenant {tenant_id} has no workflow {workflow_id}"})
        )
    if req.method == "DELETE":
        if not await c.store.has_workflow(tenant_id, workflow_id):  # readable or not: it can go
            return _json_response(404, {"error": f"tenant {tenant_id} has no workflow {workflow_id}"})
        await c.store.delete_workflow(tenant_id, workflow_id)
        log.info("Workflow %s of tenant %s deleted by %s", workflow_id, tenant_id, _caller(req))
        return _json_response(204, None)
    body = _json_body(req)
    try:
        saved = await workflow_service.save_workflow(
            c.store,
            bootstrap.delivering(c).resolver,
            tenant_id,
            workflow_id,
            body,
            updated_by=_caller(req),
            commands=bootstrap.command_queue(c),
        )
    except InvalidWorkflow as exc:
        return _json_response(400, {"error": str(exc), "field": exc.field})
    except workflow_service.WorkflowLimit as exc:
        return _json_response(409, {"error": str(exc)})
    except TransientError as exc:
        return _json_response(503, {"error": str(exc)})
    status = 201 if saved.created else 200
    return _json_response(
        status, {**saved.workflow.public(), "changed": saved.changed, "existingAlertsQueued": saved.existing_queued}
    )


@_answers
async def workflow_test(req: func.HttpRequest) -> func.HttpResponse:
    from shared.domain.events import InvalidEvent
    from shared.services import workflows as workflow_service

    c, tenant_id, body = await _tenant_admin_body(req)
    try:
        return _json_response(
            200, await workflow_service.dry_run(c.store, tenant_id, body, bootstrap.delivering(c).resolver)
        )
    except InvalidEvent as exc:
        return _json_response(400, {"error": str(exc), "field": exc.field})


@_answers
async def alert_send(req: func.HttpRequest) -> func.HttpResponse:
    """The manual "send to Teams": checked and queued as a teams.message.send command."""
    from shared.ports import TransientError
    from shared.services.manual_send import SendRefused, send_alert

    c, tenant_id, body = await _tenant_admin_body(req)
    try:
        queued = await send_alert(
            c.store,
            bootstrap.delivering(c).resolver,
            bootstrap.command_queue(c),
            tenant_id,
            req.route_params.get("alert_id", ""),
            body,
            requested_by=_caller(req),
        )
    except SendRefused as exc:
        answer: dict[str, Any] = {"error": str(exc)}
        if exc.status == 400:
            answer["field"] = exc.field
        return _json_response(exc.status, answer)
    except TransientError as exc:
        return _json_response(503, {"error": str(exc)})
    return _json_response(202, queued)


@_answers
async def undeliverable(req: func.HttpRequest) -> func.HttpResponse:
    """Alerts that reached neither a recipient nor its fallback, newest first."""
    c, tenant_id = await _tenant_admin(req)
    try:
        limit = min(max(int(req.params.get("limit", "50")), 1), 500)
    except ValueError:
        return _json_response(400, {"error": "limit must be a whole number from 1 to 500"})
    found = await c.store.list_undeliverable(tenant_id, limit)
    return _json_response(
        200,
        {
            "count": len(found),
            "undeliverable": [
                {
                    "alertId": u.alert_id,
                    "recipient": u.recipient,
                    "reason": u.reason,
                    "fallbackReason": u.fallback_reason,
                    "recorded": u.recorded.isoformat(),
                }
                for u in found
            ],
        },
    )


@_answers
async def alert_status(req: func.HttpRequest) -> func.HttpResponse:
    """One alert as the connector holds it, with each of its cards: where, and whether it was
    posted, failed (and why) or is in flight. The smoke test reads it; so can an operator."""
    c, tenant_id = await _tenant_admin(req)
    from shared.services.actions import find_alert

    alert_id = req.route_params.get("alert_id", "")
    state = await find_alert(c.store, tenant_id, alert_id)
    if state is None:
        return _json_response(404, {"error": f"no alert {alert_id} in tenant {tenant_id}"})
    cards = []
    for delivery in await c.store.list_deliveries(tenant_id, state.key):
        status = (
            "posted"
            if delivery.activity_id
            else {"failed": "failed", "folded": "in the storm summary"}.get(delivery.status, "in flight")
        )
        cards.append(
            {
                "conversationId": delivery.conversation_id,
                "status": status,
                "renderedRevision": delivery.rendered_version,
                "failure": delivery.failure or None,
                "recipient": delivery.recipient or None,
            }
        )
    return _json_response(
        200,
        {
            "alertId": state.alert_id,
            "status": state.status,
            "severity": state.severity,
            "revision": state.revision,
            "version": state.version,
            "updated": state.updated.isoformat() if state.updated else None,
            "cards": cards,
        },
    )


# ---------------------------------------------------------------- account links


def _link_json(link: AccountLink) -> dict[str, Any]:
    return {
        "aadObjectId": link.aad_object_id,
        "platformIdentity": link.platform_identity,
        "method": link.method,
        "verified": link.verified,
        "updated": link.updated.isoformat() if link.updated else None,
    }


@_answers
async def links(req: func.HttpRequest) -> func.HttpResponse:
    """The tenant's account links, the ones waiting for approval first."""
    c, tenant_id = await _tenant_admin(req)
    found = sorted(await c.store.list_links(tenant_id), key=lambda link: (link.verified, link.aad_object_id))
    return _json_response(200, {"count": len(found), "links": [_link_json(link) for link in found]})


@_answers
async def put_link(req: func.HttpRequest) -> func.HttpResponse:
    """A connector admin sets (or approves) a person's platform identity: {"platformIdentity"}."""
    from shared.domain.model import AccountLink
    from shared.domain.tenants import is_tenant_id

    c, tenant_id, body = await _tenant_admin_body(req)
    aad_object_id = req.route_params.get("aad_object_id", "")
    if not is_tenant_id(aad_object_id):  # Entra object ids are GUIDs too
        return _json_response(400, {"error": "the person in the address must be a Microsoft Entra object id (a GUID)"})
    identity = body.get("platformIdentity") if isinstance(body, dict) else None
    if not isinstance(identity, str) or not identity.strip() or len(identity) > 200:
        return _json_response(
            400,
            {
                "error": "platformIdentity must be the person's user name on the alerting platform "
                "(1 to 200 characters)",
                "field": "platformIdentity",
            },
        )
    link = AccountLink(tenant_id, aad_object_id.lower(), identity.strip(), "admin", None, bootstrap.clock())
    await c.store.save_link(link)
    log.info("Account link of %s in tenant %s set by %s", aad_object_id, tenant_id, _caller(req))
    return _json_response(200, _link_json(link))


# ---------------------------------------------------------------- ingest: webhooks from alert sources
# POST /api/events/{format}?tenant=<tenant id>&source=<source name>, with the source's key in
# X-Ingest-Key (or ?key=, for senders that cannot set headers). The payload is checked here
# (400 naming the field, 413 over the size limit) and put on the alert-events queue as one
# CloudEvent per alert; the queue trigger does the rest, so a burst of webhooks never holds
# requests open while Teams is slow.


@_answers
async def ingest(req: func.HttpRequest) -> func.HttpResponse:
    import hashlib

    from shared.domain.events import MAX_EVENT_BYTES, InvalidEvent, decode_json, to_cloudevent
    from shared.domain.inbound import FORMAT_NAMES, format_named, parse_as
    from shared.domain.tenants import InvalidTenantId
    from shared.domain.tenants import tenant_id as parse_tenant
    from shared.security import ingest_key, same_secret

    c = await _configured()
    fmt = format_named(req.route_params.get("format", ""))
    if fmt is None:
        return _json_response(404, {"error": f"unknown format; the connector reads {', '.join(FORMAT_NAMES)}"})
    if not c.settings.admin_api_key:
        unresolved = "ADMIN_API_KEY" in c.settings.unresolved
        why = "ADMIN_API_KEY is an unresolved Key Vault reference" if unresolved else "set ADMIN_API_KEY"
        return _json_response(503, {"error": f"ingest is off: {why} (source keys are derived from it)"})
    try:
        tenant = parse_tenant(req.params.get("tenant", ""))
    except InvalidTenantId as exc:
        return _json_response(400, {"error": f"tenant {exc}", "field": "tenant"})
    source = req.params.get("source", "")
    if not SOURCE_NAME.fullmatch(source):
        return _json_response(
            400,
            {
                "error": "source must name the alert source: 1 to 63 lower-case letters, digits or dashes",
                "field": "source",
            },
        )
    presented = _presented_ingest_key(req)
    version = await c.store.source_key_version(tenant, source)
    if not same_secret(presented, ingest_key(c.settings.admin_api_key, tenant, source, version)):
        log.warning(
            "Ingest refused for source %s of tenant %s: %s", source, tenant, "no key" if not presented else "wrong key"
        )
        return _json_response(
            401,
            {
                "error": "a valid key for this tenant and source is required: Authorization: Bearer <key>, "
                f"basic auth with the key as password, the {INGEST_KEY_HEADER} header, or the key parameter"
            },
        )
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json" and not (
        content_type.startswith("application/") and content_type.endswith("+json")
    ):
        # A browser sends text/plain (or a form) cross-site without asking first: only JSON is read.
        return _json_response(
            415, {"error": f"the payload must be sent as application/json, not {content_type or 'no Content-Type'}"}
        )
    raw = req.get_body() or b""
    if len(raw) > MAX_EVENT_BYTES:
        return _json_response(
            413, {"error": f"the payload is {len(raw):,} bytes; at most {MAX_EVENT_BYTES:,} are accepted"}
        )
    try:
        events = parse_as(fmt, decode_json(raw))
        for event in events:
            if event.tenant_id and event.tenant_id != tenant:
                raise InvalidEvent(
                    "tenantid",
                    f"names tenant {event.tenant_id}, but this source posts to tenant {tenant}",
                    event.event_id,
                )
    except InvalidEvent as exc:
        log.info("Ingest of %s from source %s of tenant %s refused: %s", fmt.name, source, tenant, exc)
        return _json_response(400, {"error": str(exc), "field": exc.field, "eventId": exc.event_id})
    queue = bootstrap.command_queue(c)
    if queue is None:
        return _json_response(
            503,
            {
                "error": "no queue to send through: set ServiceBusConnection__fullyQualifiedNamespace "
                "(or LOCAL_QUEUE_HOST_URL locally)"
            },
        )
    for event in events:
        # A stable message id: a webhook sent again within the duplicate-detection window is dropped.
        message_id = hashlib.sha256(f"{tenant}\n{event.source}\n{event.event_id}".encode()).hexdigest()[:32]
        await queue.publish(message_id, to_cloudevent(event, tenant, source))
    log.info("Ingest: %d event(s) in %s from source %s of tenant %s queued", len(events), fmt.name, source, tenant)
    return _json_response(
        202, {"status": "queued", "format": fmt.name, "tenant": tenant, "eventIds": [e.event_id for e in events]}
    )


def _presented_ingest_key(req: func.HttpRequest) -> str | None:
    """The source key, in whichever form the source keeps secret: ``Authorization: Bearer <key>``
    (Alertmanager's ``http_config.authorization``, Grafana's Authorization header), basic auth
    with the key as password (any user name), the ``X-Ingest-Key`` header (PagerDuty's custom
    headers), or, for a source with no other way (Azure Monitor's webhook), ``?key=``."""
    import base64
    import binascii

    authorization = (req.headers.get("Authorization") or "").strip()
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme.lower() == "basic" and credentials.strip():
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    found = req.headers.get(INGEST_KEY_HEADER) or req.params.get("key")
    return str(found) if found else None


@_answers
async def ingest_setup(req: func.HttpRequest) -> func.HttpResponse:
    """A source's key and ready URLs, one per format (the tenant's admin key)."""
    from shared.services.sources import InvalidSource, source_setup

    c, tenant_id = await _tenant_admin(req)
    try:
        setup = await source_setup(
            c.store,
            _master_key(c),
            c.settings.graph.public_base_url if c.settings.graph else "",
            tenant_id,
            req.route_params.get("source", ""),
            rotate=req.method == "POST",  # rotate this source's key alone
            rotated_by=_caller(req),
        )
    except InvalidSource as exc:
        return _json_response(400, {"error": str(exc), "field": "source"})
    return _json_response(200, setup)

"""The JSON admin API: health, a tenant's connection and directory, workflows, alerts, account
links, sources, undeliverable and rejected events. Each route checks the operator's or the
tenant's admin key, then calls the service the console calls too.

Imported when a trigger of this surface first runs: no SDK at module level.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared import bootstrap
from shared.entrypoints.common import (
    ADMIN_KEY_HEADER,
    Answer,
    admin_check,
    answers,
    caller,
    configured,
    connect_container,
    json_body,
    json_response,
    master_key,
    route_tenant,
    tenant_admin,
    tenant_admin_body,
)
from shared.settings import SettingsError, local_development, unresolved_message

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.bootstrap import _LazyConnect as _Connect
    from shared.domain.connections import TenantConnection
    from shared.domain.model import AccountLink

log = logging.getLogger(__name__)


@answers
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """``/api/health``: the settings parse. ``?deep=1`` (with the admin key): every dependency is
    tried (Table Storage, the queues and their dead letters, the bot's token, each connected
    tenant's Graph credential); 200 when all are well, else 503, each check saying what it saw."""
    try:
        c = await bootstrap.container()
    except SettingsError as exc:
        return json_response(503, {"status": "misconfigured", "error": str(exc)})
    if req.params.get("deep", "").lower() not in ("1", "true", "yes"):
        if c.settings.unresolved:
            return json_response(200, {"status": "degraded", "off": unresolved_message(c.settings.unresolved)})
        return json_response(200, {"status": "ok"})
    admin_check(req, c)
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
    return json_response(
        200 if healthy else 503, {"status": "ok" if healthy else "unwell", "checks": [r.to_json() for r in results]}
    )


async def _tenant_connection(
    req: func.HttpRequest, *, need_connected: bool
) -> tuple[Container, _Connect, TenantConnection]:
    c, connect = await connect_container()
    tenant_id = route_tenant(req)
    admin_check(req, c, tenant_id=tenant_id)
    connection = await c.store.get_connection(tenant_id)
    if connection is None:
        raise Answer(json_response(404, {"error": f"tenant {tenant_id} is not connected"}))
    if need_connected and connection.status != "connected":
        raise Answer(
            json_response(409, {"error": f"tenant {tenant_id} is {connection.status}: {connection.status_reason}"})
        )
    return c, connect, connection


async def _graph_read(req: func.HttpRequest, read: Callable[[Any, str], Awaitable[Any]]) -> func.HttpResponse:
    from shared.ports import GraphError, ReconsentRequired

    _c, connect, connection = await _tenant_connection(req, need_connected=True)
    try:
        return json_response(200, {"value": await read(connect.directory, connection.tenant_id)})
    except ReconsentRequired as exc:
        return json_response(409, {"error": f"the connection needs consent again: {exc}"})
    except GraphError as exc:
        status = exc.status if exc.status in (403, 404) else 502
        return json_response(status, {"error": str(exc), "permission": exc.permission, "missing": exc.missing})


@answers
async def tenant_teams(req: func.HttpRequest) -> func.HttpResponse:
    return await _graph_read(req, lambda d, tid: d.list_teams(tid))


@answers
async def tenant_channels(req: func.HttpRequest) -> func.HttpResponse:
    team_id = req.route_params.get("team_id", "")
    return await _graph_read(req, lambda d, tid: d.list_channels(tid, team_id))


@answers
async def tenant_users(req: func.HttpRequest) -> func.HttpResponse:
    search = (req.params.get("search") or "").strip()
    if len(search) < 2:
        return json_response(400, {"error": "search must have at least 2 characters"})
    return await _graph_read(req, lambda d, tid: d.search_users(tid, search[:100]))


@answers
async def tenant_status(req: func.HttpRequest) -> func.HttpResponse:
    _c, _connect, connection = await _tenant_connection(req, need_connected=False)
    return json_response(200, connection.public())


@answers
async def tenant_disconnect(req: func.HttpRequest) -> func.HttpResponse:
    _c, connect, connection = await _tenant_connection(req, need_connected=False)
    saved = await connect.consent.disconnect(connection.tenant_id)
    return json_response(200, saved.public() if saved else None)


@answers
async def tenant_admin_key(req: func.HttpRequest) -> func.HttpResponse:
    """The tenant-bound admin key, for the holder of ADMIN_API_KEY to hand to that tenant's UI."""
    from shared.security import tenant_admin_key as derive

    c = await configured()  # needs ADMIN_API_KEY only: no tenant connection (Graph)
    admin_check(req, c)
    tenant_id = route_tenant(req)
    return json_response(
        200, {"tenantId": tenant_id, "header": ADMIN_KEY_HEADER, "key": derive(master_key(c), tenant_id)}
    )


@answers
async def rejected_events(req: func.HttpRequest) -> func.HttpResponse:
    """Events the connector could not process as sent, newest first, with the reason: the
    connector's dead letters (the Service Bus trigger completes such messages)."""
    c = await bootstrap.container()
    admin_check(req, c)
    try:
        limit = min(max(int(req.params.get("limit", "50")), 1), 500)
    except ValueError:
        return json_response(400, {"error": "limit must be a whole number from 1 to 500"})
    rejected = await c.store.list_rejected(limit)
    return json_response(
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


@answers
async def workflows_list(req: func.HttpRequest) -> func.HttpResponse:
    c, tenant_id = await tenant_admin(req)
    found = sorted(await c.store.list_workflows(tenant_id), key=lambda w: w.id)
    return json_response(200, {"count": len(found), "broadcast": not found, "workflows": [w.public() for w in found]})


@answers
async def workflow_item(req: func.HttpRequest) -> func.HttpResponse:
    from shared.domain.workflows import InvalidWorkflow
    from shared.ports import TransientError
    from shared.services import workflows as workflow_service

    c, tenant_id = await tenant_admin(req)
    workflow_id = req.route_params.get("workflow_id", "")
    if req.method == "GET":
        found = await c.store.get_workflow(tenant_id, workflow_id)
        return (
            json_response(200, found.public())
            if found
            else json_response(404, {"error": f"tenant {tenant_id} has no workflow {workflow_id}"})
        )
    if req.method == "DELETE":
        if not await c.store.has_workflow(tenant_id, workflow_id):  # readable or not: it can go
            return json_response(404, {"error": f"tenant {tenant_id} has no workflow {workflow_id}"})
        await c.store.delete_workflow(tenant_id, workflow_id)
        log.info("Workflow %s of tenant %s deleted by %s", workflow_id, tenant_id, caller(req))
        return json_response(204, None)
    body = json_body(req)
    try:
        saved = await workflow_service.save_workflow(
            c.store,
            bootstrap.delivering(c).resolver,
            tenant_id,
            workflow_id,
            body,
            updated_by=caller(req),
            commands=bootstrap.command_queue(c),
        )
    except InvalidWorkflow as exc:
        return json_response(400, {"error": str(exc), "field": exc.field})
    except workflow_service.WorkflowLimit as exc:
        return json_response(409, {"error": str(exc)})
    except TransientError as exc:
        return json_response(503, {"error": str(exc)})
    status = 201 if saved.created else 200
    return json_response(
        status, {**saved.workflow.public(), "changed": saved.changed, "existingAlertsQueued": saved.existing_queued}
    )


@answers
async def workflow_test(req: func.HttpRequest) -> func.HttpResponse:
    from shared.domain.events import InvalidEvent
    from shared.services import workflows as workflow_service

    c, tenant_id, body = await tenant_admin_body(req)
    try:
        return json_response(
            200, await workflow_service.dry_run(c.store, tenant_id, body, bootstrap.delivering(c).resolver)
        )
    except InvalidEvent as exc:
        return json_response(400, {"error": str(exc), "field": exc.field})


@answers
async def alert_send(req: func.HttpRequest) -> func.HttpResponse:
    """The manual "send to Teams": checked and queued as a teams.message.send command."""
    from shared.ports import TransientError
    from shared.services.manual_send import SendRefused, send_alert

    c, tenant_id, body = await tenant_admin_body(req)
    try:
        queued = await send_alert(
            c.store,
            bootstrap.delivering(c).resolver,
            bootstrap.command_queue(c),
            tenant_id,
            req.route_params.get("alert_id", ""),
            body,
            requested_by=caller(req),
        )
    except SendRefused as exc:
        answer: dict[str, Any] = {"error": str(exc)}
        if exc.status == 400:
            answer["field"] = exc.field
        return json_response(exc.status, answer)
    except TransientError as exc:
        return json_response(503, {"error": str(exc)})
    return json_response(202, queued)


@answers
async def undeliverable(req: func.HttpRequest) -> func.HttpResponse:
    """Alerts that reached neither a recipient nor its fallback, newest first."""
    c, tenant_id = await tenant_admin(req)
    try:
        limit = min(max(int(req.params.get("limit", "50")), 1), 500)
    except ValueError:
        return json_response(400, {"error": "limit must be a whole number from 1 to 500"})
    found = await c.store.list_undeliverable(tenant_id, limit)
    return json_response(
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


@answers
async def alert_status(req: func.HttpRequest) -> func.HttpResponse:
    """One alert as the connector holds it, with each of its cards: where, and whether it was
    posted, failed (and why) or is in flight. The smoke test reads it; so can an operator."""
    c, tenant_id = await tenant_admin(req)
    from shared.services.actions import find_alert

    alert_id = req.route_params.get("alert_id", "")
    state = await find_alert(c.store, tenant_id, alert_id)
    if state is None:
        return json_response(404, {"error": f"no alert {alert_id} in tenant {tenant_id}"})
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
    return json_response(
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


def _link_json(link: AccountLink) -> dict[str, Any]:
    return {
        "aadObjectId": link.aad_object_id,
        "platformIdentity": link.platform_identity,
        "method": link.method,
        "verified": link.verified,
        "updated": link.updated.isoformat() if link.updated else None,
    }


@answers
async def links(req: func.HttpRequest) -> func.HttpResponse:
    """The tenant's account links, the ones waiting for approval first."""
    c, tenant_id = await tenant_admin(req)
    found = sorted(await c.store.list_links(tenant_id), key=lambda link: (link.verified, link.aad_object_id))
    return json_response(200, {"count": len(found), "links": [_link_json(link) for link in found]})


@answers
async def put_link(req: func.HttpRequest) -> func.HttpResponse:
    """A connector admin sets (or approves) a person's platform identity: {"platformIdentity"}."""
    from shared.domain.model import AccountLink
    from shared.domain.tenants import is_tenant_id

    c, tenant_id, body = await tenant_admin_body(req)
    aad_object_id = req.route_params.get("aad_object_id", "")
    if not is_tenant_id(aad_object_id):  # Entra object ids are GUIDs too
        return json_response(400, {"error": "the person in the address must be a Microsoft Entra object id (a GUID)"})
    identity = body.get("platformIdentity") if isinstance(body, dict) else None
    if not isinstance(identity, str) or not identity.strip() or len(identity) > 200:
        return json_response(
            400,
            {
                "error": "platformIdentity must be the person's user name on the alerting platform "
                "(1 to 200 characters)",
                "field": "platformIdentity",
            },
        )
    link = AccountLink(tenant_id, aad_object_id.lower(), identity.strip(), "admin", None, bootstrap.clock())
    await c.store.save_link(link)
    log.info("Account link of %s in tenant %s set by %s", aad_object_id, tenant_id, caller(req))
    return json_response(200, _link_json(link))


@answers
async def ingest_setup(req: func.HttpRequest) -> func.HttpResponse:
    """A source's key and ready URLs, one per format (the tenant's admin key)."""
    from shared.services.sources import InvalidSource, source_setup

    c, tenant_id = await tenant_admin(req)
    try:
        setup = await source_setup(
            c.store,
            master_key(c),
            c.settings.graph.public_base_url if c.settings.graph else "",
            tenant_id,
            req.route_params.get("source", ""),
            rotate=req.method == "POST",  # rotate this source's key alone
            rotated_by=caller(req),
        )
    except InvalidSource as exc:
        return json_response(400, {"error": str(exc), "field": "source"})
    return json_response(200, setup)


@answers
async def source_api(req: func.HttpRequest) -> func.HttpResponse:
    """GET: the source's API settings without the credential (404 when unset); PUT: set them
    (``kind``, ``url``, ``auth``), checked, stored encrypted; DELETE: remove them."""
    from shared.domain.source_api import InvalidSourceApi
    from shared.services import sources

    c, tenant_id = await tenant_admin(req)
    source = req.route_params.get("source", "")
    try:
        sources.check_source_name(source)
    except sources.InvalidSource as exc:
        return json_response(400, {"error": str(exc), "field": "source"})
    cipher = bootstrap.source_cipher(c)
    if req.method == "DELETE":
        await sources.clear_source_api(c.store, tenant_id, source, changed_by=caller(req))
        return json_response(204, None)
    if req.method == "PUT":
        body = json_body(req)
        try:
            # Only a local run may name an address on this machine or a private network.
            shown = await sources.set_source_api(
                c.store, cipher, tenant_id, source, body, allow_local_http=local_development(), changed_by=caller(req)
            )
        except InvalidSourceApi as exc:
            return json_response(400, {"error": exc.message, "field": exc.field})
        return json_response(200, shown)
    api = await sources.source_api(c.store, cipher, tenant_id, source)
    if api is None:
        return json_response(404, {"error": f"source {source} has no API set (PUT it to make silences there)"})
    return json_response(200, api.public())

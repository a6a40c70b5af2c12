"""Alert events in: the alert-events queue trigger, and the ingest route that puts webhooks from
alert sources on that queue.

Imported when a trigger of this surface first runs: no SDK at module level.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import bootstrap
from shared.entrypoints.common import answers, configured, json_response
from shared.services import processing as event_service
from shared.services.sources import INGEST_KEY_HEADER, SOURCE_NAME

log = logging.getLogger(__name__)


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


@answers
async def ingest(req: func.HttpRequest) -> func.HttpResponse:
    import hashlib

    from shared.domain.events import MAX_EVENT_BYTES, InvalidEvent, decode_json, to_cloudevent
    from shared.domain.inbound import FORMAT_NAMES, format_named, parse_as
    from shared.domain.tenants import InvalidTenantId
    from shared.domain.tenants import tenant_id as parse_tenant
    from shared.security import ingest_key, same_secret

    c = await configured()
    fmt = format_named(req.route_params.get("format", ""))
    if fmt is None:
        return json_response(404, {"error": f"unknown format; the connector reads {', '.join(FORMAT_NAMES)}"})
    if not c.settings.admin_api_key:
        unresolved = "ADMIN_API_KEY" in c.settings.unresolved
        why = "ADMIN_API_KEY is an unresolved Key Vault reference" if unresolved else "set ADMIN_API_KEY"
        return json_response(503, {"error": f"ingest is off: {why} (source keys are derived from it)"})
    try:
        tenant = parse_tenant(req.params.get("tenant", ""))
    except InvalidTenantId as exc:
        return json_response(400, {"error": f"tenant {exc}", "field": "tenant"})
    source = req.params.get("source", "")
    if not SOURCE_NAME.fullmatch(source):
        return json_response(
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
        return json_response(
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
        return json_response(
            415, {"error": f"the payload must be sent as application/json, not {content_type or 'no Content-Type'}"}
        )
    raw = req.get_body() or b""
    if len(raw) > MAX_EVENT_BYTES:
        return json_response(
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
        return json_response(400, {"error": str(exc), "field": exc.field, "eventId": exc.event_id})
    queue = bootstrap.command_queue(c)
    if queue is None:
        return json_response(
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
    return json_response(
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

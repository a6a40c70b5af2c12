"""Decode each trigger's input, call one service function, encode the output.

Imported by function_app at start: keep it light (no SDK imports at module level).
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import bootstrap
from shared.services import bot as bot_service
from shared.services import events as event_service
from shared.services import periodic as periodic_service
from shared.settings import SettingsError

log = logging.getLogger(__name__)


def _json_response(status: int, body: object | None) -> func.HttpResponse:
    if body is None:
        return func.HttpResponse(status_code=status)
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


async def bot_messages(req: func.HttpRequest) -> func.HttpResponse:
    try:
        c = await bootstrap.container()
    except SettingsError as exc:
        log.error("Configuration error: %s", exc)
        return _json_response(500, {"error": "the connector is not configured; see its log"})

    async def handle(activity: dict, reference: dict):
        return await bot_service.handle_activity(activity, reference, store=c.store)

    status, body = await c.bot.process(req.get_body(), req.headers.get("Authorization"), handle)
    return _json_response(status, body)


async def alert_event(msg: func.ServiceBusMessage) -> None:
    c = await bootstrap.container()
    message_id = msg.message_id or "(no message id)"
    outcomes = await event_service.process_message(
        msg.get_body(), message_id, store=c.store, messenger=c.messenger, default_tenant_id=c.settings.default_tenant_id
    )
    for outcome in outcomes:
        if outcome.result == "rejected":
            # Recorded in the rejected-events table with its reason; completing the message
            # (returning normally) keeps an invalid event from being retried.
            log.error("Message %s rejected: %s", message_id, outcome.detail)


async def periodic(timer: func.TimerRequest) -> None:
    c = await bootstrap.container()
    if timer.past_due:
        log.info("The periodic run is late; running now")
    await periodic_service.run_periodic(store=c.store, messenger=c.messenger, reminder_after_minutes=c.settings.reminder_after_minutes)


async def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        await bootstrap.container()
    except SettingsError as exc:
        return _json_response(503, {"status": "misconfigured", "error": str(exc)})
    return _json_response(200, {"status": "ok"})

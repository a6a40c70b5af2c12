"""The Bot Framework endpoint: Teams' activities (messages, card buttons, installations).

Imported when a trigger of this surface first runs: no SDK at module level.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from shared import bootstrap
from shared.entrypoints.common import answers, configured, json_response
from shared.services import bot as bot_service

log = logging.getLogger(__name__)


@answers
async def bot_messages(req: func.HttpRequest) -> func.HttpResponse:
    c = await configured()

    async def handle(activity: dict[str, Any], reference: dict[str, Any]) -> bot_service.BotReply:
        actions = await bootstrap.action_context(c, bot_service.actor_of(activity).tenant_id)
        return await bot_service.handle_activity(activity, reference, store=c.store, actions=actions)

    status, body = await c.bot.process(req.get_body(), req.headers.get("Authorization"), handle)
    return json_response(status, body)

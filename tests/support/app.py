"""Drive function_app's own functions the way the Functions host would call them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

_functions: dict[str, Any] | None = None


def functions() -> dict[str, Any]:
    """function name → user function; ``get_functions()`` is called once per app object."""
    global _functions
    if _functions is None:
        import function_app

        _functions = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
    return _functions


async def post_activity(activity: dict, authorization: str | None) -> func.HttpResponse:
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    request = func.HttpRequest("POST", "http://localhost:7071/api/messages", headers=headers, body=json.dumps(activity).encode())
    return await functions()["bot_messages"](request)


def queue_message(body: bytes | str | dict, message_id: str | None = None, delivery_count: int = 1) -> ServiceBusMessage:
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body.encode() if isinstance(body, str) else body)
    return ServiceBusMessage(
        body=raw, message_id=message_id or str(uuid.uuid4()), delivery_count=delivery_count,
        application_properties={}, user_properties={}, content_type="application/json",
    )


async def deliver(body: bytes | str | dict, message_id: str | None = None) -> None:
    await functions()["alert_events"](queue_message(body, message_id))


async def tick(past_due: bool = False) -> None:
    await functions()["periodic"](TimerRequest(past_due=past_due))

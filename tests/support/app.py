"""Drive function_app's own functions the way the Functions host would call them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

_functions: dict[str, Any] | None = None
# The queue sink the app's queues point at (set by the e2e fixtures): delivery jobs wait there
# until :func:`run_deliveries` hands them to the deliveries function.
SINK: Any = None
# Bound on rounds of draining (a job may schedule another: throttling, fallback, summary).
MAX_DRAIN_ROUNDS = 50


class TestClock:
    """The app's delivery clock in end-to-end tests: it starts at the real time and moves
    only when a test (or a scheduled job, or a short wait in the app) moves it."""

    def __init__(self) -> None:
        from datetime import datetime

        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


CLOCK: TestClock | None = None


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
    request = func.HttpRequest(
        "POST", "http://localhost:7071/api/messages", headers=headers, body=json.dumps(activity).encode()
    )
    response = await functions()["bot_messages"](request)
    await run_deliveries()
    return response


async def run_deliveries() -> list[dict]:
    """Hand the queued delivery messages (jobs, bundles) to the deliveries function the way
    Service Bus sessions would: each session's ready messages in order, one at a time. A
    scheduled job runs in a later round (time passes between rounds; nothing waits in real
    time). Returns the messages that ran."""
    ran: list[dict] = []
    if SINK is None:
        return ran
    for _ in range(MAX_DRAIN_ROUNDS):
        if not SINK.jobs:
            return ran
        pending, SINK.jobs[:] = list(SINK.jobs), []
        now = CLOCK.now if CLOCK is not None else None
        ready = [
            j
            for j in pending
            if not j["scheduled"] or (now is not None and datetime.fromisoformat(j["scheduled"]) <= now)
        ]
        if not ready:  # only scheduled jobs are left: time passes until the first is due
            first = min(datetime.fromisoformat(j["scheduled"]) for j in pending)
            if CLOCK is not None and first > CLOCK.now:
                CLOCK.now = first
            ready = [j for j in pending if datetime.fromisoformat(j["scheduled"]) <= first]
        SINK.jobs.extend(j for j in pending if j not in ready)
        sessions: dict[str, list[dict]] = {}
        for job in ready:
            sessions.setdefault(job["sessionId"], []).append(job)
        for jobs in sessions.values():
            for job in jobs:
                await functions()["deliveries"](queue_message(job["body"], job["messageId"]))
                ran.append(job)
    raise AssertionError(f"delivery jobs kept coming after {MAX_DRAIN_ROUNDS} rounds: {SINK.jobs[:3]}")


def queue_message(
    body: bytes | str | dict, message_id: str | None = None, delivery_count: int = 1
) -> ServiceBusMessage:
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body.encode() if isinstance(body, str) else body)
    return ServiceBusMessage(
        body=raw,
        message_id=message_id or str(uuid.uuid4()),
        delivery_count=delivery_count,
        application_properties={},
        user_properties={},
        content_type="application/json",
    )


async def deliver(body: bytes | str | dict, message_id: str | None = None) -> None:
    """The alert-events trigger, then the delivery jobs it queued."""
    await functions()["alert_events"]([queue_message(body, message_id)])
    await run_deliveries()


async def tick(past_due: bool = False) -> None:
    await functions()["periodic"](TimerRequest(past_due=past_due))
    await run_deliveries()

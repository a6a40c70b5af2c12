"""Teams Alert Connector: every trigger of the app, each a few lines of wiring."""

import azure.functions as func

from shared import entrypoints
from shared.settings import check_startup_safety

check_startup_safety()  # refuse development-only switches in Azure before serving anything

app = func.FunctionApp()


@app.route(route="messages", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def bot_messages(req: func.HttpRequest) -> func.HttpResponse:
    """Bot Framework endpoint: the request's JWT is the authentication."""
    return await entrypoints.bot_messages(req)


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%ALERT_EVENTS_QUEUE%", connection="ServiceBusConnection")
async def alert_events(msg: func.ServiceBusMessage) -> None:
    """Alert and issue events: CloudEvents or Alertmanager payloads."""
    await entrypoints.alert_event(msg)


@app.timer_trigger(arg_name="timer", schedule="%PERIODIC_SCHEDULE%", run_on_startup=False)
async def periodic(timer: func.TimerRequest) -> None:
    """Reminders for alerts left open."""
    await entrypoints.periodic(timer)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness and configuration check."""
    return await entrypoints.health(req)

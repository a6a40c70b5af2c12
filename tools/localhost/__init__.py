"""A local host for the function app, for development only (never deployed).

Core Tools cannot be installed everywhere, so this runs an ``azure.functions.FunctionApp``
the way the Functions host would: HTTP routes under ``/api/``, Service Bus queues in
memory with peek-lock, redelivery and dead-lettering, and NCRONTAB timers; plus a
management API under ``/_localhost/`` to publish messages and inspect queues.

    python -m tools.localhost [--port 7071] [--app function_app] [--settings FILE]
"""

from .host import DEFAULT_PORT, InvocationResult, LocalHost, read_host_json
from .indexing import (
    HttpFunction,
    IndexedFunction,
    IndexingError,
    QueueFunction,
    TimerFunction,
    index_app,
    load_app,
)
from .queues import (
    ACTIVE,
    COMPLETED,
    DEAD_LETTERED,
    MAX_DELIVERY_COUNT_EXCEEDED,
    MemoryQueue,
    MessageInfo,
)
from .schedule import NCrontab, ScheduleError
from .settings import SettingsError, load_settings, resolve_expression

__all__ = [
    "ACTIVE",
    "COMPLETED",
    "DEAD_LETTERED",
    "DEFAULT_PORT",
    "MAX_DELIVERY_COUNT_EXCEEDED",
    "HttpFunction",
    "IndexedFunction",
    "IndexingError",
    "InvocationResult",
    "LocalHost",
    "MemoryQueue",
    "MessageInfo",
    "NCrontab",
    "QueueFunction",
    "ScheduleError",
    "SettingsError",
    "TimerFunction",
    "index_app",
    "load_app",
    "load_settings",
    "read_host_json",
    "resolve_expression",
]

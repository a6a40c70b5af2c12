"""Indexing: what the Functions host learns from ``app.get_functions()``."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import azure.functions as func

from .routes import RouteTemplate
from .schedule import NCrontab
from .settings import resolve_expression

logger = logging.getLogger("tools.localhost")

# Binding type names as written in function.json (azure/functions/decorators/constants.py).
HTTP_TRIGGER = "httpTrigger"
HTTP_OUTPUT = "http"
SERVICE_BUS_TRIGGER = "serviceBusTrigger"
SERVICE_BUS_OUTPUT = "serviceBus"
TIMER_TRIGGER = "timerTrigger"


class IndexingError(Exception):
    """The app cannot be indexed: a bad binding, a missing setting, an unsupported trigger."""


@dataclass(frozen=True)
class OutputQueue:
    """A ``service_bus_queue_output`` binding: the argument receives a ``func.Out``."""

    arg_name: str
    queue_name: str


@dataclass
class IndexedFunction:
    """One function of the app with its trigger, as the host sees it."""

    name: str
    trigger_type: str
    arg_name: str
    user_function: Callable[..., Any]
    properties: dict[str, Any]
    output_queues: list[OutputQueue] = field(default_factory=list)
    unsupported_args: list[str] = field(default_factory=list)
    wants_context: bool = False

    @property
    def is_async(self) -> bool:
        """True for ``async def`` functions, which run on the event loop."""
        return inspect.iscoroutinefunction(self.user_function)


@dataclass
class HttpFunction(IndexedFunction):
    """An ``httpTrigger`` function."""

    route: RouteTemplate = None  # type: ignore[assignment]
    methods: frozenset[str] | None = None  # None: every method
    auth_level: str = "function"


@dataclass
class QueueFunction(IndexedFunction):
    """A ``serviceBusTrigger`` function on a queue."""

    queue_name: str = ""
    connection: str = ""
    is_sessions_enabled: bool = False
    cardinality: str = "one"


@dataclass
class TimerFunction(IndexedFunction):
    """A ``timerTrigger`` function."""

    schedule: NCrontab = None  # type: ignore[assignment]
    run_on_startup: bool = False


def load_app(spec: str) -> func.FunctionApp:
    """Import ``module`` or ``module:attribute`` (default attribute ``app``)."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise IndexingError(
                f"cannot import the app module {module_name!r}: run from the directory that "
                f"holds {module_name}.py or pass --app MODULE"
            ) from None
        raise
    app = getattr(module, attribute, None)
    if app is None or not hasattr(app, "get_functions"):
        raise IndexingError(f"{module_name}.{attribute} is not an azure.functions.FunctionApp")
    return app


def _plain(value: Any) -> Any:
    """Enum members (HttpMethod, AuthLevel, Cardinality) as their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _binding_dict(binding: Any) -> dict[str, Any]:
    return {key: _plain(value) for key, value in binding.get_dict_repr().items()}


def index_app(app: func.FunctionApp, settings: Mapping[str, str]) -> list[IndexedFunction]:
    """Read every function's trigger and output bindings, resolving ``%NAME%`` from settings.

    ``app.get_functions()`` is called exactly once: a second call on the same app
    object raises "does not have a unique function name".
    """
    indexed = []
    for function in app.get_functions():
        indexed.append(_index_function(function, settings))
    return indexed


def _index_function(function: func.Function, settings: Mapping[str, str]) -> IndexedFunction:
    name = function.get_function_name()
    trigger = function.get_trigger()
    properties = _binding_dict(trigger)

    def resolved(key: str) -> str:
        value = properties.get(key)
        if not isinstance(value, str):
            raise IndexingError(f"function {name!r}: the {trigger.type} binding has no {key}")
        return resolve_expression(value, settings, where=f"function {name!r} ({key})")

    user_function = function.get_user_function()
    common: dict[str, Any] = {
        "name": name,
        "trigger_type": trigger.type,
        "arg_name": trigger.name,
        "user_function": user_function,
        "properties": properties,
    }
    if trigger.type == HTTP_TRIGGER:
        methods = properties.get("methods")
        described: IndexedFunction = HttpFunction(
            **common,
            route=RouteTemplate(resolved("route")),
            methods=frozenset(str(m).upper() for m in methods) if methods else None,
            auth_level=str(properties.get("authLevel") or "function").lower(),
        )
    elif trigger.type == SERVICE_BUS_TRIGGER:
        if "queueName" not in properties:
            raise IndexingError(f"function {name!r}: Service Bus topic triggers are not emulated, only queues")
        described = QueueFunction(
            **common,
            queue_name=resolved("queueName"),
            connection=str(properties.get("connection") or ""),
            is_sessions_enabled=bool(properties.get("isSessionsEnabled")),
            cardinality=str(properties.get("cardinality") or "one").lower(),
        )
    elif trigger.type == TIMER_TRIGGER:
        described = TimerFunction(
            **common,
            schedule=NCrontab(resolved("schedule")),
            run_on_startup=bool(properties.get("runOnStartup")),
        )
    else:
        raise IndexingError(f"function {name!r}: trigger type {trigger.type!r} is not emulated")

    for binding in function.get_bindings():
        if binding is trigger or binding.name == "$return":
            continue
        if binding.type == SERVICE_BUS_OUTPUT and "queueName" in _binding_dict(binding):
            queue = resolve_expression(
                _binding_dict(binding)["queueName"], settings, where=f"function {name!r} (output {binding.name})"
            )
            described.output_queues.append(OutputQueue(binding.name, queue))
        else:
            described.unsupported_args.append(binding.name)
            logger.warning(
                "Function %s: binding %r (%s) is not emulated; the argument will be None",
                name,
                binding.name,
                binding.type,
            )

    # The Python worker passes the invocation context to a parameter named "context".
    described.wants_context = "context" in inspect.signature(user_function).parameters
    return described

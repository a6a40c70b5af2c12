"""Per-test faults: the next N matching requests get an error status or extra latency."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

# Error bodies as Teams' Bot Connector returns them (Teams docs, "Status codes from bot
# conversational APIs"; observed responses quoted in BotFramework-Services and bot-docs issues).
DEFAULT_ERROR_BODIES: dict[int, dict[str, Any]] = {
    400: {"error": {"code": "BadArgument", "message": "Invalid request payload."}},
    401: {"error": {"code": "BotNotRegistered", "message": "No registration found for this bot."}},
    403: {
        "error": {
            "code": "BotNotInConversationRoster",
            "message": "The bot is not part of the conversation roster.",
        }
    },
    404: {"error": {"code": "ActivityNotFoundInConversation", "message": "Conversation not found."}},
    412: {"error": {"code": "PreconditionFailed", "message": "Precondition failed, please try again."}},
    413: {"error": {"code": "MessageSizeTooBig", "message": "Message size too large."}},
    429: {"error": {"code": "Throttled", "message": "Too many requests."}},
    500: {"error": {"code": "ServiceError", "message": "Unknown"}},
    502: {"error": {"code": "ServiceError", "message": "Internal server error"}},
    503: {"error": {"code": "ServiceUnavailable", "message": "Service unavailable."}},
    504: {"error": {"code": "GatewayTimeout", "message": "Gateway timeout."}},
}


def error_body(status: int) -> dict[str, Any]:
    """The Bot Connector error body for a status (a generic one for unlisted statuses)."""
    return DEFAULT_ERROR_BODIES.get(status, {"error": {"code": "ServiceError", "message": f"HTTP {status}"}})


@dataclass
class Fault:
    """A fault waiting for matching requests.

    ``status`` None means the request is only delayed by ``delay`` seconds and then served.
    """

    method: str | None
    path_pattern: re.Pattern[str]
    status: int | None
    retry_after: float | None
    times: int
    delay: float
    body: Any
    headers: dict[str, str]
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self.path_pattern.search(path) is not None

    @property
    def exhausted(self) -> bool:
        return self.hits >= self.times

    def response_body(self) -> Any:
        return self.body if self.body is not None else error_body(self.status or 500)

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after is not None:
            value = self.retry_after
            headers["Retry-After"] = str(int(value)) if float(value).is_integer() else str(value)
        return headers


class FaultInjector:
    """Holds faults in the order they were added; each request consumes the first match."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        method: str | None = "POST",
        path_pattern: str = r"/activities$",
        status: int | None = 429,
        retry_after: float | None = None,
        times: int = 1,
        delay: float = 0.0,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        if status is None and delay <= 0:
            raise ValueError("a fault needs a status, a delay, or both")
        fault = Fault(
            method=method,
            path_pattern=re.compile(path_pattern),
            status=status,
            retry_after=retry_after,
            times=times,
            delay=delay,
            body=body,
            headers=dict(headers or {}),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching the request, if any."""
        with self._lock:
            for fault in self._faults:
                if not fault.exhausted and fault.matches(method, path):
                    fault.hits += 1
                    return fault
            return None

    def pending(self) -> list[Fault]:
        """Faults with uses left."""
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

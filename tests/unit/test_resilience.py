"""One resilience policy (shared/resilience.py) for the Bot Connector and Microsoft Graph: which
answers are permanent, how Retry-After is read, how long the app waits inside a call."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.resilience import GRAPH, RetryPolicy, exponential, is_permanent, parse_retry_after

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class TestWhatIsPermanent:
    @pytest.mark.parametrize("status", [400, 403, 404, 409, 413])
    def test_a_request_the_service_refuses_is_permanent(self, status):
        assert is_permanent(status)

    @pytest.mark.parametrize("status", [None, 401, 408, 412, 429, 500, 502, 503, 504])
    def test_throttling_timeouts_expired_tokens_and_server_errors_are_tried_again(self, status):
        assert not is_permanent(status)


class TestRetryAfter:
    def test_seconds(self):
        assert parse_retry_after("7") == 7.0 and parse_retry_after(" 0.5 ") == 0.5

    def test_an_http_date(self):
        assert parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now=NOW) == 30.0

    @pytest.mark.parametrize("value", [None, "", "soon", "Mon, 99 Foo"])
    def test_absent_or_unreadable_is_none(self, value):
        assert parse_retry_after(value, now=NOW) is None

    @pytest.mark.parametrize("value", ["-5", "Mon, 23 Nov 2026 11:00:00 GMT"])
    def test_never_negative(self, value):
        assert parse_retry_after(value, now=NOW) == 0.0


class TestRetryNow:
    def test_retry_after_is_waited_when_within_the_bound(self):
        assert GRAPH.wait_before_retry(1, 429, 30.0) == 30.0

    def test_a_longer_retry_after_is_left_to_a_later_run(self):
        assert GRAPH.wait_before_retry(1, 429, 31.0) is None

    def test_without_retry_after_the_backoff_doubles(self):
        policy = RetryPolicy(backoff_seconds=0.5)
        assert [policy.wait_before_retry(a, 503, None) for a in (1, 2, 3)] == [0.5, 1.0, 2.0]

    def test_an_unreachable_service_is_retried_with_the_backoff(self):
        assert GRAPH.wait_before_retry(1, None, None) == GRAPH.backoff_seconds

    def test_attempts_are_bounded(self):
        assert GRAPH.wait_before_retry(GRAPH.max_attempts, 429, 1.0) is None

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
    def test_other_statuses_are_not_retried_inside_the_call(self, status):
        assert GRAPH.wait_before_retry(1, status, 1.0) is None

    def test_exponential_is_capped(self):
        assert exponential(20, first=2.0, cap=300.0) == 300.0 and exponential(1, first=2.0, cap=300.0) == 2.0


def test_no_adapter_or_service_keeps_a_status_set_of_its_own():
    """Retryable statuses live in shared/resilience.py only: a set of HTTP statuses anywhere
    else in shared/ is a second policy."""
    found = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        if path.name == "resilience.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Set):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, int)}
                if values & {429, 503} and values <= set(range(100, 600)):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize("adapter", ["teams_bot.py", "graph.py", "delegated_messenger.py"])
def test_every_outbound_adapter_uses_the_policy(adapter):
    source = (ROOT / "shared" / "adapters" / adapter).read_text(encoding="utf-8")
    assert "from shared.resilience import" in source

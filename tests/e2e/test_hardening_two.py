"""A second attack review's findings, each closed where it was and tested through the app's
own entry points (the workflow routes, the queue trigger, the ingest route, the bot)."""

from __future__ import annotations

import json

from tests.e2e.conftest import TENANT_ID
from tests.e2e.test_consent import m365  # noqa: F401 - a fixture
from tests.e2e.test_workflows import admin, alert, channel_recipient, put_workflow, routed, texts  # noqa: F401
from tests.support.app import deliver


def regex_workflow(pattern: str) -> dict:
    return {
        "name": "pattern",
        "trigger": "new_or_updated",
        "match": {"labels": [{"key": "service", "op": "regex", "value": pattern}]},
    }


class TestACatastrophicPatternStallsNothing:
    async def test_a_nested_quantifier_is_matched_in_linear_time_over_a_long_label(self, routed):
        sim, t = routed, routed.m365
        await put_workflow(
            "pattern",
            match={"labels": [{"key": "service", "op": "regex", "value": "(a+)+$"}]},
            recipients=[channel_recipient(t.oncall)],
            fallbackRecipients=[channel_recipient(t.sre)],
        )
        # A backtracking engine takes 2^n steps here (n = 1,000: never ends); RE2 takes n.
        await deliver(alert(id="ALRT-LONG-1", labels={"service": "a" * 1000 + "!"}))
        await deliver(alert(id="ALRT-LONG-2", labels={"service": "a" * 1000}))
        shown = " ".join(texts(sim, t.oncall.id))
        assert "ALRT-LONG-2" in shown and "ALRT-LONG-1" not in shown

    async def test_a_pattern_that_needs_backtracking_is_refused_naming_the_field(self, routed):
        t = routed.m365
        body = {
            **regex_workflow(r"(a)\1"),
            "recipients": [channel_recipient(t.oncall)],
            "fallbackRecipients": [channel_recipient(t.sre)],
        }
        response = await admin(
            "workflow_item", "PUT", f"tenants/{TENANT_ID}/workflows/pattern", body, workflow_id="pattern"
        )
        answer = json.loads(response.get_body())
        assert response.status_code == 400 and answer["field"] == "match.labels[0].value", answer
        assert "linear time" in answer["error"]

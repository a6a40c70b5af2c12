"""PagerDuty v3 webhooks → alert events: golden files (tests/golden/pagerduty, sources in the
README there) and the mapping rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.domain.events import InvalidEvent
from shared.domain.inbound import parse_message

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "pagerduty"
VALID = sorted(p for p in GOLDEN.glob("*.json") if not p.name.endswith(".expected.json"))


def load(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text())


class TestMapping:
    def test_an_incident_is_one_alert_through_trigger_ack_and_resolve(self):
        [triggered] = parse_message(json.dumps(load("incident-triggered-2025.json")))
        [acknowledged] = parse_message(json.dumps(load("incident-acknowledged-2025.json")))
        [resolved] = parse_message(json.dumps(load("incident-resolved-2025.json")))
        assert triggered.data.id == acknowledged.data.id == resolved.data.id == "Q2CKYRLH85UNN4"
        assert [e.type for e in (triggered, acknowledged, resolved)] == [
            "alert.created",
            "alert.acknowledged",
            "alert.resolved",
        ]
        assert triggered.data.version < acknowledged.data.version < resolved.data.version
        assert triggered.source == "https://aldaviva.pagerduty.com" and triggered.data.url.endswith(
            "/incidents/Q2CKYRLH85UNN4"
        )

    def test_severity_is_the_priority_when_set_else_the_urgency(self):
        [with_priority] = parse_message(json.dumps(load("incident-priority-updated.json")))
        [low] = parse_message(json.dumps(load("incident-triggered-2025.json")))
        assert (with_priority.data.severity, with_priority.data.labels["priority"]) == ("critical", "P1")
        assert (low.data.severity, low.data.labels["urgency"]) == ("low", "low")

    def test_a_note_changes_no_alert(self):
        assert parse_message(json.dumps(load("incident-annotated.json"))) == []

    def test_a_broken_status_is_refused_naming_it(self):
        payload = load("incident-triggered-2025.json")
        payload["event"]["data"]["status"] = "snoozed"
        with pytest.raises(InvalidEvent) as caught:
            parse_message(json.dumps(payload))
        assert caught.value.field == "event.data.status"

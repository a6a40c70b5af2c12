"""The files in examples/ are what people send first: each must be accepted as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from shared.domain.inbound import parse_message

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMA = Draft202012Validator(json.loads((ROOT / "schemas" / "alert-event.schema.json").read_text(encoding="utf-8")))
CLOUDEVENT_EXAMPLES = ["alert-created.json", "alert-acknowledged.json", "alert-resolved.json", "issue-created.json"]
ALERTMANAGER_EXAMPLES = ["alertmanager-firing.json", "alertmanager-resolved.json"]
# One payload of every other format a source posts (copied from tests/golden; examples/SOURCES.md).
WEBHOOK_EXAMPLES = {
    "grafana-firing.json": "grafana",
    "azure-monitor-metric-fired.json": "azure-monitor",
    "pagerduty-incident-triggered.json": "pagerduty",
}


def parse(name: str):
    return parse_message((EXAMPLES / name).read_bytes())


class TestEveryExampleIsAccepted:
    @pytest.mark.parametrize("name", CLOUDEVENT_EXAMPLES + ALERTMANAGER_EXAMPLES + list(WEBHOOK_EXAMPLES))
    def test_the_example_parses(self, name):
        assert parse(name)

    @pytest.mark.parametrize(("name", "fmt"), sorted(WEBHOOK_EXAMPLES.items()))
    def test_the_webhook_example_is_read_as_its_format_by_the_ingest_route(self, name, fmt):
        from shared.domain.events import decode_json
        from shared.domain.inbound import format_named, parse_as

        found = format_named(fmt)
        assert found is not None and parse_as(found, decode_json((EXAMPLES / name).read_bytes()))

    @pytest.mark.parametrize("name", CLOUDEVENT_EXAMPLES)
    def test_the_cloudevent_example_follows_the_published_schema(self, name):
        instance = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
        assert SCHEMA.is_valid(instance), list(SCHEMA.iter_errors(instance))

    def test_no_example_is_left_untested(self):
        assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted(
            CLOUDEVENT_EXAMPLES + ALERTMANAGER_EXAMPLES + list(WEBHOOK_EXAMPLES)
        )


class TestTheAlertLifecycleExamples:
    def test_they_describe_one_alert_through_versions_1_2_3(self):
        events = [parse(name)[0] for name in ("alert-created.json", "alert-acknowledged.json", "alert-resolved.json")]
        assert {(e.source, e.data.id) for e in events} == {("https://alerts.example.com", "ALRT-1042")}
        assert [e.data.version for e in events] == [1, 2, 3]
        assert [e.new_status for e in events] == ["open", "acknowledged", "resolved"]

    def test_each_has_its_own_event_id(self):
        ids = {
            parse(name)[0].event_id for name in ("alert-created.json", "alert-acknowledged.json", "alert-resolved.json")
        }
        assert len(ids) == 3

    def test_the_links_point_to_the_alerting_platform_and_responders_are_set(self):
        (event,) = parse("alert-created.json")
        assert event.data.url.startswith("https://alerts.example.com/")
        assert "alexw@example.com" in event.data.responders


class TestTheIssueExample:
    def test_it_is_an_open_security_issue_for_a_named_tenant(self):
        (event,) = parse("issue-created.json")
        assert (event.type, event.data.kind, event.new_status) == ("issue.created", "issue", "open")
        assert event.tenant_id


class TestTheAlertmanagerExamples:
    def test_firing_then_resolved_is_the_same_alert_with_a_higher_version(self):
        (firing,) = parse("alertmanager-firing.json")
        (resolved,) = parse("alertmanager-resolved.json")
        assert (firing.type, resolved.type) == ("alert.created", "alert.resolved")
        assert firing.data.id == resolved.data.id
        assert resolved.data.version > firing.data.version
        assert firing.event_id != resolved.event_id

"""Alertmanager webhook payloads → alert events: golden files plus the rules behind them.

Golden files live in tests/golden/alertmanager: NAME.json is what Alertmanager posts,
NAME.expected.json the events it becomes. ``pytest --update-golden`` rewrites the expected
files from the current code; review the diff before committing it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from shared.domain.alertmanager import labels_fingerprint, map_severity, parse_alertmanager
from shared.domain.events import MAX_LABELS, AlertEvent, InvalidEvent, epoch_micros, parse_time
from shared.domain.inbound import parse_message
from tests.support.golden import check_golden, expected_path, render

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "alertmanager"
VALID = sorted(p for p in GOLDEN.glob("*.json") if not p.name.endswith(".expected.json"))
INVALID = sorted(p for p in (GOLDEN / "invalid").glob("*.json") if not p.name.endswith(".expected.json"))


def load(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


class TestGoldenPayloads:
    @pytest.mark.parametrize("payload", VALID, ids=lambda p: p.stem)
    def test_payload_normalises_to_the_expected_events(self, request, payload):
        events = parse_message(payload.read_bytes())
        check_golden(request, payload, render(events))

    @pytest.mark.parametrize("payload", INVALID, ids=lambda p: p.stem)
    def test_invalid_payload_is_rejected_naming_the_field(self, request, payload):
        with pytest.raises(InvalidEvent) as caught:
            parse_message(payload.read_bytes())
        check_golden(request, payload, {"field": caught.value.field, "message": str(caught.value)})

    def test_every_golden_payload_has_an_expected_file(self):
        assert len(VALID) >= 5 and len(INVALID) >= 8
        for payload in VALID + INVALID:
            assert expected_path(payload).exists(), payload.name


class TestEachAlertBecomesOneEvent:
    def test_a_group_of_two_alerts_becomes_two_events_in_order(self):
        events = parse_alertmanager(load("firing-node-filesystem-group.json"))
        assert [e.data.id for e in events] == ["4f7a2e1c9b3d8a60", "b81d05e3f6c2a917"]

    def test_a_firing_alert_is_created_and_open_with_its_start_as_version(self):
        (event, _) = parse_alertmanager(load("firing-node-filesystem-group.json"))
        assert event.type == "alert.created"
        assert event.data.status == "open" and event.new_status == "open"
        assert event.data.version == epoch_micros(parse_time("2024-05-14T08:31:46.358452Z", "t"))

    def test_a_resolved_alert_is_resolved_with_its_end_as_version(self):
        (event,) = parse_alertmanager(load("resolved-node-filesystem.json"))
        assert event.type == "alert.resolved" and event.new_status == "resolved"
        assert event.data.version == epoch_micros(parse_time("2024-05-14T09:12:16.358452Z", "t"))
        assert event.data.created == parse_time("2024-05-14T08:31:46.358452Z", "t")

    def test_the_resolve_of_an_alert_orders_after_its_firing(self):
        firing = parse_alertmanager(load("firing-node-filesystem-group.json"))[0]
        (resolved,) = parse_alertmanager(load("resolved-node-filesystem.json"))
        assert resolved.data.id == firing.data.id
        assert resolved.data.version > firing.data.version
        assert resolved.event_id != firing.event_id

    def test_a_resolve_stamped_no_later_than_the_start_still_orders_after_it(self):
        payload = load("resolved-node-filesystem.json")
        payload["alerts"][0]["endsAt"] = payload["alerts"][0]["startsAt"]
        (resolved,) = parse_alertmanager(payload)
        firing = parse_alertmanager(load("firing-node-filesystem-group.json"))[0]
        assert resolved.data.version == firing.data.version + 1

    def test_the_event_source_is_the_alertmanager_external_url(self):
        (event, _) = parse_alertmanager(load("firing-node-filesystem-group.json"))
        assert event.source == "http://alertmanager-main-0.alertmanager-operated:9093"
        assert event.data.source == "alertmanager/teams-infra"

    def test_without_external_url_or_receiver_the_sources_are_alertmanager(self):
        payload = load("firing-node-filesystem-group.json")
        del payload["externalURL"], payload["receiver"]
        events = parse_alertmanager(payload)
        assert {(e.source, e.data.source) for e in events} == {("alertmanager", "alertmanager")}


class TestRedeliveryDeduplicates:
    def test_the_same_payload_twice_gives_the_same_event_ids(self):
        first = parse_alertmanager(load("firing-node-filesystem-group.json"))
        second = parse_alertmanager(load("firing-node-filesystem-group.json"))
        assert [e.event_id for e in first] == [e.event_id for e in second]
        assert [e.dedupe_key for e in first] == [e.dedupe_key for e in second]

    def test_a_repeat_notification_with_another_group_status_keeps_each_event_id(self):
        payload = load("firing-node-filesystem-group.json")
        original = [e.event_id for e in parse_alertmanager(payload)]
        payload["alerts"][1]["status"] = "resolved"
        payload["alerts"][1]["endsAt"] = "2024-05-14T09:00:00Z"
        payload["status"] = "firing"
        repeated = parse_alertmanager(payload)
        assert repeated[0].event_id == original[0]
        assert repeated[1].event_id != original[1]

    def test_a_refiring_alert_is_a_new_event_with_a_higher_version(self):
        payload = load("firing-node-filesystem-group.json")
        before = parse_alertmanager(payload)[0]
        payload["alerts"][0]["startsAt"] = "2024-05-14T10:00:00Z"
        after = parse_alertmanager(payload)[0]
        assert after.data.id == before.data.id
        assert after.event_id != before.event_id and after.data.version > before.data.version


class TestAlertIdentity:
    def test_without_fingerprint_the_id_is_a_hash_of_the_labels(self):
        events = parse_alertmanager(load("non-http-generator-url-and-no-fingerprint.json"))
        labels = {"alertname": "HighRequestLatency", "job": "checkout", "severity": "Warning"}
        assert events[0].data.id == labels_fingerprint(labels)

    def test_the_labels_hash_does_not_depend_on_label_order(self):
        assert labels_fingerprint({"a": "1", "b": "2"}) == labels_fingerprint({"b": "2", "a": "1"})

    def test_different_labels_hash_to_different_ids(self):
        assert labels_fingerprint({"instance": "a"}) != labels_fingerprint({"instance": "b"})

    def test_a_blank_fingerprint_counts_as_missing(self):
        payload = load("missing-summary-uses-alertname.json")
        payload["alerts"][0]["fingerprint"] = "  "
        (event, _) = parse_alertmanager(payload)
        assert event.data.id == labels_fingerprint(payload["alerts"][0]["labels"])


class TestTitleAndDescription:
    def test_the_summary_annotation_is_the_title(self):
        (event, _) = parse_alertmanager(load("firing-node-filesystem-group.json"))
        assert event.data.title == "Filesystem has less than 5% space left."

    def test_without_summary_the_title_annotation_is_used(self):
        payload = load("missing-summary-uses-alertname.json")
        payload["alerts"][0]["annotations"]["title"] = "Node exporter down"
        assert parse_alertmanager(payload)[0].data.title == "Node exporter down"

    def test_without_summary_the_alertname_and_instance_make_the_title(self):
        (event, _) = parse_alertmanager(load("missing-summary-uses-alertname.json"))
        assert event.data.title == "InstanceDown on 10.0.3.17:9100"

    def test_without_summary_or_instance_the_alertname_and_job_make_the_title(self):
        (_, event) = parse_alertmanager(load("missing-summary-uses-alertname.json"))
        assert event.data.title == "PrometheusRuleFailures (prometheus)"

    def test_without_any_name_the_title_falls_back_to_the_alert_id(self):
        payload = load("missing-summary-uses-alertname.json")
        payload["alerts"][0]["labels"] = {"severity": "page"}
        assert parse_alertmanager(payload)[0].data.title == "Alertmanager alert 0c5f7e1d2a9b3e44"

    def test_the_message_annotation_is_the_description_when_description_is_missing(self):
        (_, event) = parse_alertmanager(load("missing-summary-uses-alertname.json"))
        assert event.data.description == "Prometheus has failed to evaluate 12 rules in the last 5m."


class TestSeverityMapping:
    @pytest.mark.parametrize(
        ("label", "expected"),
        [
            ("critical", "critical"),
            ("page", "critical"),
            ("error", "high"),
            ("high", "high"),
            ("major", "high"),
            ("warning", "medium"),
            ("warn", "medium"),
            ("medium", "medium"),
            ("low", "low"),
            ("minor", "low"),
            ("info", "info"),
            ("informational", "info"),
            ("none", "info"),
            ("Warning", "medium"),
            (" CRITICAL ", "critical"),
            ("disaster", "medium"),
            ("", "medium"),
            (None, "medium"),
        ],
    )
    def test_severity_label_maps_to_a_connector_severity(self, label, expected):
        assert map_severity(label) == expected

    def test_an_unknown_severity_becomes_medium_and_keeps_the_original_label(self):
        (event,) = parse_alertmanager(load("unknown-severity-with-tenant-and-responders.json"))
        assert event.data.severity == "medium"
        assert event.data.labels["severity"] == "disaster"


class TestLinksLabelsAndRouting:
    def test_an_http_generator_url_is_the_deep_link(self):
        (event, _) = parse_alertmanager(load("firing-node-filesystem-group.json"))
        assert event.data.url.startswith("http://prometheus-k8s-0:9090/graph?")

    def test_a_relative_or_empty_generator_url_gives_no_link(self):
        events = parse_alertmanager(load("non-http-generator-url-and-no-fingerprint.json"))
        assert [e.data.url for e in events] == [None, None]

    def test_extra_annotations_become_prefixed_labels(self):
        (event,) = parse_alertmanager(load("unknown-severity-with-tenant-and-responders.json"))
        assert event.data.labels["annotation.runbook_url"].startswith("https://runbooks.")
        assert "annotation.dashboard" in event.data.labels
        for consumed in ("summary", "description", "responders", "teams_tenant_id"):
            assert f"annotation.{consumed}" not in event.data.labels

    def test_annotations_past_the_label_limit_are_left_out_but_labels_are_kept(self):
        payload = load("missing-summary-uses-alertname.json")
        alert = payload["alerts"][0]
        alert["labels"] = {f"l{i:02}": "x" for i in range(MAX_LABELS - 1)} | {"alertname": "Busy"}
        alert["annotations"] = {"runbook_url": "https://runbooks.example.net/busy"}
        event = parse_alertmanager(payload)[0]
        assert len(event.data.labels) == MAX_LABELS
        assert "annotation.runbook_url" not in event.data.labels

    def test_more_labels_than_the_limit_is_rejected_naming_the_labels(self):
        payload = load("missing-summary-uses-alertname.json")
        payload["alerts"][1]["labels"] = {f"l{i:02}": "x" for i in range(MAX_LABELS + 1)}
        with pytest.raises(InvalidEvent) as caught:
            parse_alertmanager(payload)
        assert caught.value.field == "alerts[1].labels"

    def test_the_tenant_comes_from_the_teams_tenant_id_label(self):
        (event,) = parse_alertmanager(load("unknown-severity-with-tenant-and-responders.json"))
        assert event.tenant_id == "72f988bf-86f1-41af-91ab-2d7cd011db47"

    def test_the_tenant_can_come_from_an_annotation(self):
        payload = load("missing-summary-uses-alertname.json")
        payload["alerts"][0]["annotations"]["teams_tenant_id"] = " 0b1c2d3e-0000-4000-8000-000000000001 "
        assert parse_alertmanager(payload)[0].tenant_id == "0b1c2d3e-0000-4000-8000-000000000001"

    def test_without_a_tenant_label_the_tenant_is_unset(self):
        events = parse_alertmanager(load("firing-node-filesystem-group.json"))
        assert [e.tenant_id for e in events] == [None, None]

    def test_responders_are_split_on_commas_and_trimmed(self):
        (event,) = parse_alertmanager(load("unknown-severity-with-tenant-and-responders.json"))
        assert event.data.responders == ("oncall-payments@contoso.com", "adele.vance@contoso.com")


class TestTimestamps:
    def test_go_timestamps_with_nanoseconds_are_read_to_the_microsecond(self):
        (event,) = parse_alertmanager(load("unknown-severity-with-tenant-and-responders.json"))
        assert event.time == parse_time("2024-05-14T11:45:00Z", "t")

    def test_a_timestamp_with_an_offset_keeps_its_offset(self):
        (event, _) = parse_alertmanager(load("non-http-generator-url-and-no-fingerprint.json"))
        assert event.time == parse_time("2024-05-14T10:00:00.5Z", "t")

    def test_the_zero_ends_at_of_a_firing_alert_is_ignored(self):
        (event, _) = parse_alertmanager(load("firing-node-filesystem-group.json"))
        assert event.time == event.data.created == event.data.updated

    def test_a_firing_alert_with_a_real_ends_at_still_uses_its_start(self):
        payload = load("firing-node-filesystem-group.json")
        before = parse_alertmanager(copy.deepcopy(payload))[0]
        payload["alerts"][0]["endsAt"] = "2024-05-14T08:36:46Z"
        after = parse_alertmanager(payload)[0]
        assert after == before

    def test_a_zero_starts_at_is_rejected(self):
        payload = load("firing-node-filesystem-group.json")
        payload["alerts"][1]["startsAt"] = "0001-01-01T00:00:00Z"
        with pytest.raises(InvalidEvent) as caught:
            parse_alertmanager(payload)
        assert caught.value.field == "alerts[1].startsAt"


class TestInvalidPayloads:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            (lambda p: p.update(version="5"), "version"),
            (lambda p: p.update(alerts={}), "alerts"),
            (lambda p: p.update(receiver=7), "receiver"),
            (lambda p: p["alerts"][0].pop("labels"), "alerts[0].labels"),
            (lambda p: p["alerts"][1].update(annotations="summary"), "alerts[1].annotations"),
            (lambda p: p["alerts"][1]["annotations"].update(summary=None), "alerts[1].annotations.summary"),
            (lambda p: p["alerts"][0].update(generatorURL=42), "alerts[0].generatorURL"),
            (lambda p: p["alerts"][0].update(fingerprint="f" * 257), "alerts[0].fingerprint"),
            (lambda p: p["alerts"][0].update(endsAt="soon"), "alerts[0].endsAt"),
            (lambda p: p["alerts"][0].update(startsAt="1969-12-31T23:59:59Z"), "alerts[0].startsAt"),
            (
                lambda p: p["alerts"][0]["annotations"].update(
                    responders=",".join(f"u{i}@contoso.com" for i in range(51))
                ),
                "alerts[0].annotations.responders",
            ),
        ],
    )
    def test_the_error_names_the_field_path(self, change, field):
        payload = load("firing-node-filesystem-group.json")
        change(payload)
        with pytest.raises(InvalidEvent) as caught:
            parse_alertmanager(payload)
        assert caught.value.field == field

    def test_a_missing_alert_status_falls_back_to_the_group_status(self):
        payload = load("resolved-node-filesystem.json")
        del payload["alerts"][0]["status"]
        assert parse_alertmanager(payload)[0].type == "alert.resolved"

    def test_a_payload_that_is_not_an_object_is_rejected(self):
        with pytest.raises(InvalidEvent):
            parse_alertmanager(["alerts"])  # type: ignore[arg-type]

    def test_the_events_are_alert_events(self):
        assert all(isinstance(e, AlertEvent) for e in parse_alertmanager(load("resolved-node-filesystem.json")))


class TestTitlesTellAlertsApart:
    def test_alerts_of_a_group_with_one_summary_get_the_labels_that_differ(self):
        payload = load("firing-node-filesystem-group.json")
        for alert in payload["alerts"]:
            alert["annotations"]["summary"] = "Filesystem is almost full"
        first, second = parse_alertmanager(payload)
        assert first.data.title != second.data.title
        assert first.data.title.startswith("Filesystem is almost full (") and "=" in first.data.title
        differing = [
            name
            for name in first.data.labels
            if first.data.labels[name] != second.data.labels.get(name) and not name.startswith("annotation.")
        ]
        assert any(f"{name}={first.data.labels[name]}" in first.data.title for name in differing)

    def test_a_title_of_its_own_is_left_alone(self):
        payload = load("firing-node-filesystem-group.json")
        events = parse_alertmanager(payload)
        assert [e.data.title for e in events] == [a["annotations"]["summary"] for a in payload["alerts"]]

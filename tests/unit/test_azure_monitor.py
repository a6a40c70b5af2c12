"""Azure Monitor common alert schema → alert events: golden files (tests/golden/azure-monitor,
published by Microsoft, sources in the README there) and the mapping rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.domain.azure_monitor import parse_azure_monitor
from shared.domain.events import InvalidEvent
from shared.domain.inbound import parse_message

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "azure-monitor"
VALID = sorted(p for p in GOLDEN.glob("*.json") if not p.name.endswith(".expected.json"))


def payload(condition: str = "Fired", severity: str = "Sev3", **essentials) -> dict:
    base = {
        "alertId": "/subscriptions/11111111-2222-3333-4444-555555555555/providers/Microsoft.AlertsManagement/alerts/b9569717-bc32-442f-add5-83a997729330",  # noqa: E501 - an id as Azure Monitor sends it
        "alertRule": "WCUS-R2-Gen2",
        "severity": severity,
        "signalType": "Metric",
        "monitorCondition": condition,
        "monitoringService": "Platform",
        "alertTargetIDs": [
            "/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/pipelinealertrg/providers/microsoft.compute/virtualmachines/wcus-r2-gen2"
        ],
        "configurationItems": ["wcus-r2-gen2"],
        "originAlertId": "3f2d4487-b0fc-4125-8bd5-7ad17384221e_PipeLineAlertRG_microsoft.insights_metricAlerts_WCUS-R2-Gen2_-117781227",  # noqa: E501 - an id as Azure Monitor sends it
        "firedDateTime": "2019-03-22T13:58:24.3713213Z",
        "description": "",
        "essentialsVersion": "1.0",
        "alertContextVersion": "1.0",
    }
    if condition == "Resolved":
        base["resolvedDateTime"] = "2019-03-22T14:03:16.2246313Z"
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {"essentials": {**base, **essentials}, "alertContext": {}},
    }


class TestMapping:
    @pytest.mark.parametrize(
        "sev, expected", [("Sev0", "critical"), ("Sev1", "high"), ("Sev2", "medium"), ("Sev3", "low"), ("Sev4", "info")]
    )
    def test_severity_maps_and_the_original_is_kept(self, sev, expected):
        [event] = parse_azure_monitor(payload(severity=sev))
        assert event.data.severity == expected and event.data.labels["severity"] == sev

    def test_an_unknown_severity_is_refused_naming_it(self):
        with pytest.raises(InvalidEvent) as caught:
            parse_azure_monitor(payload(severity="Sev9"))
        assert caught.value.field == "data.essentials.severity" and "Sev9" in str(caught.value)

    def test_fired_then_resolved_is_one_alert_and_the_resolution_wins(self):
        [fired] = parse_azure_monitor(payload())
        [resolved] = parse_azure_monitor(payload("Resolved"))
        assert fired.data.id == resolved.data.id == "b9569717-bc32-442f-add5-83a997729330"
        assert (fired.type, resolved.type) == (
            "alert.created",
            "alert.resolved",
        ) and resolved.data.version > fired.data.version
        assert fired.event_id != resolved.event_id

    def test_the_title_names_the_rule_and_the_resource(self):
        [event] = parse_azure_monitor(payload())
        assert event.data.title == "WCUS-R2-Gen2 on wcus-r2-gen2"

    def test_on_the_queue_it_is_no_longer_taken_for_a_cloudevent(self):
        # It has a "data" field: once it was refused with "specversion: is required".
        [event] = parse_message(json.dumps(payload()))
        assert event.source == "azure-monitor"

    @pytest.mark.parametrize(
        "change, field",
        [
            ({"monitorCondition": "Acknowledged"}, "data.essentials.monitorCondition"),
            ({"alertId": None}, "data.essentials.alertId"),
            ({"firedDateTime": None}, "data.essentials.firedDateTime"),
        ],
    )
    def test_a_broken_payload_names_the_field(self, change, field):
        with pytest.raises(InvalidEvent) as caught:
            parse_azure_monitor(payload(**change))
        assert caught.value.field == field

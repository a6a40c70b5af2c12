"""Grafana webhook payloads → alert events: golden files (tests/golden/grafana, with their
source in the README there) and the rules that differ from Alertmanager's."""

from __future__ import annotations

import json
from pathlib import Path

from shared.domain.inbound import claimants, parse_message

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "grafana"
VALID = sorted(p for p in GOLDEN.glob("*.json") if not p.name.endswith(".expected.json"))
INVALID = sorted(p for p in (GOLDEN / "invalid").glob("*.json") if not p.name.endswith(".expected.json"))


class TestGrafanaRules:
    def docs_example(self) -> dict:
        return json.loads((GOLDEN / "firing-docs-example.json").read_text())

    def test_it_is_grafanas_and_not_alertmanagers(self):
        # The version the Alertmanager reader once refused it for ("version must be 4").
        assert [f.name for f in claimants(self.docs_example())] == ["grafana"]

    def test_each_alert_is_its_own_event_with_grafanas_source_and_values(self):
        first, second = parse_message(json.dumps(self.docs_example()))
        assert (first.data.id, second.data.id) == ("c6eadffa33fcdf37", "bc97ff14869b13e3")
        assert first.source == "https://play.grafana.org/" and first.data.source == "grafana/My Super Webhook"
        assert first.event_id.startswith("grafana-") and first.data.labels["value.B"] == "44.2394"
        assert first.data.url == "https://play.grafana.org/alerting/1afz29v7z/edit"

    def test_the_resolution_orders_after_the_firing(self):
        [firing] = parse_message(json.dumps({**self.docs_example(), "alerts": self.docs_example()["alerts"][:1]}))
        [resolved] = parse_message((GOLDEN / "resolved-one-alert.json").read_bytes())
        assert (
            resolved.type == "alert.resolved"
            and resolved.data.version > firing.data.version
            and resolved.data.id == firing.data.id
        )

    def test_its_dashboard_and_panel_links_become_the_cards_dashboard_button(self):
        from shared import cards
        from shared.domain.alerts import apply_event

        payload = self.docs_example()
        payload["alerts"][0] |= {
            "dashboardURL": "https://play.grafana.org/d/abc",
            "panelURL": "https://play.grafana.org/d/abc?viewPanel=2",
        }
        payload["alerts"][0]["annotations"]["runbook_url"] = "https://wiki.example.com/runbooks/cpu"
        first, second = parse_message(json.dumps(payload))
        assert first.data.labels["annotation.panel_url"] == "https://play.grafana.org/d/abc?viewPanel=2"
        assert not {"annotation.dashboard_url", "annotation.panel_url"} & set(second.data.labels)  # empty links
        state = apply_event(None, first, "t", first.time)
        links = {a["title"]: a["url"] for a in cards.alert_actions(state) if a["type"] == "Action.OpenUrl"}
        assert links["Runbook"] == "https://wiki.example.com/runbooks/cpu"
        assert links["Dashboard"] == "https://play.grafana.org/d/abc?viewPanel=2"  # the panel, nearer than the board

"""The format registry: each payload is one format's, and what the ingest route queues parses
back into the very same event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.domain.events import to_cloudevent
from shared.domain.inbound import FORMATS, claimants, parse_events, parse_message
from shared.security import ingest_key

ROOT = Path(__file__).resolve().parents[2]
# Source payloads only: tests/golden/cards holds card inputs, not events.
PAYLOADS = sorted(
    p
    for p in [*ROOT.glob("examples/*.json"), *ROOT.glob("tests/golden/*/*.json")]
    if not p.name.endswith(".expected.json") and p.parent.name != "cards"
)
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"


def expected_format(path: Path) -> str:
    for name in ("alertmanager", "grafana", "azure-monitor", "pagerduty"):
        if name in path.parts or path.name.startswith(name):
            return name
    return "cloudevents"


class TestRegistry:
    @pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: p.name)
    def test_every_payload_is_claimed_by_its_own_format_only(self, path):
        assert [f.name for f in claimants(json.loads(path.read_text()))] == [expected_format(path)]

    def test_format_names_are_unique(self):
        assert len({f.name for f in FORMATS}) == len(FORMATS)


class TestWhatTheIngestRouteQueues:
    @pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: p.name)
    def test_the_queued_cloudevent_parses_back_into_the_same_event(self, path):
        try:
            events = parse_message(path.read_text())
        except ValueError:
            pytest.skip("a payload the connector refuses (its own test names why)")
        for event in events:
            [again] = parse_events(to_cloudevent(event, TENANT))
            assert again.data == event.data
            assert (again.event_id, again.source, again.type, again.time, again.tenant_id) == (
                event.event_id,
                event.source,
                event.type,
                event.time,
                TENANT,
            )


class TestSourceKeys:
    def test_a_key_opens_one_source_of_one_tenant(self):
        key = ingest_key("k" * 40, TENANT, "prod")
        assert key == ingest_key("k" * 40, TENANT.upper(), "prod")
        assert key not in (
            ingest_key("k" * 40, TENANT, "staging"),
            ingest_key("k" * 40, "bbbbbbbb-0000-4000-8000-00000000000b", "prod"),
            ingest_key("j" * 40, TENANT, "prod"),
        )

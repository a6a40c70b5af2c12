"""Every golden payload of every native format (tests/golden/<format>, sources in the README
of each folder): read into the expected events, or refused naming the field; claimed by its
own format only. ``pytest --update-golden`` rewrites the expected files."""

from __future__ import annotations

import json

import pytest

from shared.domain.inbound import claimants
from tests.support.golden import check_golden, expected_path, outcome, payloads

FORMATS = ("alertmanager", "grafana", "azure-monitor", "pagerduty")
CASES = [(fmt, path) for fmt in FORMATS for path in payloads(fmt)]
INVALID = [(fmt, path) for fmt in FORMATS for path in payloads(fmt, invalid=True)]


@pytest.mark.parametrize("fmt, path", CASES, ids=[f"{f}/{p.stem}" for f, p in CASES])
def test_a_payload_becomes_the_expected_events_or_its_refusal(request, fmt, path):
    check_golden(request, path, outcome(path))


@pytest.mark.parametrize("fmt, path", CASES + INVALID, ids=[f"{f}/{p.stem}" for f, p in CASES + INVALID])
def test_a_payload_is_claimed_by_its_own_format_only(fmt, path):
    assert [f.name for f in claimants(json.loads(path.read_text()))] == [fmt]


@pytest.mark.parametrize("fmt, path", INVALID, ids=[f"{f}/{p.stem}" for f, p in INVALID])
def test_a_broken_payload_is_refused_naming_the_field(request, fmt, path):
    result = outcome(path)
    assert isinstance(result, dict) and result["field"], result
    check_golden(request, path, result)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_golden_payloads_with_expected_files(fmt):
    assert len(payloads(fmt)) >= 2
    for path in payloads(fmt) + payloads(fmt, invalid=True):
        assert expected_path(path).exists(), path.name

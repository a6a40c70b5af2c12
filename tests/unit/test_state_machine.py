"""One alert state machine (shared/domain/alerts.py) for source events, card buttons and commands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared import cards
from shared.domain.alerts import OUTBOUND_TYPES, TRANSITIONS, Verb, change_status, step_of
from shared.domain.model import AlertState

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXPECTED = {  # (verb, status) -> status after, or None when the verb does not apply
    (Verb.ACKNOWLEDGE, "open"): "acknowledged",
    (Verb.ACKNOWLEDGE, "acknowledged"): None,
    (Verb.ACKNOWLEDGE, "resolved"): None,
    (Verb.RESOLVE, "open"): "resolved",
    (Verb.RESOLVE, "acknowledged"): "resolved",
    (Verb.RESOLVE, "resolved"): None,
    (Verb.REOPEN, "open"): None,
    (Verb.REOPEN, "acknowledged"): None,
    (Verb.REOPEN, "resolved"): "open",
}


def alert(status: str) -> AlertState:
    return AlertState(
        tenant_id="aaaaaaaa-0000-4000-8000-00000000000a",
        key="k1",
        alert_id="ALRT-1",
        source="grafana",
        event_source="https://grafana.example.com",
        title="High CPU",
        status=status,
        severity="high",
        version=7,
        revision=3,
        created=NOW,
    )


@pytest.mark.parametrize(("verb", "status"), list(EXPECTED))
def test_each_verb_acts_only_from_its_statuses(verb, status):
    after = change_status(alert(status), verb, NOW, by="Ada")
    assert (after.status if after else None) == EXPECTED[verb, status]


def test_a_change_in_teams_moves_the_revision_not_the_sources_version_and_says_who():
    after = change_status(alert("resolved"), Verb.REOPEN, NOW, by="Ada")
    assert after is not None and (after.version, after.revision) == (7, 4)
    assert after.steps[-1].status == "reopened" and after.steps[-1].by == "Ada" and after.reopened


def test_a_source_reopening_is_a_reopen_step_too():
    assert step_of("resolved", "open") == "reopened" and step_of("open", "acknowledged") == "acknowledged"


@pytest.mark.parametrize(
    ("word", "verb"),
    [
        ("ack", Verb.ACKNOWLEDGE),
        ("Resolve", Verb.RESOLVE),
        ("reopen", Verb.REOPEN),
        ("create_channel", Verb.CREATE_CHANNEL),
        ("Snooze", Verb.SNOOZE),
        ("expire-silence", Verb.EXPIRE_SILENCE),
        ("shout", None),
        ("", None),
    ],
)
def test_commands_and_buttons_name_the_same_verbs(word, verb):
    assert Verb.parse(word) is verb


def test_every_verb_reports_back_to_the_source():
    assert set(OUTBOUND_TYPES) == set(Verb)


@pytest.mark.parametrize("status", ["open", "acknowledged", "resolved"])
def test_the_card_offers_exactly_the_status_buttons_the_state_machine_allows(status):
    offered = {a["verb"] for a in cards.alert_actions(alert(status)) if a["type"] == "Action.Execute"}
    allowed = {verb.value for verb, t in TRANSITIONS.items() if status in t.from_statuses}
    assert offered & {v.value for v in TRANSITIONS} == allowed


def test_an_alert_that_fires_again_counts_from_the_new_firing():
    """Alertmanager sends a new firing (a new startsAt) after the resolution: the card's Fired
    time and its "open for" count from it, and say when it first fired."""
    from shared.domain.alertmanager import parse_alertmanager
    from shared.domain.alerts import apply_event

    def webhook(status: str, starts: str, ends: str = "0001-01-01T00:00:00Z") -> dict:
        return {
            "version": "4",
            "status": status,
            "receiver": "teams",
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"},
                    "annotations": {"summary": "Checkout requests are failing"},
                    "startsAt": starts,
                    "endsAt": ends,
                    "fingerprint": "3f2a9c1d0b7e6a54",
                }
            ],
        }

    tenant = "aaaaaaaa-0000-4000-8000-00000000000a"
    [first] = parse_alertmanager(webhook("firing", "2026-11-02T08:00:00Z"))
    state = apply_event(None, first, tenant, NOW)
    [resolved] = parse_alertmanager(webhook("resolved", "2026-11-02T08:00:00Z", "2026-11-02T09:00:00Z"))
    state = apply_event(state, resolved, tenant, NOW)
    [again] = parse_alertmanager(webhook("firing", "2026-11-05T10:00:00Z"))
    state = apply_event(state, again, tenant, NOW)
    assert state.status == "open" and state.steps[-1].status == "reopened"
    assert state.created == datetime(2026, 11, 2, 8, tzinfo=UTC)
    assert state.fired == datetime(2026, 11, 5, 10, tzinfo=UTC)
    line = cards.age_line(state, now=datetime(2026, 11, 5, 10, 30, tzinfo=UTC))
    assert line.startswith("Fired {{DATE(2026-11-05T10:00:00Z, SHORT)}}"), line
    assert "(first {{DATE(2026-11-02T08:00:00Z, SHORT)}}" in line and line.endswith("open for 30 m"), line


def test_reopened_in_teams_it_counts_from_the_reopening():
    reopened = change_status(alert("resolved"), Verb.REOPEN, datetime(2026, 11, 24, 9, tzinfo=UTC), by="Ada")
    assert reopened is not None and reopened.fired == datetime(2026, 11, 24, 9, tzinfo=UTC)

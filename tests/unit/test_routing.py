"""Routing: which workflows take an alert change, and the plan they give (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.model import AlertState
from shared.domain.workflows import InvalidWorkflow, Recipient, manual_plan, parse_workflow, periodic_slot, plan
from shared.services.workflows import parse_subscription

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
CHANNEL = {"kind": "channel", "teamId": "team-1", "channelId": "19:ops@thread.tacv2", "name": "Ops"}
PERSON = {"kind": "person", "user": "adele@contoso.com"}


def alert(**fields) -> AlertState:
    base = {
        "tenant_id": TENANT,
        "key": "k1",
        "alert_id": "ALRT-1",
        "source": "prometheus",
        "event_source": "https://am.example.com",
        "title": "Disk full on db-01",
        "status": "open",
        "severity": "high",
        "labels": {"env": "prod", "team": "db"},
        "responders": ("bob@contoso.com", "carol@contoso.com"),
    }
    return AlertState(**{**base, **fields})


def workflow(wid="w1", **fields):
    body = {
        "name": fields.pop("name", wid.upper()),
        "trigger": "new_or_updated",
        "recipients": [CHANNEL],
        "fallbackRecipients": [PERSON],
        **fields,
    }
    return parse_workflow(body, TENANT, wid)


class TestCompatibility:
    def test_a_tenant_without_workflows_broadcasts(self):
        result = plan(alert(), "new", [])
        assert result.broadcast and result.targets == ()

    def test_a_tenant_with_one_workflow_routes_by_it_only(self):
        result = plan(alert(severity="low"), "new", [workflow(match={"minSeverity": "high"})])
        assert not result.broadcast and result.targets == ()
        assert result.not_matched == (("W1", "severity low is below high"),)


class TestMatching:
    @pytest.mark.parametrize(
        "match, matches",
        [
            ({"minSeverity": "high"}, True),
            ({"minSeverity": "critical"}, False),
            ({"severities": ["high", "low"]}, True),
            ({"severities": ["medium"]}, False),
            ({"kinds": ["issue"]}, False),
            ({"sources": ["Prometheus"]}, True),
            ({"sources": ["https://am.example.com"]}, True),
            ({"sources": ["grafana"]}, False),
            ({"labels": [{"key": "env", "op": "equals", "value": "prod"}]}, True),
            ({"labels": [{"key": "env", "op": "equals", "value": "staging"}]}, False),
            ({"labels": [{"key": "team", "op": "one_of", "values": ["web", "db"]}]}, True),
            ({"labels": [{"key": "team", "op": "regex", "value": "d.*"}]}, True),
            ({"labels": [{"key": "team", "op": "regex", "value": "b"}]}, False),  # the whole value must match
            ({"labels": [{"key": "region", "op": "exists"}]}, False),
            ({"titleContains": "DISK"}, True),
            ({"titleContains": "cpu"}, False),
            ({}, True),
        ],
    )
    def test_each_condition(self, match, matches):
        result = plan(alert(), "new", [workflow(match=match)])
        assert bool(result.targets) is matches
        if not matches:
            assert result.not_matched[0][1]  # says why


class TestTriggers:
    @pytest.mark.parametrize(
        "trigger, change, fires",
        [
            ("updated", "new", False),
            ("updated", "updated", True),
            ("updated", "existing", False),
            ("new_or_updated", "new", True),
            ("new_or_updated", "updated", True),
            ("new_or_updated", "existing", False),
            ("new_updated_existing", "new", True),
            ("new_updated_existing", "updated", True),
            ("new_updated_existing", "existing", True),
            ("periodic", "new", False),
            ("periodic", "updated", False),
        ],
    )
    def test_which_changes_fire_which_trigger(self, trigger, change, fires):
        result = plan(alert(), change, [workflow(trigger=trigger)])
        assert bool(result.targets) is fires

    def test_a_disabled_workflow_takes_nothing(self):
        result = plan(alert(), "new", [workflow(enabled=False)])
        assert result.targets == () and result.not_matched == (("W1", "disabled"),)

    def test_the_digest_slot_is_the_same_within_a_period(self):
        w = workflow(trigger="periodic", intervalMinutes=60)
        t1, t2, t3 = (datetime(2026, 11, 1, h, m, tzinfo=UTC) for h, m in ((10, 0), (10, 59), (11, 0)))
        assert periodic_slot(w, t1) == periodic_slot(w, t2) != periodic_slot(w, t3)


class TestRecipients:
    def test_two_workflows_to_one_conversation_give_one_target_with_both_comments(self):
        result = plan(
            alert(),
            "new",
            [workflow("a", name="Prod", comment="Page the DBA"), workflow("b", name="DB", comment="See runbook")],
        )
        [target] = result.targets
        assert target.workflows == ("Prod", "DB") and target.comments == ("Page the DBA", "See runbook")

    def test_responders_become_one_person_each(self):
        result = plan(alert(), "new", [workflow(recipients=[{"kind": "responders"}])])
        assert [t.recipient.user for t in result.targets] == ["bob@contoso.com", "carol@contoso.com"]

    def test_a_person_named_twice_in_different_case_is_one_target(self):
        result = plan(
            alert(responders=("Adele@Contoso.com",)), "new", [workflow(recipients=[PERSON, {"kind": "responders"}])]
        )
        assert len(result.targets) == 1

    def test_fallbacks_ride_with_each_target(self):
        [target] = plan(alert(), "new", [workflow(fallbackRecipients=[{"kind": "responders"}])]).targets
        assert [r.user for r in target.fallback] == ["bob@contoso.com", "carol@contoso.com"]

    def test_a_group_is_one_recipient_whatever_the_order_of_its_people(self):
        a = Recipient("group", users=("x@c.com", "Y@c.com"))
        b = Recipient("group", users=("y@c.com", "x@c.com"))
        assert a.key == b.key

    def test_the_manual_send_plan_carries_the_comment_and_who_sent_it(self):
        [target] = manual_plan(
            alert(), (Recipient("chat", chat_id="19:c@thread.v2"),), (), "Please look", "grace@contoso.com"
        ).targets
        assert (
            target.comments == ("Please look",)
            and target.reason == "sent by grace@contoso.com"
            and target.workflows == ()
        )


class TestValidation:
    @pytest.mark.parametrize(
        "body, field",
        [
            ({"trigger": "new_or_updated", "recipients": [CHANNEL], "fallbackRecipients": [PERSON]}, "name"),
            ({"name": "x", "recipients": [CHANNEL], "fallbackRecipients": [PERSON]}, "trigger"),
            ({"name": "x", "trigger": "new_or_updated", "fallbackRecipients": [PERSON]}, "recipients"),
            ({"name": "x", "trigger": "new_or_updated", "recipients": [CHANNEL]}, "fallbackRecipients"),
            (
                {
                    "name": "x",
                    "trigger": "new_or_updated",
                    "recipients": [{"kind": "channel", "teamId": "t"}],
                    "fallbackRecipients": [PERSON],
                },
                "recipients[0].channelId",
            ),
            ({"name": "x", "trigger": "sometimes", "recipients": [CHANNEL], "fallbackRecipients": [PERSON]}, "trigger"),
            (
                {
                    "name": "x",
                    "trigger": "updated",
                    "intervalMinutes": 60,
                    "recipients": [CHANNEL],
                    "fallbackRecipients": [PERSON],
                },
                "intervalMinutes",
            ),
            (
                {
                    "name": "x",
                    "trigger": "updated",
                    "match": {"labels": [{"key": "a", "op": "regex", "value": "("}]},
                    "recipients": [CHANNEL],
                    "fallbackRecipients": [PERSON],
                },
                "match.labels[0].value",
            ),
            (
                {
                    "name": "x",
                    "trigger": "updated",
                    "colour": "red",
                    "recipients": [CHANNEL],
                    "fallbackRecipients": [PERSON],
                },
                "colour",
            ),
        ],
    )
    def test_errors_name_the_field(self, body, field):
        with pytest.raises(InvalidWorkflow) as caught:
            parse_workflow(body, TENANT, "w1")
        assert caught.value.field == field

    def test_a_body_id_must_agree_with_the_route(self):
        with pytest.raises(InvalidWorkflow, match="route names workflow"):
            parse_workflow(
                {
                    "id": "other",
                    "name": "x",
                    "trigger": "updated",
                    "recipients": [CHANNEL],
                    "fallbackRecipients": [PERSON],
                },
                TENANT,
                "w1",
            )


class TestSubscribeFilters:
    def test_the_words_of_the_subscribe_command(self):
        match = parse_subscription("severity>=high source=prometheus label env=prod kind=alert title~disk")
        assert (match.min_severity, match.sources, match.kinds, match.title_contains) == (
            "high",
            ("prometheus",),
            ("alert",),
            "disk",
        )
        assert match.labels[0].describe() == "label env=prod"

    def test_an_unknown_word_is_named(self):
        with pytest.raises(InvalidWorkflow) as caught:
            parse_subscription("severity>=high colour=red")
        assert caught.value.field == "colour=red"

    def test_no_words_take_every_alert(self):
        assert parse_subscription("").describe() == "every alert"

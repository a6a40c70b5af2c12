"""Alert cards: literal source text, size under the Teams limit, the right actions."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import cards
from shared.domain.model import AlertState, StatusStep
from tests.support.cards import status_of, text_of, texts

STATE = AlertState(
    tenant_id="t",
    key="k",
    alert_id="ALRT-1",
    source="Grafana",
    event_source="https://alerts.example.com",
    title="High CPU",
    status="open",
    severity="critical",
    url="https://alerts.example.com/a/1",
    labels={"host": "web-03"},
)

_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def unescape(text: str) -> str:
    """What a CommonMark renderer shows for backslash escapes (and the zero-width space)."""
    return _UNESCAPE.sub(r"\1", text).replace("\u200b", "")


class TestSourceTextIsShownLiterally:
    def test_markdown_and_mentions_in_a_title_are_escaped(self):
        card = cards.alert_card(replace(STATE, title="**urgent** <at>Megan</at> [click](https://evil.example)"))
        title = text_of(card, "title")
        assert "<at>" not in title and "**" not in title and "](" not in title.replace("\\]", "")
        assert unescape(title) == "**urgent** <at>Megan</at> [click](https://evil.example)"

    def test_a_label_cannot_smuggle_a_template_function(self):
        card = cards.alert_card(replace(STATE, labels={"x": "{{DATE(2020-01-01T00:00:00Z)}}"}))
        assert not any("{{DATE(2020" in t for t in texts(card))

    @given(st.text(max_size=300))
    @settings(max_examples=300)
    def test_escaping_round_trips_and_leaves_no_live_markup(self, text):
        escaped = cards.escape_text(text)
        clean = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
        # What a person sees: zero-width spaces show as nothing, the source's own included.
        assert unescape(escaped) == clean.replace("\u200b", "")
        assert "{{" not in escaped  # no template function, whatever the run of braces
        # Every markup character is preceded by a backslash.
        assert not re.search(r"(?<!\\)(?:\\\\)*[*_`\[\]<>~#&|]", escaped)


class TestTemplates:
    @pytest.mark.parametrize(
        "text",
        ["{{DATE(2017-02-14T06:08:39Z, SHORT)}}", "{{{DATE(2017-02-14T06:08:39Z)}}}", "{{{{TIME(x)}}}}", "a{\u200b{{b"],
    )
    def test_no_run_of_braces_leaves_a_template_function(self, text):
        escaped = cards.escape_text(text)
        assert "{{" not in escaped
        assert unescape(escaped) == text.replace("\u200b", "")


class TestSize:
    def test_a_huge_alert_still_fits_under_the_teams_limit(self):
        huge = replace(
            STATE, title="T" * 5000, description="D" * 100_000, labels={f"label{i}": "v" * 5000 for i in range(64)}
        )
        card = cards.fit_card(huge)
        assert cards.card_size(card) <= cards.MAX_CARD_BYTES
        assert text_of(card, "title").endswith("…")

    def test_labels_beyond_the_limit_are_counted_not_dropped_silently(self):
        many = replace(STATE, labels={f"l{i:02d}": "v" for i in range(30)})
        lines = [t for t in texts(cards.alert_card(many)) if t.startswith("**l") or "more labels" in t]
        assert len(lines) == cards.MAX_FACTS + 1 and lines[-1] == "… 10 more labels"


def buttons(card: dict) -> list[tuple[str, str]]:
    """Each button's title, and whether it is in the row or the overflow menu."""
    return [(a["title"], a.get("mode", "primary")) for a in card.get("actions", [])]


class TestActions:
    def test_an_open_alert_offers_its_likeliest_buttons_first_and_the_rest_in_the_overflow_menu(self):
        card = cards.alert_card(STATE)
        assert buttons(card) == [
            ("Acknowledge", "primary"),
            ("Resolve", "primary"),
            ("Add note", "primary"),
            ("Assign", "primary"),
            ("Snooze", "secondary"),
            ("Create channel", "secondary"),
            ("Create meeting", "secondary"),
        ]
        assert card["actions"][0]["data"] == {
            "verb": "acknowledge",
            "alertKey": "k",
            "tenantId": "t",
            "alertId": "ALRT-1",
        }
        # Past five buttons the link to the source goes under the title.
        assert "(https://alerts.example.com/a/1)" in text_of(card, "source")

    def test_five_buttons_or_fewer_all_stay_in_the_row(self):
        card = cards.alert_card(replace(STATE, status="resolved", url=None))
        assert buttons(card) == [("Reopen", "primary"), ("Add note", "primary")]

    def test_once_created_the_channel_and_meeting_are_links(self):
        state = replace(
            STATE,
            channel={"status": "created", "webUrl": "https://teams.example/c"},
            meeting={"status": "created", "joinUrl": "https://teams.example/m"},
        )
        urls = [a["url"] for a in cards.alert_actions(state) if a["type"] == "Action.OpenUrl"]
        assert urls == ["https://teams.example/c", "https://teams.example/m", "https://alerts.example.com/a/1"]

    def test_a_runbook_annotation_is_a_button_not_a_label_line(self):
        state = replace(
            STATE,
            labels={
                "alertname": "DiskFull",
                "annotation.runbook_url": "https://wiki.example.com/runbooks/disk",
                "annotation.dashboard_url": "https://grafana.example.com/d/abc",
            },
        )
        card = cards.alert_card(state)
        opened = {a["title"]: a["url"] for a in card["actions"] if a["type"] == "Action.OpenUrl"}
        assert opened["Runbook"] == "https://wiki.example.com/runbooks/disk"
        assert opened["Dashboard"] == "https://grafana.example.com/d/abc"
        assert buttons(card)[2] == ("Runbook", "primary")  # right after the status buttons
        assert not any("runbook" in t or "dashboard" in t for t in texts(card) if t.startswith("**"))

    def test_a_runbook_that_is_not_a_web_address_stays_a_label_line(self):
        state = replace(STATE, labels={"annotation.runbook_url": "javascript:alert(1)"})
        card = cards.alert_card(state)
        assert "Runbook" not in [title for title, _ in buttons(card)]
        assert any("runbook" in t for t in texts(card))

    def test_a_resolved_alert_can_only_be_reopened(self):
        actions = cards.alert_actions(replace(STATE, status="resolved"))
        assert [a.get("verb") for a in actions if a["type"] == "Action.Execute"] == ["reopen"]

    def test_an_acknowledged_alert_can_be_resolved_but_not_acknowledged_again_nor_snoozed(self):
        actions = cards.alert_actions(replace(STATE, status="acknowledged"))
        assert [a.get("verb") for a in actions if a["type"] == "Action.Execute"] == [
            "resolve",
            "create_channel",
            "create_meeting",
        ]
        assert "Snooze" not in [a["title"] for a in actions]

    def test_the_card_is_adaptive_card_1_5_and_serialisable(self):
        card = cards.fit_card(STATE)
        assert card["version"] == "1.5" and json.loads(json.dumps(card)) == card


class TestText:
    def test_each_line_of_a_description_stays_a_line(self):
        state = replace(STATE, description="Disk almost full.\n- bullet a\r\n- bullet b")
        text = text_of(cards.alert_card(state), "description")
        assert text.split("\n\n") == ["Disk almost full.", "\\- bullet a", "\\- bullet b"]

    def test_the_help_card_shows_no_placeholder_teams_would_read_as_markup(self):
        from shared.services.bot import COMMANDS

        card = cards.help_card(COMMANDS)
        titles = [t.strip("*") for t in texts(card) if t.startswith("**")]
        assert "ack ID" in titles and "resolve ID" in titles and not any("<" in t or ">" in t for t in titles)

    def test_the_first_firing_time_stays_when_the_alert_is_updated(self):
        fired, later = (
            datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
            datetime(2026, 11, 1, 10, 14, tzinfo=UTC),
        )
        age = text_of(cards.alert_card(replace(STATE, created=fired, updated=later)), "age")
        assert "DATE(2026-11-01T08:00:00Z" in age and "open for 2 h 14 m at {{TIME(2026-11-01T10:14:00Z)}}" in age

    def test_a_resolved_alert_says_how_long_it_was_open(self):
        fired, resolved = (
            datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
            datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        )
        age = text_of(
            cards.alert_card(
                replace(STATE, status="resolved", created=fired, updated=resolved, status_changed=resolved)
            ),
            "age",
        )
        assert age.endswith("resolved after 1 d 1 h")

    def test_resolved_after_counts_to_the_resolution_not_to_when_it_was_processed(self):
        fired = datetime(2024, 5, 14, 8, 31, 46, tzinfo=UTC)
        resolved_at, processed = (
            datetime(2024, 5, 14, 8, 52, 30, tzinfo=UTC),
            datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        )
        state = replace(
            STATE,
            status="resolved",
            created=fired,
            updated=resolved_at,
            status_changed=processed,
            steps=(StatusStep("resolved", resolved_at, via="Grafana"),),
        )
        assert text_of(cards.alert_card(state), "age").endswith("resolved after 20 m")

    @pytest.mark.parametrize(
        "seconds, text",
        [
            (30, "less than a minute"),
            (60, "1 m"),
            (3600, "1 h"),
            (8040, "2 h 14 m"),
            (86400 * 3 + 3600 * 4 + 59, "3 d 4 h"),
        ],
    )
    def test_durations_read_as_people_say_them(self, seconds, text):
        assert cards.duration(seconds) == text


class TestWhoDidWhat:
    def test_a_reopened_alert_says_reopened_and_who_did_it(self):
        at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        state = replace(
            STATE,
            steps=(
                StatusStep("acknowledged", at, by="Megan Bowen"),
                StatusStep("resolved", at, via="Grafana"),
                StatusStep("reopened", at, by="Alex Wilber"),
            ),
        )
        card = cards.alert_card(state)
        assert status_of(card) == "Reopened"
        lines = [t for t in texts(card) if " \u00b7 {{DATE(" in t]
        assert [line.split(" · ")[0] for line in lines] == [
            "Acknowledged by Megan Bowen",
            "Resolved in Grafana",
            "Reopened by Alex Wilber",
        ]

    def test_the_steps_stay_when_the_source_updates_the_alert(self):
        from shared.domain.alerts import apply_event
        from shared.domain.events import parse_cloudevent as parse_event

        at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        acked = replace(
            STATE,
            status="acknowledged",
            version=1,
            event_source="https://alerts.example.com",
            steps=(StatusStep("acknowledged", at, by="Megan Bowen"),),
        )
        event = parse_event(
            {
                "specversion": "1.0",
                "id": "e2",
                "source": "https://alerts.example.com",
                "type": "alert.updated",
                "time": "2026-11-01T09:05:00Z",
                "data": {"id": "ALRT-1", "title": "High CPU (95%)", "severity": "critical", "version": 2},
            }
        )
        updated = apply_event(acked, event, "t", at)
        assert updated is not None and updated.steps == acked.steps
        assert "Acknowledged by Megan Bowen" in " ".join(texts(cards.alert_card(updated)))

    def test_a_status_the_source_changes_is_a_step_naming_the_source(self):
        from shared.domain.alerts import apply_event
        from shared.domain.events import parse_cloudevent as parse_event

        at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        event = parse_event(
            {
                "specversion": "1.0",
                "id": "e2",
                "source": "https://alerts.example.com",
                "type": "alert.resolved",
                "time": "2026-11-01T09:05:00Z",
                "data": {
                    "id": "ALRT-1",
                    "title": "High CPU",
                    "severity": "critical",
                    "source": "Grafana",
                    "version": 2,
                },
            }
        )
        resolved = apply_event(replace(STATE, version=1), event, "t", at)
        assert resolved is not None and [(s.status, s.via) for s in resolved.steps] == [("resolved", "Grafana")]


class TestLongText:
    def test_a_long_source_name_gives_a_short_button_title(self):
        actions = cards.alert_actions(replace(STATE, source="Azure Monitor Log Search Alerts"))
        assert actions[-1]["title"] == "Open in source"
        assert all(len(a["title"]) <= cards.MAX_BUTTON_TITLE_CHARS for a in actions)

    def test_labels_are_lines_that_wrap_between_words_not_a_narrow_fact_column(self):
        card = cards.alert_card(replace(STATE, labels={"annotation.wiki_page": "https://wiki.example.com/" + "x" * 80}))
        [line] = [t for t in texts(card) if "wiki" in t]
        assert line.startswith("**annotation.wiki\\_page**: https") and not any(
            n.get("type") == "FactSet" and "wiki" in str(n) for n in card["body"]
        )

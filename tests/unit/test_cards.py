"""Alert cards: literal source text, size under the Teams limit, the right actions."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from shared import cards
from shared.domain.model import AlertState

STATE = AlertState(
    tenant_id="t", key="k", alert_id="ALRT-1", source="Grafana", event_source="https://alerts.example.com",
    title="High CPU", status="open", severity="critical", url="https://alerts.example.com/a/1", labels={"host": "web-03"},
)

_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def unescape(text: str) -> str:
    """What a CommonMark renderer shows for backslash escapes (and the zero-width space)."""
    return _UNESCAPE.sub(r"\1", text).replace("\u200b", "")


def texts(card: dict) -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "value", "title") and isinstance(value, str):
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


class TestSourceTextIsShownLiterally:
    def test_markdown_and_mentions_in_a_title_are_escaped(self):
        card = cards.alert_card(replace(STATE, title="**urgent** <at>Megan</at> [click](https://evil.example)"))
        title = card["body"][0]["items"][1]["text"]
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
    @pytest.mark.parametrize("text", ["{{DATE(2017-02-14T06:08:39Z, SHORT)}}", "{{{DATE(2017-02-14T06:08:39Z)}}}", "{{{{TIME(x)}}}}", "a{\u200b{{b"])
    def test_no_run_of_braces_leaves_a_template_function(self, text):
        escaped = cards.escape_text(text)
        assert "{{" not in escaped
        assert unescape(escaped) == text.replace("\u200b", "")


class TestSize:
    def test_a_huge_alert_still_fits_under_the_teams_limit(self):
        huge = replace(STATE, title="T" * 5000, description="D" * 100_000, labels={f"label{i}": "v" * 5000 for i in range(64)})
        card = cards.fit_card(huge)
        assert cards.card_size(card) <= cards.MAX_CARD_BYTES
        assert card["body"][0]["items"][1]["text"].endswith("…")

    def test_labels_beyond_the_limit_are_counted_not_dropped_silently(self):
        many = replace(STATE, labels={f"l{i:02d}": "v" for i in range(30)})
        facts = cards.alert_card(many)["body"][-1]["facts"]
        assert len(facts) == cards.MAX_FACTS + 1 and facts[-1]["value"] == "10 more labels"


class TestActions:
    def test_an_open_alert_offers_every_action_and_the_source_link(self):
        actions = cards.alert_card(STATE)["actions"]
        assert [a.get("verb") or a["type"] for a in actions] == ["acknowledge", "resolve", "create_channel", "create_meeting", "Action.OpenUrl"]
        assert actions[0]["data"] == {"verb": "acknowledge", "alertKey": "k", "tenantId": "t", "alertId": "ALRT-1"}

    def test_once_created_the_channel_and_meeting_are_links(self):
        state = replace(STATE, channel={"status": "created", "webUrl": "https://teams.example/c"}, meeting={"status": "created", "joinUrl": "https://teams.example/m"})
        urls = [a["url"] for a in cards.alert_card(state)["actions"] if a["type"] == "Action.OpenUrl"]
        assert urls == ["https://teams.example/c", "https://teams.example/m", "https://alerts.example.com/a/1"]

    def test_a_resolved_alert_can_only_be_reopened(self):
        actions = cards.alert_card(replace(STATE, status="resolved"))["actions"]
        assert [a.get("verb") for a in actions if a["type"] == "Action.Execute"] == ["reopen"]

    def test_an_acknowledged_alert_can_be_resolved_but_not_acknowledged_again(self):
        actions = cards.alert_card(replace(STATE, status="acknowledged"))["actions"]
        assert [a.get("verb") for a in actions if a["type"] == "Action.Execute"] == ["resolve", "create_channel", "create_meeting"]

    def test_the_card_is_adaptive_card_1_5_and_serialisable(self):
        card = cards.fit_card(STATE)
        assert card["version"] == "1.5" and json.loads(json.dumps(card)) == card


class TestText:
    def test_each_line_of_a_description_stays_a_line(self):
        state = replace(STATE, description="Disk almost full.\n- bullet a\r\n- bullet b")
        [text] = [b["text"] for b in cards.alert_card(state)["body"] if b.get("type") == "TextBlock" and "bullet a" in b.get("text", "")]
        assert text.split("\n\n") == ["Disk almost full.", "\\- bullet a", "\\- bullet b"]

    def test_the_help_card_shows_no_placeholder_teams_would_read_as_markup(self):
        from shared.services.bot import COMMANDS

        card = cards.help_card(COMMANDS)
        titles = [fact["title"] for fact in card["body"][-1]["facts"]]
        assert "ack ID" in titles and "resolve ID" in titles and not any("<" in t or ">" in t for t in titles)

    def test_the_first_firing_time_stays_when_the_alert_is_updated(self):
        from datetime import datetime, timezone

        fired, later = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc), datetime(2026, 11, 1, 10, 14, tzinfo=timezone.utc)
        facts = {f["title"]: f["value"] for f in cards.alert_card(replace(STATE, created=fired, updated=later))["body"][1]["facts"]}
        assert "2026-11-01T08:00:00" in facts["Fired"] and "2026-11-01T10:14:00" in facts["Updated"]

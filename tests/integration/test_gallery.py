"""The card gallery, rendered for real: the adaptivecards renderer in headless Chromium with
Teams' host configs measures every card in every theme, and docs/cards shows today's cards."""

from __future__ import annotations

import re

import pytest

from tools.gallery import __main__ as gallery
from tools.gallery.cases import THEMES, all_cards

CARDS = all_cards()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery")
    return out, gallery.render(CARDS, out)


def test_every_card_renders_without_warnings_cut_off_text_or_low_contrast(rendered):
    _, results = rendered
    assert {(r["name"], r["theme"]) for r in results} == {(name, theme) for name, _ in CARDS for theme in THEMES}
    assert gallery.problems(results) == []


def test_every_card_has_a_screenshot_in_the_light_theme(rendered):
    out, _ = rendered
    for name, _ in CARDS:
        png = out / f"{name}.light.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_the_measurements_see_cut_off_text_runs_past_the_edge_and_low_contrast():
    """The renderer's measurements themselves: a card made to fail each one."""
    bad = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "x" * 400, "wrap": False},
            {"type": "TextBlock", "text": "yellow on white", "color": "Warning"},
            {"type": "Image", "url": "https://example.invalid/x.png", "size": "Unheard"},
        ],
    }
    [result] = [r for r in gallery.render([("bad", bad)], None) if r["theme"] == "light"]
    assert result["clipped"] and result["contrast"]["failures"] and result["warnings"]


def test_docs_cards_show_todays_cards():
    """docs/cards/README.md names the hash of each card it shows: run `make gallery` after a card changes."""
    index = (gallery.DOCS / "README.md").read_text(encoding="utf-8")
    shown = dict(re.findall(r"^## (\S+)\n\n<!-- card (\w+) -->", index, re.MULTILINE))
    assert shown == {name: gallery.card_hash(card) for name, card in CARDS}, (
        "docs/cards is out of date: run make gallery"
    )
    for name, _ in CARDS:
        assert (gallery.DOCS / f"{name}.light.png").exists(), name

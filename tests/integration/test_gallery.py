"""The card gallery, rendered for real: the adaptivecards renderer in headless Chromium with
Teams' host configs measures every card in every theme, in the fonts the project ships, and
docs/cards shows today's cards as that renderer draws them."""

from __future__ import annotations

import re
import struct

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


def test_text_no_shipped_font_can_draw_is_reported():
    """Armenian is in none of the shipped fonts: the browser draws it with one of the machine's,
    whose widths differ from machine to machine, and the gallery says so."""
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Armenian: Աբգ"}]}
    [result] = [r for r in gallery.render([("armenian", card)], None) if r["theme"] == "light"]
    assert result["systemFonts"], result
    assert any("drawn with a font of this machine" in p for p in gallery.problems([result]))


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_docs_cards_were_drawn_in_the_fonts_the_renderer_uses_now(rendered):
    """Each committed screenshot is as tall as the card renders here: text wraps by the font's
    widths, so a screenshot drawn with other fonts (or a card that changed) differs."""
    _, results = rendered
    compared = 0
    for r in results:
        png = gallery.DOCS / f"{r['name']}.{r['theme']}.png"
        if png.exists():
            assert png_size(png) == (gallery.WIDTH, r["height"]), f"{png.name}: run make gallery"
            compared += 1
    assert compared == len(list(gallery.DOCS.glob("*.png"))) > 0


def test_a_failed_gallery_run_writes_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cards"
    out.mkdir()
    (out / "kept.light.png").write_bytes(b"before")
    (out / "README.md").write_text("before", encoding="utf-8")
    cut_off = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "x" * 400}]}
    monkeypatch.setattr(gallery, "all_cards", lambda: [*CARDS[:1], ("cut-off", cut_off)])
    assert gallery.main(["--out", str(out)]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "kept.light.png"]
    assert (out / "README.md").read_text(encoding="utf-8") == "before"
    assert "nothing written to" in capsys.readouterr().err


def test_a_passing_gallery_run_replaces_the_screenshots(tmp_path, monkeypatch):
    out = tmp_path / "cards"
    out.mkdir()
    (out / "gone.light.png").write_bytes(b"old")
    monkeypatch.setattr(gallery, "all_cards", lambda: CARDS[:1])
    assert gallery.main(["--out", str(out)]) == 0
    name = CARDS[0][0]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", f"{name}.light.png"]
        + ([f"{name}.{t}.png" for t in THEMES if t != "light"] if name in gallery.ALL_THEMES else [])
    )


def test_docs_cards_show_todays_cards():
    """docs/cards/README.md names the hash of each card it shows: run `make gallery` after a card changes."""
    index = (gallery.DOCS / "README.md").read_text(encoding="utf-8")
    shown = dict(re.findall(r"^## (\S+)\n\n<!-- card (\w+) -->", index, re.MULTILINE))
    assert shown == {name: gallery.card_hash(card) for name, card in CARDS}, (
        "docs/cards is out of date: run make gallery"
    )
    for name, _ in CARDS:
        assert (gallery.DOCS / f"{name}.light.png").exists(), name

"""Every card kind and state: its golden file, the Adaptive Card 1.5 schema, and the palette's
contrast in Teams' light, dark and high-contrast host configs (WCAG AA: 4.5:1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft6Validator

from shared import cards
from tests.support.cards import walk
from tests.support.golden import check_golden
from tools.gallery.cases import THEMES, all_cards, build, card_schema, host_config, inputs

CARDS = all_cards()
NAMES = [name for name, _ in CARDS]
MIN_CONTRAST = 4.5


@pytest.mark.parametrize("path", inputs(), ids=lambda p: p.stem)
def test_each_card_matches_its_golden_file(request, path: Path):
    check_golden(request, path, build(json.loads(path.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("name, card", CARDS, ids=NAMES)
def test_each_card_is_a_valid_adaptive_card_1_5(name: str, card: dict):
    errors = sorted(Draft6Validator(card_schema()).iter_errors(card), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:200]}" for e in errors)
    elements = {key: value for key, value in card.items() if key != "msteams"}  # mentions name people by id
    ids = [node["id"] for node in walk(elements) if isinstance(node.get("id"), str)]
    assert len(ids) == len(set(ids)), "element ids must be unique in a card"


def test_the_schema_check_refuses_what_teams_would_not_render():
    broken = json.loads(json.dumps(CARDS[0][1]))
    broken["body"][0]["type"] = "Badge"  # an element of a later schema version
    assert list(Draft6Validator(card_schema()).iter_errors(broken))


# ------------------------------------------------------------------------ contrast


def _rgb(colour: str, behind: tuple[float, float, float]) -> tuple[float, float, float]:
    """#RRGGBB or #AARRGGBB (host configs write alpha first), composed over ``behind``."""
    digits = colour.lstrip("#")
    alpha = int(digits[:2], 16) / 255 if len(digits) == 8 else 1.0
    rgb = [int(digits[-6:][i : i + 2], 16) for i in (0, 2, 4)]
    return tuple(alpha * c + (1 - alpha) * b for c, b in zip(rgb, behind, strict=True))  # type: ignore[return-value]


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: tuple[float, float, float], background: tuple[float, float, float]) -> float:
    high, low = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def texts_with_style(node: Any, style: str = "default") -> Iterator[tuple[dict, str]]:
    """Each TextBlock with the container style it sits on (styles are inherited)."""
    if isinstance(node, dict):
        if node.get("type") in ("Container", "Column", "ColumnSet") and node.get("style"):
            style = node["style"]
        if node.get("type") == "TextBlock":
            yield node, style
        for value in node.values():
            yield from texts_with_style(value, style)
    elif isinstance(node, list):
        for item in node:
            yield from texts_with_style(item, style)


def measured(card: dict, config: dict) -> list[tuple[float, str]]:
    page = _rgb(config["containerStyles"]["default"]["backgroundColor"], (255, 255, 255))
    found = []
    for block, style in texts_with_style(card["body"]):
        styles = config["containerStyles"][style]
        background = _rgb(styles["backgroundColor"], page)
        colour = styles["foregroundColors"][(block.get("color") or "default").lower()]
        foreground = _rgb(colour["subtle" if block.get("isSubtle") else "default"], background)
        found.append((contrast(foreground, background), block["text"][:50]))
    return found


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("name, card", CARDS, ids=NAMES)
def test_every_text_reaches_4_5_to_1_on_its_background(name: str, card: dict, theme: str):
    config = host_config(theme)
    low = [(round(ratio, 2), text) for ratio, text in measured(card, config) if ratio < MIN_CONTRAST]
    assert not low, f"{name} in the {theme} theme: {low}"


def test_the_contrast_check_sees_a_coloured_text():
    """The yellow "warning" text of the old header: 1.1:1 on its own background in the light theme."""
    card = cards._card(
        [
            {
                "type": "Container",
                "style": "warning",
                "items": [{"type": "TextBlock", "text": "ACKNOWLEDGED", "color": "Warning"}],
            }
        ]
    )
    [(ratio, _)] = measured(card, host_config("light"))
    assert ratio < 1.5


# ------------------------------------------------------------------------ the design


def test_severity_and_status_never_share_a_colour_and_always_carry_a_word():
    assert not set(cards.SEVERITY_STYLE.values()) & {style for style, _ in cards.STATUS_BADGE.values()}
    for severity in cards.SEVERITIES:
        assert severity.upper() in cards.severity_badge(severity)["items"][0]["text"]
    for status, (_, text) in cards.STATUS_BADGE.items():
        assert status.title() in text


def test_the_cases_cover_every_kind_severity_and_status():
    """The gallery shows every state a card can be in, so a change to any of them is seen."""
    kinds = {json.loads(p.read_text(encoding="utf-8"))["kind"] for p in inputs()}
    assert kinds == {"alert", "alerts", "digest", "summary", "help"}
    shown = " ".join(node["text"] for _, card in CARDS for node in walk(card) if node.get("type") == "TextBlock")
    for severity in cards.SEVERITIES:
        assert severity.upper() in shown, severity
    for _, text in cards.STATUS_BADGE.values():
        assert text in shown, text
    assert "did not fit in a Teams message" in shown  # a trimmed card
    assert any(
        node.get("id") == "note" and node["text"].startswith("\u26a0") for _, card in CARDS for node in walk(card)
    )  # a refusal

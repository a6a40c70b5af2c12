"""The card cases: each ``tests/golden/cards/NAME.json`` is the input of one card (an alert's
state and what its conversation says, a storm summary, a digest...), and ``NAME.expected.json``
beside it the card the connector makes of it. The gallery renders the same cards."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from shared import cards
from shared.domain.jobs import alert_from_json

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "golden" / "cards"
REFERENCE = Path(__file__).resolve().parent / "reference"
THEMES = ("light", "dark", "high-contrast")


def host_config(theme: str) -> dict[str, Any]:
    return json.loads((REFERENCE / f"hostconfig-teams-{theme}.json").read_text(encoding="utf-8"))


def card_schema() -> dict[str, Any]:
    """The Adaptive Card 1.5 schema with what Teams adds to it: a card's ``msteams`` (its width,
    and the mention entities its text's ``<at>`` tags name; Teams docs, cards-format, "Mention
    support within Adaptive Cards") and an Input.ChoiceSet's ``choices.data`` (a type-ahead the
    bot answers; Teams docs, dynamic-search, "Typeahead search in Adaptive Cards")."""
    schema = json.loads((REFERENCE / "adaptive-card-1.5.0.json").read_text(encoding="utf-8"))
    text = {"type": "string", "minLength": 1}
    mention = {
        "type": "object",
        "properties": {
            "type": {"enum": ["mention"]},
            "text": {"type": "string", "pattern": "^<at>[^<>]+</at>$"},
            "mentioned": {
                "type": "object",
                "properties": {"id": text, "name": text},
                "required": ["id", "name"],
                "additionalProperties": False,
            },
        },
        "required": ["type", "text", "mentioned"],
        "additionalProperties": False,
    }
    schema["definitions"]["AdaptiveCard"]["properties"]["msteams"] = {
        "type": "object",
        "properties": {"width": {"enum": ["Full"]}, "entities": {"type": "array", "items": mention}},
        "additionalProperties": False,
    }
    schema["definitions"]["Input.ChoiceSet"]["properties"]["choices.data"] = {
        "type": "object",
        "properties": {
            "type": {"enum": ["Data.Query"]},
            "dataset": text,
            "count": {"type": "integer"},
            "skip": {"type": "integer"},
        },
        "required": ["type", "dataset"],
        "additionalProperties": False,
    }
    return schema


def inputs() -> list[Path]:
    return sorted(p for p in CASES.glob("*.json") if not p.name.endswith(".expected.json"))


def build(case: dict[str, Any]) -> dict[str, Any]:
    """The card for one input, made by the same functions the connector uses."""
    kind = case["kind"]
    if kind == "alert":
        card = cards.fit_card(alert_from_json(case["alert"]), case.get("context"))
        return cards.with_note(card, case["note"], case.get("done", True)) if case.get("note") else card
    if kind == "alerts":
        return cards.alerts_card(
            [alert_from_json(a) for a in case["alerts"]],
            datetime.fromisoformat(case["now"]),
            case.get("note", ""),
            case.get("done", True),
        )
    if kind == "digest":
        return cards.digest_card(
            case["title"], [alert_from_json(a) for a in case["alerts"]], case["period"], case.get("context")
        )
    if kind == "summary":
        return cards.summary_card(case["summary"])
    if kind == "help":
        from shared.services.bot import COMMANDS

        return cards.help_card(COMMANDS)
    raise ValueError(f"unknown card kind {kind!r}")


def all_cards() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name.removesuffix(".json"), build(json.loads(path.read_text(encoding="utf-8")))) for path in inputs()]

"""Every piece of card JSON is built in shared/cards.py: the services and adapters hand cards
around but never spell their JSON (element types, the attachment content type)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CARD_JSON = re.compile(
    r'"(AdaptiveCard|TextBlock|ColumnSet|Container|FactSet|ActionSet|Action\.\w+|application/vnd\.microsoft\.[\w.]+)"'
)


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (ROOT / "shared").rglob("*.py") if p.name != "cards.py"),
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_no_card_json_outside_the_cards_module(path):
    assert CARD_JSON.findall(path.read_text(encoding="utf-8")) == []

"""What the Bicep checks' tests share: where infra/ and the broken copies are, and how to plant
an error in a copy of infra/ (the ``infra`` fixture, in tests/unit/conftest.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
FIXTURES = ROOT / "tests" / "fixtures" / "bicep"


def plant(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")

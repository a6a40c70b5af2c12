"""Golden files: NAME.json is what a source sends, NAME.expected.json what the connector makes
of it (the events, or the refusal naming the field). ``pytest --update-golden`` rewrites the
expected files from the current code; review the diff before committing it."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from shared.domain.events import InvalidEvent
from shared.domain.inbound import parse_message

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def render(value: Any) -> Any:
    """JSON rendering of events: dataclasses → dicts, datetimes → ISO strings, tuples → lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: render(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [render(v) for v in value]
    if isinstance(value, dict):
        return {str(k): render(v) for k, v in value.items()}
    return value


def expected_path(payload: Path) -> Path:
    return payload.with_name(payload.name.removesuffix(".json") + ".expected.json")


def payloads(folder: str, *, invalid: bool = False) -> list[Path]:
    base = GOLDEN / folder / ("invalid" if invalid else "")
    return sorted(p for p in base.glob("*.json") if not p.name.endswith(".expected.json"))


def outcome(payload: Path) -> Any:
    """The events a payload becomes, or its refusal: {"field", "message"}."""
    try:
        return render(parse_message(payload.read_bytes()))
    except InvalidEvent as exc:
        return {"field": exc.field, "message": str(exc)}


def check_golden(request: pytest.FixtureRequest, payload: Path, actual: Any) -> None:
    target = expected_path(payload)
    text = json.dumps(actual, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    if request.config.getoption("--update-golden"):
        target.write_text(text, encoding="utf-8")
        return
    assert target.exists(), f"{target.name} is missing: run pytest --update-golden and review it"
    assert actual == json.loads(target.read_text(encoding="utf-8")), f"output differs from {target.name}"

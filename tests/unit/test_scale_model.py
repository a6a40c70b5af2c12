"""docs/SCALE.md agrees with the model, and the model's inputs are what make bench measures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import scale_model

ROOT = Path(__file__).resolve().parents[2]


class TestScaleModel:
    def test_the_page_shows_what_the_model_computes_from_the_measured_figures(self):
        text = (ROOT / "docs" / "SCALE.md").read_text()
        section = text[text.index(scale_model.BEGIN) + len(scale_model.BEGIN) : text.index(scale_model.END)].strip()
        assert section == scale_model.render(scale_model.MEASURED), "run: python -m tools.scale_model --write"

    def test_the_pages_per_event_table_is_the_measured_one(self):
        text = (ROOT / "docs" / "SCALE.md").read_text()
        for phase, by_table in scale_model.MEASURED["table_requests_per_event_by_table"].items():
            row = re.search(rf"^\| {phase} \|.*\| ([\d.]+) \|$", text, re.M)
            assert row is not None, phase
            assert float(row.group(1)) == round(sum(by_table.values()), 1), phase

    def test_every_input_is_a_figure_make_bench_prints(self):
        bench = (ROOT / "tools" / "bench" / "__main__.py").read_text()
        for key in scale_model.MEASURED:
            assert f'self.results["{key}"]' in bench, key

    def test_requests_of_the_card_repeat_per_conversation_and_the_alerts_do_not(self):
        one, three = scale_model.per_alert(scale_model.MEASURED, 1), scale_model.per_alert(scale_model.MEASURED, 3)
        per_conversation = sum(
            n
            for phase in scale_model.MEASURED["table_requests_per_event_by_table"].values()
            for table, n in phase.items()
            if table in scale_model.PER_CONVERSATION_TABLES
        )
        assert three.table_requests - one.table_requests == pytest.approx(2 * per_conversation)
        assert (one.teams_requests, three.teams_requests) == (3, 9)

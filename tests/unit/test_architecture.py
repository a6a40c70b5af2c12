"""The layers keep their import rules (tools/import_rules.py), and the checker finds each kind of
violation wherever it is planted."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

from tools import import_rules

ROOT = Path(__file__).resolve().parents[2]


def test_the_tree_keeps_every_import_rule():
    found = import_rules.violations(ROOT)
    assert not found, "import rules broken (tools/import_rules.py):\n" + "\n".join(found)


# ---------------------------------------------------------------- the checker finds each kind


@functools.cache
def real_violations() -> frozenset[str]:
    return frozenset(import_rules.violations(ROOT))


class Tree:
    """A copy of shared/ and function_app.py to plant violations in."""

    def __init__(self, root: Path) -> None:
        shutil.copytree(ROOT / "shared", root / "shared", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(ROOT / "function_app.py", root / "function_app.py")
        self.root = root
        self.known = real_violations()  # paths are relative: the copy reports what the tree does

    def plant(self, rel: str, code: str) -> list[str]:
        """The violations that appear when ``code`` is appended to ``rel``."""
        path = self.root / rel
        path.write_text(path.read_text(encoding="utf-8") + "\n\n" + code + "\n", encoding="utf-8")
        found = import_rules.violations(self.root)
        new = [v for v in found if v not in self.known]
        self.known = frozenset(found)
        return new


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


PLANTED = [
    # domain: standard library and shared.domain only, wherever the import is
    ("domain", "shared/domain/model.py", "from shared.adapters.graph import GraphDirectory"),
    ("domain", "shared/domain/pacing.py", "def f():\n    import botbuilder.core"),
    ("domain", "shared/domain/workflows.py", "from shared import cards"),
    ("domain", "shared/domain/alerts.py", "from shared.settings import Settings"),
    (
        "domain",
        "shared/domain/jobs.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shared.ports import JobQueue",
    ),
    ("domain", "shared/domain/tenants.py", "from .. import services"),
    ("domain", "shared/domain/events.py", "import importlib\nimportlib.import_module('shared.ports')"),
    # adapters: no services, entrypoints, bootstrap
    ("adapters", "shared/adapters/records.py", "from shared.services.consent import x"),
    ("adapters", "shared/adapters/graph.py", "def f():\n    from shared import bootstrap"),
    ("adapters", "shared/adapters/outbound.py", "from ..entrypoints import ingest"),
    # composition: only bootstrap imports adapters
    ("composition", "shared/entrypoints.py", "def f():\n    from shared.adapters.teams_bot import TeamsBot"),
    ("composition", "shared/cards.py", "import shared.adapters.graph"),
    ("composition", "shared/ports.py", "from shared import adapters"),
    ("composition", "shared/services/health.py", "from shared.adapters.state_store import memory_store"),
    # services: no SDK, no adapter
    ("services", "shared/services/bot.py", "import botbuilder.core"),
    ("services", "shared/services/consent.py", "def f():\n    import msal"),
    ("services", "shared/services/recipients.py", "from kiota_abstractions.api_error import APIError"),
    ("services", "shared/services/delivery.py", "from azure.servicebus import ServiceBusMessage"),
    ("services", "shared/services/periodic.py", "async def f():\n    import aiohttp"),
    ("services", "shared/services/workflows.py", "from ..adapters import records"),
    # function_app: module level stays light
    ("function_app", "function_app.py", "from shared import bootstrap"),
    ("function_app", "function_app.py", "from shared.services import events"),
    ("function_app", "function_app.py", "import azure.identity"),
    # cold start: what `import function_app` loads imports no SDK at module level
    ("cold start", "shared/cards.py", "import botbuilder.core"),
    ("cold start", "shared/bootstrap.py", "from msgraph import GraphServiceClient"),
    ("cold start", "shared/domain/retention.py", "import httpx"),
]


@pytest.mark.parametrize(
    ("rule", "rel", "code"), PLANTED, ids=[f"{r}:{p}:{c.splitlines()[-1].strip()}" for r, p, c in PLANTED]
)
def test_a_planted_violation_is_reported_with_its_file_and_rule(tree, rule, rel, code):
    new = tree.plant(rel, code)
    assert any(v.startswith(f"{rel}:") and f"[{rule}]" in v for v in new), new


def test_an_adapter_may_import_another_adapter_and_bootstrap_may_import_adapters(tree):
    assert tree.plant("shared/adapters/outbound.py", "def f():\n    from shared.adapters import records") == []
    assert tree.plant("shared/bootstrap.py", "def f():\n    from shared.adapters.graph import GraphDirectory") == []


def test_function_app_may_import_anything_allowed_inside_a_trigger(tree):
    # Inside a function it costs nothing at cold start; the other rules still apply.
    assert tree.plant("function_app.py", "def f():\n    from shared.services import events") == []
    new = tree.plant("function_app.py", "def g():\n    from shared.adapters import graph")
    assert [v for v in new if "[composition]" in v] and not [v for v in new if "[function_app]" in v]


def test_an_sdk_in_a_module_function_app_does_not_load_is_not_a_cold_start_cost(tree):
    assert tree.plant("shared/adapters/records.py", "import botbuilder.core") == []


def test_a_cold_start_violation_says_how_function_app_loads_the_module(tree):
    (found,) = tree.plant("shared/cards.py", "import httpx")
    assert found.startswith("shared/cards.py:") and "[cold start] import httpx" in found
    assert "(loaded by function_app -> shared.entrypoints -> " in found and "-> shared.cards)" in found

"""The layers keep their import rules (tools/import_rules.py), and docs/ARCHITECTURE.md names
only modules and functions that exist, and every part of shared/."""

from __future__ import annotations

import ast
import functools
import re
import shutil
from pathlib import Path

import pytest

from tools import import_rules

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"


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
    ("composition", "shared/entrypoints/bot.py", "def f():\n    from shared.adapters.teams_bot import TeamsBot"),
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
    ("function_app", "function_app.py", "from shared.services import processing"),
    ("function_app", "function_app.py", "import azure.identity"),
    # cold start: what `import function_app` loads imports no SDK at module level
    ("cold start", "shared/cards.py", "import botbuilder.core"),
    ("cold start", "shared/bootstrap.py", "from msgraph import GraphServiceClient"),
    ("cold start", "shared/domain/retention.py", "import httpx"),
    ("cold start", "shared/settings.py", "import jinja2"),
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
    assert tree.plant("function_app.py", "def f():\n    from shared.services import processing") == []
    new = tree.plant("function_app.py", "def g():\n    from shared.adapters import graph")
    assert [v for v in new if "[composition]" in v] and not [v for v in new if "[function_app]" in v]


def test_an_sdk_in_a_module_function_app_does_not_load_is_not_a_cold_start_cost(tree):
    assert tree.plant("shared/adapters/records.py", "import botbuilder.core") == []


def test_a_cold_start_violation_says_how_function_app_loads_the_module(tree):
    (found,) = tree.plant("shared/cards.py", "import httpx")
    assert found.startswith("shared/cards.py:") and "[cold start] import httpx" in found
    assert "(loaded by function_app -> shared.entrypoints." in found and "-> shared.cards)" in found


# ---------------------------------------------------------------- the document keeps up

_PATH = re.compile(r"(?<![\w/.-])((?:shared|tools|tests|docs)(?:/[\w.-]+)+/?|function_app\.py|README\.md)")
_DOTTED = re.compile(r"(?<![\w./-])((?:shared|function_app)(?:\.\w+)+)")


def named_in_doc() -> tuple[set[str], set[str]]:
    """The paths (shared/services/delivery.py) and dotted names (shared.services.delivery.run_jobs)
    the document names."""
    text = DOC.read_text(encoding="utf-8")
    paths = {m.rstrip(".") for m in _PATH.findall(text)}
    without_paths = _PATH.sub(" ", text)
    return paths, set(_DOTTED.findall(without_paths))


def defines(module: Path, attributes: list[str]) -> bool:
    """Whether the module defines ``attributes[0]`` at top level (and, for a class, ``attributes[1]``
    in its body)."""
    body = ast.parse(module.read_text(encoding="utf-8")).body
    for name in attributes[:2]:
        found = None
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                found = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found = node
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name.split(".")[0]) == name for a in node.names
            ):
                found = node
        if found is None:
            return False
        body = found.body if isinstance(found, ast.ClassDef) else []
    return True


def test_every_path_the_document_names_exists():
    paths, _ = named_in_doc()
    assert paths, "the document names no path"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"


def test_every_module_and_function_the_document_names_exists():
    _, dotted = named_in_doc()
    assert dotted, "the document names no module"
    missing = []
    for name in sorted(dotted):
        parts = name.split(".")
        depth = next((d for d in range(len(parts), 0, -1) if import_rules.module_file(ROOT, ".".join(parts[:d]))), None)
        if depth is None:
            missing.append(name)
            continue
        module = import_rules.module_file(ROOT, ".".join(parts[:depth]))
        assert module is not None
        if parts[depth:] and not defines(module, parts[depth:]):
            missing.append(name)
    assert not missing, f"docs/ARCHITECTURE.md names what the code does not have: {missing}"


def test_the_document_names_every_part_of_shared():
    paths, dotted = named_in_doc()
    named = {p.rstrip("/").removesuffix(".py") for p in paths} | {
        "/".join(d.split(".")[:depth]) for d in dotted for depth in range(1, len(d.split(".")) + 1)
    }
    parts = sorted(
        f"shared/{p.name.removesuffix('.py')}"
        for p in (ROOT / "shared").iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()
    )
    assert parts
    unnamed = [p for p in parts if p not in named]
    assert not unnamed, f"docs/ARCHITECTURE.md does not name {unnamed}"

"""The bytecode the deployed package carries (tools/bytecode.py): made once, used by a Python
that cannot write bytecode (the read-only package), whatever times the unzipped files have, and
never used for a source that changed since."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import bytecode

ROOT = Path(__file__).resolve().parents[2]

# Imports every module of the app and prints which were compiled from source.
PROBE = """
import importlib, json, pkgutil, sys
from importlib import _bootstrap_external as ext
compiled = []
original = ext.SourceLoader.source_to_code
def counting(self, data, path, *, _optimize=-1):
    compiled.append(path)
    return original(self, data, path, _optimize=_optimize)
ext.SourceLoader.source_to_code = counting
import function_app, shared
for module in pkgutil.walk_packages(shared.__path__, "shared."):
    importlib.import_module(module.name)
print(json.dumps(sorted(p for p in compiled if p.startswith(sys.argv[1]))))
"""


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """The app's code as a package holds it, compiled, then unzipped (new file times) read-only."""
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy2(ROOT / "function_app.py", app)
    shutil.copytree(ROOT / "shared", app / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    bytecode.compile_app(app)
    for path in app.rglob("*.py"):
        os.utime(path, (1_000_000_000, 1_000_000_000))  # the times an unzip gives, not the build's
    return app


def compiled_from_source(app: Path) -> list[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(app)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(app)], cwd=app, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the package's bytecode is Python 3.11's")
class TestThePackagesBytecode:
    def test_every_module_of_the_app_loads_without_compiling(self, package):
        assert compiled_from_source(package) == []

    def test_a_source_changed_since_is_compiled_afresh_never_run_stale(self, package):
        settings = package / "shared" / "settings.py"
        settings.write_text(settings.read_text(encoding="utf-8") + "\nCHANGED = True\n", encoding="utf-8")
        assert compiled_from_source(package) == [str(settings)]

    def test_without_it_every_module_is_compiled_at_each_start(self, tmp_path):
        app = tmp_path / "bare"
        app.mkdir()
        shutil.copy2(ROOT / "function_app.py", app)
        shutil.copytree(ROOT / "shared", app / "shared", ignore=shutil.ignore_patterns("__pycache__"))
        assert len(compiled_from_source(app)) == len(list(app.rglob("*.py")))


def test_only_python_3_11_makes_it(monkeypatch, tmp_path):
    monkeypatch.setattr(bytecode.sys, "version_info", (3, 12, 0, "final", 0))
    with pytest.raises(SystemExit, match=r"Python 3\.11"):
        bytecode.compile_app(tmp_path)

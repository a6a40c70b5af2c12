"""The two commands on a machine that lacks a tool: each missing one names itself and how to
get it, before anything runs (not `make: npm: No such file or directory … Error 127`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_path(tmp_path: Path) -> str:
    """A PATH with a shell and make, and no Node.js or Python."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("sh", "make", "env", "touch", "test"):
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"needs {name}")
        (tools / name).symlink_to(found)
    return str(tools)


def make(path: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", *args],
        cwd=ROOT,
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=60,
        executable=shutil.which("make"),
    )


def test_a_missing_npm_is_named_with_how_to_get_it(bare_path):
    # -W: as if package.json had changed, so the npm step would run now.
    done = make(bare_path, "node_modules/.installed", "-W", "package.json")
    assert done.returncode != 0
    assert "Node.js 20 or later with npm is needed" in done.stdout and "Error 127" not in done.stderr


def test_make_reset_names_a_missing_python(bare_path):
    done = make(bare_path, "reset", PYTHON="python3.11-not-here")
    assert done.returncode != 0 and "Python 3.11 is needed (python3.11-not-here not found)" in done.stdout

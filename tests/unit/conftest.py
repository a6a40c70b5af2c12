"""Fixtures of the unit tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.bicep import INFRA


@pytest.fixture
def infra(tmp_path) -> Path:
    """A copy of infra/ to plant errors in."""
    shutil.copytree(INFRA, tmp_path / "infra")
    return tmp_path / "infra"

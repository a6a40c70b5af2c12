"""Shared test configuration."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expected outputs of golden-file tests from the current code",
    )


_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def azurite():
    """Azurite Table service, started once per test session from node_modules."""
    from tests.support.azurite import Azurite

    server = Azurite()
    yield server
    server.stop()


@pytest.fixture
def table_prefix() -> str:
    """A fresh table prefix per test, so tests sharing one Azurite never see each other's rows."""
    return f"t{next(_prefixes)}x{__import__('os').getpid()}"

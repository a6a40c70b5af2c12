"""make run's local state: fresh keys and an empty state each run, the last run's with --keep."""

from __future__ import annotations

import json

import pytest

from tools import run_local


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(run_local, "STATE_DIR", tmp_path / ".local")
    monkeypatch.setattr(run_local, "RUN_FILE", tmp_path / ".local" / "run.json")
    monkeypatch.delenv("ADMIN_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no local.settings.json here
    return tmp_path / ".local"


def write_run(state, keys):
    state.mkdir(parents=True, exist_ok=True)
    (state / "run.json").write_text(json.dumps({"keys": keys}))


def test_a_fresh_run_makes_new_keys_and_keep_reuses_the_last_ones(state):
    first = run_local.run_keys(keep=False)
    assert set(first) == {"ADMIN_API_KEY", "TOKEN_ENCRYPTION_KEY", "STATE_SIGNING_KEY", "GRAPH_CLIENT_SECRET"} and all(
        first.values()
    )
    write_run(state, first)
    assert run_local.run_keys(keep=True) == first  # the stored tokens stay readable
    fresh = run_local.run_keys(keep=False)
    assert not set(fresh.values()) & set(first.values())


def test_an_admin_key_from_the_environment_wins(state, monkeypatch):
    monkeypatch.setenv("ADMIN_API_KEY", "mine")
    assert run_local.run_keys(keep=False)["ADMIN_API_KEY"] == "mine"


def test_reset_removes_the_local_state(state):
    write_run(state, {"ADMIN_API_KEY": "x"})
    (state / "azurite").mkdir()
    assert run_local.main(["--reset"]) == 0
    assert not state.exists()

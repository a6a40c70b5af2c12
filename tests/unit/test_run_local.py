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


class TestOneRunPerCheckout:
    """A second make run (whatever its ports) or a make reset during a run leaves it working."""

    def live_run(self, state, pid: int) -> None:
        state.mkdir(parents=True, exist_ok=True)
        (state / run_local.LOCK_NAME).write_text(
            json.dumps({"pid": pid, "host": "http://127.0.0.1:7311", "ports": {"the local Functions host": 7311}})
        )
        write_run(state, {"ADMIN_API_KEY": "the running one's"})

    def test_reset_during_a_run_names_it_and_removes_nothing(self, state, capsys):
        import os

        self.live_run(state, os.getpid())  # this test process stands in for the running one: alive
        assert run_local.main(["--reset"]) == 1
        assert "PID" in capsys.readouterr().err and (state / "run.json").exists()

    def test_a_second_run_on_other_ports_names_it_and_touches_nothing(self, state, capsys):
        import os

        self.live_run(state, os.getpid())
        assert run_local.main(["--port", "7411", "--playground-port", "56250", "--azurite-port", "10102"]) == 1
        err = capsys.readouterr().err
        assert "host http://127.0.0.1:7311" in err and "one run at a time" in err
        assert json.loads((state / "run.json").read_text())["keys"] == {"ADMIN_API_KEY": "the running one's"}

    def test_a_lock_left_by_a_run_that_died_is_no_ones(self, state):
        self.live_run(state, 2**22 + 12345)  # no such process
        assert run_local.running_holder() is None
        assert run_local.main(["--reset"]) == 0 and not state.exists()
        run_local.claim_state("http://127.0.0.1:7071", {"the local Functions host": 7071})
        assert run_local.running_holder()["host"] == "http://127.0.0.1:7071"
        run_local.release_state()
        assert run_local.running_holder() is None


class TestStopping:
    def test_each_process_stops_before_the_one_started_before_it_is_asked_to(self):
        """A Ctrl-C during the start-up consent: the host finishes the callback while Azurite is
        still up (signalled together, the callback failed on a closed Azurite and the host printed
        its tracebacks)."""
        import signal

        said: list[str] = []

        class Process:
            def __init__(self, name: str) -> None:
                self.name, self.running = name, True

            def poll(self):
                return None if self.running else 0

            def send_signal(self, signum):
                assert signum == signal.SIGINT
                said.append(f"stop {self.name}")

            def wait(self, timeout=None):
                self.running = False
                said.append(f"{self.name} stopped")
                return 0

        run_local.stop_in_order([(name, Process(name)) for name in ("azurite", "host", "playground")])
        assert said == [
            "stop playground",
            "playground stopped",
            "stop host",
            "host stopped",
            "stop azurite",
            "azurite stopped",
        ]

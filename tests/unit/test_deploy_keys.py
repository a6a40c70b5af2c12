"""tools/deploy_keys.py: missing keys generated into Key Vault, existing ones kept, values never
on a command line or in the output. The Azure CLI is replaced by a recording script on PATH
(the real one needs an Azure subscription)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from tools import deploy_keys

FAKE_AZ = """#!{python}
import json, os, sys
log = os.environ["FAKE_AZ_LOG"]
args = sys.argv[1:]
entry = {{"args": args}}
if "--file" in args:
    path = args[args.index("--file") + 1]
    entry["file_mode"] = oct(os.stat(path).st_mode & 0o777)
    entry["value"] = open(path, encoding="utf-8").read()
with open(log, "a", encoding="utf-8") as out:
    out.write(json.dumps(entry) + "\\n")
existing = set(filter(None, os.environ.get("FAKE_AZ_EXISTING", "").split(",")))
# FAKE_AZ_FORBIDDEN=N: the first N Key Vault calls answer 403, as while a new role applies.
if args[0] == "keyvault" and int(os.environ.get("FAKE_AZ_FORBIDDEN", "0")):
    count = log + ".forbidden"
    done = int(open(count).read()) if os.path.exists(count) else 0
    if done < int(os.environ["FAKE_AZ_FORBIDDEN"]):
        open(count, "w").write(str(done + 1))
        print("ERROR: (Forbidden) Caller is not authorized to perform action on resource.", file=sys.stderr)
        sys.exit(1)
if args[:3] == ["keyvault", "secret", "show"]:
    name = args[args.index("--name") + 1]
    if name in existing:
        print("https://kv/secrets/" + name)
        sys.exit(0)
    print(
        "ERROR: (SecretNotFound) A secret with (name/id) " + name + " was not found in this key vault.", file=sys.stderr
    )
    sys.exit(3)
print("ok")
"""


@pytest.fixture
def az(tmp_path, monkeypatch):
    script = tmp_path / "bin" / "az"
    script.parent.mkdir()
    script.write_text(FAKE_AZ.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "az.log"
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AZ_LOG", str(log))
    monkeypatch.setenv("TMPDIR", str(tmp_path))

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return calls


class VirtualTime:
    """The clock and sleep deploy_keys waits with: a sleep moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def run(*argv: str, time: VirtualTime | None = None) -> tuple[int, str]:
    time = time or VirtualTime()
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = deploy_keys.main(list(argv), sleep=time.sleep, clock=time.clock)
    return code, out.getvalue() + err.getvalue()


def test_missing_keys_are_generated_from_a_private_file_and_the_app_restarted(az, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_AZ_EXISTING", "state-signing-key")
    code, said = run("--vault", "kv-tac", "--app", "func-tac", "--resource-group", "rg")
    assert code == 0
    sets = [c for c in az() if c["args"][:3] == ["keyvault", "secret", "set"]]
    assert sorted(c["args"][c["args"].index("--name") + 1] for c in sets) == ["admin-api-key", "token-encryption-key"]
    for call in sets:
        assert call["file_mode"] == "0o600" and len(call["value"]) >= 43
        assert (
            call["value"] not in " ".join(call["args"]) and call["value"] not in said
        )  # never on a command line, never printed
        assert "--expires" in call["args"]
    assert az()[-1]["args"] == ["functionapp", "restart", "--name", "func-tac", "--resource-group", "rg"]
    assert "state-signing-key: kept" in said and not list(tmp_path.glob("tac-key-*"))  # the files are gone


def test_nothing_to_do_restarts_nothing(az, monkeypatch):
    monkeypatch.setenv("FAKE_AZ_EXISTING", ",".join(deploy_keys.KEYS))
    code, said = run("--vault", "kv-tac", "--app", "func-tac", "--resource-group", "rg")
    assert code == 0 and not [c for c in az() if c["args"][0] == "functionapp"] and said.count(": kept") == 3


def test_a_vault_it_cannot_read_is_named(az, monkeypatch, tmp_path):
    script = Path(os.environ["PATH"].split(os.pathsep)[0]) / "az"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nprint('ERROR: (Unauthorized) AKV10032: Invalid issuer', "
        "file=sys.stderr)\nsys.exit(1)\n"
    )
    time = VirtualTime()
    code, said = run("--vault", "kv-tac", time=time)
    assert code == 1 and "cannot read secret token-encryption-key of vault kv-tac: ERROR: (Unauthorized)" in said
    assert time.sleeps == []  # only a 403 is waited out


def test_a_role_granted_in_the_same_deployment_is_waited_for(az, monkeypatch):
    """Key Vault answers 403 until the Secrets Officer role applies (minutes): the keys are written
    once it has, and the wait is said."""
    monkeypatch.setenv("FAKE_AZ_FORBIDDEN", "2")
    time = VirtualTime()
    code, said = run("--vault", "kv-tac", time=time)
    assert code == 0, said
    assert time.sleeps == [deploy_keys.ROLE_RETRY_SECONDS] * 2
    assert "waiting for the Key Vault Secrets Officer role" in said and said.count("waiting") == 1
    assert said.count("generated and stored") == 3


def test_a_role_that_never_applies_ends_the_wait_and_says_what_to_check(az, monkeypatch):
    monkeypatch.setenv("FAKE_AZ_FORBIDDEN", "1000")
    time = VirtualTime()
    code, said = run("--vault", "kv-tac", time=time)
    assert code == 1
    assert sum(time.sleeps) == deploy_keys.ROLE_WAIT_SECONDS
    assert "still refuses access after 10 minutes" in said and "Key Vault Secrets Officer" in said


def test_every_call_is_made_in_the_environments_subscription(az, monkeypatch):
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-1111-2222-3333-444444444444")
    code, _ = run("--vault", "kv-tac", "--app", "func-tac", "--resource-group", "rg")
    assert code == 0
    calls = [c["args"] for c in az()]
    for args in calls:
        if args[0] == "rest":  # the subscription is in its URL
            assert (
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/"
                in args[args.index("--url") + 1]
            )
        else:
            assert args[-2:] == ["--subscription", "00000000-1111-2222-3333-444444444444"], args
    assert [a[0] for a in calls[-2:]] == ["rest", "functionapp"]
    refresh = calls[-2][calls[-2].index("--url") + 1]
    assert refresh.endswith(
        "/providers/Microsoft.Web/sites/func-tac/config/configreferences/appsettings/refresh?api-version=2022-03-01"
    )


def test_the_keys_are_the_format_the_app_reads(az):
    from shared.security import parse_keys

    key = deploy_keys.new_value("token-encryption-key")
    assert len(key) == 43 and parse_keys(key)

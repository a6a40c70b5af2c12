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


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = deploy_keys.main(list(argv))
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
        f"#!{sys.executable}\nimport sys\nprint('ERROR: (Forbidden) Caller is not authorized', "
        "file=sys.stderr)\nsys.exit(1)\n"
    )
    code, said = run("--vault", "kv-tac")
    assert (
        code == 1
        and "cannot read secret token-encryption-key of vault kv-tac: ERROR: (Forbidden) Caller is not authorized"
        in said
    )

"""`import function_app`, as the Functions host does to index the app, loads azure.functions and
the settings check, not the connector's code: that is imported when a trigger first runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_indexing_the_app_imports_no_service_and_no_sdk():
    loaded = loaded_after("import function_app\nfunction_app.app.get_functions()")
    assert not [m for m in loaded if m.startswith("shared.entrypoints")]
    assert not {m for m in loaded if m.startswith(("shared.services", "shared.adapters", "shared.bootstrap"))}
    assert not {m for m in loaded if m.split(".")[0] in ("msgraph", "botbuilder", "azure.servicebus", "msal")}
    assert "azure.data.tables" not in loaded and "azure.servicebus" not in loaded
    assert "jinja2" not in loaded  # the console's template engine: loaded by its first page


def test_a_trigger_loads_the_connectors_code_when_it_first_runs():
    loaded = loaded_after(
        "import asyncio, function_app\ntry:\n    function_app.entrypoints.admin.health\nexcept Exception:\n    pass"
    )
    assert "shared.entrypoints.admin" in loaded and "shared.entrypoints.bot" not in loaded

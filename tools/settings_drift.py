"""Keeps the app settings in step across the code, Bicep, the local sample and docs/SETTINGS.md.

The settings the code reads are ``SETTINGS`` in shared/settings.py, plus the binding
expressions (``%NAME%``) and ``connection=`` names in function_app.py. Each must be set by the
function app's app settings in infra/, listed in local.settings.sample.json and in the docs/SETTINGS.md's
settings table, and none of those may hold a name nothing reads. No other module may read the
environment directly. Development-only (not deployed).

    python -m tools.settings_drift                # check this repository; exit 1 on drift
    python -m tools.settings_drift --root DIR     # check another tree (the tests use copies)
    python -m tools.settings_drift --table        # print the settings table
    python -m tools.settings_drift --write        # rewrite docs/SETTINGS_TABLE.md and the docs/SETTINGS.md block
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SETTINGS_DOC = "docs/SETTINGS.md"  # the page that shows the settings table to people
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"
TABLE_FILE = "docs/SETTINGS_TABLE.md"

# Settings the Functions platform reads, not our code. They may appear in the Bicep app
# settings and the local sample without being in SETTINGS (and are not in the settings table).
PLATFORM_SETTINGS: dict[str, str] = {
    "FUNCTIONS_WORKER_RUNTIME": (
        "language worker; local only (Flex Consumption takes it from functionAppConfig.runtime)"
    ),
    "AzureWebJobsStorage": "host storage as a connection string; local only (Azurite)",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where the host and worker send telemetry",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra authentication of telemetry (local auth is disabled)",
    "AzureWebJobsFeatureFlags": "host feature switches",
}
# Identity-based host storage: AzureWebJobsStorage__accountName, __credential, __clientId, ...
PLATFORM_PREFIXES: tuple[str, ...] = ("AzureWebJobsStorage__",)
# Flex Consumption rejects these as app settings (the runtime is in functionAppConfig).
FLEX_REJECTED = ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE")
# Read by shared/settings.py but set by App Service itself, never configured.
RUNTIME_MARKERS = frozenset({"WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME", "WEBSITE_HOSTNAME", "WEBSITE_POD_NAME"})
# Identity-based connection properties a binding's `connection` name may carry.
CONNECTION_PROPERTIES = ("fullyQualifiedNamespace", "credential", "clientId")
# Values a secret setting may have in the local sample: none at all, or the emulator's.
LOCAL_SAFE_SECRET_VALUES = ("", "UseDevelopmentStorage=true")
AZURITE_ACCOUNT = "AccountName=devstoreaccount1;"  # the Azurite account with its published key

# Directories never scanned for direct environment reads: dependencies, and dev-only code.
SCAN_SKIP_DIRS = frozenset(
    {".git", ".venv", "venv", "env", ".tools", "node_modules", "tools", "tests", "build", "dist", "__pycache__"}
)
ENV_READERS_ALLOWED = frozenset({"shared/settings.py"})


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    default: str | None
    secret: bool
    binding: bool


# --- reading the sources -------------------------------------------------------------------


def load_specs(root: Path) -> list[Spec]:
    """SETTINGS of ``root``/shared/settings.py (imported from that file, so copies work)."""
    path = root / "shared" / "settings.py"
    name = f"_settings_drift_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{path} not found: the settings drift check needs shared/settings.py.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses looks the module up while building the classes
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return [
        Spec(s.name, s.description, s.default, bool(getattr(s, "secret", False)), bool(getattr(s, "binding", False)))
        for s in module.SETTINGS
    ]


@dataclass
class Bindings:
    expressions: dict[str, int] = field(default_factory=dict)  # %NAME% -> line
    connections: dict[str, int] = field(default_factory=dict)  # connection="C" -> line


def read_bindings(path: Path) -> Bindings:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = Bindings()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.keyword)
            and node.arg == "connection"
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found.connections.setdefault(node.value.value, node.value.lineno)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for name in re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)%", node.value):
                found.expressions.setdefault(name, node.lineno)
    return found


def _strip_bicep_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"(^|\s)//.*$", "", line) for line in text.splitlines())


def _balanced(text: str, start: int, open_char: str, close_char: str) -> str:
    depth = 0
    in_string = False
    for i in range(start, len(text)):
        c = text[i]
        if c == "'" and text[i - 1] != "\\":
            in_string = not in_string
        if in_string:
            continue
        if c == open_char:
            depth += 1
        elif c == close_char:
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    raise ValueError("unbalanced brackets in Bicep")


def read_bicep_app_settings(infra: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """App settings (name -> value expression) of every ``appSettings: [...]`` in infra/,
    and, for module parameters, the expressions callers pass (name -> expressions)."""
    settings: dict[str, str] = {}
    passed: dict[str, list[str]] = {}
    for path in sorted(infra.rglob("*.bicep")):
        text = _strip_bicep_comments(path.read_text(encoding="utf-8"))
        for match in re.finditer(r"\bappSettings\s*:\s*\[", text):
            block = _balanced(text, match.end() - 1, "[", "]")
            for item in re.finditer(r"\{\s*name\s*:\s*'([^']+)'\s*value\s*:\s*(.+?)\s*\}", block, flags=re.S):
                settings[item.group(1)] = item.group(2).strip()
        for item in re.finditer(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+?)\s*$", text, flags=re.M):
            passed.setdefault(item.group(1), []).append(item.group(2))
    return settings, passed


def read_sample(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    values = data.get("Values")
    if not isinstance(values, dict):
        raise ValueError(f'{path.name} has no "Values" object.')
    return {str(k): str(v) for k, v in values.items()}


def read_table_names(table: str) -> list[str]:
    names = []
    for line in table.splitlines():
        match = re.match(r"^\|\s*`([^`]+)`\s*\|", line.strip())
        if match:
            names.append(match.group(1))
    return names


def readme_block(text: str) -> str | None:
    if TABLE_START not in text or TABLE_END not in text:
        return None
    return text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]


def env_readers(root: Path) -> list[str]:
    """``file:line`` of every direct environment read outside the allowed modules."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in SCAN_SKIP_DIRS for part in rel.parts[:-1]) or rel.as_posix() in ENV_READERS_ALLOWED:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as error:
            found.append(f"{rel.as_posix()}:{error.lineno}: cannot parse ({error.msg})")
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("environ", "environb", "getenv", "getenvb")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                found.append(f"{rel.as_posix()}:{node.lineno}: os.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "os":
                for alias in node.names:
                    if alias.name in ("environ", "environb", "getenv", "getenvb"):
                        found.append(f"{rel.as_posix()}:{node.lineno}: from os import {alias.name}")
    return found


def _settings_module_names(root: Path) -> set[str]:
    """Setting-like string literals in shared/settings.py (to catch a read of an undeclared name)."""
    tree = ast.parse((root / "shared" / "settings.py").read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+|[A-Za-z]+(__[A-Za-z]+)+", node.value)
    }


# --- the table -----------------------------------------------------------------------------


def _cell(text: str) -> str:
    # `<account>` would vanish as an HTML tag in rendered markdown.
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def render_table(specs: Iterable[Spec]) -> str:
    rows = ["| Setting | Default | Description |", "|---|---|---|"]
    for spec in specs:
        default = "—" if spec.default is None else f"`{_cell(spec.default)}`"
        description = ("**Secret.** " if spec.secret else "") + spec.description
        rows.append(f"| `{spec.name}` | {default} | {_cell(description)} |")
    return "\n".join(rows) + "\n"


def _normalise(block: str) -> str:
    return "\n".join(line.strip() for line in block.strip().splitlines() if line.strip())


# --- the check -----------------------------------------------------------------------------


def _platform(name: str) -> bool:
    return name in PLATFORM_SETTINGS or name.startswith(PLATFORM_PREFIXES)


def _list(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def check(root: Path) -> Report:
    root = Path(root)
    report = Report()
    specs = load_specs(root)
    by_name = {s.name: s for s in specs}
    read = set(by_name)

    # Connections: declared as C__fullyQualifiedNamespace in SETTINGS, or named in function_app.py.
    connections = {n.split("__", 1)[0] for n in read if n.endswith("__fullyQualifiedNamespace")}
    function_app = root / "function_app.py"
    if function_app.exists():
        bindings = read_bindings(function_app)
        for name, line in sorted(bindings.expressions.items()):
            if name not in by_name:
                report.problems.append(
                    f"function_app.py:{line} uses %{name}% but SETTINGS has no {name}: declare it in "
                    "shared/settings.py (binding=True)."
                )
            elif not by_name[name].binding:
                report.problems.append(
                    f"{name} is a binding expression in function_app.py:{line}: mark it binding=True in SETTINGS."
                )
        for connection, line in sorted(bindings.connections.items()):
            if connection not in read and f"{connection}__fullyQualifiedNamespace" not in read:
                report.problems.append(
                    f"function_app.py:{line} uses connection {connection!r}, but SETTINGS declares neither "
                    f"{connection} nor {connection}__fullyQualifiedNamespace."
                )
        connections |= set(bindings.connections)
        for spec in specs:
            used = spec.name in bindings.expressions or spec.name.split("__", 1)[0] in bindings.connections
            if spec.binding and not used:
                report.problems.append(
                    f"{spec.name} is marked binding=True but function_app.py does not use it (as %{spec.name}% "
                    "or a connection): stale?"
                )
    else:
        report.notes.append("function_app.py not found: binding expressions and connections were not checked.")

    def connection_name(name: str) -> bool:
        base, _, prop = name.partition("__")
        return base in connections and (prop == "" or prop in CONNECTION_PROPERTIES)

    def allowed(name: str) -> bool:
        return name in read or _platform(name) or connection_name(name)

    for name in sorted(_settings_module_names(root) - read - RUNTIME_MARKERS):
        report.problems.append(f"shared/settings.py mentions {name!r}, which is not declared in SETTINGS.")

    # Bicep app settings.
    infra = root / "infra"
    bicep, passed = read_bicep_app_settings(infra) if infra.is_dir() else ({}, {})
    if not bicep:
        report.problems.append("No `appSettings: [...]` with settings found in infra/**/*.bicep.")
    else:
        missing = read - set(bicep)
        if missing:
            report.problems.append(
                f"Bicep app settings miss settings the code reads: {_list(missing)} (add them in "
                "infra/app/function.bicep)."
            )
        stale = {n for n in bicep if not allowed(n)}
        if stale:
            report.problems.append(
                f"Bicep app settings set names nothing reads: {_list(stale)} (remove them or declare them in SETTINGS)."
            )
        for name in FLEX_REJECTED:
            if name in bicep:
                report.problems.append(
                    f"Bicep sets {name}, which Flex Consumption rejects: the runtime comes from functionAppConfig."
                )
        for connection in sorted(connections):
            if connection in bicep:
                report.problems.append(
                    f"Bicep sets {connection} (a connection string with a key): use "
                    f"{connection}__fullyQualifiedNamespace and the identity."
                )
        for spec in specs:
            if spec.secret and spec.name in bicep:
                expressions = _resolve(bicep[spec.name], passed)
                bad = [e for e in expressions if e != "''" and "@Microsoft.KeyVault(" not in e]
                if bad:
                    report.problems.append(
                        f"Bicep sets secret {spec.name} to {bad[0]}: use a Key Vault reference "
                        "(@Microsoft.KeyVault(SecretUri=...)) or ''."
                    )

    # The local sample.
    sample_path = root / "local.settings.sample.json"
    if not sample_path.exists():
        report.problems.append("local.settings.sample.json is missing.")
    else:
        sample = read_sample(sample_path)
        missing = {n for n in read if n not in sample}
        if missing:
            report.problems.append(f"local.settings.sample.json misses: {_list(missing)}.")
        stale = {n for n in sample if not allowed(n)}
        if stale:
            report.problems.append(f"local.settings.sample.json lists names nothing reads: {_list(stale)}.")
        for spec in specs:
            value = sample.get(spec.name, "")
            if spec.secret and value not in LOCAL_SAFE_SECRET_VALUES and AZURITE_ACCOUNT not in value:
                report.problems.append(
                    f"local.settings.sample.json holds a value for secret {spec.name}: leave it empty."
                )

    # The tables: docs/SETTINGS_TABLE.md and the docs/SETTINGS.md block must be the generated table.
    table = render_table(specs)
    table_file = root / TABLE_FILE
    if not table_file.exists() or _normalise(table_file.read_text(encoding="utf-8")) != _normalise(table):
        report.problems.append(f"{TABLE_FILE} is not the current table: run `python -m tools.settings_drift --write`.")
    readme = root / SETTINGS_DOC
    block = readme_block(readme.read_text(encoding="utf-8")) if readme.exists() else None
    if block is None:
        report.problems.append(
            f"{SETTINGS_DOC} has no settings table between {TABLE_START} and {TABLE_END}: "
            f"paste the output of `python -m tools.settings_drift --table` between those markers."
        )
    else:
        names = read_table_names(block)
        missing = read - set(names)
        stale = set(names) - read
        if missing:
            report.problems.append(f"{SETTINGS_DOC} settings table misses: {_list(missing)}.")
        if stale:
            report.problems.append(f"{SETTINGS_DOC} settings table lists names nothing reads: {_list(stale)}.")
        if not missing and not stale and _normalise(block) != _normalise(table):
            report.problems.append(
                f"{SETTINGS_DOC} settings table is out of date (defaults or descriptions): run `python -m "
                "tools.settings_drift --write`."
            )

    for where in env_readers(root):
        report.problems.append(f"{where} reads the environment directly: read settings through shared/settings.py.")
    return report


def _resolve(expression: str, passed: dict[str, list[str]]) -> list[str]:
    """A module parameter's value is whatever the callers pass; follow one level."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", expression) and expression in passed:
        return passed[expression]
    return [expression]


def write_tables(root: Path) -> list[Path]:
    table = render_table(load_specs(root))
    written = [root / TABLE_FILE]
    (root / TABLE_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / TABLE_FILE).write_text(table, encoding="utf-8")
    readme = root / SETTINGS_DOC
    if readme.exists():
        text = readme.read_text(encoding="utf-8")
        if readme_block(text) is not None:
            head, rest = text.split(TABLE_START, 1)
            tail = rest.split(TABLE_END, 1)[1]
            readme.write_text(f"{head}{TABLE_START}\n{table}{TABLE_END}{tail}", encoding="utf-8")
            written.append(readme)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.settings_drift", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--table", action="store_true", help="print the settings table and exit")
    parser.add_argument(
        "--write", action="store_true", help="rewrite docs/SETTINGS_TABLE.md and the docs/SETTINGS.md block"
    )
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(render_table(load_specs(args.root)))
        return 0
    if args.write:
        for path in write_tables(args.root):
            print(f"wrote {path}")
    report = check(args.root)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"drift: {problem}")
    if report.ok:
        print("settings in step: code, Bicep, local.settings.sample.json and docs/SETTINGS.md agree.")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

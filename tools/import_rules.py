"""The import rules of ``shared/`` and ``function_app.py`` (docs/ARCHITECTURE.md), checked
statically: every ``.py`` file is parsed with :mod:`ast`, nothing is imported.

Every import counts, wherever it is: at module level, inside a function, under
``if TYPE_CHECKING:`` or ``try:``, and ``importlib.import_module("...")`` or
``__import__("...")`` with a literal name. There is no exemption for type hints: the rules say
what a module may know, not only what it loads. Relative imports are resolved against the
importing module's package.

Rules (each violation names its rule):

- ``domain``: ``shared/domain/`` imports only the standard library, ``shared.domain`` and the
  pure libraries of :data:`DOMAIN_LIBRARIES` (computation, no I/O).
- ``adapters``: ``shared/adapters/`` imports no ``shared.services``, ``shared.entrypoints`` or
  ``shared.bootstrap``.
- ``composition``: only ``shared/bootstrap.py`` imports ``shared.adapters`` (adapters may import
  each other).
- ``services``: ``shared/services/`` imports no SDK (:data:`SDKS`) and no ``shared.adapters``.
- ``function_app``: ``function_app.py`` imports at module level only the standard library and
  :data:`FUNCTION_APP_IMPORTS`.
- ``cold start``: no module that ``import function_app`` loads (following the module-level
  imports of ``shared`` modules, package ``__init__`` files included) imports an SDK or the
  template engine (:data:`COLD_START_HEAVY`) at module level, ``azure.functions`` aside.

    python -m tools.import_rules          # print the violations; exit 1 if there is any
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Top-level names of the SDKs the service layer and the cold start must not import. Names that
# start with "kiota" (kiota_abstractions, kiota_http, ...) count too.
SDKS = frozenset(
    {"azure", "botbuilder", "botframework", "msgraph", "msgraph_core", "msal", "msrest", "requests", "httpx", "aiohttp"}
)
# What function_app.py may import at module level besides the standard library: the Functions
# binding and the light modules of shared.
FUNCTION_APP_IMPORTS = ("azure.functions", "shared.entrypoints", "shared.logsafety", "shared.settings")
# The one SDK every trigger needs anyway (the Functions worker has loaded it already).
COLD_START_ALLOWED = ("azure.functions",)
# Not SDKs, but only the console needs them: the template engine.
COLD_START_HEAVY = frozenset({"jinja2", "markupsafe"})

# Libraries the domain may use: they compute and do no I/O. RE2 is the domain's engine for
# label patterns (matching in linear time, whatever the pattern).
DOMAIN_LIBRARIES = ("re2",)

RULES = {
    "domain": "shared/domain/ imports only the standard library, shared.domain and " + ", ".join(DOMAIN_LIBRARIES),
    "adapters": "shared/adapters/ imports no shared.services, shared.entrypoints or shared.bootstrap",
    "composition": "only shared/bootstrap.py imports shared.adapters (adapters may import each other)",
    "services": f"shared/services/ imports no SDK ({', '.join(sorted(SDKS))}, kiota*) and no shared.adapters",
    "function_app": "function_app.py imports at module level only the standard library, "
    + ", ".join(FUNCTION_APP_IMPORTS),
    "cold start": (
        "nothing import function_app loads imports an SDK or the template engine at module level "
        "(azure.functions aside)"
    ),
}


@dataclass(frozen=True)
class Import:
    module: str  # the imported name, dotted (for `from a import b`: a.b, or a when b is not a module)
    line: int
    statement: str  # as written, for the message
    module_level: bool  # executed when the module is imported (not inside a function)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


def is_sdk(name: str) -> bool:
    top = name.split(".")[0]
    return top in SDKS or top.startswith("kiota")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_file(root: Path, name: str) -> Path | None:
    """The file of a module of the project (``shared...`` or ``function_app``), or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def _walk(tree: ast.AST, expressions: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every statement (every node with ``expressions``), and whether it is inside a function or
    lambda, so not run when the module is imported."""
    stack = [(tree, False)]
    while stack:
        node, in_function = stack.pop()
        yield node, in_function
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if expressions:
            children = list(ast.iter_child_nodes(node))
        else:
            children = [child for block in _BLOCKS for child in getattr(node, block, ())]
        stack.extend((child, inner) for child in reversed(children))


def _dynamic_name(call: ast.Call) -> str | None:
    """``importlib.import_module("x")`` / ``import_module("x")`` / ``__import__("x")``: "x"."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports(root: Path, path: Path) -> list[Import]:
    """Every import of one file, each imported name on its own."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    own = module_name(root, path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: list[Import] = []
    # Expressions are walked only for a file that may import by name (the costly part of a walk).
    dynamic = "import_module" in source or "__import__" in source
    for node, in_function in _walk(tree, expressions=dynamic):
        if isinstance(node, ast.Import):
            text = ast.unparse(node)
            found += [Import(alias.name, node.lineno, text, not in_function) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            text = ast.unparse(node)
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                name = origin if alias.name == "*" else f"{origin}.{alias.name}"
                project = within(origin, "shared") or origin == "function_app"
                if project and module_file(root, name) is None:
                    name = origin  # `from shared.x import something`: the module is shared.x
                found.append(Import(name, node.lineno, text, not in_function))
        elif isinstance(node, ast.Call) and (name := _dynamic_name(node)) is not None:
            found.append(Import(name, node.lineno, ast.unparse(node), not in_function))
    return found


def files(root: Path) -> list[Path]:
    found = sorted(p for p in (root / "shared").rglob("*.py") if "__pycache__" not in p.parts)
    app = root / "function_app.py"
    return [*found, app] if app.is_file() else found


def _broken(rel: str, imp: Import) -> list[str]:
    """The per-file rules this import breaks."""
    broken = []
    if rel.startswith("shared/domain/") and not (
        is_stdlib(imp.module)
        or within(imp.module, "shared.domain")
        or any(within(imp.module, library) for library in DOMAIN_LIBRARIES)
    ):
        broken.append("domain")
    if rel.startswith("shared/adapters/") and any(
        within(imp.module, p) for p in ("shared.services", "shared.entrypoints", "shared.bootstrap")
    ):
        broken.append("adapters")
    if (
        within(imp.module, "shared.adapters")
        and rel != "shared/bootstrap.py"
        and not rel.startswith("shared/adapters/")
    ):
        broken.append("composition")
    if rel.startswith("shared/services/") and (is_sdk(imp.module) or within(imp.module, "shared.adapters")):
        broken.append("services")
    if (
        rel == "function_app.py"
        and imp.module_level
        and not (is_stdlib(imp.module) or any(within(imp.module, p) for p in FUNCTION_APP_IMPORTS))
    ):
        broken.append("function_app")
    return broken


def _message(rel: str, imp: Import, rule: str, note: str = "") -> str:
    return f"{rel}:{imp.line}: [{rule}] {imp.statement}{note} -- {RULES[rule]}"


def _cold_start(root: Path, table: dict[Path, list[Import]]) -> list[str]:
    """SDK imports at module level in the modules `import function_app` loads."""
    app = root / "function_app.py"
    if app not in table:
        return []
    found: list[str] = []
    chain: dict[Path, str] = {app: "function_app"}
    todo = [app]
    while todo:
        path = todo.pop(0)
        for imp in table.get(path, []):
            if not imp.module_level:
                continue
            heavy = imp.module.split(".")[0] in COLD_START_HEAVY
            if (is_sdk(imp.module) or heavy) and not any(within(imp.module, p) for p in COLD_START_ALLOWED):
                rel = path.relative_to(root).as_posix()
                found.append(_message(rel, imp, "cold start", f" (loaded by {chain[path]})"))
                continue
            if not within(imp.module, "shared"):
                continue
            # Importing shared.a.b runs shared/__init__.py, shared/a/__init__.py, then shared/a/b.
            parts = imp.module.split(".")
            for depth in range(1, len(parts) + 1):
                name = ".".join(parts[:depth])
                target = module_file(root, name)
                if target is not None and target not in chain:
                    chain[target] = f"{chain[path]} -> {name}"
                    todo.append(target)
    return found


def violations(root: Path) -> list[str]:
    """Every broken rule under ``root`` (the project: ``root/shared`` and ``root/function_app.py``),
    one line each: ``path:line: [rule] the import -- the rule``."""
    table = {path: imports(root, path) for path in files(root)}
    found = []
    for path, found_imports in table.items():
        rel = path.relative_to(root).as_posix()
        for imp in found_imports:
            found += [_message(rel, imp, rule) for rule in _broken(rel, imp)]
    return found + _cold_start(root, table)


def main() -> int:
    found = violations(Path(__file__).resolve().parents[1])
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

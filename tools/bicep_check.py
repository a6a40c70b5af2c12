"""Checks Bicep files as far as a machine without the Bicep compiler can: the compiler's syntax,
read by a real grammar, then the semantic rules the reference check knows.

    python -m tools.bicep_check infra/main.bicep      (exit code 1 when it finds an error)

For ``main.bicep`` and every module it uses:

1. **Syntax**, by the Bicep grammar of tree-sitter-bicep (PyPI, pinned in
   requirements-dev.txt): every declaration, expression, decorator, user-defined type,
   function, import, loop and lambda as the language defines them. A parse error is reported
   with its line and what the parser could not read. The grammar (1.1.0) predates two
   additions to the language: the ``extension`` keyword, which it knows by its earlier name
   ``provider`` and only with a quoted name (so ``extension X`` is read as ``provider 'X'``, on
   the same line), and the spread operator ``...``, which it reports as a syntax error (a false
   alarm, never a miss: infra/ does not use it).
2. **Decorators**: a decorator used twice on one declaration (the compiler's BCP166), read from
   the parsed tree.
3. **References** (tools/bicep_refs.py): parameter defaults that use a variable (BCP072),
   undeclared names, unknown functions, module parameters and outputs, nested resources,
   Microsoft Graph resources and their extension.

What only the compiler checks: types (a string where an int is expected, beyond literals given
to a module), resource types and API versions, property names and values against each
resource's schema, scopes, and the other BCP diagnostics. ``az bicep build`` remains the
compiler.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

from tools import bicep_refs
from tools.bicep_refs import Problem

# `extension <alias>` or `extension '<reference>'` at the start of a statement: the grammar's
# `provider '<name>'` (Bicep renamed the keyword; the rest of the statement is the same).
_EXTENSION = re.compile(r"^(\s*)extension(\s+)(?:([A-Za-z_][A-Za-z0-9_]*)|('))", re.MULTILINE)


@cache
def _parser() -> Any:
    try:
        import tree_sitter_bicep
        from tree_sitter import Language, Parser
    except ImportError as exc:  # pragma: no cover - the dev requirements install both
        raise SystemExit(f"the Bicep grammar is not installed ({exc}): pip install -r requirements-dev.txt") from None
    return Parser(Language(tree_sitter_bicep.language()))


def _as_the_grammar_reads_it(text: str) -> str:
    def rewrite(m: re.Match[str]) -> str:
        indent, space, alias, quote = m.groups()
        return f"{indent}provider{space}" + (f"'{alias}'" if alias else quote)

    return _EXTENSION.sub(rewrite, text)


def parse_tree(text: str) -> Any:
    """The tree-sitter tree of a Bicep source."""
    return _parser().parse(_as_the_grammar_reads_it(text).encode("utf-8"))


def _snippet(source: bytes, node: Any) -> str:
    text = source[node.start_byte : node.end_byte].decode("utf-8", "replace").strip()
    first = text.splitlines()[0] if text else ""
    return first[:60] + ("…" if len(first) > 60 or "\n" in text else "")


def syntax_problems(path: Path, tree: Any, source: bytes) -> list[Problem]:
    problems: list[Problem] = []

    def walk(node: Any) -> None:
        if node.is_missing:
            problems.append(Problem(path, node.start_point[0] + 1, f"syntax error: '{node.type}' expected here"))
            return
        if node.is_error:
            problems.append(
                Problem(path, node.start_point[0] + 1, f"syntax error: cannot read {_snippet(source, node)!r}")
            )
            return
        if node.has_error:
            for child in node.children:
                walk(child)

    walk(tree.root_node)
    return problems


def _decorator_name(decorator: Any, source: bytes) -> str:
    call = next((c for c in decorator.named_children if c.type == "call_expression"), None)
    target = call.child_by_field_name("function") if call is not None else decorator.named_children[0]
    if target.type == "member_expression":  # @sys.description(...)
        target = target.child_by_field_name("property")
    return source[target.start_byte : target.end_byte].decode("utf-8")


def _declared_name(node: Any, source: bytes) -> str:
    if node is None:
        return "(end of file)"
    ident = next((c for c in node.named_children if c.type in ("identifier", "property_identifier")), None)
    kind = node.type.removesuffix("_declaration").replace("_", " ")
    name = source[ident.start_byte : ident.end_byte].decode("utf-8") if ident is not None else "?"
    return f"{kind} '{name}'"


def decorator_problems(path: Path, tree: Any, source: bytes) -> list[Problem]:
    """A decorator may appear once on a declaration (BCP166)."""
    problems: list[Problem] = []

    def walk(node: Any) -> None:
        for child in node.named_children:
            if child.type == "decorators":
                seen: dict[str, int] = {}
                for decorator in (d for d in child.named_children if d.type == "decorator"):
                    name = _decorator_name(decorator, source)
                    if name in seen:
                        problems.append(
                            Problem(
                                path,
                                decorator.start_point[0] + 1,
                                f"@{name} is given twice to {_declared_name(child.next_named_sibling, source)} "
                                f"(first on line {seen[name]}): a decorator may appear once (BCP166)",
                            )
                        )
                    else:
                        seen[name] = decorator.start_point[0] + 1
            walk(child)

    walk(tree.root_node)
    return problems


def _modules(path: Path) -> list[Path]:
    """``path`` and every local module it uses, each once."""
    found: list[Path] = []

    def visit(p: Path) -> None:
        p = p.resolve()
        if p in found or not p.exists():
            return
        found.append(p)
        for decl in bicep_refs.parse(p).of("module").values():
            if not decl.type.startswith(("br:", "br/", "ts:", "ts/")):
                visit(p.parent / decl.type)

    visit(path)
    return found


def check(path: Path) -> list[Problem]:
    """Syntax and decorator errors in ``path`` and its modules, then (when the syntax is
    sound) the reference check's."""
    problems: list[Problem] = []
    for file in _modules(path):
        source = file.read_bytes()
        tree = parse_tree(source.decode("utf-8"))
        problems += syntax_problems(file, tree, source)
        problems += decorator_problems(file, tree, source)
    if any(p.message.startswith("syntax error") for p in problems):
        return problems  # the reference check reads declarations; a broken one would mislead it
    return problems + bicep_refs.check(path)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m tools.bicep_check PATH/main.bicep", file=sys.stderr)
        return 2
    path = Path(args[0])
    if not path.exists():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    problems = check(path)
    for problem in problems:
        print(problem, file=sys.stderr)
    files = _modules(path)
    print(f"{len(files)} Bicep file(s) read: {len(problems)} error(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

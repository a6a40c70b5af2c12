"""A reference check of Bicep files: not a compiler, and it says so. It reads the declarations
of a file and its modules and reports the reference errors the Bicep compiler would refuse:

- a parameter default that uses anything but parameters and functions (Bicep's BCP072: a
  default may not use a variable, resource or module);
- an identifier that is declared nowhere (no parameter, variable, resource, module, loop or
  lambda variable, function or namespace of that name);
- a call of a function Bicep does not have;
- a module given a parameter the module does not declare, missing a parameter it requires, or a
  literal of another type than the parameter's;
- ``<module>.outputs.<name>`` naming an output the module does not have;
- ``<parent>::<child>`` naming a nested resource the parent does not have;
- a ``Microsoft.Graph/`` resource in a file without ``extension <alias>``, or an alias the
  nearest ``bicepconfig.json`` does not map to the Microsoft Graph extension.

It also lists every resource, nested ones included, with its full type: what a reader (or a
scanner such as checkov, whose parser keeps only the last of sibling nested resources) must
find.

    python -m tools.bicep_refs infra/main.bicep      (exit code 1 when it finds an error)

Types, scopes and API versions are not checked; `az bicep build` remains the compiler.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Bicep's functions (docs: "Bicep functions", every category) and decorators. The list* resource
# functions (listKeys, listSecrets, ...) are matched by prefix.
FUNCTIONS = frozenset(
    [
        "any",
        "array",
        "concat",
        "contains",
        "empty",
        "first",
        "flatten",
        "indexOf",
        "intersection",
        "items",
        "last",
        "lastIndexOf",
        "length",
        "max",
        "min",
        "range",
        "skip",
        "take",
        "union",
        "filter",
        "map",
        "reduce",
        "sort",
        "toObject",
        "mapValues",
        "groupBy",
        "objectKeys",
        "shallowMerge",
        "tryGet",
        "coalesce",
        "equals",
        "greater",
        "greaterOrEquals",
        "less",
        "lessOrEquals",
        "dateTimeAdd",
        "dateTimeFromEpoch",
        "dateTimeToEpoch",
        "utcNow",
        "deployer",
        "deployment",
        "environment",
        "loadFileAsBase64",
        "loadJsonContent",
        "loadYamlContent",
        "loadTextContent",
        "bool",
        "int",
        "json",
        "add",
        "div",
        "mod",
        "mul",
        "sub",
        "extensionResourceId",
        "getSecret",
        "managementGroupResourceId",
        "pickZones",
        "providers",
        "reference",
        "resourceId",
        "subscriptionResourceId",
        "tenantResourceId",
        "managementGroup",
        "resourceGroup",
        "subscription",
        "tenant",
        "base64",
        "base64ToJson",
        "base64ToString",
        "dataUri",
        "dataUriToString",
        "endsWith",
        "format",
        "guid",
        "join",
        "newGuid",
        "padLeft",
        "replace",
        "split",
        "startsWith",
        "string",
        "substring",
        "toLower",
        "toUpper",
        "trim",
        "uniqueString",
        "uri",
        "uriComponent",
        "uriComponentToString",
        "readEnvironmentVariable",
        "description",
        "minLength",
        "maxLength",
        "minValue",
        "maxValue",
        "allowed",
        "secure",
        "metadata",
        "batchSize",
        "export",
        "sealed",
        "discriminator",
        "onlyIfNotExists",
    ]
)
NAMESPACES = frozenset({"az", "sys"})
KEYWORDS = frozenset(
    {
        "true",
        "false",
        "null",
        "if",
        "for",
        "in",
        "existing",
        "resource",
        "module",
        "param",
        "var",
        "output",
        "targetScope",
        "import",
        "type",
        "func",
        "with",
        "as",
        "metadata",
        "extension",
    }
)
EXTENSION = re.compile(r"^extension\s+(?P<alias>[A-Za-z_]\w*)\s*$", re.M)
GRAPH_EXTENSION_REGISTRY = "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/"
TYPES = frozenset({"string", "int", "bool", "object", "array"})
DECLARATION = re.compile(
    r"^(?P<indent>[ \t]*)(?P<kind>param|var|resource|module|output)\s+(?P<name>[A-Za-z_]\w*)\b(?P<rest>.*)$", re.M
)


@dataclass
class Token:
    kind: str  # ident | string | number | punct
    text: str
    line: int


@dataclass
class Declaration:
    kind: str
    name: str
    line: int
    start: int  # token index of the expression (after "="), -1 when none
    end: int  # token index after the expression
    type: str = ""  # a param's or output's type; a resource's full type; a module's path
    has_default: bool = False
    parent: str | None = None  # a nested resource's parent symbol
    nullable: bool = False


@dataclass
class BicepFile:
    path: Path
    tokens: list[Token]
    declarations: list[Declaration] = field(default_factory=list)

    def of(self, kind: str) -> dict[str, Declaration]:
        return {d.name: d for d in self.declarations if d.kind == kind}


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


# ---------------------------------------------------------------------------- reading


def _strip_comments(text: str) -> str:
    """Comments become spaces (line numbers stay), strings are left alone."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("'''", i):
            end = text.find("'''", i + 3)
            end = n if end < 0 else end + 3
            out.append(text[i:end])
            i = end
        elif text[i] == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


_TOKEN = re.compile(
    r"(?P<ident>[A-Za-z_]\w*)|(?P<number>\d+)"
    r"|(?P<punct>::|=>|==|!=|<=|>=|&&|\|\||\?\?|\.\?|[{}()\[\],:.?!=<>+\-*/%@|&])"
    r"|(?P<nl>\n)|(?P<ws>[ \t\r]+)"
)


def tokenize(text: str, line: int = 1) -> list[Token]:
    """Tokens of Bicep source; a string's interpolations ``${...}`` become their own tokens
    (the string's literal parts are dropped: they hold no references)."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("'''", i):  # multi-line string: no interpolation
            end = text.find("'''", i + 3)
            end = n if end < 0 else end + 3
            tokens.append(Token("string", text[i:end], line))
            line += text.count("\n", i, end)
            i = end
            continue
        if text[i] == "'":
            j, parts = i + 1, []
            while j < n and text[j] != "'":
                if text[j] == "\\":
                    j += 2
                elif text.startswith("${", j):
                    depth, k = 1, j + 2
                    while k < n and depth:
                        depth += {"{": 1, "}": -1}.get(text[k], 0)
                        k += 1
                    parts.append(text[j + 2 : k - 1])
                    j = k
                else:
                    j += 1
            tokens.append(Token("string", text[i : j + 1], line))
            for part in parts:
                tokens.append(Token("punct", "(", line))
                tokens.extend(tokenize(part, line)[:-1] if part else [])
                tokens.append(Token("punct", ")", line))
            line += text.count("\n", i, j + 1)
            i = j + 1
            continue
        match = _TOKEN.match(text, i)
        if match is None:
            i += 1
            continue
        kind = match.lastgroup or ""
        if kind == "nl":
            tokens.append(Token("nl", "\n", line))
            line += 1
        elif kind != "ws":
            tokens.append(Token(kind, match.group(), line))
        i = match.end()
    tokens.append(Token("nl", "\n", line))
    return tokens


def _expression_end(tokens: list[Token], start: int) -> int:
    """Index after an expression starting at ``start``: the end of its line at bracket depth 0."""
    depth, i = 0, start
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "punct" and t.text in "{[(":
            depth += 1
        elif t.kind == "punct" and t.text in "}])":
            depth -= 1
            if depth < 0:
                return i
        elif t.kind == "nl" and depth == 0 and i > start:
            # A line ending in an operator continues on the next line.
            previous = next((tokens[k] for k in range(i - 1, start - 1, -1) if tokens[k].kind != "nl"), None)
            if previous is None or previous.text not in (
                "?",
                ":",
                "&&",
                "||",
                "??",
                "+",
                "-",
                "*",
                "/",
                "==",
                "!=",
                ",",
                "=>",
            ):
                return i
        i += 1
    return i


def parse(path: Path) -> BicepFile:
    text = _strip_comments(path.read_text(encoding="utf-8"))
    tokens = tokenize(text)
    bicep = BicepFile(path, tokens)
    i, parents = 0, []  # parents: (symbol, depth at which its body closes)
    depth = 0
    while i < len(tokens):
        t = tokens[i]
        at_line_start = i == 0 or tokens[i - 1].kind == "nl"
        if t.kind == "punct" and t.text in "{[(":
            depth += 1
        elif t.kind == "punct" and t.text in "}])":
            depth -= 1
            while parents and depth < parents[-1][1]:
                parents.pop()
        if (
            at_line_start
            and t.kind == "ident"
            and t.text in ("param", "var", "resource", "module", "output")
            and i + 1 < len(tokens)
            and tokens[i + 1].kind == "ident"
        ):
            if t.text != "resource" and depth > 0:
                i += 1
                continue
            name = tokens[i + 1].text
            j = i + 2
            type_text, nullable = "", False
            while j < len(tokens) and tokens[j].kind != "nl" and tokens[j].text != "=":
                if tokens[j].kind in ("ident", "string"):
                    type_text = type_text or tokens[j].text
                if tokens[j].text == "?":
                    nullable = True
                j += 1
            has_value = j < len(tokens) and tokens[j].text == "="
            start = j + 1 if has_value else -1
            end = _expression_end(tokens, start) if has_value else j
            kind = t.text
            full_type = type_text.strip("'")
            parent = parents[-1][0] if (kind == "resource" and parents) else None
            if parent is not None:
                parent_type = next(d.type for d in bicep.declarations if d.kind == "resource" and d.name == parent)
                full_type = (
                    f"{parent_type.split('@')[0]}/{full_type.split('@')[0]}"
                    if "/" not in full_type.split("@")[0]
                    else full_type
                )
            bicep.declarations.append(
                Declaration(kind, name, t.line, start, end, full_type, has_value, parent, nullable)
            )
            if kind == "resource" and has_value:
                # Its body may declare nested resources: they close with it.
                parents.append((name, depth + 1))
            i = start if has_value else j
            continue
        i += 1
    return bicep


# ---------------------------------------------------------------------------- references


def _references(tokens: list[Token], start: int, end: int) -> list[tuple[Token, str]]:
    """(token, role) of each identifier used in tokens[start:end]: role "call" for a function
    call, "name" for a plain reference; keys, property names and locals are left out."""
    found: list[tuple[Token, str]] = []
    locals_: set[str] = set()
    i = start
    while i < end:
        t = tokens[i]
        if t.kind != "ident":
            i += 1
            continue
        before = (
            next((tokens[k] for k in range(i - 1, start - 1, -1) if tokens[k].kind != "nl"), None)
            if i > start
            else None
        )
        before_raw = tokens[i - 1] if i > 0 else None
        after = next((tokens[k] for k in range(i + 1, end) if tokens[k].kind != "nl"), None)
        if t.text == "for":  # for NAME in / for (NAME, INDEX) in
            k = i + 1
            while k < end and tokens[k].text != "in":
                if tokens[k].kind == "ident":
                    locals_.add(tokens[k].text)
                k += 1
            i = k + 1
            continue
        if after is not None and after.text == "=>":  # x => ...
            locals_.add(t.text)
            i += 1
            continue
        if before is not None and before.text in (".", "::", ".?"):
            i += 1
            continue
        if (
            after is not None
            and after.text == ":"
            and (before is None or before.text in ("{", ",") or (before_raw is not None and before_raw.kind == "nl"))
        ):
            i += 1  # an object key
            continue
        if t.text in KEYWORDS or t.text in locals_:
            i += 1
            continue
        found.append((t, "call" if after is not None and after.text == "(" else "name"))
        i += 1
    # Lambda parameters in parentheses: (a, b) => ...
    for k in range(start, end):
        if tokens[k].text == "=>":
            j = k - 1
            if tokens[j].text == ")":
                while j > start and tokens[j].text != "(":
                    if tokens[j].kind == "ident":
                        locals_.add(tokens[j].text)
                    j -= 1
    return [(t, role) for t, role in found if t.text not in locals_]


def _literal_type(tokens: list[Token], start: int, end: int) -> str | None:
    """The type of a one-token literal expression (or an array / object literal)."""
    body = [t for t in tokens[start:end] if t.kind != "nl"]
    if not body:
        return None
    first = body[0]
    if len(body) == 1:
        if first.kind == "string":
            return "string"
        if first.kind == "number":
            return "int"
        if first.text in ("true", "false"):
            return "bool"
    if first.text == "[" and body[-1].text == "]":
        return "array"
    if first.text == "{" and body[-1].text == "}":
        return "object"
    return None


def _module_params(tokens: list[Token], decl: Declaration) -> dict[str, tuple[int, int, int]]:
    """The ``params: { ... }`` of a module body: name -> (line, value start, value end)."""
    i = decl.start
    while i < decl.end and not (tokens[i].text == "params" and tokens[i + 1].text == ":" and tokens[i + 2].text == "{"):
        i += 1
    if i >= decl.end:
        return {}
    given: dict[str, tuple[int, int, int]] = {}
    i += 3
    depth = 0
    while i < decl.end:
        t = tokens[i]
        if t.text in "{[(" and t.kind == "punct":
            depth += 1
        elif t.text in "}])" and t.kind == "punct":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and t.kind == "ident" and tokens[i + 1].text == ":":
            value_start = i + 2
            value_end = _expression_end(tokens, value_start)
            given[t.text] = (t.line, value_start, value_end)
            i = value_end
            continue
        i += 1
    return given


def _configured_extensions(path: Path) -> dict[str, str]:
    """alias -> registry reference, from the bicepconfig.json nearest to ``path`` (Bicep reads the
    first one found walking up from the file's folder)."""
    import json

    for folder in path.parents:
        config = folder / "bicepconfig.json"
        if config.exists():
            text = "\n".join(
                line for line in config.read_text(encoding="utf-8").splitlines() if not line.strip().startswith("//")
            )
            return dict(json.loads(text).get("extensions", {}))
    return {}


def _extension_problems(path: Path, bicep: BicepFile) -> list[Problem]:
    declared = EXTENSION.findall(_strip_comments(path.read_text(encoding="utf-8")))
    configured = _configured_extensions(path)
    problems = [
        Problem(path, 1, f"extension '{alias}' is not in the extensions of the nearest bicepconfig.json")
        for alias in declared
        if alias not in configured
    ]
    graph = [
        d
        for d in bicep.declarations
        if d.kind == "resource" and d.type.startswith("Microsoft.Graph/") and d.parent is None
    ]
    if graph and not any(configured.get(alias, "").startswith(GRAPH_EXTENSION_REGISTRY) for alias in declared):
        problems.append(
            Problem(
                path,
                graph[0].line,
                f"resource '{graph[0].name}' is a Microsoft Graph type, and the file has no extension "
                "that bicepconfig.json maps to the Microsoft Graph extension",
            )
        )
    return problems


def check(path: Path, _seen: set[Path] | None = None) -> list[Problem]:
    """Every reference error in ``path`` and the modules it uses."""
    seen = _seen if _seen is not None else set()
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    bicep = parse(path)
    problems: list[Problem] = _extension_problems(path, bicep)
    params, variables, resources, modules = bicep.of("param"), bicep.of("var"), bicep.of("resource"), bicep.of("module")
    declared = set(params) | set(variables) | set(resources) | set(modules)
    tokens = bicep.tokens

    for decl in bicep.declarations:
        if decl.start < 0:
            continue
        for token, role in _references(tokens, decl.start, decl.end):
            name = token.text
            if role == "call":
                if name not in FUNCTIONS and not name.startswith("list") and name not in NAMESPACES:
                    problems.append(Problem(path, token.line, f"{name}() is not a Bicep function"))
                continue
            if name in NAMESPACES or (name in TYPES and decl.kind in ("param", "output")):
                continue
            if name not in declared:
                problems.append(
                    Problem(
                        path,
                        token.line,
                        f"'{name}' is not declared (no parameter, variable, resource or module of that name)",
                    )
                )
            elif decl.kind == "param" and name not in params:
                what = "variable" if name in variables else "resource" if name in resources else "module"
                problems.append(
                    Problem(
                        path,
                        token.line,
                        f"the default of parameter '{decl.name}' uses the {what} '{name}': "
                        "a parameter default may use only parameters and functions (BCP072)",
                    )
                )
        # <module>.outputs.<name> and <parent>::<child>
        for k in range(decl.start, decl.end - 2):
            a, b, c = tokens[k], tokens[k + 1], tokens[k + 2]
            if (
                a.kind == "ident"
                and a.text in modules
                and b.text == "."
                and c.text == "outputs"
                and k + 4 < decl.end
                and tokens[k + 3].text == "."
            ):
                module_path = (path.parent / modules[a.text].type).resolve()
                if module_path.exists():
                    outputs = parse(module_path).of("output")
                    wanted = tokens[k + 4].text
                    if wanted not in outputs:
                        problems.append(
                            Problem(
                                path, a.line, f"module '{a.text}' ({modules[a.text].type}) has no output '{wanted}'"
                            )
                        )
            if a.kind == "ident" and a.text in resources and b.text == "::" and c.kind == "ident":
                children = {d.name for d in bicep.declarations if d.kind == "resource" and d.parent == a.text}
                if c.text not in children:
                    problems.append(Problem(path, a.line, f"resource '{a.text}' has no nested resource '{c.text}'"))

    for name, decl in modules.items():
        module_path = (path.parent / decl.type).resolve()
        if not module_path.exists():
            problems.append(Problem(path, decl.line, f"module '{name}': {decl.type} does not exist"))
            continue
        module = parse(module_path)
        wanted = module.of("param")
        given = _module_params(tokens, decl)
        for key, (line, value_start, value_end) in given.items():
            if key not in wanted:
                problems.append(Problem(path, line, f"module '{name}' ({decl.type}) has no parameter '{key}'"))
                continue
            literal = _literal_type(tokens, value_start, value_end)
            if literal and wanted[key].type in TYPES and literal != wanted[key].type:
                problems.append(
                    Problem(path, line, f"module '{name}': parameter '{key}' is {wanted[key].type}, given a {literal}")
                )
        for key, param in wanted.items():
            if not param.has_default and not param.nullable and key not in given:
                problems.append(
                    Problem(
                        path, decl.line, f"module '{name}' ({decl.type}) needs parameter '{key}', which is not given"
                    )
                )
        problems.extend(check(module_path, seen))
    return problems


def resources(path: Path) -> list[tuple[str, str, str]]:
    """(file, symbol, full type) of every resource in ``path`` and its modules, nested ones included."""
    found, pending, seen = [], [path.resolve()], set()
    while pending:
        current = pending.pop()
        if current in seen or not current.exists():
            continue
        seen.add(current)
        bicep = parse(current)
        found += [(current.name, d.name, d.type.split("@")[0]) for d in bicep.declarations if d.kind == "resource"]
        pending += [(current.parent / d.type).resolve() for d in bicep.declarations if d.kind == "module"]
    return found


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])] or [Path("infra/main.bicep")]
    problems = [p for path in paths for p in check(path)]
    for problem in problems:
        print(problem)
    print(
        f"{len(problems)} reference error(s) in {', '.join(map(str, paths))} and their modules "
        f"({sum(len(resources(p)) for p in paths)} resources read). Not a compiler: see the module's docstring."
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

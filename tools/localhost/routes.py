"""HTTP route templates of the Functions host (ASP.NET syntax) as regular expressions."""

from __future__ import annotations

import re

# ASP.NET route constraints the Functions host accepts in `route=`; others match one segment.
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "float": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
}
_PARAMETER = re.compile(
    r"\{(?P<catch_all>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?::(?P<constraint>[^}?=]+))?(?P<optional>\?)?(?:=(?P<default>[^}]*))?\}"
)


class RouteTemplate:
    """One function's route, e.g. ``items/{id:int}`` or ``files/{*path}``."""

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self.parameters: list[str] = []
        self._defaults: dict[str, str] = {}
        self._pattern = re.compile(self._compile(), re.IGNORECASE)

    def _compile(self) -> str:
        if not self.template:
            return r"\A/?\Z"
        pattern = r"\A"
        for segment in self.template.split("/"):
            whole = _PARAMETER.fullmatch(segment)
            if whole and (whole["optional"] or whole["default"] is not None or whole["catch_all"]):
                # An optional or catch-all parameter may be missing together with its slash.
                pattern += rf"(?:/{self._group(whole, catch_all=bool(whole['catch_all']))})?"
                continue
            pattern += "/"
            position = 0
            for match in _PARAMETER.finditer(segment):
                pattern += re.escape(segment[position : match.start()]) + self._group(match)
                position = match.end()
            pattern += re.escape(segment[position:])
        return pattern + r"/?\Z"

    def _group(self, match: re.Match[str], catch_all: bool = False) -> str:
        name = match["name"]
        self.parameters.append(name)
        if match["default"] is not None:
            self._defaults[name] = match["default"]
        constraint = (match["constraint"] or "").split(":")[0].split("(")[0].lower()
        body = ".*" if catch_all else _CONSTRAINTS.get(constraint, r"[^/]+")
        return f"(?P<{name}>{body})"

    def match(self, path: str) -> dict[str, str] | None:
        """Return the route parameters if ``path`` (below the route prefix) matches."""
        found = self._pattern.match("/" + path.strip("/") if path.strip("/") else "")
        if found is None:
            return None
        values = {name: value for name, value in found.groupdict().items() if value is not None}
        return {**self._defaults, **values}

"""How deeply a JSON text nests, checked before it is decoded: Python's decoder recurses once
per level, so ``"[" * 100000`` would raise RecursionError (a 500, or a queue message retried
until dead-lettered) instead of a rejection that names the problem. Pure Python."""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64  # arrays and objects inside one another; real payloads nest a few levels

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> str | None:
    """The problem when ``text`` nests arrays and objects more than ``limit`` deep, else None.
    Brackets inside strings do not count. Linear in the text's length."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return f"the JSON nests arrays and objects more than {limit} levels deep"
        else:
            depth -= 1
    return None

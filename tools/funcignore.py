"""The files `func azure functionapp publish` would upload: the project tree minus .funcignore.

Core Tools does NOT read ``.funcignore`` with git's semantics. Its parser
(``src/Azure.Functions.Cli/Common/GitIgnoreParser.cs``, a port of the npm package
codemix/gitignore-parser) turns each line into a regular expression anchored at the START of
the file's path relative to the project, with no end anchor and no basename matching:

- ``*`` is ``[^/]+`` (one or more characters, not a slash), ``**`` is ``.+``;
- ``?``, ``[`` and ``]`` are literal characters, not wildcards;
- a leading ``/`` is dropped; a trailing ``/`` stays a literal slash;
- ``!pattern`` lines form a second expression, and a path it matches is kept whatever else
  matches; every file path is tested whole (``Denies(relative/path)``), so a pattern is a
  prefix of the path.

So ``*.pem`` excludes ``bot.pem`` but ships ``certs/bot.pem``, and ``__pycache__/`` only the
top-level one. :class:`CoreToolsIgnore` reproduces that reading, and the publish tree is computed
with it: what this module lists is what Core Tools uploads. The gitignore reading
(:func:`parse`, :func:`is_ignored`) stays to check that .funcignore means the same to both, so
no one is misled reading it as a gitignore file.

    python -m tools.funcignore            # print the files a publish would upload
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    negated: bool
    directory_only: bool
    source: str


def _translate(glob: str) -> str:
    """Regex for one gitignore glob (without the anchoring prefix)."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = glob[i + 1 : end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        elif c == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse(text: str) -> list[Pattern]:
    patterns: list[Pattern] = []
    for raw in text.splitlines():
        line = raw.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        # Trailing spaces are ignored unless escaped with a backslash.
        line = re.sub(r"(?<!\\)\s+$", "", line)
        negated = line.startswith("!")
        if negated or line.startswith(("\\!", "\\#")):
            line = line[1:]
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        # A slash at the start or in the middle anchors the pattern at the root.
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        regex = re.compile(("" if anchored else "(?:.*/)?") + body + r"\Z")
        patterns.append(Pattern(regex, negated, directory_only, raw))
    return patterns


def _ignored_here(patterns: list[Pattern], path: str, is_dir: bool) -> bool:
    ignored = False
    for pattern in patterns:
        if pattern.directory_only and not is_dir:
            continue
        if pattern.regex.match(path):
            ignored = not pattern.negated
    return ignored


def is_ignored(patterns: list[Pattern], path: str, is_dir: bool = False) -> bool:
    """Whether ``path`` (relative, with ``/``) is excluded, itself or through a parent directory."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts)):
        if _ignored_here(patterns, "/".join(parts[:depth]), True):
            return True
    return _ignored_here(patterns, "/".join(parts), is_dir)


class CoreToolsIgnore:
    """.funcignore as Core Tools reads it (see the module docstring)."""

    _SPECIAL = re.compile(r"[\-\[\]/{}()+?.\\^$|]")

    def __init__(self, text: str) -> None:
        positive: list[str] = []
        negative: list[str] = []
        for raw in text.split("\n"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            if line.startswith("/"):
                line = line[1:]
            (negative if negated else positive).append(line)
        self._positive = self._compile(sorted(positive))
        self._negative = self._compile(sorted(negative))

    @classmethod
    def _pattern(cls, line: str) -> str:
        escaped = cls._SPECIAL.sub(lambda m: "\\" + m.group(), line)
        return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")

    @classmethod
    def _compile(cls, lines: list[str]) -> re.Pattern[str]:
        if not lines:
            return re.compile(r"$^")
        return re.compile("^((" + ")|(".join(cls._pattern(line) for line in lines) + "))")

    def denies(self, path: str) -> bool:
        """Whether Core Tools leaves ``path`` (relative, with ``/``) out of the package."""
        return not (bool(self._negative.match(path)) or not self._positive.match(path))


def load_core_tools(root: Path) -> CoreToolsIgnore:
    funcignore = root / ".funcignore"
    return CoreToolsIgnore(funcignore.read_text(encoding="utf-8") if funcignore.exists() else "")


def load(root: Path) -> list[Pattern]:
    funcignore = root / ".funcignore"
    return parse(funcignore.read_text(encoding="utf-8")) if funcignore.exists() else []


def publish_tree_from_disk(root: Path) -> list[str]:
    """What Core Tools uploads: every file under ``root`` its reading of .funcignore keeps."""
    ignore = load_core_tools(root)
    kept: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        kept += [prefix + name for name in filenames if not ignore.denies(prefix + name)]
    return sorted(kept)


def gitignore_tree_from_disk(root: Path) -> list[str]:
    """The same tree read with git's semantics (to check .funcignore means the same to both)."""
    patterns = load(root)
    kept: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        # An excluded directory is never entered: nothing below it can be re-included.
        dirnames[:] = sorted(d for d in dirnames if not is_ignored(patterns, prefix + d, is_dir=True))
        kept += [prefix + name for name in sorted(filenames) if not is_ignored(patterns, prefix + name)]
    return sorted(kept)


def publish_tree_from_git(root: Path) -> list[str]:
    """The files git knows about (tracked, plus untracked ones not git-ignored) that Core Tools would upload."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    ignore = load_core_tools(root)
    files = {p for p in listed.split("\0") if p and (root / p).is_file()}
    return sorted(p for p in files if not ignore.denies(p))


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0] if argv else ".").resolve()
    for path in publish_tree_from_disk(root):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

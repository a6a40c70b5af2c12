"""Compile the app's own code (function_app.py and shared/) to the bytecode the deployed package
carries: ``python -m tools.bytecode`` before ``func azure functionapp publish``; ``azd deploy``
runs it as its prepackage hook.

Why: the remote build (Oryx, ``src/BuildScriptGenerator/Python/PythonBashBuildSnippet.sh.tpl``)
only installs requirements.txt, so the dependencies arrive compiled and the app's own modules do
not; on Flex Consumption the package is mounted read-only, so Python cannot write the bytecode it
compiles either, and every cold start would compile the app's code again.

The files are checked-hash .pyc files (PEP 552): they stay valid whatever times the files get
when the package is unzipped, and Python checks them against the source's hash, so a source
changed since is compiled afresh (a developer never runs stale bytecode). They must be made by
the runtime's Python, 3.11 (the file name says which: ``*.cpython-311.pyc``).
"""

from __future__ import annotations

import compileall
import py_compile
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = (3, 11)


def compile_app(root: Path = ROOT) -> list[Path]:
    """Write checked-hash bytecode for every module of the app; the sources compiled."""
    if sys.version_info[:2] != RUNTIME:
        raise SystemExit(
            f"the package's bytecode must be made by Python {RUNTIME[0]}.{RUNTIME[1]} (the app's runtime), "
            f"not {sys.version_info[0]}.{sys.version_info[1]}: run this with python3.11"
        )
    sources = [root / "function_app.py", *sorted((root / "shared").rglob("*.py"))]
    mode = py_compile.PycInvalidationMode.CHECKED_HASH
    for source in sources:
        if not compileall.compile_file(source, quiet=1, invalidation_mode=mode):
            raise SystemExit(f"{source.relative_to(root)} does not compile")
    return sources


def main() -> int:
    compiled = compile_app()
    print(f"Compiled {len(compiled)} modules of the app to checked-hash bytecode (Python 3.11) for the package.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

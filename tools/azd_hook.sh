#!/bin/sh
# azd runs this for each hook of azure.yaml (posix): it finds Python 3.11 or later and runs
# tools/azd_hooks.py with it. The hooks need nothing else installed beforehand: what they import
# beyond the standard library they install themselves (tools/requirements-azd.txt, into
# .tools/azd-hooks), and the app package step runs `npm ci` when the npm tools are missing.
#   sh tools/azd_hook.sh prepackage|preprovision|postprovision|postdeploy|postdown
# PYTHON=/path/to/python3.11 chooses the interpreter.
set -eu
case "$0" in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3.14 python3 python; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
        exec "$candidate" -m tools.azd_hooks "$@"
    fi
done
echo "error: the azd hooks need Python 3.11 or later, and found none (tried \$PYTHON, python3.11 to python3.14, python3, python): install Python 3.11, or set PYTHON=/path/to/python3.11" >&2
exit 1

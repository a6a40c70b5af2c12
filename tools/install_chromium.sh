#!/usr/bin/env sh
# Installs Debian's Chromium for the card gallery (make gallery, and the gallery test in make
# test). The gallery draws cards in the fonts the npm packages ship (tools/gallery/render.mjs),
# not the machine's; DejaVu is only the browser's own fallback. Idempotent: does nothing when
# Chromium is already there.
# CHROMIUM=/path/to/chromium uses another build instead.
set -eu

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    echo "Chromium present: $CHROMIUM"
    exit 0
fi
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "The card gallery needs Chromium: install the Debian package 'chromium' (as root), or set CHROMIUM to a Chromium binary" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "Chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"

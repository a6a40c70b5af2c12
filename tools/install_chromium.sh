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
sh "$(dirname "$0")/apt_install.sh" "The card gallery (or set CHROMIUM to a Chromium binary)" chromium fonts-dejavu-core
echo "Chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"

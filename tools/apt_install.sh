#!/usr/bin/env sh
# Installs Debian packages for the project's tools: tools/apt_install.sh "WHAT NEEDS THEM" PACKAGE...
# As root, or through sudo. The packages' services are not started (a policy-rc.d refuses them
# while installing): the tests and make run start what they need themselves.
set -eu

WHY="$1"
shift
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "$WHY needs the Debian packages $*: install them as root" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
POLICY=/usr/sbin/policy-rc.d
PLACED=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    PLACED=1
fi
cleanup() { [ -z "$PLACED" ] || $SUDO rm -f "$POLICY"; }
trap cleanup EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null

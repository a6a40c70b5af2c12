#!/usr/bin/env sh
# Installs Debian's Prometheus and Alertmanager for the real alerting loop (its test in make
# test, and make run WITH_ALERTMANAGER=1): the binaries only. The packages' services are not
# started (a policy-rc.d refuses them while installing); the test and make run start their own
# pair on loopback with their own configuration. Idempotent: does nothing when both are there.
set -eu

PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
ALERTMANAGER="${ALERTMANAGER:-/usr/bin/prometheus-alertmanager}"
if [ -x "$PROMETHEUS" ] && [ -x "$ALERTMANAGER" ]; then
    echo "Prometheus and Alertmanager present: $PROMETHEUS, $ALERTMANAGER"
    exit 0
fi
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "The alerting loop needs Debian's 'prometheus' and 'prometheus-alertmanager' packages (install them as root), or set PROMETHEUS and ALERTMANAGER to their binaries" >&2
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
$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
echo "Installed: $("$PROMETHEUS" --version 2>&1 | head -1); $("$ALERTMANAGER" --version 2>&1 | head -1)"

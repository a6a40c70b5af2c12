#!/usr/bin/env sh
# Installs Debian's Prometheus and Alertmanager for the real alerting loop (its test in make
# test, and make run WITH_ALERTMANAGER=1): the binaries only; the test and make run start their
# own pair on loopback with their own configuration. Idempotent: does nothing when both are
# there. PROMETHEUS and ALERTMANAGER name other binaries.
set -eu

PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
ALERTMANAGER="${ALERTMANAGER:-/usr/bin/prometheus-alertmanager}"
if [ -x "$PROMETHEUS" ] && [ -x "$ALERTMANAGER" ]; then
    echo "Prometheus and Alertmanager present: $PROMETHEUS, $ALERTMANAGER"
    exit 0
fi
sh "$(dirname "$0")/apt_install.sh" "The alerting loop" prometheus prometheus-alertmanager
echo "Installed: $("$PROMETHEUS" --version 2>&1 | head -1); $("$ALERTMANAGER" --version 2>&1 | head -1)"

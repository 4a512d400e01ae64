#!/bin/sh
# Install the servers the integration tests start (redis-server, PostgreSQL),
# chromium (headless, for screenshots of the eval report) and promtool
# (Debian's prometheus package), which checks deploy/prometheus, when they
# are missing. Idempotent: does nothing on a machine that has them.
# The prometheus package's own server is not started (there is no init system
# in a container; on a host, the script stops and disables it).
set -eu

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need="$need postgresql"
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
# Headless Chromium renders the eval HTML report in tests/integration/test_evals.py and
# runs the dashboard's browser tests in tests/e2e (Playwright drives /usr/bin/chromium).
command -v chromium >/dev/null 2>&1 || need="$need chromium"
[ -z "$need" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-test-services: missing:$need; install them (apt-get install$need)" >&2
    exit 1
fi
echo "ensure-test-services: installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null
case "$need" in
*prometheus*)
    # Only promtool is wanted: not a Prometheus server running on this machine.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
    ;;
esac

#!/bin/sh
# Install the servers the integration tests start (redis-server, PostgreSQL),
# when they are missing. Idempotent: does nothing on a machine that has them.
set -eu

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need="$need postgresql"
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

#!/bin/sh
# Write the secret files deploy/docker-compose.yml reads, with random values,
# into deploy/secrets/ (git ignores it). Never overwrites a file that exists:
# delete one to make it anew (and the PostgreSQL volume with the password).
#
#   master_key              the gateway's admin credential (GATEHOUSE_MASTER_KEY)
#   postgres_password       PostgreSQL's password for the gatehouse user
#   database_url            postgresql://gatehouse:<that password>@postgres:5432/gatehouse
#   grafana_admin_password  Grafana's admin password
#
# The folder is readable by you alone; the files in it are world-readable so
# that the containers' non-root users (gatehouse runs as uid 10001) can read
# the copies Compose mounts at /run/secrets.
set -eu

DIR=${1:-$(cd "$(dirname "$0")" && pwd)/secrets}
mkdir -p "$DIR"
chmod 700 "$DIR"

random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

write() {
    [ -e "$DIR/$1" ] && return 0
    printf '%s' "$2" >"$DIR/$1"
    chmod 644 "$DIR/$1"
    echo "wrote $DIR/$1"
}

write master_key "sk-gh-$(random)"
write postgres_password "$(random)"
write database_url "postgresql://gatehouse:$(cat "$DIR/postgres_password")@postgres:5432/gatehouse"
write grafana_admin_password "$(random)"

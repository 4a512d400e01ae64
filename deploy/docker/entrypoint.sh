#!/bin/sh
# The image's entrypoint: `gatehouse "$@"` (`serve` by default), with secrets
# read from files.
#
# Every file in the secrets folder (/run/secrets, where Docker and Compose
# mount `secrets:`; GATEHOUSE_ENTRYPOINT_SECRETS_DIR to change it) whose name
# is a gatehouse environment variable, GATEHOUSE_<SETTING> (for example
# GATEHOUSE_MASTER_KEY or GATEHOUSE_STORE__DATABASE_URL), becomes that
# variable, its value the file's content without the final newline. So a secret
# is never in the image, the compose file or `docker inspect`. A variable that
# is also set in the environment is refused, rather than one silently winning.
# Files with other names (a PostgreSQL password meant for another container)
# are left alone.
set -eu

dir=${GATEHOUSE_ENTRYPOINT_SECRETS_DIR:-/run/secrets}
# gatehouse reads every GATEHOUSE_* variable as a setting: this one is not.
unset GATEHOUSE_ENTRYPOINT_SECRETS_DIR

if [ -d "$dir" ]; then
    for file in "$dir"/GATEHOUSE_*; do
        [ -f "$file" ] || continue
        name=${file##*/}
        case "$name" in
        *[!A-Za-z0-9_]*)
            echo "gatehouse-entrypoint: $file: not a variable name, ignored" >&2
            continue
            ;;
        esac
        if printenv "$name" >/dev/null; then
            echo "gatehouse-entrypoint: $name is set both in the environment and in $file;" \
                "keep one" >&2
            exit 64
        fi
        value=$(cat "$file")
        export "$name=$value"
    done
fi

exec gatehouse "$@"

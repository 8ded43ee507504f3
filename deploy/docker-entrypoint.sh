#!/bin/sh
# Entrypoint of the llmlens image: reads secrets from files, then runs the command.
# For each setting below, NAME_FILE=/path (a Docker or Compose secret, a mounted Kubernetes Secret)
# sets NAME to the file's content, without its trailing newlines; NAME_FILE is then unset. Setting
# both NAME and NAME_FILE is an error. Other *_FILE settings (LLMLENS_RULES_FILE, LLMLENS_PRICES_FILE)
# are llmlens's own and are left alone.
set -eu

for name in LLMLENS_API_KEY LLMLENS_CLICKHOUSE_URL LLMLENS_ALERTS_SLACK_WEBHOOKS LLMLENS_ALERTS_WEBHOOK_SECRET; do
    eval "file=\${${name}_FILE:-}"
    [ -n "$file" ] || continue
    eval "both=\${${name}:+set}"
    if [ -n "$both" ]; then
        echo "llmlens-entrypoint: both $name and ${name}_FILE are set; keep one" >&2
        exit 2
    fi
    if [ ! -r "$file" ]; then
        echo "llmlens-entrypoint: ${name}_FILE=$file is not a readable file" >&2
        exit 2
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done

exec "$@"

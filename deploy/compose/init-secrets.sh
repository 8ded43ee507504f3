#!/bin/sh
# Writes what the compose stack needs and the repository must not hold: .env (from .env.example,
# each `change-me` replaced by a random value) and the files under secrets/ that Prometheus,
# Alertmanager and llmlens read. Existing files are kept: run it again after adding a setting.
# Usage: ./init-secrets.sh [DIR]   (DIR: the compose folder, default: this script's folder)
set -eu
dir=${1:-$(dirname "$0")}
cd "$dir"

random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

if [ ! -e .env ]; then
    while IFS= read -r line; do
        case $line in
            *=change-me) printf '%s=%s\n' "${line%=change-me}" "$(random)" ;;
            *) printf '%s\n' "$line" ;;
        esac
    done < .env.example > .env
    chmod 600 .env
    echo "wrote .env"
fi

mkdir -p secrets
chmod 700 secrets
# Each secret: its file name and, for the ones that are addresses, a valid example to replace.
write() {
    if [ ! -e "secrets/$1" ]; then
        printf '%s' "$2" > "secrets/$1"
        # Read by the containers' own users (Prometheus runs as nobody), through the bind mount.
        chmod 644 "secrets/$1"
        echo "wrote secrets/$1${3:+ ($3)}"
    fi
}
write llmlens_api_key "$(random)"
write webhook_token "$(random)"
write slack_webhook_url "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX" \
    "an example: put your Slack incoming-webhook URL there"
write smtp_password "change-me" "an example: put your SMTP password there"

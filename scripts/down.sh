#!/usr/bin/env bash
# `make down`: stop and remove the stack's containers; its volumes (database, uploads) stay.
# `make clean-data` (--volumes): also remove the volumes and whatever the hub started for this
# instance (space containers, the spaces network, space images). Hub images stay as build cache.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENV_FILE=$(realpath -m "${DEMOHUB_ENV_FILE:-$ROOT/.env}")
cd "$ROOT"

# A setting from the environment, else from the env file, else the default (as up.sh reads them).
setting() {
  local v
  if [ -n "${!1+set}" ]; then echo "${!1}"; return; fi
  v=$(grep -s "^$1=" "$ENV_FILE" | tail -1 | cut -d= -f2- | sed -E "s/^([\"'])(.*)\1\$/\2/")
  echo "${v:-$2}"
}
project=$(setting COMPOSE_PROJECT_NAME demohub)
instance=$(setting DEMOHUB_INSTANCE main)
# Compose refuses to read the file at all without them; `down` does not use them.
export DJANGO_SECRET_KEY=${DJANGO_SECRET_KEY:-unused} PROXY_SHARED_SECRET=${PROXY_SHARED_SECRET:-unused}
export SECRETS_ENCRYPTION_KEY=${SECRETS_ENCRYPTION_KEY:-unused}
env_file=()
if [ -f "$ENV_FILE" ]; then env_file=(--env-file "$ENV_FILE"); fi

if [ "${1:-}" = "--volumes" ]; then
  docker-compose -p "$project" "${env_file[@]}" down --volumes
  label="label=demohub.instance=$instance"
  containers=$(docker ps -aq --filter "$label")
  [ -z "$containers" ] || docker rm -f $containers >/dev/null
  networks=$(docker network ls -q --filter "$label")
  [ -z "$networks" ] || docker network rm $networks >/dev/null
  images=$(docker images -q --filter "$label" --filter label=demohub.space | sort -u)
  [ -z "$images" ] || docker rmi -f $images >/dev/null
  echo "[down] $project: stopped; volumes and instance $instance's spaces removed" >&2
else
  docker-compose -p "$project" "${env_file[@]}" down
fi

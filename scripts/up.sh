#!/usr/bin/env bash
# `make up`: host tools and engine -> base image -> host firewall -> secrets -> build and start
# docker-compose.yml -> wait until the hub and the proxy answer. Idempotent; safe to re-run.
#
# Settings come from the environment, then from the env file (default .env, or
# $DEMOHUB_ENV_FILE), then the defaults below; see .env.example. A second stack runs beside the
# first with its own COMPOSE_PROJECT_NAME, ports, DEMOHUB_INSTANCE, SPACES_SUBNET,
# BUILDS_SUBNET and DEMOHUB_IMAGE_TAG (tests/e2e/test_compose_smoke.py does exactly that).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENV_FILE=$(realpath -m "${DEMOHUB_ENV_FILE:-$ROOT/.env}")
cd "$ROOT"
log() { echo "[up] $*" >&2; }

# The env file fills in only what the environment leaves unset (the precedence compose uses).
(umask 077 && touch "$ENV_FILE")
# Split at the first "=" by hand: `IFS='=' read key value` drops one trailing "=" of the value,
# which every generated SECRETS_ENCRYPTION_KEY (base64 of 32 bytes) ends with.
while IFS= read -r line || [ -n "$line" ]; do
  key=${line%%=*} value=${line#*=}
  [[ $line == *=* && $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
  value=${value%$'\r'}
  if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
  [ -n "${!key+set}" ] || export "$key=$value"
done <"$ENV_FILE"

# Secrets: generated once into the env file, never into an image.
# SECRETS_ENCRYPTION_KEY is a Fernet key: 32 random bytes in URL-safe base64.
for key in DJANGO_SECRET_KEY PROXY_SHARED_SECRET SECRETS_ENCRYPTION_KEY METRICS_TOKEN; do
  if [ -z "${!key:-}" ]; then
    if [ "$key" = SECRETS_ENCRYPTION_KEY ]; then
      value=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_')
    else
      value=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    fi
    if [ -s "$ENV_FILE" ] && [ -n "$(tail -c1 "$ENV_FILE")" ]; then echo >>"$ENV_FILE"; fi
    printf '%s=%s\n' "$key" "$value" >>"$ENV_FILE"
    export "$key=$value"
    log "generated $key into $ENV_FILE"
  fi
done

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-demohub}
export HUB_PORT=${HUB_PORT:-8000} SPACES_PORT=${SPACES_PORT:-8080}
export HUB_URL=${HUB_URL:-http://localhost:$HUB_PORT}
export PROXY_LISTEN=${PROXY_LISTEN:-0.0.0.0:$SPACES_PORT}
export SPACES_SUBNET=${SPACES_SUBNET:-10.213.0.0/16} BUILDS_SUBNET=${BUILDS_SUBNET:-10.212.0.0/16}
export DEMOHUB_INSTANCE=${DEMOHUB_INSTANCE:-main}
export BASE_IMAGE=${BASE_IMAGE:-demohub/base:bookworm}
# Build with the legacy builder through the API, as the docker SDK does: FROM images come from
# the local store and no registry is asked (BuildKit would try to resolve them remotely).
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0

"$ROOT/scripts/host-tools.sh" up
"$ROOT/scripts/base-image.sh"
mkdir -p .build
# The host firewall (README "Network isolation"). What it installed goes to .build/, which the
# hub's processes see read-only as /etc/demohub/: they run nothing untrusted without it unless
# ALLOW_UNISOLATED=true. One file per compose project: stacks of one checkout differ in subnets.
ISOLATION_STATE_FILE="$ROOT/.build/isolation-$COMPOSE_PROJECT_NAME.json" \
  "$ROOT/scripts/isolate.sh" "$SPACES_SUBNET" "$BUILDS_SUBNET"
# Build steps under a cgroup whose pids.max caps them (empty when the engine cannot: see the script).
export BUILD_CGROUP_PARENT=${BUILD_CGROUP_PARENT-$("$ROOT/scripts/build-cgroup.sh" "demohub-$DEMOHUB_INSTANCE-builds")}
export DOCKER_GID=${DOCKER_GID:-$(stat -c %g /var/run/docker.sock)}

# The operator's CA bundle (intercepting or corporate proxy): into the hub image's pip step via
# .build/ca.crt, and read-only into the workers (as /etc/demohub/ca.crt) for the spaces' builds.
if [ -n "${BUILD_CA_BUNDLE:-}" ]; then
  [ -r "$BUILD_CA_BUNDLE" ] || { log "BUILD_CA_BUNDLE=$BUILD_CA_BUNDLE is not a readable file"; exit 1; }
  cmp -s "$BUILD_CA_BUNDLE" .build/ca.crt || install -m 644 "$BUILD_CA_BUNDLE" .build/ca.crt
  export CONTAINER_BUILD_CA_BUNDLE=/etc/demohub/ca.crt
else
  rm -f .build/ca.crt
  export CONTAINER_BUILD_CA_BUNDLE=
fi

compose() { docker-compose -p "$COMPOSE_PROJECT_NAME" --env-file "$ENV_FILE" "$@"; }
local_host() { case $1 in 0.0.0.0 | '' | '[::]' | '::') echo 127.0.0.1 ;; *) echo "$1" ;; esac; }
hub_url="http://$(local_host "${HUB_BIND:-127.0.0.1}"):$HUB_PORT/healthz"
proxy_url="http://$(local_host "${PROXY_LISTEN%:*}"):${PROXY_LISTEN##*:}/"
status() { curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 3 "$1" || true; }
hub_ok() { [ "$hub" -ge 100 ] && [ "$hub" -lt 500 ]; }

log "building and starting $COMPOSE_PROJECT_NAME (instance ${DEMOHUB_INSTANCE:-main})"
if compose up -d --build; then
  # Wait for answers: the hub below 500, the proxy anything HTTP at all.
  deadline=$((SECONDS + ${UP_TIMEOUT:-180}))
  while :; do
    hub=$(status "$hub_url") proxy=$(status "$proxy_url")
    if hub_ok && [ "$proxy" != 000 ]; then
      log "ready: hub $hub_url ($hub), proxy $proxy_url ($proxy)"
      exit 0
    fi
    [ $SECONDS -lt $deadline ] || break
    sleep 1
  done
  log "timed out after ${UP_TIMEOUT:-180}s"
else
  log "docker-compose up failed"
  hub=$(status "$hub_url") proxy=$(status "$proxy_url")
fi

log "hub $hub_url answered ${hub/#000/nothing}, proxy $proxy_url answered ${proxy/#000/nothing}"
compose ps >&2 || true
running=" $(compose ps --services --filter status=running 2>/dev/null | tr '\n' ' ') "
failing=()
for service in $(compose config --services); do
  [[ $running == *" $service "* ]] || failing+=("$service")
done
hub_ok || failing+=(web)
[ "$proxy" != 000 ] || failing+=(proxy)
mapfile -t failing < <(printf '%s\n' "${failing[@]}" | grep . | sort -u)
log "logs of: ${failing[*]}"
compose logs --no-color --tail=60 "${failing[@]}" >&2 || true
exit 1

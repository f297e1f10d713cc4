#!/usr/bin/env bash
# A Demohub node: a Docker engine of its own, its firewall, and a Celery worker consuming the
# node's queue (docs/scale.md). Run as root on the node machine.
#
#   scripts/node.sh up          # engine + firewall + worker in the foreground (`make node HUB=...`)
#   scripts/node.sh engine-up   # engine + firewall only (tests start the worker themselves)
#   scripts/node.sh down        # stop everything of NODE_NAME and remove its state
#   scripts/node.sh sweep       # `down` for every node under NODE_STATE_ROOT whose owner is gone
#   scripts/node.sh check       # print the node's firewall rules; exit 1 if one is missing
#
# Settings (environment):
#   NODE_NAME       the node's name: [a-z0-9]{1,12}; its queue is node.<NODE_NAME>
#   NODE_STATE_DIR  engine data, sockets, pid files (default /var/lib/demohub-node/NODE_NAME)
#   NODE_ADDRESS    the node's address the proxy reaches its published ports on
#   HUB_ADDRESS     the hub's address as this node sees it: the only source allowed to open a
#                   connection to a published port, and the registry's host
#   REGISTRY        host:port of the registry as this engine reaches it (default HUB_ADDRESS:5000);
#                   listed in the engine's insecure-registries (a private link; docs/scale.md)
#   NODE_SUBNETS    spaces and builds subnets of this node (default SPACES_SUBNET BUILDS_SUBNET)
#   NODE_NETNS=1    a second node on THIS machine: the engine runs in a network namespace of its
#                   own, joined to the host by a veth pair on NODE_LINK (a /30: host .1, node .2),
#                   which then sets HUB_ADDRESS and NODE_ADDRESS. For tests and trying it out.
#   NODE_OWNER_PID  sweep removes the node once this process is gone (tests)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-up}
if [ "$cmd" = sweep ]; then  # every node under NODE_STATE_ROOT whose owner process is gone
  for dir in "${NODE_STATE_ROOT:-/var/lib/demohub-node}"/*/; do
    [ -f "$dir/owner" ] || continue
    kill -0 "$(cat "$dir/owner")" 2>/dev/null && continue
    NODE_NAME=$(basename "$dir") NODE_STATE_DIR=${dir%/} bash "$0" down || true
  done
  exit 0
fi
NAME=${NODE_NAME:?NODE_NAME is required}
[[ $NAME =~ ^[a-z0-9]{1,12}$ ]] || { echo "NODE_NAME must be 1-12 of a-z0-9" >&2; exit 2; }
STATE=${NODE_STATE_DIR:-/var/lib/demohub-node/$NAME}
SOCK=$STATE/docker.sock
NS=dh$NAME                 # the network namespace (NODE_NETNS=1)
VETH_H=dh${NAME}h VETH_N=dh${NAME}n
CHAIN=DHN-$NAME            # host INPUT rules of the link (NODE_NETNS=1)
log() { echo "[node $NAME] $*" >&2; }

in_ns() {  # run in the node's network namespace only (not its mounts: the engine needs cgroups)
  if [ -e "/run/netns/$NS" ]; then nsenter --net="/run/netns/$NS" "$@"; else "$@"; fi
}

load_link() {
  # shellcheck disable=SC1091
  [ -f "$STATE/node.env" ] && . "$STATE/node.env"  # what engine-up was given
  if [ "${NODE_NETNS:-}" = 1 ] || [ -f "$STATE/link" ]; then
    [ -f "$STATE/link" ] && NODE_LINK=$(cat "$STATE/link")
    local base=${NODE_LINK:?NODE_LINK (a /30, e.g. 10.209.7.0/30) is required with NODE_NETNS=1}
    base=${base%/*}
    HUB_ADDRESS=${base%.*}.$(( ${base##*.} + 1 ))
    NODE_ADDRESS=${base%.*}.$(( ${base##*.} + 2 ))
  fi
  HUB_ADDRESS=${HUB_ADDRESS:?HUB_ADDRESS is required}
  NODE_ADDRESS=${NODE_ADDRESS:?NODE_ADDRESS is required}
  REGISTRY=${REGISTRY:-$HUB_ADDRESS:5000}
  NODE_SUBNETS=${NODE_SUBNETS:-${SPACES_SUBNET:-10.213.0.0/16} ${BUILDS_SUBNET:-10.212.0.0/16}}
  read -r -a SUBNETS <<<"$NODE_SUBNETS"
}

save_settings() {
  printf 'HUB_ADDRESS=%q\nNODE_ADDRESS=%q\nREGISTRY=%q\nNODE_SUBNETS=%q\n' \
    "$HUB_ADDRESS" "$NODE_ADDRESS" "$REGISTRY" "$NODE_SUBNETS" >"$STATE/node.env"
}

make_link() {  # the namespace and the veth pair; nothing routed beyond the pair
  [ -e "/run/netns/$NS" ] || ip netns add "$NS"
  if ! ip link show "$VETH_H" >/dev/null 2>&1; then
    ip link add "$VETH_H" type veth peer name "$VETH_N" netns "$NS"
  fi
  ip addr replace "$HUB_ADDRESS/30" dev "$VETH_H"
  ip link set "$VETH_H" up
  ip -n "$NS" addr replace "$NODE_ADDRESS/30" dev "$VETH_N"
  ip -n "$NS" link set "$VETH_N" up
  ip -n "$NS" link set lo up
  echo "$NODE_LINK" >"$STATE/link"
  # The host end: the node may open connections to the registry and nothing else of this host,
  # and nothing is forwarded from the node anywhere (it needs no internet: images come from
  # the registry). Replies to the hub's own connections (the proxy) pass.
  local port=${REGISTRY##*:}
  iptables -w -N "$CHAIN" 2>/dev/null || iptables -w -F "$CHAIN"
  iptables -w -A "$CHAIN" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  iptables -w -A "$CHAIN" -d "$HUB_ADDRESS" -p tcp --dport "$port" -m comment --comment demohub-registry -j ACCEPT
  iptables -w -A "$CHAIN" -p tcp -j REJECT --reject-with tcp-reset
  iptables -w -A "$CHAIN" -j REJECT
  iptables -w -C INPUT -i "$VETH_H" -j "$CHAIN" 2>/dev/null || iptables -w -I INPUT 1 -i "$VETH_H" -j "$CHAIN"
  iptables -w -C FORWARD -i "$VETH_H" -j REJECT 2>/dev/null || iptables -w -I FORWARD 1 -i "$VETH_H" -j REJECT
}

engine_up() {
  mkdir -p "$STATE/data" "$STATE/exec"
  [ -n "${NODE_OWNER_PID:-}" ] && echo "$NODE_OWNER_PID" >"$STATE/owner"
  save_settings
  if [ "${NODE_NETNS:-}" = 1 ]; then make_link; fi
  # The engine forwards to its containers only with forwarding on (a new namespace has it off,
  # and an engine without docker0 does not turn it on).
  in_ns sysctl -qw net.ipv4.ip_forward=1
  if DOCKER_HOST=unix://$SOCK docker info >/dev/null 2>&1; then log "engine already answers"; else
    # No docker0 (the project's networks have fixed subnets); bounded logs; the registry by
    # its address on the private link.
    cat >"$STATE/daemon.json" <<JSON
{
  "bridge": "none",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "insecure-registries": ["$REGISTRY"]
}
JSON
    log "starting dockerd (socket $SOCK, log $STATE/dockerd.log)"
    in_ns setsid dockerd --config-file "$STATE/daemon.json" --data-root "$STATE/data" \
      --exec-root "$STATE/exec" --pidfile "$STATE/dockerd.pid" -H "unix://$SOCK" \
      >>"$STATE/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
      DOCKER_HOST=unix://$SOCK docker info >/dev/null 2>&1 && break
      sleep 0.25
    done
    DOCKER_HOST=unix://$SOCK docker info >/dev/null 2>&1 || { log "dockerd did not answer; see $STATE/dockerd.log"; exit 1; }
  fi
  firewall
}

publish_rule() {  # only the hub opens connections to the node's published ports
  echo "-m conntrack --ctdir ORIGINAL --ctstate DNAT --ctorigdst $NODE_ADDRESS ! -s $HUB_ADDRESS/32 -m comment --comment demohub-node-publish -j REJECT"
}

firewall() {
  # The same rules as the hub's own engine (scripts/isolate.sh), inside the node's namespace:
  # spaces and builds reach none of the node's services (its engine is a unix socket anyway)
  # and no private, loopback or link-local address -- so not the hub, its Postgres, Redis or
  # registry over the link, not another node.
  in_ns env ISOLATION_STATE_FILE="$STATE/isolation.json" EGRESS_ALLOW="${EGRESS_ALLOW:-}" \
    bash "$ROOT/scripts/isolate.sh" "${SUBNETS[@]}"
  # shellcheck disable=SC2046
  in_ns iptables -w -C DOCKER-USER $(publish_rule) 2>/dev/null ||
    in_ns iptables -w -I DOCKER-USER 1 $(publish_rule)
}

check() {
  local ok=0
  in_ns env bash "$ROOT/scripts/isolate.sh" --check "${SUBNETS[@]}" || ok=1
  # shellcheck disable=SC2046
  if in_ns iptables -w -C DOCKER-USER $(publish_rule) 2>/dev/null; then echo "-A DOCKER-USER $(publish_rule)"
  else log "DOCKER-USER lacks the published-port rule"; ok=1; fi
  if [ -e "/run/netns/$NS" ]; then iptables -w -S "$CHAIN" || ok=1; fi
  return $ok
}

kill_pidfile() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
}

down() {
  kill_pidfile "$STATE/worker.pid"
  local p
  if [ -e "/run/netns/$NS" ]; then  # a test node: its containers go at once, not one by one
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  fi
  if [ -f "$STATE/dockerd.pid" ]; then
    local pid; pid=$(cat "$STATE/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # What is left of the engine: its containerd and shims (by their socket paths), then every
  # process still in the namespace (the containers).
  for p in $(pgrep -f -- "$STATE/exec/" || true); do kill -9 "$p" 2>/dev/null || true; done
  if [ -e "/run/netns/$NS" ]; then
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  fi
  sleep 0.2
  # Mounts the engine left behind (overlay layers, shm, the netns files of its containers).
  { grep -F " $STATE/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if iptables -w -S "$CHAIN" >/dev/null 2>&1; then
    while iptables -w -D INPUT -i "$VETH_H" -j "$CHAIN" 2>/dev/null; do :; done
    while iptables -w -D FORWARD -i "$VETH_H" -j REJECT 2>/dev/null; do :; done
    iptables -w -F "$CHAIN"; iptables -w -X "$CHAIN"
  fi
  ip link del "$VETH_H" 2>/dev/null || true
  [ -e "/run/netns/$NS" ] && ip netns del "$NS"
  rm -rf "$STATE"
  log "removed"
}

case $cmd in
  engine-up) load_link; engine_up ;;
  up)
    load_link; engine_up
    cd "$ROOT"
    echo $$ >"$STATE/worker.pid"
    log "worker on queue node.$NAME (hub settings from ${DEMOHUB_ENV_FILE:-.env})"
    exec env DOCKER_HOST="unix://$SOCK" NODE_NAME="$NAME" NODE_ADDRESS="$NODE_ADDRESS" \
      NODE_QUEUE="node.$NAME" NODE_STARTS_QUEUE="node.$NAME.starts" \
      RUNNER_REGISTRY="$REGISTRY" ISOLATION_STATE_FILE="$STATE/isolation.json" \
      "${PYTHON:-.venv/bin/python}" -m celery -A hub worker -Q "node.$NAME,node.$NAME.starts" -c "${NODE_CONCURRENCY:-4}" \
      -n "node-$NAME@%h" --loglevel INFO ;;
  down) down ;;
  check) load_link; check ;;
  *) echo "usage: node.sh up|engine-up|down|check|sweep" >&2; exit 2 ;;
esac

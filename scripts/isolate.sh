#!/usr/bin/env bash
# Host firewall for the spaces and builds subnets (README "Network isolation").
#
# 1. Host services: no space and no build may open a connection to the host itself (hub,
#    proxy, Postgres, Redis, the Docker API, anything listening), while the host may still open
#    connections to them (proxy -> space, health checks): their replies are ESTABLISHED.
#    Chain DEMOHUB-ISOLATE, jumped to from INPUT.
# 2. Egress: spaces and builds may reach the internet, but not private, CGNAT, loopback or
#    link-local destinations (other hosts of this network, other nodes' engines and published
#    ports, cloud metadata), unless EGRESS_ALLOW lists them (`CIDR[:port]`, comma-separated).
#    The DNS servers of this host stay reachable on port 53 (the engine's resolver forwards
#    containers' lookups to them from the container's address). Chain DEMOHUB-EGRESS, jumped
#    to from DOCKER-USER (the engine keeps that chain first in FORWARD and never flushes it).
#    IPv6: the project's networks have none; v6 from their bridges (dhnet*) is refused.
#
# Rules are additive and idempotent; allow-list rules are per subnet, so stacks with other
# subnets (and other EGRESS_ALLOW) share the chains. Needs root. The outcome is written to
# $ISOLATION_STATE_FILE (JSON), which the hub reads: it runs no space or build while the
# firewall is missing, unless ALLOW_UNISOLATED=true.
#
#   scripts/isolate.sh [SUBNET...]          # default: $SPACES_SUBNET $BUILDS_SUBNET
#   scripts/isolate.sh --check [SUBNET...]  # print the rules; exit 1 if any is missing
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHAIN=DEMOHUB-ISOLATE EGRESS=DEMOHUB-EGRESS DENY=DEMOHUB-EGRESS-DENY
BRIDGES=dhnet+  # the bridge names the runner gives its networks (runner/backends/docker.py)
mode=apply
if [ "${1:-}" = "--check" ]; then mode=check; shift; fi
if [ $# -eq 0 ]; then set -- "${SPACES_SUBNET:-10.213.0.0/16}" "${BUILDS_SUBNET:-10.212.0.0/16}"; fi
STATE=${ISOLATION_STATE_FILE:-}

log() { echo "[isolate] $*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
ipt() { $SUDO iptables -w "$@"; }
ip6t() { $SUDO ip6tables -w "$@"; }

write_state() {  # write_state true|false REASON SUBNET...
  [ -n "$STATE" ] || return 0
  mkdir -p "$(dirname "$STATE")"
  python3 - "$STATE" "$@" <<'PY'
import json, os, sys, time
path, isolated, reason, *subnets = sys.argv[1:]
state = {"isolated": isolated == "true", "reason": reason, "subnets": subnets,
         "egress_allow": os.environ.get("EGRESS_ALLOW", ""), "written_at": int(time.time())}
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(state, f)
os.chmod(tmp, 0o644)
os.replace(tmp, path)
PY
}

# The allow list is validated before anything is changed: a typo must not half-apply.
command -v python3 >/dev/null 2>&1 || { log "python3 is missing (scripts/host-tools.sh installs it)"; exit 1; }
if ! allow=$(python3 "$ROOT/runner/egress.py" allow "${EGRESS_ALLOW:-}"); then
  log "EGRESS_ALLOW is invalid (see above); nothing was changed"
  exit 2
fi
if grep -q ':' <<<"$allow"; then
  log "IPv6 entries of EGRESS_ALLOW have no effect: the project's networks have no IPv6"
fi
mapfile -t DENY_RANGES < <(python3 "$ROOT/runner/egress.py" deny)

if ! command -v iptables >/dev/null 2>&1 || ! ipt -S INPUT >/dev/null 2>&1; then
  if [ "$mode" = check ]; then log "iptables is not usable here"; exit 1; fi
  log "WARNING: iptables is not usable (needs root and netfilter): spaces and builds in $* are" \
      "NOT firewalled. The hub refuses to run them unless ALLOW_UNISOLATED=true. Run" \
      "scripts/isolate.sh as root."
  write_state false "iptables is not usable on the host (needs root and netfilter)" "$@"
  exit 0
fi

# The host's resolvers (systemd-resolved's upstreams when resolv.conf names only its stub).
nameservers() {
  local f found=""
  for f in /etc/resolv.conf /run/systemd/resolve/resolv.conf; do
    [ -r "$f" ] || continue
    found=$(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ && $2 !~ /^127\./ {print $2}' "$f" | sort -u)
    [ -n "$found" ] && break
  done
  echo "$found"
}
mapfile -t NAMESERVERS < <(nameservers)

# Fixed chain bodies, in order.
ISOLATE_RULES=(
  "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
  "-p tcp -j REJECT --reject-with tcp-reset"
  "-j REJECT"
)
DENY_RULES=()
for r in "${DENY_RANGES[@]}"; do
  DENY_RULES+=("-d $r -p tcp -j REJECT --reject-with tcp-reset" "-d $r -j REJECT --reject-with icmp-net-prohibited")
done
EGRESS_HEAD="-m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
EGRESS_TAIL="-j $DENY"

chain_ok() {  # chain_ok TOOL CHAIN RULE...: the chain holds exactly these rules
  local tool=$1 chain=$2; shift 2
  $tool -S "$chain" >/dev/null 2>&1 || return 1
  [ "$($tool -S "$chain" | grep -c '^-A')" -eq $# ] || return 1
  local r
  for r in "$@"; do $tool -C "$chain" $r 2>/dev/null || return 1; done
}
write_chain() {  # write_chain TOOL CHAIN RULE...
  local tool=$1 chain=$2; shift 2
  chain_ok "$tool" "$chain" "$@" && return 0
  $tool -N "$chain" 2>/dev/null || $tool -F "$chain"
  local r
  for r in "$@"; do $tool -A "$chain" $r; done
  log "chain $chain written"
}
jump() { echo "-s $1 -m comment --comment demohub-isolate -j $CHAIN"; }
egress_jump() { echo "-s $1 -m comment --comment demohub-egress -j $EGRESS"; }
bridge_jump() { echo "-i $BRIDGES -m comment --comment demohub-egress -j $EGRESS"; }
dns_rules() {
  local ns
  for ns in "${NAMESERVERS[@]}"; do
    [ -n "$ns" ] || continue
    echo "-d $ns/32 -p udp --dport 53 -m comment --comment demohub-dns -j RETURN"
    echo "-d $ns/32 -p tcp --dport 53 -m comment --comment demohub-dns -j RETURN"
  done
}
allow_rules() {  # allow_rules SUBNET: this subnet's EGRESS_ALLOW rules
  local net port
  while read -r net port; do
    [ -n "$net" ] || continue
    [[ $net == *:* ]] && continue  # v6 entries: the project's networks are v4-only
    if [ "$port" = - ]; then
      echo "-s $1 -d $net -m comment --comment demohub-allow:$1 -j RETURN"
    else
      echo "-s $1 -d $net -p tcp --dport $port -m comment --comment demohub-allow:$1 -j RETURN"
      echo "-s $1 -d $net -p udp --dport $port -m comment --comment demohub-allow:$1 -j RETURN"
    fi
  done <<<"$allow"
}

if [ "$mode" = check ]; then
  ok=0
  ipt -S "$CHAIN" 2>/dev/null || true
  ipt -S "$EGRESS" 2>/dev/null || true
  ipt -S "$DENY" 2>/dev/null || true
  chain_ok ipt "$CHAIN" "${ISOLATE_RULES[@]}" || { log "chain $CHAIN is missing or wrong"; ok=1; }
  chain_ok ipt "$DENY" "${DENY_RULES[@]}" || { log "chain $DENY is missing or wrong"; ok=1; }
  for r in "$EGRESS_HEAD" "$EGRESS_TAIL"; do
    ipt -C "$EGRESS" $r 2>/dev/null || { log "chain $EGRESS lacks: $r"; ok=1; }
  done
  ipt -C FORWARD -j DOCKER-USER 2>/dev/null || { log "FORWARD does not jump to DOCKER-USER (is the engine running?)"; ok=1; }
  for s in "$@"; do
    if ipt -C INPUT $(jump "$s") 2>/dev/null; then echo "-A INPUT $(jump "$s")"
    else log "INPUT has no jump to $CHAIN for $s"; ok=1; fi
    if ipt -C DOCKER-USER $(egress_jump "$s") 2>/dev/null; then echo "-A DOCKER-USER $(egress_jump "$s")"
    else log "DOCKER-USER has no jump to $EGRESS for $s"; ok=1; fi
  done
  exit $ok
fi

exec 9>"${TMPDIR:-/tmp}/demohub-isolate.lock"  # one writer at a time: rules are found and deleted by position
flock 9

# 1. host services
write_chain ipt "$CHAIN" "${ISOLATE_RULES[@]}"
ipt -C INPUT -i "$BRIDGES" -m comment --comment demohub-isolate -j "$CHAIN" 2>/dev/null ||
  ipt -I INPUT 1 -i "$BRIDGES" -m comment --comment demohub-isolate -j "$CHAIN"
for s in "$@"; do
  if ! ipt -C INPUT $(jump "$s") 2>/dev/null; then
    ipt -I INPUT 1 $(jump "$s")
    log "new connections from $s to this host are rejected"
  fi
done

# 2. egress: the deny list, then DEMOHUB-EGRESS = [replies] [dns] [allow lists] [-> deny list]
write_chain ipt "$DENY" "${DENY_RULES[@]}"
ipt -N "$EGRESS" 2>/dev/null || true
ipt -C "$EGRESS" $EGRESS_HEAD 2>/dev/null || ipt -I "$EGRESS" 1 $EGRESS_HEAD
ipt -C "$EGRESS" $EGRESS_TAIL 2>/dev/null || ipt -A "$EGRESS" $EGRESS_TAIL
while read -r r; do
  [ -n "$r" ] || continue
  ipt -C "$EGRESS" $r 2>/dev/null || ipt -I "$EGRESS" 2 $r
done < <(dns_rules)
for s in "$@"; do
  mapfile -t wanted < <(allow_rules "$s")
  mapfile -t lines < <(ipt -S "$EGRESS")  # lines[0] is "-N ...", so lines[i] is rule number i
  have=()
  for i in "${!lines[@]}"; do  # iptables -S quotes the comment: "demohub-allow:10.1.0.0/20"
    [[ ${lines[$i]} == *"demohub-allow:$s"[\"\ ]* ]] && have+=("$i")
  done
  same=1
  [ "${#have[@]}" -eq "${#wanted[@]}" ] || same=0
  for r in "${wanted[@]}"; do ipt -C "$EGRESS" $r 2>/dev/null || same=0; done
  if [ $same = 0 ]; then
    for ((k = ${#have[@]} - 1; k >= 0; k--)); do ipt -D "$EGRESS" "${have[$k]}"; done
    for r in "${wanted[@]}"; do ipt -I "$EGRESS" 2 $r; done
    log "egress from $s: ${#wanted[@]} allow rule(s) from EGRESS_ALLOW"
  fi
done
ipt -N DOCKER-USER 2>/dev/null || true  # the engine creates it too, and jumps to it from FORWARD
ipt -C DOCKER-USER $(bridge_jump) 2>/dev/null || ipt -I DOCKER-USER 1 $(bridge_jump)
for s in "$@"; do
  if ! ipt -C DOCKER-USER $(egress_jump "$s") 2>/dev/null; then
    ipt -I DOCKER-USER 1 $(egress_jump "$s")
    log "connections from $s to private, loopback and link-local ranges are rejected"
  fi
done

# 3. IPv6 from the project's bridges (none of its networks has v6): nothing to the host, nothing out.
if command -v ip6tables >/dev/null 2>&1 && ip6t -S INPUT >/dev/null 2>&1; then
  write_chain ip6t "$CHAIN" "${ISOLATE_RULES[@]}"
  ip6t -C INPUT -i "$BRIDGES" -m comment --comment demohub-isolate -j "$CHAIN" 2>/dev/null ||
    ip6t -I INPUT 1 -i "$BRIDGES" -m comment --comment demohub-isolate -j "$CHAIN"
  ip6t -C FORWARD -i "$BRIDGES" -m comment --comment demohub-egress -j REJECT 2>/dev/null ||
    ip6t -I FORWARD 1 -i "$BRIDGES" -m comment --comment demohub-egress -j REJECT
else
  log "ip6tables is not usable: IPv6 from the project's bridges is not filtered"
fi

write_state true "" "$@"

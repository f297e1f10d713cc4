#!/usr/bin/env bash
# Host firewall for the spaces subnet(s): no space and no build may open a connection to the
# host itself (hub, proxy, Postgres, Redis, anything listening), while the host may still open
# connections to them (proxy -> space, health checks): their replies are ESTABLISHED.
# Traffic that only passes through the host (a build's pip install) goes through FORWARD/NAT
# and is not touched. Idempotent; needs root (or sudo without a password).
#
#   scripts/isolate.sh [SUBNET...]          # default: $SPACES_SUBNET or 10.213.0.0/16
#   scripts/isolate.sh --check [SUBNET...]  # print the rules; exit 1 if any is missing
set -euo pipefail

CHAIN=DEMOHUB-ISOLATE
mode=apply
if [ "${1:-}" = "--check" ]; then mode=check; shift; fi
if [ $# -eq 0 ]; then set -- "${SPACES_SUBNET:-10.213.0.0/16}"; fi

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
ipt() { $SUDO iptables -w "$@"; }

if ! command -v iptables >/dev/null 2>&1 || ! ipt -S INPUT >/dev/null 2>&1; then
  if [ "$mode" = check ]; then echo "[isolate] iptables is not usable here" >&2; exit 1; fi
  echo "[isolate] WARNING: iptables is not usable (needs root and netfilter): spaces in $* are" \
       "NOT firewalled from services on this host. Run scripts/isolate.sh as root." >&2
  exit 0
fi

# The chain body, in order. Subnet-agnostic: INPUT decides who is sent here.
RULES=(
  "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
  "-p tcp -j REJECT --reject-with tcp-reset"
  "-j REJECT"
)

chain_ok() {
  ipt -S "$CHAIN" >/dev/null 2>&1 || return 1
  [ "$(ipt -S "$CHAIN" | grep -c '^-A')" -eq "${#RULES[@]}" ] || return 1
  local r
  for r in "${RULES[@]}"; do ipt -C "$CHAIN" $r 2>/dev/null || return 1; done
}
jump() { echo "-s $1 -m comment --comment demohub-isolate -j $CHAIN"; }

if [ "$mode" = check ]; then
  ok=0
  ipt -S "$CHAIN" 2>/dev/null || true
  chain_ok || { echo "[isolate] chain $CHAIN is missing or wrong" >&2; ok=1; }
  for s in "$@"; do
    if ipt -C INPUT $(jump "$s") 2>/dev/null; then
      echo "-A INPUT $(jump "$s")"
    else
      echo "[isolate] INPUT has no jump to $CHAIN for $s" >&2; ok=1
    fi
  done
  exit $ok
fi

if ! chain_ok; then
  ipt -N "$CHAIN" 2>/dev/null || ipt -F "$CHAIN"
  for r in "${RULES[@]}"; do ipt -A "$CHAIN" $r; done
  echo "[isolate] chain $CHAIN written" >&2
fi
for s in "$@"; do
  if ! ipt -C INPUT $(jump "$s") 2>/dev/null; then
    ipt -I INPUT 1 $(jump "$s")
    echo "[isolate] new connections from $s to this host are rejected" >&2
  fi
done

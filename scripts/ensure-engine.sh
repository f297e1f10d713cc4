#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install Debian's docker.io if missing,
# write a daemon.json that bounds container logs and sizes the address pools for many
# networks, and start dockerd in the background. Idempotent: does nothing when the engine
# already answers.
set -euo pipefail

log() { echo "[engine] $*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing Debian's docker.io"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io >/dev/null
fi

if [ ! -f /etc/docker/daemon.json ]; then
  log "writing /etc/docker/daemon.json (bounded logs, address pools)"
  $SUDO mkdir -p /etc/docker
  $SUDO tee /etc/docker/daemon.json >/dev/null <<'JSON'
{
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "default-address-pools": [{"base": "172.30.0.0/15", "size": 24}]
}
JSON
fi

# A systemd-managed engine first; otherwise start dockerd ourselves (containers, CI).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl start docker || true
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/dockerd.log)"
  $SUDO setsid sh -c 'dockerd >>/var/log/dockerd.log 2>&1' </dev/null &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then log "engine is up"; exit 0; fi
  sleep 0.5
done
log "dockerd did not answer within 30 s; see /var/log/dockerd.log"
exit 1

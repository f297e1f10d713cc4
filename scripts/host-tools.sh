#!/usr/bin/env bash
# Install what this host lacks, with apt (Debian), and start the Docker engine.
# Idempotent and silent when everything is present.
#
#   scripts/host-tools.sh        # everything: running the stack, the tests, the benchmarks
#   scripts/host-tools.sh up     # only what `make up` needs
set -euo pipefail

group=${1:-all}
log() { echo "[host-tools] $*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

has_cmd() { command -v "$1" >/dev/null 2>&1; }
has_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# package:test — a command name, or "pkg" to ask dpkg.
# python3: scripts/isolate.sh validates EGRESS_ALLOW and records its state with it.
wanted=(docker-compose:docker-compose iptables:iptables debootstrap:debootstrap curl:curl python3:python3)
if [ "$group" = all ]; then
  wanted+=(nginx-light:nginx libnginx-mod-http-js:pkg libnginx-mod-http-set-misc:pkg chromium:chromium libnss-myhostname:pkg wrk:wrk python3-venv:pkg)
  # gettext: manage.py makemessages/compilemessages (the Korean catalog, README "Languages").
  # The fonts: Chromium's screenshots show Korean text and space emoji instead of boxes.
  wanted+=(gettext:msgfmt fonts-noto-cjk:pkg fonts-noto-color-emoji:pkg)
  # The image registry between nodes (docs/scale.md): tests/e2e/nodes.py runs one per test run.
  wanted+=(docker-registry:docker-registry)
fi

missing=()
for w in "${wanted[@]}"; do
  pkg=${w%%:*} probe=${w#*:}
  if [ "$probe" = pkg ]; then has_pkg "$pkg" && continue; else has_cmd "$probe" && continue; fi
  missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  # Packages must not start system services here (nginx on :80): the project starts what it
  # needs. A temporary policy-rc.d says so to invoke-rc.d, unless the host already has one.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# *.localhost resolves to loopback for every program (not only browsers and curl).
if has_pkg libnss-myhostname && ! grep -Eq '^hosts:.*\bmyhostname\b' /etc/nsswitch.conf; then
  log "adding myhostname to the hosts: line of /etc/nsswitch.conf"
  if grep -Eq '^hosts:.*\bfiles\b' /etc/nsswitch.conf; then
    $SUDO sed -i -E '/^hosts:/ s/\bfiles\b/files myhostname/' /etc/nsswitch.conf
  else
    $SUDO sed -i -E 's/^hosts:[[:space:]]*/&myhostname /' /etc/nsswitch.conf
  fi
fi

"$(dirname "$0")/ensure-engine.sh"

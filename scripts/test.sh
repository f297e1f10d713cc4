#!/usr/bin/env bash
# `make test`: install and start what the tests need, then run them all.
#
# Unit tests (fake runner backend, real Postgres and Redis), end-to-end tests on the real stack
# (Docker engine, nginx, Celery workers, real builds, Chromium), and a smoke test of the compose
# stack. Nothing is skipped: a missing engine, nginx or browser is installed here, not excused.
#   scripts/test.sh                 # everything: in TEST_WORKERS parallel processes, then alone
#   scripts/test.sh tests/unit -x   # arguments go to pytest (one process; -n 2 --dist loadgroup: two)
#
# Everything runs in two parts. First every test not marked `alone`, in TEST_WORKERS processes
# (pytest-xdist, default 2, the cores of a CI machine; --dist loadgroup): unit tests one at a
# time wherever a process is free, each e2e file whole in one process (tests/e2e/conftest.py
# groups them: they share the file's stacks and compose project), in the order collected, so
# the e2e files start first. Each process has a test database of its own
# (tests/unit/conftest.py), its own cache keys (tests/settings.py) and, for e2e files, a stack
# of its own (tests/e2e/stack.py: installation id, database, Redis db, ports, subnets). Then
# the tests marked `alone` (tests/e2e/test_restarts.py restarts the Docker engine, which stops
# every container on the machine) by themselves. Both parts together are every test.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[test] $*" >&2; }

bash scripts/host-tools.sh          # docker.io + dockerd, nginx, chromium, wrk, debootstrap, ...
bash scripts/base-image.sh          # demohub/base:bookworm, made locally (no registry here)

# Postgres and Redis on loopback: this machine kind runs them; start or install them if not.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"; apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
  # Local trust for the postgres user over TCP loopback, as on machines of this kind.
  if ! psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | tail -1)
    sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main reload
  fi
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing Redis"; apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 20); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.25; done
fi
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='demohub'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE demohub"

# The Python environment, reinstalled only when the requirements change.
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
stamp=.venv/.requirements-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  log "installing Python requirements"
  .venv/bin/pip install -q -r requirements-dev.txt
  rm -f .venv/.requirements-* && touch "$stamp"
fi

# The Hugging Face clients the tests run in subprocesses (issue 11), one environment per pinned
# version (HF_ENDPOINT is read at import), reinstalled only when its requirements file changes.
for v in hf1 hf2; do
  if [ ! -x ".venv-$v/bin/python" ]; then python3 -m venv ".venv-$v"; fi
  stamp=".venv-$v/.requirements-$(sha256sum "requirements-$v.txt" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "installing requirements-$v.txt"
    ".venv-$v/bin/pip" install -q -r "requirements-$v.txt"
    rm -f ".venv-$v"/.requirements-* && touch "$stamp"
  fi
done

# The message catalogs (locale/*/LC_MESSAGES/django.po -> .mo): generated, never committed.
log "compiling message catalogs"
DJANGO_DEBUG=true DEMOHUB_ENV_FILE=/dev/null .venv/bin/python manage.py compilemessages --ignore .venv >/dev/null

export CI="${CI:-}"
pytest() { .venv/bin/python -m pytest -p no:cacheprovider "$@"; }
if [ $# -gt 0 ]; then
  log "running pytest $*"
  pytest "$@"
  exit
fi
# Unit tests share out well (fake runner, a test database and Redis db per worker). The
# end-to-end files each start a real stack, build images and run Gradio front ends: two of them
# side by side on a 2-core machine made timing-bound ones (a drain under load, a browser waiting
# for Gradio) fail, so they run one file at a time unless E2E_WORKERS asks for more.
workers=${TEST_WORKERS:-2}
e2e_workers=${E2E_WORKERS:-1}
status=0
log "running pytest: the unit tests, in $workers processes"
pytest -n "$workers" --dist loadgroup --no-loadscope-reorder -m "not alone" tests/unit || status=$?
log "running pytest: the end-to-end tests not marked alone, in $e2e_workers process(es)"
if [ "$e2e_workers" -gt 1 ]; then
  pytest -n "$e2e_workers" --dist loadgroup --no-loadscope-reorder -m "not alone" tests/e2e || status=$?
else
  pytest -m "not alone" tests/e2e || status=$?
fi
log "running pytest: the tests marked alone"
pytest -m alone tests || status=$?
exit "$status"

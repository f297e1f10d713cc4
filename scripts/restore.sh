#!/usr/bin/env bash
# `make restore FILE=...`: bring a fresh stack (`make up` ran, nothing created yet) back to the
# installation an archive of `make backup` holds (README "Backups and restores"):
#
#   1. unpacks the archive (BACKUP_PASSPHRASE decrypts a .gpg one);
#   2. takes the keys of the archived env file into this stack's (DJANGO_SECRET_KEY,
#      PROXY_SHARED_SECRET, SECRETS_ENCRYPTION_KEY, METRICS_TOKEN): without them space secrets
#      could not be read and signed cookies would not count. RESTORE_ENV=false keeps this
#      stack's keys; this stack's own settings (project, ports, instance) are never replaced;
#   3. stops the hub's services, replaces the database with the dump, empties Redis (queues,
#      claims and live logs of the old machine mean nothing here) and puts the snapshots and
#      static sites into the data volume;
#   4. starts the stack again (`make up`: migrations bring an older dump up to this version),
#      then `manage.py restore_spaces` rebuilds the images of the spaces that ran or slept, which
#      then start, as after an upload.
#
# Refuses a stack that holds spaces or users already unless RESTORE_FORCE=true.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENV_FILE=$(realpath -m "${DEMOHUB_ENV_FILE:-$ROOT/.env}")
cd "$ROOT"
log() { echo "[restore] $*" >&2; }
# Keys the caller's environment sets win over the env file (as in `make up`): noted before
# stack-env.sh exports the env file's.
preset=" "
for key in DJANGO_SECRET_KEY PROXY_SHARED_SECRET SECRETS_ENCRYPTION_KEY METRICS_TOKEN; do
  if [ -n "${!key+set}" ]; then preset+="$key "; fi
done
# shellcheck source=scripts/stack-env.sh
. "$ROOT/scripts/stack-env.sh"

file=${FILE:-${1:-}}
[ -n "$file" ] || { log "usage: make restore FILE=backups/demohub-....tar[.gpg]"; exit 2; }
[ -r "$file" ] || { log "$file is not a readable file"; exit 2; }
passphrase=${BACKUP_PASSPHRASE:-$(setting BACKUP_PASSPHRASE '')}

running=" $(compose ps --services --filter status=running 2>/dev/null | tr '\n' ' ') "
for service in postgres redis web; do
  [[ $running == *" $service "* ]] || { log "the $service service of $project does not run: make up first"; exit 1; }
done

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$(head -c 512 "$file" | tail -c +258 | head -c 5)" = "ustar" ]; then
  tar -C "$work" -xf "$file" --no-same-owner
else
  [ -n "$passphrase" ] || { log "$file is not a plain archive: set BACKUP_PASSPHRASE to decrypt it"; exit 2; }
  gpg --batch --quiet --pinentry-mode loopback --passphrase-fd 3 --decrypt "$file" 3<<<"$passphrase" \
    | tar -C "$work" -xf - --no-same-owner \
    || { log "could not decrypt $file (wrong BACKUP_PASSPHRASE?)"; exit 2; }
fi
python3 - "$work/MANIFEST.json" <<'PY' || { log "$file is not a Demohub backup"; exit 2; }
import json, sys
m = json.load(open(sys.argv[1]))
assert m["format"] == "demohub-backup" and m["version"] == 1
print(f"[restore] archive of {m['project']} (instance {m['instance']}) made {m['created']}", file=sys.stderr)
PY
for part in db.dump data.tar.gz; do [ -s "$work/$part" ] || { log "the archive lacks $part"; exit 2; }; done

existing=$(compose exec -T postgres sh -c \
  '/usr/lib/postgresql/15/bin/psql -h "$SOCKET_DIR" -U postgres -tA -d "$POSTGRES_DB" -c "SELECT (SELECT count(*) FROM spaces_space) + (SELECT count(*) FROM auth_user)"' \
  2>/dev/null | tr -d '[:space:]' || true)
if [ "${existing:-0}" != 0 ] && [ "$(setting RESTORE_FORCE false)" != true ]; then
  log "$project holds $existing spaces and users already; restore into a fresh stack, or set RESTORE_FORCE=true"
  exit 1
fi

if [ -f "$work/env" ] && [ "$(setting RESTORE_ENV true)" = true ]; then
  (umask 077 && touch "$ENV_FILE")
  for key in DJANGO_SECRET_KEY PROXY_SHARED_SECRET SECRETS_ENCRYPTION_KEY METRICS_TOKEN; do
    line=$(grep -s "^$key=" "$work/env" | tail -1 || true)
    [ -n "$line" ] || continue
    grep -v "^$key=" "$ENV_FILE" >"$work/env.new" || true
    printf '%s\n' "$line" >>"$work/env.new"
    cat "$work/env.new" >"$ENV_FILE"
    if [[ $preset == *" $key "* ]] && [ "${!key}" != "${line#*=}" ]; then
      log "warning: $key is set in the environment and wins over the restored one; unset it and run make up"
    else
      unset "$key"
    fi
  done
  log "took the keys of the archived env file into $ENV_FILE"
fi

log "stopping the hub's services"
compose stop web worker-builds worker-lifecycle worker-starts worker-routes beat proxy >/dev/null 2>&1

log "restoring the database"
compose exec -T postgres sh -c \
  '/usr/lib/postgresql/15/bin/psql -h "$SOCKET_DIR" -U postgres -q -d postgres -c "DROP DATABASE IF EXISTS \"$POSTGRES_DB\" WITH (FORCE)" -c "CREATE DATABASE \"$POSTGRES_DB\""'
compose exec -T postgres sh -c \
  '/usr/lib/postgresql/15/bin/pg_restore -h "$SOCKET_DIR" -U postgres --no-owner --exit-on-error -d "$POSTGRES_DB"' \
  <"$work/db.dump"
compose exec -T redis redis-cli -s /run/demohub/redis.sock FLUSHALL >/dev/null

log "restoring snapshots, git repositories and sites"
volume=$(docker volume ls -q --filter "label=com.docker.compose.project=$project" \
  --filter "label=com.docker.compose.volume=data")
[ -n "$volume" ] || { log "no data volume of $project"; exit 1; }
docker run --rm -i --network none -v "$volume:/var/lib/demohub" --entrypoint sh "demohub/hub:$image_tag" \
  -c 'cd /var/lib/demohub && rm -rf snapshots repos sites && tar -xzf - --no-same-owner' <"$work/data.tar.gz"

log "starting the stack"
bash "$ROOT/scripts/up.sh"
compose exec -T web python manage.py restore_spaces
log "done: spaces that ran are rebuilding and will start (GET /api/spaces/<owner>/<name> shows their status)"

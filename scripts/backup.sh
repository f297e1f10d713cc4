#!/usr/bin/env bash
# `make backup`: one archive of this installation (README "Backups and restores").
#
#   1. pauses beat and the lifecycle worker (the only processes that delete snapshots:
#      housekeeping and space purges), so every snapshot the dump refers to stays on disk;
#   2. dumps Postgres (pg_dump, custom format): the record;
#   3. copies the uploaded revisions (DATA_DIR/snapshots), the git repositories (DATA_DIR/repos:
#      objects and refs are written atomically by git, and commits are never deleted) and the static
#      sites (DATA_DIR/sites);
#   4. resumes the paused services (their queued work waits in Redis meanwhile: nothing is lost);
#   5. adds the env file (.env: the secrets key, the Django key, the proxy key) unless
#      BACKUP_INCLUDE_ENV=false, and encrypts the whole with BACKUP_PASSPHRASE when it is set
#      (gpg, AES-256, authenticated).
#
# The archive is mode 0600 in BACKUP_DIR (default ./backups), or at BACKUP_FILE. Settings as
# `make up` reads them: the environment, then the env file (DEMOHUB_ENV_FILE, default .env).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENV_FILE=$(realpath -m "${DEMOHUB_ENV_FILE:-$ROOT/.env}")
cd "$ROOT"
log() { echo "[backup] $*" >&2; }
# shellcheck source=scripts/stack-env.sh
. "$ROOT/scripts/stack-env.sh"

include_env=$(setting BACKUP_INCLUDE_ENV true)
passphrase=${BACKUP_PASSPHRASE:-$(setting BACKUP_PASSPHRASE '')}
backup_dir=$(setting BACKUP_DIR "$ROOT/backups")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
name="demohub-$project-$stamp.tar"
[ -z "$passphrase" ] || name="$name.gpg"
out=$(realpath -m "${BACKUP_FILE:-$backup_dir/$name}")
if [ -n "$passphrase" ] && ! command -v gpg >/dev/null; then
  log "BACKUP_PASSPHRASE is set but gpg is not installed (apt-get install gpg)"; exit 1
fi
running=" $(compose ps --services --filter status=running 2>/dev/null | tr '\n' ' ') "
for service in postgres web; do
  [[ $running == *" $service "* ]] || { log "the $service service of $project does not run: make up first"; exit 1; }
done

umask 077
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
paused=()
resume() {
  if [ ${#paused[@]} -gt 0 ]; then compose start "${paused[@]}" >/dev/null 2>&1 || log "could not restart ${paused[*]}"; fi
  rm -rf "$work"
}
trap resume EXIT

for service in beat worker-lifecycle; do
  if [[ $running == *" $service "* ]]; then paused+=("$service"); fi
done
if [ ${#paused[@]} -gt 0 ]; then
  log "pausing ${paused[*]} (nothing deletes snapshots until the files are copied)"
  compose stop "${paused[@]}" >/dev/null 2>&1
fi

log "dumping Postgres"
compose exec -T postgres sh -c \
  '/usr/lib/postgresql/15/bin/pg_dump -h "$SOCKET_DIR" -U postgres --format=custom --no-owner "$POSTGRES_DB"' \
  >"$work/db.dump"
[ -s "$work/db.dump" ] || { log "pg_dump wrote nothing"; exit 1; }

log "copying snapshots, git repositories and sites"
compose exec -T web sh -c 'cd "$DATA_DIR" && tar -czf - --ignore-failed-read snapshots repos sites' >"$work/data.tar.gz"
tar -tzf "$work/data.tar.gz" >/dev/null

if [ ${#paused[@]} -gt 0 ]; then
  compose start "${paused[@]}" >/dev/null 2>&1
  log "resumed ${paused[*]}"
  paused=()
fi

parts=(MANIFEST.json db.dump data.tar.gz)
if [ "$include_env" = true ] && [ -f "$ENV_FILE" ]; then
  cp "$ENV_FILE" "$work/env"
  parts+=(env)
fi
python3 - "$work/MANIFEST.json" "$project" "$instance" "$stamp" "${parts[@]:1}" <<'PY'
import json, sys
path, project, instance, stamp, *parts = sys.argv[1:]
json.dump({"format": "demohub-backup", "version": 1, "created": stamp, "project": project,
           "instance": instance, "parts": parts}, open(path, "w"), indent=2)
PY

tmp_out="$out.partial"
if [ -n "$passphrase" ]; then
  tar -C "$work" -cf - "${parts[@]}" | gpg --batch --yes --quiet --pinentry-mode loopback --symmetric \
    --cipher-algo AES256 --passphrase-fd 3 --output "$tmp_out" 3<<<"$passphrase"
else
  tar -C "$work" -cf "$tmp_out" "${parts[@]}"
fi
chmod 600 "$tmp_out"
mv "$tmp_out" "$out"
log "wrote $out ($(du -h "$out" | cut -f1))"
echo "$out"

#!/bin/sh
# Start Postgres for Demohub: initdb into the data volume on first start (trust auth: only
# containers that mount the sockets volume can reach the socket), then serve on the unix socket
# only (listen_addresses='').
set -eu
PGBIN=/usr/lib/postgresql/15/bin
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" "$SOCKET_DIR"
# The sockets volume is shared with Redis and the hub processes (each with its own uid).
chmod 1777 "$SOCKET_DIR"
chown postgres:postgres "$PGDATA"
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "[postgres] initdb into $PGDATA, database $POSTGRES_DB" >&2
  as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "CREATE DATABASE \"$POSTGRES_DB\";" \
    | as_postgres "$PGBIN/postgres" --single -D "$PGDATA" -c listen_addresses='' postgres >/dev/null
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups "$PGBIN/postgres" -D "$PGDATA" \
  -c listen_addresses='' \
  -c unix_socket_directories="$SOCKET_DIR" \
  -c unix_socket_permissions=0777 \
  "$@"

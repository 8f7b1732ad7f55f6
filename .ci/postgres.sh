#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the API tests' PostgreSQL pass, if this machine can
# (Debian's postgresql package, installed here when missing and apt works).
#   .ci/postgres.sh start DIR   prints the DATABASE_URL on success; prints nothing and exits 0 when it
#                               cannot (the test then skips with a message). DIR holds its data and log.
#   .ci/postgres.sh stop DIR    stops that server (if running) and removes DIR.
#   .ci/postgres.sh pause DIR   stops it and keeps its data; `resume DIR` starts it again on its port
#                               (the fault tests: a database that goes away and comes back).
set -uo pipefail
ACTION=${1:?start or stop}
DIR=${2:?a directory for the server}
RUNAS=()
if [ "$(id -u)" = 0 ]; then RUNAS=(runuser -u postgres --); fi
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ "$ACTION" = stop ]; then
  if [ -n "$BIN" ] && [ -f "$DIR/data/postmaster.pid" ]; then
    "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1
  fi
  rm -rf "$DIR"
  exit 0
fi
if [ "$ACTION" = pause ]; then
  exec "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1
fi
if [ "$ACTION" = resume ]; then  # restart: the options of the last start (postmaster.opts), its port
  exec "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w restart >/dev/null 2>&1
fi
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if [ -z "$BIN" ]; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } >/dev/null 2>&1 || exit 0
  BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
if [ "$(id -u)" = 0 ]; then id postgres >/dev/null 2>&1 || exit 0; fi
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
"${RUNAS[@]}" "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null 2>&1 || exit 0
"${RUNAS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 || exit 0
echo "postgres://postgres@127.0.0.1:$PORT/postgres"

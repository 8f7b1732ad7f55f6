#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the API tests' PostgreSQL pass, if this machine
# can (Debian's postgresql package, installed here when missing and apt works). Prints the DATABASE_URL
# on success; prints nothing and exits 0 when it cannot (the test then skips with a message).
set -uo pipefail
PORT=${1:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } >/dev/null 2>&1 || exit 0
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
RUNAS=()
if [ "$(id -u)" = 0 ]; then id postgres >/dev/null 2>&1 || exit 0; RUNAS=(runuser -u postgres --); fi
DIR=$(mktemp -d /tmp/actiscope-pg.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
"${RUNAS[@]}" "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null 2>&1 || exit 0
"${RUNAS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 || exit 0
echo "postgres://postgres@127.0.0.1:$PORT/postgres"

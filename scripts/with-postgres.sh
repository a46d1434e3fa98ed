#!/usr/bin/env bash
# Runs a command beside a throw-away PostgreSQL: `bash scripts/with-postgres.sh cargo test ...`.
#
# The cluster tests of `scaling-with-redis` need a PostgreSQL server, as they need Redis. This
# script creates one in a temporary directory (`initdb`), starts it on a free loopback port
# (`pg_ctl`), runs the command with `TEST_POSTGRES_URL` pointing at it, then stops it and
# deletes the directory, whatever the command did. Each test creates a database of its own
# in it. PostgreSQL refuses to run as root: as root, the server runs as the user `postgres`
# (which Debian's `postgresql` package creates).
#
# Already have a server? Skip this script: `TEST_POSTGRES_URL=postgres://user:pw@host:port`,
# a role allowed to `CREATE DATABASE`.
set -euo pipefail

if [ -n "${TEST_POSTGRES_URL:-}" ]; then exec "$@"; fi

# Debian keeps the server's programs out of PATH, under /usr/lib/postgresql/<version>/bin.
bin_dir=
for dir in $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)") \
           $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then bin_dir=$dir; break; fi
done
if [ -z "$bin_dir" ]; then
  echo "error: PostgreSQL's initdb and pg_ctl not found (bash scripts/test.sh installs them)" >&2
  exit 1
fi

# As root, run the server as `postgres`; otherwise as ourselves.
as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d)
# mktemp makes a 0700 directory: the server's user must be able to reach its data inside.
chmod 755 "$dir"
data="$dir/data"
# A free port: one nobody answers on. (Taken between this check and the start, the start
# fails loudly; on a test machine that is rare.)
port=
for _ in $(seq 100); do
  candidate=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[ -n "$port" ] || { echo "error: no free port for PostgreSQL" >&2; exit 1; }

stop() {
  as_server_user "$bin_dir/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
# Trust on loopback only: a throw-away server for tests, reachable from this machine alone.
as_server_user "$bin_dir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
  --no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
# fsync off: the data is thrown away; a test run must not wait for the disk on every commit.
# A measurement sets POSTGRES_FSYNC=on, so that a commit costs what it costs in production
# (and what step 5's SQLite, synchronous=FULL, pays).
# Connections: several nodes per test, a few tests at once, 16 connections per node at most.
as_server_user "$bin_dir/pg_ctl" -D "$data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${POSTGRES_FSYNC:-off} -c max_connections=400" \
  start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port"
echo "==> a throw-away PostgreSQL at $TEST_POSTGRES_URL"
"$@"

#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis for the test suite, on loopback only.
#
#   .ci/services.sh start   install (apt) what is missing, start both, print the settings to export
#   .ci/services.sh env     print the settings again
#   .ci/services.sh stop    stop both and remove their directory
#
# Everything lives in one directory ($LOFT_SERVICES_DIR, default /tmp/loft-services): the PostgreSQL
# cluster (made by initdb, fsync off: its data is thrown away), Redis's pid file, and `env`, the lines
# start prints. Ports are free ones picked at start, so several runs can share a box. Redis has 1024
# databases: each pytest-xdist worker empties and uses its own (tests/stack_support.py).
set -euo pipefail

DIR="${LOFT_SERVICES_DIR:-/tmp/loft-services}"
PG_USER_NAME=loft
PG_DATABASE=loft_test

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)"
}

install_missing() {
  local packages=()
  [ -n "$(pg_bindir)" ] || packages+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
  [ ${#packages[@]} -eq 0 ] && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "services.sh: ${packages[*]} missing and cannot be installed here (needs root and apt-get)" >&2
    exit 1
  fi
  echo "services.sh: installing ${packages[*]}" >&2
  # The packages' own system-wide services must not start: only the throwaway ones below run.
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null) || { [ -n "$made_policy" ] && rm -f "$policy"; exit 1; }
  [ -n "$made_policy" ] && rm -f "$policy"
  return 0
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user (or nobody).
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then
    local owner=postgres
    id -u postgres >/dev/null 2>&1 || owner=nobody
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

start() {
  if [ -f "$DIR/env" ]; then
    echo "services.sh: already started in $DIR (stop it first)" >&2
    exit 1
  fi
  install_missing
  local bindir pg_port redis_port
  bindir="$(pg_bindir)"
  mkdir -p "$DIR/pg"
  chmod 755 "$DIR"
  if [ "$(id -u)" = 0 ]; then
    if id -u postgres >/dev/null 2>&1; then chown postgres "$DIR/pg"; else chown nobody "$DIR/pg"; fi
  fi
  as_pg_owner "$bindir/initdb" -D "$DIR/pg/data" -U "$PG_USER_NAME" --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 >"$DIR/pg/initdb.log" 2>&1 || { cat "$DIR/pg/initdb.log" >&2; exit 1; }
  pg_port="$(free_port)"
  # Speed over durability: the cluster is deleted at stop. The socket stays in the cluster's directory.
  as_pg_owner "$bindir/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$DIR/pg \
     -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
     -c shared_buffers=128MB -c max_locks_per_transaction=256" >/dev/null \
    || { cat "$DIR/pg/server.log" >&2; exit 1; }
  "$bindir/createdb" -h 127.0.0.1 -p "$pg_port" -U "$PG_USER_NAME" "$PG_DATABASE"

  redis_port="$(free_port)"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --databases 1024 --daemonize yes \
    --dir "$DIR" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" >/dev/null
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null || { cat "$DIR/redis.log" >&2; exit 1; }

  cat > "$DIR/env" <<ENV
LOFT_TEST_DATABASE_URL=postgresql://$PG_USER_NAME@127.0.0.1:$pg_port/$PG_DATABASE
LOFT_TEST_QUEUE_URL=redis://127.0.0.1:$redis_port/0
ENV
  echo "$bindir" > "$DIR/pg/bindir"
  cat "$DIR/env"
}

stop() {
  [ -d "$DIR" ] || return 0
  if [ -f "$DIR/pg/data/postmaster.pid" ]; then
    as_pg_owner "$(cat "$DIR/pg/bindir" 2>/dev/null || pg_bindir)/pg_ctl" -D "$DIR/pg/data" -m immediate \
      -w stop >/dev/null 2>&1 || true
  fi
  if [ -f "$DIR/redis.pid" ]; then
    kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$DIR/redis.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  env) cat "$DIR/env" ;;
  stop) stop ;;
  *) echo "usage: $0 start|env|stop   (directory: \$LOFT_SERVICES_DIR, default /tmp/loft-services)" >&2; exit 2 ;;
esac

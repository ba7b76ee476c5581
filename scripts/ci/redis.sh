#!/usr/bin/env bash
# Source this: a private redis-server for tests (SCALE-OUT.md "How to prove it here").
#   source scripts/ci/redis.sh; redis_start   # exports TRIPWIRE_REDIS_URL, _PORT, _PID
#   ...                                       # stopped automatically on EXIT
# Installs Debian's redis-server (and hiredis for the C adapter) when missing. The server
# listens on 127.0.0.1 on a free port, keeps nothing on disk, and dies with the shell.

redis_install() {
  if ! command -v redis-server >/dev/null 2>&1 || [ ! -f /usr/include/hiredis/hiredis.h ]; then
    local SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends redis-server libhiredis-dev >/dev/null
  fi
}

redis_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

redis_start() {
  redis_install
  if [ -n "${TRIPWIRE_REDIS_PID:-}" ] && kill -0 "$TRIPWIRE_REDIS_PID" 2>/dev/null; then
    return 0
  fi
  TRIPWIRE_REDIS_DIR=$(mktemp -d)
  TRIPWIRE_REDIS_PORT=$(redis_free_port)
  redis-server --port "$TRIPWIRE_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$TRIPWIRE_REDIS_DIR" --daemonize no --loglevel warning \
    >"$TRIPWIRE_REDIS_DIR/log" 2>&1 &
  TRIPWIRE_REDIS_PID=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$TRIPWIRE_REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$TRIPWIRE_REDIS_PORT" ping >/dev/null \
    || { cat "$TRIPWIRE_REDIS_DIR/log" >&2; echo "redis: did not start" >&2; return 1; }
  export TRIPWIRE_REDIS_PORT TRIPWIRE_REDIS_PID TRIPWIRE_REDIS_DIR
  export TRIPWIRE_REDIS_URL="redis://127.0.0.1:$TRIPWIRE_REDIS_PORT/"
  trap redis_stop EXIT
}

redis_stop() {
  if [ -n "${TRIPWIRE_REDIS_PID:-}" ]; then
    kill -CONT "$TRIPWIRE_REDIS_PID" 2>/dev/null || true
    kill "$TRIPWIRE_REDIS_PID" 2>/dev/null || true
    wait "$TRIPWIRE_REDIS_PID" 2>/dev/null || true
  fi
  [ -n "${TRIPWIRE_REDIS_DIR:-}" ] && rm -rf "$TRIPWIRE_REDIS_DIR"
  TRIPWIRE_REDIS_PID=""
}

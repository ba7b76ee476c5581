#!/usr/bin/env bash
# C API benchmark: ns per protected call through one shared handle (breaker acquire+record,
# limiter check, a whole pipeline call, the blocking execute), from 1 thread and from 2 threads
# contending. Prints figures (not a test). Usage: bench-c.sh [calls]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/build-c.sh >/dev/null
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$TARGET/c-tests"
gcc -std=c11 -O2 -Wall -Wextra -Werror -Ibindings-c/include bindings-c/bench/bench.c \
  "$TARGET/release/libtripwire.a" -lpthread -ldl -lm -o "$TARGET/c-tests/bench"
"$TARGET/c-tests/bench" "${1:-1000000}"

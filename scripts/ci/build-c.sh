#!/usr/bin/env bash
# `make c`: target/release/libtripwire.{a,so} and bindings-c/include/tripwire.h (cbindgen, run by
# the crate's build.rs); target/fleet/worker-c, the fleet worker.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh
cargo build -p tripwire-c --release
T="${CARGO_TARGET_DIR:-target}/release"
ls -l "$T/libtripwire.a" "$T/libtripwire.so" bindings-c/include/tripwire.h bindings-c/include/tripwire.hpp

# The C fleet worker (tests/fleet/README.md) over hiredis, through the adapter users compile
# themselves (libtripwire links no Redis client): hiredis and cJSON are installed when missing.
# shellcheck source=scripts/ci/redis.sh
source scripts/ci/redis.sh
redis_install
if [ ! -f /usr/include/cjson/cJSON.h ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libcjson-dev >/dev/null
fi
FLEET="${CARGO_TARGET_DIR:-target}/fleet"
mkdir -p "$FLEET"
gcc -std=c11 -Wall -Wextra -Werror -O2 -Ibindings-c/include -Ibindings-c/adapters \
  tests/fleet/worker.c bindings-c/adapters/tw_hiredis.c "$T/libtripwire.a" \
  -lcjson -lhiredis -lpthread -ldl -lm -o "$FLEET/worker-c"
ls -l "$FLEET/worker-c"

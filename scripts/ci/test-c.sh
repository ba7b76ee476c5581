#!/usr/bin/env bash
# The C binding's tests: the generated header is up to date; API tests, the conformance vectors,
# an 8-thread stress test and the C++ example, built with -Wall -Wextra -Werror and run against
# the static and the shared library; the same under ASan+UBSan and under valgrind (zero leaks,
# zero errors); the stress test under TSan; `make install` into a temporary prefix and the
# README's quick start built with pkg-config.
# The shared rate limit runs against a private redis-server (scripts/ci/redis.sh) through the
# hiredis adapter (bindings-c/adapters): the vectors replay sharedRateLimit and gcra vectors on
# the real script, store.c tests pipelines, the step protocol, the raw shared limiter and the
# store down (closed port, SIGSTOP), store.cpp the C++ layer; the fleet quick start
# (examples/c/fleet.c) and a 1 s run of the fleet worker (tests/fleet/worker.c).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bash scripts/ci/setup-rust.sh

# --- tools (idempotent; Debian 12) ---------------------------------------------------------
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v valgrind >/dev/null || need+=(valgrind)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -f /usr/include/cjson/cJSON.h ] || need+=(libcjson-dev)
ls /usr/lib/gcc/x86_64-linux-gnu/*/libasan.so >/dev/null 2>&1 || need+=("libasan8")
ls /usr/lib/gcc/x86_64-linux-gnu/*/libtsan.so >/dev/null 2>&1 || need+=("libtsan2")
if [ ${#need[@]} -gt 0 ]; then
  echo "test-c: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
REL="$TARGET/release"
OUT="$TARGET/c-tests"
mkdir -p "$OUT"
INC="$ROOT/bindings-c/include"
T="$ROOT/bindings-c/tests"
passed=0
failed=0
run() { # run NAME CMD...: a test program; its own output is shown
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "test-c: FAILED: $name (exit $?)"
    failed=$((failed + 1))
  fi
}

# --- build, and the committed header must be what cbindgen generates ----------------------
bash scripts/ci/build-c.sh >/dev/null
# A private redis-server (and hiredis) for the shared rate limit; stopped on exit.
# shellcheck source=scripts/ci/redis.sh
source scripts/ci/redis.sh
redis_start
export TRIPWIRE_REQUIRE_REDIS=1
if git rev-parse --git-dir >/dev/null 2>&1; then
  if ! git diff --exit-code -- bindings-c/include/tripwire.h; then
    echo "test-c: bindings-c/include/tripwire.h is out of date: rebuild (make c) and commit it" >&2
    exit 1
  fi
fi
echo "test-c: header up to date; libtripwire.a $(du -k "$REL/libtripwire.a" | cut -f1) KB, libtripwire.so $(du -k "$REL/libtripwire.so" | cut -f1) KB"

CFLAGS=(-std=c11 -Wall -Wextra -Werror -g -I"$INC")
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -g -I"$INC")
SYSLIBS=(-lpthread -ldl -lm)
STATIC="$REL/libtripwire.a"
# The hiredis adapter is compiled into the programs that use it, as users do.
ADAPTER=(-I"$ROOT/bindings-c/adapters" "$ROOT/bindings-c/adapters/tw_hiredis.c")
flushall() { redis-cli -p "$TRIPWIRE_REDIS_PORT" FLUSHALL >/dev/null; }

# --- plain builds: static and shared ------------------------------------------------------
gcc "${CFLAGS[@]}" -O1 "$T/api.c" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/api"
# The .so carries the soname libtripwire.so.0 (what `make install` links to it).
mkdir -p "$OUT/shlib"
ln -sf "$REL/libtripwire.so" "$OUT/shlib/libtripwire.so.0"
ln -sf "$REL/libtripwire.so" "$OUT/shlib/libtripwire.so"
gcc "${CFLAGS[@]}" -O1 "$T/api.c" -L"$OUT/shlib" -ltripwire -Wl,-rpath,"$OUT/shlib" -o "$OUT/api-shared"
gcc "${CFLAGS[@]}" -O1 "$T/vectors.c" "${ADAPTER[@]}" "$STATIC" -lcjson -lhiredis "${SYSLIBS[@]}" -o "$OUT/vectors"
gcc "${CFLAGS[@]}" -O1 "$T/stress.c" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/stress"
g++ "${CXXFLAGS[@]}" -O1 "$T/example.cpp" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/example"
gcc "${CFLAGS[@]}" -O1 "$T/store.c" "${ADAPTER[@]}" "$STATIC" -lhiredis "${SYSLIBS[@]}" -o "$OUT/store"
g++ "${CXXFLAGS[@]}" -O1 "$T/store.cpp" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/store-cpp"
run api "$OUT/api"
run api-shared "$OUT/api-shared"
run vectors "$OUT/vectors" "$ROOT/tests/vectors"
run stress "$OUT/stress"
run example.cpp "$OUT/example"
run store "$OUT/store"
run store.cpp "$OUT/store-cpp"

# --- ASan + UBSan (LeakSanitizer included), everything -------------------------------------
SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
gcc "${CFLAGS[@]}" "${SAN[@]}" "$T/api.c" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/api-asan"
gcc "${CFLAGS[@]}" "${SAN[@]}" "$T/vectors.c" "${ADAPTER[@]}" "$STATIC" -lcjson -lhiredis "${SYSLIBS[@]}" -o "$OUT/vectors-asan"
gcc "${CFLAGS[@]}" "${SAN[@]}" "$T/store.c" "${ADAPTER[@]}" "$STATIC" -lhiredis "${SYSLIBS[@]}" -o "$OUT/store-asan"
g++ "${CXXFLAGS[@]}" "${SAN[@]}" "$T/store.cpp" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/store-cpp-asan"
gcc "${CFLAGS[@]}" "${SAN[@]}" "$T/stress.c" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/stress-asan"
g++ "${CXXFLAGS[@]}" "${SAN[@]}" "$T/example.cpp" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/example-asan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run api-asan "$OUT/api-asan"
run vectors-asan "$OUT/vectors-asan" "$ROOT/tests/vectors"
run stress-asan "$OUT/stress-asan"
run example-asan "$OUT/example-asan"
run store-asan "$OUT/store-asan"
run store.cpp-asan "$OUT/store-cpp-asan"
unset ASAN_OPTIONS UBSAN_OPTIONS

# --- valgrind: zero errors, zero leaks of any kind -----------------------------------------
VG=(valgrind -q --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all --error-exitcode=99)
run api-valgrind "${VG[@]}" "$OUT/api"
run api-shared-valgrind "${VG[@]}" "$OUT/api-shared"
run vectors-valgrind "${VG[@]}" "$OUT/vectors" "$ROOT/tests/vectors"
run stress-valgrind "${VG[@]}" "$OUT/stress"
run example-valgrind "${VG[@]}" "$OUT/example"
# Latency bounds widen under valgrind (each call is many times slower).
TW_TEST_SLACK_MS=400 run store-valgrind "${VG[@]}" "$OUT/store"
run store.cpp-valgrind "${VG[@]}" "$OUT/store-cpp"

# --- TSan: the stress test, with the Rust library itself built with -Zsanitizer=thread -----
# Rust's std Mutex is futex-based and invisible to an uninstrumented TSan view, so the library
# is rebuilt instrumented (nightly + -Zbuild-std, cached in target/tsan). gcc 12's libtsan2 lacks
# the __tsan_mem* entry points newer LLVM emits: tsan_shim.c routes them to libc.
TSAN_DIR="$TARGET/tsan"
tsan_lib=""
if rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
  rustup component add rust-src --toolchain nightly >/dev/null 2>&1 || true
  if RUSTFLAGS="-Zsanitizer=thread" CARGO_TARGET_DIR="$TSAN_DIR" \
    cargo +nightly build -q -Zbuild-std --target x86_64-unknown-linux-gnu -p tripwire-c 2>"$OUT/tsan-build.log"; then
    tsan_lib="$TSAN_DIR/x86_64-unknown-linux-gnu/debug/libtripwire.a"
  else
    echo "test-c: the instrumented TSan build failed (see $OUT/tsan-build.log)"
  fi
fi
git checkout -q -- bindings-c/include/tripwire.h 2>/dev/null || true
if [ -n "$tsan_lib" ]; then
  gcc "${CFLAGS[@]}" -O1 -fsanitize=thread -fno-builtin "$T/stress.c" "$T/tsan_shim.c" "$tsan_lib" "${SYSLIBS[@]}" -o "$OUT/stress-tsan"
  TSAN_OPTIONS="halt_on_error=1:exitcode=66" run stress-tsan "$OUT/stress-tsan"
  # Threads through one pipeline and one adapter (store.c); hiredis itself is not instrumented.
  gcc "${CFLAGS[@]}" -O1 -fsanitize=thread -fno-builtin "$T/store.c" "${ADAPTER[@]}" "$T/tsan_shim.c" "$tsan_lib" -lhiredis "${SYSLIBS[@]}" -o "$OUT/store-tsan"
  TSAN_OPTIONS="halt_on_error=1:exitcode=66" TW_TEST_SLACK_MS=100 run store-tsan "$OUT/store-tsan"
else
  echo "test-c: FAILED: no nightly toolchain with rust-src for the instrumented TSan build"
  failed=$((failed + 1))
fi

# --- the README's quick start is the tested file -----------------------------------------
if diff <(sed -n '/<!-- quickstart.c begin -->/,/<!-- quickstart.c end -->/p' bindings-c/README.md | sed '1,2d;$d' | sed '$d') "$T/quickstart.c" >/dev/null; then
  passed=$((passed + 1))
else
  echo "test-c: FAILED: the quick start in bindings-c/README.md differs from bindings-c/tests/quickstart.c"
  failed=$((failed + 1))
fi

# --- the fleet quick start (two pipelines, one key, one Redis) and the fleet worker ---------
gcc "${CFLAGS[@]}" -O1 "$ROOT/examples/c/fleet.c" "${ADAPTER[@]}" "$STATIC" -lhiredis "${SYSLIBS[@]}" -o "$OUT/fleet"
flushall
# shellcheck disable=SC2016
run fleet-example sh -c 'out=$("$1") && echo "$out" && [ "$out" = "admitted: instance A 3, instance B 2, together 5 of 10" ]' \
  fleet-example "$OUT/fleet"
flushall
redis-cli -p "$TRIPWIRE_REDIS_PORT" SCRIPT FLUSH >/dev/null
FLEET_OUT="$OUT/fleet-worker.out"
rm -f "$FLEET_OUT"
# shellcheck disable=SC2016
run fleet-worker sh -c '
  summary=$("$1" --url "$TRIPWIRE_REDIS_URL" --seconds 1 --callers 2 --out "$2" --seed 1 \
    --config "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"200/s\", \"burst\": 20}, \"store\": {\"key\": \"fleet\"}, \"retry\": {}}") || exit 1
  echo "$summary"
  echo "$summary" | grep -Eq "^\{\"lang\": \"c\", \"decisions\": [0-9]+, \"admitted\": [0-9]+, \"sent\": [0-9]+, \"evals\": [12], \"timeouts\": 0, \"unavailable\": 0\}$" || exit 1
  lines=$(wc -l <"$2")
  decisions=$(echo "$summary" | sed "s/.*\"decisions\": \([0-9]*\).*/\1/")
  admitted=$(echo "$summary" | sed "s/.*\"admitted\": \([0-9]*\).*/\1/")
  [ "$lines" -eq "$decisions" ] || exit 1
  # One line per decision; over 1 s at 200/s, burst 20, at most 20 + 200 (and a few for the last decisions past 1 s).
  grep -Evq "^(store [01] [0-9]+ [0-9]+|(cache|fallback) [01] 0 0) [0-9]+$" "$2" && exit 1
  [ "$admitted" -le 225 ] && [ "$admitted" -ge 150 ]
' fleet-worker "$TARGET/fleet/worker-c" "$FLEET_OUT"

# --- make install into a temporary prefix; the quick start via pkg-config ------------------
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"; redis_stop' EXIT
bash scripts/ci/install-c.sh "$PREFIX" >/dev/null
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror "$T/quickstart.c" $(pkg-config --cflags --libs tripwire) -Wl,-rpath,"$PREFIX/lib" -o "$OUT/quickstart"
run quickstart-pkg-config sh -c "'$OUT/quickstart' | grep -qx 'price: 42.00' && ldd '$OUT/quickstart' | grep -q '$PREFIX/lib/libtripwire.so.0'"
unset PKG_CONFIG_PATH

echo "test-c: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# The C binding's tests: the generated header is up to date; API tests, the conformance vectors,
# an 8-thread stress test and the C++ example, built with -Wall -Wextra -Werror and run against
# the static and the shared library; the same under ASan+UBSan and under valgrind (zero leaks,
# zero errors); the stress test under TSan; `make install` into a temporary prefix and the
# README's quick start built with pkg-config.
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

# --- plain builds: static and shared ------------------------------------------------------
gcc "${CFLAGS[@]}" -O1 "$T/api.c" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/api"
# The .so carries the soname libtripwire.so.0 (what `make install` links to it).
mkdir -p "$OUT/shlib"
ln -sf "$REL/libtripwire.so" "$OUT/shlib/libtripwire.so.0"
ln -sf "$REL/libtripwire.so" "$OUT/shlib/libtripwire.so"
gcc "${CFLAGS[@]}" -O1 "$T/api.c" -L"$OUT/shlib" -ltripwire -Wl,-rpath,"$OUT/shlib" -o "$OUT/api-shared"
gcc "${CFLAGS[@]}" -O1 "$T/vectors.c" "$STATIC" -lcjson "${SYSLIBS[@]}" -o "$OUT/vectors"
gcc "${CFLAGS[@]}" -O1 "$T/stress.c" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/stress"
g++ "${CXXFLAGS[@]}" -O1 "$T/example.cpp" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/example"
run api "$OUT/api"
run api-shared "$OUT/api-shared"
run vectors "$OUT/vectors" "$ROOT/tests/vectors"
run stress "$OUT/stress"
run example.cpp "$OUT/example"

# --- ASan + UBSan (LeakSanitizer included), everything -------------------------------------
SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
gcc "${CFLAGS[@]}" "${SAN[@]}" "$T/api.c" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/api-asan"
gcc "${CFLAGS[@]}" "${SAN[@]}" "$T/vectors.c" "$STATIC" -lcjson "${SYSLIBS[@]}" -o "$OUT/vectors-asan"
gcc "${CFLAGS[@]}" "${SAN[@]}" "$T/stress.c" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/stress-asan"
g++ "${CXXFLAGS[@]}" "${SAN[@]}" "$T/example.cpp" "$STATIC" "${SYSLIBS[@]}" -o "$OUT/example-asan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run api-asan "$OUT/api-asan"
run vectors-asan "$OUT/vectors-asan" "$ROOT/tests/vectors"
run stress-asan "$OUT/stress-asan"
run example-asan "$OUT/example-asan"
unset ASAN_OPTIONS UBSAN_OPTIONS

# --- valgrind: zero errors, zero leaks of any kind -----------------------------------------
VG=(valgrind -q --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all --error-exitcode=99)
run api-valgrind "${VG[@]}" "$OUT/api"
run api-shared-valgrind "${VG[@]}" "$OUT/api-shared"
run vectors-valgrind "${VG[@]}" "$OUT/vectors" "$ROOT/tests/vectors"
run stress-valgrind "${VG[@]}" "$OUT/stress"
run example-valgrind "${VG[@]}" "$OUT/example"

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

# --- make install into a temporary prefix; the quick start via pkg-config ------------------
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"' EXIT
bash scripts/ci/install-c.sh "$PREFIX" >/dev/null
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror "$T/quickstart.c" $(pkg-config --cflags --libs tripwire) -Wl,-rpath,"$PREFIX/lib" -o "$OUT/quickstart"
run quickstart-pkg-config sh -c "'$OUT/quickstart' | grep -qx 'price: 42.00' && ldd '$OUT/quickstart' | grep -q '$PREFIX/lib/libtripwire.so.0'"
unset PKG_CONFIG_PATH

echo "test-c: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

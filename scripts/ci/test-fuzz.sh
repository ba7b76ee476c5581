#!/usr/bin/env bash
# Fuzz smoke for the Rust core and its C API: build every cargo-fuzz target (core/fuzz) and run
# each for TRIPWIRE_FUZZ_SECONDS (default 30) seconds from the committed seeds plus the local
# corpus. A crash fails the script and leaves the input in core/fuzz/artifacts/<target>/;
# reproduce with `cd core && cargo +nightly fuzz run <target> <that file>`. About 2.5 minutes
# warm.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_PER_TARGET="${TRIPWIRE_FUZZ_SECONDS:-30}"
CARGO_FUZZ_VERSION="0.13.2"

# libFuzzer and the sanitizer flags need nightly (TOOLCHAIN.md §7); it ships on the dev image.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cd core
cargo +nightly fuzz build

summary=()
for target in config policies pipeline store c_api; do
  mkdir -p "fuzz/corpus/$target"
  corpora=("fuzz/corpus/$target")
  [ -d "fuzz/seeds/$target" ] && corpora+=("fuzz/seeds/$target")
  flags=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  [ -f "fuzz/$target.dict" ] && flags+=(-dict="fuzz/$target.dict")
  log="$(mktemp)"
  echo "fuzz: $target for ${SECONDS_PER_TARGET}s"
  if ! cargo +nightly fuzz run "$target" "${corpora[@]}" -- "${flags[@]}" >"$log" 2>&1; then
    # The panic message, then the input's Debug form and the reproduction command.
    grep -m 3 -A 4 'panicked at' "$log" >&2 || true
    grep -v -e '^#' -e 'Uses:' "$log" | sed -n '/^Failing input:/,$p' | head -n 120 >&2
    grep -q '^Failing input:' "$log" || tail -n 40 "$log" >&2
    rm -f "$log"
    echo "fuzz: $target FAILED" >&2
    exit 1
  fi
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  rm -f "$log"
  summary+=("$(printf '%-10s %10s execs %7s/s' "$target" "${execs:-?}" "${rate:-?}")")
done
printf 'fuzz: %s\n' "${summary[@]}"
echo "fuzz: every target ran clean"

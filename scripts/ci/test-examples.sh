#!/usr/bin/env bash
# The JS, Python and C quick starts (examples/js, examples/python, examples/c), each run to
# completion against a flaky HTTP service it embeds, with examples/policies/default.json. Each
# example checks its own story and exits non-zero when it did not happen (the breaker never
# opened, the fallback never answered, the breaker never closed again); this script also checks
# the lines a reader sees, that Python prints no warning (-X dev -W error) and Node no
# deprecation (--pending-deprecation --throw-deprecation), mypy --strict, and the run time.
# (The Rust quick start runs in test-cli.sh.)
#
# In `make test` it runs after test-js.sh, test-python.sh and test-c.sh, which leave
# bindings-js/dist built, tripwire installed in .venv and target/release/libtripwire.a built.
# Standalone it builds what is missing with the same scripts: build-js.sh (the npm package),
# build-python.sh (the wheel, installed into .venv) and build-c.sh.
#
#   bash scripts/ci/test-examples.sh              # all three
#   bash scripts/ci/test-examples.sh python       # one
#   bash scripts/ci/test-examples.sh prepare c    # only build what the C example needs (demo.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
C_EXAMPLE="$TARGET/examples/quickstart-c"

prepare_js() {
  if [ ! -f bindings-js/dist/node/index.mjs ]; then
    echo "test-examples: bindings-js/dist is missing: building the npm package (scripts/ci/build-js.sh)"
    bash scripts/ci/build-js.sh
  fi
  # examples/js depends on the package as a user's project would ("file:../../bindings-js"):
  # npm links it into examples/js/node_modules (git-ignored; no lockfile for a local link).
  if [ ! -f examples/js/node_modules/tripwire/package.json ]; then
    (cd examples/js && npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

prepare_python() {
  if [ -x .venv/bin/python ] && .venv/bin/python -c 'import tripwire' >/dev/null 2>&1; then
    return
  fi
  echo "test-examples: tripwire is not installed in .venv: building it (scripts/ci/build-python.sh)"
  bash scripts/ci/build-python.sh
  .venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps \
    "$ROOT"/target/wheels/tripwire-*.whl
}

prepare_c() {
  # A no-op for cargo when test-c.sh (or `make c`) already built the library; errors still show.
  CARGO_TERM_QUIET=true bash scripts/ci/build-c.sh >/dev/null
  local need=()
  command -v gcc >/dev/null || need+=(gcc)
  command -v make >/dev/null || need+=(make)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  make --no-print-directory -C examples/c TARGET="$TARGET" OUT="$TARGET/examples" CC=gcc
}

if [ "${1:-}" = prepare ]; then
  shift
  for lang in "$@"; do "prepare_$lang"; done
  exit 0
fi

passed=0
failed=0
fail() {
  echo "test-examples: FAILED: $*"
  failed=$((failed + 1))
}

# run NAME CMD...: runs the example (killed after 30 s), shows its output, checks it.
run() {
  local name=$1
  shift
  local out="$TARGET/examples/$name.out" err="$TARGET/examples/$name.err"
  mkdir -p "$TARGET/examples"
  echo "==> $name: $*"
  local start end status=0
  start=$(date +%s%N)
  timeout 30 "$@" >"$out" 2>"$err" || status=$?
  end=$(date +%s%N)
  cat "$out"
  local ms=$(((end - start) / 1000000))
  echo "--- $name: exit $status in $((ms / 1000)).$(printf %03d $((ms % 1000))) s"
  local before=$failed
  if [ "$status" -eq 124 ]; then
    fail "$name did not end by itself within 30 s"
  elif [ "$status" -ne 0 ]; then
    fail "$name exited with $status"
  fi
  if [ -s "$err" ]; then
    fail "$name wrote to stderr:"
    cat "$err"
  fi
  [ "$ms" -le 12000 ] || fail "$name took ${ms} ms (more than 12 s)"
  # The story, as printed from the pipeline's events and the calls' results.
  local line
  for line in \
    'calls 1-[0-9]+  ok, price=42 from the service at the first attempt' \
    'retry: attempt 2 in [0-9]+ ms' \
    'retry: attempt 3 in [0-9]+ ms' \
    'fallback  price=40 from the cache \(retriesExhausted\)' \
    '── breaker closed → open' \
    'fallback  price=40 from the cache \(circuitOpen, retry after [0-9]+ ms\)  \(0 ms\)' \
    '── breaker open → halfOpen' \
    '── breaker halfOpen → closed' \
    'the breaker opened [1-9][0-9]* time\(s\) and closed again [1-9][0-9]* time\(s\)'; do
    grep -Eq -- "$line" "$out" || fail "$name: no line matching: $line"
  done
  # After the recovery, the service answers again (the last line before the summary).
  grep -v '^$' "$out" | tail -2 | head -1 | grep -q 'ok, price=42 from the service' \
    || fail "$name: the last calls were not answered by the service"
  if [ "$failed" -eq "$before" ]; then passed=$((passed + 1)); fi
  echo
}

langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(js python c)
for lang in "${langs[@]}"; do
  case "$lang" in
    js)
      prepare_js
      run js node --pending-deprecation --throw-deprecation examples/js/quickstart.mjs
      ;;
    python)
      prepare_python
      run python .venv/bin/python -X dev -W error examples/python/quickstart.py
      if [ -x .venv/bin/mypy ]; then
        if .venv/bin/mypy --strict --no-incremental examples/python/quickstart.py; then
          passed=$((passed + 1))
        else
          fail "mypy --strict examples/python/quickstart.py"
        fi
      else
        echo "test-examples: no mypy in .venv (test-python.sh installs it): type check skipped"
      fi
      ;;
    c)
      prepare_c
      run c "$C_EXAMPLE"
      ;;
    *)
      echo "test-examples: unknown example '$lang' (js, python, c)" >&2
      exit 2
      ;;
  esac
done

echo "test-examples: $passed passed, $failed failed checks"
[ "$failed" -eq 0 ]

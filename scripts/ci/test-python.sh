#!/usr/bin/env bash
# The Python binding: build the extension into the repo's .venv (maturin develop --release),
# then pytest with warnings as errors (the idiomatic API, every conformance vector, threads
# and asyncio at scale, bad input, health, the quick start, the stress runs of
# tests/test_stress.py: 8 threads x TRIPWIRE_STRESS_N calls, default 10^5, and
# TRIPWIRE_STRESS_TASKS asyncio tasks, default 10^4, printing their wall time and calls/s, the
# shared rate limit through a private redis-server: vectors on the real script, outages, the
# fleet worker), the fleet example (examples/python/fleet.py) on that server, and mypy --strict
# over the package, the examples and the fleet worker. Installs what it lacks, idempotently
# (redis-py is a test dependency only: the package imports it lazily).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bash scripts/ci/setup-rust.sh

MATURIN_VERSION=1.16.0
PYTEST_VERSION=9.2.0
MYPY_VERSION=2.4.1
REDIS_PY_VERSION=8.1.0

# Debian's python3 needs python3-venv for `python3 -m venv` (TOOLCHAIN P10/P13).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
want() { .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; }
missing=()
want maturin "$MATURIN_VERSION" || missing+=("maturin==$MATURIN_VERSION")
want pytest "$PYTEST_VERSION" || missing+=("pytest==$PYTEST_VERSION")
want mypy "$MYPY_VERSION" || missing+=("mypy==$MYPY_VERSION")
want redis "$REDIS_PY_VERSION" || missing+=("redis==$REDIS_PY_VERSION")
if [ ${#missing[@]} -gt 0 ]; then
  .venv/bin/pip install -q --disable-pip-version-check "${missing[@]}"
fi

# maturin develop needs a virtualenv (TOOLCHAIN P7); no `extension-module` feature (P8).
(cd bindings-python && VIRTUAL_ENV="$ROOT/.venv" PATH="$ROOT/.venv/bin:$PATH" \
  "$ROOT/.venv/bin/maturin" develop --release --quiet)

# A private redis-server for the shared rate limit (stopped on exit); tests needing it fail
# rather than skip.
source scripts/ci/redis.sh
redis_start
export TRIPWIRE_REQUIRE_REDIS=1

set +e
(cd bindings-python && "$ROOT/.venv/bin/python" -m pytest -q -W error -p no:cacheprovider tests)
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test-python: pytest collected no tests" >&2
  exit 1
elif [ "$status" -ne 0 ]; then
  exit "$status"
fi

# The README's fleet quick start: two instances share one burst on the private server.
fleet=$("$ROOT/.venv/bin/python" -X dev -W error examples/python/fleet.py)
if [ "$fleet" != "admitted 5 + 5 = 10 of 20 calls" ]; then
  echo "test-python: examples/python/fleet.py printed: $fleet" >&2
  exit 1
fi

(cd bindings-python && "$ROOT/.venv/bin/mypy" --strict --no-incremental python/tripwire examples/quickstart.py \
  ../examples/python/fleet.py ../tests/fleet/worker.py)
echo "test-python: passed"

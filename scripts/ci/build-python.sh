#!/usr/bin/env bash
# `make python`: the abi3 wheel (CPython 3.9+) in target/wheels/, then a smoke test that
# installs it into a throwaway venv and imports it. `pip install ./bindings-python` (PEP 517,
# maturin from PyPI) also works.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bash scripts/ci/setup-rust.sh

MATURIN_VERSION=1.16.0
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('maturin') != '$MATURIN_VERSION')" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check "maturin==$MATURIN_VERSION"

rm -f target/wheels/tripwire-*.whl
(cd bindings-python && "$ROOT/.venv/bin/maturin" build --release --quiet --out "$ROOT/target/wheels")
wheel=$(ls target/wheels/tripwire-*.whl)
echo "build-python: $wheel"

smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
python3 -m venv "$smoke/venv"
"$smoke/venv/bin/pip" install -q --disable-pip-version-check "$wheel"
(cd "$smoke" && "$smoke/venv/bin/python" - <<'PY'
import tripwire
p = tripwire.Pipeline({"circuitBreaker": {}, "retry": {"maxRetries": 1}})
assert p.call(lambda: 42) == 42
print("build-python: the wheel installs and runs:", tripwire.__version__)
PY
)

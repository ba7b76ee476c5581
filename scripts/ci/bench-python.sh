#!/usr/bin/env bash
# The Python benchmark: tripwire's per-call overhead next to circuitbreaker, pybreaker,
# tenacity, stamina, aiobreaker and limits (pinned), in one process. Prints figures and
# ratios against the budgets of DESIGN §6; it is not a test. `--quick` for a short run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bash scripts/ci/setup-rust.sh

MATURIN_VERSION=1.16.0
PEERS=(circuitbreaker==2.1.3 pybreaker==1.4.1 tenacity==9.2.1 stamina==26.1.0 aiobreaker==1.2.0 limits==5.8.0)

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
need=()
for spec in "maturin==$MATURIN_VERSION" "${PEERS[@]}"; do
  name=${spec%%==*} ver=${spec##*==}
  .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('$name') != '$ver')" 2>/dev/null || need+=("$spec")
done
if [ ${#need[@]} -gt 0 ]; then
  .venv/bin/pip install -q --disable-pip-version-check "${need[@]}"
fi

(cd bindings-python && VIRTUAL_ENV="$ROOT/.venv" PATH="$ROOT/.venv/bin:$PATH" \
  "$ROOT/.venv/bin/maturin" develop --release --quiet)
"$ROOT/.venv/bin/python" bindings-python/bench/bench.py "$@"

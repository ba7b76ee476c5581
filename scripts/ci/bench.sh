#!/usr/bin/env bash
# `make bench`: every benchmark, printing figures side by side with the peer libraries (not a
# test: nothing here fails on a number). Each binding's script installs its peers.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh

echo "==> core (criterion): ns per decision"
cargo bench -p tripwire-core --bench core -- --quick 2>&1 \
  | awk '/^[a-z_]+\/?[^ ]*$/ {name=$1} /time:/ {for (i = 1; i <= NF; i++) if ($i == "time:") {n = (name != "" ? name : $1); printf "  %-60s %s %s\n", n, $(i+3), $(i+4); name=""}}'

for lang in js python c; do
  if [ -f "scripts/ci/bench-$lang.sh" ]; then
    echo
    echo "==> $lang binding vs its peers"
    if [ "$lang" = js ]; then bash scripts/ci/bench-js.sh --browser; else bash "scripts/ci/bench-$lang.sh"; fi
  fi
done

echo
echo "==> the fleet: every language on one shared limit for 60 s, then with the store frozen and killed"
source scripts/ci/redis.sh
redis_install
cargo build --release --quiet -p tripwire-redis --bin fleet-worker
redis_start
echo "round trip per shared decision, one caller:"
node bindings-js/bench/store.mjs || true
.venv/bin/python bindings-python/bench/store.py || true
python3 tests/fleet/hammer.py --seconds 60 --workers rust=2,python=4,node=4,c=2 || true
python3 tests/fleet/hammer.py --seconds 60 --workers rust=2,python=4,node=4,c=2 --chaos --freeze 10 || true
python3 tests/fleet/hammer.py --breaker --breaker-seconds 30 --fail-seconds 20 || true

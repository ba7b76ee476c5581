#!/usr/bin/env bash
# The fleet (issue #9, SCALE-OUT.md): workers in every built language share one rate limit
# through a private redis-server, checked on store time, with the store frozen and then
# killed and restarted empty; then the shared-breaker scenario. Short in CI
# (TRIPWIRE_FLEET_SECONDS, default 8); `make bench` runs it for 60 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh
source scripts/ci/redis.sh
redis_install
cargo build --release -p tripwire-redis --bin fleet-worker
SECONDS_RUN="${TRIPWIRE_FLEET_SECONDS:-8}"
REQUIRE="${TRIPWIRE_FLEET_REQUIRE:-rust,python,node,c}"
python3 tests/fleet/hammer.py --seconds "$SECONDS_RUN" --workers rust=2,python=2,node=2,c=2 \
  --require "$REQUIRE"
python3 tests/fleet/hammer.py --seconds "$SECONDS_RUN" --workers rust=2,python=2,node=2,c=2 \
  --require "$REQUIRE" --chaos --freeze 2
python3 tests/fleet/hammer.py --breaker
# The demo of the README (make demo-fleet): Python and Node instances share a limit and a
# breaker; it fails if they admit more than the one shared limit allows.
bash scripts/ci/demo-fleet.sh --seconds 4

#!/usr/bin/env bash
# The JS benchmark: tripwire against cockatiel and opossum (pinned devDependencies of
# bindings-js, installed by build-js.sh's npm install) in one Node process, printing per-call
# overhead over a bare `await fn()` and the ratios DESIGN.md §6 sets. Figures, not a test.
#   bash scripts/ci/bench-js.sh [--calls N] [--rounds R] [--json]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/build-js.sh >/dev/null
cd bindings-js
for peer in cockatiel opossum; do
  [ -d "node_modules/$peer" ] || { echo "bench-js: $peer is missing from node_modules" >&2; exit 1; }
done
node bench/bench.mjs "$@"

#!/usr/bin/env bash
# Every benchmark, printing figures (not a test).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh
cargo bench -p tripwire-core --bench core

#!/usr/bin/env bash
# The CLI: its tests, `tripwire validate` on every example policy, and the Rust quick start
# (which checks its own story and exits non-zero if the breaker did not trip and recover).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh

cargo test -p tripwire-cli
cargo run --quiet -p tripwire-cli -- validate examples/policies/*.json
cargo run --quiet -p tripwire-example --bin quickstart

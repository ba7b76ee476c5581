#!/usr/bin/env bash
# Rust: unit tests, property tests, the conformance vectors, the allocation test, and the
# shared-limit vectors through the real script on a private redis-server.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh
source scripts/ci/redis.sh
redis_start
TRIPWIRE_REQUIRE_REDIS=1 cargo test --workspace --all-features
# The core as the browser module builds it: without the store.
cargo test -p tripwire-core --no-default-features --test no_store

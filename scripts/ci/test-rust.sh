#!/usr/bin/env bash
# Rust: unit tests, property tests, the conformance vectors, the allocation test.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh
cargo test --workspace --all-features

#!/usr/bin/env bash
# Formatting and clippy over the whole workspace (host target).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
python3 scripts/ci/check-readme.py
python3 scripts/ci/config_reference.py

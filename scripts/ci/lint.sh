#!/usr/bin/env bash
# Formatting and clippy over the whole workspace (host target), and over the crates of the
# browser module in its own configuration (no `store` feature).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
# The browser module's configuration: the core and the glue without the store.
cargo clippy -p tripwire-core -p tripwire-js --no-default-features --lib -- -D warnings
cargo clippy -p tripwire-core --no-default-features --test no_store -- -D warnings
python3 scripts/ci/check-readme.py
python3 scripts/ci/config_reference.py

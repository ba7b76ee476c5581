#!/usr/bin/env bash
# Make sure the pinned Rust toolchain (rust-toolchain.toml) and its components are present.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v rustup >/dev/null 2>&1; then
  echo "setup-rust: rustup is required (https://rustup.rs)" >&2
  exit 1
fi
# rustup installs the toolchain pinned by rust-toolchain.toml on first use; make it explicit.
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install "$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

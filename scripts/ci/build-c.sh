#!/usr/bin/env bash
# `make c`: target/release/libtripwire.{a,so} and bindings-c/include/tripwire.h (cbindgen, run by
# the crate's build.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh
cargo build -p tripwire-c --release
T="${CARGO_TARGET_DIR:-target}/release"
ls -l "$T/libtripwire.a" "$T/libtripwire.so" bindings-c/include/tripwire.h bindings-c/include/tripwire.hpp

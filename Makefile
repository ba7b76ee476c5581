# tripwire — every command installs what it lacks (idempotently) and then does its job.
# `make test` is what CI runs (.ci/run); `make demo` is the newcomer's first command.

SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: test demo bench setup-rust fmt-check clippy rust-test vectors

test: setup-rust fmt-check clippy rust-test
	@echo "make test: all checks passed"

setup-rust:
	@bash scripts/ci/setup-rust.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

rust-test:
	$(CARGO) test --workspace --all-features

vectors:
	$(CARGO) test -p tripwire-core --test vectors -- --nocapture

bench: setup-rust
	$(CARGO) bench -p tripwire-core --bench core

demo: setup-rust
	$(CARGO) run -q -p tripwire-core --example quickstart

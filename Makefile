# tripwire — every command installs what it lacks (idempotently) and then does its job.
# `make test` is what CI runs (.ci/run); `make demo` is the newcomer's first command.
# Each step is a script under scripts/ci/, runnable on its own.

SHELL := /bin/bash
export CARGO_TERM_COLOR ?= never

.PHONY: test demo demo-fleet bench js python c install test-rust test-cli test-js test-python test-c test-examples test-fleet test-fuzz lint

test: lint test-rust test-cli test-js test-python test-c test-examples test-fleet test-fuzz
	@echo "make test: every check passed"

lint:
	@bash scripts/ci/lint.sh

test-rust:
	@bash scripts/ci/test-rust.sh

test-cli:
	@bash scripts/ci/test-cli.sh

test-js:
	@bash scripts/ci/test-js.sh

test-python:
	@bash scripts/ci/test-python.sh

test-c:
	@bash scripts/ci/test-c.sh

test-examples:
	@bash scripts/ci/test-examples.sh

test-fleet:
	@bash scripts/ci/test-fleet.sh

test-fuzz:
	@bash scripts/ci/test-fuzz.sh

js:
	@bash scripts/ci/build-js.sh

python:
	@bash scripts/ci/build-python.sh

c:
	@bash scripts/ci/build-c.sh

install: c
	@bash scripts/ci/install-c.sh "$(PREFIX)"

bench:
	@bash scripts/ci/bench.sh

demo:
	@bash scripts/ci/demo.sh

demo-fleet:
	@bash scripts/ci/demo-fleet.sh

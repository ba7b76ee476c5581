#!/usr/bin/env bash
# `make demo`: the policy simulator on the built-in outage scenario (comparison table + SVG
# timeline), then the quick-start example of each language.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/setup-rust.sh

echo "==> building the tripwire CLI and the Rust quick start (release)"
cargo build --release --quiet -p tripwire-cli -p tripwire-example

echo
echo "==> tripwire simulate: a 30 s outage, with no policy, naive retries, and examples/policies/default.json"
echo
mkdir -p target/demo
cargo run --release --quiet -p tripwire-cli -- simulate \
  --policy examples/policies/default.json --scenario outage \
  --svg target/demo/outage.svg --json target/demo/outage.json
echo
echo "The timeline picture: $(pwd)/target/demo/outage.svg (open it in a browser)"

echo
echo "==> Rust quick start (examples/rust): a flaky HTTP service behind the same policy file"
echo
cargo run --release --quiet -p tripwire-example --bin quickstart

# ----------------------------------------------------------------------------------------------
# Quick starts of the other languages (JS, Python, C) go below, one block each, in the same
# shape as the Rust one above: a heading line, then the example run to completion.
# ----------------------------------------------------------------------------------------------

# ---- JS quick start (examples/js) ------------------------------------------------------------
echo
echo "==> JS quick start (examples/js): the same flaky service and policy file, from Node"
echo
bash scripts/ci/test-examples.sh prepare js
node examples/js/quickstart.mjs

# ---- Python quick start (examples/python) ----------------------------------------------------
echo
echo "==> Python quick start (examples/python): the same flaky service and policy file, from Python"
echo
bash scripts/ci/test-examples.sh prepare python
.venv/bin/python examples/python/quickstart.py

# ---- C quick start (examples/c) --------------------------------------------------------------
echo
echo "==> C quick start (examples/c): the same flaky service and policy file, from C"
echo
bash scripts/ci/test-examples.sh prepare c >/dev/null
"${CARGO_TARGET_DIR:-target}/examples/quickstart-c"

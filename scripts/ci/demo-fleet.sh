#!/usr/bin/env bash
# `make demo-fleet`: the same service in Python and Node shares one rate limit and one circuit
# breaker through a local redis-server (examples/fleet/). Installs what it lacks.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/ci/redis.sh
redis_install
bash scripts/ci/test-examples.sh prepare python >/dev/null
.venv/bin/python -c 'import redis' 2>/dev/null || .venv/bin/pip install -q redis
bash scripts/ci/test-examples.sh prepare js >/dev/null
[ -d bindings-js/node_modules/ioredis ] || (cd bindings-js && npm install --no-audit --no-fund)
# examples/fleet/service.mjs imports tripwire and ioredis as a user's service does: links in its
# node_modules (git-ignored) to bindings-js and its pinned ioredis, as test-js.sh does for
# examples/js.
mkdir -p examples/fleet/node_modules
ln -sfn ../../../bindings-js examples/fleet/node_modules/tripwire
ln -sfn ../../../bindings-js/node_modules/ioredis examples/fleet/node_modules/ioredis
python3 examples/fleet/demo.py "$@"

#!/usr/bin/env bash
# The js binding's tests (the binding is being built; nothing to run yet).
set -euo pipefail
echo "test-js: binding not built yet"

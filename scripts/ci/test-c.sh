#!/usr/bin/env bash
# The c binding's tests (the binding is being built; nothing to run yet).
set -euo pipefail
echo "test-c: binding not built yet"

#!/usr/bin/env bash
# The JS benchmark: tripwire against cockatiel and opossum (pinned devDependencies of
# bindings-js, installed by build-js.sh's npm install) in one Node process, printing per-call
# overhead over a bare `await fn()` and the ratios DESIGN.md §6 sets. Figures, not a test.
#   bash scripts/ci/bench-js.sh [--calls N] [--rounds R] [--json] [--browser]
# --browser: also time the browser module (built for size, dist/web) beside Node's, in the same
# process: a copy of dist/ whose CommonJS build loads the shipped browser module
# (dist/web/tripwire_js_bg.wasm) through wasm-bindgen's --target no-modules glue for it.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/build-js.sh >/dev/null
ARGS=()
BROWSER=0
for a in "$@"; do
  if [ "$a" = "--browser" ]; then BROWSER=1; else ARGS+=("$a"); fi
done
if [ "$BROWSER" = 1 ]; then
  for a in "${ARGS[@]}"; do
    [ "$a" != "--baseline" ] || { echo "bench-js: --browser takes the baseline slot; drop --baseline" >&2; exit 2; }
  done
  COPY=target/web/bench-dist
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  rm -rf "$COPY"
  cp -r bindings-js/dist "$COPY"
  # The no-modules glue of the browser build; the module is the shipped one (wasm-opt keeps
  # every import and export name, so the glue of the unoptimized module fits it).
  wasm-bindgen target/web/wasm32-unknown-unknown/release/tripwire_js.wasm --target no-modules --out-dir "$TMP"
  cp bindings-js/dist/web/tripwire_js_bg.wasm "$COPY/cjs/tripwire_js_bg.wasm"
  { cat "$TMP/tripwire_js.js"; echo; echo 'module.exports = wasm_bindgen;'; } > "$COPY/cjs/tripwire_js.cjs"
  ARGS+=(--baseline "$PWD/$COPY" --label "browser module")
fi
cd bindings-js
for peer in cockatiel opossum; do
  [ -d "node_modules/$peer" ] || { echo "bench-js: $peer is missing from node_modules" >&2; exit 1; }
done
node bench/bench.mjs "${ARGS[@]}"

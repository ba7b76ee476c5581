#!/usr/bin/env bash
# `make js`: turn bindings-js/ into an installable npm package (dist/ + types/), so that
# `npm install ./bindings-js` and `npm pack` work. Installs what it lacks, idempotently:
# the wasm32 target, wasm-bindgen-cli (the exact version of the wasm-bindgen crate in
# Cargo.lock), and the package's devDependencies (binaryen's wasm-opt, from npm).
#
# Size: the wasm build uses opt-level "z" and panic = "abort" (as Cargo profile overrides in
# the environment; the workspace profile stays as it is for host builds), then wasm-opt -Oz.
# TRIPWIRE_JS_FEATURES=json-config builds the JSON-text config variant (README: bundle size).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bash scripts/ci/setup-rust.sh
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

WB_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ]; then
  # Not --locked: the CLI's lockfile pins a webpki-roots the registry here lacks (TOOLCHAIN.md P1).
  cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi

cd bindings-js
# npm install only when package.json or the lockfile changed since the last install.
STAMP=node_modules/.tripwire-install-stamp
WANT=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  npm install --no-audit --no-fund
  echo "$WANT" > "$STAMP"
fi
cd "$ROOT"

FEATURES=()
if [ -n "${TRIPWIRE_JS_FEATURES:-}" ]; then FEATURES=(--features "$TRIPWIRE_JS_FEATURES"); fi
# Always -p: a workspace-wide wasm build fails on the pyo3 crate (TOOLCHAIN.md P5).
CARGO_PROFILE_RELEASE_OPT_LEVEL=${TRIPWIRE_JS_OPT_LEVEL:-3} CARGO_PROFILE_RELEASE_PANIC=abort \
  cargo build -p tripwire-js --target wasm32-unknown-unknown --release "${FEATURES[@]}"

WASM=target/wasm32-unknown-unknown/release/tripwire_js.wasm
DIST=bindings-js/dist
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf "$DIST"
mkdir -p "$DIST/web"
wasm-bindgen "$WASM" --target web --out-dir "$DIST/web"
wasm-bindgen "$WASM" --target no-modules --out-dir "$TMP"
# Both targets import the same functions under the same module name, so one .wasm serves both.
cmp -s "$DIST/web/tripwire_js_bg.wasm" "$TMP/tripwire_js_bg.wasm" \
  || { echo "build-js: web and no-modules wasm differ; the CJS build cannot share the file" >&2; exit 1; }
# npm's binaryen, never Debian's (it corrupts wasm-bindgen's externref table: TOOLCHAIN.md P3).
bindings-js/node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers \
  "$DIST/web/tripwire_js_bg.wasm" -o "$DIST/web/tripwire_js_bg.wasm"
rm -f "$DIST/web/tripwire_js_bg.wasm.d.ts"
node bindings-js/tools/build.mjs "$TMP/tripwire_js.js"

WASM_GZ=$(gzip -9c "$DIST/web/tripwire_js_bg.wasm" | wc -c)
GLUE_GZ=$(cat "$DIST/web/tripwire_js.js" | gzip -9 | wc -c)
JS_GZ=$(cat "$DIST"/web/*.js | gzip -9 | wc -c)
echo "build-js: $DIST ready: wasm $(stat -c%s "$DIST/web/tripwire_js_bg.wasm") B ($WASM_GZ B gzip), wasm-bindgen glue $GLUE_GZ B gzip, all browser JS $JS_GZ B gzip"

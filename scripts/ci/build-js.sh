#!/usr/bin/env bash
# `make js`: turn bindings-js/ into an installable npm package (dist/ + types/), so that
# `npm install ./bindings-js` and `npm pack` work. Installs what it lacks, idempotently:
# the wasm32 target, wasm-bindgen-cli (the exact version of the wasm-bindgen crate in
# Cargo.lock), and the package's devDependencies (binaryen's wasm-opt, from npm).
#
# Size: the wasm build uses panic = "abort", opt-level 3 for the core and the glue and "z" for
# tripwire-js-serde (Cargo profile overrides in the environment and on the command line; the
# workspace profile stays as it is for host builds), then wasm-opt (flags below).
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
# The core and the glue (every per-call path) at opt-level 3; tripwire-js-serde, where every
# config type's serde code is instantiated, at "z" unless TRIPWIRE_JS_SERDE_OPT_LEVEL says
# otherwise ("z" there saves 7.7 KB gzip over 3; the whole glue at "z" would save 4 KB more
# but costs 20-35 ns per pipeline call).
# Overrides on the command line, so host builds keep the workspace profile.
SERDE_OPT=${TRIPWIRE_JS_SERDE_OPT_LEVEL:-z}
case $SERDE_OPT in [0-3]) ;; *) SERDE_OPT="\"$SERDE_OPT\"" ;; esac
CARGO_PROFILE_RELEASE_OPT_LEVEL=${TRIPWIRE_JS_OPT_LEVEL:-3} CARGO_PROFILE_RELEASE_PANIC=abort \
  cargo build -p tripwire-js --target wasm32-unknown-unknown --release "${FEATURES[@]}" \
  --config "profile.release.package.tripwire-js-serde.opt-level=$SERDE_OPT"

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
# wasm-opt -O2, except that no serde code is inlined (by name: wasm-bindgen keeps the name
# section until --strip-debug): inlining each single-caller deserialize function into its caller
# grows the gzipped module by ~11 KB, while the hot paths keep the inlining -O2 gives them.
# (TRIPWIRE_JS_WASM_OPT replaces these flags; `read -a` splits it without globbing.)
read -r -a WASM_OPT_FLAGS <<< "${TRIPWIRE_JS_WASM_OPT:---no-inline=*serde* -O2}"
bindings-js/node_modules/.bin/wasm-opt "${WASM_OPT_FLAGS[@]}" --strip-debug --strip-producers \
  "$DIST/web/tripwire_js_bg.wasm" -o "$DIST/web/tripwire_js_bg.wasm"
rm -f "$DIST/web/tripwire_js_bg.wasm.d.ts"
node bindings-js/tools/build.mjs "$TMP/tripwire_js.js"

WASM_GZ=$(gzip -9c "$DIST/web/tripwire_js_bg.wasm" | wc -c)
GLUE_GZ=$(cat "$DIST/web/tripwire_js.js" | gzip -9 | wc -c)
JS_GZ=$(cat "$DIST"/web/*.js | gzip -9 | wc -c)
# Brotli (quality 11, what CDNs serve when the browser accepts it) as extra information.
BR=$(node -e 'const z = require("zlib"), fs = require("fs");
const br = (b) => z.brotliCompressSync(b, { params: { [z.constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
const dir = process.argv[1];
console.log(`${br(fs.readFileSync(dir + "/tripwire_js_bg.wasm"))} ${br(fs.readFileSync(dir + "/tripwire_js.js"))}`);' "$DIST/web")
echo "build-js: $DIST ready: wasm $(stat -c%s "$DIST/web/tripwire_js_bg.wasm") B ($WASM_GZ B gzip), wasm-bindgen glue $GLUE_GZ B gzip, wasm + glue $((WASM_GZ + GLUE_GZ)) B gzip (brotli ${BR% *} + ${BR#* } = $((${BR% *} + ${BR#* })) B), all browser JS $JS_GZ B gzip"

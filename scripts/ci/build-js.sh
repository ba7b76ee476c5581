#!/usr/bin/env bash
# `make js`: turn bindings-js/ into an installable npm package (dist/ + types/), so that
# `npm install ./bindings-js` and `npm pack` work. Installs what it lacks, idempotently:
# the wasm32 target, wasm-bindgen-cli (the exact version of the wasm-bindgen crate in
# Cargo.lock), and the package's devDependencies (binaryen's wasm-opt, from npm).
#
# Two wasm modules (below): Node's for speed, the browser's for size. Cargo profile overrides go
# in the environment and on the command line; the workspace profile stays as it is for host
# builds.
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
DIST=bindings-js/dist
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf "$DIST"
mkdir -p "$DIST/web" "$DIST/cjs"
# npm's binaryen, never Debian's (it corrupts wasm-bindgen's externref table: TOOLCHAIN.md P3).
WASM_OPT=bindings-js/node_modules/.bin/wasm-opt

# Two modules from one glue crate: Node's, built for speed (the per-call overhead budgets are
# measured there) with every feature, and the browser's, built for size without the shared
# store (no store client runs in a browser). The JS layer is the same for both.

# 1. Node (dist/cjs, loaded synchronously by the CommonJS build that the Node ESM entries
# re-export). Always -p: a workspace-wide wasm build fails on the pyo3 crate (TOOLCHAIN.md P5).
# The core and the glue (every per-call path) at opt-level 3; tripwire-js-serde (JS values to
# and from the core's trees, the per-type config and metrics impls) at "z" unless
# TRIPWIRE_JS_SERDE_OPT_LEVEL says otherwise ("z" there saved 7.7 KB gzip over 3 when the
# config types' derived serde code was instantiated there; the whole glue at "z" would save
# 4 KB more but costs 20-35 ns per pipeline call).
# Overrides on the command line, so host builds keep the workspace profile.
SERDE_OPT=${TRIPWIRE_JS_SERDE_OPT_LEVEL:-z}
case $SERDE_OPT in [0-3]) ;; *) SERDE_OPT="\"$SERDE_OPT\"" ;; esac
CARGO_PROFILE_RELEASE_OPT_LEVEL=${TRIPWIRE_JS_OPT_LEVEL:-3} CARGO_PROFILE_RELEASE_PANIC=abort \
  cargo build -p tripwire-js --target wasm32-unknown-unknown --release "${FEATURES[@]}" \
  --config "profile.release.package.tripwire-js-serde.opt-level=$SERDE_OPT"
wasm-bindgen target/wasm32-unknown-unknown/release/tripwire_js.wasm --target no-modules --out-dir "$TMP"
# wasm-opt -O2, except that no serde code is inlined (by name: wasm-bindgen keeps the name
# section until --strip-debug): inlining each single-caller deserialize function into its caller
# grows the gzipped module by ~11 KB, while the hot paths keep the inlining -O2 gives them.
# (TRIPWIRE_JS_WASM_OPT replaces these flags; `read -a` splits it without globbing.)
read -r -a WASM_OPT_FLAGS <<< "${TRIPWIRE_JS_WASM_OPT:---no-inline=*serde* -O2}"
"$WASM_OPT" "${WASM_OPT_FLAGS[@]}" --strip-debug --strip-producers \
  "$TMP/tripwire_js_bg.wasm" -o "$DIST/cjs/tripwire_js_bg.wasm"

# 2. The browser (dist/web; also what bundlers and other runtimes get through the `browser` and
# `default` export conditions). Everything at opt-level "z", std rebuilt with
# panic=immediate-abort (no panic formatting: a panic traps, as panic=abort already did, but
# without the message machinery; nightly + rust-src, as the TSan and fuzz builds use) but the
# glue crate's per-call paths (below), no
# `store` feature, then wasm-opt -Oz without single-caller inlining (`-ocimfs 0`: inlining each
# function called once into its caller makes copies that compress worse; measured in
# bindings-js/README.md). Cached in target/web, apart from the Node build's target dir.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
rustup component list --toolchain nightly --installed | grep -q '^rust-src' \
  || rustup component add rust-src --toolchain nightly
# The glue crate alone at opt-level 3: its per-call paths at "z" cost a breaker-only call
# ~30 ns more (1.05-1.13x cockatiel's overhead; 0.83x at 3) for 2 KB gzip.
RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
  cargo +nightly build -Zbuild-std=std,panic_abort -p tripwire-js --no-default-features \
  --target wasm32-unknown-unknown --release --target-dir target/web "${FEATURES[@]}" \
  --config "profile.release.package.tripwire-js.opt-level=${TRIPWIRE_WEB_GLUE_OPT_LEVEL:-3}"
wasm-bindgen target/web/wasm32-unknown-unknown/release/tripwire_js.wasm --target web --out-dir "$TMP/web"
read -r -a WEB_WASM_OPT_FLAGS <<< "${TRIPWIRE_WEB_WASM_OPT:--Oz -ocimfs 0}"
"$WASM_OPT" "${WEB_WASM_OPT_FLAGS[@]}" --strip-debug --strip-producers \
  "$TMP/web/tripwire_js_bg.wasm" -o "$DIST/web/tripwire_js_bg.wasm"
# wasm-bindgen's generated glue, minified (esbuild, pinned in devDependencies): nobody reads
# it, and it is a third of the gzipped JS a page loads. The idiomatic layer ships as written.
bindings-js/node_modules/.bin/esbuild "$TMP/web/tripwire_js.js" --minify --format=esm \
  --log-level=warning --outfile="$DIST/web/tripwire_js.js"
# The raw layer's declarations (types/raw.d.ts imports them) from Node's module, the whole API:
# the browser's lacks only RawSharedLimiter and storeScripts.
wasm-bindgen target/wasm32-unknown-unknown/release/tripwire_js.wasm --target web --out-dir "$TMP/node-web"
cp "$TMP/node-web/tripwire_js.d.ts" "$DIST/web/tripwire_js.d.ts"
node bindings-js/tools/build.mjs "$TMP/tripwire_js.js"

WASM_GZ=$(gzip -9c "$DIST/web/tripwire_js_bg.wasm" | wc -c)
GLUE_GZ=$(gzip -9c "$DIST/web/tripwire_js.js" | wc -c)
JS_GZ=$(cat "$DIST"/web/*.js | gzip -9 | wc -c)
NODE_GZ=$(gzip -9c "$DIST/cjs/tripwire_js_bg.wasm" | wc -c)
# Brotli (quality 11, what CDNs serve when the browser accepts it) as extra information.
BR=$(node -e 'const z = require("zlib"), fs = require("fs");
const br = (b) => z.brotliCompressSync(b, { params: { [z.constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
const dir = process.argv[1];
console.log(`${br(fs.readFileSync(dir + "/tripwire_js_bg.wasm"))} ${br(fs.readFileSync(dir + "/tripwire_js.js"))}`);' "$DIST/web")
echo "build-js: $DIST ready: browser wasm $(stat -c%s "$DIST/web/tripwire_js_bg.wasm") B ($WASM_GZ B gzip), glue $GLUE_GZ B gzip, wasm + glue $((WASM_GZ + GLUE_GZ)) B gzip (brotli ${BR% *} + ${BR#* } = $((${BR% *} + ${BR#* })) B), all browser JS $JS_GZ B gzip; Node wasm $(stat -c%s "$DIST/cjs/tripwire_js_bg.wasm") B ($NODE_GZ B gzip)"

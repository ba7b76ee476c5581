// The WebAssembly module, instantiated once per realm. This is the browser (and bundler)
// variant: it fetches `tripwire_js_bg.wasm` beside the glue. The Node build replaces this file
// with one that reads the same bytes synchronously from disk (see tools/build.mjs).
import init, * as glue from './tripwire_js.js';

const wasm = await init();

/** The wasm-bindgen classes and functions (the low-level API). */
export const raw = glue;

/** The module's linear memory (the scratch buffer lives in it). */
export const memory = wasm.memory;

/** Two random 32-bit words from the platform CSPRNG (the jitter seed when a config has none). */
export function randomSeed() {
  return globalThis.crypto.getRandomValues(new Uint32Array(2));
}

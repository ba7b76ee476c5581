// Disposal: `dispose()` frees the wasm memory at once; `Symbol.dispose` makes `using` work;
// objects that are never disposed are freed when collected (the wasm-bindgen classes register
// with a FinalizationRegistry).

/** `Symbol.dispose`, or the well-known fallback name where the runtime lacks it. */
export const DISPOSE = Symbol.dispose ?? Symbol.for('Symbol.dispose');

/** Two random 32-bit words as a jitter seed. */
export { randomSeed } from './native.js';

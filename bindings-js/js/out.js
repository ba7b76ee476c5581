// The scratch buffer the wasm side writes each decision's fields to: one Float64Array view,
// re-created when the memory grows (growth detaches the old view). Slot numbers match
// bindings-js/src/out.rs.
import { raw, memory } from './native.js';

const PTR = raw.outPtr();
const LEN = raw.outLen();
let view = new Float64Array(memory.buffer, PTR, LEN);

/** The current view of the scratch buffer. */
export function out() {
  if (view.length === 0) view = new Float64Array(memory.buffer, PTR, LEN);
  return view;
}

/** A call handle: index, then generation. */
export const CALL = 0;
/** Attempt number, or attempts made. */
export const ATTEMPTS = 2;
/** A deadline, `until` or wait in ms (NaN: none). */
export const TIME = 3;
/** An error kind's code. */
export const KIND = 4;
/** `retryAfter` in ms (NaN: none). */
export const RETRY_AFTER = 5;
/** 1 when the fallback applies. */
export const FALLBACK = 6;
/** The cause's kind code (0: none). */
export const CAUSE = 7;
/** A bulkhead ticket. */
export const TICKET = 8;
/** Event: type code, instant, then payload. */
export const EVENT = 10;
/** A woken call's handle. */
export const WAKE = 16;
/** A breaker permit: generation, started (two 32-bit halves), trial. */
export const PERMIT = 18;

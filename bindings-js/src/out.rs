//! The scratch buffer decisions are written to: JavaScript keeps a `Float64Array` over it and
//! reads a decision's fields after the call that produced it, so a step costs one boundary
//! crossing and no allocation. Regions do not overlap, so draining events or wakes never
//! clobbers the step being handled.

use core::sync::atomic::{AtomicU64, Ordering};

use wasm_bindgen::prelude::wasm_bindgen;

/// Slots in the buffer.
pub const LEN: usize = 24;

/// A call handle: its index, then its generation in the next slot.
pub const CALL_INDEX: usize = 0;
/// Attempt number (attempt step) or attempts made (done / fail).
pub const ATTEMPTS: usize = 2;
/// Deadline, `until`, or a wait in ms; NaN for none.
pub const TIME: usize = 3;
/// An error kind's code (fail steps, rejections) or a usage error.
pub const KIND: usize = 4;
/// `retryAfter` in ms; NaN for none.
pub const RETRY_AFTER: usize = 5;
/// 1 when the host's fallback applies.
pub const FALLBACK: usize = 6;
/// The cause's kind code; 0 for none.
pub const CAUSE: usize = 7;
/// A bulkhead ticket.
pub const TICKET: usize = 8;

/// Event fields: the type code, the instant, then up to four payload slots.
pub const EVENT: usize = 10;

/// A woken call's handle (index, generation).
pub const WAKE: usize = 16;

/// A breaker permit: generation, the admission instant's nanoseconds as two 32-bit halves
/// (exact past 2^53 ns, no `BigInt`), and 1 for a half-open trial.
pub const PERMIT: usize = 18;

// Atomics only to hand out a stable address without `unsafe`: wasm32 without threads lowers
// them to plain loads and stores.
static OUT: [AtomicU64; LEN] = [const { AtomicU64::new(0) }; LEN];

/// Write slot `i`.
#[inline]
pub fn put(i: usize, value: f64) {
    OUT[i].store(value.to_bits(), Ordering::Relaxed);
}

/// The buffer's address in linear memory (for a `Float64Array` view).
#[wasm_bindgen(js_name = outPtr)]
#[must_use]
pub fn out_ptr() -> usize {
    OUT.as_ptr() as usize
}

/// The buffer's length in `f64` slots.
#[wasm_bindgen(js_name = outLen)]
#[must_use]
pub fn out_len() -> usize {
    LEN
}

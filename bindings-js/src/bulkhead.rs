//! A standalone bulkhead, as the core models it: enter, release (naming the waiter to wake),
//! cancel. The JS `Bulkhead` class drives a bulkhead-only pipeline instead (which parks and
//! wakes calls itself); this class serves the conformance vectors and hosts that want the
//! raw decisions.

use tripwire_core::{Bulkhead, BulkheadConfig, Entry, Ticket};
use wasm_bindgen::prelude::*;

use crate::convert::{config_error, instant, kind_code, opt_instant, opt_ms, parse, to_js, Live};
use crate::events::Outbox;
use crate::out::{put, KIND, TICKET, TIME};

/// The low-level bulkhead.
#[wasm_bindgen(js_name = RawBulkhead)]
#[derive(Debug)]
pub struct RawBulkhead {
    inner: Bulkhead,
    outbox: Outbox,
    _live: Live,
}

#[wasm_bindgen(js_class = RawBulkhead)]
impl RawBulkhead {
    /// A bulkhead; throws the config error.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<RawBulkhead, JsValue> {
        let config: BulkheadConfig = parse(config).map_err(|e| config_error(&e))?;
        let inner = Bulkhead::new(config).map_err(|e| config_error(&e))?;
        Ok(RawBulkhead {
            inner,
            outbox: Outbox::default(),
            _live: Live::new(),
        })
    }

    fn drain(&mut self) {
        let inner = &mut self.inner;
        self.outbox.drain(|| inner.poll_event());
    }

    /// Try to take a slot at `now` for a call due by `deadline` (NaN: none). Returns 0
    /// admitted, 1 queued (ticket and `until` in the scratch buffer), 2 rejected (the kind's
    /// code in the scratch buffer), 3 for an entry this glue does not know.
    pub fn enter(&mut self, now: f64, deadline: f64) -> u32 {
        let entry = self.inner.try_enter(instant(now), opt_instant(deadline));
        self.drain();
        match entry {
            Entry::Admitted => 0,
            Entry::Queued { ticket, until } => {
                put(TICKET, ticket.get() as f64);
                put(TIME, opt_ms(until));
                1
            }
            Entry::Rejected { reason } => {
                put(KIND, kind_code(reason));
                2
            }
            // `Entry` is non-exhaustive in the core.
            _ => 3,
        }
    }

    /// Give a slot back; returns the ticket of the waiter it was handed to, 0 for none.
    pub fn release(&mut self, now: f64) -> f64 {
        let woke = self.inner.release(instant(now));
        self.drain();
        woke.map_or(0.0, |t| t.get() as f64)
    }

    /// Take a waiter out of the queue; true when it was waiting.
    pub fn cancel(&mut self, ticket: f64, now: f64, timed_out: bool) -> bool {
        let left = self
            .inner
            .cancel(Ticket::from_raw(ticket as u64), instant(now), timed_out);
        self.drain();
        left
    }

    /// The next waiter whose `until` has passed (dropped from the queue), 0 for none.
    #[wasm_bindgen(js_name = pollExpired)]
    pub fn poll_expired(&mut self, now: f64) -> f64 {
        let t = self.inner.poll_expired(instant(now));
        self.drain();
        t.map_or(0.0, |t| t.get() as f64)
    }

    /// The earliest waiter's `until`, NaN for none.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> f64 {
        opt_ms(self.inner.poll_timeout())
    }

    /// Counters and gauges as a plain object.
    pub fn metrics(&self) -> JsValue {
        to_js(&self.inner.metrics())
    }

    /// Keep events for `nextEvent` (true) or drop them (false, the default).
    #[wasm_bindgen(js_name = setListening)]
    pub fn set_listening(&mut self, on: bool) {
        self.outbox.set_listening(on);
    }

    /// Write the oldest waiting event to the scratch buffer; its type code, 0 when none.
    #[wasm_bindgen(js_name = nextEvent)]
    pub fn next_event(&mut self) -> u32 {
        self.drain();
        self.outbox.next().unwrap_or(0)
    }
}

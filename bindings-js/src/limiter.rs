//! Rate limiters: one limit or several (every one must pass), plain or keyed.

use tripwire_core::{
    KeyedRateLimitConfig, KeyedRateLimiter, RateDecision, RateLimitConfig, RateLimiter,
};
use wasm_bindgen::prelude::*;

use crate::convert::{
    config_error, count, dur_ms, instant, opt_dur_ms, parse, seed, to_js, type_error, Live,
};
use crate::events::Outbox;
use crate::out::{put, RETRY_AFTER, TIME};

/// Bit set in a `check` result when events are waiting.
const EVENTS: u32 = 4;

/// Write a decision: 0 allowed now, 1 allowed after the wait in `TIME`, 2 denied with
/// `RETRY_AFTER` (NaN when the cost can never pass), 3 a decision this glue does not know.
fn decision(d: RateDecision) -> u32 {
    match d {
        RateDecision::Allowed => 0,
        RateDecision::Wait(w) => {
            put(TIME, dur_ms(w));
            1
        }
        RateDecision::Denied { retry_after } => {
            put(RETRY_AFTER, opt_dur_ms(retry_after));
            2
        }
        // Non-exhaustive in the core.
        _ => 3,
    }
}

fn cost(n: f64) -> Result<u64, JsValue> {
    count(n).ok_or_else(|| {
        type_error(&format!(
            "cost must be a whole number >= 0, got {}",
            tripwire_core::decimal::Float(n)
        ))
    })
}

/// The low-level rate limiter.
#[wasm_bindgen(js_name = RawLimiter)]
#[derive(Debug)]
pub struct RawLimiter {
    inner: RateLimiter,
    outbox: Outbox,
    _live: Live,
}

#[wasm_bindgen(js_class = RawLimiter)]
impl RawLimiter {
    /// A limiter (one limit or a list); throws the config error.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<RawLimiter, JsValue> {
        let config: RateLimitConfig = parse(config).map_err(|e| config_error(&e))?;
        let inner = RateLimiter::new(config).map_err(|e| config_error(&e))?;
        Ok(RawLimiter {
            inner,
            outbox: Outbox::default(),
            _live: Live::new(),
        })
    }

    /// Check `cost` units at `now` (see [`decision`] for the result).
    pub fn check(&mut self, now: f64, cost: f64) -> Result<u32, JsValue> {
        let d = self.inner.check(instant(now), self::cost(cost)?);
        let inner = &mut self.inner;
        let events = self.outbox.drain(|| inner.poll_event());
        Ok(decision(d) | if events { EVENTS } else { 0 })
    }

    /// Units the first limit would admit at once.
    pub fn available(&self, now: f64) -> f64 {
        self.inner.available(instant(now)) as f64
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
        let inner = &mut self.inner;
        self.outbox.drain(|| inner.poll_event());
        self.outbox.next().unwrap_or(0)
    }
}

/// The low-level keyed rate limiter (a bounded map of limiters, one per key).
#[wasm_bindgen(js_name = RawKeyedLimiter)]
#[derive(Debug)]
pub struct RawKeyedLimiter {
    inner: KeyedRateLimiter,
    outbox: Outbox,
    _live: Live,
}

#[wasm_bindgen(js_class = RawKeyedLimiter)]
impl RawKeyedLimiter {
    /// `{limit, maxKeys, idleExpiry}`; the key hasher is seeded from `seed_hi:seed_lo`.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue, seed_hi: u32, seed_lo: u32) -> Result<RawKeyedLimiter, JsValue> {
        let config: KeyedRateLimitConfig = parse(config).map_err(|e| config_error(&e))?;
        let inner =
            KeyedRateLimiter::new(config, seed(seed_hi, seed_lo)).map_err(|e| config_error(&e))?;
        Ok(RawKeyedLimiter {
            inner,
            outbox: Outbox::default(),
            _live: Live::new(),
        })
    }

    /// Check `cost` units for `key` at `now`.
    pub fn check(&mut self, key: &str, now: f64, cost: f64) -> Result<u32, JsValue> {
        let d = self.inner.check(key, instant(now), self::cost(cost)?);
        let inner = &mut self.inner;
        let events = self.outbox.drain(|| inner.poll_event());
        Ok(decision(d) | if events { EVENTS } else { 0 })
    }

    /// Keys held now.
    pub fn keys(&self) -> u32 {
        u32::try_from(self.inner.keys()).unwrap_or(u32::MAX)
    }

    /// Drop idle keys; returns how many went.
    pub fn sweep(&mut self, now: f64) -> u32 {
        u32::try_from(self.inner.sweep(instant(now))).unwrap_or(u32::MAX)
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
        let inner = &mut self.inner;
        self.outbox.drain(|| inner.poll_event());
        self.outbox.next().unwrap_or(0)
    }
}

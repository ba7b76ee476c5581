//! A standalone circuit breaker (`CircuitBreaker` in JS): acquire, record, manual states,
//! snapshots. Permits cross the boundary as plain numbers, so a permit can be recorded late,
//! twice, or into a restored breaker exactly as the core allows.

use tripwire_core::{Admission, BreakerConfig, BreakerSnapshot, CircuitBreaker, Outcome, Permit};
use wasm_bindgen::prelude::*;

use crate::convert::{config_error, instant, opt_dur_ms, opt_ms, parse, to_js, Live};
use crate::events::Outbox;
use crate::out::{put, PERMIT, RETRY_AFTER};

/// `acquire` and `record` results: bit 0 = admitted, bit 1 = events are waiting, bit 2 = the
/// outcome code was not one of 0, 1, 2 (nothing was recorded), bit 3 = `recordSuccess` needs
/// the clock (nothing was recorded).
const ADMITTED: u32 = 1;
const EVENTS: u32 = 2;
const BAD_OUTCOME: u32 = 4;
const NEED_TIME: u32 = 8;

/// The low-level circuit breaker.
#[wasm_bindgen(js_name = RawBreaker)]
#[derive(Debug)]
pub struct RawBreaker {
    inner: CircuitBreaker,
    outbox: Outbox,
    _live: Live,
}

/// An outcome from its JS code: 0 success, 1 failure, 2 ignored.
pub fn outcome(code: u32) -> Option<Outcome> {
    match code {
        0 => Some(Outcome::Success),
        1 => Some(Outcome::Failure),
        2 => Some(Outcome::Ignored),
        _ => None,
    }
}

#[wasm_bindgen(js_class = RawBreaker)]
impl RawBreaker {
    /// A closed breaker; throws the config error.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<RawBreaker, JsValue> {
        let config: BreakerConfig = parse(config).map_err(|e| config_error(&e))?;
        let inner = CircuitBreaker::new(config).map_err(|e| config_error(&e))?;
        Ok(RawBreaker {
            inner,
            outbox: Outbox::default(),
            _live: Live::new(),
        })
    }

    fn flags(&mut self) -> u32 {
        let inner = &mut self.inner;
        if self.outbox.drain(|| inner.poll_event()) {
            EVENTS
        } else {
            0
        }
    }

    /// Ask to run a call. Admitted: the permit is in the scratch buffer. Rejected: its
    /// `retryAfter` is (NaN when unknown).
    pub fn acquire(&mut self, now: f64) -> u32 {
        let admission = self.inner.try_acquire(instant(now));
        self.admission(admission)
    }

    /// `acquire` without reading the clock, when the core says its instant cannot matter
    /// (`CircuitBreaker::try_acquire_untimed`: closed, consecutive rule); `NEED_TIME` and
    /// nothing done otherwise: read the clock and `acquire`. Only for a host clock that never
    /// goes back, and a breaker never reconfigured (this one cannot be).
    #[wasm_bindgen(js_name = acquireUntimed)]
    pub fn acquire_untimed(&mut self) -> u32 {
        match self.inner.try_acquire_untimed() {
            Some(admission) => self.admission(admission),
            None => NEED_TIME,
        }
    }

    fn admission(&mut self, admission: Admission) -> u32 {
        let admitted = match admission {
            Admission::Admitted(p) => {
                let started = p.started().as_nanos();
                put(PERMIT, f64::from(p.generation()));
                put(PERMIT + 1, (started >> 32) as f64);
                put(PERMIT + 2, (started & 0xFFFF_FFFF) as f64);
                put(PERMIT + 3, f64::from(u8::from(p.is_trial())));
                ADMITTED
            }
            Admission::Rejected { retry_after } => {
                put(RETRY_AFTER, opt_dur_ms(retry_after));
                0
            }
        };
        admitted | self.flags()
    }

    /// Record how a call ended: `outcome` 0 success, 1 failure, 2 ignored. (Not a `Result`:
    /// this is the hot path, and a bad code is reported in the returned bits.)
    pub fn record(
        &mut self,
        generation: u32,
        started_hi: u32,
        started_lo: u32,
        trial: bool,
        outcome: u32,
        now: f64,
    ) -> u32 {
        let Some(outcome) = self::outcome(outcome) else {
            return BAD_OUTCOME;
        };
        let permit = permit(generation, started_hi, started_lo, trial);
        self.inner.record(permit, outcome, instant(now));
        self.flags()
    }

    /// Record a success without reading the clock, when the core says its instant cannot
    /// matter (`CircuitBreaker::try_record_success_untimed`); `NEED_TIME` and nothing recorded
    /// otherwise: read the clock and `record`. Only for a host clock that never goes back.
    #[wasm_bindgen(js_name = recordSuccess)]
    pub fn record_success(
        &mut self,
        generation: u32,
        started_hi: u32,
        started_lo: u32,
        trial: bool,
    ) -> u32 {
        let permit = permit(generation, started_hi, started_lo, trial);
        if self.inner.try_record_success_untimed(permit) {
            self.flags()
        } else {
            NEED_TIME
        }
    }

    /// Abandon a permit without an outcome.
    pub fn release(
        &mut self,
        generation: u32,
        started_hi: u32,
        started_lo: u32,
        trial: bool,
        now: f64,
    ) -> u32 {
        let permit = permit(generation, started_hi, started_lo, trial);
        self.inner.release(permit, instant(now));
        self.flags()
    }

    /// The state's code (see `breakerStateNames`).
    pub fn state(&self) -> u32 {
        self.inner.state().code()
    }

    /// When an open period ends, NaN when not open.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> f64 {
        opt_ms(self.inner.poll_timeout())
    }

    /// Move `open` to `halfOpen` when its time has come.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now: f64) -> u32 {
        self.inner.handle_timeout(instant(now));
        self.flags()
    }

    /// Reject every call until `reset`.
    #[wasm_bindgen(js_name = forceOpen)]
    pub fn force_open(&mut self, now: f64) -> u32 {
        self.inner.force_open(instant(now));
        self.flags()
    }

    /// Admit every call (metrics only) until `reset`.
    pub fn disable(&mut self, now: f64) -> u32 {
        self.inner.disable(instant(now));
        self.flags()
    }

    /// Back to `closed`.
    pub fn reset(&mut self, now: f64) -> u32 {
        self.inner.reset(instant(now));
        self.flags()
    }

    /// Counters and gauges as a plain object.
    pub fn metrics(&self) -> JsValue {
        to_js(&self.inner.metrics())
    }

    /// The state as a plain, JSON-ready object.
    pub fn snapshot(&self) -> JsValue {
        to_js(&self.inner.snapshot())
    }

    /// Take the state of a snapshot (as `snapshot` returned it, possibly through JSON); throws
    /// the config error when it does not fit this breaker.
    pub fn restore(&mut self, snapshot: JsValue, now: f64) -> Result<u32, JsValue> {
        let snapshot: BreakerSnapshot = parse(snapshot).map_err(|e| config_error(&e))?;
        self.inner
            .restore(&snapshot, instant(now))
            .map_err(|e| config_error(&e))?;
        Ok(self.flags())
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

fn permit(generation: u32, started_hi: u32, started_lo: u32, trial: bool) -> Permit {
    let started = (u64::from(started_hi) << 32) | u64::from(started_lo);
    Permit::from_parts(
        generation,
        tripwire_core::Instant::from_nanos(started),
        trial,
    )
}

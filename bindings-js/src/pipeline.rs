//! Pipelines: the step protocol every `execute` drives (DESIGN.md §3.8), one boundary
//! crossing per step. `start` is `begin` + `poll`, `report` is `report` + `poll`; the step's
//! fields go to the scratch buffer and the result code says whether events or woken calls
//! are waiting, so the JS layer drains them only when there is something to drain.

use std::collections::VecDeque;

use tripwire_core::error::Quoted;
use tripwire_core::pipeline::{
    CallId, Outcome, Pipeline, PipelineConfig, PolicyFile, Report, Step,
};
use tripwire_core::{EventQueue, UsageError};
use wasm_bindgen::prelude::*;

use crate::convert::{
    config_error, instant, kind_code, ms, opt_dur_ms, opt_duration, opt_instant, opt_ms, parse,
    seed, to_js, type_error, Live,
};
use crate::events::write_event;
use crate::out::{
    put, ATTEMPTS, CALL_INDEX, CAUSE, FALLBACK, KIND, RETRY_AFTER, TICKET, TIME, WAKE,
};

/// Step codes (the low three bits of a result).
const ATTEMPT: u32 = 0;
const SLEEP: u32 = 1;
const PARK: u32 = 2;
const DONE: u32 = 3;
const FAIL: u32 = 4;
/// A misuse (stale handle, report without an attempt...): see `lastError`.
const MISUSE: u32 = 5;
/// A step this glue does not know (the core's `Step` is non-exhaustive).
const UNKNOWN: u32 = 6;
/// Flag: events are waiting (`nextEvent`).
const EVENTS: u32 = 8;
/// Flag: parked calls were woken (`nextWake`).
const WAKES: u32 = 16;
/// `reportSuccess`: the core needs the clock for this success; nothing was reported.
const NEED_TIME: u32 = 32;

fn write_step(step: Step) -> u32 {
    match step {
        Step::Attempt { attempt, deadline } => {
            put(ATTEMPTS, f64::from(attempt));
            put(TIME, opt_ms(deadline));
            ATTEMPT
        }
        Step::Sleep { until } => {
            put(TIME, ms(until));
            SLEEP
        }
        Step::Park { ticket, until } => {
            put(TICKET, ticket as f64);
            put(TIME, opt_ms(until));
            PARK
        }
        Step::Done { attempts } => {
            put(ATTEMPTS, f64::from(attempts));
            DONE
        }
        Step::Fail(f) => {
            put(KIND, kind_code(f.kind));
            put(RETRY_AFTER, opt_dur_ms(f.retry_after));
            put(ATTEMPTS, f64::from(f.attempts));
            put(FALLBACK, f64::from(u8::from(f.fallback)));
            put(CAUSE, f.cause.map_or(0.0, kind_code));
            FAIL
        }
        // Without the store (the browser module) no pipeline can take this step.
        #[cfg(feature = "store")]
        Step::Store { request, until } => crate::store::write_store_step(request, until),
        _ => UNKNOWN,
    }
}

fn call_id(index: u32, generation: u32) -> CallId {
    CallId::from_raw((u64::from(generation) << 32) | u64::from(index))
}

fn put_call(slot: usize, call: CallId) {
    let raw = call.to_raw();
    put(slot, (raw & 0xFFFF_FFFF) as f64);
    put(slot + 1, (raw >> 32) as f64);
}

/// An outcome from its JS code: 0 success, 1 failure, 2 timeout, 3 ignored.
fn outcome(code: u32) -> Option<Outcome> {
    match code {
        0 => Some(Outcome::Success),
        1 => Some(Outcome::Failure),
        2 => Some(Outcome::Timeout),
        3 => Some(Outcome::Ignored),
        _ => None,
    }
}

/// The low-level pipeline.
#[wasm_bindgen(js_name = RawPipeline)]
#[derive(Debug)]
pub struct RawPipeline {
    pub(crate) inner: Pipeline,
    name: String,
    listening: bool,
    events: EventQueue,
    wakes: VecDeque<CallId>,
    last_error: String,
    _live: Live,
}

impl RawPipeline {
    fn wrap(inner: Pipeline, name: String) -> RawPipeline {
        RawPipeline {
            inner,
            name,
            listening: false,
            events: EventQueue::new(),
            wakes: VecDeque::new(),
            last_error: String::new(),
            _live: Live::new(),
        }
    }

    /// Drain the core's outputs after an input; the flags for what JS should drain next.
    #[inline]
    pub(crate) fn outputs(&mut self) -> u32 {
        while let Some(e) = self.inner.poll_event() {
            if self.listening {
                self.events.push(e);
            }
        }
        while let Some(call) = self.inner.poll_wake() {
            self.wakes.push_back(call);
        }
        let mut flags = 0;
        if !self.events.is_empty() {
            flags |= EVENTS;
        }
        if !self.wakes.is_empty() {
            flags |= WAKES;
        }
        flags
    }

    /// Events of an input made to the breaker directly (manual control, snapshots) reach the
    /// pipeline's queue only at its next input; take them now, in order.
    fn drain_breaker(&mut self) {
        if let Some(b) = self.inner.breaker_mut() {
            while let Some(e) = b.poll_event() {
                if self.listening {
                    self.events.push(e);
                }
            }
        }
    }

    pub(crate) fn misuse(&mut self, e: UsageError) -> u32 {
        e.as_str().clone_into(&mut self.last_error);
        MISUSE
    }

    pub(crate) fn step(&mut self, call: CallId, now: tripwire_core::Instant) -> u32 {
        match self.inner.poll(call, now) {
            Ok(step) => write_step(step),
            Err(e) => self.misuse(e),
        }
    }
}

#[wasm_bindgen(js_class = RawPipeline)]
impl RawPipeline {
    /// A pipeline; jitter is seeded from `seed_hi:seed_lo` unless the config has a `seed`.
    /// `name` labels its Prometheus metrics. Throws the config error.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: JsValue,
        seed_hi: u32,
        seed_lo: u32,
        name: String,
    ) -> Result<RawPipeline, JsValue> {
        let config: PipelineConfig = parse(config).map_err(|e| config_error(&e))?;
        let inner = Pipeline::new(config, seed(seed_hi, seed_lo)).map_err(|e| config_error(&e))?;
        Ok(RawPipeline::wrap(inner, name))
    }

    /// Begin a call (deadline NaN: none) and poll it: the call's handle and its first step
    /// go to the scratch buffer.
    pub fn start(&mut self, now: f64, deadline: f64) -> u32 {
        let now = instant(now);
        let call = self.inner.begin(now, opt_instant(deadline));
        put_call(CALL_INDEX, call);
        self.step(call, now) | self.outputs()
    }

    /// Begin a call without polling it (the handle goes to the scratch buffer).
    pub fn begin(&mut self, now: f64, deadline: f64) -> u32 {
        let call = self.inner.begin(instant(now), opt_instant(deadline));
        put_call(CALL_INDEX, call);
        self.outputs()
    }

    /// Begin a call for `key` on a keyed pipeline (one breaker and limiter per key) without
    /// polling it (the handle goes to the scratch buffer).
    #[wasm_bindgen(js_name = beginKeyed)]
    pub fn begin_keyed(&mut self, key: &str, now: f64, deadline: f64) -> u32 {
        let call = self
            .inner
            .begin_keyed(key, instant(now), opt_instant(deadline));
        put_call(CALL_INDEX, call);
        self.outputs()
    }

    /// The call's next step.
    pub fn poll(&mut self, index: u32, generation: u32, now: f64) -> u32 {
        self.step(call_id(index, generation), instant(now)) | self.outputs()
    }

    /// Report the running attempt's outcome (0 success, 1 failure, 2 timeout, 3 ignored;
    /// `retry_after` NaN for no hint), then poll the call.
    pub fn report(
        &mut self,
        index: u32,
        generation: u32,
        outcome: u32,
        retryable: bool,
        retry_after: f64,
        now: f64,
    ) -> u32 {
        let now = instant(now);
        let call = call_id(index, generation);
        let code = match self.report_inner(call, outcome, retryable, retry_after, now) {
            Ok(()) => self.step(call, now),
            Err(code) => code,
        };
        code | self.outputs()
    }

    /// Report a plain success without reading the clock, when the core says its instant
    /// cannot matter (`Pipeline::try_report_success_untimed`), then poll the call (at the
    /// latest instant seen: an earlier one is clamped to it). `NEED_TIME` and nothing
    /// reported otherwise (a misuse included): read the clock and `report`. Only for a host
    /// clock that never goes back.
    #[wasm_bindgen(js_name = reportSuccess)]
    pub fn report_success(&mut self, index: u32, generation: u32) -> u32 {
        let call = call_id(index, generation);
        match self.inner.try_report_success_untimed(call) {
            Ok(true) => self.step(call, tripwire_core::Instant::ZERO) | self.outputs(),
            Ok(false) | Err(_) => NEED_TIME,
        }
    }

    /// Report without polling: 0, or the misuse code.
    #[wasm_bindgen(js_name = reportOnly)]
    pub fn report_only(
        &mut self,
        index: u32,
        generation: u32,
        outcome: u32,
        retryable: bool,
        retry_after: f64,
        now: f64,
    ) -> u32 {
        let call = call_id(index, generation);
        let code = self
            .report_inner(call, outcome, retryable, retry_after, instant(now))
            .err()
            .unwrap_or(0);
        code | self.outputs()
    }

    /// Cancel a call (the caller gave up): it leaves any queue and frees what it holds.
    pub fn cancel(&mut self, index: u32, generation: u32, now: f64) -> u32 {
        let code = match self.inner.cancel(call_id(index, generation), instant(now)) {
            Ok(()) => 0,
            Err(e) => self.misuse(e),
        };
        code | self.outputs()
    }

    /// The text of the last misuse.
    #[wasm_bindgen(js_name = lastError)]
    pub fn last_error(&self) -> String {
        self.last_error.clone()
    }

    /// Keep events for `nextEvent` (true) or drop them as they come (false, the default).
    #[wasm_bindgen(js_name = setListening)]
    pub fn set_listening(&mut self, on: bool) {
        self.listening = on;
        if !on {
            while self.events.pop().is_some() {}
        }
    }

    /// Write the oldest waiting event to the scratch buffer; its type code, 0 when none.
    #[wasm_bindgen(js_name = nextEvent)]
    pub fn next_event(&mut self) -> u32 {
        self.events.pop().map_or(0, |e| write_event(&e))
    }

    /// Write the next woken call's handle to the scratch buffer; false when none.
    #[wasm_bindgen(js_name = nextWake)]
    pub fn next_wake(&mut self) -> bool {
        match self.wakes.pop_front() {
            Some(call) => {
                put_call(WAKE, call);
                true
            }
            None => false,
        }
    }

    /// When the next policy-level change is due, NaN for none.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> f64 {
        opt_ms(self.inner.poll_timeout())
    }

    /// Counters and gauges as a plain object (the core's `PipelineStats`).
    pub fn stats(&self) -> JsValue {
        to_js(&self.inner.stats())
    }

    /// The Prometheus text exposition, labelled with this pipeline's name.
    pub fn prometheus(&self) -> String {
        self.inner.prometheus(&self.name)
    }

    /// The name given at construction.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Apply a new config, keeping the state that still fits; throws the config error (and
    /// keeps the old config).
    pub fn reconfigure(&mut self, config: JsValue, now: f64) -> Result<u32, JsValue> {
        let config: PipelineConfig = parse(config).map_err(|e| config_error(&e))?;
        self.inner
            .reconfigure(config, instant(now))
            .map_err(|e| config_error(&e))?;
        Ok(self.outputs())
    }

    /// The breaker's state code (see `breakerStateNames`), -1 without a breaker.
    #[wasm_bindgen(js_name = breakerState)]
    pub fn breaker_state(&self) -> i32 {
        self.inner
            .breaker()
            .map_or(-1, |b| i32::try_from(b.state().code()).unwrap_or(-1))
    }

    /// Manually control the breaker: 0 force open, 1 disable, 2 reset. False without one.
    #[wasm_bindgen(js_name = breakerControl)]
    pub fn breaker_control(&mut self, action: u32, now: f64) -> Result<bool, JsValue> {
        let now = instant(now);
        let Some(b) = self.inner.breaker_mut() else {
            return Ok(false);
        };
        match action {
            0 => b.force_open(now),
            1 => b.disable(now),
            2 => b.reset(now),
            _ => return Err(type_error("unknown breaker action")),
        }
        self.drain_breaker();
        Ok(true)
    }

    /// The breaker's snapshot as of `now` (its open period's remaining time counted from
    /// `now`) as a plain object; null without a breaker.
    #[wasm_bindgen(js_name = breakerSnapshot)]
    pub fn breaker_snapshot(&mut self, now: f64) -> JsValue {
        let Some(b) = self.inner.breaker_mut() else {
            return JsValue::NULL;
        };
        b.handle_timeout(instant(now));
        let snapshot = to_js(&b.snapshot());
        self.drain_breaker();
        snapshot
    }

    /// Restore the breaker from a snapshot; throws the config error when it does not fit
    /// (or there is no breaker).
    #[wasm_bindgen(js_name = breakerRestore)]
    pub fn breaker_restore(&mut self, snapshot: JsValue, now: f64) -> Result<(), JsValue> {
        let snapshot = parse(snapshot).map_err(|e| config_error(&e))?;
        let b = self.inner.breaker_mut().ok_or_else(|| {
            config_error(&tripwire_core::ConfigError::new(
                "circuitBreaker",
                "this pipeline has no circuit breaker to restore",
            ))
        })?;
        b.restore(&snapshot, instant(now))
            .map_err(|e| config_error(&e))?;
        self.drain_breaker();
        Ok(())
    }
}

impl RawPipeline {
    fn report_inner(
        &mut self,
        call: CallId,
        outcome: u32,
        retryable: bool,
        retry_after: f64,
        now: tripwire_core::Instant,
    ) -> Result<(), u32> {
        let Some(outcome) = self::outcome(outcome) else {
            "unknown outcome code".clone_into(&mut self.last_error);
            return Err(MISUSE);
        };
        let report = Report {
            outcome,
            retryable,
            retry_after: opt_duration(retry_after),
        };
        self.inner
            .report(call, report, now)
            .map_err(|e| self.misuse(e))
    }
}

/// A validated policy file: named pipeline configs.
#[wasm_bindgen(js_name = RawPolicyFile)]
#[derive(Debug)]
pub struct RawPolicyFile {
    inner: PolicyFile,
    _live: Live,
}

#[wasm_bindgen(js_class = RawPolicyFile)]
impl RawPolicyFile {
    /// `{seed?, policies: {name: pipelineConfig}}`; throws the config error (paths start with
    /// `policies.<name>`).
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<RawPolicyFile, JsValue> {
        let inner: PolicyFile = parse(config).map_err(|e| config_error(&e))?;
        inner.validate().map_err(|e| config_error(&e))?;
        Ok(RawPolicyFile {
            inner,
            _live: Live::new(),
        })
    }

    /// The pipeline names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.names().map(str::to_owned).collect()
    }

    /// A new pipeline for `name` (seeded from `seed_hi:seed_lo` when neither the entry nor
    /// the file has a seed); throws a `RangeError` for an unknown name.
    pub fn pipeline(&self, name: &str, seed_hi: u32, seed_lo: u32) -> Result<RawPipeline, JsValue> {
        self.inner
            .pipeline(name, seed(seed_hi, seed_lo))
            .map(|p| RawPipeline::wrap(p, name.to_owned()))
            .map_err(|e| js_sys::RangeError::new(&format!("{e}: {}", Quoted(name))).into())
    }
}

//! A rate limit shared through a store (Redis, Valkey): the core's effects protocol
//! (`tripwire_core::store`) across the boundary. The core emits a request; the JS layer runs
//! it with the user's own client (`js/redis.js`) and reports the reply here.
//!
//! A request crosses as its fields `[sha1, timeout ms, resendSafe "1"|"0", key count,
//! keys..., args...]` (the Lua source is fetched once, with [`store_scripts`]); a reply as a
//! kind code, the values (for a script reply) and a message (for an error reply).

use tripwire_core::pipeline::{CallId, PipelineConfig};
use tripwire_core::store::{RequestId, SharedCheck, SharedLimiter, Source, StoreReply};
use tripwire_core::{ConfigError, RateDecision};
use wasm_bindgen::prelude::*;

use crate::convert::{config_error, count, dur_ms, instant, opt_dur_ms, parse, seed, to_js, Live};
use crate::events::Outbox;
use crate::out::{put, KIND, RETRY_AFTER, TICKET, TIME};
use crate::pipeline::RawPipeline;

/// `check` / `reply` results: admitted (after the wait in `TIME`, 0 for none), denied (with
/// `RETRY_AFTER`, NaN when the cost can never pass), a request to run (its id in `TICKET`), a
/// misuse (see `lastError`). The decision's source is in `KIND`.
const ALLOWED: u32 = 0;
const DENIED: u32 = 1;
const SEND: u32 = 2;
const MISUSE: u32 = 3;
/// Flag: events are waiting (`nextEvent`).
const EVENTS: u32 = 4;

/// Reply kinds from JS.
const VALUES: u32 = 0;
const NO_SCRIPT: u32 = 1;
const TIMEOUT: u32 = 2;
const UNAVAILABLE: u32 = 3;

/// The pipeline's step code for [`Step::Store`] (see `pipeline.rs`): the request id goes to
/// `TICKET`, its deadline to `TIME`.
pub const STORE_STEP: u32 = 7;

/// A request id as one JS number, exactly: the core numbers requests from 1 and may set the
/// top bit (the shared breaker's requests), which `as f64` would round away with the low bits
/// (2^63 + n is not an f64), so the top bit crosses as the sign and the rest as the magnitude
/// (exact below 2^53 requests). [`request_of`] reads it back.
fn id_number(id: RequestId) -> f64 {
    const TOP: u64 = 1 << 63;
    let raw = id.get();
    let magnitude = (raw & !TOP) as f64;
    if raw & TOP == 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Write a store step to the scratch buffer.
pub fn write_store_step(request: RequestId, until: tripwire_core::Instant) -> u32 {
    put(TICKET, id_number(request));
    put(TIME, crate::convert::ms(until));
    STORE_STEP
}

fn source_code(s: Source) -> f64 {
    match s {
        Source::Store => 1.0,
        Source::Fallback => 2.0,
        Source::Cache => 3.0,
        _ => 0.0,
    }
}

fn write_decision(d: RateDecision, source: Source) -> u32 {
    put(KIND, source_code(source));
    match d {
        RateDecision::Allowed => {
            put(TIME, 0.0);
            ALLOWED
        }
        RateDecision::Wait(w) => {
            put(TIME, dur_ms(w));
            ALLOWED
        }
        RateDecision::Denied { retry_after } => {
            put(RETRY_AFTER, opt_dur_ms(retry_after));
            DENIED
        }
        // Non-exhaustive in the core: refuse what this glue cannot read.
        _ => {
            put(RETRY_AFTER, f64::NAN);
            DENIED
        }
    }
}

/// A reply from JS: `kind` (0 values, 1 NOSCRIPT, 2 timeout, 3 unavailable, else failed with
/// `message`). Values that are not all integers are an unreadable reply (a failure).
fn reply_of(kind: u32, values: &[f64], message: String) -> StoreReply {
    match kind {
        VALUES => values
            .iter()
            .map(|&v| (v.fract() == 0.0 && v.abs() < 9.2e18).then_some(v as i64))
            .collect::<Option<Vec<i64>>>()
            .map_or_else(
                || StoreReply::Failed("unreadable store reply: not an array of integers".into()),
                StoreReply::Values,
            ),
        NO_SCRIPT => StoreReply::NoScript,
        TIMEOUT => StoreReply::Timeout,
        UNAVAILABLE => StoreReply::Unavailable,
        _ => StoreReply::Failed(message),
    }
}

fn shared_limiter(config: JsValue, seed: u64) -> Result<SharedLimiter, ConfigError> {
    let config: PipelineConfig = parse(config)?;
    let mut only = PipelineConfig::default();
    only.rate_limit.clone_from(&config.rate_limit);
    only.store.clone_from(&config.store);
    only.keyed.clone_from(&config.keyed);
    if only != config {
        return Err(ConfigError::new(
            "",
            "a shared limiter takes only rateLimit, store and keyed",
        ));
    }
    SharedLimiter::for_pipeline(&config, seed)?
        .ok_or_else(|| ConfigError::new("store", "a shared limiter needs a store and a rateLimit"))
}

/// A request id from its JS number ([`id_number`]); an id that is not one names no request.
fn request_of(id: f64) -> RequestId {
    const TOP: u64 = 1 << 63;
    if !id.is_finite() || id.fract() != 0.0 || id.abs() >= 9_007_199_254_740_992.0 {
        return RequestId::from_raw(0);
    }
    let magnitude = id.abs() as u64;
    RequestId::from_raw(if id.is_sign_negative() {
        TOP | magnitude
    } else {
        magnitude
    })
}

/// A request's fields (see the module docs) as one string joined by NUL, decoded by JS at
/// once (a string per field costs ~1.5 µs more per request); as an array of strings in the
/// rare case a key or an argument holds a NUL itself.
fn request_value(r: &tripwire_core::store::StoreRequest) -> JsValue {
    let head = [
        r.script.sha1.to_owned(),
        dur_ms(r.timeout).to_string(),
        if r.resend_safe { "1" } else { "0" }.to_owned(),
        r.keys.len().to_string(),
    ];
    let fields = || head.iter().chain(&r.keys).chain(&r.args);
    if fields().any(|f| f.contains('\0')) {
        return fields()
            .map(|f| JsValue::from_str(f))
            .collect::<js_sys::Array>()
            .into();
    }
    let mut text = String::with_capacity(fields().map(|f| f.len() + 1).sum());
    for (i, f) in fields().enumerate() {
        if i > 0 {
            text.push('\0');
        }
        text.push_str(f);
    }
    JsValue::from_str(&text)
}

/// Every script a store may be asked to run, flat: `[name, sha1, source, ...]` (for `SCRIPT
/// LOAD` at start, and `EVAL` after a `NOSCRIPT`).
#[wasm_bindgen(js_name = storeScripts)]
#[must_use]
pub fn store_scripts() -> Vec<String> {
    tripwire_core::store::scripts()
        .iter()
        .flat_map(|s| [s.name, s.sha1, s.source])
        .map(str::to_owned)
        .collect()
}

/// The low-level shared rate limiter (the core's `SharedLimiter`).
#[wasm_bindgen(js_name = RawSharedLimiter)]
#[derive(Debug)]
pub struct RawSharedLimiter {
    inner: SharedLimiter,
    outbox: Outbox,
    last_error: String,
    _live: Live,
}

impl RawSharedLimiter {
    fn flags(&mut self) -> u32 {
        let inner = &mut self.inner;
        if self.outbox.drain(|| inner.poll_event()) {
            EVENTS
        } else {
            0
        }
    }

    fn misuse(&mut self, message: &str) -> u32 {
        message.clone_into(&mut self.last_error);
        MISUSE
    }
}

#[wasm_bindgen(js_class = RawSharedLimiter)]
impl RawSharedLimiter {
    /// From `{rateLimit, store, keyed?}` (the fields of a pipeline that shares its limit),
    /// seeded from `seed_hi:seed_lo` (this instance's heartbeat id and the denial cache's
    /// hash). Throws the config error.
    ///
    /// Read as a pipeline config and built as a pipeline builds its shared limiter: the same
    /// checks and paths as `SharedLimiter::from_json`, without linking a second (JSON text)
    /// deserializer for every config type into the wasm (+26 KB gzip measured).
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue, seed_hi: u32, seed_lo: u32) -> Result<RawSharedLimiter, JsValue> {
        let inner = shared_limiter(config, seed(seed_hi, seed_lo)).map_err(|e| config_error(&e))?;
        Ok(RawSharedLimiter {
            inner,
            outbox: Outbox::default(),
            last_error: String::new(),
            _live: Live::new(),
        })
    }

    /// Decide `cost` for `key` at `now`: a decision, or `SEND` with the request id in
    /// `TICKET` (run `request(id)`, then `reply`).
    pub fn check(&mut self, key: &str, now: f64, cost: f64) -> u32 {
        let Some(cost) = count(cost) else {
            return self.misuse("cost must be a whole number >= 0");
        };
        let code = match self.inner.check(key, instant(now), cost, None) {
            SharedCheck::Decided { decision, source } => write_decision(decision, source),
            SharedCheck::Send(id) => {
                put(TICKET, id_number(id));
                SEND
            }
        };
        code | self.flags()
    }

    /// The request `id` (see [`request_value`]); undefined once answered.
    pub fn request(&self, id: f64) -> JsValue {
        self.inner
            .request(request_of(id))
            .map_or(JsValue::UNDEFINED, request_value)
    }

    /// Report the reply to request `id` (see [`reply_of`]); the decision as for `check`.
    pub fn reply(&mut self, id: f64, kind: u32, values: &[f64], message: String, now: f64) -> u32 {
        let reply = reply_of(kind, values, message);
        let code = match self.inner.on_reply(request_of(id), reply, instant(now)) {
            Ok((decision, source)) => write_decision(decision, source),
            Err(_) => self.misuse("unknown or already answered request id"),
        };
        code | self.flags()
    }

    /// Forget request `id` (its caller went away); a late reply is then an unknown id.
    pub fn abandon(&mut self, id: f64, now: f64) -> u32 {
        self.inner.abandon(request_of(id), instant(now));
        self.flags()
    }

    /// The store metrics as a plain object (the core's `StoreMetrics`).
    pub fn metrics(&self) -> JsValue {
        to_js(&self.inner.metrics())
    }

    /// The store breaker's state code (see `breakerStateNames`).
    #[wasm_bindgen(js_name = storeState)]
    pub fn store_state(&self) -> u32 {
        self.inner.store_state().code()
    }

    /// The last error reply the store gave (a deployment mistake), or the last misuse.
    #[wasm_bindgen(js_name = lastError)]
    pub fn last_error(&self) -> String {
        if self.last_error.is_empty() {
            self.inner.last_error().unwrap_or("").to_owned()
        } else {
            self.last_error.clone()
        }
    }

    /// The store's last error reply (`CROSSSLOT`, `NOPERM`, `WRONGTYPE`...), if any.
    #[wasm_bindgen(js_name = storeError)]
    pub fn store_error(&self) -> Option<String> {
        self.inner.last_error().map(str::to_owned)
    }

    /// This instance's heartbeat id.
    pub fn member(&self) -> String {
        self.inner.member().to_owned()
    }

    /// Let the script use the host's `now` (conformance vectors only).
    #[wasm_bindgen(js_name = useHostClock)]
    pub fn use_host_clock(&mut self, on: bool) {
        self.inner.use_host_clock(on);
    }

    /// Keep events for `nextEvent` (true) or drop them (false, the default).
    #[wasm_bindgen(js_name = setListening)]
    pub fn set_listening(&mut self, on: bool) {
        self.outbox.set_listening(on);
    }

    /// Write the oldest waiting event; its type code, 0 when none.
    #[wasm_bindgen(js_name = nextEvent)]
    pub fn next_event(&mut self) -> u32 {
        self.outbox.next().unwrap_or(0)
    }
}

/// The pipeline's side of a store step.
#[wasm_bindgen(js_class = RawPipeline)]
impl RawPipeline {
    /// The request of a store step (see [`request_value`]); undefined when it is gone.
    #[wasm_bindgen(js_name = storeRequest)]
    pub fn store_request(&self, id: f64) -> JsValue {
        self.inner
            .store_request(request_of(id))
            .map_or(JsValue::UNDEFINED, request_value)
    }

    /// The store's last error reply (`CROSSSLOT`, `NOPERM`, `WRONGTYPE`...: a deployment
    /// mistake): the shared rate limit's, else the shared breaker's; undefined when none.
    #[wasm_bindgen(js_name = storeLastError)]
    pub fn store_last_error(&self) -> Option<String> {
        self.inner.store_last_error().map(str::to_owned)
    }

    /// Let the store scripts (shared rate limit and shared breaker) use the caller's `now`
    /// instead of the store's clock: a testing hook for conformance vectors only (in
    /// production the store's clock is the fleet's one clock).
    #[wasm_bindgen(js_name = _useStoreHostClock)]
    pub fn use_store_host_clock(&mut self, on: bool) {
        self.inner.use_store_host_clock(on);
    }

    /// Report the reply to the call's store request (see [`reply_of`]), then poll the call.
    #[wasm_bindgen(js_name = reportStore)]
    pub fn report_store(
        &mut self,
        index: u32,
        generation: u32,
        kind: u32,
        values: &[f64],
        message: String,
        now: f64,
    ) -> u32 {
        let now = instant(now);
        let call = CallId::from_raw((u64::from(generation) << 32) | u64::from(index));
        let code = match self
            .inner
            .report_store(call, reply_of(kind, values, message), now)
        {
            Ok(()) => self.step(call, now),
            Err(e) => self.misuse(e),
        };
        code | self.outputs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_cross_as_one_exact_number() {
        // The shared breaker's ids carry the top bit; `as f64` alone would map 2^63 + 1 and
        // 2^63 + 2 to the same number.
        for raw in [
            1,
            2,
            41,
            (1 << 53) - 1,
            1 << 63,
            (1 << 63) | 1,
            (1 << 63) | 2,
            (1 << 63) | ((1 << 53) - 1),
        ] {
            let id = RequestId::from_raw(raw);
            assert_eq!(request_of(id_number(id)), id, "{raw:#x}");
        }
        assert_ne!(
            id_number(RequestId::from_raw((1 << 63) | 1)),
            id_number(RequestId::from_raw((1 << 63) | 2))
        );
        for bad in [f64::NAN, f64::INFINITY, 1.5, -2.5, 1e300] {
            assert_eq!(request_of(bad), RequestId::from_raw(0), "{bad}");
        }
    }
}

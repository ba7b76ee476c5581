//! Units, configs and errors across the boundary: milliseconds as `f64` to and from the core's
//! nanosecond instants, JS objects to config structs, `ConfigError` to a JS `Error`.

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use tripwire_core::error::Quoted;
use tripwire_core::time::{duration_nanos, millis_f64_to_nanos, nanos_to_millis_f64};
use tripwire_core::{BreakerState, ConfigError, ErrorKind, Instant};
use tripwire_js_serde::{FromJs, ToJs};
use wasm_bindgen::prelude::*;

/// A host time in ms. NaN, infinities and negatives become the origin, which the core clamps
/// to the last instant it saw (time freezes instead of breaking state).
#[inline]
pub fn instant(ms: f64) -> Instant {
    Instant::from_millis_f64(ms)
}

/// An optional deadline in ms: NaN or +Infinity is "none"; anything else as [`instant`].
#[inline]
pub fn opt_instant(ms: f64) -> Option<Instant> {
    if ms.is_nan() || ms == f64::INFINITY {
        None
    } else {
        Some(Instant::from_millis_f64(ms))
    }
}

/// An optional duration in ms: NaN is "none"; negatives are zero; huge values saturate.
#[inline]
pub fn opt_duration(ms: f64) -> Option<Duration> {
    if ms.is_nan() {
        None
    } else {
        Some(Duration::from_nanos(millis_f64_to_nanos(ms)))
    }
}

/// An instant as ms.
#[inline]
pub fn ms(i: Instant) -> f64 {
    i.as_millis_f64()
}

/// An optional instant as ms, NaN for none.
#[inline]
pub fn opt_ms(i: Option<Instant>) -> f64 {
    i.map_or(f64::NAN, ms)
}

/// A duration as ms.
#[inline]
pub fn dur_ms(d: Duration) -> f64 {
    nanos_to_millis_f64(duration_nanos(d))
}

/// An optional duration as ms, NaN for none.
#[inline]
pub fn opt_dur_ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, dur_ms)
}

/// A whole, non-negative count from JS (a cost): `None` unless it is a finite integer >= 0.
/// Integers past `u64::MAX` (JS numbers that large are all integers) saturate to it, so a huge
/// cost reads as "can never pass", as the same cost does in the core's own JSON.
pub fn count(n: f64) -> Option<u64> {
    (n.is_finite() && n >= 0.0 && n.fract() == 0.0).then_some(n as u64)
}

/// The 64-bit seed the host drew from OS randomness, handed over as two 32-bit halves.
pub fn seed(hi: u32, lo: u32) -> u64 {
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A config from a JS value, naming the field path of the first problem (see
/// `tripwire_js_serde::FromJs`: the texts are exactly the core's for the same JSON).
#[inline]
pub fn parse<T: FromJs>(value: JsValue) -> Result<T, ConfigError> {
    T::from_js(&value)
}

/// A serializable value as a plain JS object (maps as objects, absent values as `null`).
#[inline]
pub fn to_js<T: ToJs + ?Sized>(value: &T) -> JsValue {
    value.to_js()
}

/// A refused config as a JS `Error` with `code = "invalidConfig"` and `issues = [{path,
/// reason}]`; the JS layer turns it into its `ConfigError` class.
pub fn config_error(e: &ConfigError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let issues = js_sys::Array::new();
    for issue in e.issues() {
        let o = js_sys::Object::new();
        set(&o, "path", &JsValue::from_str(&issue.path));
        set(&o, "reason", &JsValue::from_str(&issue.reason));
        issues.push(&o);
    }
    set(
        &err,
        "code",
        &JsValue::from_str(ErrorKind::InvalidConfig.as_str()),
    );
    set(&err, "issues", &issues);
    err.into()
}

/// A misuse of the low-level API (a bad argument) as a JS `TypeError`.
pub fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

fn set(target: &JsValue, key: &str, value: &JsValue) {
    // Defining a property on a fresh plain object or Error cannot fail.
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
}

/// An error kind's code as the f64 written to the scratch buffer.
#[inline]
pub fn kind_code(kind: ErrorKind) -> f64 {
    f64::from(kind.code())
}

/// The names of the error kinds, indexed by their code (index 0 is unused).
#[wasm_bindgen(js_name = errorKindNames)]
#[must_use]
pub fn error_kind_name() -> Vec<String> {
    let mut names = vec![String::new(); ErrorKind::ALL.len() + 1];
    for k in ErrorKind::ALL {
        names[k.code() as usize] = k.as_str().to_owned();
    }
    names
}

/// The names of the breaker states, indexed by their code.
#[wasm_bindgen(js_name = breakerStateNames)]
#[must_use]
pub fn state_name() -> Vec<String> {
    [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
        BreakerState::ForcedOpen,
        BreakerState::Disabled,
    ]
    .into_iter()
    .map(|s| (s.code(), s.as_str()))
    .fold(Vec::new(), |mut names, (code, name)| {
        let i = code as usize;
        if names.len() <= i {
            names.resize(i + 1, String::new());
        }
        names[i] = name.to_owned();
        names
    })
}

static LIVE: AtomicU32 = AtomicU32::new(0);

/// Counts the low-level objects alive in wasm memory (for the disposal and
/// FinalizationRegistry tests).
#[derive(Debug)]
pub struct Live(());

impl Live {
    /// Count one more live object.
    pub fn new() -> Live {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Live(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Low-level objects alive now (each `free()`, `dispose()` or finalization drops one).
#[wasm_bindgen(js_name = liveObjects)]
#[must_use]
pub fn live_objects() -> u32 {
    LIVE.load(Ordering::Relaxed)
}

/// Validate a config for one `target` (`policyFile`, `pipeline`, `circuitBreaker`, `retry`,
/// `timeout`, `bulkhead`, `rateLimit`, `keyedRateLimit`, `health`, `check`), throwing the
/// config error.
#[wasm_bindgen(js_name = validateConfig)]
pub fn validate_config(target: &str, config: JsValue) -> Result<(), JsValue> {
    use tripwire_core::bulkhead::BulkheadConfig;
    use tripwire_core::deadline::TimeoutConfig;
    use tripwire_core::health::{CheckConfig, HealthConfig};
    use tripwire_core::pipeline::{PipelineConfig, PolicyFile};
    use tripwire_core::{BreakerConfig, KeyedRateLimitConfig, RateLimitConfig, RetryConfig};
    let result = match target {
        "policyFile" => parse::<PolicyFile>(config).and_then(|c| c.validate()),
        "pipeline" => parse::<PipelineConfig>(config).and_then(|c| c.validate()),
        "circuitBreaker" => parse::<BreakerConfig>(config).and_then(|c| c.validate()),
        "retry" => parse::<RetryConfig>(config).and_then(|c| c.validate()),
        "timeout" => parse::<TimeoutConfig>(config).and_then(|c| c.validate()),
        "bulkhead" => parse::<BulkheadConfig>(config).and_then(|c| c.validate()),
        "rateLimit" => parse::<RateLimitConfig>(config).and_then(|c| c.validate()),
        "keyedRateLimit" => parse::<KeyedRateLimitConfig>(config).and_then(|c| c.validate()),
        "health" => parse::<HealthConfig>(config).and_then(|c| c.validate()),
        "check" => parse::<CheckConfig>(config).and_then(|c| c.validate()),
        other => {
            return Err(type_error(&format!(
                "unknown config target {}",
                Quoted(other)
            )))
        }
    };
    result.map_err(|e| config_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_times_become_instants_and_broken_ones_the_origin() {
        assert_eq!(instant(1.5), Instant::from_nanos(1_500_000));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -3.0] {
            assert_eq!(instant(bad), Instant::ZERO, "{bad}");
        }
        assert_eq!(ms(Instant::from_nanos(2_500_000)), 2.5);
    }

    #[test]
    fn optional_deadlines_and_durations() {
        assert_eq!(opt_instant(f64::NAN), None);
        assert_eq!(opt_instant(f64::INFINITY), None);
        assert_eq!(
            opt_instant(-1.0),
            Some(Instant::ZERO),
            "a past deadline, not none"
        );
        assert_eq!(opt_instant(10.0), Some(Instant::from_nanos(10_000_000)));
        assert_eq!(opt_duration(f64::NAN), None);
        assert_eq!(opt_duration(-5.0), Some(Duration::ZERO));
        assert_eq!(opt_duration(0.25), Some(Duration::from_micros(250)));
        assert_eq!(
            opt_duration(f64::INFINITY),
            Some(Duration::from_nanos(u64::MAX))
        );
        assert!(opt_ms(None).is_nan());
        assert!(opt_dur_ms(None).is_nan());
        assert_eq!(dur_ms(Duration::from_micros(1500)), 1.5);
    }

    #[test]
    fn costs_are_whole_non_negative_numbers_saturating_at_u64_max() {
        assert_eq!(count(0.0), Some(0));
        assert_eq!(count(3.0), Some(3));
        assert_eq!(count(18_446_744_073_709_551_615.0), Some(u64::MAX));
        assert_eq!(count(1e300), Some(u64::MAX));
        for bad in [-1.0, 1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(count(bad), None, "{bad}");
        }
    }

    #[test]
    fn seeds_join_their_halves() {
        assert_eq!(seed(0, 7), 7);
        assert_eq!(seed(1, 0), 1 << 32);
        assert_eq!(seed(u32::MAX, u32::MAX), u64::MAX);
    }
}

//! The circuit breaker (DESIGN.md §3.1): a sans-IO state machine over `closed`, `open`,
//! `halfOpen`, and the manual `forcedOpen` and `disabled`.
//!
//! ```text
//!            trip rule fires                    now >= openUntil (at acquire, or handle_timeout)
//!   closed ───────────────────▶ open ─────────────────────────────▶ halfOpen
//!     ▲                          ▲                                     │
//!     │                          └──── any failure (or slow) trial ────┤
//!     └──────────────── successThreshold successful trials ────────────┘
//!   force_open → forcedOpen (rejects, no retryAfter)   disable → disabled (admits, metrics only)
//!   reset → closed from anywhere
//! ```
//!
//! Formulas, pinned:
//! - **consecutiveFailures N**: a failure in `closed` adds 1, a success sets the count to 0,
//!   `ignored` leaves it; the breaker trips when the count reaches N.
//! - **failureRate**: after every success or failure recorded in `closed`, with the window
//!   holding `calls ≥ minimumCalls`, the breaker trips when `failures / calls ≥ failureRate` or
//!   (with a slow-call rule) `slow / calls ≥ slowCallRate`. A call is *slow* when
//!   `record_now − permit.started() > slowCallDuration` (strictly slower; a call taking exactly
//!   the duration is not slow). `ignored` outcomes are not recorded in the window.
//! - **time window** `{duration: D, buckets: B}`: buckets of `W = ⌊D_ns / B⌋` ns aligned to
//!   multiples of W (bucket `e` covers `[e·W, (e+1)·W)` of the host's instants); at `now` the
//!   window is bucket `⌊now/W⌋` plus the `B − 1` before it.
//! - **open period**: the n-th open period in a row lasts `min(max, base·multiplier^(n−1))`
//!   (nanoseconds, rounded to nearest; the power is computed by binary exponentiation in IEEE
//!   doubles so every platform gets the same bits). Tripping from `closed` opens period n = 1;
//!   a reopen from `halfOpen` opens period n + 1; reaching `closed`, or `reset`, sets n = 1.
//! - **retryAfter** of a rejection in `open` is exactly `openUntil − now`, where
//!   `openUntil = openedAt + openDuration(n)`: the first acquire with `now ≥ openUntil` moves
//!   the breaker to `halfOpen` (lazily; [`CircuitBreaker::poll_timeout`] returns `openUntil` for
//!   hosts that want it eagerly through [`CircuitBreaker::handle_timeout`]). Until then
//!   [`CircuitBreaker::state`] still says `open`.
//! - **halfOpen**: at most `permittedCalls` trial permits in flight at once; a trial that
//!   ends (recorded or released) frees its slot. Calls beyond that are rejected as
//!   `circuitOpen` with `retryAfter = None`: a slot frees when a trial call finishes, which the
//!   core cannot predict. `successThreshold` successful trials close the breaker; a failed trial
//!   reopens it. With a slow-call rule, a slow trial counts as a failed one even if it
//!   succeeded (see [`CircuitBreaker::record`]).
//!
//! **Generations.** Every state change (and every `reset`/`restore`) starts a new generation;
//! a [`Permit`] carries the generation that issued it. Recording a permit of an earlier
//! generation updates the outcome counters (and `stale`) but drives no transition, touches no
//! window or count, and frees no trial slot: a call admitted before the breaker opened cannot
//! close a later half-open episode.
//!
//! **Time.** Every `now` is clamped by a [`Monotonic`] guard (`max(now, last_seen)`): time
//! that goes backwards neither shortens nor extends an open period, and saturating arithmetic
//! keeps huge instants from panicking.
//!
//! **Memory.** An idle consecutive-failure breaker is 128 bytes inline (asserted in the
//! tests) and owns no heap of its own beyond its share of an `Arc<BreakerConfig>`: one
//! allocation of `16 + size_of::<BreakerConfig>()` = 128 bytes on x86_64, shared by every
//! breaker built with [`CircuitBreaker::with_shared_config`]. A rate rule adds its window,
//! allocated once at construction: `56 + 16·⌈N/64⌉` bytes for `{"calls": N}` (two bits per
//! call), `56 + 24·B` bytes for B time buckets ([`CircuitBreaker::window_heap_bytes`]). The
//! event queue allocates on its first event only, and stays bounded. Nothing on the
//! acquire/record path allocates once the event queue exists (a test counts allocations).

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{ConfigDuration, WholeMillis};
use crate::decimal::Float;
use crate::error::{ConfigError, Issues, QuotedChar};
use crate::event::{BreakerState, ErrorKind, Event, EventKind, EventQueue};
use crate::read::{self, read_struct, FromTree};
use crate::time::{Instant, Monotonic};
use crate::tree::{At, Error as TreeError, Node};
use crate::window::{CountWindow, TimeWindow, Totals};

/// The default trip rule's N: five failures in a row.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// The default open period: 30 s.
pub const DEFAULT_OPEN_DURATION: ConfigDuration = ConfigDuration::from_secs(30);
/// The default `halfOpen.successThreshold` (and so the default `permittedCalls`).
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 3;
/// The default `minimumCalls` of a time window (a count window defaults to its size).
pub const DEFAULT_TIME_WINDOW_MINIMUM_CALLS: u32 = 20;
/// The default bucket count of a time window.
pub const DEFAULT_BUCKETS: u32 = 10;
/// The default growth of an `openDuration` backoff.
pub const DEFAULT_OPEN_MULTIPLIER: f64 = 2.0;
/// The largest count window: 1 000 000 calls (250 KB of bits).
pub const MAX_WINDOW_CALLS: u32 = 1_000_000;
/// The most buckets a time window may have: 10 000 (240 KB).
pub const MAX_WINDOW_BUCKETS: u32 = 10_000;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// `{"trip": ..., "openDuration": ..., "halfOpen": {...}}`; every field is optional.
///
/// Defaults: `{"consecutiveFailures": 5}`, 30 s, `{"permittedCalls": 3, "successThreshold": 3}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// When `closed` turns `open`.
    #[serde(default)]
    pub trip: TripRule,
    /// How long an open period lasts (fixed, or growing over repeated trips).
    #[serde(default)]
    pub open_duration: OpenDuration,
    /// How trial calls decide between `closed` and `open`.
    #[serde(default)]
    pub half_open: HalfOpenConfig,
    /// Share the state with a fleet through the pipeline's `store` (default: local only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<crate::share::ShareConfig>,
}

impl BreakerConfig {
    /// Parse a JSON config (paths in errors are relative to the breaker's own root) and
    /// validate it.
    pub fn from_json(text: &str) -> Result<BreakerConfig, ConfigError> {
        let config = <BreakerConfig as FromTree>::from_json_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Every issue with a field path, e.g. `halfOpen.permittedCalls: must be >= 1, got 0`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        self.trip.check(&mut issues);
        self.open_duration.check(&mut issues);
        if self.half_open.permitted_calls == 0 {
            issues.push("halfOpen.permittedCalls", "must be >= 1, got 0");
        }
        if self.half_open.success_threshold == 0 {
            issues.push("halfOpen.successThreshold", "must be >= 1, got 0");
        }
        if let Some(Err(e)) = self.share.as_ref().map(crate::share::ShareConfig::validate) {
            issues.extend("share", e);
        }
        issues.finish(())
    }
}

/// The trip rule: exactly one per breaker, under `"trip"`.
///
/// JSON: `{"consecutiveFailures": 5}`, or `{"failureRate": 0.5, "window": {"calls": 100} |
/// {"duration": "60s", "buckets": 10}, "minimumCalls": 20, "slowCallRate"?: 0.8,
/// "slowCallDuration"?: "2s"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTrip", into = "RawTrip")]
#[non_exhaustive]
pub enum TripRule {
    /// N failures in a row (N >= 1).
    ConsecutiveFailures(u32),
    /// A failure rate (and optionally a slow-call rate) over a window.
    FailureRate {
        /// Trip when `failures / calls >= failure_rate`; in `(0, 1]`.
        failure_rate: f64,
        /// The calls the rates are computed over.
        window: WindowConfig,
        /// No evaluation until the window holds this many calls (default: a count window's
        /// size, or 20 for a time window).
        minimum_calls: u32,
        /// Also trip when too many calls are slow.
        slow_calls: Option<SlowCallRule>,
    },
}

impl Default for TripRule {
    fn default() -> Self {
        TripRule::ConsecutiveFailures(DEFAULT_CONSECUTIVE_FAILURES)
    }
}

impl TripRule {
    /// The rule's window, if it keeps one.
    #[must_use]
    pub fn window(&self) -> Option<&WindowConfig> {
        match self {
            TripRule::ConsecutiveFailures(_) => None,
            TripRule::FailureRate { window, .. } => Some(window),
        }
    }

    fn check(&self, issues: &mut Issues) {
        match self {
            TripRule::ConsecutiveFailures(0) => {
                issues.push("trip.consecutiveFailures", "must be >= 1, got 0")
            }
            TripRule::ConsecutiveFailures(_) => {}
            TripRule::FailureRate {
                failure_rate,
                window,
                minimum_calls,
                slow_calls,
            } => {
                check_fraction(issues, "trip.failureRate", *failure_rate);
                window.check(issues);
                if *minimum_calls == 0 {
                    issues.push("trip.minimumCalls", "must be >= 1, got 0");
                }
                if let WindowConfig::Calls(n) = window {
                    if *minimum_calls > *n {
                        issues.push(
                            "trip.minimumCalls",
                            format!("must be <= trip.window.calls ({n}), got {minimum_calls}: the window never holds more"),
                        );
                    }
                }
                if let Some(slow) = slow_calls {
                    check_fraction(issues, "trip.slowCallRate", slow.rate);
                    if slow.duration.nanos() == 0 {
                        issues.push("trip.slowCallDuration", "must be > 0, got 0");
                    }
                }
            }
        }
    }
}

fn check_fraction(issues: &mut Issues, path: &str, value: f64) {
    if !(value > 0.0 && value <= 1.0) {
        issues.push(
            path,
            format!("must be a fraction > 0 and <= 1, got {}", Float(value)),
        );
    }
}

/// The slow-call part of a rate rule: `"slowCallRate": 0.8, "slowCallDuration": "2s"` (both
/// or neither).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct SlowCallRule {
    /// Trip when `slow / calls >= rate`; in `(0, 1]`.
    pub rate: f64,
    /// A call taking strictly longer than this is slow.
    pub duration: ConfigDuration,
}

impl SlowCallRule {
    /// A slow-call rule.
    #[must_use]
    pub fn new(rate: f64, duration: ConfigDuration) -> SlowCallRule {
        SlowCallRule { rate, duration }
    }
}

/// A rate rule's window: `{"calls": N}` or `{"duration": D, "buckets": B}` (B defaults to 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawWindow", into = "RawWindow")]
#[non_exhaustive]
pub enum WindowConfig {
    /// The last N recorded calls (sliding).
    Calls(u32),
    /// B buckets of D/B each, aligned to multiples of D/B.
    Time {
        /// The window's span D.
        duration: ConfigDuration,
        /// The bucket count B.
        buckets: u32,
    },
}

impl WindowConfig {
    /// The default `minimumCalls` for this window.
    #[must_use]
    pub fn default_minimum_calls(&self) -> u32 {
        match self {
            WindowConfig::Calls(n) => *n,
            WindowConfig::Time { .. } => DEFAULT_TIME_WINDOW_MINIMUM_CALLS,
        }
    }

    /// A time window's bucket width in nanoseconds, `⌊D_ns / B⌋`.
    #[must_use]
    pub fn bucket_nanos(&self) -> Option<u64> {
        match self {
            WindowConfig::Calls(_) => None,
            WindowConfig::Time { duration, buckets } => {
                Some(duration.nanos() / u64::from((*buckets).max(1)))
            }
        }
    }

    fn check(&self, issues: &mut Issues) {
        match *self {
            WindowConfig::Calls(0) => issues.push("trip.window.calls", "must be >= 1, got 0"),
            WindowConfig::Calls(n) if n > MAX_WINDOW_CALLS => {
                issues.push(
                    "trip.window.calls",
                    format!("must be <= {MAX_WINDOW_CALLS}, got {n}"),
                );
            }
            WindowConfig::Calls(_) => {}
            WindowConfig::Time { duration, buckets } => {
                if buckets == 0 {
                    issues.push("trip.window.buckets", "must be >= 1, got 0");
                } else if buckets > MAX_WINDOW_BUCKETS {
                    issues.push(
                        "trip.window.buckets",
                        format!("must be <= {MAX_WINDOW_BUCKETS}, got {buckets}"),
                    );
                }
                if duration.nanos() == 0 {
                    issues.push("trip.window.duration", "must be > 0, got 0");
                } else if buckets > 0 && duration.nanos() < u64::from(buckets) {
                    issues.push(
                        "trip.window.duration",
                        format!(
                            "must be at least 1ns per bucket ({buckets} buckets), got {}ns",
                            duration.nanos()
                        ),
                    );
                }
            }
        }
    }
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<ConfigDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    buckets: Option<u32>,
}

impl TryFrom<RawWindow> for WindowConfig {
    type Error = String;

    fn try_from(raw: RawWindow) -> Result<Self, String> {
        match raw {
            RawWindow {
                calls: Some(n),
                duration: None,
                buckets: None,
            } => Ok(WindowConfig::Calls(n)),
            RawWindow {
                calls: None,
                duration: Some(duration),
                buckets,
            } => Ok(WindowConfig::Time {
                duration,
                buckets: buckets.unwrap_or(DEFAULT_BUCKETS),
            }),
            RawWindow { calls: Some(_), .. } => Err(
                "a window is either {\"calls\": N} or {\"duration\": D, \"buckets\": B}, not both"
                    .into(),
            ),
            RawWindow {
                calls: None,
                duration: None,
                buckets: Some(_),
            } => Err(
                "missing field `duration` (a time window needs a duration beside its buckets)"
                    .into(),
            ),
            RawWindow {
                calls: None,
                duration: None,
                buckets: None,
            } => Err("expected {\"calls\": N} or {\"duration\": D, \"buckets\": B}".into()),
        }
    }
}

impl From<WindowConfig> for RawWindow {
    fn from(w: WindowConfig) -> Self {
        match w {
            WindowConfig::Calls(n) => RawWindow {
                calls: Some(n),
                duration: None,
                buckets: None,
            },
            WindowConfig::Time { duration, buckets } => RawWindow {
                calls: None,
                duration: Some(duration),
                buckets: Some(buckets),
            },
        }
    }
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTrip {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consecutive_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<WindowConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minimum_calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slow_call_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slow_call_duration: Option<ConfigDuration>,
}

impl TryFrom<RawTrip> for TripRule {
    type Error = String;

    fn try_from(raw: RawTrip) -> Result<Self, String> {
        let rate_fields = [
            ("window", raw.window.is_some()),
            ("minimumCalls", raw.minimum_calls.is_some()),
            ("slowCallRate", raw.slow_call_rate.is_some()),
            ("slowCallDuration", raw.slow_call_duration.is_some()),
        ];
        match (raw.consecutive_failures, raw.failure_rate) {
            (Some(_), Some(_)) => Err("a trip rule is either consecutiveFailures or failureRate, not both".into()),
            (Some(n), None) => match rate_fields.iter().find(|(_, present)| *present) {
                Some((field, _)) => {
                    Err(format!("`{field}` belongs to a failureRate rule, not to consecutiveFailures"))
                }
                None => Ok(TripRule::ConsecutiveFailures(n)),
            },
            (None, Some(failure_rate)) => {
                let window = raw.window.ok_or(
                    "missing field `window` (a failureRate rule needs {\"calls\": N} or {\"duration\": D, \"buckets\": B})",
                )?;
                let slow_calls = match (raw.slow_call_rate, raw.slow_call_duration) {
                    (Some(rate), Some(duration)) => Some(SlowCallRule { rate, duration }),
                    (None, None) => None,
                    (Some(_), None) => return Err("missing field `slowCallDuration` (slowCallRate needs it)".into()),
                    (None, Some(_)) => return Err("missing field `slowCallRate` (slowCallDuration needs it)".into()),
                };
                Ok(TripRule::FailureRate {
                    failure_rate,
                    minimum_calls: raw.minimum_calls.unwrap_or_else(|| window.default_minimum_calls()),
                    window,
                    slow_calls,
                })
            }
            (None, None) => match rate_fields.iter().find(|(_, present)| *present) {
                Some((field, _)) => Err(format!("missing field `failureRate` (`{field}` belongs to a failureRate rule)")),
                None => Err("expected {\"consecutiveFailures\": N} or {\"failureRate\": r, \"window\": ...}".into()),
            },
        }
    }
}

impl From<TripRule> for RawTrip {
    fn from(rule: TripRule) -> Self {
        let none = RawTrip {
            consecutive_failures: None,
            failure_rate: None,
            window: None,
            minimum_calls: None,
            slow_call_rate: None,
            slow_call_duration: None,
        };
        match rule {
            TripRule::ConsecutiveFailures(n) => RawTrip {
                consecutive_failures: Some(n),
                ..none
            },
            TripRule::FailureRate {
                failure_rate,
                window,
                minimum_calls,
                slow_calls,
            } => RawTrip {
                failure_rate: Some(failure_rate),
                window: Some(window),
                minimum_calls: Some(minimum_calls),
                slow_call_rate: slow_calls.map(|s| s.rate),
                slow_call_duration: slow_calls.map(|s| s.duration),
                ..none
            },
        }
    }
}

/// How long an open period lasts: a duration (`"30s"`, or a number of ms), or a backoff over
/// repeated trips `{"base": "5s", "multiplier": 2, "max": "5m"}` (multiplier defaults to 2;
/// base and max are required).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum OpenDuration {
    /// Every open period lasts this long.
    Fixed(ConfigDuration),
    /// The n-th open period in a row lasts `min(max, base·multiplier^(n−1))`.
    Backoff {
        /// The first period.
        base: ConfigDuration,
        /// Growth per reopen (>= 1).
        multiplier: f64,
        /// The cap (>= base).
        max: ConfigDuration,
    },
}

impl Default for OpenDuration {
    fn default() -> Self {
        OpenDuration::Fixed(DEFAULT_OPEN_DURATION)
    }
}

impl OpenDuration {
    /// The length of the n-th open period in a row (n = 1 for the first; 0 is taken as 1):
    /// `min(max, round(base_ns · multiplier^(n−1)))` nanoseconds.
    #[must_use]
    pub fn nth(&self, n: u32) -> Duration {
        match *self {
            OpenDuration::Fixed(d) => d.get(),
            OpenDuration::Backoff {
                base,
                multiplier,
                max,
            } => {
                let max_ns = max.nanos();
                let grown = base.nanos() as f64 * powu(multiplier, n.saturating_sub(1));
                let ns = if grown.is_nan() || grown >= max_ns as f64 {
                    max_ns
                } else {
                    (grown.round() as u64).min(max_ns)
                };
                Duration::from_nanos(ns)
            }
        }
    }

    fn check(&self, issues: &mut Issues) {
        match *self {
            OpenDuration::Fixed(d) => {
                if d.nanos() == 0 {
                    issues.push("openDuration", "must be > 0, got 0");
                }
            }
            OpenDuration::Backoff {
                base,
                multiplier,
                max,
            } => {
                if base.nanos() == 0 {
                    issues.push("openDuration.base", "must be > 0, got 0");
                }
                if !(multiplier.is_finite() && multiplier >= 1.0) {
                    issues.push(
                        "openDuration.multiplier",
                        format!("must be >= 1, got {}", Float(multiplier)),
                    );
                }
                if max < base {
                    issues.push(
                        "openDuration.max",
                        format!(
                            "must be >= openDuration.base ({}ms), got {}ms",
                            WholeMillis(base.get()),
                            WholeMillis(max.get())
                        ),
                    );
                }
            }
        }
    }
}

/// `x^k` by binary exponentiation: plain IEEE multiplications, so the result is the same bits
/// on every platform (unlike `powf`/`powi`, whose precision is unspecified).
fn powu(mut x: f64, mut k: u32) -> f64 {
    let mut acc = 1.0_f64;
    while k > 0 {
        if k & 1 == 1 {
            acc *= x;
        }
        k >>= 1;
        if k > 0 {
            x *= x;
        }
    }
    acc
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBackoff {
    base: ConfigDuration,
    #[serde(default = "default_multiplier")]
    multiplier: f64,
    max: ConfigDuration,
}

fn default_multiplier() -> f64 {
    DEFAULT_OPEN_MULTIPLIER
}

const OPEN_DURATION_EXPECTING: &str =
    "a duration (\"30s\", or milliseconds) or {\"base\": d, \"multiplier\": m, \"max\": d}";

struct OpenDurationVisitor;

impl<'de> Visitor<'de> for OpenDurationVisitor {
    type Value = OpenDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(OPEN_DURATION_EXPECTING)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<OpenDuration, E> {
        ConfigDuration::deserialize(IntoDeserializer::<E>::into_deserializer(v))
            .map(OpenDuration::Fixed)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<OpenDuration, E> {
        ConfigDuration::deserialize(IntoDeserializer::<E>::into_deserializer(v))
            .map(OpenDuration::Fixed)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<OpenDuration, E> {
        ConfigDuration::deserialize(IntoDeserializer::<E>::into_deserializer(v))
            .map(OpenDuration::Fixed)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<OpenDuration, E> {
        ConfigDuration::deserialize(IntoDeserializer::<E>::into_deserializer(v))
            .map(OpenDuration::Fixed)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OpenDuration, A::Error> {
        let raw = RawBackoff::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(OpenDuration::Backoff {
            base: raw.base,
            multiplier: raw.multiplier,
            max: raw.max,
        })
    }
}

impl<'de> Deserialize<'de> for OpenDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OpenDurationVisitor)
    }
}

impl Serialize for OpenDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            OpenDuration::Fixed(d) => d.serialize(s),
            OpenDuration::Backoff {
                base,
                multiplier,
                max,
            } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("base", base)?;
                m.serialize_entry("multiplier", multiplier)?;
                m.serialize_entry("max", max)?;
                m.end()
            }
        }
    }
}

/// `{"permittedCalls": 3, "successThreshold": 3}`; permittedCalls defaults to successThreshold,
/// which defaults to 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawHalfOpen")]
#[non_exhaustive]
pub struct HalfOpenConfig {
    /// Trial calls in flight at once (>= 1); others are rejected as `circuitOpen`.
    pub permitted_calls: u32,
    /// Successful trials that close the breaker (>= 1).
    pub success_threshold: u32,
}

impl HalfOpenConfig {
    /// `permitted_calls` trials at once, `success_threshold` successes to close.
    #[must_use]
    pub fn new(permitted_calls: u32, success_threshold: u32) -> HalfOpenConfig {
        HalfOpenConfig {
            permitted_calls,
            success_threshold,
        }
    }
}

impl Default for HalfOpenConfig {
    fn default() -> Self {
        HalfOpenConfig {
            permitted_calls: DEFAULT_SUCCESS_THRESHOLD,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHalfOpen {
    #[serde(default)]
    permitted_calls: Option<u32>,
    #[serde(default = "default_success_threshold")]
    success_threshold: u32,
}

fn default_success_threshold() -> u32 {
    DEFAULT_SUCCESS_THRESHOLD
}

impl From<RawHalfOpen> for HalfOpenConfig {
    fn from(raw: RawHalfOpen) -> Self {
        HalfOpenConfig {
            permitted_calls: raw.permitted_calls.unwrap_or(raw.success_threshold),
            success_threshold: raw.success_threshold,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

/// The answer to [`CircuitBreaker::try_acquire`]. Deliberately exhaustive: bindings map it
/// with one table and no catch-all arm.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Run the call, then [`CircuitBreaker::record`] (or [`CircuitBreaker::release`]) the
    /// permit.
    Admitted(Permit),
    /// Refused as `circuitOpen`.
    Rejected {
        /// In `open`: exactly the time left until `halfOpen` is possible. `None` in
        /// `forcedOpen` (only `reset` reopens it) and in `halfOpen` with every trial slot taken
        /// (a slot frees when a trial call ends, which cannot be predicted).
        retry_after: Option<Duration>,
    },
}

impl Admission {
    /// Whether the call may run.
    #[must_use]
    pub fn is_admitted(&self) -> bool {
        matches!(self, Admission::Admitted(_))
    }

    /// The permit, when admitted.
    #[must_use]
    pub fn permit(&self) -> Option<Permit> {
        match self {
            Admission::Admitted(p) => Some(*p),
            Admission::Rejected { .. } => None,
        }
    }

    /// The rejection's `retry_after` (`None` when admitted or unknown).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Admission::Admitted(_) => None,
            Admission::Rejected { retry_after } => *retry_after,
        }
    }
}

/// Proof of admission: hand it back to [`CircuitBreaker::record`] or
/// [`CircuitBreaker::release`] exactly once. Recording a permit twice is a misuse the breaker
/// cannot detect (a permit is `Copy`); it never underflows, but a twice-recorded trial frees
/// two slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permit {
    started: Instant,
    generation: u32,
    trial: bool,
}

impl Permit {
    /// Rebuild a permit from its parts (for bindings that carry permits across a boundary as
    /// plain values).
    #[must_use]
    pub const fn from_parts(generation: u32, started: Instant, trial: bool) -> Permit {
        Permit {
            started,
            generation,
            trial,
        }
    }

    /// The (clamped) instant it was admitted at; a call's duration is `record_now − started`.
    #[must_use]
    pub const fn started(&self) -> Instant {
        self.started
    }

    /// The state generation that issued it.
    #[must_use]
    pub const fn generation(&self) -> u32 {
        self.generation
    }

    /// Whether it is a half-open trial.
    #[must_use]
    pub const fn is_trial(&self) -> bool {
        self.trial
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Outcome {
    /// It worked.
    Success,
    /// It failed in a way that speaks about the dependency's health.
    Failure,
    /// It does not count (e.g. a 4xx): not recorded in the window, frees a trial slot.
    Ignored,
}

impl Outcome {
    /// The outcome's public name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Ignored => "ignored",
        }
    }

    /// The outcome named `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Outcome> {
        [Outcome::Success, Outcome::Failure, Outcome::Ignored]
            .into_iter()
            .find(|o| o.as_str() == name)
    }
}

/// Counters and gauges, as of the last input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The state now (`open` until an acquire or `handle_timeout` moves it on).
    pub state: BreakerState,
    /// Calls admitted (trials included).
    pub admitted: u64,
    /// Calls rejected as `circuitOpen`.
    pub rejected: u64,
    /// Outcomes recorded as success (stale permits included).
    pub successes: u64,
    /// Outcomes recorded as failure (stale permits included).
    pub failures: u64,
    /// Outcomes recorded as ignored.
    pub ignored: u64,
    /// Successes and failures slower than the slow-call duration.
    pub slow_calls: u64,
    /// Outcomes of permits from an earlier state generation (counted, but drove nothing).
    pub stale: u64,
    /// State changes.
    pub transitions: u64,
    /// Permits of the current generation not yet recorded or released.
    pub in_flight: u64,
    /// Trial permits in flight (0 outside `halfOpen`).
    pub half_open_in_flight: u64,
    /// Successful trials so far in this half-open period.
    pub half_open_successes: u64,
    /// Failures in a row in `closed`.
    pub consecutive_failures: u64,
    /// n of the current (or next) open period in a row (1 after reaching `closed`).
    pub open_streak: u64,
    /// Calls the window holds.
    pub window_calls: u64,
    /// Failures the window holds.
    pub window_failures: u64,
    /// Slow calls the window holds.
    pub window_slow_calls: u64,
    /// Events dropped because the host did not drain them.
    pub events_dropped: u64,
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

/// A breaker's state as a few serializable fields (counters are not included: they belong to
/// the process). Instants are stored relative to the snapshot's last seen instant, so a
/// snapshot restores into a process whose clock has another origin.
///
/// JSON: `{"state": "open", "openStreak": 2, "openRemaining": 1500, "consecutiveFailures": 0,
/// "halfOpenSuccesses": 0, "window"?: {"calls": {"size": 10, "outcomes": "ssfF"}} |
/// {"time": {"bucketWidth": 6000, "buckets": 10, "recent": [[age, calls, failures, slow]]}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The state.
    pub state: BreakerState,
    /// n of the current (or next) open period.
    pub open_streak: u32,
    /// When `open`: the time left until `halfOpen` is possible (ms in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_remaining: Option<ConfigDuration>,
    /// Failures in a row (in `closed`).
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Successful trials so far (in `halfOpen`).
    #[serde(default)]
    pub half_open_successes: u32,
    /// The window's contents, for rate rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSnapshot>,
}

/// A window's contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[non_exhaustive]
pub enum WindowSnapshot {
    /// A count window of `size` calls.
    Calls {
        /// The window's size N.
        size: u32,
        /// The held outcomes, oldest first: `s` success, `f` failure, `S`/`F` the same but slow.
        outcomes: String,
    },
    /// A time window.
    Time {
        /// The bucket width (ms in JSON).
        bucket_width: ConfigDuration,
        /// The bucket count.
        buckets: u32,
        /// Non-empty buckets as `[age, calls, failures, slow]`; age 0 is the current partial
        /// bucket, age k the one k buckets before it.
        recent: Vec<[u64; 4]>,
    },
}

// The config and snapshot types read from a tree (`crate::read`), as their derived
// `Deserialize` reads them.

impl FromTree for BreakerConfig {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        read_struct!(
            node,
            at,
            "struct BreakerConfig",
            BreakerConfig {
                trip: "trip" = TripRule::default(),
                open_duration: "openDuration" = OpenDuration::default(),
                half_open: "halfOpen" = HalfOpenConfig::default(),
                share: "share" = None,
            }
        )
    }
}

impl FromTree for TripRule {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        read_struct!(
            node,
            at,
            "struct RawTrip",
            RawTrip {
                consecutive_failures: "consecutiveFailures" = None,
                failure_rate: "failureRate" = None,
                window: "window" = None,
                minimum_calls: "minimumCalls" = None,
                slow_call_rate: "slowCallRate" = None,
                slow_call_duration: "slowCallDuration" = None,
            }
        )
        .and_then(|raw| TripRule::try_from(raw).map_err(|e| read::custom(&e, at)))
    }
}

impl FromTree for WindowConfig {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        read_struct!(
            node,
            at,
            "struct RawWindow",
            RawWindow {
                calls: "calls" = None,
                duration: "duration" = None,
                buckets: "buckets" = None,
            }
        )
        .and_then(|raw| WindowConfig::try_from(raw).map_err(|e| read::custom(&e, at)))
    }
}

impl FromTree for OpenDuration {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        match node {
            Node::Map(_) => {
                read_struct!(
                    node,
                    at,
                    "struct RawBackoff",
                    OpenDuration::Backoff {
                        base: "base",
                        multiplier: "multiplier" = default_multiplier(),
                        max: "max",
                    }
                )
            }
            Node::PosInt(_) | Node::NegInt(_) | Node::Float(_) | Node::Str(_) => {
                ConfigDuration::read(node, at).map(OpenDuration::Fixed)
            }
            other => Err(read::invalid_type(&other, OPEN_DURATION_EXPECTING, at)),
        }
    }
}

impl FromTree for HalfOpenConfig {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        read_struct!(
            node,
            at,
            "struct RawHalfOpen",
            RawHalfOpen {
                permitted_calls: "permittedCalls" = None,
                success_threshold: "successThreshold" = default_success_threshold(),
            }
        )
        .map(HalfOpenConfig::from)
    }
}

impl FromTree for BreakerSnapshot {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        read_struct!(
            node,
            at,
            "struct BreakerSnapshot",
            BreakerSnapshot {
                state: "state",
                open_streak: "openStreak",
                open_remaining: "openRemaining" = None,
                consecutive_failures: "consecutiveFailures" = 0,
                half_open_successes: "halfOpenSuccesses" = 0,
                window: "window" = None,
            }
        )
    }
}

impl FromTree for WindowSnapshot {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        const VARIANTS: &[&str] = &["calls", "time"];
        let (name, value) = read::variant(node, at)?;
        let Some(index) = VARIANTS.iter().position(|v| *v == name) else {
            return Err(<TreeError as de::Error>::unknown_variant(&name, VARIANTS).at(at));
        };
        let at = &At::Key(at, &name);
        let Some(node) = value else {
            return Err(read::unit_variant_for_struct(at));
        };
        if index == 0 {
            read_struct!(
                node,
                at,
                "struct variant",
                WindowSnapshot::Calls {
                    size: "size",
                    outcomes: "outcomes",
                }
            )
        } else {
            read_struct!(
                node,
                at,
                "struct variant",
                WindowSnapshot::Time {
                    bucket_width: "bucketWidth",
                    buckets: "buckets",
                    recent: "recent",
                }
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The breaker
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    fn for_rule(rule: &TripRule) -> Option<Box<Window>> {
        match rule.window()? {
            WindowConfig::Calls(n) => Some(Box::new(Window::Count(CountWindow::new(*n)))),
            w @ WindowConfig::Time { buckets, .. } => Some(Box::new(Window::Time(
                TimeWindow::new(w.bucket_nanos().unwrap_or(1), *buckets),
            ))),
        }
    }

    /// Whether this window has the shape `rule` asks for (so its contents still fit).
    fn fits(&self, rule: &TripRule) -> bool {
        match (self, rule.window()) {
            (Window::Count(w), Some(WindowConfig::Calls(n))) => w.size() == *n,
            (Window::Time(w), Some(cfg @ WindowConfig::Time { buckets, .. })) => {
                w.count() == *buckets && Some(w.width()) == cfg.bucket_nanos()
            }
            _ => false,
        }
    }

    fn totals_at(&self, now: Instant) -> Totals {
        match self {
            Window::Count(w) => w.totals(),
            Window::Time(w) => w.totals_at(now),
        }
    }

    fn clear(&mut self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Window::Count(w) => w.heap_bytes(),
            Window::Time(w) => w.heap_bytes(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    admitted: u64,
    rejected: u64,
    successes: u64,
    failures: u64,
    ignored: u64,
    slow_calls: u64,
    stale: u64,
    transitions: u64,
}

/// A circuit breaker. See the module docs for the exact rules.
///
/// After any input, drain [`CircuitBreaker::poll_event`] until `None`, then re-read
/// [`CircuitBreaker::poll_timeout`].
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: Arc<BreakerConfig>,
    window: Option<Box<Window>>,
    events: EventQueue,
    clock: Monotonic,
    /// When `open`: the instant `halfOpen` becomes possible.
    open_until: Instant,
    counters: Counters,
    generation: u32,
    /// n of the current (in `open`/`halfOpen`) or next (in `closed`) open period.
    open_streak: u32,
    consecutive_failures: u32,
    /// Permits of the current generation not yet recorded or released.
    in_flight: u32,
    half_open_successes: u32,
    state: BreakerState,
}

impl CircuitBreaker {
    /// A closed breaker; `Err` when the config does not validate.
    pub fn new(config: BreakerConfig) -> Result<CircuitBreaker, ConfigError> {
        if config.share.is_some() {
            // A standalone breaker has no store to share through: refuse rather than ignore.
            return Err(ConfigError::new(
                "share",
                "only a pipeline with a store can share its breaker",
            ));
        }
        CircuitBreaker::with_shared_config(Arc::new(config))
    }

    /// A closed breaker sharing `config` with others (keyed breakers: one config allocation
    /// for every key).
    pub fn with_shared_config(config: Arc<BreakerConfig>) -> Result<CircuitBreaker, ConfigError> {
        config.validate()?;
        Ok(CircuitBreaker {
            window: Window::for_rule(&config.trip),
            config,
            events: EventQueue::new(),
            clock: Monotonic::new(),
            open_until: Instant::ZERO,
            counters: Counters::default(),
            generation: 0,
            open_streak: 1,
            consecutive_failures: 0,
            in_flight: 0,
            half_open_successes: 0,
            state: BreakerState::Closed,
        })
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The shared config in force.
    #[must_use]
    pub fn shared_config(&self) -> &Arc<BreakerConfig> {
        &self.config
    }

    /// The state. `open` stays `open` past its end until an acquire or `handle_timeout`.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Ask to run a call at `now`. In `open`, the first acquire with `now ≥ openUntil` moves the
    /// breaker to `halfOpen` and takes a trial slot.
    pub fn try_acquire(&mut self, now: Instant) -> Admission {
        let now = self.clock.observe(now);
        match self.state {
            BreakerState::Closed | BreakerState::Disabled => self.admit(now, false),
            BreakerState::HalfOpen => self.try_trial(now),
            BreakerState::Open => {
                if now >= self.open_until {
                    self.enter(BreakerState::HalfOpen, now);
                    self.try_trial(now)
                } else {
                    let left = self.open_until.saturating_duration_since(now);
                    self.reject(now, Some(left))
                }
            }
            BreakerState::ForcedOpen => self.reject(now, None),
        }
    }

    /// Ask to run a call without its instant, when the instant cannot matter: under the same
    /// conditions as [`CircuitBreaker::success_needs_time`] (a `consecutiveFailures` rule, in
    /// `closed` or `disabled`) the call is admitted, at the latest instant seen: `Some`.
    /// Otherwise changes nothing and returns `None`: read the clock and
    /// [`CircuitBreaker::try_acquire`]. For hosts whose clock never goes backwards.
    ///
    /// There, an acquire always admits, and its instant only raises the time guard (read by
    /// nothing in these states) and becomes the permit's start, which only a slow-call rule
    /// reads. So it is exact as long as the rule stays: should a
    /// [`CircuitBreaker::reconfigure`] add a slow-call rule while such a permit is out, that
    /// call's duration is measured from the earlier instant (a host that reconfigures mid-call
    /// to a slow-call rule should not use this).
    pub fn try_acquire_untimed(&mut self) -> Option<Admission> {
        if self.success_needs_time() {
            return None;
        }
        let at = self.clock.last();
        Some(self.admit(at, false))
    }

    fn admit(&mut self, now: Instant, trial: bool) -> Admission {
        self.counters.admitted += 1;
        self.in_flight = self.in_flight.saturating_add(1);
        Admission::Admitted(Permit {
            started: now,
            generation: self.generation,
            trial,
        })
    }

    fn try_trial(&mut self, now: Instant) -> Admission {
        if self.in_flight < self.config.half_open.permitted_calls {
            self.admit(now, true)
        } else {
            self.reject(now, None)
        }
    }

    fn reject(&mut self, now: Instant, retry_after: Option<Duration>) -> Admission {
        self.counters.rejected += 1;
        self.events.push(Event {
            at: now,
            kind: EventKind::Rejected {
                reason: ErrorKind::CircuitOpen,
                retry_after,
            },
        });
        Admission::Rejected { retry_after }
    }

    /// Record how the call admitted with `permit` ended, at `now` (its duration, for the
    /// slow-call rule, is `now − permit.started()`).
    ///
    /// In `closed` this drives the trip rule. In `halfOpen` a trial of the current generation
    /// frees its slot; a success counts towards `successThreshold`, a failure reopens the
    /// breaker, and so does a slow trial when the rule has a slow-call part (a dependency
    /// that tripped the breaker by slowness and still answers slowly is not healthy; counting
    /// it as a success would close the breaker only for it to trip again `minimumCalls` later).
    /// `ignored` only frees the slot. In `disabled` only the counters move. A permit of an
    /// earlier generation only moves the counters.
    pub fn record(&mut self, permit: Permit, outcome: Outcome, now: Instant) {
        let now = self.clock.observe(now);
        let slow = outcome != Outcome::Ignored && self.is_slow(permit, now);
        match outcome {
            Outcome::Success => self.counters.successes += 1,
            Outcome::Failure => self.counters.failures += 1,
            Outcome::Ignored => self.counters.ignored += 1,
        }
        self.counters.slow_calls += u64::from(slow);
        if permit.generation != self.generation {
            self.counters.stale += 1;
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        match self.state {
            BreakerState::Closed => self.record_closed(outcome, slow, now),
            BreakerState::HalfOpen => self.record_trial(outcome, slow, now),
            // Disabled records metrics only; open and forcedOpen never issue permits.
            BreakerState::Disabled | BreakerState::Open | BreakerState::ForcedOpen => {}
        }
    }

    /// Whether recording a *success* right now depends on the instant it is recorded at.
    ///
    /// `false` only under a `consecutiveFailures` rule (no window, no slow-call rule) in
    /// `closed` or `disabled`: there a success resets the consecutive count (`closed`) and
    /// moves the counters, and nothing else. There is no duration to measure, no window to
    /// age, no transition to time-stamp, and the time guard's latest instant is read only by
    /// a window or an open period, neither of which exists in these states. So for a host
    /// whose clock never goes backwards, a success recorded at any instant between the
    /// permit's start and the call's true end leaves the same state, metrics, snapshot and
    /// events; [`CircuitBreaker::try_record_success_untimed`] uses that to spare the host a
    /// clock read per call.
    ///
    /// Everything else needs the real instant: a failure may open the breaker (the open
    /// period counts from it), a half-open success may close it (the event carries the
    /// instant), a rate rule's window ages by time (time windows) or may trip on a success
    /// (count windows), and a slow-call rule measures the call.
    #[must_use]
    pub fn success_needs_time(&self) -> bool {
        !(matches!(self.config.trip, TripRule::ConsecutiveFailures(_))
            && matches!(self.state, BreakerState::Closed | BreakerState::Disabled))
    }

    /// Record a success without its end instant when [`CircuitBreaker::success_needs_time`]
    /// says the instant does not matter (it is recorded at the latest instant seen): `true`.
    /// Otherwise changes nothing and returns `false`: read the clock and call
    /// [`CircuitBreaker::record`]. Only for hosts whose clock never goes backwards (with one
    /// that does, the skipped instant would have raised the time guard).
    pub fn try_record_success_untimed(&mut self, permit: Permit) -> bool {
        if self.success_needs_time() {
            return false;
        }
        let at = self.clock.last();
        self.record(permit, Outcome::Success, at);
        true
    }

    fn is_slow(&self, permit: Permit, now: Instant) -> bool {
        match &self.config.trip {
            TripRule::FailureRate {
                slow_calls: Some(rule),
                ..
            } => now.nanos_since(permit.started) > rule.duration.nanos(),
            _ => false,
        }
    }

    fn record_closed(&mut self, outcome: Outcome, slow: bool, now: Instant) {
        let failed = match outcome {
            Outcome::Ignored => return,
            Outcome::Success => {
                self.consecutive_failures = 0;
                false
            }
            Outcome::Failure => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                true
            }
        };
        let trip = match &self.config.trip {
            TripRule::ConsecutiveFailures(n) => self.consecutive_failures >= *n,
            TripRule::FailureRate {
                failure_rate,
                minimum_calls,
                slow_calls,
                ..
            } => {
                let totals = match self.window.as_deref_mut() {
                    Some(Window::Count(w)) => {
                        w.record(failed, slow);
                        w.totals()
                    }
                    Some(Window::Time(w)) => {
                        w.record(now, failed, slow);
                        w.totals_at(now)
                    }
                    None => return,
                };
                rate_reached(totals, *minimum_calls, *failure_rate, slow_calls.as_ref())
            }
        };
        if trip {
            self.open(now);
        }
    }

    fn record_trial(&mut self, outcome: Outcome, slow: bool, now: Instant) {
        match outcome {
            Outcome::Ignored => {}
            Outcome::Failure => self.open(now),
            Outcome::Success if slow => self.open(now),
            Outcome::Success => {
                self.half_open_successes = self.half_open_successes.saturating_add(1);
                if self.half_open_successes >= self.config.half_open.success_threshold {
                    self.enter(BreakerState::Closed, now);
                }
            }
        }
    }

    /// Abandon a permit without an outcome (the call was cancelled before it said anything
    /// about the dependency): frees its trial slot when it is a trial of the current
    /// generation; counts nothing.
    pub fn release(&mut self, permit: Permit, now: Instant) {
        self.clock.observe(now);
        if permit.generation == self.generation {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    /// When `open`: the instant `halfOpen` becomes possible (it may already have passed);
    /// otherwise `None`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == BreakerState::Open).then_some(self.open_until)
    }

    /// Move `open` to `halfOpen` when its time has come (for hosts that want the change, and
    /// its event, when it is due rather than at the next acquire).
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.state == BreakerState::Open && now >= self.open_until {
            self.enter(BreakerState::HalfOpen, now);
        }
    }

    /// Adopt an open state decided elsewhere (a fleet's shared breaker): from `closed` or
    /// `halfOpen`, open until `until` (a new generation, as any open); in `open`, stay open
    /// at least until `until`. `forcedOpen` and `disabled` are the operator's: unchanged.
    pub fn open_until_at_least(&mut self, until: Instant, now: Instant) {
        let now = self.clock.observe(now);
        match self.state {
            BreakerState::Closed | BreakerState::HalfOpen => {
                self.open_until = until.max(now);
                self.enter(BreakerState::Open, now);
            }
            BreakerState::Open => self.open_until = self.open_until.max(until),
            BreakerState::ForcedOpen | BreakerState::Disabled => {}
        }
    }

    /// Reject every call (with no `retryAfter`) until [`CircuitBreaker::reset`].
    pub fn force_open(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.state != BreakerState::ForcedOpen {
            self.enter(BreakerState::ForcedOpen, now);
        }
    }

    /// Admit every call, recording metrics only, until [`CircuitBreaker::reset`].
    pub fn disable(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if self.state != BreakerState::Disabled {
            self.enter(BreakerState::Disabled, now);
        }
    }

    /// Back to `closed` from anywhere, with an empty window and open streak n = 1. Always
    /// starts a new generation (permits taken before the reset no longer count), even when
    /// already closed.
    pub fn reset(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        self.enter(BreakerState::Closed, now);
    }

    /// Open from `closed` (period n = open streak, which is 1) or reopen from `halfOpen`
    /// (period n + 1).
    fn open(&mut self, now: Instant) {
        if self.state == BreakerState::HalfOpen {
            self.open_streak = self.open_streak.saturating_add(1);
        }
        self.open_until = now.saturating_add(self.config.open_duration.nth(self.open_streak));
        self.enter(BreakerState::Open, now);
    }

    /// Start a new generation in state `to`: permits of the old one go stale, and the
    /// per-state counts start afresh. Emits `stateChanged` only when the state differs.
    fn enter(&mut self, to: BreakerState, now: Instant) {
        let from = self.state;
        self.generation = self.generation.wrapping_add(1);
        self.in_flight = 0;
        self.half_open_successes = 0;
        self.consecutive_failures = 0;
        if let Some(w) = self.window.as_deref_mut() {
            w.clear();
        }
        if to == BreakerState::Closed {
            self.open_streak = 1;
        }
        self.state = to;
        if from != to {
            self.counters.transitions += 1;
            self.events.push(Event {
                at: now,
                kind: EventKind::StateChanged { from, to },
            });
        }
    }

    /// The next queued event (`stateChanged`, `rejected`), oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// Counters and gauges as of the last input (window gauges are aged to the last instant
    /// seen).
    #[must_use]
    pub fn metrics(&self) -> BreakerMetrics {
        let c = self.counters;
        let w = self
            .window
            .as_deref()
            .map(|w| w.totals_at(self.clock.last()))
            .unwrap_or_default();
        BreakerMetrics {
            state: self.state,
            admitted: c.admitted,
            rejected: c.rejected,
            successes: c.successes,
            failures: c.failures,
            ignored: c.ignored,
            slow_calls: c.slow_calls,
            stale: c.stale,
            transitions: c.transitions,
            in_flight: u64::from(self.in_flight),
            half_open_in_flight: if self.state == BreakerState::HalfOpen {
                u64::from(self.in_flight)
            } else {
                0
            },
            half_open_successes: u64::from(self.half_open_successes),
            consecutive_failures: u64::from(self.consecutive_failures),
            open_streak: u64::from(self.open_streak),
            window_calls: w.calls,
            window_failures: w.failures,
            window_slow_calls: w.slow,
            events_dropped: self.events.dropped(),
        }
    }

    /// Whether a keyed map may drop this breaker at `now` and later rebuild it from the config
    /// without anyone noticing: `closed` (or `disabled`, as the keyed map's contract asks; a
    /// rebuilt one comes back `closed`), no permit in flight, and no failure or slow call
    /// remembered (a time window forgets them as its buckets age out).
    #[must_use]
    pub fn is_idle(&self, now: Instant) -> bool {
        let now = now.max(self.clock.last());
        matches!(self.state, BreakerState::Closed | BreakerState::Disabled)
            && self.in_flight == 0
            // Under a rate rule the consecutive count is only a gauge: the window decides.
            && (self.consecutive_failures == 0 || self.window.is_some())
            && self.window.as_deref().is_none_or(|w| {
                let t = w.totals_at(now);
                t.failures == 0 && t.slow == 0
            })
    }

    /// Heap bytes this breaker owns besides its (possibly shared) config: the window's
    /// buffers (the event queue's lazily allocated buffer is not counted).
    #[must_use]
    pub fn window_heap_bytes(&self) -> usize {
        self.window
            .as_deref()
            .map_or(0, |w| size_of::<Window>() + w.heap_bytes())
    }

    /// The state as a few serializable fields. Allocates (it is not a hot-path call).
    #[must_use]
    pub fn snapshot(&self) -> BreakerSnapshot {
        let last = self.clock.last();
        let window = self.window.as_deref().map(|w| match w {
            Window::Count(w) => WindowSnapshot::Calls {
                size: w.size(),
                outcomes: w
                    .outcomes()
                    .map(|(failed, slow)| match (failed, slow) {
                        (false, false) => 's',
                        (true, false) => 'f',
                        (false, true) => 'S',
                        (true, true) => 'F',
                    })
                    .collect(),
            },
            Window::Time(w) => {
                // Youngest first, as `live` gives them.
                let recent: Vec<[u64; 4]> = w
                    .live(last)
                    .map(|(age, b)| {
                        [
                            age,
                            u64::from(b.calls),
                            u64::from(b.failures),
                            u64::from(b.slow),
                        ]
                    })
                    .collect();
                WindowSnapshot::Time {
                    bucket_width: ConfigDuration(Duration::from_nanos(w.width())),
                    buckets: w.count(),
                    recent,
                }
            }
        });
        BreakerSnapshot {
            state: self.state,
            open_streak: self.open_streak,
            open_remaining: (self.state == BreakerState::Open)
                .then(|| ConfigDuration(self.open_until.saturating_duration_since(last))),
            consecutive_failures: self.consecutive_failures,
            half_open_successes: self.half_open_successes,
            window,
        }
    }

    /// Take the state of `snapshot` at `now`: an open period ends `openRemaining` after `now`,
    /// time buckets keep their age in whole buckets. Starts a new generation (earlier permits
    /// go stale; no trial is in flight). Counters are kept. Refuses, changing nothing, a
    /// snapshot that does not fit this breaker's config (another window shape, a count the
    /// trip rule would already have acted on...).
    pub fn restore(&mut self, snapshot: &BreakerSnapshot, now: Instant) -> Result<(), ConfigError> {
        self.check_snapshot(snapshot)?;
        let now = self.clock.observe(now);
        self.enter(snapshot.state, now);
        // Each count means something in one state only; `enter` zeroed the others.
        match snapshot.state {
            BreakerState::Closed => self.consecutive_failures = snapshot.consecutive_failures,
            BreakerState::HalfOpen => self.half_open_successes = snapshot.half_open_successes,
            _ => {}
        }
        if snapshot.state != BreakerState::Closed {
            self.open_streak = snapshot.open_streak;
        }
        self.open_until = match snapshot.open_remaining {
            Some(d) if snapshot.state == BreakerState::Open => now.saturating_add(d.get()),
            _ => Instant::ZERO,
        };
        match (self.window.as_deref_mut(), &snapshot.window) {
            (Some(Window::Count(w)), Some(WindowSnapshot::Calls { outcomes, .. })) => {
                w.clear();
                for c in outcomes.chars() {
                    w.record(matches!(c, 'f' | 'F'), matches!(c, 'S' | 'F'));
                }
            }
            (Some(Window::Time(w)), Some(WindowSnapshot::Time { recent, .. })) => {
                w.load(
                    now,
                    recent.iter().map(|[age, calls, failures, slow]| {
                        (*age, *calls as u32, *failures as u32, *slow as u32)
                    }),
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn check_snapshot(&self, s: &BreakerSnapshot) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if s.open_streak == 0 {
            issues.push("openStreak", "must be >= 1, got 0");
        }
        if s.state == BreakerState::Open && s.open_remaining.is_none() {
            issues.push("openRemaining", "required when the state is open");
        }
        if let (BreakerState::Closed, TripRule::ConsecutiveFailures(n)) =
            (s.state, &self.config.trip)
        {
            if s.consecutive_failures >= *n {
                issues.push(
                    "consecutiveFailures",
                    format!(
                        "must be < trip.consecutiveFailures ({n}) in a closed breaker, got {}",
                        s.consecutive_failures
                    ),
                );
            }
        }
        let threshold = self.config.half_open.success_threshold;
        if s.state == BreakerState::HalfOpen && s.half_open_successes >= threshold {
            issues.push(
                "halfOpenSuccesses",
                format!(
                    "must be < halfOpen.successThreshold ({threshold}), got {}",
                    s.half_open_successes
                ),
            );
        }
        match (self.config.trip.window(), &s.window) {
            (None, None) => {}
            (None, Some(_)) => issues.push(
                "window",
                "the snapshot holds a window but this breaker's trip rule keeps none",
            ),
            (Some(_), None) => {
                issues.push("window", "missing: this breaker's trip rule keeps a window")
            }
            (Some(WindowConfig::Calls(n)), Some(WindowSnapshot::Calls { size, outcomes })) => {
                if size != n {
                    issues.push(
                        "window.calls.size",
                        format!(
                            "the snapshot's window holds {size} calls, this breaker's holds {n}"
                        ),
                    );
                }
                if outcomes.chars().count() > *size as usize {
                    issues.push(
                        "window.calls.outcomes",
                        format!("holds more than {size} outcomes"),
                    );
                }
                if let Some(bad) = outcomes
                    .chars()
                    .find(|c| !matches!(c, 's' | 'f' | 'S' | 'F'))
                {
                    issues.push(
                        "window.calls.outcomes",
                        format!(
                            "unknown outcome {} (expected s, f, S or F)",
                            QuotedChar(bad)
                        ),
                    );
                }
            }
            (
                Some(cfg @ WindowConfig::Time { buckets: n, .. }),
                Some(WindowSnapshot::Time {
                    bucket_width,
                    buckets,
                    recent,
                }),
            ) => {
                let width = cfg.bucket_nanos().unwrap_or(0);
                if bucket_width.nanos() != width || buckets != n {
                    issues.push(
                        "window.time",
                        format!(
                            "the snapshot's window is {buckets} buckets of {}ns, this breaker's is {n} buckets of {width}ns",
                            bucket_width.nanos()
                        ),
                    );
                }
                for (i, [age, calls, failures, slow]) in recent.iter().enumerate() {
                    if age >= &u64::from(*n)
                        || calls > &u64::from(u32::MAX)
                        || failures > calls
                        || slow > calls
                    {
                        issues.push(
                            format!("window.time.recent[{i}]"),
                            format!("[{age}, {calls}, {failures}, {slow}] is not [age < {n}, calls, failures <= calls, slow <= calls]"),
                        );
                    }
                }
            }
            (Some(WindowConfig::Calls(n)), Some(WindowSnapshot::Time { .. })) => issues.push(
                "window",
                format!("the snapshot holds a time window, this breaker a window of {n} calls"),
            ),
            (Some(WindowConfig::Time { .. }), Some(WindowSnapshot::Calls { size, .. })) => issues
                .push(
                    "window",
                    format!(
                        "the snapshot holds a window of {size} calls, this breaker a time window"
                    ),
                ),
        }
        issues.finish(())
    }

    /// Put `config` in force at `now`, keeping what still fits: the state, the open period
    /// under way (a new `openDuration` applies from the next one), the open streak, the
    /// consecutive count and half-open successes (capped one below a lowered threshold, so the
    /// next failure trips, or the next success closes, exactly as an uncapped count would),
    /// trials in flight, and the window when its shape (size, or bucket width and count) is unchanged —
    /// otherwise the window starts empty. An invalid config is refused and nothing changes.
    pub fn reconfigure(&mut self, config: BreakerConfig, now: Instant) -> Result<(), ConfigError> {
        self.reconfigure_shared(Arc::new(config), now)
    }

    /// [`CircuitBreaker::reconfigure`] with a shared config.
    pub fn reconfigure_shared(
        &mut self,
        config: Arc<BreakerConfig>,
        now: Instant,
    ) -> Result<(), ConfigError> {
        config.validate()?;
        self.clock.observe(now);
        // A count at or past a lower threshold acts at the next outcome either way; capping it
        // keeps "closed ⇒ count < N" (and so every snapshot restorable) without changing what
        // happens next.
        if let TripRule::ConsecutiveFailures(n) = config.trip {
            self.consecutive_failures = self.consecutive_failures.min(n.saturating_sub(1));
        }
        let threshold = config.half_open.success_threshold;
        self.half_open_successes = self.half_open_successes.min(threshold.saturating_sub(1));
        let keep = self.window.as_deref().is_some_and(|w| w.fits(&config.trip));
        if !keep {
            self.window = Window::for_rule(&config.trip);
        }
        self.config = config;
        Ok(())
    }
}

/// Whether the window's rates reach their thresholds (`>=`), once it holds `minimum` calls.
fn rate_reached(t: Totals, minimum: u32, failure_rate: f64, slow: Option<&SlowCallRule>) -> bool {
    if t.calls == 0 || t.calls < u64::from(minimum) {
        return false;
    }
    // A quotient of two integers is correctly rounded, as is the configured decimal, so
    // `7/10 >= 0.7` holds exactly where `7 >= 0.7 * 10` (= 7.000000000000001) would not.
    let calls = t.calls as f64;
    t.failures as f64 / calls >= failure_rate
        || slow.is_some_and(|s| t.slow as f64 / calls >= s.rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }

    fn breaker(json: &str) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::from_json(json).unwrap()).unwrap()
    }

    fn acquire(b: &mut CircuitBreaker, t: u64) -> Permit {
        b.try_acquire(ms(t)).permit().expect("admitted")
    }

    fn drain(b: &mut CircuitBreaker) -> Vec<EventKind> {
        std::iter::from_fn(|| b.poll_event())
            .map(|e| e.kind)
            .collect()
    }

    #[test]
    fn idle_consecutive_breaker_fits_in_128_bytes() {
        assert!(
            size_of::<CircuitBreaker>() <= 128,
            "{} bytes",
            size_of::<CircuitBreaker>()
        );
        let b = CircuitBreaker::new(BreakerConfig::default()).unwrap();
        assert_eq!(b.window_heap_bytes(), 0);
        // A permit is two words: cheap to copy across every binding.
        assert!(size_of::<Permit>() <= 16);
        let w = breaker(r#"{"trip": {"failureRate": 0.5, "window": {"calls": 100}}}"#);
        assert_eq!(w.window_heap_bytes(), size_of::<Window>() + 2 * 2 * 8);
        let t = breaker(
            r#"{"trip": {"failureRate": 0.5, "window": {"duration": "60s", "buckets": 10}}}"#,
        );
        assert_eq!(t.window_heap_bytes(), size_of::<Window>() + 10 * 24);
    }

    #[test]
    fn breakers_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<CircuitBreaker>();
        send_sync::<BreakerSnapshot>();
    }

    #[test]
    fn defaults_match_the_design() {
        let c = BreakerConfig::from_json("{}").unwrap();
        assert_eq!(c, BreakerConfig::default());
        assert_eq!(c.trip, TripRule::ConsecutiveFailures(5));
        assert_eq!(
            c.open_duration,
            OpenDuration::Fixed(ConfigDuration::from_secs(30))
        );
        assert_eq!(
            c.half_open,
            HalfOpenConfig {
                permitted_calls: 3,
                success_threshold: 3
            }
        );
        let c = BreakerConfig::from_json(r#"{"halfOpen": {"successThreshold": 2}}"#).unwrap();
        assert_eq!(
            c.half_open.permitted_calls, 2,
            "permittedCalls defaults to successThreshold"
        );
        let c =
            BreakerConfig::from_json(r#"{"trip": {"failureRate": 0.5, "window": {"calls": 40}}}"#)
                .unwrap();
        assert!(matches!(
            c.trip,
            TripRule::FailureRate {
                minimum_calls: 40,
                ..
            }
        ));
        let c = BreakerConfig::from_json(
            r#"{"trip": {"failureRate": 0.5, "window": {"duration": "60s"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            c.trip,
            TripRule::FailureRate {
                minimum_calls: 20,
                window: WindowConfig::Time { buckets: 10, .. },
                ..
            }
        ));
        let c =
            BreakerConfig::from_json(r#"{"openDuration": {"base": "5s", "max": "5m"}}"#).unwrap();
        assert!(
            matches!(c.open_duration, OpenDuration::Backoff { multiplier, .. } if multiplier == 2.0)
        );
    }

    #[test]
    fn the_design_examples_parse_and_round_trip() {
        for json in [
            r#"{"trip": {"consecutiveFailures": 3}, "openDuration": "30s", "halfOpen": {"permittedCalls": 1, "successThreshold": 1}}"#,
            r#"{"trip": {"failureRate": 0.5, "window": {"calls": 100}, "minimumCalls": 20}}"#,
            r#"{"trip": {"failureRate": 0.5, "window": {"duration": "60s", "buckets": 10}, "minimumCalls": 20, "slowCallRate": 0.8, "slowCallDuration": "2s"}}"#,
            r#"{"openDuration": {"base": "5s", "multiplier": 2, "max": "5m"}}"#,
            r#"{"openDuration": 1500.5}"#,
        ] {
            let c = BreakerConfig::from_json(json).unwrap();
            let text = serde_json::to_string(&c).unwrap();
            assert_eq!(
                BreakerConfig::from_json(&text).unwrap(),
                c,
                "{json} -> {text}"
            );
        }
        let c = BreakerConfig::from_json(r#"{"trip": {"failureRate": 0.5, "window": {"duration": "60s", "buckets": 10}, "slowCallRate": 0.8, "slowCallDuration": "2s"}}"#).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["trip"]["window"],
            serde_json::json!({"duration": 60000, "buckets": 10})
        );
        assert_eq!(v["trip"]["slowCallDuration"], 2000);
        assert_eq!(
            v["halfOpen"],
            serde_json::json!({"permittedCalls": 3, "successThreshold": 3})
        );
    }

    fn error(json: &str) -> String {
        BreakerConfig::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field_path_and_reason() {
        assert_eq!(
            error(r#"{"halfOpen": {"permittedCalls": 0}}"#),
            "halfOpen.permittedCalls: must be >= 1, got 0"
        );
        assert_eq!(
            BreakerConfig::from_json(r#"{"halfOpen": {"permittedCalls": 0}}"#)
                .unwrap_err()
                .within("circuitBreaker")
                .to_string(),
            "circuitBreaker.halfOpen.permittedCalls: must be >= 1, got 0"
        );
        assert_eq!(
            error(r#"{"trip": {"consecutiveFailures": 0}}"#),
            "trip.consecutiveFailures: must be >= 1, got 0"
        );
        assert!(
            error(r#"{"trip": {"consecutiveFailures": 3, "minimumCalls": 2}}"#)
                .starts_with("trip: `minimumCalls` belongs to a failureRate rule")
        );
        assert!(
            error(r#"{"trip": {"consecutiveFailures": 3, "failureRate": 0.5}}"#)
                .starts_with("trip: a trip rule is either")
        );
        assert!(
            error(r#"{"trip": {"failureRate": 0.5}}"#).starts_with("trip: missing field `window`")
        );
        assert!(error(r#"{"trip": {}}"#).starts_with("trip: expected"));
        assert!(
            error(r#"{"trip": {"failureRate": 0.5, "window": {"calls": 10, "duration": 5}}}"#)
                .starts_with("trip.window: a window is either")
        );
        assert!(
            error(r#"{"trip": {"failureRate": 0.5, "window": {"calls": 10, "size": 5}}}"#)
                .starts_with("trip.window.size: unknown field `size`")
        );
        assert!(
            error(r#"{"trip": {"failureRate": 0.5, "window": {"duration": "1 fortnight"}}}"#)
                .starts_with("trip.window.duration: invalid duration")
        );
        assert!(error(
            r#"{"trip": {"failureRate": 0.5, "window": {"calls": 10}, "slowCallRate": 0.5}}"#
        )
        .starts_with("trip: missing field `slowCallDuration`"));
        assert_eq!(
            error(r#"{"trip": {"failureRate": 50, "window": {"calls": 10}, "minimumCalls": 11}}"#),
            "trip.failureRate: must be a fraction > 0 and <= 1, got 50; trip.minimumCalls: must be <= trip.window.calls (10), got 11: the window never holds more"
        );
        assert_eq!(
            error(r#"{"trip": {"failureRate": 0.5, "window": {"duration": 0, "buckets": 0}, "minimumCalls": 0, "slowCallRate": 0, "slowCallDuration": 0}}"#),
            "trip.window.buckets: must be >= 1, got 0; trip.window.duration: must be > 0, got 0; trip.minimumCalls: must be >= 1, got 0; trip.slowCallRate: must be a fraction > 0 and <= 1, got 0; trip.slowCallDuration: must be > 0, got 0"
        );
        assert!(
            error(r#"{"trip": {"failureRate": 0.5, "window": {"calls": 2000000}}}"#)
                .starts_with("trip.window.calls: must be <= 1000000")
        );
        assert_eq!(
            error(r#"{"openDuration": 0}"#),
            "openDuration: must be > 0, got 0"
        );
        assert_eq!(
            error(r#"{"openDuration": {"base": "5s", "multiplier": 0.5, "max": "1s"}}"#),
            "openDuration.multiplier: must be >= 1, got 0.5; openDuration.max: must be >= openDuration.base (5000ms), got 1000ms"
        );
        assert!(error(r#"{"openDuration": {"base": "5s"}}"#)
            .starts_with("openDuration: missing field `max`"));
        assert!(
            error(r#"{"openDuration": {"base": "5s", "max": "9s", "cap": 1}}"#)
                .starts_with("openDuration.cap: unknown field `cap`")
        );
        assert!(
            error(r#"{"openDuration": {"base": "5 parsecs", "max": "9s"}}"#)
                .starts_with("openDuration.base: invalid duration")
        );
        assert!(error(r#"{"openDuration": "soon"}"#).starts_with("openDuration: invalid duration"));
        assert!(error(r#"{"openDuration": true}"#).starts_with("openDuration: invalid type"));
        assert!(error(r#"{"halfOpen": {"permitedCalls": 1}}"#)
            .starts_with("halfOpen.permitedCalls: unknown field `permitedCalls`"));
        assert!(error(r#"{"trips": {}}"#).starts_with("trips: unknown field `trips`"));
    }

    #[test]
    fn open_duration_backoff_grows_and_caps() {
        let d = OpenDuration::Backoff {
            base: ConfigDuration::from_secs(5),
            multiplier: 2.0,
            max: ConfigDuration::from_secs(300),
        };
        let secs: Vec<u64> = (1..=9).map(|n| d.nth(n).as_secs()).collect();
        assert_eq!(secs, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(d.nth(0), Duration::from_secs(5));
        assert_eq!(d.nth(u32::MAX), Duration::from_secs(300));
        let d = OpenDuration::Backoff {
            base: ConfigDuration::from_millis(1000),
            multiplier: 1.5,
            max: ConfigDuration::from_secs(10),
        };
        assert_eq!(d.nth(3), Duration::from_millis(2250));
        let d = OpenDuration::Backoff {
            base: ConfigDuration::from_secs(1),
            multiplier: 1.0,
            max: ConfigDuration::from_secs(10),
        };
        assert_eq!(d.nth(1_000_000), Duration::from_secs(1));
        assert_eq!(powu(3.0, 5), 243.0);
        assert_eq!(powu(2.0, 0), 1.0);
    }

    #[test]
    fn consecutive_failures_trip_and_success_resets_the_count() {
        let mut b = breaker(r#"{"trip": {"consecutiveFailures": 3}, "openDuration": "10s"}"#);
        for t in [1, 2] {
            let p = acquire(&mut b, t);
            b.record(p, Outcome::Failure, ms(t));
        }
        let p = acquire(&mut b, 3);
        b.record(p, Outcome::Success, ms(3));
        assert_eq!(b.metrics().consecutive_failures, 0);
        let p = acquire(&mut b, 4);
        b.record(p, Outcome::Ignored, ms(4));
        for t in [5, 6] {
            let p = acquire(&mut b, t);
            b.record(p, Outcome::Failure, ms(t));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let p = acquire(&mut b, 7);
        b.record(p, Outcome::Failure, ms(7));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.poll_timeout(), Some(ms(10_007)));
        assert_eq!(
            drain(&mut b),
            vec![EventKind::StateChanged {
                from: BreakerState::Closed,
                to: BreakerState::Open
            }]
        );
        assert_eq!(
            b.try_acquire(ms(8)),
            Admission::Rejected {
                retry_after: Some(Duration::from_millis(9_999))
            }
        );
        assert_eq!(
            drain(&mut b),
            vec![EventKind::Rejected {
                reason: ErrorKind::CircuitOpen,
                retry_after: Some(Duration::from_millis(9_999))
            }]
        );
    }

    #[test]
    fn half_open_bounds_trials_and_closes_after_the_threshold() {
        let mut b = breaker(
            r#"{"trip": {"consecutiveFailures": 1}, "openDuration": 100, "halfOpen": {"permittedCalls": 2, "successThreshold": 3}}"#,
        );
        let p = acquire(&mut b, 0);
        b.record(p, Outcome::Failure, ms(0));
        let t1 = acquire(&mut b, 100);
        assert!(t1.is_trial());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let t2 = acquire(&mut b, 101);
        assert_eq!(
            b.try_acquire(ms(102)),
            Admission::Rejected { retry_after: None }
        );
        b.release(t2, ms(103));
        let t3 = acquire(&mut b, 104);
        b.record(t1, Outcome::Success, ms(105));
        b.record(t3, Outcome::Ignored, ms(105));
        let t4 = acquire(&mut b, 106);
        let t5 = acquire(&mut b, 106);
        b.record(t4, Outcome::Success, ms(107));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.record(t5, Outcome::Success, ms(108));
        assert_eq!(b.state(), BreakerState::Closed);
        let m = b.metrics();
        assert_eq!(
            (m.rejected, m.in_flight, m.open_streak, m.ignored),
            (1, 0, 1, 1)
        );
    }

    #[test]
    fn stale_permits_drive_nothing() {
        let mut b = breaker(
            r#"{"trip": {"consecutiveFailures": 1}, "openDuration": 100, "halfOpen": {"permittedCalls": 1, "successThreshold": 1}}"#,
        );
        let old = acquire(&mut b, 0);
        let tripper = acquire(&mut b, 0);
        b.record(tripper, Outcome::Failure, ms(1));
        let trial = acquire(&mut b, 200);
        // The pre-open permit neither closes the half-open breaker nor frees the trial slot.
        b.record(old, Outcome::Success, ms(201));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            b.try_acquire(ms(202)),
            Admission::Rejected { retry_after: None }
        );
        b.release(old, ms(203));
        assert_eq!(
            b.try_acquire(ms(203)),
            Admission::Rejected { retry_after: None }
        );
        b.record(trial, Outcome::Success, ms(204));
        assert_eq!(b.state(), BreakerState::Closed);
        // Nor does a stale failure count against the new closed period.
        b.record(old, Outcome::Failure, ms(205));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.metrics().stale, 2, "a release is not an outcome");
    }

    #[test]
    fn count_window_trips_at_the_rate_once_minimum_calls_are_held() {
        let mut b = breaker(
            r#"{"trip": {"failureRate": 0.7, "window": {"calls": 10}, "minimumCalls": 10}}"#,
        );
        // 9 failures: below minimumCalls, no trip even at 100 %.
        for t in 0..9 {
            let p = acquire(&mut b, t);
            b.record(p, Outcome::Failure, ms(t));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let p = acquire(&mut b, 9);
        b.record(p, Outcome::Success, ms(9));
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "9/10 >= 0.7 once 10 calls are held"
        );

        // Exactly 7 of 10 trips: >= with no float drift.
        let mut b = breaker(r#"{"trip": {"failureRate": 0.7, "window": {"calls": 10}}}"#);
        for (t, failed) in [false, false, false, true, true, true, true, true, true]
            .into_iter()
            .enumerate()
        {
            let p = acquire(&mut b, t as u64);
            b.record(
                p,
                if failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
                ms(t as u64),
            );
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let p = acquire(&mut b, 20);
        b.record(p, Outcome::Failure, ms(20));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn slow_trials_reopen_and_exact_duration_is_not_slow() {
        let mut b = breaker(
            r#"{"trip": {"failureRate": 1, "window": {"calls": 2}, "slowCallRate": 1, "slowCallDuration": 100}, "openDuration": 1000, "halfOpen": {"permittedCalls": 1, "successThreshold": 1}}"#,
        );
        let p = acquire(&mut b, 0);
        b.record(p, Outcome::Success, ms(100)); // exactly 100 ms: not slow
        let p = acquire(&mut b, 100);
        b.record(p, Outcome::Success, ms(201)); // 101 ms: slow, 1/2 < 1
        assert_eq!(b.state(), BreakerState::Closed);
        let p = acquire(&mut b, 201);
        b.record(p, Outcome::Success, ms(302)); // window: slow, slow → 2/2 >= 1
        assert_eq!(b.state(), BreakerState::Open);
        let trial = acquire(&mut b, 1302);
        b.record(trial, Outcome::Success, ms(1500));
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "a slow successful trial reopens"
        );
        assert_eq!(b.metrics().slow_calls, 3);
    }

    #[test]
    fn time_goes_backwards_without_moving_the_open_period() {
        let mut b = breaker(r#"{"trip": {"consecutiveFailures": 1}, "openDuration": "1s"}"#);
        let p = acquire(&mut b, 5_000);
        b.record(p, Outcome::Failure, ms(5_000));
        assert_eq!(
            b.try_acquire(ms(1)),
            Admission::Rejected {
                retry_after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(
            b.try_acquire(ms(5_500)).retry_after(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            b.try_acquire(ms(0)).retry_after(),
            Some(Duration::from_millis(500))
        );
        assert!(b.try_acquire(ms(6_000)).is_admitted());
        assert!(b.try_acquire(Instant::MAX).is_admitted());
        b.record(p, Outcome::Failure, Instant::ZERO);
    }

    #[test]
    fn manual_states() {
        let mut b = breaker(r#"{"trip": {"consecutiveFailures": 1}}"#);
        b.force_open(ms(1));
        assert_eq!(
            b.try_acquire(ms(1_000_000)),
            Admission::Rejected { retry_after: None }
        );
        assert_eq!(b.poll_timeout(), None);
        b.disable(ms(2));
        for t in 0..5 {
            let p = acquire(&mut b, t);
            b.record(p, Outcome::Failure, ms(t));
        }
        assert_eq!(b.state(), BreakerState::Disabled);
        assert_eq!(b.metrics().failures, 5);
        b.reset(ms(3));
        assert_eq!(
            drain(&mut b),
            vec![
                EventKind::StateChanged {
                    from: BreakerState::Closed,
                    to: BreakerState::ForcedOpen
                },
                EventKind::Rejected {
                    reason: ErrorKind::CircuitOpen,
                    retry_after: None
                },
                EventKind::StateChanged {
                    from: BreakerState::ForcedOpen,
                    to: BreakerState::Disabled
                },
                EventKind::StateChanged {
                    from: BreakerState::Disabled,
                    to: BreakerState::Closed
                },
            ]
        );
        b.reset(ms(4));
        assert_eq!(drain(&mut b), vec![], "reset when closed changes no state");
    }

    #[test]
    fn lazy_and_eager_half_open() {
        let mut b = breaker(r#"{"trip": {"consecutiveFailures": 1}, "openDuration": 50}"#);
        let p = acquire(&mut b, 10);
        b.record(p, Outcome::Failure, ms(10));
        assert_eq!(b.poll_timeout(), Some(ms(60)));
        b.handle_timeout(ms(59));
        assert_eq!(b.state(), BreakerState::Open);
        b.handle_timeout(ms(60));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.poll_timeout(), None);
    }

    #[test]
    fn snapshot_restores_state_and_refuses_misfits() {
        let cfg =
            r#"{"trip": {"failureRate": 0.5, "window": {"calls": 4}}, "openDuration": "10s"}"#;
        let mut b = breaker(cfg);
        for (t, o) in [
            (0, Outcome::Failure),
            (1, Outcome::Success),
            (2, Outcome::Success),
        ] {
            let p = acquire(&mut b, t);
            b.record(p, o, ms(t));
        }
        let snap = b.snapshot();
        let text = serde_json::to_string(&snap).unwrap();
        assert_eq!(
            text,
            r#"{"state":"closed","openStreak":1,"consecutiveFailures":0,"halfOpenSuccesses":0,"window":{"calls":{"size":4,"outcomes":"fss"}}}"#
        );
        let back: BreakerSnapshot = serde_json::from_str(&text).unwrap();
        let mut c = breaker(cfg);
        c.restore(&back, ms(1_000_000)).unwrap();
        let p = acquire(&mut c, 1_000_001);
        c.record(p, Outcome::Failure, ms(1_000_001));
        assert_eq!(c.state(), BreakerState::Open, "2 of 4 reached 0.5");
        let open = c.snapshot();
        assert_eq!(open.open_remaining, Some(ConfigDuration::from_secs(10)));
        let mut d = breaker(cfg);
        d.restore(&open, ms(7)).unwrap();
        assert_eq!(d.poll_timeout(), Some(ms(10_007)));
        assert_eq!(d.metrics().transitions, 1);

        let mut other = breaker(r#"{"trip": {"failureRate": 0.5, "window": {"calls": 5}}}"#);
        let e = other.restore(&back, ms(0)).unwrap_err().to_string();
        assert_eq!(
            e,
            "window.calls.size: the snapshot's window holds 4 calls, this breaker's holds 5"
        );
        assert_eq!(other.state(), BreakerState::Closed);
        let mut consecutive = breaker("{}");
        assert!(consecutive
            .restore(&back, ms(0))
            .unwrap_err()
            .to_string()
            .starts_with("window: the snapshot holds a window"));
        let bad: BreakerSnapshot =
            serde_json::from_str(r#"{"state": "open", "openStreak": 0}"#).unwrap();
        assert_eq!(
            consecutive.restore(&bad, ms(0)).unwrap_err().to_string(),
            "openStreak: must be >= 1, got 0; openRemaining: required when the state is open"
        );
        assert!(serde_json::from_str::<BreakerSnapshot>(
            r#"{"state": "closed", "openStreak": 1, "x": 1}"#
        )
        .is_err());
    }

    #[test]
    fn time_window_snapshot_keeps_bucket_ages() {
        let cfg = r#"{"trip": {"failureRate": 0.5, "window": {"duration": "10s", "buckets": 5}, "minimumCalls": 3}}"#;
        let mut b = breaker(cfg);
        for t in [1_000, 3_000] {
            let p = acquire(&mut b, t);
            b.record(p, Outcome::Failure, ms(t));
        }
        let p = acquire(&mut b, 9_000);
        b.record(p, Outcome::Success, ms(9_000));
        assert_eq!(b.state(), BreakerState::Open, "2 of 3");
        let mut b = breaker(cfg);
        for t in [1_000, 3_000] {
            let p = acquire(&mut b, t);
            b.record(p, Outcome::Failure, ms(t));
        }
        let snap = b.snapshot();
        assert_eq!(
            snap.window,
            Some(WindowSnapshot::Time {
                bucket_width: ConfigDuration::from_secs(2),
                buckets: 5,
                recent: vec![[0, 1, 1, 0], [1, 1, 1, 0]]
            })
        );
        let mut c = breaker(cfg);
        c.restore(&snap, ms(100_500)).unwrap();
        assert_eq!(c.metrics().window_failures, 2);
        // The older failure was 1 bucket old; 4 buckets later it is out of the window.
        let p = acquire(&mut c, 108_000);
        assert_eq!(c.metrics().window_failures, 1);
        c.record(p, Outcome::Success, ms(108_000));
        assert_eq!(c.state(), BreakerState::Closed);
    }

    #[test]
    fn reconfigure_keeps_what_fits_and_refuses_invalid() {
        let mut b = breaker(
            r#"{"trip": {"failureRate": 0.5, "window": {"calls": 4}}, "openDuration": "10s"}"#,
        );
        for t in 0..3 {
            let p = acquire(&mut b, t);
            b.record(p, Outcome::Failure, ms(t));
        }
        let before = b.metrics();
        let e = b.reconfigure(
            BreakerConfig::from_json("{}")
                .map(|mut c| {
                    c.half_open.permitted_calls = 0;
                    c
                })
                .unwrap(),
            ms(3),
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "halfOpen.permittedCalls: must be >= 1, got 0"
        );
        assert_eq!(b.metrics(), before);
        // Same window shape, lower minimumCalls: the window is kept and the next record trips.
        b.reconfigure(
            BreakerConfig::from_json(
                r#"{"trip": {"failureRate": 0.9, "window": {"calls": 4}, "minimumCalls": 3}}"#,
            )
            .unwrap(),
            ms(3),
        )
        .unwrap();
        assert_eq!(b.metrics().window_failures, 3);
        let p = acquire(&mut b, 4);
        b.record(p, Outcome::Failure, ms(4));
        assert_eq!(b.state(), BreakerState::Open);
        // Another shape: a fresh window; the open state and its period stay.
        b.reconfigure(
            BreakerConfig::from_json(
                r#"{"trip": {"failureRate": 0.5, "window": {"calls": 8}}, "openDuration": "1s"}"#,
            )
            .unwrap(),
            ms(5),
        )
        .unwrap();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.poll_timeout(),
            Some(ms(30_004)),
            "opened under the second config: 30 s"
        );
        assert_eq!(b.metrics().window_calls, 0);
    }

    #[test]
    fn idleness() {
        let mut b = breaker(
            r#"{"trip": {"failureRate": 0.5, "window": {"duration": "10s", "buckets": 5}}}"#,
        );
        assert!(b.is_idle(ms(0)));
        let p = acquire(&mut b, 0);
        assert!(!b.is_idle(ms(0)), "a permit is in flight");
        b.record(p, Outcome::Failure, ms(1));
        assert!(!b.is_idle(ms(1)), "a failure is remembered");
        assert!(b.is_idle(ms(10_000)), "it aged out of the window");
        b.force_open(ms(2));
        assert!(!b.is_idle(ms(20_000)));
        b.disable(ms(3));
        assert!(b.is_idle(ms(3)));
    }

    /// Configs for the untimed-success equivalence: the rule that allows it and those that
    /// must refuse it (rate rules with count and time windows, a slow-call rule, half-open).
    const UNTIMED_CONFIGS: [&str; 5] = [
        r#"{"trip": {"consecutiveFailures": 2}, "openDuration": 50, "halfOpen": {"successThreshold": 2, "permittedCalls": 2}}"#,
        r#"{}"#,
        r#"{"trip": {"failureRate": 0.5, "window": {"calls": 4}}, "openDuration": 40}"#,
        r#"{"trip": {"failureRate": 0.5, "window": {"duration": 100, "buckets": 4}, "minimumCalls": 2}, "openDuration": 40}"#,
        r#"{"trip": {"failureRate": 0.9, "window": {"calls": 4}, "slowCallRate": 0.5, "slowCallDuration": 5}, "openDuration": 40}"#,
    ];

    fn seen(
        b: &mut CircuitBreaker,
        now: Instant,
    ) -> (
        BreakerMetrics,
        BreakerSnapshot,
        Vec<Event>,
        Option<Instant>,
        bool,
    ) {
        (
            b.metrics(),
            b.snapshot(),
            std::iter::from_fn(|| b.poll_event()).collect(),
            b.poll_timeout(),
            b.is_idle(now),
        )
    }

    proptest::proptest! {
        /// A success recorded by `try_record_success_untimed`, and a call admitted by
        /// `try_acquire_untimed` (when they accept) leave exactly what `record` at the call's
        /// true end and `try_acquire` at its true start leave: same admissions, state, metrics,
        /// snapshot, events (with their instants), timeout and idleness, after every input of
        /// a random sequence on a clock that never goes backwards.
        #[test]
        fn an_untimed_success_is_indistinguishable_from_a_timed_one(
            config in 0..UNTIMED_CONFIGS.len(),
            ops in proptest::collection::vec((0u8..10, 0usize..4, 0u64..30), 1..120),
        ) {
            let mut timed = breaker(UNTIMED_CONFIGS[config]);
            let mut untimed = timed.clone();
            let mut permits: Vec<(Permit, Permit)> = Vec::new();
            let mut t = 0;
            let mut skipped = 0;
            for (op, pick, dt) in ops {
                t += dt;
                let now = ms(t);
                match op {
                    0..=1 => {
                        let a = timed.try_acquire(now);
                        proptest::prop_assert_eq!(a, untimed.try_acquire(now));
                        permits.extend(a.permit().map(|p| (p, p)));
                    }
                    2..=3 => {
                        // The untimed twin acquires without the instant when it may: the
                        // permits differ in their start only.
                        let a = timed.try_acquire(now);
                        let b = match untimed.try_acquire_untimed() {
                            Some(b) => {
                                proptest::prop_assert!(a.permit().is_some_and(|p| !p.is_trial()));
                                b
                            }
                            None => untimed.try_acquire(now),
                        };
                        proptest::prop_assert_eq!(a.is_admitted(), b.is_admitted());
                        proptest::prop_assert_eq!(a.retry_after(), b.retry_after());
                        if let (Some(p), Some(q)) = (a.permit(), b.permit()) {
                            proptest::prop_assert_eq!((p.generation(), p.is_trial()), (q.generation(), q.is_trial()));
                            permits.push((p, q));
                        }
                    }
                    4..=7 if !permits.is_empty() => {
                        let (p, q) = permits.swap_remove(pick % permits.len());
                        match op {
                            4 | 5 => {
                                let needs = untimed.success_needs_time();
                                proptest::prop_assert_eq!(needs, timed.success_needs_time());
                                if untimed.try_record_success_untimed(q) {
                                    proptest::prop_assert!(!needs);
                                    skipped += 1;
                                } else {
                                    proptest::prop_assert!(needs);
                                    untimed.record(q, Outcome::Success, now);
                                }
                                timed.record(p, Outcome::Success, now);
                            }
                            6 => {
                                timed.record(p, Outcome::Failure, now);
                                untimed.record(q, Outcome::Failure, now);
                            }
                            _ => {
                                timed.record(p, Outcome::Ignored, now);
                                untimed.record(q, Outcome::Ignored, now);
                            }
                        }
                    }
                    8 => {
                        timed.handle_timeout(now);
                        untimed.handle_timeout(now);
                    }
                    9 => {
                        let action = |b: &mut CircuitBreaker| match pick {
                            0 => b.force_open(now),
                            1 => b.disable(now),
                            2 => b.reset(now),
                            _ => {
                                let p = b.try_acquire(now).permit();
                                if let Some(p) = p {
                                    b.release(p, now);
                                }
                            }
                        };
                        action(&mut timed);
                        action(&mut untimed);
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(timed.state(), untimed.state());
                proptest::prop_assert_eq!(seen(&mut timed, now), seen(&mut untimed, now));
            }
            // The rate rules never take the shortcut.
            if config >= 2 {
                proptest::prop_assert_eq!(skipped, 0);
            }
        }
    }

    #[test]
    fn untimed_success_is_taken_only_where_the_instant_cannot_matter() {
        let mut b = breaker(r#"{"trip": {"consecutiveFailures": 1}, "openDuration": 10}"#);
        let p = acquire(&mut b, 0);
        assert!(!b.success_needs_time());
        assert!(b.try_record_success_untimed(p));
        assert_eq!(b.metrics().successes, 1);
        // Open, then half-open: a trial's success may close the breaker at its instant.
        let p = acquire(&mut b, 1);
        b.record(p, Outcome::Failure, ms(2));
        assert!(b.success_needs_time());
        let p = acquire(&mut b, 20);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.try_record_success_untimed(p));
        assert_eq!(b.metrics().successes, 1, "refused: nothing recorded");
        assert_eq!(
            b.try_acquire_untimed(),
            None,
            "half-open: a trial slot, at its instant"
        );
        b.disable(ms(21));
        assert!(!b.success_needs_time());
        let p = b
            .try_acquire_untimed()
            .and_then(|a| a.permit())
            .expect("admitted");
        assert_eq!(p.started(), ms(21), "at the latest instant seen");
        for rule in [
            r#"{"trip": {"failureRate": 0.5, "window": {"calls": 4}}}"#,
            r#"{"trip": {"failureRate": 0.5, "window": {"duration": 100, "buckets": 4}}}"#,
        ] {
            let mut b = breaker(rule);
            let p = acquire(&mut b, 0);
            assert!(b.success_needs_time(), "{rule}");
            assert!(!b.try_record_success_untimed(p), "{rule}");
            assert_eq!(b.try_acquire_untimed(), None, "{rule}");
        }
    }
}

//! Rate limiters (DESIGN.md §3.5): token bucket, GCRA, fixed window and sliding window, one or
//! several limits that must all pass, unkeyed or keyed (per user, per host).
//!
//! `check(now, cost)` answers [`RateDecision::Allowed`], [`RateDecision::Wait`] (allowed after
//! a wait within `maxWait`; the capacity is reserved now) or [`RateDecision::Denied`] with
//! `retry_after`, the shortest wait after which the same check passes (`None` when it never
//! can, because the cost exceeds a burst).
//!
//! ## Common semantics
//!
//! With rate `L` per period `P` (ns) and burst `B` (default: one second's worth of the rate,
//! at least 1):
//! - a limiter starts full: a new (or idle) limiter admits exactly `B` at one instant, for
//!   every algorithm;
//! - a cost `c > B` never passes (`retry_after: None`) and changes nothing; a cost of 0 passes
//!   unless a reservation is pending and consumes nothing;
//! - arithmetic is exact on integers (u64/u128 nanoseconds), so every binding gets the same
//!   decisions bit for bit;
//! - `now` is clamped to the latest instant seen (time never goes backwards);
//! - with several limits, each limit's earliest passing instant `tᵢ` is computed without
//!   committing; the check passes at `t = max tᵢ` (every limit passes from its own `tᵢ` on,
//!   because passing is monotone in time). If `t = now` it is allowed; if `t − now` is within
//!   *every* limit's `maxWait` it is `Wait(t − now)`; otherwise `Denied { retry_after: t − now }`.
//!   Only an admission commits, to every limit, at the instant `t` the call really proceeds —
//!   so each limit's own bound holds for the times calls actually run.
//!
//! ## Algorithms (the formulas every binding's replay must match)
//!
//! - **Token bucket**: capacity `B` tokens, refilled continuously at exactly `L/P` per ns. Kept
//!   exact in *units* where one token is `P` units and the refill is `L` units per ns; the
//!   state is the deficit `D` below full, stored as the instant the bucket is full again plus a
//!   remainder (`D = L·(full_at − now) + rem`, `rem < L`): 16 bytes. A cost `c` passes at the
//!   first `t ≥ now` with `D(t) + c·P ≤ B·P`, i.e. after `⌈(D(now) + c·P − B·P) / L⌉` ns.
//! - **GCRA** (the cell-rate algorithm, as in governor and redis-cell): emission interval
//!   `T = ⌈P / L⌉` ns (rounded up, so the rounded rate never exceeds the configured one),
//!   tolerance `τ = B·T`, state one instant `TAT` (8 bytes, so it can live in a shared store,
//!   §7). A cost `c` passes at `max(now, max(TAT, now) + c·T − τ)` and sets
//!   `TAT ← max(TAT, t) + c·T`. Unlike redis-cell, a new key admits exactly `B`, not `B + 1`.
//! - **Fixed window**: windows of length `W = ⌈B·P / L⌉` ns aligned to multiples of `W` from the
//!   host's origin; each window admits up to `B`. The window is as long as it takes the rate to
//!   produce a burst, so one window admits the burst and the long-run rate is `B/W ≤ L/P`. The
//!   known flaw, kept and documented: up to `2·B` pass within two instants straddling a window
//!   boundary (in general, at most `B·(k + 1)` within any span touching `k + 1` windows).
//! - **Sliding window**: the two-window weighted counter (Cloudflare's): the same aligned
//!   windows, the estimate at offset `e` into the current window being
//!   `prev·(W − e)/W + curr`, compared exactly as `prev·(W − e) + (curr + c)·W ≤ B·W`. It
//!   approximates a sliding log by assuming the previous window's calls were spread evenly; the
//!   approximation can admit up to about `2·B` within one window length (a burst at the end of
//!   a window, then the rate's worth in the next), but never more than `B + (B/W)·T ≤ B + rate·T`
//!   in any span of length `T` — the token bucket's bound — and never two bursts at a boundary.
//!   Counts are integers, so the weighted estimate only reaches `B` again exactly at a window
//!   start: a client that keeps asking gets `B − 1` per window in the long run (one per *two*
//!   windows with `B = 1`). Prefer bursts of 10 or more with this algorithm.
//!
//! Reservations (`Wait`) in a window algorithm that land in a later window are recorded in that
//! window; until it starts, every check is evaluated as of its start, so waiting calls keep
//! their order and nobody overtakes a reservation.

use core::fmt;
use core::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{ConfigDuration, Rate, MAX_CONFIG_DURATION};
use crate::error::{ConfigError, Issues};
use crate::event::{ErrorKind, Event, EventKind, EventQueue};
use crate::keyed::{Keyed, KeyedState};
use crate::time::{Instant, Monotonic};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Which algorithm a limit uses. JSON: `"tokenBucket"` (default), `"gcra"`, `"fixedWindow"`,
/// `"slidingWindow"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Algorithm {
    /// A bucket of `burst` tokens refilled continuously at the rate.
    #[default]
    TokenBucket,
    /// The generic cell-rate algorithm: one instant of state.
    Gcra,
    /// Aligned windows of `burst/rate`, each admitting `burst`.
    FixedWindow,
    /// The two-window weighted counter over windows of `burst/rate`.
    SlidingWindow,
}

crate::read::read_unit_enum!(Algorithm {
    "tokenBucket" => TokenBucket,
    "gcra" => Gcra,
    "fixedWindow" => FixedWindow,
    "slidingWindow" => SlidingWindow,
});

impl Algorithm {
    /// The algorithm's public name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "tokenBucket",
            Algorithm::Gcra => "gcra",
            Algorithm::FixedWindow => "fixedWindow",
            Algorithm::SlidingWindow => "slidingWindow",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One limit: `{"algorithm": "tokenBucket", "rate": "100/s", "burst": 20, "maxWait": "0ms"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitConfig {
    /// The algorithm (default `tokenBucket`).
    #[serde(default)]
    pub algorithm: Algorithm,
    /// The sustained rate.
    pub rate: Rate,
    /// The most admitted at one instant by a new or idle limiter (default: one second's worth
    /// of `rate`, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// A denial that would clear within this long becomes "wait this long, then go" (default 0:
    /// never wait).
    #[serde(default)]
    pub max_wait: ConfigDuration,
}

impl LimitConfig {
    /// A token bucket at `rate` with the default burst and no waiting.
    #[must_use]
    pub fn new(rate: Rate) -> LimitConfig {
        LimitConfig {
            algorithm: Algorithm::TokenBucket,
            rate,
            burst: None,
            max_wait: ConfigDuration::default(),
        }
    }

    /// With `algorithm`.
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> LimitConfig {
        self.algorithm = algorithm;
        self
    }

    /// With an explicit burst.
    #[must_use]
    pub fn with_burst(mut self, burst: u64) -> LimitConfig {
        self.burst = Some(burst);
        self
    }

    /// With a `maxWait`.
    #[must_use]
    pub fn with_max_wait(mut self, max_wait: Duration) -> LimitConfig {
        self.max_wait = ConfigDuration(max_wait);
        self
    }

    /// The burst in force: the configured one, or one second's worth of the rate (at least 1).
    #[must_use]
    pub fn effective_burst(&self) -> u64 {
        self.burst.unwrap_or_else(|| self.rate.per_second())
    }

    /// Refuse a zero burst, and a burst that takes longer than 100 years to refill (a unit
    /// mistake, and past what nanosecond instants can hold).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if self.burst == Some(0) {
            issues.push("burst", "must be >= 1, got 0");
        } else {
            let refill =
                u128::from(self.effective_burst()) * u128::from(self.rate.interval_nanos());
            if refill > MAX_CONFIG_DURATION.as_nanos() {
                issues.push(
                    "burst",
                    format!(
                        "refilling a burst of {} at {}/{}ns takes longer than 100 years",
                        self.effective_burst(),
                        self.rate.limit,
                        self.rate.period_nanos
                    ),
                );
            }
        }
        issues.finish(())
    }
}

/// `rateLimit`: one limit, or a list of limits that must all pass (`"5/s and 1000/h"`).
///
/// JSON: a limit object or an array of them. Field paths in errors are relative to it
/// (`burst: ...` for an object, `[1].rate: ...` for a list).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// The limits (at least one).
    pub limits: Vec<LimitConfig>,
    /// Whether the JSON was a list (kept for error paths and round trips).
    list: bool,
}

impl PartialEq for RateLimitConfig {
    /// The limits decide; whether they were written as a list of one or a bare object does not.
    fn eq(&self, other: &Self) -> bool {
        self.limits == other.limits
    }
}

impl Eq for RateLimitConfig {}

impl From<LimitConfig> for RateLimitConfig {
    fn from(limit: LimitConfig) -> Self {
        RateLimitConfig::single(limit)
    }
}

impl RateLimitConfig {
    /// One limit (JSON: an object).
    #[must_use]
    pub fn single(limit: LimitConfig) -> RateLimitConfig {
        RateLimitConfig {
            limits: vec![limit],
            list: false,
        }
    }

    /// Several limits that must all pass (JSON: a list).
    #[must_use]
    pub fn all(limits: Vec<LimitConfig>) -> RateLimitConfig {
        RateLimitConfig { limits, list: true }
    }

    /// Parse (a limit object or a list) and validate.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config = <RateLimitConfig as crate::read::FromTree>::from_json_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Every issue of every limit, each under its position (`[i].`) when the config is a list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if self.limits.is_empty() {
            issues.push("", "must hold at least one limit, got an empty list");
        }
        for (i, limit) in self.limits.iter().enumerate() {
            if let Err(e) = limit.validate() {
                let prefix = if self.list || self.limits.len() > 1 {
                    format!("[{i}]")
                } else {
                    String::new()
                };
                issues.extend(&prefix, e);
            }
        }
        issues.finish(())
    }
}

impl crate::read::FromTree for LimitConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct LimitConfig",
            LimitConfig {
                algorithm: "algorithm" = Algorithm::default(),
                rate: "rate",
                burst: "burst" = None,
                max_wait: "maxWait" = ConfigDuration::default(),
            }
        )
    }
}

impl crate::read::FromTree for RateLimitConfig {
    /// An object or a list of them, as `OneOrMany` below reads it.
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        use crate::tree::Node;
        match node {
            Node::Map(_) => LimitConfig::read(node, at).map(RateLimitConfig::single),
            Node::Seq(_) => Vec::<LimitConfig>::read(node, at).map(RateLimitConfig::all),
            other => Err(crate::read::invalid_type(&other, RATE_LIMIT_EXPECTING, at)),
        }
    }
}

impl crate::read::FromTree for KeyedRateLimitConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct KeyedRateLimitConfig",
            KeyedRateLimitConfig {
                limit: "limit",
                max_keys: "maxKeys" = default_max_keys(),
                idle_expiry: "idleExpiry" = default_idle_expiry(),
            }
        )
    }
}

const RATE_LIMIT_EXPECTING: &str =
    "a rate limit object {\"rate\": \"100/s\", ...} or a list of them";

impl<'de> Deserialize<'de> for RateLimitConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrMany;

        impl<'de> Visitor<'de> for OneOrMany {
            type Value = RateLimitConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(RATE_LIMIT_EXPECTING)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RateLimitConfig, A::Error> {
                // Through MapAccessDeserializer, so a path-tracking map keeps its field paths.
                LimitConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RateLimitConfig::single)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RateLimitConfig, A::Error> {
                let mut limits = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(limit) = seq.next_element::<LimitConfig>()? {
                    limits.push(limit);
                }
                Ok(RateLimitConfig::all(limits))
            }
        }

        d.deserialize_any(OneOrMany)
    }
}

impl Serialize for RateLimitConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.limits.as_slice() {
            [one] if !self.list => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

/// The default bound on keys of a keyed limiter.
pub const DEFAULT_MAX_KEYS: u32 = 10_000;

/// The default idle expiry of a keyed limiter's keys: 10 minutes.
pub const DEFAULT_IDLE_EXPIRY: ConfigDuration = ConfigDuration::from_secs(600);

/// A keyed limiter: `{"limit": <rateLimit>, "maxKeys": 10000, "idleExpiry": "10m"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyedRateLimitConfig {
    /// The limit (or limits) each key gets.
    pub limit: RateLimitConfig,
    /// The most keys held at once (default 10 000). A new key arriving when every key is
    /// limited is denied (fail closed), never admitted untracked.
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
    /// Keys unused this long are dropped once idle (default 10 minutes; `null`: only the
    /// `maxKeys` bound applies).
    #[serde(default = "default_idle_expiry")]
    pub idle_expiry: Option<ConfigDuration>,
}

fn default_max_keys() -> u32 {
    DEFAULT_MAX_KEYS
}

fn default_idle_expiry() -> Option<ConfigDuration> {
    Some(DEFAULT_IDLE_EXPIRY)
}

impl KeyedRateLimitConfig {
    /// `limit` per key, with the default bounds.
    #[must_use]
    pub fn new(limit: RateLimitConfig) -> KeyedRateLimitConfig {
        KeyedRateLimitConfig {
            limit,
            max_keys: DEFAULT_MAX_KEYS,
            idle_expiry: default_idle_expiry(),
        }
    }

    /// With a key bound.
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: u32) -> KeyedRateLimitConfig {
        self.max_keys = max_keys;
        self
    }

    /// With an idle expiry (`None`: none).
    #[must_use]
    pub fn with_idle_expiry(mut self, idle_expiry: Option<Duration>) -> KeyedRateLimitConfig {
        self.idle_expiry = idle_expiry.map(ConfigDuration);
        self
    }

    /// Parse and validate.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config = <KeyedRateLimitConfig as crate::read::FromTree>::from_json_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Every issue, with paths such as `limit[1].burst` and `maxKeys`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if let Err(e) = self.limit.validate() {
            issues.extend("limit", e);
        }
        if self.max_keys == 0 {
            issues.push("maxKeys", "must be >= 1, got 0");
        }
        issues.finish(())
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions and metrics
// ---------------------------------------------------------------------------------------------

/// The answer to a check.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateDecision {
    /// Go now.
    Allowed,
    /// Go after this wait. The capacity is already reserved: the host sleeps, then proceeds
    /// without checking again.
    Wait(Duration),
    /// Refused.
    Denied {
        /// The shortest wait after which the same check passes (if nothing else is admitted
        /// meanwhile); `None` when it never can (the cost exceeds a burst).
        retry_after: Option<Duration>,
    },
}

impl RateDecision {
    /// Whether the call may proceed (now, or after [`RateDecision::wait`]).
    #[must_use]
    pub const fn is_allowed(&self) -> bool {
        !matches!(self, RateDecision::Denied { .. })
    }

    /// The wait before proceeding (zero unless [`RateDecision::Wait`]).
    #[must_use]
    pub const fn wait(&self) -> Duration {
        match self {
            RateDecision::Wait(d) => *d,
            _ => Duration::ZERO,
        }
    }

    /// A denial's `retry_after` (`None` when allowed or never).
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            RateDecision::Denied { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// A limiter's counters and gauge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RateLimitMetrics {
    /// Checks allowed at once.
    pub allowed: u64,
    /// Checks allowed after a reserved wait.
    pub waited: u64,
    /// Checks denied.
    pub denied: u64,
    /// The "tokens" gauge: the whole units of cost the *first* limit would admit at once, as of
    /// the latest instant seen (0 while a reservation is pending). An integer on purpose:
    /// every binding reports the same value.
    pub available: u64,
}

/// A keyed limiter's counters and gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KeyedRateLimitMetrics {
    /// Checks allowed at once.
    pub allowed: u64,
    /// Checks allowed after a reserved wait.
    pub waited: u64,
    /// Checks denied (including `table_full`).
    pub denied: u64,
    /// Of `denied`: new keys refused because every key slot was held by a busy key.
    pub table_full: u64,
    /// Keys held now.
    pub keys: u64,
    /// Idle keys evicted to make room.
    pub evicted: u64,
    /// Idle keys dropped for idle expiry.
    pub expired: u64,
}

// ---------------------------------------------------------------------------------------------
// Per-limit parameters and states
// ---------------------------------------------------------------------------------------------

/// A limit's numbers, precomputed once; shared by every key of a keyed limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Params {
    algorithm: Algorithm,
    /// `L`.
    limit: u64,
    /// `P`, ns.
    period: u64,
    /// `B`.
    burst: u64,
    /// ns.
    max_wait: u64,
    /// GCRA's `T = ⌈P/L⌉`.
    interval: u64,
    /// GCRA's `τ = B·T`.
    tau: u64,
    /// The window `W = ⌈B·P/L⌉` (≥ 1).
    window: u64,
}

impl Params {
    /// From a validated limit (validation keeps `B·T` within 100 years, so everything fits).
    fn new(c: &LimitConfig) -> Params {
        let burst = c.effective_burst();
        let interval = c.rate.interval_nanos();
        let window = (u128::from(burst) * u128::from(c.rate.period_nanos))
            .div_ceil(u128::from(c.rate.limit));
        Params {
            algorithm: c.algorithm,
            limit: c.rate.limit,
            period: c.rate.period_nanos,
            burst,
            max_wait: c.max_wait.nanos(),
            interval,
            tau: burst.saturating_mul(interval),
            window: u64::try_from(window).unwrap_or(u64::MAX).max(1),
        }
    }

    /// Token bucket capacity `B·P` in units.
    fn capacity(&self) -> u128 {
        u128::from(self.burst) * u128::from(self.period)
    }

    /// The end of the aligned window holding `t`.
    fn window_end(&self, t: u64) -> u64 {
        (t / self.window)
            .saturating_add(1)
            .saturating_mul(self.window)
    }
}

/// One algorithm's per-limit state. All methods take the (clamped) `now` in ns.
trait Algo: Copy {
    /// The earliest instant `≥ now` at which `cost ≤ burst` passes, or `None` when that
    /// instant is not representable.
    fn pass_at(&self, p: &Params, now: u64, cost: u64) -> Option<u64>;
    /// Record `cost > 0` admitted at `at` (where it passes: `at ≥ pass_at(now, cost)`).
    fn commit(&mut self, p: &Params, at: u64, cost: u64);
    /// Whole units of cost admitted at once at `now`.
    fn available(&self, p: &Params, now: u64) -> u64;
    /// From this instant on the state equals a fresh one.
    fn idle_from(&self) -> u64;
}

fn to_u64(x: u128) -> Option<u64> {
    u64::try_from(x).ok()
}

/// Token bucket: deficit `D = L·(full_at − t) + rem` units while `t ≤ full_at`, else 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TokenBucketState {
    full_at: u64,
    rem: u64,
}

impl TokenBucketState {
    fn deficit(&self, p: &Params, t: u64) -> u128 {
        if t > self.full_at {
            0
        } else {
            u128::from(self.full_at - t) * u128::from(p.limit) + u128::from(self.rem)
        }
    }
}

impl Algo for TokenBucketState {
    fn pass_at(&self, p: &Params, now: u64, cost: u64) -> Option<u64> {
        let need = self.deficit(p, now) + u128::from(cost) * u128::from(p.period);
        let cap = p.capacity();
        if need <= cap {
            return Some(now);
        }
        to_u64(u128::from(now) + (need - cap).div_ceil(u128::from(p.limit)))
    }

    fn commit(&mut self, p: &Params, at: u64, cost: u64) {
        let d = self.deficit(p, at) + u128::from(cost) * u128::from(p.period);
        let l = u128::from(p.limit);
        self.full_at = to_u64(u128::from(at) + d / l).unwrap_or(u64::MAX);
        self.rem = (d % l) as u64;
    }

    fn available(&self, p: &Params, now: u64) -> u64 {
        to_u64(p.capacity().saturating_sub(self.deficit(p, now)) / u128::from(p.period))
            .unwrap_or(u64::MAX)
    }

    fn idle_from(&self) -> u64 {
        self.full_at.saturating_add(u64::from(self.rem > 0))
    }
}

/// GCRA: the theoretical arrival time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GcraState {
    tat: u64,
}

impl Algo for GcraState {
    fn pass_at(&self, p: &Params, now: u64, cost: u64) -> Option<u64> {
        let new_tat = u128::from(self.tat.max(now)) + u128::from(cost) * u128::from(p.interval);
        to_u64(new_tat)?;
        let at = new_tat
            .saturating_sub(u128::from(p.tau))
            .max(u128::from(now));
        to_u64(at)
    }

    fn commit(&mut self, p: &Params, at: u64, cost: u64) {
        self.tat = self
            .tat
            .max(at)
            .saturating_add(cost.saturating_mul(p.interval));
    }

    fn available(&self, p: &Params, now: u64) -> u64 {
        let debt = self.tat.saturating_sub(now);
        p.tau.saturating_sub(debt) / p.interval
    }

    fn idle_from(&self) -> u64 {
        self.tat
    }
}

/// Fixed window: the count of the window ending at `end` (exclusive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FixedWindowState {
    end: u64,
    count: u64,
}

impl Algo for FixedWindowState {
    fn pass_at(&self, p: &Params, now: u64, cost: u64) -> Option<u64> {
        if now >= self.end || self.count == 0 {
            return Some(now);
        }
        if u128::from(self.count) + u128::from(cost) <= u128::from(p.burst) {
            // The stored window may still be ahead (a reservation): not before it starts.
            Some(now.max(self.end.saturating_sub(p.window)))
        } else {
            Some(self.end)
        }
    }

    fn commit(&mut self, p: &Params, at: u64, cost: u64) {
        if at >= self.end {
            self.end = p.window_end(at);
            self.count = cost;
        } else {
            self.count = self.count.saturating_add(cost);
        }
    }

    fn available(&self, p: &Params, now: u64) -> u64 {
        if now >= self.end || self.count == 0 {
            p.burst
        } else if now < self.end.saturating_sub(p.window) {
            0
        } else {
            p.burst.saturating_sub(self.count)
        }
    }

    fn idle_from(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.end
        }
    }
}

/// Sliding window: counts of the window ending at `end` and of the one before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SlidingWindowState {
    end: u64,
    prev: u64,
    curr: u64,
    /// `end + W` of the last window with a count (the state needs `W` to know, and the keyed
    /// map asks without the parameters).
    idle_at: u64,
}

impl SlidingWindowState {
    /// `(end, prev, curr)` as seen at `t ≥ end − W`.
    fn rolled(&self, p: &Params, t: u64) -> (u64, u64, u64) {
        if t < self.end {
            (self.end, self.prev, self.curr)
        } else if t - self.end < p.window {
            (self.end.saturating_add(p.window), self.curr, 0)
        } else {
            (p.window_end(t), 0, 0)
        }
    }

    fn is_empty(&self) -> bool {
        self.prev == 0 && self.curr == 0
    }
}

impl Algo for SlidingWindowState {
    fn pass_at(&self, p: &Params, now: u64, cost: u64) -> Option<u64> {
        if self.is_empty() {
            return Some(now);
        }
        let w = u128::from(p.window);
        let b = u128::from(p.burst);
        let c = u128::from(cost);
        let t0 = now.max(self.end.saturating_sub(p.window));
        let (end, prev, curr) = self.rolled(p, t0);
        let (prev, curr) = (u128::from(prev), u128::from(curr));
        let start = u128::from(end) - w.min(u128::from(end));
        // In the current window: prev·(W − e) ≤ (B − curr − c)·W, i.e. e ≥ W − ⌊slack/prev⌋.
        if curr + c <= b {
            let slack = (b - curr - c) * w;
            // No previous count: nothing to wait for (checked_div is None).
            let e_min = slack.checked_div(prev).map_or(0, |q| w - w.min(q));
            if e_min < w {
                return to_u64((start + e_min).max(u128::from(t0)));
            }
        }
        // In the next window, where the current count becomes the previous one.
        let next = u128::from(end);
        let slack = b.saturating_sub(c) * w;
        let e_min = slack.checked_div(curr).map_or(0, |q| w - w.min(q));
        to_u64(next + e_min)
    }

    fn commit(&mut self, p: &Params, at: u64, cost: u64) {
        let (end, prev, curr) = self.rolled(p, at);
        self.end = end;
        self.prev = prev;
        self.curr = curr.saturating_add(cost);
        self.idle_at = end.saturating_add(p.window);
    }

    fn available(&self, p: &Params, now: u64) -> u64 {
        if self.is_empty() {
            return p.burst;
        }
        if now < self.end.saturating_sub(p.window) {
            return 0;
        }
        let (end, prev, curr) = self.rolled(p, now);
        let w = u128::from(p.window);
        let e = u128::from(now) - (u128::from(end) - w.min(u128::from(end)));
        let used = u128::from(prev) * (w - e.min(w)) + u128::from(curr) * w;
        to_u64((u128::from(p.burst) * w).saturating_sub(used) / w).unwrap_or(u64::MAX)
    }

    fn idle_from(&self) -> u64 {
        if self.is_empty() {
            0
        } else {
            self.idle_at
        }
    }
}

/// Any algorithm's state (unkeyed limiters and keyed limiters with several limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LimitState {
    TokenBucket(TokenBucketState),
    Gcra(GcraState),
    FixedWindow(FixedWindowState),
    SlidingWindow(SlidingWindowState),
}

impl LimitState {
    fn fresh(algorithm: Algorithm) -> LimitState {
        match algorithm {
            Algorithm::TokenBucket => LimitState::TokenBucket(TokenBucketState::default()),
            Algorithm::Gcra => LimitState::Gcra(GcraState::default()),
            Algorithm::FixedWindow => LimitState::FixedWindow(FixedWindowState::default()),
            Algorithm::SlidingWindow => LimitState::SlidingWindow(SlidingWindowState::default()),
        }
    }
}

macro_rules! dispatch {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            LimitState::TokenBucket($s) => $body,
            LimitState::Gcra($s) => $body,
            LimitState::FixedWindow($s) => $body,
            LimitState::SlidingWindow($s) => $body,
        }
    };
}

impl Algo for LimitState {
    #[inline]
    fn pass_at(&self, p: &Params, now: u64, cost: u64) -> Option<u64> {
        dispatch!(self, s => s.pass_at(p, now, cost))
    }

    #[inline]
    fn commit(&mut self, p: &Params, at: u64, cost: u64) {
        dispatch!(self, s => s.commit(p, at, cost));
    }

    fn available(&self, p: &Params, now: u64) -> u64 {
        dispatch!(self, s => s.available(p, now))
    }

    fn idle_from(&self) -> u64 {
        dispatch!(self, s => s.idle_from())
    }
}

/// Carry one limit's state into a new configuration of it at `now`.
///
/// - Only `maxWait` changed: kept as is.
/// - Token bucket → token bucket, GCRA → GCRA: the level (tokens available, negative while in
///   debt) is kept, clamped to the new burst; exact when the period (bucket) or the interval
///   (GCRA) is unchanged, otherwise rounded toward fewer tokens.
/// - Anything else (a window limit, or a change of algorithm): the whole units available now,
///   clamped to the new burst, are what the fresh state keeps (the rest counts as used at
///   `now`, in the window holding `now`); pending reservations are not carried over.
fn convert(op: &Params, old: LimitState, np: &Params, now: u64) -> LimitState {
    if (Params { max_wait: 0, ..*op }) == (Params { max_wait: 0, ..*np }) {
        return old;
    }
    let nb = np.burst;
    match old {
        LimitState::TokenBucket(s) if np.algorithm == Algorithm::TokenBucket => {
            let level = i128::try_from(op.capacity()).unwrap_or(i128::MAX)
                - i128::try_from(s.deficit(op, now)).unwrap_or(i128::MAX);
            let level = if op.period == np.period {
                Some(level)
            } else {
                level
                    .checked_mul(i128::from(np.period))
                    .map(|x| x.div_euclid(i128::from(op.period)))
            };
            let cap = i128::try_from(np.capacity()).unwrap_or(i128::MAX);
            let deficit = level.map_or(cap, |l| cap - l.min(cap));
            let d = u128::try_from(deficit).unwrap_or(u128::MAX);
            let l = u128::from(np.limit);
            LimitState::TokenBucket(TokenBucketState {
                full_at: to_u64(u128::from(now) + d / l).unwrap_or(u64::MAX),
                rem: (d % l) as u64,
            })
        }
        LimitState::Gcra(s) if np.algorithm == Algorithm::Gcra => {
            // level in ns of tolerance left: τ − (TAT − now), negative while in debt.
            let level = i128::from(op.tau) - i128::from(s.tat.saturating_sub(now));
            let level = if op.interval == np.interval {
                level
            } else {
                (level * i128::from(np.interval)).div_euclid(i128::from(op.interval))
            };
            let tau = i128::from(np.tau);
            let debt = tau - level.min(tau);
            let tat = i128::from(now) + debt;
            LimitState::Gcra(GcraState {
                tat: u64::try_from(tat).unwrap_or(u64::MAX),
            })
        }
        other => {
            let level = other.available(op, now).min(nb);
            let mut n = LimitState::fresh(np.algorithm);
            if nb - level > 0 {
                n.commit(np, now, nb - level);
            }
            n
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The decision shared by every limiter
// ---------------------------------------------------------------------------------------------

/// The instant every limit passes (`Ok`), or a denial's `retry_after` (`Err`), committing
/// nothing.
#[inline]
fn plan<S: Algo>(
    params: &[Params],
    states: &[S],
    max_wait: u64,
    now: u64,
    cost: u64,
) -> Result<u64, Option<Duration>> {
    let mut at = now;
    for (p, s) in params.iter().zip(states) {
        if cost > p.burst {
            return Err(None);
        }
        at = at.max(s.pass_at(p, now, cost).ok_or(None)?);
    }
    let wait = at - now;
    if wait > max_wait {
        return Err(Some(Duration::from_nanos(wait)));
    }
    Ok(at)
}

fn decision(now: u64, planned: Result<u64, Option<Duration>>) -> RateDecision {
    match planned {
        Ok(at) if at == now => RateDecision::Allowed,
        Ok(at) => RateDecision::Wait(Duration::from_nanos(at - now)),
        Err(retry_after) => RateDecision::Denied { retry_after },
    }
}

/// Decide a check against every limit, committing only an admission (see the module docs).
#[inline]
fn decide<S: Algo>(
    params: &[Params],
    states: &mut [S],
    max_wait: u64,
    now: u64,
    cost: u64,
) -> RateDecision {
    let planned = plan(params, states, max_wait, now, cost);
    if let Ok(at) = planned {
        if cost > 0 {
            for (p, s) in params.iter().zip(states.iter_mut()) {
                s.commit(p, at, cost);
            }
        }
    }
    decision(now, planned)
}

/// What a check would answer, committing nothing.
fn peek<S: Algo>(
    params: &[Params],
    states: &[S],
    max_wait: u64,
    now: u64,
    cost: u64,
) -> RateDecision {
    decision(now, plan(params, states, max_wait, now, cost))
}

fn build_params(config: &RateLimitConfig) -> (Box<[Params]>, u64, u64) {
    let params: Box<[Params]> = config.limits.iter().map(Params::new).collect();
    let max_wait = params.iter().map(|p| p.max_wait).min().unwrap_or(0);
    let min_burst = params.iter().map(|p| p.burst).min().unwrap_or(0);
    (params, max_wait, min_burst)
}

fn rejected(at: Instant, retry_after: Option<Duration>) -> Event {
    Event {
        at,
        kind: EventKind::Rejected {
            reason: ErrorKind::RateLimited,
            retry_after,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// RateLimiter
// ---------------------------------------------------------------------------------------------

/// A rate limiter: one [`RateLimitConfig`] (one or more limits), one shared state.
///
/// `check` allocates nothing (the event queue allocates once, at its first event).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    params: Box<[Params]>,
    states: Box<[LimitState]>,
    /// The smallest `maxWait` of the limits: a wait must be within every one.
    max_wait: u64,
    clock: Monotonic,
    events: EventQueue,
    allowed: u64,
    waited: u64,
    denied: u64,
}

impl RateLimiter {
    /// A full limiter for a validated `config`.
    pub fn new(config: RateLimitConfig) -> Result<RateLimiter, ConfigError> {
        config.validate()?;
        let (params, max_wait, _) = build_params(&config);
        let states = params
            .iter()
            .map(|p| LimitState::fresh(p.algorithm))
            .collect();
        Ok(RateLimiter {
            config,
            params,
            states,
            max_wait,
            clock: Monotonic::new(),
            events: EventQueue::new(),
            allowed: 0,
            waited: 0,
            denied: 0,
        })
    }

    /// Check (and on admission, take) `cost` at `now`. Every limit must pass; a denial
    /// queues a `Rejected { RateLimited, retry_after }` event and changes no limit.
    pub fn check(&mut self, now: Instant, cost: u64) -> RateDecision {
        let now = self.clock.observe(now);
        let d = decide(
            &self.params,
            &mut self.states,
            self.max_wait,
            now.as_nanos(),
            cost,
        );
        match d {
            RateDecision::Allowed => self.allowed += 1,
            RateDecision::Wait(_) => self.waited += 1,
            RateDecision::Denied { retry_after } => {
                self.denied += 1;
                self.events.push(rejected(now, retry_after));
            }
        }
        d
    }

    /// What `check(now, cost)` would answer, changing nothing (no event, no counter).
    pub fn peek(&self, now: Instant, cost: u64) -> RateDecision {
        let now = now.max(self.clock.last()).as_nanos();
        peek(&self.params, &self.states, self.max_wait, now, cost)
    }

    /// The oldest queued event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// Counters, and the first limit's availability as of the latest instant seen.
    #[must_use]
    pub fn metrics(&self) -> RateLimitMetrics {
        RateLimitMetrics {
            allowed: self.allowed,
            waited: self.waited,
            denied: self.denied,
            available: self.available(self.clock.last()),
        }
    }

    /// Whole units of cost the first limit would admit at once at `now`.
    #[must_use]
    pub fn available(&self, now: Instant) -> u64 {
        let now = now.max(self.clock.last()).as_nanos();
        self.states[0].available(&self.params[0], now)
    }

    /// Whether every limit is fully replenished at `now`: the limiter behaves exactly like a
    /// new one, so dropping it loses nothing.
    #[must_use]
    pub fn is_idle(&self, now: Instant) -> bool {
        let now = now.max(self.clock.last()).as_nanos();
        self.states.iter().all(|s| now >= s.idle_from())
    }

    /// Whether a cost-1 check at `now` would not go at once: it would be denied or, with a
    /// `maxWait`, made to wait.
    #[must_use]
    pub fn is_limited(&self, now: Instant) -> bool {
        !matches!(self.peek(now, 1), RateDecision::Allowed)
    }

    /// Take a new config at `now`, keeping the state that fits, limit by limit (by position):
    /// - only `maxWait` changed: the state is kept exactly;
    /// - token bucket → token bucket, GCRA → GCRA: the level (tokens available, negative while
    ///   reservations are owed) is kept, clamped to the new burst — exact when the period
    ///   (bucket) or interval (GCRA) is unchanged, else rounded toward fewer tokens;
    /// - otherwise (a window limit, or another algorithm): the whole units available now,
    ///   clamped to the new burst, are kept; the rest counts as used at `now`; reservations
    ///   owed are not carried over;
    /// - positions beyond the old list start full.
    ///
    /// An invalid config is refused and the old one stays in force.
    pub fn reconfigure(
        &mut self,
        config: RateLimitConfig,
        now: Instant,
    ) -> Result<(), ConfigError> {
        config.validate()?;
        let now = self.clock.observe(now).as_nanos();
        let (params, max_wait, _) = build_params(&config);
        let states = params
            .iter()
            .enumerate()
            .map(|(i, np)| match (self.params.get(i), self.states.get(i)) {
                (Some(op), Some(&s)) => convert(op, s, np, now),
                _ => LimitState::fresh(np.algorithm),
            })
            .collect();
        self.config = config;
        self.params = params;
        self.states = states;
        self.max_wait = max_wait;
        Ok(())
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }
}

// ---------------------------------------------------------------------------------------------
// KeyedRateLimiter
// ---------------------------------------------------------------------------------------------

/// A per-key value's limit states: one state inline, or several in a box.
trait States: KeyedState + Sized {
    type S: Algo;
    fn fresh(params: &[Params]) -> Self;
    fn slice(&self) -> &[Self::S];
    fn slice_mut(&mut self) -> &mut [Self::S];
    /// Limit `i`'s state, as any algorithm's.
    fn state(&self, i: usize) -> LimitState;
    /// From each limit's state (for reconfiguration).
    fn from_states(params: &[Params], states: &[LimitState]) -> Self;
}

fn is_idle_at(idle_at: u64, now: Instant) -> bool {
    now.as_nanos() >= idle_at
}

macro_rules! single_state {
    ($ty:ident, $variant:ident) => {
        impl KeyedState for $ty {
            fn is_idle(&self, now: Instant) -> bool {
                is_idle_at(Algo::idle_from(self), now)
            }
            fn idle_at(&self) -> Option<Instant> {
                Some(Instant::from_nanos(Algo::idle_from(self)))
            }
        }

        impl States for $ty {
            type S = $ty;
            fn fresh(_: &[Params]) -> Self {
                $ty::default()
            }
            fn slice(&self) -> &[$ty] {
                core::slice::from_ref(self)
            }
            fn slice_mut(&mut self) -> &mut [$ty] {
                core::slice::from_mut(self)
            }
            fn state(&self, _: usize) -> LimitState {
                LimitState::$variant(*self)
            }
            fn from_states(_: &[Params], states: &[LimitState]) -> Self {
                match states.first() {
                    Some(LimitState::$variant(s)) => *s,
                    _ => $ty::default(),
                }
            }
        }
    };
}

single_state!(TokenBucketState, TokenBucket);
single_state!(GcraState, Gcra);
single_state!(FixedWindowState, FixedWindow);
single_state!(SlidingWindowState, SlidingWindow);

/// Several limits per key.
#[derive(Clone, Debug)]
struct MultiState(Box<[LimitState]>);

impl KeyedState for MultiState {
    fn is_idle(&self, now: Instant) -> bool {
        self.0.iter().all(|s| is_idle_at(s.idle_from(), now))
    }
    fn idle_at(&self) -> Option<Instant> {
        self.0
            .iter()
            .map(|s| s.idle_from())
            .max()
            .map(Instant::from_nanos)
    }
    fn heap_bytes(&self) -> usize {
        (core::mem::size_of_val(&*self.0) + 8)
            .next_multiple_of(16)
            .max(32)
    }
}

impl States for MultiState {
    type S = LimitState;
    fn fresh(params: &[Params]) -> Self {
        MultiState(
            params
                .iter()
                .map(|p| LimitState::fresh(p.algorithm))
                .collect(),
        )
    }
    fn slice(&self) -> &[LimitState] {
        &self.0
    }
    fn slice_mut(&mut self) -> &mut [LimitState] {
        &mut self.0
    }
    fn state(&self, i: usize) -> LimitState {
        self.0[i]
    }
    fn from_states(_: &[Params], states: &[LimitState]) -> Self {
        MultiState(states.into())
    }
}

/// The key table, specialised by algorithm so a single-limit key costs only its own state
/// (GCRA: 8 bytes).
#[derive(Debug)]
enum Store {
    TokenBucket(Keyed<TokenBucketState>),
    Gcra(Keyed<GcraState>),
    FixedWindow(Keyed<FixedWindowState>),
    SlidingWindow(Keyed<SlidingWindowState>),
    Multi(Keyed<MultiState>),
}

macro_rules! with_store {
    ($store:expr, $k:ident => $body:expr) => {
        match $store {
            Store::TokenBucket($k) => $body,
            Store::Gcra($k) => $body,
            Store::FixedWindow($k) => $body,
            Store::SlidingWindow($k) => $body,
            Store::Multi($k) => $body,
        }
    };
}

impl Store {
    fn new(params: &[Params], max_keys: usize, idle_expiry: Option<Duration>, seed: u64) -> Store {
        match params {
            [p] => match p.algorithm {
                Algorithm::TokenBucket => {
                    Store::TokenBucket(Keyed::new(max_keys, idle_expiry, seed))
                }
                Algorithm::Gcra => Store::Gcra(Keyed::new(max_keys, idle_expiry, seed)),
                Algorithm::FixedWindow => {
                    Store::FixedWindow(Keyed::new(max_keys, idle_expiry, seed))
                }
                Algorithm::SlidingWindow => {
                    Store::SlidingWindow(Keyed::new(max_keys, idle_expiry, seed))
                }
            },
            _ => Store::Multi(Keyed::new(max_keys, idle_expiry, seed)),
        }
    }

    /// Every key's states, under `new_params`, converted at `now` (reconfiguration).
    fn rebuild(self, old: &[Params], new: &[Params], now: u64) -> Store {
        fn conv<V: States, W: States>(
            k: Keyed<V>,
            old: &[Params],
            new: &[Params],
            now: u64,
        ) -> Keyed<W> {
            k.map_values(|_, v| {
                let states: Vec<LimitState> = new
                    .iter()
                    .enumerate()
                    .map(|(i, np)| match old.get(i) {
                        Some(op) => convert(op, v.state(i), np, now),
                        None => LimitState::fresh(np.algorithm),
                    })
                    .collect();
                W::from_states(new, &states)
            })
        }
        fn into<V: States>(k: Keyed<V>, old: &[Params], new: &[Params], now: u64) -> Store {
            match new {
                [p] => match p.algorithm {
                    Algorithm::TokenBucket => Store::TokenBucket(conv(k, old, new, now)),
                    Algorithm::Gcra => Store::Gcra(conv(k, old, new, now)),
                    Algorithm::FixedWindow => Store::FixedWindow(conv(k, old, new, now)),
                    Algorithm::SlidingWindow => Store::SlidingWindow(conv(k, old, new, now)),
                },
                _ => Store::Multi(conv(k, old, new, now)),
            }
        }
        with_store!(self, k => into(k, old, new, now))
    }
}

/// Check `key` in one specialised table.
fn check_key<V: States>(
    keyed: &mut Keyed<V>,
    params: &[Params],
    max_wait: u64,
    key: &str,
    now: Instant,
    cost: u64,
) -> Result<RateDecision, Option<Instant>> {
    match keyed.try_get_or_insert_with(key, now, || V::fresh(params)) {
        Ok(v) => Ok(decide(
            params,
            v.slice_mut(),
            max_wait,
            now.as_nanos(),
            cost,
        )),
        Err(full) => Err(full.retry_at),
    }
}

fn peek_key<V: States>(
    keyed: &Keyed<V>,
    params: &[Params],
    max_wait: u64,
    key: &str,
    now: u64,
) -> RateDecision {
    match keyed.get(key) {
        Some(v) => peek(params, v.slice(), max_wait, now, 1),
        None => RateDecision::Allowed,
    }
}

/// Rate limits per key (per user, per host), with bounded memory: at most `maxKeys` keys, idle
/// keys dropped after `idleExpiry`, and a key that is limited (or owes a reservation) never
/// evicted — so cycling through fresh keys cannot reset anyone's limit.
///
/// A new key that arrives when the table is full and no idle key can be evicted is **denied**
/// (fail closed) with `retry_after` = when the earliest examined key turns idle; admitting it
/// untracked would let a flood of new keys bypass the limit. Keys are hashed with SipHash-1-3
/// keyed from `seed`. `check` allocates only to insert a new key.
#[derive(Debug)]
pub struct KeyedRateLimiter {
    config: KeyedRateLimitConfig,
    params: Box<[Params]>,
    max_wait: u64,
    min_burst: u64,
    store: Store,
    clock: Monotonic,
    events: EventQueue,
    allowed: u64,
    waited: u64,
    denied: u64,
    table_full: u64,
}

impl KeyedRateLimiter {
    /// An empty keyed limiter for a validated `config`; `seed` keys the hash (from the config's
    /// `seed`, or the host's OS randomness).
    pub fn new(config: KeyedRateLimitConfig, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let (params, max_wait, min_burst) = build_params(&config.limit);
        let store = Store::new(
            &params,
            config.max_keys as usize,
            config.idle_expiry.map(ConfigDuration::get),
            seed,
        );
        Ok(KeyedRateLimiter {
            config,
            params,
            max_wait,
            min_burst,
            store,
            clock: Monotonic::new(),
            events: EventQueue::new(),
            allowed: 0,
            waited: 0,
            denied: 0,
            table_full: 0,
        })
    }

    /// Check (and on admission, take) `cost` for `key` at `now`. A cost above a burst is denied
    /// (`retry_after: None`) without touching the table.
    pub fn check(&mut self, key: &str, now: Instant, cost: u64) -> RateDecision {
        let now = self.clock.observe(now);
        let d = if cost > self.min_burst {
            RateDecision::Denied { retry_after: None }
        } else {
            let (params, max_wait) = (&*self.params, self.max_wait);
            let r =
                with_store!(&mut self.store, k => check_key(k, params, max_wait, key, now, cost));
            match r {
                Ok(d) => d,
                Err(retry_at) => {
                    self.table_full += 1;
                    RateDecision::Denied {
                        retry_after: retry_at.map(|t| t.saturating_duration_since(now)),
                    }
                }
            }
        };
        match d {
            RateDecision::Allowed => self.allowed += 1,
            RateDecision::Wait(_) => self.waited += 1,
            RateDecision::Denied { retry_after } => {
                self.denied += 1;
                self.events.push(rejected(now, retry_after));
            }
        }
        d
    }

    /// Keys held.
    #[must_use]
    pub fn keys(&self) -> usize {
        with_store!(&self.store, k => k.len())
    }

    /// Whether `key` has state.
    #[must_use]
    pub fn contains(&self, key: &str) -> bool {
        with_store!(&self.store, k => k.contains_key(key))
    }

    /// Whether `key` is fully replenished at `now` (true for a key not held: it starts full).
    #[must_use]
    pub fn is_idle(&self, key: &str, now: Instant) -> bool {
        let now = now.max(self.clock.last());
        with_store!(&self.store, k => k.get(key).is_none_or(|v| v.is_idle(now)))
    }

    /// Whether a cost-1 check of `key` at `now` would not go at once (denied, or made to wait);
    /// a key not held is not limited (a full table is not the key's limit).
    #[must_use]
    pub fn is_limited(&self, key: &str, now: Instant) -> bool {
        let now = now.max(self.clock.last()).as_nanos();
        let (params, max_wait) = (&*self.params, self.max_wait);
        let d = with_store!(&self.store, k => peek_key(k, params, max_wait, key, now));
        !matches!(d, RateDecision::Allowed)
    }

    /// Drop every key unused for `idleExpiry` that is idle at `now`; returns how many. O(keys);
    /// checks already do this a little at a time.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let now = self.clock.observe(now);
        with_store!(&mut self.store, k => k.sweep(now))
    }

    /// The oldest queued event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// Counters and gauges.
    #[must_use]
    pub fn metrics(&self) -> KeyedRateLimitMetrics {
        let (keys, evicted, expired) =
            with_store!(&self.store, k => (k.len(), k.evicted(), k.expired()));
        KeyedRateLimitMetrics {
            allowed: self.allowed,
            waited: self.waited,
            denied: self.denied,
            table_full: self.table_full,
            keys: keys as u64,
            evicted,
            expired,
        }
    }

    /// An estimate of the heap bytes the key table holds (see [`Keyed::heap_bytes`]).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        with_store!(&self.store, k => k.heap_bytes())
    }

    /// Take a new config at `now`, converting every key's state as
    /// [`RateLimiter::reconfigure`] does. A smaller `maxKeys` evicts idle keys; busy keys stay
    /// (never evicted) until they turn idle, and no new key is admitted meanwhile. An invalid
    /// config is refused and the old one stays in force.
    pub fn reconfigure(
        &mut self,
        config: KeyedRateLimitConfig,
        now: Instant,
    ) -> Result<(), ConfigError> {
        config.validate()?;
        let now = self.clock.observe(now);
        let (params, max_wait, min_burst) = build_params(&config.limit);
        let old = core::mem::replace(&mut self.store, Store::Gcra(Keyed::new(0, None, 0)));
        let mut store = old.rebuild(&self.params, &params, now.as_nanos());
        let idle_expiry = config.idle_expiry.map(ConfigDuration::get);
        with_store!(&mut store, k => {
            k.set_idle_expiry(idle_expiry);
            k.set_max_keys(config.max_keys as usize, now);
        });
        self.store = store;
        self.params = params;
        self.max_wait = max_wait;
        self.min_burst = min_burst;
        self.config = config;
        Ok(())
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> &KeyedRateLimitConfig {
        &self.config
    }

    /// `size_of` one key's slot in the table for this config (state, links, key pointer).
    #[must_use]
    pub fn slot_size(&self) -> usize {
        match &self.store {
            Store::TokenBucket(_) => Keyed::<TokenBucketState>::slot_size(),
            Store::Gcra(_) => Keyed::<GcraState>::slot_size(),
            Store::FixedWindow(_) => Keyed::<FixedWindowState>::slot_size(),
            Store::SlidingWindow(_) => Keyed::<SlidingWindowState>::slot_size(),
            Store::Multi(_) => Keyed::<MultiState>::slot_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Instant {
        Instant::from_nanos(x * 1_000_000)
    }

    fn ns(x: u64) -> Instant {
        Instant::from_nanos(x)
    }

    fn d_ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn limiter(json: &str) -> RateLimiter {
        RateLimiter::new(RateLimitConfig::from_json(json).unwrap()).unwrap()
    }

    fn denied(ms: u64) -> RateDecision {
        RateDecision::Denied {
            retry_after: Some(d_ms(ms)),
        }
    }

    const NEVER: RateDecision = RateDecision::Denied { retry_after: None };
    const ALL: [&str; 4] = ["tokenBucket", "gcra", "fixedWindow", "slidingWindow"];

    #[test]
    fn config_parses_one_limit_or_a_list_with_defaults() {
        let c = RateLimitConfig::from_json(r#"{"rate": "100/s"}"#).unwrap();
        assert_eq!(c.limits.len(), 1);
        let l = c.limits[0];
        assert_eq!(
            (l.algorithm, l.burst, l.max_wait.nanos()),
            (Algorithm::TokenBucket, None, 0)
        );
        assert_eq!(l.effective_burst(), 100);
        assert_eq!(LimitConfig::new(config_rate("1/m")).effective_burst(), 1);
        let c = RateLimitConfig::from_json(
            r#"[{"rate": "5/s", "algorithm": "gcra", "maxWait": "250ms"}, {"rate": {"limit": 1000, "period": "1h"}, "burst": 20}]"#,
        )
        .unwrap();
        assert_eq!(c.limits[0].algorithm, Algorithm::Gcra);
        assert_eq!(c.limits[0].max_wait.get(), d_ms(250));
        assert_eq!(c.limits[1].effective_burst(), 20);
        // Round trip keeps the shape.
        let again: RateLimitConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        assert!(serde_json::to_string(&c).unwrap().starts_with('['));
        let one = RateLimitConfig::from_json(
            r#"{"rate": "5/s", "algorithm": "slidingWindow", "burst": 2}"#,
        )
        .unwrap();
        let text = serde_json::to_string(&one).unwrap();
        assert!(text.starts_with('{'), "{text}");
        assert_eq!(RateLimitConfig::from_json(&text).unwrap(), one);
    }

    fn config_rate(s: &str) -> Rate {
        crate::config::parse_rate(s).unwrap()
    }

    fn first_error(json: &str) -> String {
        RateLimitConfig::from_json(json).unwrap_err().issues()[0].to_string()
    }

    #[test]
    fn config_errors_name_the_field_path() {
        assert!(first_error(r#"[{"rate": "5/s"}, {"rate": "x/s"}]"#)
            .starts_with("[1].rate: invalid rate"));
        assert!(first_error(r#"{"rate": "5/s", "brust": 3}"#).contains("unknown field `brust`"));
        assert!(first_error(r#"{"rate": "5/s", "algorithm": "leaky"}"#)
            .starts_with("algorithm: unknown variant"));
        assert!(first_error(r#"{"burst": 3}"#).contains("missing field `rate`"));
        assert_eq!(
            first_error(r#"{"rate": "5/s", "burst": 0}"#),
            "burst: must be >= 1, got 0"
        );
        assert_eq!(
            first_error(r#"[{"rate": "5/s"}, {"rate": "5/s", "burst": 0}]"#),
            "[1].burst: must be >= 1, got 0"
        );
        assert!(first_error("[]").contains("at least one limit"));
        assert!(first_error(r#"{"rate": "1/d", "burst": 100000}"#)
            .starts_with("burst: refilling a burst of 100000"));
        assert!(
            first_error(r#"{"rate": "5/s", "maxWait": -1}"#).starts_with("maxWait: must be >= 0")
        );
        assert!(first_error("7").contains("a rate limit object"));
        // Every issue is collected, each under its own position.
        let e = RateLimitConfig::from_json(
            r#"[{"rate": "5/s", "burst": 0}, {"rate": "5/s", "burst": 0}]"#,
        )
        .unwrap_err();
        assert_eq!(e.issues().len(), 2);
        assert_eq!(
            e.within("rateLimit").issues()[1].to_string(),
            "rateLimit[1].burst: must be >= 1, got 0"
        );
    }

    #[test]
    fn keyed_config_defaults_and_errors() {
        let c = KeyedRateLimitConfig::from_json(r#"{"limit": {"rate": "5/s"}}"#).unwrap();
        assert_eq!(c.max_keys, 10_000);
        assert_eq!(c.idle_expiry, Some(ConfigDuration::from_secs(600)));
        let c = KeyedRateLimitConfig::from_json(
            r#"{"limit": [{"rate": "5/s"}], "maxKeys": 3, "idleExpiry": null}"#,
        )
        .unwrap();
        assert_eq!((c.max_keys, c.idle_expiry), (3, None));
        let again: KeyedRateLimitConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        let e = KeyedRateLimitConfig::from_json(
            r#"{"limit": [{"rate": "5/s"}, {"rate": "5/s", "burst": 0}], "maxKeys": 0}"#,
        )
        .unwrap_err();
        let texts: Vec<String> = e.issues().iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "limit[1].burst: must be >= 1, got 0",
                "maxKeys: must be >= 1, got 0"
            ]
        );
        let e = KeyedRateLimitConfig::from_json(r#"{"limit": [{"rate": "5/s"}, {"rate": "5/x"}]}"#)
            .unwrap_err();
        assert!(
            e.to_string().starts_with("limit[1].rate: invalid rate"),
            "{e}"
        );
    }

    #[test]
    fn token_bucket_refills_exactly() {
        let mut l = limiter(r#"{"rate": "5/s", "burst": 3}"#);
        for _ in 0..3 {
            assert_eq!(l.check(ms(0), 1), RateDecision::Allowed);
        }
        assert_eq!(l.check(ms(0), 1), denied(200));
        assert_eq!(l.check(ms(200), 1), RateDecision::Allowed);
        assert_eq!(l.check(ms(300), 1), denied(100));
        assert_eq!(
            l.check(ms(299), 1),
            denied(100),
            "time going back is clamped to 300"
        );
        assert_eq!(l.available(ms(800)), 3);
        // 1 token per 200 ms, exactly: a third of a second refills 1 token and 2/3 of another.
        let mut l = limiter(r#"{"rate": "3/s", "burst": 1}"#);
        assert!(l.check(ms(0), 1).is_allowed());
        assert_eq!(
            l.check(ms(0), 1).retry_after(),
            Some(Duration::from_nanos(333_333_334))
        );
        assert_eq!(
            l.check(ns(333_333_333), 1).retry_after(),
            Some(Duration::from_nanos(1))
        );
        assert_eq!(l.check(ns(333_333_334), 1), RateDecision::Allowed);
    }

    #[test]
    fn gcra_uses_the_rounded_up_interval() {
        let mut l = limiter(r#"{"algorithm": "gcra", "rate": "3/s", "burst": 2}"#);
        assert_eq!(l.check(ms(0), 1), RateDecision::Allowed);
        assert_eq!(l.check(ms(0), 1), RateDecision::Allowed);
        assert_eq!(
            l.check(ms(0), 1).retry_after(),
            Some(Duration::from_nanos(333_333_334))
        );
        // Three intervals of 333 333 334 ns: the third token is due at 1 000 000 002 ns, not 1 s.
        assert!(l.check(ns(333_333_334), 1).is_allowed());
        assert!(l.check(ns(666_666_668), 1).is_allowed());
        assert_eq!(
            l.check(ns(999_999_999), 1).retry_after(),
            Some(Duration::from_nanos(3))
        );
    }

    #[test]
    fn every_algorithm_admits_exactly_burst_at_once_when_new_or_idle() {
        for algo in ALL {
            let mut l = limiter(&format!(
                r#"{{"algorithm": "{algo}", "rate": "10/s", "burst": 4}}"#
            ));
            for round in [0, 60_000] {
                assert!(l.is_idle(ms(round)), "{algo}");
                for i in 0..4 {
                    assert_eq!(l.check(ms(round), 1), RateDecision::Allowed, "{algo} #{i}");
                }
                assert!(!l.check(ms(round), 1).is_allowed(), "{algo}");
                assert!(l.is_limited(ms(round)) && !l.is_idle(ms(round)), "{algo}");
            }
        }
    }

    #[test]
    fn cost_above_burst_never_passes_and_takes_nothing() {
        for algo in ALL {
            let mut l = limiter(&format!(
                r#"{{"algorithm": "{algo}", "rate": "10/s", "burst": 4, "maxWait": "1h"}}"#
            ));
            assert_eq!(l.check(ms(0), 5), NEVER, "{algo}");
            assert_eq!(l.check(ms(0), u64::MAX), NEVER, "{algo}");
            assert_eq!(l.check(ms(0), 4), RateDecision::Allowed, "{algo}");
            assert!(l.is_idle(ms(60_000)));
        }
    }

    #[test]
    fn cost_zero_consumes_nothing() {
        for algo in ALL {
            let mut l = limiter(&format!(
                r#"{{"algorithm": "{algo}", "rate": "10/s", "burst": 2}}"#
            ));
            for _ in 0..5 {
                assert_eq!(l.check(ms(1), 0), RateDecision::Allowed, "{algo}");
            }
            assert!(l.is_idle(ms(1)), "{algo}");
        }
    }

    #[test]
    fn fixed_window_admits_two_bursts_across_a_boundary() {
        // W = burst / rate = 5 / (10/s) = 500 ms.
        let mut l = limiter(r#"{"algorithm": "fixedWindow", "rate": "10/s", "burst": 5}"#);
        for _ in 0..5 {
            assert_eq!(l.check(ms(499), 1), RateDecision::Allowed);
        }
        assert_eq!(l.check(ms(499), 1), denied(1));
        for _ in 0..5 {
            assert_eq!(l.check(ms(500), 1), RateDecision::Allowed);
        }
        assert_eq!(l.check(ms(500), 1), denied(500));
    }

    #[test]
    fn sliding_window_weights_the_previous_window() {
        // W = 10 / (10/s) = 1 s.
        let mut l = limiter(r#"{"algorithm": "slidingWindow", "rate": "10/s", "burst": 10}"#);
        for _ in 0..10 {
            assert!(l.check(ms(999), 1).is_allowed());
        }
        // At 1000 the previous 10 weigh fully: 10·(1000 − e)/1000 + 1 ≤ 10 needs e ≥ 100 ms.
        assert_eq!(l.check(ms(1000), 1), denied(100));
        assert_eq!(l.check(ms(1100), 1), RateDecision::Allowed);
        assert_eq!(l.check(ms(1100), 1), denied(100));
        // At 1500: 10·0.5 + 1 = 6, so 4 more fit.
        assert_eq!(l.available(ms(1500)), 4);
        for _ in 0..4 {
            assert!(l.check(ms(1500), 1).is_allowed());
        }
        assert_eq!(l.check(ms(1500), 1), denied(100));
        // 5 in the window starting at 1000: at 2000 they weigh fully; 5·(1 − e) + 6 ≤ 10 → e ≥ 200 ms.
        assert_eq!(l.check(ms(2000), 6), denied(200));
        assert_eq!(l.check(ms(2000), 5), RateDecision::Allowed);
    }

    #[test]
    fn sliding_window_retry_can_land_in_the_next_window() {
        let mut l = limiter(r#"{"algorithm": "slidingWindow", "rate": "10/s", "burst": 10}"#);
        for _ in 0..10 {
            assert!(l.check(ms(0), 1).is_allowed());
        }
        // Current window full: the next one starts with these 10 at full weight → 1 passes at 1100.
        assert_eq!(l.check(ms(400), 1), denied(700));
        assert_eq!(l.check(ms(400), 10), denied(1600));
    }

    #[test]
    fn max_wait_reserves_and_keeps_order() {
        let w = |x| RateDecision::Wait(d_ms(x));
        // rate 10/s, burst 1, maxWait 200 ms; windows are 1 / (10/s) = 100 ms long. Each step:
        // (at, expected).
        let a = RateDecision::Allowed;
        for (algo, steps) in [
            (
                "tokenBucket",
                vec![
                    (0, a),
                    (0, w(100)),
                    (0, w(200)),
                    (0, denied(300)),
                    (100, w(200)),
                ],
            ),
            (
                "gcra",
                vec![
                    (0, a),
                    (0, w(100)),
                    (0, w(200)),
                    (0, denied(300)),
                    (100, w(200)),
                ],
            ),
            // The reservation takes [100, 200); the next takes [200, 300); the next is too far.
            (
                "fixedWindow",
                vec![
                    (0, a),
                    (0, w(100)),
                    (0, w(200)),
                    (0, denied(300)),
                    (100, w(200)),
                ],
            ),
            // With burst 1 a full window weighs fully at the start of the next, so the next
            // admission is two windows later, and every reservation queues behind the last.
            (
                "slidingWindow",
                vec![
                    (0, a),
                    (0, w(200)),
                    (0, denied(400)),
                    (199, denied(201)),
                    (200, w(200)),
                ],
            ),
        ] {
            let mut l = limiter(&format!(
                r#"{{"algorithm": "{algo}", "rate": "10/s", "burst": 1, "maxWait": "200ms"}}"#
            ));
            for (i, (at, expected)) in steps.into_iter().enumerate() {
                assert_eq!(l.check(ms(at), 1), expected, "{algo} step {i}");
            }
        }
    }

    #[test]
    fn sliding_window_with_integer_counts_lags_the_rate_for_tiny_bursts() {
        // A client asking as early as it can: burst 1 gets one call per two windows, burst B
        // settles at B − 1 per window (documented in the module docs).
        for (burst, per_10_windows) in [(1, 5), (2, 11), (10, 91)] {
            let mut l = limiter(&format!(
                r#"{{"algorithm": "slidingWindow", "rate": "{burst}/s", "burst": {burst}, "maxWait": "1h"}}"#
            ));
            let mut n = 0;
            let mut t = ms(0);
            while t < ms(10_000) {
                t = t.saturating_add(l.check(t, 1).wait());
                if t < ms(10_000) {
                    n += 1;
                }
            }
            assert_eq!(n, per_10_windows, "burst {burst}");
        }
    }

    #[test]
    fn sliding_window_reservation_in_a_later_window_holds_back_the_current_one() {
        let mut l = limiter(
            r#"{"algorithm": "slidingWindow", "rate": "10/s", "burst": 2, "maxWait": "1s"}"#,
        );
        // W = 200 ms. Fill, then reserve: the next pass is in the next window at full weight → e ≥ 100.
        assert!(l.check(ms(0), 2).is_allowed());
        assert_eq!(l.check(ms(0), 1), RateDecision::Wait(d_ms(300)));
        // Until 300 nobody overtakes: even cost 0 waits for the reservation's instant.
        assert_eq!(l.peek(ms(10), 0), RateDecision::Wait(d_ms(290)));
        assert!(!l.is_idle(ms(10)));
        assert_eq!(l.available(ms(10)), 0);
    }

    #[test]
    fn all_limits_must_pass_and_a_denial_takes_nothing() {
        let mut l = limiter(r#"[{"rate": "2/s", "burst": 2}, {"rate": "3/10s", "burst": 3}]"#);
        assert!(l.check(ms(0), 1).is_allowed());
        assert!(l.check(ms(0), 1).is_allowed());
        assert_eq!(l.check(ms(0), 1), denied(500));
        assert!(l.check(ms(500), 1).is_allowed());
        // The second limit is empty now; the first has a token again and must not be charged.
        // Second: 3 per 10 s; deficit at 1 s = 3 tokens − 0.3 → one more needs 2.333… s.
        assert_eq!(l.available(ms(1000)), 1);
        assert_eq!(
            l.check(ms(1000), 1).retry_after(),
            Some(Duration::from_nanos(2_333_333_334))
        );
        assert_eq!(l.available(ms(1000)), 1, "the first limit kept its token");
        assert_eq!(
            l.check(ms(1000), 3),
            NEVER,
            "cost 3 fits the second but not the first"
        );
    }

    #[test]
    fn a_wait_must_fit_every_limits_max_wait() {
        let mut l = limiter(
            r#"[{"rate": "10/s", "burst": 1, "maxWait": "1s"}, {"rate": "10/s", "burst": 1, "maxWait": "50ms"}]"#,
        );
        assert!(l.check(ms(0), 1).is_allowed());
        assert_eq!(l.check(ms(0), 1), denied(100));
        assert_eq!(l.check(ms(50), 1), RateDecision::Wait(d_ms(50)));
    }

    #[test]
    fn several_limits_commit_at_the_instant_the_call_proceeds() {
        // The slow limit makes the call wait 1 s; the fast one records it at 1 s, not now, so
        // that at 1 s it has room for 1 more only (its bound holds for actual run times).
        let mut l = limiter(
            r#"[{"rate": "1/s", "burst": 2, "maxWait": "10s"}, {"rate": "1/s", "burst": 1, "maxWait": "10s"}]"#,
        );
        assert_eq!(l.check(ms(0), 1), RateDecision::Allowed);
        assert_eq!(l.check(ms(0), 1), RateDecision::Wait(d_ms(1000)));
        assert_eq!(l.available(ms(1000)), 1);
    }

    #[test]
    fn events_and_metrics() {
        let mut l = limiter(r#"{"rate": "1/s", "burst": 1}"#);
        assert!(l.check(ms(5), 1).is_allowed());
        assert!(!l.check(ms(10), 1).is_allowed());
        assert_eq!(l.check(ms(10), 2), NEVER);
        let e = l.poll_event().unwrap();
        assert_eq!(e.at, ms(10));
        assert_eq!(
            e.kind,
            EventKind::Rejected {
                reason: ErrorKind::RateLimited,
                retry_after: Some(d_ms(995))
            }
        );
        assert_eq!(
            l.poll_event().unwrap().kind,
            EventKind::Rejected {
                reason: ErrorKind::RateLimited,
                retry_after: None
            }
        );
        assert_eq!(l.poll_event(), None);
        assert_eq!(
            l.metrics(),
            RateLimitMetrics {
                allowed: 1,
                waited: 0,
                denied: 2,
                available: 0
            }
        );
        assert!(l.is_limited(ms(10)));
        assert!(!l.is_limited(ms(1005)));
        assert!(l.is_idle(ms(1005)) && !l.is_idle(ms(1004)));
    }

    #[test]
    fn reconfigure_keeps_the_level_clamped_to_the_new_burst() {
        let mut l = limiter(r#"{"rate": "10/s", "burst": 10}"#);
        assert!(l.check(ms(0), 4).is_allowed());
        l.reconfigure(
            RateLimitConfig::from_json(r#"{"rate": "10/s", "burst": 20}"#).unwrap(),
            ms(0),
        )
        .unwrap();
        assert_eq!(l.available(ms(0)), 6);
        l.reconfigure(
            RateLimitConfig::from_json(r#"{"rate": "10/s", "burst": 3}"#).unwrap(),
            ms(0),
        )
        .unwrap();
        assert_eq!(l.available(ms(0)), 3);
        // A faster period: level carried in tokens, refilling at the new rate.
        l.reconfigure(
            RateLimitConfig::from_json(r#"{"rate": "100/s", "burst": 3}"#).unwrap(),
            ms(0),
        )
        .unwrap();
        assert!(l.check(ms(0), 3).is_allowed());
        assert_eq!(l.check(ms(0), 1), denied(10));
        // Invalid: refused, old config in force.
        assert!(l
            .reconfigure(
                RateLimitConfig::from_json(r#"{"rate": "1/s"}"#).unwrap(),
                ms(0)
            )
            .is_ok());
        let bad = RateLimitConfig::all(vec![LimitConfig::new(config_rate("1/s")).with_burst(0)]);
        assert_eq!(
            l.reconfigure(bad, ms(0)).unwrap_err().to_string(),
            "[0].burst: must be >= 1, got 0"
        );
        assert_eq!(l.config().limits[0].rate, config_rate("1/s"));
    }

    #[test]
    fn reconfigure_across_algorithms_and_positions() {
        for from in ALL {
            for to in ALL {
                let mut l = limiter(&format!(
                    r#"{{"algorithm": "{from}", "rate": "10/s", "burst": 10}}"#
                ));
                assert!(l.check(ms(0), 7).is_allowed());
                let cfg = format!(
                    r#"[{{"algorithm": "{to}", "rate": "10/s", "burst": 5}}, {{"rate": "1/s", "burst": 1}}]"#
                );
                l.reconfigure(RateLimitConfig::from_json(&cfg).unwrap(), ms(0))
                    .unwrap();
                // 3 were left; clamped to the new burst 5 → 3.
                assert_eq!(l.available(ms(0)), 3, "{from} → {to}");
                assert!(
                    l.check(ms(0), 1).is_allowed(),
                    "{from} → {to}: the new second limit starts full"
                );
                assert!(!l.check(ms(0), 1).is_allowed(), "{from} → {to}");
            }
        }
    }

    #[test]
    fn reconfigure_windows_keep_their_level() {
        let mut l = limiter(r#"{"algorithm": "fixedWindow", "rate": "10/s", "burst": 10}"#);
        assert!(l.check(ms(100), 4).is_allowed());
        l.reconfigure(
            RateLimitConfig::from_json(
                r#"{"algorithm": "fixedWindow", "rate": "20/s", "burst": 20}"#,
            )
            .unwrap(),
            ms(100),
        )
        .unwrap();
        // 6 were available; a bigger burst does not add to them before the window rolls.
        assert_eq!(l.available(ms(100)), 6);
        assert_eq!(l.available(ms(1000)), 20);
        // Changing only maxWait keeps the state exactly.
        let mut s = limiter(r#"{"algorithm": "slidingWindow", "rate": "10/s", "burst": 10}"#);
        assert!(s.check(ms(900), 10).is_allowed());
        s.reconfigure(
            RateLimitConfig::from_json(
                r#"{"algorithm": "slidingWindow", "rate": "10/s", "burst": 10, "maxWait": "1s"}"#,
            )
            .unwrap(),
            ms(900),
        )
        .unwrap();
        assert_eq!(s.check(ms(1000), 1), RateDecision::Wait(d_ms(100)));
    }

    #[test]
    fn huge_inputs_do_not_panic() {
        for algo in ALL {
            let json = format!(
                r#"{{"algorithm": "{algo}", "rate": "1/18250d", "burst": 2, "maxWait": "36500d"}}"#
            );
            let mut l = limiter(&json);
            for t in [u64::MAX, 0, u64::MAX - 1, 1] {
                let _ = l.check(Instant::from_nanos(t), 1);
                let _ = l.check(Instant::from_nanos(t), 2);
                let _ = l.check(Instant::from_nanos(t), u64::MAX);
                let _ = (
                    l.is_idle(Instant::MAX),
                    l.is_limited(Instant::MAX),
                    l.metrics(),
                );
            }
            let mut l = limiter(&format!(
                r#"{{"algorithm": "{algo}", "rate": "18446744073709551615/ns", "burst": 1000000}}"#
            ));
            assert!(l.check(ms(1), 1_000_000).is_allowed(), "{algo}");
        }
    }

    #[test]
    fn keyed_limits_each_key_and_fails_closed_when_full() {
        let cfg = KeyedRateLimitConfig::from_json(
            r#"{"limit": {"rate": "1/s", "burst": 1}, "maxKeys": 2}"#,
        )
        .unwrap();
        let mut k = KeyedRateLimiter::new(cfg, 9).unwrap();
        assert!(k.check("a", ms(0), 1).is_allowed());
        assert!(k.check("b", ms(0), 1).is_allowed());
        assert_eq!(k.check("a", ms(0), 1), denied(1000));
        // Both keys are limited: a third is refused, not admitted untracked.
        assert_eq!(k.check("c", ms(100), 1), denied(900));
        assert_eq!(k.keys(), 2);
        assert!(k.is_limited("a", ms(100)) && !k.is_limited("c", ms(100)));
        // At 1 s both are idle; "b" is least recently used.
        assert!(k.check("c", ms(1000), 1).is_allowed());
        assert!(k.contains("a") && !k.contains("b"));
        assert_eq!(k.check("x", ms(1000), 2), NEVER);
        let m = k.metrics();
        assert_eq!(
            (m.allowed, m.denied, m.table_full, m.keys, m.evicted),
            (3, 3, 1, 2, 1)
        );
        assert_eq!(
            k.poll_event().unwrap().kind,
            EventKind::Rejected {
                reason: ErrorKind::RateLimited,
                retry_after: Some(d_ms(1000))
            }
        );
    }

    #[test]
    fn keyed_expiry_and_sweep() {
        let cfg =
            KeyedRateLimitConfig::from_json(r#"{"limit": {"rate": "10/s"}, "idleExpiry": "1s"}"#)
                .unwrap();
        let mut k = KeyedRateLimiter::new(cfg, 1).unwrap();
        for key in ["a", "b", "c"] {
            assert!(k.check(key, ms(0), 10).is_allowed());
        }
        // Still refilling at 1 s? No: 10 tokens at 10/s take exactly 1 s.
        assert_eq!(k.sweep(ms(999)), 0);
        assert_eq!(k.sweep(ms(1000)), 3);
        assert_eq!(k.keys(), 0);
        assert_eq!(k.metrics().expired, 3);
    }

    #[test]
    fn keyed_with_several_limits_and_reconfigure() {
        let cfg = KeyedRateLimitConfig::from_json(
            r#"{"limit": [{"rate": "2/s"}, {"algorithm": "gcra", "rate": "3/m", "burst": 3}]}"#,
        )
        .unwrap();
        let mut k = KeyedRateLimiter::new(cfg, 1).unwrap();
        assert!(k.check("a", ms(0), 2).is_allowed());
        assert_eq!(k.check("a", ms(0), 1), denied(500));
        assert!(k.check("a", ms(500), 1).is_allowed());
        assert!(!k.is_idle("a", ms(500)) && k.is_idle("zz", ms(500)));
        // To one GCRA limit: the key keeps its (converted) level and the table its keys.
        let one = KeyedRateLimitConfig::from_json(
            r#"{"limit": {"algorithm": "gcra", "rate": "2/s"}, "maxKeys": 5}"#,
        )
        .unwrap();
        k.reconfigure(one, ms(500)).unwrap();
        assert_eq!(k.keys(), 1);
        // The token bucket had nothing left at 500: GCRA starts empty, one token per 500 ms.
        assert_eq!(k.check("a", ms(500), 1), denied(500));
        assert!(k.check("a", ms(1000), 1).is_allowed());
        assert_eq!(k.config().max_keys, 5);
        assert!(k.slot_size() <= 40, "{}", k.slot_size());
    }

    #[test]
    fn keyed_reconfigure_to_fewer_keys_never_drops_a_busy_key() {
        let cfg = KeyedRateLimitConfig::from_json(
            r#"{"limit": {"rate": "1/s", "burst": 1}, "maxKeys": 4}"#,
        )
        .unwrap();
        let mut k = KeyedRateLimiter::new(cfg.clone(), 1).unwrap();
        for key in ["a", "b", "c"] {
            assert!(k.check(key, ms(0), 1).is_allowed());
        }
        let _ = k.check("d", ms(0), 0); // held, idle
        k.reconfigure(cfg.with_max_keys(1), ms(0)).unwrap();
        assert_eq!(k.keys(), 3);
        assert!(!k.contains("d"));
        assert!(!k.check("e", ms(0), 1).is_allowed());
    }

    #[test]
    fn limiters_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<RateLimiter>();
        send_sync::<KeyedRateLimiter>();
        send_sync::<RateLimitConfig>();
    }

    #[test]
    fn per_key_state_is_small() {
        assert_eq!(core::mem::size_of::<GcraState>(), 8);
        assert_eq!(core::mem::size_of::<TokenBucketState>(), 16);
        assert_eq!(core::mem::size_of::<FixedWindowState>(), 16);
        assert_eq!(core::mem::size_of::<SlidingWindowState>(), 32);
        assert_eq!(Keyed::<GcraState>::slot_size(), 40);
        assert_eq!(Keyed::<TokenBucketState>::slot_size(), 48);
    }

    #[test]
    fn a_hundred_thousand_keys_fit_in_16_mb() {
        for algo in ["gcra", "tokenBucket", "slidingWindow"] {
            let cfg = KeyedRateLimitConfig::from_json(&format!(
                r#"{{"limit": {{"algorithm": "{algo}", "rate": "10/s"}}, "maxKeys": 100000}}"#
            ))
            .unwrap();
            let mut k = KeyedRateLimiter::new(cfg, 1).unwrap();
            for i in 0..100_000 {
                assert!(k.check(&format!("user-{i:010}"), ms(0), 1).is_allowed());
            }
            assert_eq!(k.keys(), 100_000);
            let bytes = k.heap_bytes();
            assert!(bytes <= 16 << 20, "{algo}: {bytes} bytes");
        }
    }
}

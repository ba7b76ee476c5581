//! Retry with backoff, jitter, Retry-After hints, deadlines and a shared retry budget.
//!
//! `{"maxRetries": 3, "backoff": {"type": "exponential", "base": "1s", "multiplier": 2,
//! "max": "30s", "jitter": "proportional"}, "maxElapsed": "10s", "budget": {"maxTokens": 100,
//! "tokenRatio": 0.1}, "pushback": "none"}`
//!
//! One [`Retry`] serves every call of a pipeline (it owns the budget and the metrics); each call
//! carries a small `Copy` [`RetryState`]. The host reports each failed attempt with
//! [`Retry::on_failure`] and gets a [`RetryDecision`]: retry after a delay, or give up with a
//! reason. The core never sleeps: the delay is returned.
//!
//! # Delays
//!
//! All arithmetic is in integer nanoseconds and saturates. For the n-th retry (n = 1, 2, …),
//! before jitter, capped at `max`:
//!
//! | type | delay `d` |
//! |---|---|
//! | `constant` | `base` |
//! | `linear` | `n·base` |
//! | `exponential` | `base·multiplier^(n−1)` |
//!
//! `multiplier^(n−1)` is computed in `f64` by square-and-multiply (never `powf`, whose result
//! differs between libms): every step is one IEEE multiplication, so wasm, x86 and ARM agree
//! to the bit. `base` (as `f64`) times that power is truncated to whole nanoseconds.
//!
//! Jitter (each jittered kind draws exactly one value from the [`Rng`]; `none` draws nothing):
//!
//! | jitter | delay |
//! |---|---|
//! | `none` | `d` |
//! | `full` | `uniform[0, d]` |
//! | `equal` | `⌊d/2⌋ + uniform[0, d − ⌊d/2⌋]` (d/2 + uniform 0..d/2, exact in integers) |
//! | `decorrelated` | `min(max, uniform[base, 3·prev])` |
//! | `proportional` | `min(max, d + uniform[0, d])` (the seed's) |
//!
//! `uniform[a, b]` is [`Rng::uniform_between`], both ends included. `decorrelated` is a
//! schedule of its own (AWS's "decorrelated jitter"): it ignores `type` and `multiplier`.
//! `prev` is the previous retry's backoff delay (before a Retry-After hint raised it, so one
//! server hint does not ratchet the whole schedule), and `base` for the first retry.
//!
//! # The budget
//!
//! gRPC retry throttling, shared by every call of the pipeline, counted in integer thousandths
//! of a token so that every binding agrees exactly: tokens start at `maxTokens` and stay in
//! `[0, maxTokens]`; each failed attempt the predicate accepts takes 1 token before the retry
//! decision; each success adds `tokenRatio` (rounded to thousandths); a retry is allowed only
//! while `tokens > maxTokens/2`.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigDuration;
use crate::decimal::Float;
use crate::error::{ConfigError, Issues};
use crate::event::ErrorKind;
use crate::read::read_struct;
use crate::rng::Rng;
use crate::time::{duration_nanos, nanos_to_millis_f64, Instant, Monotonic};
use crate::tree::{At, Error as TreeError, Node};

/// Milli-tokens per token: the budget's fixed-point scale.
const MILLI: u64 = 1000;

/// A retry policy's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Retries after the first attempt (default 3, so up to 4 attempts). 0 disables retrying.
    pub max_retries: u32,
    /// How long to wait before each retry.
    pub backoff: BackoffConfig,
    /// A retry whose delay would end more than this long after the call started is not
    /// scheduled (the call gives up with `exhausted`). Default: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_elapsed: Option<ConfigDuration>,
    /// A retry budget shared by every call of the pipeline. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
    /// Whether a Retry-After hint also holds back new calls through the pipeline.
    pub pushback: Pushback,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 3,
            backoff: BackoffConfig::default(),
            max_elapsed: None,
            budget: None,
            pushback: Pushback::None,
        }
    }
}

impl RetryConfig {
    /// Parse a retry config from JSON and validate it.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let cfg = <RetryConfig as crate::read::FromTree>::from_json_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every issue, with paths relative to the retry config (`backoff.multiplier`...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if let Err(e) = self.backoff.validate() {
            issues.extend("backoff", e);
        }
        if self.max_elapsed.is_some_and(|d| d.nanos() == 0) {
            issues.push("maxElapsed", "must be > 0, got 0");
        }
        if let Some(budget) = &self.budget {
            if let Err(e) = budget.validate() {
                issues.extend("budget", e);
            }
        }
        issues.finish(())
    }
}

/// `{"type": "exponential", "base": "1s", "multiplier": 2, "max": "30s", "jitter": "proportional"}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// The schedule before jitter (default exponential).
    #[serde(rename = "type")]
    pub kind: BackoffKind,
    /// The first retry's delay before jitter (default 1 s).
    pub base: ConfigDuration,
    /// Growth per retry for `exponential` (default 2; finite and >= 1).
    pub multiplier: f64,
    /// No delay exceeds this, jitter included (default 30 s). A Retry-After hint may.
    pub max: ConfigDuration,
    /// How the delay is randomized (default proportional, the seed's).
    pub jitter: Jitter,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            kind: BackoffKind::Exponential,
            base: ConfigDuration::from_secs(1),
            multiplier: 2.0,
            max: ConfigDuration::from_secs(30),
            jitter: Jitter::Proportional,
        }
    }
}

impl BackoffConfig {
    /// Refuse a multiplier that is not a finite number >= 1 and a base above the cap.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            issues.push(
                "multiplier",
                format!(
                    "must be a finite number >= 1, got {}",
                    Float(self.multiplier)
                ),
            );
        }
        if self.base > self.max {
            issues.push(
                "base",
                format!(
                    "must be <= max ({}ms), got {}ms",
                    Float(millis(self.max)),
                    Float(millis(self.base))
                ),
            );
        }
        issues.finish(())
    }
}

fn millis(d: ConfigDuration) -> f64 {
    nanos_to_millis_f64(d.nanos())
}

/// The schedule of delays before jitter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum BackoffKind {
    /// Every retry waits `base`.
    Constant,
    /// The n-th retry waits `n·base`.
    Linear,
    /// The n-th retry waits `base·multiplier^(n−1)`.
    #[default]
    Exponential,
}

crate::read::read_unit_enum!(BackoffKind {
    "constant" => Constant,
    "linear" => Linear,
    "exponential" => Exponential,
});

/// How a delay is randomized so that clients that failed together do not retry together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Jitter {
    /// `d`, no randomness.
    None,
    /// `uniform[0, d]`.
    Full,
    /// `⌊d/2⌋ + uniform[0, d − ⌊d/2⌋]`.
    Equal,
    /// `min(max, uniform[base, 3·prev])`, ignoring the backoff type.
    Decorrelated,
    /// `min(max, d + uniform[0, d])` (the seed's).
    #[default]
    Proportional,
}

crate::read::read_unit_enum!(Jitter {
    "none" => None,
    "full" => Full,
    "equal" => Equal,
    "decorrelated" => Decorrelated,
    "proportional" => Proportional,
});

/// `{"maxTokens": 100, "tokenRatio": 0.1}`, as in gRPC retry throttling.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BudgetConfig {
    /// The bucket size and the starting balance (default 100, >= 1).
    pub max_tokens: u32,
    /// Tokens each success puts back (default 0.1; counted in thousandths, so >= 0.001).
    pub token_ratio: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            max_tokens: 100,
            token_ratio: 0.1,
        }
    }
}

impl BudgetConfig {
    /// Refuse an empty bucket and a ratio that rounds to no refill or exceeds the bucket.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if self.max_tokens == 0 {
            issues.push("maxTokens", "must be >= 1, got 0");
        }
        let r = self.token_ratio;
        if !r.is_finite() || r <= 0.0 {
            issues.push("tokenRatio", format!("must be > 0, got {}", Float(r)));
        } else if r < 0.001 {
            issues.push(
                "tokenRatio",
                format!(
                    "must be >= 0.001 (tokens count in thousandths), got {}",
                    Float(r)
                ),
            );
        } else if r > f64::from(self.max_tokens) && self.max_tokens > 0 {
            issues.push(
                "tokenRatio",
                format!(
                    "must be <= maxTokens ({}), got {}",
                    self.max_tokens,
                    Float(r)
                ),
            );
        }
        issues.finish(())
    }
}

/// What a Retry-After hint does beyond delaying the retry of the call that received it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Pushback {
    /// Only the failing call waits.
    #[default]
    None,
    /// New calls through the same pipeline are rejected as `rateLimited` until the hint passes
    /// (enforced by the pipeline).
    Pipeline,
}

crate::read::read_unit_enum!(Pushback {
    "none" => None,
    "pipeline" => Pipeline,
});

// The config types read from a tree (`crate::read`), as their derived `Deserialize` reads them:
// a missing field takes the default config's value.

impl crate::read::FromTree for RetryConfig {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        let d = RetryConfig::default();
        read_struct!(
            node,
            at,
            "struct RetryConfig",
            RetryConfig {
                max_retries: "maxRetries" = d.max_retries,
                backoff: "backoff" = d.backoff,
                max_elapsed: "maxElapsed" = d.max_elapsed,
                budget: "budget" = d.budget,
                pushback: "pushback" = d.pushback,
            }
        )
    }
}

impl crate::read::FromTree for BackoffConfig {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        let d = BackoffConfig::default();
        read_struct!(
            node,
            at,
            "struct BackoffConfig",
            BackoffConfig {
                kind: "type" = d.kind,
                base: "base" = d.base,
                multiplier: "multiplier" = d.multiplier,
                max: "max" = d.max,
                jitter: "jitter" = d.jitter,
            }
        )
    }
}

impl crate::read::FromTree for BudgetConfig {
    fn read(node: Node, at: &At<'_>) -> Result<Self, TreeError> {
        let d = BudgetConfig::default();
        read_struct!(
            node,
            at,
            "struct BudgetConfig",
            BudgetConfig {
                max_tokens: "maxTokens" = d.max_tokens,
                token_ratio: "tokenRatio" = d.token_ratio,
            }
        )
    }
}

/// The delay before the `retry`-th retry (1 for the first), jitter included.
///
/// `prev` is the previous retry's backoff delay (only `decorrelated` reads it; pass `base` for
/// the first retry). `retry = 0` is treated as 1. Draws one value from `rng` unless the
/// jitter is `none`. Never panics: out-of-range configs (a NaN multiplier, base above max)
/// still give a delay in `[0, max]`. See the module docs for the formulas.
#[must_use]
pub fn backoff_delay(cfg: &BackoffConfig, retry: u32, prev: Duration, rng: &mut Rng) -> Duration {
    Duration::from_nanos(backoff_nanos(cfg, retry, duration_nanos(prev), rng))
}

/// The delay before the `retry`-th retry *before jitter*: `base`, `n·base` or
/// `base·multiplier^(n−1)`, capped at `max`.
#[must_use]
pub fn delay_before_jitter(cfg: &BackoffConfig, retry: u32) -> Duration {
    Duration::from_nanos(scheduled_nanos(cfg, retry))
}

fn scheduled_nanos(cfg: &BackoffConfig, retry: u32) -> u64 {
    let n = retry.max(1);
    let base = cfg.base.nanos();
    let max = cfg.max.nanos();
    let d = match cfg.kind {
        BackoffKind::Constant => base,
        BackoffKind::Linear => base.saturating_mul(u64::from(n)),
        BackoffKind::Exponential => exponential_nanos(base, cfg.multiplier, n - 1, max),
    };
    d.min(max)
}

/// `base·multiplier^exp` in whole nanoseconds, at most `max`.
fn exponential_nanos(base: u64, multiplier: f64, exp: u32, max: u64) -> u64 {
    let power = pow_by_squaring(multiplier, exp);
    // Exact for any base when nothing was multiplied, even above 2^53 ns.
    if power == 1.0 {
        return base;
    }
    let d = base as f64 * power;
    if d.is_nan() || d <= 0.0 {
        // Only an unvalidated multiplier (< 1 or NaN) gets here; stay in range.
        0
    } else if d >= max as f64 {
        max
    } else {
        d as u64
    }
}

/// `m^exp` by square-and-multiply: at most 64 IEEE multiplications, each correctly rounded,
/// so the result is the same on every platform (unlike `powf`).
fn pow_by_squaring(m: f64, mut exp: u32) -> f64 {
    let mut acc = 1.0_f64;
    let mut square = m;
    while exp > 0 {
        if exp & 1 == 1 {
            acc *= square;
        }
        exp >>= 1;
        if exp > 0 {
            square *= square;
        }
    }
    acc
}

fn backoff_nanos(cfg: &BackoffConfig, retry: u32, prev: u64, rng: &mut Rng) -> u64 {
    let max = cfg.max.nanos();
    match cfg.jitter {
        Jitter::None => scheduled_nanos(cfg, retry),
        Jitter::Full => {
            let d = scheduled_nanos(cfg, retry);
            rng.uniform_inclusive(d)
        }
        Jitter::Equal => {
            let d = scheduled_nanos(cfg, retry);
            let half = d / 2;
            half + rng.uniform_inclusive(d - half)
        }
        Jitter::Decorrelated => {
            let base = cfg.base.nanos();
            rng.uniform_between(base, prev.saturating_mul(3)).min(max)
        }
        Jitter::Proportional => {
            let d = scheduled_nanos(cfg, retry);
            d.saturating_add(rng.uniform_inclusive(d)).min(max)
        }
    }
}

/// A retry budget (gRPC retry throttling), in integer thousandths of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBudget {
    milli_tokens: u64,
    max_milli: u64,
    ratio_milli: u64,
}

impl RetryBudget {
    /// A full budget. `tokenRatio` is rounded to thousandths; out-of-range values are clamped
    /// (validate the config first to refuse them).
    #[must_use]
    pub fn new(cfg: &BudgetConfig) -> Self {
        let max_milli = u64::from(cfg.max_tokens) * MILLI;
        // `as` saturates and maps NaN to 0, so no value panics.
        let ratio_milli = ((cfg.token_ratio * MILLI as f64).round() as u64).min(max_milli);
        RetryBudget {
            milli_tokens: max_milli,
            max_milli,
            ratio_milli,
        }
    }

    /// A success puts `tokenRatio` back, up to `maxTokens`.
    #[inline]
    pub fn on_success(&mut self) {
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(self.ratio_milli)
            .min(self.max_milli);
    }

    /// A failed attempt that the retry predicate accepts takes one token, down to 0.
    #[inline]
    pub fn on_failure(&mut self) {
        self.milli_tokens = self.milli_tokens.saturating_sub(MILLI);
    }

    /// Whether a retry may be scheduled now: `tokens > maxTokens / 2`.
    #[inline]
    #[must_use]
    pub fn allows_retry(&self) -> bool {
        // max_milli is a multiple of 1000, so halving it is exact.
        self.milli_tokens > self.max_milli / 2
    }

    /// Tokens left.
    #[must_use]
    pub fn tokens(&self) -> f64 {
        self.milli_tokens as f64 / MILLI as f64
    }

    /// Tokens left, in thousandths (exact).
    #[must_use]
    pub const fn milli_tokens(&self) -> u64 {
        self.milli_tokens
    }

    /// The bucket size, in thousandths of a token.
    #[must_use]
    pub const fn max_milli_tokens(&self) -> u64 {
        self.max_milli
    }

    /// Keep `other`'s balance, clamped into this budget's range (used on reconfiguration).
    fn keep_balance_of(&mut self, other: &RetryBudget) {
        self.milli_tokens = other.milli_tokens.min(self.max_milli);
    }
}

/// One call's retry progress. Small and `Copy`; the host or the pipeline keeps it per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryState {
    attempts: u32,
    prev_backoff: Option<u64>,
    start: Instant,
}

impl RetryState {
    /// Attempts started so far (the first included).
    #[must_use]
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the call started (clamped to the latest instant the policy had seen).
    #[must_use]
    pub const fn started_at(&self) -> Instant {
        self.start
    }

    /// The backoff delay of the last scheduled retry, before any Retry-After hint.
    #[must_use]
    pub fn previous_backoff(&self) -> Option<Duration> {
        self.prev_backoff.map(Duration::from_nanos)
    }
}

/// What the host knows about a failed attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureInfo {
    /// Whether the host's retry predicate accepts the error (network errors, 5xx, 429 and
    /// tripwire's own attempt timeout by default).
    pub retryable: bool,
    /// A server's Retry-After hint: the retry waits at least this long.
    pub retry_after: Option<Duration>,
}

impl FailureInfo {
    /// A retryable failure without a hint.
    #[must_use]
    pub const fn retryable() -> FailureInfo {
        FailureInfo {
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure the predicate refuses.
    #[must_use]
    pub const fn not_retryable() -> FailureInfo {
        FailureInfo {
            retryable: false,
            retry_after: None,
        }
    }

    /// The same failure carrying a Retry-After hint.
    #[must_use]
    pub const fn with_retry_after(self, hint: Duration) -> FailureInfo {
        FailureInfo {
            retry_after: Some(hint),
            ..self
        }
    }
}

/// What to do after a failed attempt.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryDecision {
    /// Wait `delay`, then start attempt `attempt`.
    Retry {
        /// The attempt that will run next (2 for the first retry).
        attempt: u32,
        /// The wait before it: max(jittered backoff, Retry-After hint).
        delay: Duration,
    },
    /// End the call.
    GiveUp {
        /// Why.
        reason: GiveUp,
    },
}

/// Why a call stops retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum GiveUp {
    /// `maxRetries` retries have run, or the next would end past `maxElapsed`.
    Exhausted,
    /// The retry predicate refused the error: it propagates unchanged.
    NotRetryable,
    /// The shared retry budget refused the retry.
    BudgetExhausted,
    /// The retry could not start before the call's deadline.
    DeadlineExceeded,
}

impl GiveUp {
    /// The error kind the call fails with (`NotRetryable` is the function's own `Failure`).
    #[must_use]
    pub const fn kind(self) -> ErrorKind {
        match self {
            GiveUp::Exhausted => ErrorKind::RetriesExhausted,
            GiveUp::NotRetryable => ErrorKind::Failure,
            GiveUp::BudgetExhausted => ErrorKind::BudgetExhausted,
            GiveUp::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        }
    }

    /// The reason's public name (`"exhausted"`, `"notRetryable"`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            GiveUp::Exhausted => "exhausted",
            GiveUp::NotRetryable => "notRetryable",
            GiveUp::BudgetExhausted => "budgetExhausted",
            GiveUp::DeadlineExceeded => "deadlineExceeded",
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A retry policy's counters and gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RetryMetrics {
    /// Successful attempts reported.
    pub successes: u64,
    /// Successes on a retry (attempt 2 or later).
    pub successes_after_retry: u64,
    /// Failed attempts reported (retryable or not).
    pub failures: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Calls that gave up with `exhausted`.
    pub gave_up_exhausted: u64,
    /// Calls that gave up with `notRetryable`.
    pub gave_up_not_retryable: u64,
    /// Calls that gave up with `budgetExhausted`.
    pub gave_up_budget_exhausted: u64,
    /// Calls that gave up with `deadlineExceeded`.
    pub gave_up_deadline_exceeded: u64,
    /// Budget tokens left, in thousandths (0 without a budget).
    pub budget_milli_tokens: u64,
}

impl RetryMetrics {
    /// Give-ups for `reason`.
    #[must_use]
    pub const fn gave_up(&self, reason: GiveUp) -> u64 {
        match reason {
            GiveUp::Exhausted => self.gave_up_exhausted,
            GiveUp::NotRetryable => self.gave_up_not_retryable,
            GiveUp::BudgetExhausted => self.gave_up_budget_exhausted,
            GiveUp::DeadlineExceeded => self.gave_up_deadline_exceeded,
        }
    }

    fn gave_up_mut(&mut self, reason: GiveUp) -> &mut u64 {
        match reason {
            GiveUp::Exhausted => &mut self.gave_up_exhausted,
            GiveUp::NotRetryable => &mut self.gave_up_not_retryable,
            GiveUp::BudgetExhausted => &mut self.gave_up_budget_exhausted,
            GiveUp::DeadlineExceeded => &mut self.gave_up_deadline_exceeded,
        }
    }
}

/// A retry policy: one per pipeline, shared by all its calls (it owns the budget and metrics).
///
/// Time is clamped: every `now` is treated as `max(now, call start, latest now seen)`, so a
/// clock stepping back can neither shorten a wait nor loosen a deadline check.
#[derive(Clone, Debug)]
pub struct Retry {
    config: RetryConfig,
    budget: Option<RetryBudget>,
    clock: Monotonic,
    metrics: RetryMetrics,
}

impl Retry {
    /// A policy with a full budget, or the config's issues.
    pub fn new(config: RetryConfig) -> Result<Retry, ConfigError> {
        config.validate()?;
        let budget = config.budget.as_ref().map(RetryBudget::new);
        Ok(Retry {
            config,
            budget,
            clock: Monotonic::new(),
            metrics: RetryMetrics::default(),
        })
    }

    /// A new call starting at `now`.
    pub fn start(&self, now: Instant) -> RetryState {
        RetryState {
            attempts: 0,
            prev_backoff: None,
            start: now.max(self.clock.last()),
        }
    }

    /// Count an attempt as started; returns its number (1 for the first).
    pub fn begin_attempt(&self, state: &mut RetryState) -> u32 {
        state.attempts = state.attempts.saturating_add(1);
        state.attempts
    }

    /// The call succeeded: the budget gets `tokenRatio` back.
    pub fn on_success(&mut self, state: &RetryState) {
        if let Some(b) = &mut self.budget {
            b.on_success();
        }
        self.metrics.successes += 1;
        if state.attempts > 1 {
            self.metrics.successes_after_retry += 1;
        }
    }

    /// An attempt failed at `now`: retry, or give up?
    ///
    /// With n = the attempts started so far (at least 1), the decision is, in this order:
    /// 1. not retryable → `GiveUp(NotRetryable)` (no budget token taken, no random draw);
    /// 2. take one budget token (even when the call is about to give up, as in gRPC);
    /// 3. n > maxRetries → `GiveUp(Exhausted)` (no random draw);
    /// 4. backoff = the jittered delay for retry n (draws from `rng`, see the module docs);
    ///    delay = max(backoff, Retry-After hint);
    /// 5. maxElapsed set and (now + delay) − call start > maxElapsed → `GiveUp(Exhausted)`;
    /// 6. deadline set and now + delay ≥ deadline → `GiveUp(DeadlineExceeded)` (so a hint
    ///    past the deadline gives up at once);
    /// 7. the budget refuses (tokens ≤ maxTokens/2) → `GiveUp(BudgetExhausted)`;
    /// 8. otherwise `Retry { attempt: n + 1, delay }`.
    ///
    /// `now` is clamped to `max(now, call start, latest now seen)`. No event is queued: the
    /// decision is the output, and the pipeline that owns this policy reports it in its own
    /// event stream (`retryScheduled`, `gaveUp`). Allocates nothing.
    pub fn on_failure(
        &mut self,
        state: &mut RetryState,
        failure: FailureInfo,
        now: Instant,
        deadline: Option<Instant>,
        rng: &mut Rng,
    ) -> RetryDecision {
        let now = self.clock.observe(now.max(state.start));
        self.metrics.failures += 1;
        let n = state.attempts.max(1);
        let decision = self.decide(state, failure, n, now, deadline, rng);
        match decision {
            RetryDecision::Retry { .. } => self.metrics.retries += 1,
            RetryDecision::GiveUp { reason } => *self.metrics.gave_up_mut(reason) += 1,
        }
        decision
    }

    fn decide(
        &mut self,
        state: &mut RetryState,
        failure: FailureInfo,
        n: u32,
        now: Instant,
        deadline: Option<Instant>,
        rng: &mut Rng,
    ) -> RetryDecision {
        let give_up = |reason| RetryDecision::GiveUp { reason };
        if !failure.retryable {
            return give_up(GiveUp::NotRetryable);
        }
        if let Some(b) = &mut self.budget {
            b.on_failure();
        }
        if n > self.config.max_retries {
            return give_up(GiveUp::Exhausted);
        }
        let backoff_cfg = &self.config.backoff;
        let prev = state
            .prev_backoff
            .unwrap_or_else(|| backoff_cfg.base.nanos());
        let backoff = backoff_nanos(backoff_cfg, n, prev, rng);
        let hint = failure.retry_after.map_or(0, duration_nanos);
        let delay = backoff.max(hint);
        let resume = now.saturating_add_nanos(delay);
        if let Some(limit) = self.config.max_elapsed {
            if resume.nanos_since(state.start) > limit.nanos() {
                return give_up(GiveUp::Exhausted);
            }
        }
        if deadline.is_some_and(|d| resume >= d) {
            return give_up(GiveUp::DeadlineExceeded);
        }
        if self.budget.is_some_and(|b| !b.allows_retry()) {
            return give_up(GiveUp::BudgetExhausted);
        }
        state.prev_backoff = Some(backoff);
        RetryDecision::Retry {
            attempt: n.saturating_add(1),
            delay: Duration::from_nanos(delay),
        }
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// Budget tokens left, or `None` without a budget.
    #[must_use]
    pub fn budget_tokens(&self) -> Option<f64> {
        self.budget.as_ref().map(RetryBudget::tokens)
    }

    /// The budget, if any.
    #[must_use]
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// Counters and gauges now.
    #[must_use]
    pub fn metrics(&self) -> RetryMetrics {
        RetryMetrics {
            budget_milli_tokens: self.budget.map_or(0, |b| b.milli_tokens()),
            ..self.metrics
        }
    }

    /// Put `config` in force, keeping the budget balance (clamped into the new bucket; a budget
    /// that appears starts full). An invalid config is refused and the old one stays.
    /// Calls in progress keep their state; their next decision uses the new config.
    pub fn reconfigure(&mut self, config: RetryConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let mut budget = config.budget.as_ref().map(RetryBudget::new);
        if let (Some(new), Some(old)) = (&mut budget, &self.budget) {
            new.keep_balance_of(old);
        }
        self.budget = budget;
        self.config = config;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn at(v: u64) -> Instant {
        Instant::from_nanos(v * MS)
    }

    fn backoff(
        kind: BackoffKind,
        base: u64,
        multiplier: f64,
        max: u64,
        jitter: Jitter,
    ) -> BackoffConfig {
        BackoffConfig {
            kind,
            base: ConfigDuration::from_millis(base),
            multiplier,
            max: ConfigDuration::from_millis(max),
            jitter,
        }
    }

    fn retry(json: &str) -> Retry {
        Retry::new(RetryConfig::from_json(json).unwrap()).unwrap()
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = RetryConfig::from_json("{}").unwrap();
        assert_eq!(c, RetryConfig::default());
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.backoff.kind, BackoffKind::Exponential);
        assert_eq!(c.backoff.base, ConfigDuration::from_secs(1));
        assert_eq!(c.backoff.multiplier, 2.0);
        assert_eq!(c.backoff.max, ConfigDuration::from_secs(30));
        assert_eq!(c.backoff.jitter, Jitter::Proportional);
        assert_eq!(c.max_elapsed, None);
        assert_eq!(c.budget, None);
        assert_eq!(c.pushback, Pushback::None);
        let c = RetryConfig::from_json(r#"{"backoff": {"type": "linear"}, "budget": {}}"#).unwrap();
        assert_eq!(c.backoff.base, ConfigDuration::from_secs(1));
        assert_eq!(c.backoff.kind, BackoffKind::Linear);
        assert_eq!(
            c.budget,
            Some(BudgetConfig {
                max_tokens: 100,
                token_ratio: 0.1
            })
        );
    }

    #[test]
    fn config_round_trips_through_json() {
        let text = r#"{"maxRetries": 5, "backoff": {"type": "constant", "base": "250ms", "multiplier": 1.5,
            "max": "2s", "jitter": "decorrelated"}, "maxElapsed": "10s",
            "budget": {"maxTokens": 10, "tokenRatio": 0.5}, "pushback": "pipeline"}"#;
        let c = RetryConfig::from_json(text).unwrap();
        let back = RetryConfig::from_json(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(c, back);
        assert_eq!(back.pushback, Pushback::Pipeline);
        assert_eq!(back.max_elapsed, Some(ConfigDuration::from_secs(10)));
    }

    #[test]
    fn validation_collects_every_issue_with_paths() {
        let e = RetryConfig::from_json(
            r#"{"backoff": {"multiplier": 0.5, "base": "2s", "max": "1s"}, "maxElapsed": 0,
                "budget": {"maxTokens": 0, "tokenRatio": 0}}"#,
        )
        .unwrap_err();
        let text: Vec<String> = e.issues().iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "backoff.multiplier: must be a finite number >= 1, got 0.5",
                "backoff.base: must be <= max (1000ms), got 2000ms",
                "maxElapsed: must be > 0, got 0",
                "budget.maxTokens: must be >= 1, got 0",
                "budget.tokenRatio: must be > 0, got 0",
            ]
        );
        let e =
            RetryConfig::from_json(r#"{"budget": {"maxTokens": 2, "tokenRatio": 3}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "budget.tokenRatio: must be <= maxTokens (2), got 3"
        );
        let e = RetryConfig::from_json(r#"{"budget": {"tokenRatio": 0.0001}}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("budget.tokenRatio: must be >= 0.001"),
            "{e}"
        );
        let e = RetryConfig::from_json(r#"{"backoff": {"jitter": "wild"}}"#).unwrap_err();
        assert_eq!(e.issues()[0].path, "backoff.jitter");
        let e = RetryConfig::from_json(r#"{"retries": 3}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `retries`"), "{e}");
    }

    #[test]
    fn schedules_before_jitter() {
        let c = backoff(BackoffKind::Constant, 100, 2.0, 1_000, Jitter::None);
        assert_eq!(delay_before_jitter(&c, 1), ms(100));
        assert_eq!(delay_before_jitter(&c, 50), ms(100));
        let l = BackoffConfig {
            kind: BackoffKind::Linear,
            ..c
        };
        assert_eq!(
            delay_before_jitter(&l, 0),
            ms(100),
            "retry 0 is treated as the first"
        );
        assert_eq!(delay_before_jitter(&l, 3), ms(300));
        assert_eq!(delay_before_jitter(&l, 11), ms(1_000));
        assert_eq!(delay_before_jitter(&l, u32::MAX), ms(1_000));
        let e = BackoffConfig {
            kind: BackoffKind::Exponential,
            multiplier: 3.0,
            ..c
        };
        let got: Vec<Duration> = (1..=5).map(|n| delay_before_jitter(&e, n)).collect();
        assert_eq!(got, [ms(100), ms(300), ms(900), ms(1_000), ms(1_000)]);
        assert_eq!(delay_before_jitter(&e, u32::MAX), ms(1_000));
    }

    #[test]
    fn exponential_power_matches_repeated_multiplication_when_exact() {
        for m in [1.0, 1.5, 2.0, 3.0, 10.0] {
            let mut naive = 1.0_f64;
            // 0..20 keeps every power exactly representable, where any multiplication order agrees.
            for e in 0..20 {
                assert_eq!(pow_by_squaring(m, e), naive, "{m}^{e}");
                naive *= m;
            }
        }
        assert_eq!(pow_by_squaring(1e300, 3), f64::INFINITY);
        assert_eq!(exponential_nanos(5, 1e300, 3, 77), 77);
        assert_eq!(
            exponential_nanos(0, 1e300, 3, 77),
            0,
            "0·∞ is NaN, kept in range"
        );
        assert_eq!(exponential_nanos(1_000, f64::NAN, 2, 77), 0);
        assert_eq!(exponential_nanos(u64::MAX, 1.0, 9, u64::MAX), u64::MAX);
    }

    #[test]
    fn jitter_draws_once_and_stays_in_bounds() {
        for jitter in [
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
            Jitter::Proportional,
        ] {
            let c = backoff(BackoffKind::Exponential, 100, 2.0, 1_000, jitter);
            let mut rng = Rng::new(9);
            let mut probe = Rng::new(9);
            for n in 1..40 {
                let d = backoff_delay(&c, n, ms(100), &mut rng);
                let _ = probe.next_u64();
                assert_eq!(rng, probe, "{jitter:?} draws exactly once");
                assert!(d <= ms(1_000), "{jitter:?} {d:?}");
                let before = delay_before_jitter(&c, n);
                match jitter {
                    Jitter::Full => assert!(d <= before),
                    Jitter::Equal => assert!(d >= before / 2 && d <= before),
                    Jitter::Decorrelated => assert!(d >= ms(100) && d <= ms(300)),
                    _ => assert!(d >= before && d <= (before * 2).min(ms(1_000))),
                }
            }
        }
        let c = backoff(BackoffKind::Constant, 100, 2.0, 1_000, Jitter::None);
        let mut rng = Rng::new(9);
        assert_eq!(backoff_delay(&c, 1, ms(100), &mut rng), ms(100));
        assert_eq!(rng, Rng::new(9), "no jitter, no draw");
    }

    #[test]
    fn equal_jitter_covers_odd_delays_to_the_top() {
        // d = 3 ns: ⌊3/2⌋ = 1, so the result is in [1, 3] and 3 is reachable.
        let c = BackoffConfig {
            kind: BackoffKind::Constant,
            base: ConfigDuration(Duration::from_nanos(3)),
            max: ConfigDuration(Duration::from_nanos(3)),
            jitter: Jitter::Equal,
            ..BackoffConfig::default()
        };
        let mut rng = Rng::new(1);
        let seen: std::collections::BTreeSet<Duration> = (0..200)
            .map(|_| backoff_delay(&c, 1, Duration::ZERO, &mut rng))
            .collect();
        let expected: std::collections::BTreeSet<Duration> =
            (1..=3).map(Duration::from_nanos).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn attempts_count_every_attempt_and_max_retries_bounds_them() {
        let mut r = retry(
            r#"{"maxRetries": 2, "backoff": {"type": "constant", "base": 10, "jitter": "none"}}"#,
        );
        let mut rng = Rng::new(0);
        let mut s = r.start(at(0));
        assert_eq!(r.begin_attempt(&mut s), 1);
        let d = r.on_failure(&mut s, FailureInfo::retryable(), at(1), None, &mut rng);
        assert_eq!(
            d,
            RetryDecision::Retry {
                attempt: 2,
                delay: ms(10)
            }
        );
        assert_eq!(r.begin_attempt(&mut s), 2);
        let d = r.on_failure(&mut s, FailureInfo::retryable(), at(12), None, &mut rng);
        assert_eq!(
            d,
            RetryDecision::Retry {
                attempt: 3,
                delay: ms(10)
            }
        );
        assert_eq!(r.begin_attempt(&mut s), 3);
        let d = r.on_failure(&mut s, FailureInfo::retryable(), at(23), None, &mut rng);
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::Exhausted
            }
        );
        let m = r.metrics();
        assert_eq!(
            (m.failures, m.retries, m.gave_up(GiveUp::Exhausted)),
            (3, 2, 1)
        );
        assert_eq!(GiveUp::Exhausted.kind(), ErrorKind::RetriesExhausted);
        assert_eq!(s.attempts(), 3, "a give-up does not start an attempt");
    }

    #[test]
    fn decision_order_is_pinned() {
        let cfg = r#"{"maxRetries": 1, "backoff": {"type": "constant", "base": 100, "jitter": "full"},
                      "budget": {"maxTokens": 2, "tokenRatio": 1}}"#;
        // Not retryable: no token, no draw.
        let mut r = retry(cfg);
        let mut rng = Rng::new(5);
        let mut s = r.start(at(0));
        let _ = r.begin_attempt(&mut s);
        let d = r.on_failure(&mut s, FailureInfo::not_retryable(), at(0), None, &mut rng);
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::NotRetryable
            }
        );
        assert_eq!((r.budget_tokens(), rng.clone()), (Some(2.0), Rng::new(5)));
        // Budget: 2 → 1 token, 1 > 2/2 is false → budgetExhausted, after a draw.
        let d = r.on_failure(&mut s, FailureInfo::retryable(), at(0), None, &mut rng);
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::BudgetExhausted
            }
        );
        assert_eq!(r.budget_tokens(), Some(1.0));
        assert_ne!(
            rng,
            Rng::new(5),
            "the backoff drew before the budget refused"
        );
        // Exhausted comes before the budget and the draw, but after the withdrawal.
        let before = rng.clone();
        let _ = r.begin_attempt(&mut s);
        let d = r.on_failure(&mut s, FailureInfo::retryable(), at(0), None, &mut rng);
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::Exhausted
            }
        );
        assert_eq!((r.budget_tokens(), rng), (Some(0.0), before));
        // The deadline is checked before the budget.
        let mut s = r.start(at(0));
        let _ = r.begin_attempt(&mut s);
        let d = r.on_failure(
            &mut s,
            FailureInfo::retryable(),
            at(0),
            Some(at(0)),
            &mut Rng::new(1),
        );
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::DeadlineExceeded
            }
        );
    }

    #[test]
    fn hint_raises_the_delay_and_a_late_hint_gives_up_at_once() {
        let mut r = retry(r#"{"backoff": {"type": "constant", "base": 100, "jitter": "none"}}"#);
        let mut rng = Rng::new(0);
        let mut s = r.start(at(0));
        let _ = r.begin_attempt(&mut s);
        let f = FailureInfo::retryable().with_retry_after(ms(700));
        assert_eq!(
            r.on_failure(&mut s, f, at(0), None, &mut rng),
            RetryDecision::Retry {
                attempt: 2,
                delay: ms(700)
            }
        );
        assert_eq!(
            s.previous_backoff(),
            Some(ms(100)),
            "the hint does not enter the schedule"
        );
        let _ = r.begin_attempt(&mut s);
        let f = FailureInfo::retryable().with_retry_after(ms(40));
        assert_eq!(
            r.on_failure(&mut s, f, at(800), None, &mut rng),
            RetryDecision::Retry {
                attempt: 3,
                delay: ms(100)
            }
        );
        let _ = r.begin_attempt(&mut s);
        let f = FailureInfo::retryable().with_retry_after(Duration::MAX);
        let d = r.on_failure(&mut s, f, at(900), Some(at(60_000)), &mut rng);
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::DeadlineExceeded
            }
        );
    }

    #[test]
    fn deadline_and_max_elapsed_boundaries() {
        let mut r = retry(
            r#"{"maxRetries": 10, "maxElapsed": 1000, "backoff": {"type": "constant", "base": 100, "jitter": "none"}}"#,
        );
        let mut rng = Rng::new(0);
        let mut s = r.start(at(0));
        let _ = r.begin_attempt(&mut s);
        // now + delay == deadline: the retry could not start before it.
        let d = r.on_failure(
            &mut s,
            FailureInfo::retryable(),
            at(400),
            Some(at(500)),
            &mut rng,
        );
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::DeadlineExceeded
            }
        );
        let d = r.on_failure(
            &mut s,
            FailureInfo::retryable(),
            at(400),
            Some(at(501)),
            &mut rng,
        );
        assert!(matches!(d, RetryDecision::Retry { .. }));
        // Exactly maxElapsed is allowed, one nanosecond more is not.
        let d = r.on_failure(&mut s, FailureInfo::retryable(), at(900), None, &mut rng);
        assert!(matches!(d, RetryDecision::Retry { .. }));
        let late = Instant::from_nanos(900 * MS + 1);
        let d = r.on_failure(&mut s, FailureInfo::retryable(), late, None, &mut rng);
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::Exhausted
            }
        );
    }

    #[test]
    fn time_going_backwards_is_clamped_per_call_and_per_policy() {
        let mut r = retry(r#"{"backoff": {"type": "constant", "base": 400, "jitter": "none"}}"#);
        let mut rng = Rng::new(0);
        let mut s = r.start(at(1_000));
        let _ = r.begin_attempt(&mut s);
        // Unclamped, 500 + 400 < 1300 would retry; clamped to the start, 1400 ≥ 1300.
        let d = r.on_failure(
            &mut s,
            FailureInfo::retryable(),
            at(500),
            Some(at(1_300)),
            &mut rng,
        );
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::DeadlineExceeded
            }
        );
        let _ = r.on_failure(&mut s, FailureInfo::retryable(), at(5_000), None, &mut rng);
        // A call starting "before" the latest instant seen starts at that instant.
        assert_eq!(r.start(at(10)).started_at(), at(5_000));
    }

    #[test]
    fn budget_stays_in_range_and_refills() {
        let mut b = RetryBudget::new(&BudgetConfig {
            max_tokens: 4,
            token_ratio: 0.25,
        });
        assert_eq!(b.tokens(), 4.0);
        b.on_success();
        assert_eq!(b.tokens(), 4.0, "never above maxTokens");
        b.on_failure();
        assert!(b.allows_retry()); // 3 > 2
        b.on_failure();
        assert!(!b.allows_retry()); // 2 > 2 is false
        for _ in 0..10 {
            b.on_failure();
        }
        assert_eq!(b.milli_tokens(), 0);
        for _ in 0..9 {
            b.on_success();
        }
        assert_eq!(b.tokens(), 2.25);
        assert!(b.allows_retry());
        let odd = RetryBudget::new(&BudgetConfig {
            max_tokens: 3,
            token_ratio: 0.1,
        });
        assert_eq!(
            odd.max_milli_tokens() / 2,
            1_500,
            "maxTokens/2 is exact in milli-tokens"
        );
        let broken = RetryBudget::new(&BudgetConfig {
            max_tokens: 0,
            token_ratio: f64::NAN,
        });
        assert!(!broken.allows_retry());
    }

    #[test]
    fn reconfigure_keeps_clamped_tokens_and_refuses_bad_configs() {
        let mut r = retry(r#"{"budget": {"maxTokens": 10}}"#);
        let mut rng = Rng::new(0);
        let mut s = r.start(at(0));
        for _ in 0..3 {
            let _ = r.begin_attempt(&mut s);
            let _ = r.on_failure(&mut s, FailureInfo::retryable(), at(0), None, &mut rng);
        }
        assert_eq!(r.budget_tokens(), Some(7.0));
        r.reconfigure(RetryConfig::from_json(r#"{"budget": {"maxTokens": 20}}"#).unwrap())
            .unwrap();
        assert_eq!(r.budget_tokens(), Some(7.0));
        r.reconfigure(RetryConfig::from_json(r#"{"budget": {"maxTokens": 5}}"#).unwrap())
            .unwrap();
        assert_eq!(r.budget_tokens(), Some(5.0));
        let mut bad = RetryConfig::default();
        bad.backoff.multiplier = f64::NAN;
        let e = r.reconfigure(bad).unwrap_err();
        assert!(e.to_string().starts_with("backoff.multiplier"), "{e}");
        assert_eq!(r.config().budget.map(|b| b.max_tokens), Some(5));
        r.reconfigure(RetryConfig::default()).unwrap();
        assert_eq!(r.budget_tokens(), None);
        assert_eq!(r.metrics().budget_milli_tokens, 0);
    }

    #[test]
    fn success_refills_and_counts_successes_after_retry() {
        let mut r = retry(r#"{"budget": {"maxTokens": 10, "tokenRatio": 0.5}}"#);
        let mut rng = Rng::new(0);
        let mut s = r.start(at(0));
        let _ = r.begin_attempt(&mut s);
        r.on_success(&s);
        let _ = r.on_failure(&mut s, FailureInfo::retryable(), at(0), None, &mut rng);
        let _ = r.begin_attempt(&mut s);
        r.on_success(&s);
        let m = r.metrics();
        assert_eq!(
            (m.successes, m.successes_after_retry, m.budget_milli_tokens),
            (2, 1, 9_500)
        );
    }

    #[test]
    fn huge_values_saturate() {
        let longest = ConfigDuration(crate::config::MAX_CONFIG_DURATION);
        let cfg = RetryConfig {
            max_retries: u32::MAX,
            backoff: BackoffConfig {
                base: longest,
                max: longest,
                multiplier: f64::MAX,
                ..BackoffConfig::default()
            },
            ..RetryConfig::default()
        };
        let mut r = Retry::new(cfg).unwrap();
        let mut rng = Rng::new(3);
        let mut s = r.start(Instant::MAX);
        for _ in 0..5 {
            let _ = r.begin_attempt(&mut s);
            let d = r.on_failure(
                &mut s,
                FailureInfo::retryable(),
                Instant::MAX,
                None,
                &mut rng,
            );
            assert_eq!(
                d,
                RetryDecision::Retry {
                    attempt: s.attempts() + 1,
                    delay: crate::config::MAX_CONFIG_DURATION
                }
            );
        }
        let d = r.on_failure(
            &mut s,
            FailureInfo::retryable(),
            Instant::MAX,
            Some(Instant::MAX),
            &mut rng,
        );
        assert_eq!(
            d,
            RetryDecision::GiveUp {
                reason: GiveUp::DeadlineExceeded
            }
        );
    }
}

//! The pipeline: the policies of one named entry composed around a call, driven by the host
//! through a small step protocol (DESIGN.md §3.8).
//!
//! ```text
//! call = pipeline.begin(now, deadline)
//! loop:
//!   step = pipeline.poll(call, now)
//!   Attempt{n, deadline}  -> run the function, then pipeline.report(call, outcome, now)
//!   Sleep{until}          -> wait (backoff, rate-limit wait)
//!   Park{ticket, until}   -> wait until woken (drain `poll_wake`) or until `until`
//!   Done                  -> return the function's value
//!   Fail{kind, ..}        -> fallback (when `fallback` says so), or raise the kind's error
//! ```
//!
//! Many calls are in flight at once; a [`CallId`] is a generational handle into the pipeline's
//! call table (quinn-style), so a stale handle is an error, never another call's state.
//!
//! **Composition.** `order` lists the policies outermost first (default: fallback, rateLimit,
//! bulkhead, circuitBreaker, retry, timeout). Policies *outside* `retry` are passed once per
//! call (the breaker then sees one outcome per call, after retries, as in the seed); policies
//! *inside* it are passed once per attempt, and their refusals are retryable failures carrying
//! their own `retryAfter` hint. `timeout` inside `retry` bounds each attempt; outside it, its
//! `perAttempt` bounds the whole call. `fallback` is applied by the host to the call's final
//! outcome, so it must be outermost.

use core::time::Duration;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::breaker::{
    Admission, BreakerConfig, BreakerMetrics, CircuitBreaker, Outcome as BreakerOutcome, Permit,
};
use crate::bulkhead::{Bulkhead, BulkheadConfig, BulkheadMetrics, Entry, Ticket};
use crate::deadline::{min_deadline, TimeoutConfig};
use crate::error::{ConfigError, Issues, Quoted, UsageError};
use crate::event::{ErrorKind, Event, EventKind, EventQueue};
use crate::keyed::{Keyed, KeyedState};
use crate::rate_limit::{RateDecision, RateLimitConfig, RateLimitMetrics, RateLimiter};
use crate::read::FromTree;
use crate::retry::{
    FailureInfo, GiveUp, Retry, RetryConfig, RetryDecision, RetryMetrics, RetryState,
};
use crate::rng::Rng;
use crate::share::{Effect, ShareMetrics, ShareMode, SharedBreaker, Verdict};
use crate::store::{
    RequestId, SharedCheck, SharedLimiter, StoreConfig, StoreMetrics, StoreReply, StoreRequest,
};
use crate::time::{Instant, Monotonic};

/// A policy's place in `order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Stage {
    /// The host-applied fallback (always outermost).
    Fallback,
    /// `rateLimit`.
    RateLimit,
    /// `bulkhead`.
    Bulkhead,
    /// `circuitBreaker`.
    CircuitBreaker,
    /// `retry`.
    Retry,
    /// `timeout`.
    Timeout,
}

crate::read::read_unit_enum!(Stage {
    "fallback" => Fallback,
    "rateLimit" => RateLimit,
    "bulkhead" => Bulkhead,
    "circuitBreaker" => CircuitBreaker,
    "retry" => Retry,
    "timeout" => Timeout,
});

impl Stage {
    /// The stage's config key.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Fallback => "fallback",
            Stage::RateLimit => "rateLimit",
            Stage::Bulkhead => "bulkhead",
            Stage::CircuitBreaker => "circuitBreaker",
            Stage::Retry => "retry",
            Stage::Timeout => "timeout",
        }
    }
}

/// The seed's order, outermost first.
pub const DEFAULT_ORDER: [Stage; 6] = [
    Stage::Fallback,
    Stage::RateLimit,
    Stage::Bulkhead,
    Stage::CircuitBreaker,
    Stage::Retry,
    Stage::Timeout,
];

/// `{"on": ["circuitOpen", ...]}`: which failures the host's fallback handles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct FallbackConfig {
    /// The kinds that trigger the fallback (default: every kind a call can fail with).
    #[serde(default = "all_call_kinds")]
    pub on: Vec<ErrorKind>,
}

fn all_call_kinds() -> Vec<ErrorKind> {
    ErrorKind::ALL
        .into_iter()
        .filter(|k| *k != ErrorKind::InvalidConfig)
        .collect()
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            on: all_call_kinds(),
        }
    }
}

/// One pipeline's config: any of the policies, plus `order` and `seed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PipelineConfig {
    /// Rate limit(s); every limit must pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Concurrency limit with a FIFO queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<BulkheadConfig>,
    /// Circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<BreakerConfig>,
    /// Retry with backoff, jitter and budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Per-attempt and overall timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutConfig>,
    /// Which failures the host's fallback handles (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackConfig>,
    /// The composition order, outermost first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<Stage>>,
    /// PRNG seed for jitter (wins over the policy file's and the host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// One circuit breaker and one rate limiter per key (per host, per user...), with bounded
    /// memory; the bulkhead and the retry budget stay shared by every key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed: Option<KeyedConfig>,
    /// Share the rate limit with every instance configured with the same `store.key`,
    /// through an external store the host talks to ([`Step::Store`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
}

/// `{"maxKeys": 10000, "idleExpiry": "10m"}`: how many keys a keyed pipeline remembers.
///
/// A key whose breaker and limiter are idle (closed with nothing remembered, limiter full) may
/// be evicted, least recently used first, or dropped after `idleExpiry` without use; a key
/// whose breaker is open or whose limiter is limiting is never evicted. When every key is busy
/// and the map is full, a call for a new key fails closed with `rateLimited`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyedConfig {
    /// The most keys held at once (default 10 000).
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
    /// Idle keys unused this long are dropped (default 10 minutes; `null` keeps them until
    /// the map needs room).
    #[serde(default = "default_idle_expiry")]
    pub idle_expiry: Option<crate::config::ConfigDuration>,
}

// The config types read from a tree (`crate::read`), as their derived `Deserialize` reads them.

impl crate::read::FromTree for FallbackConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct FallbackConfig",
            FallbackConfig {
                on: "on" = all_call_kinds(),
            }
        )
    }
}

impl crate::read::FromTree for PipelineConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct PipelineConfig",
            PipelineConfig {
                rate_limit: "rateLimit" = None,
                bulkhead: "bulkhead" = None,
                circuit_breaker: "circuitBreaker" = None,
                retry: "retry" = None,
                timeout: "timeout" = None,
                fallback: "fallback" = None,
                order: "order" = None,
                seed: "seed" = None,
                keyed: "keyed" = None,
                store: "store" = None,
            }
        )
    }
}

impl crate::read::FromTree for KeyedConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct KeyedConfig",
            KeyedConfig {
                max_keys: "maxKeys" = default_max_keys(),
                idle_expiry: "idleExpiry" = default_idle_expiry(),
            }
        )
    }
}

impl crate::read::FromTree for PolicyFile {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct PolicyFile",
            PolicyFile {
                seed: "seed" = None,
                policies: "policies",
            }
        )
    }
}

fn default_max_keys() -> u32 {
    10_000
}

fn default_idle_expiry() -> Option<crate::config::ConfigDuration> {
    Some(crate::config::ConfigDuration::from_secs(600))
}

impl Default for KeyedConfig {
    fn default() -> Self {
        KeyedConfig {
            max_keys: default_max_keys(),
            idle_expiry: default_idle_expiry(),
        }
    }
}

impl PipelineConfig {
    /// Parse and validate a pipeline config.
    pub fn from_json(text: &str) -> Result<PipelineConfig, ConfigError> {
        let config = <PipelineConfig as FromTree>::from_json_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Check every policy and the order; issues carry paths such as `retry.backoff.base`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        // Each policy validates itself; its issues are placed under its key.
        let checks: [(&str, Option<Result<(), ConfigError>>); 5] = [
            (
                "rateLimit",
                self.rate_limit.as_ref().map(RateLimitConfig::validate),
            ),
            (
                "bulkhead",
                self.bulkhead.as_ref().map(BulkheadConfig::validate),
            ),
            (
                "circuitBreaker",
                self.circuit_breaker.as_ref().map(BreakerConfig::validate),
            ),
            ("retry", self.retry.as_ref().map(RetryConfig::validate)),
            (
                "timeout",
                self.timeout.as_ref().map(TimeoutConfig::validate),
            ),
        ];
        for (key, result) in checks {
            if let Some(Err(e)) = result {
                issues.extend(key, e);
            }
        }
        if let Some(f) = &self.fallback {
            if let Some(i) = f.on.iter().position(|k| *k == ErrorKind::InvalidConfig) {
                issues.push(
                    format!("fallback.on[{i}]"),
                    "invalidConfig is not a way a call can fail",
                );
            }
        }
        if let Some(st) = &self.store {
            if let Err(e) = st.validate() {
                issues.extend("store", e);
            }
            let shares_breaker = self
                .circuit_breaker
                .as_ref()
                .and_then(|b| b.share.as_ref())
                .is_some_and(|s| s.mode != ShareMode::Off);
            match &self.rate_limit {
                Some(limits) => {
                    if let Err(e) = StoreConfig::validate_limits(limits) {
                        issues.extend("rateLimit", e);
                    }
                }
                None if !shares_breaker => issues.push(
                    "store",
                    "needs a rateLimit or a circuitBreaker.share to share",
                ),
                None => {}
            }
            if self.keyed.is_some() && st.expected_instances == crate::store::Instances::Auto {
                issues.push(
                    "store.expectedInstances",
                    "\"auto\" is not available on a keyed pipeline (heartbeats are per key)",
                );
            }
        }
        if let Some(share) = self.circuit_breaker.as_ref().and_then(|b| b.share.as_ref()) {
            if self.store.is_none() && share.mode != ShareMode::Off {
                issues.push("circuitBreaker.share", "needs a store to share through");
            }
            if share.mode == ShareMode::Aggregate
                && self
                    .circuit_breaker
                    .as_ref()
                    .is_some_and(|b| !crate::share::aggregate_fits(b))
            {
                issues.push(
                    "circuitBreaker.share.mode",
                    "\"aggregate\" needs a failureRate trip rule over a time window (window.duration)",
                );
            }
            if self.keyed.is_some() && share.mode != ShareMode::Off {
                issues.push(
                    "circuitBreaker.share",
                    "is not available on a keyed pipeline (one shared breaker per key)",
                );
            }
        }
        if let Some(k) = &self.keyed {
            if k.max_keys == 0 {
                issues.push("keyed.maxKeys", "must be >= 1, got 0");
            }
            if k.idle_expiry.is_some_and(|d| d.nanos() == 0) {
                issues.push("keyed.idleExpiry", "must be > 0, got 0");
            }
            if self.circuit_breaker.is_none() && self.rate_limit.is_none() {
                issues.push("keyed", "needs a circuitBreaker or a rateLimit to key");
            }
        }

        if let Some(order) = &self.order {
            for (i, stage) in order.iter().enumerate() {
                if order[..i].contains(stage) {
                    issues.push(
                        format!("order[{i}]"),
                        format!("{} is listed twice", Quoted(stage.as_str())),
                    );
                }
            }
            if let Some(pos) = order.iter().position(|s| *s == Stage::Fallback) {
                if pos != 0 {
                    issues.push(
                        format!("order[{pos}]"),
                        "fallback must be first: the host applies it to the call's final outcome",
                    );
                }
            }
            for (stage, present) in [
                (Stage::RateLimit, self.rate_limit.is_some()),
                (Stage::Bulkhead, self.bulkhead.is_some()),
                (Stage::CircuitBreaker, self.circuit_breaker.is_some()),
                (Stage::Retry, self.retry.is_some()),
                (Stage::Timeout, self.timeout.is_some()),
            ] {
                if present && !order.contains(&stage) {
                    issues.push(
                        "order",
                        format!(
                            "must list every configured policy; {} is missing",
                            Quoted(stage.as_str())
                        ),
                    );
                }
            }
        }
        issues.finish(())
    }

    fn order(&self) -> &[Stage] {
        self.order.as_deref().unwrap_or(&DEFAULT_ORDER)
    }
}

/// A policy file: `{"seed"?, "policies": {name: pipelineConfig}}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyFile {
    /// Default PRNG seed for every pipeline that has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The named pipelines, in name order.
    pub policies: std::collections::BTreeMap<String, PipelineConfig>,
}

impl PolicyFile {
    /// Parse and validate a policy file; every issue's path starts with `policies.<name>`.
    pub fn from_json(text: &str) -> Result<PolicyFile, ConfigError> {
        let file = <PolicyFile as FromTree>::from_json_str(text)?;
        file.validate()?;
        Ok(file)
    }

    /// Validate every entry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        for (name, config) in &self.policies {
            if let Err(e) = config.validate() {
                issues.extend(&format!("policies.{name}"), e);
            }
        }
        issues.finish(())
    }

    /// The names of the pipelines, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// A new pipeline for `name`. `host_seed` seeds jitter when neither the entry nor the
    /// file has a `seed` (hosts pass OS randomness).
    pub fn pipeline(&self, name: &str, host_seed: u64) -> Result<Pipeline, UsageError> {
        let config = self.policies.get(name).ok_or(UsageError::UnknownPolicy)?;
        let mut config = config.clone();
        if config.seed.is_none() {
            config.seed = self.seed;
        }
        // Validated at load time, so construction cannot fail.
        Pipeline::new(config, host_seed).map_err(|_| UsageError::UnknownPolicy)
    }
}

/// A generational handle to one call in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallId {
    index: u32,
    generation: u32,
}

impl CallId {
    /// The handle as one integer (for FFI).
    #[must_use]
    pub const fn to_raw(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }

    /// A handle from [`CallId::to_raw`]; validated on use.
    #[must_use]
    pub const fn from_raw(raw: u64) -> CallId {
        CallId {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

/// What the host does next for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Step {
    /// Run the function (attempt `attempt`, the first is 1), cancelling it at `deadline`;
    /// then [`Pipeline::report`].
    Attempt {
        /// The attempt number.
        attempt: u32,
        /// When to cancel it and report [`Outcome::Timeout`].
        deadline: Option<Instant>,
    },
    /// Wait until `until`, then poll again (a backoff or a rate-limit wait).
    Sleep {
        /// When to poll again.
        until: Instant,
    },
    /// Queued in the bulkhead: wait until [`Pipeline::poll_wake`] names this call, or `until`.
    Park {
        /// The queue ticket.
        ticket: u64,
        /// When to poll again at the latest.
        until: Option<Instant>,
    },
    /// Run the store request [`Pipeline::store_request`]`(request)` (a shared rate limit),
    /// giving up at `until`; then [`Pipeline::report_store`] its reply. Never resend it.
    Store {
        /// The request to run.
        request: RequestId,
        /// Its timeout: report [`StoreReply::Timeout`] when no reply came by then.
        until: Instant,
    },
    /// The call succeeded: return the function's value.
    Done {
        /// Attempts made, the first included.
        attempts: u32,
    },
    /// The call failed.
    Fail(Failure),
}

/// How a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The kind of error to raise. [`ErrorKind::Failure`] means "re-raise the function's own
    /// error unchanged".
    pub kind: ErrorKind,
    /// When the same call could pass, where known (rejections and pushback).
    pub retry_after: Option<Duration>,
    /// Attempts made, the first included (0 when rejected before any attempt).
    pub attempts: u32,
    /// Whether the host's fallback applies (the `fallback.on` list).
    pub fallback: bool,
    /// For `retriesExhausted`, `budgetExhausted` and `deadlineExceeded` after attempts: the
    /// kind of the last attempt's failure (`failure`, `timeout`, or a per-attempt refusal).
    pub cause: Option<ErrorKind>,
}

/// The outcome of one attempt, as the host reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The function returned a value.
    Success,
    /// The function failed.
    Failure,
    /// The attempt was cancelled at its deadline.
    Timeout,
    /// The function failed in a way that is the caller's fault (a 4xx): the breaker does not
    /// count it and it is not retried.
    Ignored,
}

/// An attempt's outcome with what the host's predicate said about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// What happened.
    pub outcome: Outcome,
    /// Whether the retry predicate accepts this failure (ignored for success; a timeout is
    /// always retryable).
    pub retryable: bool,
    /// A server's Retry-After hint.
    pub retry_after: Option<Duration>,
}

impl Report {
    /// A success.
    pub const SUCCESS: Report = Report {
        outcome: Outcome::Success,
        retryable: false,
        retry_after: None,
    };

    /// A failure.
    #[must_use]
    pub const fn failure(retryable: bool, retry_after: Option<Duration>) -> Report {
        Report {
            outcome: Outcome::Failure,
            retryable,
            retry_after,
        }
    }

    /// A timeout.
    pub const TIMEOUT: Report = Report {
        outcome: Outcome::Timeout,
        retryable: true,
        retry_after: None,
    };
}

/// Counters and gauges of a pipeline and its policies. Serializes to camelCase JSON with
/// `failed` as an object keyed by error kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PipelineStats {
    /// Calls begun.
    pub calls: u64,
    /// Calls that ended in `Done`.
    pub succeeded: u64,
    /// Calls that ended in `Fail`, by kind (index: `ErrorKind::code() - 1`).
    #[serde(serialize_with = "serialize_failed")]
    pub failed: [u64; ErrorKind::ALL.len()],
    /// Calls cancelled by the host.
    pub cancelled: u64,
    /// Attempts started.
    pub attempts: u64,
    /// Calls begun and not yet ended (a gauge; a call ends when its outcome is decided,
    /// even before the host polls the final step).
    pub in_flight: u64,
    /// Events dropped because the host did not drain them.
    pub events_dropped: u64,
    /// The breaker's metrics, when there is one.
    pub breaker: Option<BreakerMetrics>,
    /// The bulkhead's metrics, when there is one.
    pub bulkhead: Option<BulkheadMetrics>,
    /// The rate limiter's metrics, when there is one.
    pub rate_limit: Option<RateLimitMetrics>,
    /// The retry policy's metrics, when there is one.
    pub retry: Option<RetryMetrics>,
    /// Retry budget tokens left, when there is a budget.
    pub budget_tokens: Option<f64>,
    /// Keys held by a keyed pipeline (`None` when not keyed; per-key breaker and limiter
    /// metrics are then not aggregated into `breaker` and `rate_limit`).
    pub keys: Option<u64>,
    /// The shared rate limit's metrics, with a `store`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreMetrics>,
    /// The shared breaker's metrics, with `circuitBreaker.share`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<ShareMetrics>,
}

fn serialize_failed<S: serde::Serializer>(
    failed: &[u64; ErrorKind::ALL.len()],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(failed.len() - 1))?;
    for k in ErrorKind::ALL
        .into_iter()
        .filter(|k| *k != ErrorKind::InvalidConfig)
    {
        m.serialize_entry(k.as_str(), &failed[(k.code() - 1) as usize])?;
    }
    m.end()
}

impl PipelineStats {
    /// Calls that failed with `kind`.
    #[must_use]
    pub fn failed(&self, kind: ErrorKind) -> u64 {
        self.failed[(kind.code() - 1) as usize]
    }
}

// Per-call progress bits: which per-call (outer) and per-attempt (inner) stages are passed.
const PASSED_RATE_LIMIT: u8 = 1;
const HOLDS_BULKHEAD: u8 = 2;
const HOLDS_BREAKER: u8 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Passing stages (outer ones first, then the attempt's inner ones).
    Admit,
    /// Waiting until the instant (backoff or a reserved rate-limit wait).
    Sleep(Instant),
    /// In the bulkhead queue.
    Park {
        ticket: Ticket,
        until: Option<Instant>,
        granted: bool,
    },
    /// Waiting for the host to run a store request and report its reply.
    Store { request: RequestId, until: Instant },
    /// An attempt is running.
    Running { deadline: Option<Instant> },
    /// Finished: the step to hand out on the next poll.
    Finished(Step),
}

#[derive(Clone, Copy, Debug)]
struct Call {
    generation: u32,
    live: bool,
    phase: Phase,
    /// Stages passed (bits above); outer and inner share the word since each stage is either.
    held: u8,
    /// Whether the outer (per-call) stages have all been passed.
    outer_done: bool,
    permit: Option<Permit>,
    retry: Option<RetryState>,
    attempts: u32,
    deadline: Option<Instant>,
    last_kind: Option<ErrorKind>,
    last_ignored: bool,
    /// Whether the function ran at least once (an `Attempt` was handed out): only then is a
    /// failure an outcome the breaker outside retry may record.
    ran: bool,
    /// Whether this call's shared-breaker requests are done (after its probe, or when the
    /// store forgot it): the local breaker decides from here.
    share_synced: bool,
}

impl Call {
    const VACANT: Call = Call {
        generation: 0,
        live: false,
        phase: Phase::Admit,
        held: 0,
        outer_done: false,
        permit: None,
        retry: None,
        attempts: 0,
        deadline: None,
        last_kind: None,
        last_ignored: false,
        ran: false,
        share_synced: false,
    };
}

/// A hasher for the pipeline's own small sequential integers (bulkhead tickets): they are not
/// attacker-chosen, so a multiplicative mix is enough and costs nothing.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// The layout of stages derived from `order`: which are per call and which per attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Layout {
    /// Stages passed once per call, outermost first.
    outer: [Option<Stage>; 3],
    /// Stages passed once per attempt, outermost first.
    inner: [Option<Stage>; 3],
    /// Whether `perAttempt` bounds each attempt (timeout inside retry) or the whole call.
    timeout_per_attempt: bool,
}

impl Layout {
    fn new(config: &PipelineConfig) -> Layout {
        let mut layout = Layout {
            timeout_per_attempt: true,
            ..Layout::default()
        };
        let order = config.order();
        let retry_pos = if config.retry.is_some() {
            order.iter().position(|s| *s == Stage::Retry)
        } else {
            None
        };
        let (mut o, mut i) = (0, 0);
        for (pos, stage) in order.iter().enumerate() {
            let present = match stage {
                Stage::RateLimit => config.rate_limit.is_some(),
                Stage::Bulkhead => config.bulkhead.is_some(),
                Stage::CircuitBreaker => config.circuit_breaker.is_some(),
                Stage::Timeout => {
                    layout.timeout_per_attempt = retry_pos.is_none_or(|r| pos > r);
                    false
                }
                Stage::Fallback | Stage::Retry => false,
            };
            if !present {
                continue;
            }
            if retry_pos.is_some_and(|r| pos > r) {
                layout.inner[i] = Some(*stage);
                i += 1;
            } else {
                layout.outer[o] = Some(*stage);
                o += 1;
            }
        }
        layout
    }

    fn is_inner(&self, stage: Stage) -> bool {
        self.inner.contains(&Some(stage))
    }
}
/// The per-key policies of a keyed pipeline.
#[derive(Debug)]
struct KeyEntry {
    breaker: Option<CircuitBreaker>,
    limiter: Option<RateLimiter>,
}

impl KeyedState for KeyEntry {
    fn is_idle(&self, now: Instant) -> bool {
        self.breaker.as_ref().is_none_or(|b| b.is_idle(now))
            && self.limiter.as_ref().is_none_or(|l| l.is_idle(now))
    }
}

/// The policies of one pipeline composed around many concurrent calls.
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    layout: Layout,
    limiter: Option<RateLimiter>,
    /// The shared rate limit (replacing `limiter` and the per-key limiters) with a `store`.
    shared: Option<SharedLimiter>,
    /// The fleet side of the breaker with `circuitBreaker.share`.
    shared_breaker: Option<SharedBreaker>,
    /// The highest request number any shared limiter or breaker of this pipeline reached.
    request_floor: u64,
    /// [`Pipeline::use_store_host_clock`], kept for limiters rebuilt by `reconfigure`.
    store_host_clock: bool,
    bulkhead: Option<Bulkhead>,
    breaker: Option<CircuitBreaker>,
    retry: Option<Retry>,
    /// Per-key breakers and limiters (replacing `breaker` and `limiter`) when `keyed`.
    keyed: Option<Keyed<KeyEntry>>,
    /// The key of each call slot, for keyed pipelines.
    keys: Vec<Option<Box<str>>>,
    breaker_config: Option<Arc<BreakerConfig>>,
    fallback_on: u32,
    rng: Rng,
    clock: Monotonic,
    pushback_until: Instant,
    calls: Vec<Call>,
    free: Vec<u32>,
    parked: IdMap<u32>,
    /// Woken calls, with the ticket they were parked under (a call re-parked since has another).
    wakes: std::collections::VecDeque<(CallId, Ticket)>,
    events: EventQueue,
    stats: PipelineStats,
}
/// A fresh entry for a new (or re-created) key.
fn new_key_entry(
    config: &Option<Arc<BreakerConfig>>,
    limits: &Option<RateLimitConfig>,
) -> KeyEntry {
    KeyEntry {
        // Both were validated when the pipeline was built.
        breaker: config
            .clone()
            .and_then(|c| CircuitBreaker::with_shared_config(c).ok()),
        limiter: limits.clone().and_then(|c| RateLimiter::new(c).ok()),
    }
}

fn new_keyed_map(k: &KeyedConfig, seed: u64) -> Keyed<KeyEntry> {
    // The map's hash keys come from the pipeline's seed, scrambled so they differ from the
    // jitter stream: keys are attacker-chosen and the hash must not be predictable from it.
    let hash_seed = Rng::new(seed ^ 0x6b65_7965_645f_6d61).next_u64();
    Keyed::new(
        k.max_keys as usize,
        k.idle_expiry.map(|d| d.get()),
        hash_seed,
    )
}

/// The fleet side of the breaker, with `circuitBreaker.share` (validated already).
fn new_shared_breaker(
    config: &PipelineConfig,
    seed: u64,
) -> Result<Option<SharedBreaker>, ConfigError> {
    let (Some(store), Some(breaker)) = (&config.store, &config.circuit_breaker) else {
        return Ok(None);
    };
    match &breaker.share {
        Some(share) if share.mode != ShareMode::Off => {
            SharedBreaker::new(share, breaker, store, seed).map(Some)
        }
        _ => Ok(None),
    }
}

/// Per-key limiters of a keyed pipeline whose limit is shared: none.
const NO_LIMITS: Option<RateLimitConfig> = None;

/// The shared limiter of a pipeline with a `store` (validated already).
fn new_shared(config: &PipelineConfig, seed: u64) -> Result<Option<SharedLimiter>, ConfigError> {
    SharedLimiter::for_pipeline(config, seed)
}

fn kinds_mask(kinds: &[ErrorKind]) -> u32 {
    kinds.iter().fold(0, |m, k| m | (1 << k.code()))
}

impl Pipeline {
    /// Build a pipeline. `host_seed` seeds jitter when the config has no `seed`.
    pub fn new(config: PipelineConfig, host_seed: u64) -> Result<Pipeline, ConfigError> {
        config.validate()?;
        let mut limiter = config
            .rate_limit
            .clone()
            .map(RateLimiter::new)
            .transpose()?;
        let bulkhead = config.bulkhead.clone().map(Bulkhead::new).transpose()?;
        let breaker_config = config.circuit_breaker.clone().map(Arc::new);
        let mut breaker = breaker_config
            .clone()
            .map(CircuitBreaker::with_shared_config)
            .transpose()?;
        let retry = config.retry.clone().map(Retry::new).transpose()?;
        let fallback_on = kinds_mask(&config.fallback.clone().unwrap_or_default().on);
        let seed = config.seed.unwrap_or(host_seed);
        let shared = new_shared(&config, seed)?;
        if shared.is_some() {
            limiter = None;
        }
        let keyed = config.keyed.as_ref().map(|k| {
            limiter = None;
            breaker = None;
            new_keyed_map(k, seed)
        });
        Ok(Pipeline {
            shared_breaker: new_shared_breaker(&config, seed)?,
            request_floor: 0,
            store_host_clock: false,
            shared,
            layout: Layout::new(&config),
            rng: Rng::new(seed),
            keyed,
            keys: Vec::new(),
            breaker_config,
            config,
            limiter,
            bulkhead,
            breaker,
            retry,
            fallback_on,
            clock: Monotonic::new(),
            pushback_until: Instant::ZERO,
            calls: Vec::with_capacity(16),
            free: Vec::with_capacity(16),
            parked: IdMap::default(),
            wakes: std::collections::VecDeque::with_capacity(16),
            events: EventQueue::new(),
            stats: PipelineStats::default(),
        })
    }

    /// Parse, validate and build.
    pub fn from_json(text: &str, host_seed: u64) -> Result<Pipeline, ConfigError> {
        Pipeline::new(PipelineConfig::from_json(text)?, host_seed)
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }
    /// The circuit breaker, if configured and not keyed (for `state`, `force_open`,
    /// `reset`...).
    pub fn breaker_mut(&mut self) -> Option<&mut CircuitBreaker> {
        self.breaker.as_mut()
    }

    /// The circuit breaker, if configured and not keyed.
    #[must_use]
    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// The circuit breaker of `key` on a keyed pipeline, if that key is held.
    pub fn keyed_breaker_mut(&mut self, key: &str) -> Option<&mut CircuitBreaker> {
        self.keyed.as_mut()?.get_mut(key)?.breaker.as_mut()
    }

    /// The circuit breaker of `key` on a keyed pipeline, if that key is held.
    #[must_use]
    pub fn keyed_breaker(&self, key: &str) -> Option<&CircuitBreaker> {
        self.keyed.as_ref()?.get(key)?.breaker.as_ref()
    }

    /// How many keys a keyed pipeline holds now (`None` when not keyed).
    #[must_use]
    pub fn keys(&self) -> Option<usize> {
        self.keyed.as_ref().map(Keyed::len)
    }
    /// Begin a call at `now`, optionally bounded by an inherited `deadline`. On a keyed
    /// pipeline this is the call for the empty key.
    pub fn begin(&mut self, now: Instant, deadline: Option<Instant>) -> CallId {
        self.begin_keyed("", now, deadline)
    }

    /// Begin a call for `key` (a host, a user...): on a keyed pipeline it passes that key's
    /// breaker and limiter; on an unkeyed one the key is ignored. Keyed calls copy their key
    /// (one small allocation per call).
    pub fn begin_keyed(&mut self, key: &str, now: Instant, deadline: Option<Instant>) -> CallId {
        let now = self.clock.observe(now);
        let mut deadline = deadline;
        if let Some(t) = &self.config.timeout {
            deadline = t.call_deadline(now, deadline);
            if !self.layout.timeout_per_attempt {
                deadline = t.attempt_deadline(now, deadline);
            }
        }
        let retry = self.retry.as_ref().map(|r| r.start(now));
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.calls.push(Call::VACANT);
                (self.calls.len() - 1) as u32
            }
        };
        let slot = &mut self.calls[index as usize];
        let generation = slot.generation.wrapping_add(1);
        *slot = Call {
            generation,
            live: true,
            deadline,
            retry,
            ..Call::VACANT
        };
        self.stats.calls += 1;
        self.stats.in_flight += 1;
        if self.keyed.is_some() {
            if self.keys.len() <= index as usize {
                self.keys.resize(index as usize + 1, None);
            }
            self.keys[index as usize] = Some(key.into());
            if let Err(retry_after) = self.ensure_key(index as usize, now) {
                self.events.push(Event {
                    at: now,
                    kind: EventKind::Rejected {
                        reason: ErrorKind::RateLimited,
                        retry_after,
                    },
                });
                self.finish_fail(index, ErrorKind::RateLimited, retry_after, None, now);
                return CallId { index, generation };
            }
        }
        if self.pushback_until > now {
            let wait = self.pushback_until.saturating_duration_since(now);
            let retry_after = Some(wait);
            self.events.push(Event {
                at: now,
                kind: EventKind::Rejected {
                    reason: ErrorKind::RateLimited,
                    retry_after,
                },
            });
            self.finish_fail(index, ErrorKind::RateLimited, Some(wait), None, now);
        }
        CallId { index, generation }
    }
    /// Make sure call `i`'s key has its entry before its stages run: an idle key may have
    /// been evicted since `begin_keyed` (or during a backoff), and is then re-created fresh,
    /// which is what eviction of an idle key promises. `Err(retry_after)` when the map is
    /// full of busy keys.
    fn ensure_key(&mut self, i: usize, now: Instant) -> Result<(), Option<Duration>> {
        let Some(map) = self.keyed.as_mut() else {
            return Ok(());
        };
        let Some(key) = self.keys.get(i).and_then(|k| k.as_deref()) else {
            return Ok(());
        };
        let limits = if self.shared.is_some() {
            &NO_LIMITS
        } else {
            &self.config.rate_limit
        };
        let config = &self.breaker_config;
        match map.try_get_or_insert_with(key, now, || new_key_entry(config, limits)) {
            Ok(_) => Ok(()),
            Err(full) => Err(full.retry_at.map(|t| t.saturating_duration_since(now))),
        }
    }

    /// The breaker call slot `i` passes: the pipeline's, or its key's.
    fn breaker_of(&mut self, i: usize) -> Option<&mut CircuitBreaker> {
        match self.keyed.as_mut() {
            Some(map) => map.get_mut(self.keys.get(i)?.as_deref()?)?.breaker.as_mut(),
            None => self.breaker.as_mut(),
        }
    }

    /// The rate limiter call slot `i` passes: the pipeline's, or its key's.
    fn limiter_of(&mut self, i: usize) -> Option<&mut RateLimiter> {
        match self.keyed.as_mut() {
            Some(map) => map.get_mut(self.keys.get(i)?.as_deref()?)?.limiter.as_mut(),
            None => self.limiter.as_mut(),
        }
    }

    fn slot(&self, call: CallId) -> Result<usize, UsageError> {
        match self.calls.get(call.index as usize) {
            Some(c) if c.live && c.generation == call.generation => Ok(call.index as usize),
            _ => Err(UsageError::UnknownCall),
        }
    }

    /// What the host should do next for `call`. `Done` and `Fail` end the call: its handle
    /// is invalid afterwards.
    pub fn poll(&mut self, call: CallId, now: Instant) -> Result<Step, UsageError> {
        let i = self.slot(call)?;
        let now = self.clock.observe(now);
        let step = self.advance(i, now);
        self.drain_policy_events(i);
        step
    }

    fn advance(&mut self, i: usize, now: Instant) -> Result<Step, UsageError> {
        loop {
            match self.calls[i].phase {
                Phase::Finished(step) => {
                    self.free_slot(i);
                    return Ok(step);
                }
                Phase::Running { .. } => return Err(UsageError::AttemptInFlight),
                Phase::Store { request, until } => {
                    if now < until {
                        return Ok(Step::Store { request, until });
                    }
                    // The host let the request outlive its timeout: it counts as one.
                    self.store_reply(i, StoreReply::Timeout, now);
                }
                Phase::Sleep(until) => {
                    if now < until {
                        return Ok(Step::Sleep { until });
                    }
                    self.calls[i].phase = Phase::Admit;
                }
                Phase::Park {
                    ticket,
                    until,
                    granted,
                } => {
                    if granted {
                        if self.bulkhead.is_some() {
                            self.calls[i].held |= HOLDS_BULKHEAD;
                        }
                        self.calls[i].phase = Phase::Admit;
                        continue;
                    }
                    if until.is_some_and(|u| now >= u) {
                        self.parked.remove(&ticket.get());
                        if let Some(b) = self.bulkhead.as_mut() {
                            // false: the bulkhead already dropped it as expired.
                            let _ = b.cancel(ticket, now, true);
                        }
                        self.refuse(i, Stage::Bulkhead, ErrorKind::QueueTimeout, None, now);
                        continue;
                    }
                    return Ok(Step::Park {
                        ticket: ticket.get(),
                        until,
                    });
                }
                Phase::Admit => {
                    if let Some(step) = self.admit(i, now) {
                        return Ok(step);
                    }
                }
            }
        }
    }

    /// Pass the stages the call still needs; returns a step to hand out, or `None` to loop.
    fn admit(&mut self, i: usize, now: Instant) -> Option<Step> {
        if let Err(retry_after) = self.ensure_key(i, now) {
            self.refuse(
                i,
                Stage::RateLimit,
                ErrorKind::RateLimited,
                retry_after,
                now,
            );
            return None;
        }
        let layout = self.layout;
        let outer_done = self.calls[i].outer_done;
        let stages = if outer_done {
            layout.inner
        } else {
            layout.outer
        };
        for stage in stages.into_iter().flatten() {
            let bit = match stage {
                Stage::RateLimit => PASSED_RATE_LIMIT,
                Stage::Bulkhead => HOLDS_BULKHEAD,
                _ => HOLDS_BREAKER,
            };
            if self.calls[i].held & bit != 0 {
                continue;
            }
            match stage {
                Stage::RateLimit if self.shared.is_some() => match self.shared_check(i, now) {
                    Some(step) => return step,
                    None => continue,
                },
                Stage::RateLimit => {
                    let deadline = self.calls[i].deadline;
                    let Some(limiter) = self.limiter_of(i) else {
                        continue;
                    };
                    // Do not reserve capacity for a wait the call cannot afford.
                    let unaffordable = deadline.is_some_and(|dl| {
                        matches!(limiter.peek(now, 1), RateDecision::Wait(d) if now.saturating_add(d) >= dl)
                    });
                    if unaffordable {
                        self.refuse(i, stage, ErrorKind::DeadlineExceeded, None, now);
                        return None;
                    }
                    let Some(limiter) = self.limiter_of(i) else {
                        continue;
                    };
                    match limiter.check(now, 1) {
                        RateDecision::Allowed => self.calls[i].held |= bit,
                        RateDecision::Wait(d) => {
                            let until = now.saturating_add(d);
                            self.calls[i].held |= bit;
                            self.calls[i].phase = Phase::Sleep(until);
                            return Some(Step::Sleep { until });
                        }
                        RateDecision::Denied { retry_after } => {
                            self.refuse(i, stage, ErrorKind::RateLimited, retry_after, now);
                            return None;
                        }
                    }
                }
                Stage::Bulkhead => {
                    let Some(bulkhead) = self.bulkhead.as_mut() else {
                        continue;
                    };
                    match bulkhead.try_enter(now, self.calls[i].deadline) {
                        Entry::Admitted => self.calls[i].held |= bit,
                        Entry::Queued { ticket, until } => {
                            let id = CallId {
                                index: i as u32,
                                generation: self.calls[i].generation,
                            };
                            self.parked.insert(ticket.get(), id.index);
                            self.calls[i].phase = Phase::Park {
                                ticket,
                                until,
                                granted: false,
                            };
                            return Some(Step::Park {
                                ticket: ticket.get(),
                                until,
                            });
                        }
                        Entry::Rejected { reason } => {
                            self.refuse(i, stage, reason, None, now);
                            return None;
                        }
                    }
                }
                _ => {
                    if let Some(step) = self.share_sync(i, now) {
                        return step;
                    }
                    let Some(breaker) = self.breaker_of(i) else {
                        continue;
                    };
                    match breaker.try_acquire(now) {
                        Admission::Admitted(permit) => {
                            self.calls[i].permit = Some(permit);
                            self.calls[i].held |= bit;
                        }
                        Admission::Rejected { retry_after } => {
                            self.refuse(i, stage, ErrorKind::CircuitOpen, retry_after, now);
                            return None;
                        }
                    }
                }
            }
        }
        if !outer_done {
            self.calls[i].outer_done = true;
            let c = &mut self.calls[i];
            if let (Some(r), Some(state)) = (self.retry.as_ref(), c.retry.as_mut()) {
                // The attempt begins when its per-attempt stages start, so a per-attempt
                // refusal counts as an attempt and retries always terminate.
                c.attempts = r.begin_attempt(state);
            }
            return None;
        }
        if self.calls[i].deadline.is_some_and(|d| now >= d) {
            self.refuse(i, Stage::Timeout, ErrorKind::DeadlineExceeded, None, now);
            return None;
        }
        let c = &mut self.calls[i];
        if self.retry.is_none() || c.retry.is_none() {
            c.attempts += 1;
        }
        let deadline = match (&self.config.timeout, self.layout.timeout_per_attempt) {
            (Some(t), true) => t.attempt_deadline(now, c.deadline),
            _ => c.deadline,
        };
        c.phase = Phase::Running { deadline };
        c.ran = true;
        self.stats.attempts += 1;
        Some(Step::Attempt {
            attempt: c.attempts,
            deadline,
        })
    }

    /// A shared-breaker request call `i` must carry before the local breaker (a vote, a
    /// result, a probe or a due sync), as a store step: `None` to go on to the local breaker,
    /// `Some(step)` to return from `admit` (a store step, or `None` after a refusal).
    fn share_sync(&mut self, i: usize, now: Instant) -> Option<Option<Step>> {
        if self.calls[i].share_synced {
            return None;
        }
        let (Some(sb), Some(local)) = (self.shared_breaker.as_mut(), self.breaker.as_ref()) else {
            return None;
        };
        match sb.before_acquire(local, now) {
            Effect::None => None,
            Effect::Send(request) => {
                let until = sb.request_deadline(request).unwrap_or(now);
                self.calls[i].phase = Phase::Store { request, until };
                Some(Some(Step::Store { request, until }))
            }
            Effect::Reject => {
                self.refuse(i, Stage::CircuitBreaker, ErrorKind::CircuitOpen, None, now);
                Some(None)
            }
        }
    }

    /// The shared rate limit for call `i`: `None` when passed (go on with the next stage),
    /// `Some(step)` to return from `admit` (a store request, a reserved wait, or a refusal).
    fn shared_check(&mut self, i: usize, now: Instant) -> Option<Option<Step>> {
        let shared = self.shared.as_mut()?;
        // A reserved wait must end before the deadline (as for the local limiter).
        let max_wait = self.calls[i].deadline.map(|dl| {
            dl.saturating_duration_since(now)
                .saturating_sub(Duration::from_nanos(1))
        });
        let key = self.keys.get(i).and_then(|k| k.as_deref()).unwrap_or("");
        match shared.check(key, now, 1, max_wait) {
            SharedCheck::Send(request) => {
                let until = shared.request_deadline(request).unwrap_or(now);
                self.calls[i].phase = Phase::Store { request, until };
                Some(Some(Step::Store { request, until }))
            }
            SharedCheck::Decided { decision, .. } => self.apply_shared(i, decision, now),
        }
    }

    /// Apply a shared rate-limit decision to call `i` (see [`Pipeline::shared_check`]).
    fn apply_shared(
        &mut self,
        i: usize,
        decision: RateDecision,
        now: Instant,
    ) -> Option<Option<Step>> {
        match decision {
            RateDecision::Denied { retry_after } => {
                let configured = self
                    .shared
                    .as_ref()
                    .map_or(0, SharedLimiter::max_wait_nanos);
                // A wait the limit would have reserved, but the deadline could not afford.
                let unaffordable = match (retry_after, self.calls[i].deadline) {
                    (Some(ra), Some(dl)) => {
                        crate::time::duration_nanos(ra) <= configured
                            && now.saturating_add(ra) >= dl
                    }
                    _ => false,
                };
                let kind = if unaffordable {
                    ErrorKind::DeadlineExceeded
                } else {
                    ErrorKind::RateLimited
                };
                let ra = if unaffordable { None } else { retry_after };
                self.refuse(i, Stage::RateLimit, kind, ra, now);
                Some(None)
            }
            RateDecision::Wait(d) => {
                let until = now.saturating_add(d);
                self.calls[i].held |= PASSED_RATE_LIMIT;
                self.calls[i].phase = Phase::Sleep(until);
                Some(Some(Step::Sleep { until }))
            }
            _ => {
                self.calls[i].held |= PASSED_RATE_LIMIT;
                None
            }
        }
    }

    /// The host ran call `i`'s store request (or it timed out): decide, then go on.
    fn store_reply(&mut self, i: usize, reply: StoreReply, now: Instant) {
        let Phase::Store { request, .. } = self.calls[i].phase else {
            return;
        };
        self.calls[i].phase = Phase::Admit;
        if SharedBreaker::owns(request) {
            let (Some(sb), Some(local)) = (self.shared_breaker.as_mut(), self.breaker.as_mut())
            else {
                return; // Sharing was removed by `reconfigure`: pass the stages again.
            };
            // An unknown request (rebuilt by `reconfigure`): the local breaker decides.
            match sb.on_reply(request, reply, local, now) {
                Ok(Verdict::Reject(retry_after)) => {
                    self.refuse(
                        i,
                        Stage::CircuitBreaker,
                        ErrorKind::CircuitOpen,
                        retry_after,
                        now,
                    );
                }
                // After a delivered vote or result a call may still need to probe; after
                // anything else it goes to the local breaker without asking again.
                Ok(Verdict::Proceed { done }) => self.calls[i].share_synced = done,
                Err(_) => self.calls[i].share_synced = true,
            }
            return;
        }
        let Some(shared) = self.shared.as_mut() else {
            return; // The store was removed by `reconfigure`: pass the stages again.
        };
        // An unknown request (the shared limiter was rebuilt by `reconfigure`): ask again.
        if let Ok((decision, _)) = shared.on_reply(request, reply, now) {
            // A refusal finishes the call, a wait sets the phase: nothing more to do here.
            let _ = self.apply_shared(i, decision, now);
        }
    }

    /// The store request of a call whose step is [`Step::Store`].
    #[must_use]
    pub fn store_request(&self, request: RequestId) -> Option<&StoreRequest> {
        if SharedBreaker::owns(request) {
            return self.shared_breaker.as_ref()?.request(request);
        }
        self.shared.as_ref()?.request(request)
    }

    /// Make the store scripts use the host's `now` instead of the store's clock. Only for
    /// conformance tests that replay vectors through a real store.
    pub fn use_store_host_clock(&mut self, on: bool) {
        self.store_host_clock = on;
        if let Some(s) = self.shared.as_mut() {
            s.use_host_clock(on);
        }
        if let Some(s) = self.shared_breaker.as_mut() {
            s.use_host_clock(on);
        }
    }

    /// The last error reply of the store (`CROSSSLOT`, `NOPERM`, `WRONGTYPE`…: a deployment
    /// mistake; [`PipelineStats::store`] and [`PipelineStats::share`] count them): the shared
    /// rate limit's, else the shared breaker's.
    #[must_use]
    pub fn store_last_error(&self) -> Option<&str> {
        self.shared
            .as_ref()
            .and_then(SharedLimiter::last_error)
            .or_else(|| self.shared_breaker.as_ref()?.last_error())
    }

    /// The shared rate limit, with a `store`.
    #[must_use]
    pub fn shared_limiter(&self) -> Option<&SharedLimiter> {
        self.shared.as_ref()
    }

    /// The shared rate limit, with a `store` (for tests that override the store's clock).
    pub fn shared_limiter_mut(&mut self) -> Option<&mut SharedLimiter> {
        self.shared.as_mut()
    }

    /// Report the reply to `call`'s store request ([`Step::Store`]); then poll again.
    /// [`UsageError::NoStoreRequest`] when the call is not waiting for one.
    pub fn report_store(
        &mut self,
        call: CallId,
        reply: StoreReply,
        now: Instant,
    ) -> Result<(), UsageError> {
        let i = self.slot(call)?;
        let now = self.clock.observe(now);
        if !matches!(self.calls[i].phase, Phase::Store { .. }) {
            return Err(UsageError::NoStoreRequest);
        }
        self.store_reply(i, reply, now);
        self.drain_policy_events(i);
        Ok(())
    }

    /// A stage refused the call (or its deadline passed before it could go on).
    fn refuse(
        &mut self,
        i: usize,
        stage: Stage,
        kind: ErrorKind,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        let inner = self.calls[i].outer_done && self.layout.is_inner(stage);
        if inner && kind != ErrorKind::DeadlineExceeded && self.retries(i) {
            // A per-attempt refusal is a failed attempt: retry it after its own hint.
            self.release_inner(i, now, None);
            self.calls[i].last_kind = Some(kind);
            self.after_failure(
                i,
                FailureInfo {
                    retryable: true,
                    retry_after,
                },
                now,
            );
            return;
        }
        let cause = if self.calls[i].attempts > 0 {
            self.calls[i].last_kind
        } else {
            None
        };
        self.finish_fail(i as u32, kind, retry_after, cause, now);
    }

    /// Report the running attempt's outcome.
    pub fn report(&mut self, call: CallId, report: Report, now: Instant) -> Result<(), UsageError> {
        let i = self.slot(call)?;
        if !matches!(self.calls[i].phase, Phase::Running { .. }) {
            return Err(UsageError::NoAttemptInFlight);
        }
        let now = self.clock.observe(now);
        let breaker_outcome = match report.outcome {
            Outcome::Success => BreakerOutcome::Success,
            Outcome::Failure | Outcome::Timeout => BreakerOutcome::Failure,
            Outcome::Ignored => BreakerOutcome::Ignored,
        };
        self.release_inner(i, now, Some(breaker_outcome));
        if let (Some(hint), Some(r)) = (report.retry_after, self.retry.as_ref()) {
            if r.config().pushback == crate::retry::Pushback::Pipeline {
                self.pushback_until = self.pushback_until.max(now.saturating_add(hint));
            }
        }
        match report.outcome {
            Outcome::Success => {
                if let (Some(r), Some(state)) = (self.retry.as_mut(), self.calls[i].retry.as_ref())
                {
                    r.on_success(state);
                }
                self.release_outer(i, now, Some(BreakerOutcome::Success));
                let attempts = self.calls[i].attempts;
                self.stats.succeeded += 1;
                self.stats.in_flight -= 1;
                self.calls[i].phase = Phase::Finished(Step::Done { attempts });
            }
            Outcome::Ignored => {
                self.calls[i].last_ignored = true;
                self.finish_fail(i as u32, ErrorKind::Failure, None, None, now);
            }
            Outcome::Failure | Outcome::Timeout => {
                let kind = if report.outcome == Outcome::Timeout {
                    if self.calls[i].deadline.is_some_and(|d| now >= d) {
                        ErrorKind::DeadlineExceeded
                    } else {
                        ErrorKind::Timeout
                    }
                } else {
                    ErrorKind::Failure
                };
                self.calls[i].last_kind = Some(kind);
                if self.retries(i) {
                    let retryable = report.retryable || report.outcome == Outcome::Timeout;
                    self.after_failure(
                        i,
                        FailureInfo {
                            retryable,
                            retry_after: report.retry_after,
                        },
                        now,
                    );
                } else {
                    self.finish_fail(i as u32, kind, None, None, now);
                }
            }
        }
        self.drain_policy_events(i);
        Ok(())
    }

    /// Whether reporting a plain success ([`Report::SUCCESS`]) for `call`'s running attempt
    /// right now depends on the instant it is reported at.
    ///
    /// `false` when the call is running, the breaker it holds (the pipeline's, or its key's)
    /// would not need the instant for a success ([`CircuitBreaker::success_needs_time`]), no
    /// bulkhead waiter is queued (the slot a success frees would wake one at that instant),
    /// and no server pushback is pending past the latest instant seen
    /// ([`Pipeline::poll_timeout`] compares the two). A success reads no other time: the
    /// retry policy credits its budget, the rate-limit stage holds nothing, and the deadline
    /// is not consulted. So for a host whose clock never goes backwards, reporting it at any
    /// instant between the attempt's start and its true end leaves the same steps, events,
    /// wakes, stats and timeouts; [`Pipeline::try_report_success_untimed`] uses that to spare
    /// the host a clock read per call. Failures and timeouts always need the real instant
    /// (backoff, the breaker's open period, the deadline). `true` for an unknown call.
    #[must_use]
    pub fn success_needs_time(&self, call: CallId) -> bool {
        let Ok(i) = self.slot(call) else {
            return true;
        };
        if !matches!(self.calls[i].phase, Phase::Running { .. })
            || self.pushback_until > self.clock.last()
            || self.bulkhead.as_ref().is_some_and(|b| b.queued() > 0)
        {
            return true;
        }
        if self.calls[i].held & HOLDS_BREAKER == 0 {
            return false;
        }
        let breaker = match self.keyed.as_ref() {
            Some(map) => self
                .keys
                .get(i)
                .and_then(|k| map.get(k.as_deref()?))
                .and_then(|e| e.breaker.as_ref()),
            None => self.breaker.as_ref(),
        };
        breaker.is_some_and(CircuitBreaker::success_needs_time)
    }

    /// Report a plain success for `call`'s running attempt without its end instant, when
    /// [`Pipeline::success_needs_time`] says the instant does not matter (it is reported at
    /// the latest instant seen): `Ok(true)`, then [`Pipeline::poll`] as usual. Otherwise
    /// changes nothing: `Ok(false)` (read the clock and [`Pipeline::report`]), or the misuse
    /// `report` would give. Only for hosts whose clock never goes backwards.
    pub fn try_report_success_untimed(&mut self, call: CallId) -> Result<bool, UsageError> {
        let i = self.slot(call)?;
        if !matches!(self.calls[i].phase, Phase::Running { .. }) {
            return Err(UsageError::NoAttemptInFlight);
        }
        if self.success_needs_time(call) {
            return Ok(false);
        }
        let at = self.clock.last();
        self.report(call, Report::SUCCESS, at)?;
        Ok(true)
    }

    /// Whether call `i` is retried: a retry policy is in force and the call has its state. A
    /// call begun before a reconfiguration added the policy has none, and is not retried.
    fn retries(&self, i: usize) -> bool {
        self.retry.is_some() && self.calls[i].retry.is_some()
    }

    /// Ask the retry policy what follows a failed (or refused) attempt.
    fn after_failure(&mut self, i: usize, failure: FailureInfo, now: Instant) {
        let c = &mut self.calls[i];
        let last = c.last_kind.unwrap_or(ErrorKind::Failure);
        // Callers check `retries(i)`; without a policy or the call's state, nothing retries.
        let (Some(retry), Some(state)) = (self.retry.as_mut(), c.retry.as_mut()) else {
            self.finish_fail(i as u32, last, None, None, now);
            return;
        };
        match retry.on_failure(state, failure, now, c.deadline, &mut self.rng) {
            RetryDecision::Retry { attempt, delay } => {
                let until = now.saturating_add(delay);
                c.phase = if delay.is_zero() {
                    Phase::Admit
                } else {
                    Phase::Sleep(until)
                };
                c.attempts = retry.begin_attempt(state);
                debug_assert_eq!(c.attempts, attempt);
                self.events.push(Event {
                    at: now,
                    kind: EventKind::RetryScheduled { attempt, delay },
                });
            }
            RetryDecision::GiveUp { reason } => {
                let (kind, cause) = match reason {
                    // Not retryable: the attempt's own error (or refusal) propagates unchanged.
                    GiveUp::NotRetryable => (last, None),
                    other => (other.kind(), Some(last)),
                };
                self.finish_fail(
                    i as u32,
                    kind,
                    failure.retry_after.filter(|_| cause.is_none()),
                    cause,
                    now,
                );
            }
        }
    }
    /// Release the per-attempt stages after an attempt (or a per-attempt refusal, `None`:
    /// the breaker's permit is abandoned without an outcome).
    fn release_inner(&mut self, i: usize, now: Instant, outcome: Option<BreakerOutcome>) {
        let layout = self.layout;
        for stage in layout.inner.into_iter().flatten() {
            self.release_stage(i, stage, now, outcome);
        }
    }

    /// Release the per-call stages at the end of a call.
    fn release_outer(&mut self, i: usize, now: Instant, outcome: Option<BreakerOutcome>) {
        let layout = self.layout;
        for stage in layout.outer.into_iter().flatten() {
            self.release_stage(i, stage, now, outcome);
        }
    }
    /// Release one stage the call holds; the breaker records `outcome`, or (`None`) takes
    /// its permit back without one.
    fn release_stage(
        &mut self,
        i: usize,
        stage: Stage,
        now: Instant,
        outcome: Option<BreakerOutcome>,
    ) {
        let c = &mut self.calls[i];
        match stage {
            Stage::RateLimit => c.held &= !PASSED_RATE_LIMIT,
            Stage::Bulkhead if c.held & HOLDS_BULKHEAD != 0 => {
                c.held &= !HOLDS_BULKHEAD;
                if let Some(b) = self.bulkhead.as_mut() {
                    if let Some(ticket) = b.release(now) {
                        self.wake(ticket);
                    }
                }
            }
            Stage::CircuitBreaker if c.held & HOLDS_BREAKER != 0 => {
                c.held &= !HOLDS_BREAKER;
                if let Some(permit) = c.permit.take() {
                    if let Some(b) = self.breaker_of(i) {
                        match outcome {
                            Some(o) => b.record(permit, o, now),
                            None => b.release(permit, now),
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Release everything the call holds without an outcome (cancellation, early failure).
    fn release_all_abandoned(&mut self, i: usize, now: Instant) {
        let c = &mut self.calls[i];
        if let Phase::Park {
            ticket, granted, ..
        } = c.phase
        {
            self.parked.remove(&ticket.get());
            if granted {
                c.held |= HOLDS_BULKHEAD;
            } else if let Some(b) = self.bulkhead.as_mut() {
                let _ = b.cancel(ticket, now, false);
            }
        }
        self.release_stage(i, Stage::CircuitBreaker, now, None);
        self.release_stage(i, Stage::Bulkhead, now, None);
        self.calls[i].held = 0;
    }

    fn wake(&mut self, ticket: Ticket) {
        if let Some(index) = self.parked.remove(&ticket.get()) {
            let c = &mut self.calls[index as usize];
            if let Phase::Park {
                ticket: t, until, ..
            } = c.phase
            {
                c.phase = Phase::Park {
                    ticket: t,
                    until,
                    granted: true,
                };
                self.wakes.push_back((
                    CallId {
                        index,
                        generation: c.generation,
                    },
                    t,
                ));
            }
        }
    }

    /// End a call with a failure: release what it holds, count, and queue the step.
    fn finish_fail(
        &mut self,
        i: u32,
        kind: ErrorKind,
        retry_after: Option<Duration>,
        cause: Option<ErrorKind>,
        now: Instant,
    ) {
        let i = i as usize;
        // The breaker outside retry sees the call's final outcome; refusals before any
        // attempt (or by the breaker itself) are not outcomes of the protected function.
        let attempted = self.calls[i].ran && self.calls[i].outer_done;
        let outcome = if self.calls[i].last_ignored || !attempted {
            BreakerOutcome::Ignored
        } else {
            BreakerOutcome::Failure
        };
        if attempted {
            self.release_outer(i, now, Some(outcome));
        }
        self.release_all_abandoned(i, now);
        let attempts = self.calls[i].attempts;
        self.stats.failed[(kind.code() - 1) as usize] += 1;
        self.stats.in_flight -= 1;
        if kind != ErrorKind::Failure && attempts > 0 {
            self.events.push(Event {
                at: now,
                kind: EventKind::GaveUp {
                    reason: kind,
                    attempts,
                },
            });
        }
        self.calls[i].phase = Phase::Finished(Step::Fail(Failure {
            kind,
            retry_after,
            attempts,
            fallback: self.fallback_on & (1 << kind.code()) != 0,
            cause,
        }));
    }

    fn free_slot(&mut self, i: usize) {
        self.calls[i].live = false;
        self.free.push(i as u32);
    }

    /// Cancel a call (the caller gave up): it leaves any queue and frees what it holds
    /// without recording an outcome. Its handle is invalid afterwards.
    pub fn cancel(&mut self, call: CallId, now: Instant) -> Result<(), UsageError> {
        let i = self.slot(call)?;
        let now = self.clock.observe(now);
        if let Phase::Store { request, .. } = self.calls[i].phase {
            if SharedBreaker::owns(request) {
                if let Some(sb) = self.shared_breaker.as_mut() {
                    sb.abandon(request, now);
                }
            } else if let Some(shared) = self.shared.as_mut() {
                shared.abandon(request, now);
            }
        }
        if !matches!(self.calls[i].phase, Phase::Finished(_)) {
            self.release_all_abandoned(i, now);
            self.stats.cancelled += 1;
            self.stats.in_flight -= 1;
        }
        self.free_slot(i);
        self.drain_policy_events(i);
        Ok(())
    }

    /// The next parked call whose bulkhead slot was granted: poll it now. A wake whose call
    /// has since ended (cancelled, or failed by a timeout), been polled, or parked again under
    /// another ticket is skipped, so a host that drains the queue late is never named a stale
    /// call, nor one call twice.
    pub fn poll_wake(&mut self) -> Option<CallId> {
        while let Some((call, ticket)) = self.wakes.pop_front() {
            let waiting = self.calls.get(call.index as usize).is_some_and(|c| {
                c.live
                    && c.generation == call.generation
                    && matches!(c.phase, Phase::Park { ticket: t, granted: true, .. } if t == ticket)
            });
            if waiting {
                return Some(call);
            }
        }
        None
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// When the next policy-level time-driven change is due (a breaker's open period ending,
    /// a bulkhead waiter's `until`). Per-call waits are in each call's own step.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let breaker = self.breaker.as_ref().and_then(CircuitBreaker::poll_timeout);
        let bulkhead = self.bulkhead.as_ref().and_then(Bulkhead::poll_timeout);
        let pushback = (self.pushback_until > self.clock.last()).then_some(self.pushback_until);
        min_deadline(min_deadline(breaker, bulkhead), pushback)
    }
    /// Apply the time-driven changes due at `now` eagerly (a breaker's open → halfOpen), for
    /// hosts that arm a timer at [`Pipeline::poll_timeout`]; without it they happen lazily at
    /// the next call. Drain events afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        if let Some(b) = self.breaker.as_mut() {
            b.handle_timeout(now);
            while let Some(e) = b.poll_event() {
                self.events.push(e);
            }
        }
    }

    /// Counters and gauges of the pipeline and its policies.
    #[must_use]
    pub fn stats(&self) -> PipelineStats {
        let mut s = self.stats;
        s.events_dropped = self.events.dropped();
        s.breaker = self.breaker.as_ref().map(CircuitBreaker::metrics);
        s.bulkhead = self.bulkhead.as_ref().map(Bulkhead::metrics);
        s.rate_limit = self.limiter.as_ref().map(RateLimiter::metrics);
        s.retry = self.retry.as_ref().map(Retry::metrics);
        s.budget_tokens = self.retry.as_ref().and_then(Retry::budget_tokens);
        s.keys = self.keys().map(|n| n as u64);
        s.store = self.shared.as_ref().map(SharedLimiter::metrics);
        s.share = self.shared_breaker.as_ref().map(SharedBreaker::metrics);
        s
    }

    /// The Prometheus text exposition of [`Pipeline::stats`], labelled `pipeline="<name>"`
    /// (metric names in [`crate::metrics`]).
    #[must_use]
    pub fn prometheus(&self, name: &str) -> String {
        let mut out = String::with_capacity(2048);
        crate::metrics::render_prometheus(&mut out, name, &self.stats());
        out
    }

    /// Apply a new config, keeping the state that still fits (breaker state, limiter levels,
    /// budget tokens, bulkhead holders and queue). An invalid config is refused and the old
    /// one stays in force. Calls in flight finish under the stages they already passed; a
    /// call begun without a retry policy is not retried by one added later.
    pub fn reconfigure(&mut self, config: PipelineConfig, now: Instant) -> Result<(), ConfigError> {
        config.validate()?;
        let now = self.clock.observe(now);
        // A changed store or shared limit starts a fresh shared limiter (the shared state
        // lives in the store; calls waiting for a reply ask the new one again).
        let shared_changed =
            config.store != self.config.store || config.rate_limit != self.config.rate_limit;
        let new_shared_limiter = if shared_changed {
            Some(new_shared(&config, self.rng.next_u64())?)
        } else {
            None
        };
        let share_changed = config.store != self.config.store
            || config.circuit_breaker != self.config.circuit_breaker;
        let new_shared_breaker = if share_changed {
            Some(new_shared_breaker(&config, self.rng.next_u64())?)
        } else {
            None
        };
        // Build every new component first, so a failure leaves everything untouched.
        fn update<T, C: Clone>(
            current: &mut Option<T>,
            next: &Option<C>,
            build: impl FnOnce(C) -> Result<T, ConfigError>,
            keep: impl FnOnce(&mut T, C) -> Result<(), ConfigError>,
        ) -> Result<(), ConfigError> {
            match (current.as_mut(), next) {
                (Some(t), Some(c)) => keep(t, c.clone()),
                (None, Some(c)) => {
                    *current = Some(build(c.clone())?);
                    Ok(())
                }
                (_, None) => {
                    *current = None;
                    Ok(())
                }
            }
        }
        let mut limiter = self.limiter.take();
        let mut bulkhead = self.bulkhead.take();
        let mut breaker = self.breaker.take();
        let mut retry = self.retry.take();
        let mut woken = Vec::new();
        let result = (|| {
            update(
                &mut limiter,
                &config.rate_limit,
                RateLimiter::new,
                |l, c| l.reconfigure(c, now),
            )?;
            update(
                &mut breaker,
                &config.circuit_breaker,
                |c| CircuitBreaker::with_shared_config(Arc::new(c)),
                |b, c| b.reconfigure(c, now),
            )?;
            update(&mut retry, &config.retry, Retry::new, |r, c| {
                r.reconfigure(c)
            })?;
            update(&mut bulkhead, &config.bulkhead, Bulkhead::new, |b, c| {
                woken = b.reconfigure(c, now)?;
                Ok(())
            })?;
            Ok(())
        })();
        if let Err(e) = result {
            // Components were reconfigured in place only after validation, which cannot fail
            // here; restore what was taken either way.
            self.limiter = limiter;
            self.bulkhead = bulkhead;
            self.breaker = breaker;
            self.retry = retry;
            return Err(e);
        }
        let bulkhead_removed = bulkhead.is_none() && self.config.bulkhead.is_some();
        // A call holding a slot or permit of an instance that goes away must not release it
        // into whatever instance replaces it later.
        let breaker_replaced = (breaker.is_none() && self.config.circuit_breaker.is_some())
            || config.keyed.is_some() != self.config.keyed.is_some();
        for c in self.calls.iter_mut().filter(|c| c.live) {
            if bulkhead_removed {
                c.held &= !HOLDS_BULKHEAD;
            }
            if breaker_replaced {
                c.held &= !HOLDS_BREAKER;
                c.permit = None;
            }
        }
        self.breaker_config = config.circuit_breaker.clone().map(Arc::new);
        match (&config.keyed, self.keyed.as_mut()) {
            (Some(k), Some(map)) => {
                // Every key keeps the state that still fits, like the unkeyed policies.
                map.set_max_keys(k.max_keys as usize, now);
                map.set_idle_expiry(k.idle_expiry.map(|d| d.get()));
                for (_, entry) in map.iter_mut() {
                    entry.breaker = match (entry.breaker.take(), &self.breaker_config) {
                        (Some(mut b), Some(c)) => match b.reconfigure_shared(c.clone(), now) {
                            Ok(()) => Some(b),
                            Err(_) => CircuitBreaker::with_shared_config(c.clone()).ok(),
                        },
                        (None, Some(c)) => CircuitBreaker::with_shared_config(c.clone()).ok(),
                        (_, None) => None,
                    };
                    let limits = if config.store.is_some() {
                        &NO_LIMITS
                    } else {
                        &config.rate_limit
                    };
                    entry.limiter = match (entry.limiter.take(), limits) {
                        (Some(mut l), Some(c)) => match l.reconfigure(c.clone(), now) {
                            Ok(()) => Some(l),
                            Err(_) => RateLimiter::new(c.clone()).ok(),
                        },
                        (None, Some(c)) => RateLimiter::new(c.clone()).ok(),
                        (_, None) => None,
                    };
                }
            }
            (Some(k), None) => self.keyed = Some(new_keyed_map(k, self.rng.next_u64())),
            (None, _) => self.keyed = None,
        }
        // Request ids stay unique across rebuilds (and removals and re-additions): a call
        // still waiting on an old request must never take another call's new one.
        let floor = self
            .shared
            .as_ref()
            .map_or(0, SharedLimiter::next_request_number)
            .max(
                self.shared_breaker
                    .as_ref()
                    .map_or(0, SharedBreaker::next_request_number),
            );
        self.request_floor = self.request_floor.max(floor);
        if let Some(mut shared) = new_shared_limiter {
            if let Some(new) = shared.as_mut() {
                new.number_requests_from(self.request_floor);
                new.use_host_clock(self.store_host_clock);
            }
            self.shared = shared;
        }
        if let Some(mut sb) = new_shared_breaker {
            if let Some(new) = sb.as_mut() {
                new.number_requests_from(self.request_floor);
                new.use_host_clock(self.store_host_clock);
            }
            self.shared_breaker = sb;
        }
        if self.keyed.is_some() || self.shared.is_some() {
            limiter = None;
        }
        if self.keyed.is_some() {
            breaker = None;
        }
        self.limiter = limiter;
        self.bulkhead = bulkhead;
        self.breaker = breaker;
        self.retry = retry;
        self.fallback_on = kinds_mask(&config.fallback.clone().unwrap_or_default().on);
        self.layout = Layout::new(&config);
        if let Some(seed) = config.seed.filter(|s| Some(*s) != self.config.seed) {
            self.rng = Rng::new(seed);
        }
        self.config = config;
        for ticket in woken {
            self.wake(ticket);
        }
        if bulkhead_removed {
            // No bulkhead any more: every queued call may go on.
            let tickets: Vec<u64> = self.parked.keys().copied().collect();
            for t in tickets {
                self.wake(Ticket::from_raw(t));
            }
        }
        Ok(())
    }
    /// Move the policies' queued events (and those of call `i`'s key) into the pipeline's.
    fn drain_policy_events(&mut self, i: usize) {
        let (breaker, limiter) = match self.keyed.as_mut() {
            Some(map) => match self.keys.get(i).and_then(|k| map.get_mut(k.as_deref()?)) {
                Some(entry) => (entry.breaker.as_mut(), entry.limiter.as_mut()),
                None => (None, None),
            },
            None => (self.breaker.as_mut(), self.limiter.as_mut()),
        };
        if let Some(b) = breaker {
            while let Some(e) = b.poll_event() {
                if let (EventKind::StateChanged { from, to }, Some(sb)) =
                    (e.kind, self.shared_breaker.as_mut())
                {
                    sb.observe(from, to);
                }
                self.events.push(e);
            }
        }
        if let Some(sb) = self.shared_breaker.as_mut() {
            while let Some(e) = sb.poll_event() {
                self.events.push(e);
            }
        }
        if let Some(l) = limiter {
            while let Some(e) = l.poll_event() {
                self.events.push(e);
            }
        }
        if let Some(b) = self.bulkhead.as_mut() {
            while let Some(e) = b.poll_event() {
                self.events.push(e);
            }
        }
        if let Some(s) = self.shared.as_mut() {
            while let Some(e) = s.poll_event() {
                self.events.push(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BreakerState;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }

    #[test]
    fn handle_timeout_moves_an_open_breaker_to_half_open_eagerly() {
        let mut p = Pipeline::from_json(
            r#"{"circuitBreaker": {"trip": {"consecutiveFailures": 1}, "openDuration": 100}}"#,
            1,
        )
        .unwrap();
        let c = p.begin(ms(0), None);
        assert!(matches!(p.poll(c, ms(0)).unwrap(), Step::Attempt { .. }));
        p.report(c, Report::failure(true, None), ms(1)).unwrap();
        let _ = p.poll(c, ms(1)).unwrap();
        assert_eq!(p.poll_timeout(), Some(ms(101)));
        while p.poll_event().is_some() {}
        p.handle_timeout(ms(100));
        assert_eq!(
            p.breaker().unwrap().state(),
            BreakerState::Open,
            "not due yet"
        );
        p.handle_timeout(ms(101));
        assert_eq!(p.breaker().unwrap().state(), BreakerState::HalfOpen);
        let e = p.poll_event().expect("the transition is an event");
        assert_eq!(
            e.kind,
            EventKind::StateChanged {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen
            }
        );
        // Time going backwards afterwards changes nothing.
        p.handle_timeout(ms(5));
        assert_eq!(p.breaker().unwrap().state(), BreakerState::HalfOpen);
    }

    #[test]
    fn a_stale_handle_is_an_error_not_another_calls_state() {
        let mut p = Pipeline::from_json("{}", 1).unwrap();
        let a = p.begin(ms(0), None);
        let _ = p.poll(a, ms(0)).unwrap();
        p.report(a, Report::SUCCESS, ms(0)).unwrap();
        assert!(matches!(
            p.poll(a, ms(0)).unwrap(),
            Step::Done { attempts: 1 }
        ));
        let b = p.begin(ms(1), None); // reuses a's slot with a new generation
        assert_eq!(p.poll(a, ms(1)), Err(UsageError::UnknownCall));
        assert_eq!(
            p.report(a, Report::SUCCESS, ms(1)),
            Err(UsageError::UnknownCall)
        );
        assert_eq!(p.cancel(a, ms(1)), Err(UsageError::UnknownCall));
        assert_eq!(CallId::from_raw(b.to_raw()), b);
        assert!(matches!(
            p.poll(b, ms(1)).unwrap(),
            Step::Attempt { attempt: 1, .. }
        ));
        assert_eq!(p.poll(b, ms(1)), Err(UsageError::AttemptInFlight));
    }

    /// Pipelines for the untimed-success equivalence: with the breaker rule that allows it,
    /// a bulkhead queue, server pushback, keyed breakers, and a rate rule that refuses it.
    const UNTIMED_CONFIGS: [&str; 6] = [
        r#"{"circuitBreaker": {"trip": {"consecutiveFailures": 2}, "openDuration": 50, "halfOpen": {"successThreshold": 1}}, "retry": {"maxRetries": 2, "backoff": {"type": "constant", "base": 5, "jitter": "full"}}, "timeout": {"perAttempt": 20}}"#,
        r#"{}"#,
        r#"{"bulkhead": {"maxConcurrent": 1, "maxQueue": 2, "maxWait": 30}, "circuitBreaker": {}, "retry": {"maxRetries": 1, "backoff": {"type": "constant", "base": 3}}}"#,
        r#"{"circuitBreaker": {"trip": {"consecutiveFailures": 3}}, "retry": {"maxRetries": 2, "pushback": "pipeline", "backoff": {"type": "constant", "base": 4, "jitter": "none"}}}"#,
        r#"{"circuitBreaker": {"trip": {"consecutiveFailures": 1}, "openDuration": 20}, "rateLimit": {"rate": "100/s", "burst": 2}, "keyed": {"maxKeys": 2, "idleExpiry": 40}}"#,
        r#"{"circuitBreaker": {"trip": {"failureRate": 0.5, "window": {"calls": 4}}, "openDuration": 30}, "retry": {"maxRetries": 1, "backoff": {"type": "constant", "base": 2}}, "order": ["circuitBreaker", "retry"]}"#,
    ];

    fn seen(p: &mut Pipeline) -> (PipelineStats, Vec<Event>, Vec<CallId>, Option<Instant>) {
        (
            p.stats(),
            std::iter::from_fn(|| p.poll_event()).collect(),
            std::iter::from_fn(|| p.poll_wake()).collect(),
            p.poll_timeout(),
        )
    }

    proptest::proptest! {
        /// A success reported by `try_report_success_untimed` (when it accepts) leaves exactly
        /// what `report` at the attempt's true end leaves: same steps, errors, events (with
        /// their instants), wakes, stats and timeout after every input of a random sequence
        /// of concurrent calls on a clock that never goes backwards.
        #[test]
        fn an_untimed_success_is_indistinguishable_from_a_timed_one(
            config in 0..UNTIMED_CONFIGS.len(),
            ops in proptest::collection::vec((0u8..12, 0usize..4, 0u64..12), 1..150),
        ) {
            let build = || Pipeline::from_json(UNTIMED_CONFIGS[config], 7).unwrap();
            let (mut timed, mut untimed) = (build(), build());
            let mut calls: Vec<CallId> = Vec::new();
            let mut t = 0;
            let mut skipped = 0;
            for (op, pick, dt) in ops {
                t += dt;
                let now = ms(t);
                match op {
                    0..=2 => {
                        let key = ["a", "b", "c", "a"][pick];
                        let c = timed.begin_keyed(key, now, None);
                        proptest::prop_assert_eq!(c, untimed.begin_keyed(key, now, None));
                        calls.push(c);
                    }
                    3..=4 if !calls.is_empty() => {
                        let c = calls[pick % calls.len()];
                        proptest::prop_assert_eq!(timed.poll(c, now), untimed.poll(c, now));
                    }
                    5..=7 if !calls.is_empty() => {
                        let c = calls[pick % calls.len()];
                        let needs = untimed.success_needs_time(c);
                        proptest::prop_assert_eq!(needs, timed.success_needs_time(c));
                        let want = timed.report(c, Report::SUCCESS, now);
                        match untimed.try_report_success_untimed(c) {
                            Ok(true) => {
                                proptest::prop_assert!(!needs);
                                proptest::prop_assert_eq!(want, Ok(()));
                                skipped += 1;
                            }
                            Ok(false) => {
                                proptest::prop_assert!(needs);
                                proptest::prop_assert_eq!(want, untimed.report(c, Report::SUCCESS, now));
                            }
                            Err(e) => proptest::prop_assert_eq!(want, Err(e)),
                        }
                    }
                    8..=9 if !calls.is_empty() => {
                        let c = calls[pick % calls.len()];
                        let report = match pick {
                            0 => Report::TIMEOUT,
                            1 => Report::failure(true, Some(Duration::from_millis(15))),
                            2 => Report { outcome: Outcome::Ignored, retryable: false, retry_after: None },
                            _ => Report::failure(true, None),
                        };
                        proptest::prop_assert_eq!(timed.report(c, report, now), untimed.report(c, report, now));
                    }
                    10 if !calls.is_empty() => {
                        let c = calls.swap_remove(pick % calls.len());
                        proptest::prop_assert_eq!(timed.cancel(c, now), untimed.cancel(c, now));
                    }
                    11 => {
                        timed.handle_timeout(now);
                        untimed.handle_timeout(now);
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(seen(&mut timed), seen(&mut untimed));
            }
            // The rate rule never takes the shortcut.
            if config == 5 {
                proptest::prop_assert_eq!(skipped, 0);
            }
        }
    }

    #[test]
    fn untimed_success_is_taken_only_where_the_instant_cannot_matter() {
        let mut p = Pipeline::from_json(UNTIMED_CONFIGS[0], 1).unwrap();
        let a = p.begin(ms(0), None);
        assert!(p.success_needs_time(a), "not running yet");
        assert_eq!(
            p.try_report_success_untimed(a),
            Err(UsageError::NoAttemptInFlight)
        );
        assert!(matches!(p.poll(a, ms(0)).unwrap(), Step::Attempt { .. }));
        assert!(!p.success_needs_time(a));
        assert_eq!(p.try_report_success_untimed(a), Ok(true));
        assert_eq!(p.poll(a, ms(9)).unwrap(), Step::Done { attempts: 1 });
        assert_eq!(p.stats().succeeded, 1);
        assert!(p.success_needs_time(a), "an ended call");
        // A pending server pushback: poll_timeout compares it with the latest instant.
        let mut p = Pipeline::from_json(UNTIMED_CONFIGS[3], 1).unwrap();
        let b = p.begin(ms(0), None);
        let _ = p.poll(b, ms(0)).unwrap();
        p.report(
            b,
            Report::failure(true, Some(Duration::from_millis(50))),
            ms(1),
        )
        .unwrap();
        let c = p.begin(ms(60), None);
        let _ = p.poll(c, ms(60)).unwrap();
        let _ = p.poll(b, ms(60)).unwrap();
        assert!(!p.success_needs_time(b), "the pushback ended at 51");
        let d = p.begin(ms(60), None);
        let _ = p.poll(d, ms(60)).unwrap();
        p.report(
            d,
            Report::failure(true, Some(Duration::from_millis(50))),
            ms(61),
        )
        .unwrap();
        assert!(p.success_needs_time(b), "pushback until 111");
        assert_eq!(p.try_report_success_untimed(b), Ok(false));
    }

    #[test]
    fn a_deadline_passed_before_the_first_attempt_does_not_count_against_the_breaker() {
        let mut p = Pipeline::from_json(
            r#"{"circuitBreaker": {"trip": {"consecutiveFailures": 1}}}"#,
            1,
        )
        .unwrap();
        let c = p.begin(ms(0), Some(ms(10)));
        let Step::Fail(f) = p.poll(c, ms(10)).unwrap() else {
            panic!("expected a failure")
        };
        assert_eq!((f.kind, f.attempts), (ErrorKind::DeadlineExceeded, 0));
        assert_eq!(
            p.breaker().unwrap().state(),
            BreakerState::Closed,
            "the function never ran"
        );
        assert_eq!(p.stats().attempts, 0);
        let next = p.begin(ms(11), None);
        assert!(matches!(
            p.poll(next, ms(11)).unwrap(),
            Step::Attempt { .. }
        ));
    }

    #[test]
    fn a_key_evicted_between_begin_and_poll_is_re_created_not_skipped() {
        let mut p = Pipeline::from_json(
            r#"{"rateLimit": {"rate": "1/s", "burst": 1}, "keyed": {"maxKeys": 1}}"#,
            1,
        )
        .unwrap();
        let calls: Vec<CallId> = (0..10)
            .map(|n| p.begin_keyed(if n % 2 == 0 { "a" } else { "b" }, ms(0), None))
            .collect();
        let admitted = calls
            .iter()
            .filter(|c| matches!(p.poll(**c, ms(0)).unwrap(), Step::Attempt { .. }))
            .count();
        assert!(admitted <= 2, "one call per key per second, got {admitted}");
    }

    #[test]
    fn a_slot_held_across_removing_and_re_adding_the_bulkhead_is_not_released_into_the_new_one() {
        let with =
            PipelineConfig::from_json(r#"{"bulkhead": {"maxConcurrent": 1, "maxQueue": 0}}"#)
                .unwrap();
        let mut p = Pipeline::new(with.clone(), 1).unwrap();
        let a = p.begin(ms(0), None);
        assert!(matches!(p.poll(a, ms(0)).unwrap(), Step::Attempt { .. }));
        p.reconfigure(PipelineConfig::default(), ms(1)).unwrap();
        p.reconfigure(with, ms(2)).unwrap();
        let b = p.begin(ms(3), None);
        assert!(matches!(p.poll(b, ms(3)).unwrap(), Step::Attempt { .. }));
        p.report(a, Report::SUCCESS, ms(4)).unwrap();
        let _ = p.poll(a, ms(4)).unwrap();
        assert_eq!(
            p.stats().bulkhead.unwrap().in_flight,
            1,
            "b still holds the new bulkhead's only slot"
        );
        let c = p.begin(ms(5), None);
        assert!(matches!(
            p.poll(c, ms(5)).unwrap(),
            Step::Fail(Failure {
                kind: ErrorKind::BulkheadFull,
                ..
            })
        ));
    }

    /// A store reply as the GCRA script gives it: code, store time, wait/retry-after (ns).
    fn script_reply(code: i64, wait_ms: u64) -> StoreReply {
        StoreReply::Values(vec![code, 0, 0, (wait_ms * 1_000_000) as i64, 0, 0, 1, 0])
    }

    fn shared_pipeline(extra: &str) -> Pipeline {
        Pipeline::from_json(
            &format!(
                r#"{{"rateLimit": {{"algorithm": "gcra", "rate": "10/s", "burst": 2, "maxWait": "300ms"}},
                    "store": {{"key": "api"{extra}}}}}"#
            ),
            1,
        )
        .unwrap()
    }

    fn expect_store(p: &mut Pipeline, c: CallId, now: Instant) -> RequestId {
        match p.poll(c, now).unwrap() {
            Step::Store { request, until } => {
                assert!(until > now && until <= now.saturating_add(Duration::from_millis(25)));
                request
            }
            other => panic!("expected a store step, got {other:?}"),
        }
    }

    #[test]
    fn a_shared_limit_asks_the_store_once_per_call_and_obeys_it() {
        let mut p = shared_pipeline("");
        let c = p.begin(ms(0), None);
        let id = expect_store(&mut p, c, ms(0));
        let r = p.store_request(id).unwrap();
        assert_eq!(r.keys, ["tw:{rl:api:}:0"]);
        assert_eq!(r.args[..2], ["1".to_owned(), "300000000".to_owned()]);
        assert!(!r.resend_safe, "a taking request must never be resent");
        // Polling again before the reply hands out the same request (never a second one).
        assert_eq!(expect_store(&mut p, c, ms(1)), id);
        p.report_store(c, script_reply(0, 0), ms(2)).unwrap();
        assert_eq!(
            p.report_store(c, script_reply(0, 0), ms(2)),
            Err(UsageError::NoStoreRequest)
        );
        assert!(matches!(
            p.poll(c, ms(2)).unwrap(),
            Step::Attempt { attempt: 1, .. }
        ));
        p.report(c, Report::SUCCESS, ms(3)).unwrap();
        assert!(matches!(p.poll(c, ms(3)).unwrap(), Step::Done { .. }));

        // A reserved wait sleeps from the reply; a denial fails with the store's retry-after.
        // A reply after the request's timeout (25 ms) counts as a timeout: the fallback
        // (a local limiter, fresh) decides.
        let late = p.begin(ms(4), None);
        expect_store(&mut p, late, ms(4));
        p.report_store(late, script_reply(1, 999), ms(29)).unwrap();
        assert!(matches!(
            p.poll(late, ms(29)).unwrap(),
            Step::Attempt { .. }
        ));
        p.report(late, Report::SUCCESS, ms(29)).unwrap();
        let _ = p.poll(late, ms(29)).unwrap();
        assert_eq!(p.stats().store.unwrap().timeouts, 1);
        let c = p.begin(ms(30), None);
        expect_store(&mut p, c, ms(30));
        p.report_store(c, script_reply(0, 150), ms(32)).unwrap();
        assert_eq!(p.poll(c, ms(32)).unwrap(), Step::Sleep { until: ms(182) });
        assert!(matches!(p.poll(c, ms(182)).unwrap(), Step::Attempt { .. }));
        p.report(c, Report::SUCCESS, ms(183)).unwrap();
        let _ = p.poll(c, ms(183)).unwrap();
        let c = p.begin(ms(200), None);
        expect_store(&mut p, c, ms(200));
        p.report_store(c, script_reply(1, 400), ms(201)).unwrap();
        let Step::Fail(f) = p.poll(c, ms(201)).unwrap() else {
            panic!("a denial fails the call")
        };
        assert_eq!(
            (f.kind, f.retry_after, f.attempts),
            (ErrorKind::RateLimited, Some(Duration::from_millis(400)), 0)
        );
        // The denial is cached until 400 − 300 ms (maxWait) after it was sent: no round trip.
        let c = p.begin(ms(230), None);
        let Step::Fail(f) = p.poll(c, ms(230)).unwrap() else {
            panic!("a cached denial fails the call")
        };
        assert_eq!(f.retry_after, Some(Duration::from_millis(370)));
        let s = p.stats().store.unwrap();
        assert_eq!((s.requests, s.store_allowed, s.store_waited), (4, 1, 1));
        assert_eq!((s.store_denied, s.cache_denied, s.in_flight), (1, 1, 0));
        assert_eq!(p.stats().failed(ErrorKind::RateLimited), 2);
    }

    #[test]
    fn a_store_request_past_its_timeout_counts_as_one_and_the_fallback_decides() {
        let mut p = shared_pipeline(r#", "onUnavailable": "deny""#);
        let c = p.begin(ms(0), None);
        expect_store(&mut p, c, ms(0));
        // The host never reported: at the request's deadline the pipeline stops waiting.
        let Step::Fail(f) = p.poll(c, ms(25)).unwrap() else {
            panic!("deny on unavailability")
        };
        assert_eq!((f.kind, f.retry_after), (ErrorKind::RateLimited, None));
        assert_eq!(p.stats().store.unwrap().timeouts, 1);
    }

    #[test]
    fn a_deadline_narrows_the_reservation_and_cancel_abandons_the_request() {
        let mut p = shared_pipeline("");
        let c = p.begin(ms(0), Some(ms(100)));
        let id = expect_store(&mut p, c, ms(0));
        assert_eq!(p.store_request(id).unwrap().args[1], "99999999");
        // The store could not reserve within the deadline: a deadline failure, not a limit.
        p.report_store(c, script_reply(1, 200), ms(1)).unwrap();
        let Step::Fail(f) = p.poll(c, ms(1)).unwrap() else {
            panic!("deadline")
        };
        assert_eq!(f.kind, ErrorKind::DeadlineExceeded);

        let c = p.begin(ms(300), None);
        let id = expect_store(&mut p, c, ms(300));
        p.cancel(c, ms(301)).unwrap();
        assert!(p.store_request(id).is_none(), "the request is forgotten");
        let s = p.stats();
        assert_eq!((s.cancelled, s.in_flight), (1, 0));
        assert_eq!(s.store.unwrap().in_flight, 0);
    }

    #[test]
    fn reconfigure_replaces_the_shared_limiter_and_waiting_calls_ask_again() {
        let mut p = shared_pipeline("");
        let c = p.begin(ms(0), None);
        let old = expect_store(&mut p, c, ms(0));
        let next = PipelineConfig::from_json(
            r#"{"rateLimit": {"algorithm": "gcra", "rate": "20/s"}, "store": {"key": "api2"}}"#,
        )
        .unwrap();
        p.reconfigure(next, ms(1)).unwrap();
        p.report_store(c, script_reply(0, 0), ms(2)).unwrap();
        // The old limiter's request is unknown to the new one: the call asks again.
        let id = expect_store(&mut p, c, ms(2));
        assert_eq!(p.store_request(id).unwrap().keys, ["tw:{rl:api2:}:0"]);
        // Ids go on after the old limiter's: a reply to the old request can never be taken
        // for another call's new one (found by the C binding's tests).
        assert!(id.get() > old.get(), "{id:?} reuses an id of {old:?}");
        let d = p.begin(ms(2), None);
        let id_d = expect_store(&mut p, d, ms(2));
        assert_ne!(id_d, old);
        // Removing the store brings the local limiter back.
        let local =
            PipelineConfig::from_json(r#"{"rateLimit": {"rate": "1/s", "burst": 1}}"#).unwrap();
        p.reconfigure(local, ms(3)).unwrap();
        p.report_store(c, script_reply(0, 0), ms(4)).unwrap();
        assert!(matches!(p.poll(c, ms(4)).unwrap(), Step::Attempt { .. }));
        assert!(p.stats().store.is_none());
        assert!(p.stats().rate_limit.is_some());
        // Re-adding a store numbers requests after every earlier one.
        let back = PipelineConfig::from_json(
            r#"{"rateLimit": {"algorithm": "gcra", "rate": "20/s"}, "store": {"key": "api"}}"#,
        )
        .unwrap();
        p.reconfigure(back, ms(5)).unwrap();
        let e = p.begin(ms(5), None);
        assert!(expect_store(&mut p, e, ms(5)).get() > id.get());
    }

    #[test]
    fn share_config_errors_name_their_fields() {
        let err = |text: &str| PipelineConfig::from_json(text).unwrap_err().to_string();
        let e = err(r#"{"circuitBreaker": {"share": {"quorum": 0, "flush": 0}}}"#);
        assert!(
            e.contains("circuitBreaker.share.quorum: must be >= 1, got 0"),
            "{e}"
        );
        assert!(
            e.contains("circuitBreaker.share.flush: must be at least 1ms"),
            "{e}"
        );
        assert!(
            e.contains("circuitBreaker.share: needs a store to share through"),
            "{e}"
        );
        let e =
            err(r#"{"circuitBreaker": {"share": {"mode": "aggregate"}}, "store": {"key": "k"}}"#);
        assert!(
            e.contains("circuitBreaker.share.mode: \"aggregate\" needs a failureRate trip rule"),
            "{e}"
        );
        let e = err(r#"{"circuitBreaker": {"share": {}}, "keyed": {}, "store": {"key": "k"}}"#);
        assert!(
            e.contains("circuitBreaker.share: is not available on a keyed pipeline"),
            "{e}"
        );
        // A breaker-only store config is fine; a standalone breaker refuses to share.
        let ok = r#"{"circuitBreaker": {"share": {}}, "store": {"key": "k"}}"#;
        assert!(PipelineConfig::from_json(ok).is_ok());
        let c = BreakerConfig::from_json(r#"{"share": {"mode": "signal"}}"#).unwrap();
        let e = CircuitBreaker::new(c).unwrap_err().to_string();
        assert!(e.contains("share: only a pipeline with a store"), "{e}");
    }

    #[test]
    fn store_config_errors_name_their_fields() {
        let err = |text: &str| PipelineConfig::from_json(text).unwrap_err().to_string();
        let e = err(r#"{"store": {"key": "x"}}"#);
        assert!(
            e.contains("store: needs a rateLimit or a circuitBreaker.share to share"),
            "{e}"
        );
        let e = err(
            r#"{"rateLimit": {"rate": "1/s"}, "store": {"key": "", "timeout": 0, "expectedInstances": 0}}"#,
        );
        assert!(e.contains("rateLimit.algorithm: must be \"gcra\""), "{e}");
        assert!(e.contains("store.key: must not be empty"), "{e}");
        assert!(e.contains("store.timeout: must be > 0"), "{e}");
        assert!(e.contains("store.expectedInstances: must be >= 1"), "{e}");
        let e = err(
            r#"{"rateLimit": {"algorithm": "gcra", "rate": "1/s"}, "store": {"key": "k", "expectedInstances": "many"}}"#,
        );
        assert!(e.contains("store.expectedInstances"), "{e}");
        let e = err(
            r#"{"rateLimit": {"algorithm": "gcra", "rate": "1/s"}, "store": {"key": "k", "onUnavailable": "panic"}}"#,
        );
        assert!(e.contains("store.onUnavailable"), "{e}");
        let e = err(
            r#"{"rateLimit": {"algorithm": "gcra", "rate": "1/s"}, "keyed": {}, "store": {"key": "k", "expectedInstances": "auto"}}"#,
        );
        assert!(
            e.contains("store.expectedInstances: \"auto\" is not available"),
            "{e}"
        );
    }
}

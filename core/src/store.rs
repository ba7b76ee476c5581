//! Sharing a rate limit across instances through an external store (Redis, Valkey).
//!
//! The core stays sans-IO: a shared decision is a *request* the host runs with its own client
//! ([`StoreRequest`]: a script with keys and args, an id, a timeout and whether it may be
//! resent), and the host reports the *reply* ([`StoreReply`]). One round trip per decision.
//!
//! ```text
//! match shared.check(key, now, cost) {
//!     SharedCheck::Decided { decision, source } => use it (source: cache or fallback)
//!     SharedCheck::Send(id) => run shared.request(id) (EVALSHA, EVAL only on NOSCRIPT,
//!                              never resent after a timeout), then
//!                              shared.on_reply(id, reply, now) -> (decision, source)
//! }
//! ```
//!
//! Where the store is slow or down, the host enforces the request's timeout and reports
//! `Timeout` / `Unavailable`; a breaker around the store (3 in a row → open 500 ms, one probe)
//! then stops emitting requests, and `onUnavailable` decides meanwhile: `local` (an in-core
//! limiter at `rate/N`, `burst/N`), `allow` or `deny`. A denial is cached per descriptor until
//! its retry-after (exact: a store TAT only grows), so a flood of refused calls costs no round
//! trips.
//!
//! Store time and host time are different clocks. Replies carry durations relative to the
//! store's `now`, which lies between the host's send and reply instants; the core maps them
//! conservatively: a cached denial ends at `sent + retry_after` (never later than the store
//! would admit) and a reserved admission waits `wait` from the reply (never less than the
//! store asked).

// Without the `store` feature the config types are uninhabited (`store::Absent`): the code
// below still compiles, and the compiler proves it unreachable.
#![cfg_attr(
    not(feature = "store"),
    allow(unreachable_code, unused_variables, unused_mut, dead_code)
)]

use core::fmt;
use core::time::Duration;
use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::breaker::{
    Admission, BreakerConfig, CircuitBreaker, HalfOpenConfig, OpenDuration, Outcome, Permit,
    TripRule,
};
use crate::config::{from_json_str, ConfigDuration};
use crate::error::{ConfigError, Issues, Quoted, UsageError};
use crate::event::{BreakerState, Event, EventKind, EventQueue};
use crate::keyed::SeededSipHasher;
use crate::pipeline::IdMap;
use crate::rate_limit::{
    Algorithm, KeyedRateLimitConfig, KeyedRateLimiter, LimitConfig, RateDecision, RateLimitConfig,
    RateLimiter,
};
use crate::time::{Instant, Monotonic};
use crate::Rate;

/// A script the store runs, embedded at build time with its SHA1 (for `EVALSHA`).
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    /// Its name (`"gcra"`).
    pub name: &'static str,
    /// The Lua source (for `EVAL` after a `NOSCRIPT`, and `SCRIPT LOAD`).
    pub source: &'static str,
    /// The lowercase hex SHA1 of `source`.
    pub sha1: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/scripts.rs"));

/// Every script a host may be asked to run, so it can `SCRIPT LOAD` them at start.
#[must_use]
pub fn scripts() -> &'static [&'static Script] {
    ALL
}

/// Names one store request of one limiter; echoed back with the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl RequestId {
    /// The id as a number (for hosts that keep requests in their own tables).
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// From a number a host got from [`RequestId::get`].
    #[must_use]
    pub const fn from_raw(raw: u64) -> RequestId {
        RequestId(raw)
    }
}

/// What the host must run: `EVALSHA script.sha1 keys.len() keys… args…`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreRequest {
    /// Echo it in [`SharedLimiter::on_reply`].
    pub id: RequestId,
    /// Give up after this long and report [`StoreReply::Timeout`].
    pub timeout: Duration,
    /// Whether the host may send it again after a timeout or a dropped connection. State-
    /// changing requests are not: a resend could count one call twice.
    pub resend_safe: bool,
    /// The script.
    pub script: &'static Script,
    /// Its keys (one hash tag: Redis Cluster never answers CROSSSLOT).
    pub keys: Vec<String>,
    /// Its arguments.
    pub args: Vec<String>,
}

impl StoreRequest {
    /// A request (for hosts and tests that build their own).
    #[must_use]
    pub fn new(
        id: RequestId,
        timeout: Duration,
        resend_safe: bool,
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> StoreRequest {
        StoreRequest {
            id,
            timeout,
            resend_safe,
            script,
            keys,
            args,
        }
    }
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreReply {
    /// The script's reply (an array of integers).
    Values(Vec<i64>),
    /// `NOSCRIPT` even after `EVAL` (a host normally handles it by sending `EVAL` once).
    NoScript,
    /// No reply within the request's timeout.
    Timeout,
    /// No connection, or it dropped.
    Unavailable,
    /// Any other error reply (`CROSSSLOT`, `NOPERM`, `WRONGTYPE`…): a deployment mistake,
    /// not unavailability.
    Failed(String),
}

/// Where a decision came from (events and metrics say it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Source {
    /// The store's script.
    Store,
    /// `onUnavailable` while the store could not answer.
    Fallback,
    /// A denial the store gave earlier for the same descriptor, still in force.
    Cache,
}

impl Source {
    /// `"store"`, `"fallback"` or `"cache"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Store => "store",
            Source::Fallback => "fallback",
            Source::Cache => "cache",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What decides while the store cannot (`store.onUnavailable`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum OnUnavailable {
    /// An in-core limiter at `rate/N`, `burst/N` (default).
    #[default]
    Local,
    /// Admit every call (the limit protects little; availability matters more).
    Allow,
    /// Refuse every call (the limit protects something that must never be exceeded).
    Deny,
}

crate::read::read_unit_enum!(OnUnavailable {
    "local" => Local,
    "allow" => Allow,
    "deny" => Deny,
});

/// `N` for the local fallback: a fixed count, or `"auto"` — the live instances last seen in
/// the store's heartbeat set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Instances {
    /// This many instances share the limit.
    Fixed(u32),
    /// Count them through heartbeats.
    Auto,
}

impl Default for Instances {
    fn default() -> Self {
        Instances::Fixed(1)
    }
}

impl Serialize for Instances {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Instances::Fixed(n) => s.serialize_u32(*n),
            Instances::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(INSTANCES_EXPECTED))? {
            Raw::N(n) => Ok(Instances::Fixed(n)),
            Raw::S(s) => Instances::named(&s).map_err(serde::de::Error::custom),
        }
    }
}

const INSTANCES_EXPECTED: &str = "expected a whole number of instances or \"auto\"";

impl Instances {
    /// `"auto"`, or why another name is not an instance count.
    fn named(name: &str) -> Result<Instances, String> {
        if name == "auto" {
            Ok(Instances::Auto)
        } else {
            Err(format!("{INSTANCES_EXPECTED}, got {}", Quoted(name)))
        }
    }
}

/// `store`: share the pipeline's rate limit through an external store.
///
/// `{"key": "partner-api", "timeout": "25ms", "onUnavailable": "local",
///   "expectedInstances": 4}` — every instance configured with the same `key` (and `prefix`)
/// shares one limit; each limit must use the `gcra` algorithm.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "store", derive(Deserialize))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The shared limit's name in the store.
    pub key: String,
    /// The store key prefix (default `"tw"`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Per-request timeout the host enforces (default 25 ms).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// What decides while the store cannot (default `local`).
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    /// `N` for the local fallback (default 1).
    #[serde(default)]
    pub expected_instances: Instances,
    /// How often this instance refreshes its heartbeat with `"auto"` (default 1 s; an
    /// instance silent for 3 heartbeats no longer counts).
    #[serde(default = "default_heartbeat")]
    pub heartbeat: ConfigDuration,
    /// Cache denials until their retry-after (default true).
    #[serde(default = "default_true")]
    pub cache_denials: bool,
    /// The breaker around the store (default: 3 consecutive failures, open 500 ms, 1 probe).
    #[serde(default = "default_store_breaker")]
    pub breaker: BreakerConfig,
    /// Lease hot keys: with each admission the store hands over up to `size − 1` more units
    /// that pass at that instant, which this instance spends locally for at most `ttl`
    /// (default: none — every admission is a round trip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseConfig>,
    /// Without the `store` feature no store config exists (see [`Absent`]).
    #[cfg(not(feature = "store"))]
    #[serde(skip)]
    absent: Absent,
}

/// The store's types in a build without the `store` feature (the npm package's browser
/// module, where no Redis client runs): a config naming a `store` or a `circuitBreaker.share`
/// is refused, and this uninhabited field makes [`StoreConfig`], `ShareConfig` and every
/// limiter or breaker holding one uninhabited, so the compiler leaves out all the code behind
/// them (the shared limiter, the shared breaker, their requests and replies).
#[cfg(not(feature = "store"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Absent {}

/// The refusal of a `store` or `share` config in a build without the `store` feature.
#[cfg(not(feature = "store"))]
pub(crate) const NOT_IN_THIS_BUILD: &str =
    "is not in this build of tripwire (the npm package's browser module leaves the shared \
     store out: a store client runs on a server; use the Node build)";

/// Tell the compiler, at the top of a method of a type holding a store config, that without
/// the `store` feature the method cannot run (`self` cannot exist), so its body is left out:
/// an uninhabited type behind a reference is not enough for it to see that.
macro_rules! absent {
    ($config:expr) => {
        #[cfg(not(feature = "store"))]
        match $config.absent {}
    };
}
pub(crate) use absent;

#[cfg(not(feature = "store"))]
impl<'de> Deserialize<'de> for StoreConfig {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(NOT_IN_THIS_BUILD))
    }
}

#[cfg(feature = "store")]
impl crate::read::FromTree for StoreConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct StoreConfig",
            StoreConfig {
                key: "key",
                prefix: "prefix" = default_prefix(),
                timeout: "timeout" = default_timeout(),
                on_unavailable: "onUnavailable" = OnUnavailable::default(),
                expected_instances: "expectedInstances" = Instances::default(),
                heartbeat: "heartbeat" = default_heartbeat(),
                cache_denials: "cacheDenials" = default_true(),
                breaker: "breaker" = default_store_breaker(),
                lease: "lease" = None,
            }
        )
    }
}

#[cfg(not(feature = "store"))]
impl crate::read::FromTree for StoreConfig {
    fn read(_: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        Err(crate::read::custom(NOT_IN_THIS_BUILD, at))
    }
}

impl crate::read::FromTree for LeaseConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct LeaseConfig",
            LeaseConfig {
                size: "size",
                ttl: "ttl",
            }
        )
    }
}

impl crate::read::FromTree for Instances {
    /// As the untagged `Raw` below reads it.
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        use crate::tree::Node;
        match node {
            Node::PosInt(n) if n <= u64::from(u32::MAX) => Ok(Instances::Fixed(n as u32)),
            Node::Str(s) => Instances::named(&s).map_err(|e| crate::read::custom(&e, at)),
            _ => Err(crate::read::custom(INSTANCES_EXPECTED, at)),
        }
    }
}

/// `store.lease`: `{"size": 10, "ttl": "50ms"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct LeaseConfig {
    /// Units taken per round trip at most (the admitted call's included), 2 to 10 000.
    pub size: u32,
    /// How long leased units may be spent (1 ms to 1 min); unspent ones are lost, never
    /// returned (a limit may under-admit by `size − 1` per instance per `ttl`, never over-admit).
    pub ttl: ConfigDuration,
}

fn default_prefix() -> String {
    "tw".to_owned()
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_millis(25)
}
fn default_heartbeat() -> ConfigDuration {
    ConfigDuration::from_secs(1)
}
fn default_true() -> bool {
    true
}
fn default_store_breaker() -> BreakerConfig {
    BreakerConfig {
        trip: TripRule::ConsecutiveFailures(3),
        open_duration: OpenDuration::Fixed(ConfigDuration::from_millis(500)),
        half_open: HalfOpenConfig::new(1, 1),
        share: None,
    }
}

/// The longest `τ` (and wait) a shared limit may have: the script's sums must stay exact in
/// Lua's doubles (2^53 ns ≈ 104 days).
const MAX_SHARED_NANOS: u64 = 100 * 24 * 3600 * 1_000_000_000;
/// The most keys and descriptor bytes a request names (a store key stays short).
const MAX_KEY_BYTES: usize = 512;
/// Descriptors whose denial is cached at once (more are simply not cached).
const DENIAL_CACHE: usize = 4096;

impl StoreConfig {
    /// A store config for `key` with the defaults.
    #[cfg(feature = "store")]
    #[must_use]
    pub fn new(key: impl Into<String>) -> StoreConfig {
        StoreConfig {
            key: key.into(),
            prefix: default_prefix(),
            timeout: default_timeout(),
            on_unavailable: OnUnavailable::default(),
            expected_instances: Instances::default(),
            heartbeat: default_heartbeat(),
            cache_denials: true,
            breaker: default_store_breaker(),
            lease: None,
        }
    }

    /// Parse and validate (paths relative to the `store` object).
    pub fn from_json(text: &str) -> Result<StoreConfig, ConfigError> {
        let config = <StoreConfig as crate::read::FromTree>::from_json_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Every issue with a field path relative to `store`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        for (field, value) in [("key", &self.key), ("prefix", &self.prefix)] {
            if value.is_empty() && field == "key" {
                issues.push(field, "must not be empty");
            } else if value.len() > 128 {
                issues.push(
                    field,
                    format!("must be at most 128 bytes, got {}", value.len()),
                );
            }
        }
        let timeout = self.timeout.nanos();
        if timeout == 0 {
            issues.push("timeout", "must be > 0, got 0");
        } else if timeout > 60_000_000_000 {
            issues.push("timeout", "must be at most 1m");
        }
        if self.expected_instances == Instances::Fixed(0) {
            issues.push("expectedInstances", "must be >= 1 or \"auto\", got 0");
        }
        if self.heartbeat.nanos() == 0 {
            issues.push("heartbeat", "must be > 0, got 0");
        } else if self.heartbeat.nanos() > MAX_SHARED_NANOS / 4 {
            issues.push("heartbeat", "must be at most 25 days");
        }
        if let Err(e) = self.breaker.validate() {
            issues.extend("breaker", e);
        }
        if let Some(l) = &self.lease {
            if !(2..=10_000).contains(&l.size) {
                issues.push("lease.size", format!("must be 2 to 10000, got {}", l.size));
            }
            if l.ttl.nanos() < 1_000_000 || l.ttl.nanos() > 60_000_000_000 {
                issues.push("lease.ttl", "must be 1ms to 1m");
            }
        }
        issues.finish(())
    }

    /// Issues a rate limit has when it is shared (paths relative to `rateLimit`).
    pub fn validate_limits(limits: &RateLimitConfig) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        let single = limits.limits.len() == 1;
        for (i, l) in limits.limits.iter().enumerate() {
            let at = |field: &str| {
                if single {
                    field.to_owned()
                } else {
                    format!("[{i}].{field}")
                }
            };
            if l.algorithm != Algorithm::Gcra {
                issues.push(
                    at("algorithm"),
                    format!(
                        "must be \"gcra\" when shared through a store, got {}",
                        Quoted(l.algorithm.as_str())
                    ),
                );
            }
            let tau = u128::from(l.effective_burst()) * u128::from(l.rate.interval_nanos());
            if tau > u128::from(MAX_SHARED_NANOS) {
                issues.push(
                    at("burst"),
                    "refilling a shared burst must take at most 100 days",
                );
            }
            if l.max_wait.nanos() > MAX_SHARED_NANOS {
                issues.push(at("maxWait"), "must be at most 100 days when shared");
            }
        }
        issues.finish(())
    }
}

/// The outcome of [`SharedLimiter::check`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedCheck {
    /// Decided without the store (a cached denial, or the fallback).
    Decided {
        /// The decision.
        decision: RateDecision,
        /// Where it came from.
        source: Source,
    },
    /// Run [`SharedLimiter::request`]`(id)` and report its reply.
    Send(RequestId),
}

/// Counters per source, the store's health, and the fallback's `N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StoreMetrics {
    /// Requests emitted.
    pub requests: u64,
    /// Decisions by the store: admitted now, admitted after a reserved wait, denied.
    pub store_allowed: u64,
    /// See `store_allowed`.
    pub store_waited: u64,
    /// See `store_allowed`.
    pub store_denied: u64,
    /// Denials answered from the cache.
    pub cache_denied: u64,
    /// Admissions spent from a lease (no round trip; their source is `cache`).
    pub lease_allowed: u64,
    /// Decisions by the fallback, admitted and denied.
    pub fallback_allowed: u64,
    /// See `fallback_allowed`.
    pub fallback_denied: u64,
    /// Replies that were timeouts.
    pub timeouts: u64,
    /// Replies that were "unavailable".
    pub unavailable: u64,
    /// Error replies and unreadable replies (deployment mistakes).
    pub errors: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// The store breaker's state (`closed` = the store is used).
    pub store_state: BreakerState,
    /// The fallback's `N` (instances sharing the limit).
    pub instances: u32,
}

#[derive(Clone, Debug)]
struct Pending {
    request: StoreRequest,
    sent: Instant,
    permit: Option<Permit>,
    descriptor: String,
    cost: u64,
    max_wait: u64,
}

/// A store denial still in force: checks of at least `cost` before `until` are denied
/// without a round trip, with a retry-after up to `pass_at` (exact for the same cost, a lower
/// bound for costlier checks).
#[derive(Clone, Copy, Debug)]
struct CachedDenial {
    pass_at: Instant,
    until: Instant,
    cost: u64,
}

#[derive(Debug)]
enum Fallback {
    Single(RateLimiter),
    Keyed(KeyedRateLimiter),
}

/// A rate limit shared by many instances through a store; see the module docs.
#[derive(Debug)]
pub struct SharedLimiter {
    config: StoreConfig,
    limits: RateLimitConfig,
    /// `(T, τ)` per limit, ns.
    params: Box<[(u64, u64)]>,
    max_wait: u64,
    keyed: Option<KeyedRateLimitConfig>,
    fallback: Fallback,
    instances: u32,
    store: CircuitBreaker,
    pending: IdMap<Pending>,
    cache: HashMap<String, CachedDenial, SeededSipHasher>,
    /// Leased units per descriptor, and until when they may be spent.
    leases: HashMap<String, (u64, Instant), SeededSipHasher>,
    next_id: u64,
    member: String,
    next_heartbeat: Instant,
    clock: Monotonic,
    events: EventQueue,
    metrics: StoreMetrics,
    last_error: Option<String>,
    host_clock: bool,
}

impl SharedLimiter {
    /// A shared limiter for `limits` (every one `gcra`). `keyed` gives the fallback one
    /// limiter per descriptor; `seed` names this instance in heartbeats and keys the cache's
    /// hash.
    pub fn new(
        config: StoreConfig,
        limits: RateLimitConfig,
        keyed: Option<(u32, Option<ConfigDuration>)>,
        seed: u64,
    ) -> Result<SharedLimiter, ConfigError> {
        let mut issues = Issues::new();
        if let Err(e) = config.validate() {
            issues.extend("store", e);
        }
        if let Err(e) = limits.validate().and(StoreConfig::validate_limits(&limits)) {
            issues.extend("rateLimit", e);
        }
        issues.finish(())?;
        let params = limits
            .limits
            .iter()
            .map(|l| {
                let t = l.rate.interval_nanos();
                (t, l.effective_burst().saturating_mul(t))
            })
            .collect();
        let max_wait = limits
            .limits
            .iter()
            .map(|l| l.max_wait.nanos())
            .min()
            .unwrap_or(0);
        let keyed = keyed.map(|(max_keys, idle)| {
            KeyedRateLimitConfig::new(limits.clone())
                .with_max_keys(max_keys)
                .with_idle_expiry(idle.map(ConfigDuration::get))
        });
        let instances = match config.expected_instances {
            Instances::Fixed(n) => n,
            Instances::Auto => 1,
        };
        let fallback = build_fallback(&limits, keyed.as_ref(), instances, seed)?;
        Ok(SharedLimiter {
            store: CircuitBreaker::new(config.breaker.clone())?,
            config,
            limits,
            params,
            max_wait,
            keyed,
            fallback,
            instances,
            pending: IdMap::default(),
            cache: HashMap::with_hasher(SeededSipHasher::new(seed)),
            leases: HashMap::with_hasher(SeededSipHasher::new(seed ^ 1)),
            next_id: 1,
            member: format!(
                "{:016x}",
                crate::rng::Rng::new(seed ^ 0x7477_7374_6f72_6521).next_u64()
            ),
            next_heartbeat: Instant::ZERO,
            clock: Monotonic::new(),
            events: EventQueue::new(),
            metrics: StoreMetrics {
                instances,
                ..StoreMetrics::default()
            },
            last_error: None,
            host_clock: false,
        })
    }

    /// Parse, validate and build from `{"rateLimit": …, "store": …, "keyed"?: {"maxKeys",
    /// "idleExpiry"}}` (the same fields as in a pipeline).
    pub fn from_json(text: &str, seed: u64) -> Result<SharedLimiter, ConfigError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Shared {
            rate_limit: RateLimitConfig,
            store: StoreConfig,
            #[serde(default)]
            keyed: Option<crate::pipeline::KeyedConfig>,
        }
        let c: Shared = from_json_str(text)?;
        if let Some(k) = &c.keyed {
            let mut issues = Issues::new();
            if k.max_keys == 0 {
                issues.push("keyed.maxKeys", "must be >= 1, got 0");
            }
            if c.store.expected_instances == Instances::Auto {
                issues.push(
                    "store.expectedInstances",
                    "\"auto\" is not available when keyed (heartbeats are per key)",
                );
            }
            issues.finish(())?;
        }
        let keyed = c.keyed.map(|k| (k.max_keys, k.idle_expiry));
        SharedLimiter::new(c.store, c.rate_limit, keyed, seed)
    }

    /// The shared limiter of a pipeline config (`None` without a `store` and a `rateLimit`),
    /// as the pipeline builds it — for bindings that expose the limiter on its own without
    /// parsing the config twice.
    pub fn for_pipeline(
        config: &crate::pipeline::PipelineConfig,
        seed: u64,
    ) -> Result<Option<SharedLimiter>, ConfigError> {
        config.validate()?;
        let (Some(store), Some(limits)) = (&config.store, &config.rate_limit) else {
            return Ok(None);
        };
        let keyed = config.keyed.as_ref().map(|k| (k.max_keys, k.idle_expiry));
        SharedLimiter::new(store.clone(), limits.clone(), keyed, seed).map(Some)
    }

    /// The store config.
    #[must_use]
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The next request number (ids must stay unique across a `reconfigure` that rebuilds
    /// this: a call still waiting on an old request must never share its id with a new one).
    pub(crate) fn next_request_number(&self) -> u64 {
        self.next_id
    }

    /// Number requests from at least `n` on.
    pub(crate) fn number_requests_from(&mut self, n: u64) {
        self.next_id = self.next_id.max(n);
    }

    /// The smallest `maxWait` of the limits, ns.
    #[must_use]
    pub fn max_wait_nanos(&self) -> u64 {
        self.max_wait
    }

    /// The shared limits.
    #[must_use]
    pub fn limits(&self) -> &RateLimitConfig {
        &self.limits
    }

    /// Decide `cost` for `descriptor` (`""` when not keyed) at `now`. `max_wait` narrows the
    /// limits' own `maxWait` (a call's deadline); a reservation never exceeds it.
    pub fn check(
        &mut self,
        descriptor: &str,
        now: Instant,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> SharedCheck {
        absent!(self.config);
        let now = self.clock.observe(now);
        if let Some(&d) = self.cache.get(descriptor) {
            if now >= d.until {
                self.cache.remove(descriptor);
            } else if cost >= d.cost && !self.never_passes(cost) {
                self.metrics.cache_denied += 1;
                return SharedCheck::Decided {
                    decision: RateDecision::Denied {
                        retry_after: Some(d.pass_at.saturating_duration_since(now)),
                    },
                    source: Source::Cache,
                };
            }
        }
        if cost > 0 {
            match self.leases.get_mut(descriptor) {
                Some((_, until)) if now >= *until => {
                    self.leases.remove(descriptor);
                }
                // A costlier check goes to the store; the lease stays for smaller ones.
                Some((tokens, _)) if *tokens >= cost => {
                    *tokens -= cost;
                    self.metrics.lease_allowed += 1;
                    return SharedCheck::Decided {
                        decision: RateDecision::Allowed,
                        source: Source::Cache,
                    };
                }
                _ => {}
            }
        }
        let permit = match self.store.try_acquire(now) {
            Admission::Admitted(p) => p,
            _ => {
                self.drain_store_events();
                return SharedCheck::Decided {
                    decision: self.fallback(descriptor, now, cost),
                    source: Source::Fallback,
                };
            }
        };
        self.drain_store_events();
        let max_wait = max_wait.map_or(self.max_wait, |w| {
            self.max_wait
                .min(u64::try_from(w.as_nanos()).unwrap_or(u64::MAX))
        });
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let request = self.build_request(id, descriptor, now, cost, max_wait);
        self.pending.insert(
            id.0,
            Pending {
                request,
                sent: now,
                permit: Some(permit),
                descriptor: descriptor.to_owned(),
                cost,
                max_wait,
            },
        );
        self.metrics.requests += 1;
        self.metrics.in_flight = self.pending.len() as u64;
        SharedCheck::Send(id)
    }

    /// Whether `cost` exceeds a limit's burst (the store answers "never" for it).
    fn never_passes(&self, cost: u64) -> bool {
        self.params
            .iter()
            .any(|&(t, tau)| u128::from(cost) * u128::from(t) > u128::from(tau))
    }

    /// The request to run for `id` (until its reply is reported).
    #[must_use]
    pub fn request(&self, id: RequestId) -> Option<&StoreRequest> {
        self.pending.get(&id.0).map(|p| &p.request)
    }

    /// When a request in flight times out at the latest (for a host that does not enforce
    /// timeouts itself: the pipeline reports `Timeout` for it when polled past this).
    #[must_use]
    pub fn request_deadline(&self, id: RequestId) -> Option<Instant> {
        self.pending
            .get(&id.0)
            .map(|p| p.sent.saturating_add(p.request.timeout))
    }

    /// The reply for `id`: the decision and its source. An unknown or already answered id is
    /// a [`UsageError::UnknownRequest`].
    pub fn on_reply(
        &mut self,
        id: RequestId,
        reply: StoreReply,
        now: Instant,
    ) -> Result<(RateDecision, Source), UsageError> {
        absent!(self.config);
        let now = self.clock.observe(now);
        let Some(mut pending) = self.pending.remove(&id.0) else {
            return Err(UsageError::UnknownRequest);
        };
        // A reply after the request's timeout is a timeout, whatever it says: the call must not
        // have waited for it (a host that does not enforce timeouts gets the same answer).
        let reply = if now >= pending.sent.saturating_add(pending.request.timeout) {
            StoreReply::Timeout
        } else {
            reply
        };
        self.metrics.in_flight = self.pending.len() as u64;
        let permit = pending.permit.take();
        let parsed = match &reply {
            StoreReply::Values(v) => Parsed::read(v, self.params.len()),
            _ => None,
        };
        let outcome = match (&reply, &parsed) {
            (StoreReply::Values(_), Some(_)) => Outcome::Success,
            (StoreReply::Timeout, _) => {
                self.metrics.timeouts += 1;
                Outcome::Failure
            }
            (StoreReply::Unavailable, _) => {
                self.metrics.unavailable += 1;
                Outcome::Failure
            }
            (StoreReply::Failed(msg), _) => {
                self.metrics.errors += 1;
                self.last_error = Some(msg.clone());
                Outcome::Ignored
            }
            (StoreReply::NoScript, _) => {
                self.metrics.errors += 1;
                self.last_error = Some("NOSCRIPT after EVAL".to_owned());
                Outcome::Ignored
            }
            (StoreReply::Values(v), None) => {
                self.metrics.errors += 1;
                self.last_error = Some(format!("unreadable script reply {v:?}"));
                Outcome::Ignored
            }
        };
        if let Some(p) = permit {
            self.store.record(p, outcome, now);
        }
        self.drain_store_events();
        let Some(r) = parsed else {
            let decision = self.fallback(&pending.descriptor, now, pending.cost);
            return Ok((decision, Source::Fallback));
        };
        if let Some(n) = r.members.filter(|n| *n > 0) {
            self.set_instances(n);
        }
        let decision = match r.code {
            0 if r.wait == 0 => {
                self.metrics.store_allowed += 1;
                if let (Some(l), Some(extra)) = (self.config.lease, r.leased.filter(|n| *n > 0)) {
                    if self.leases.len() >= DENIAL_CACHE {
                        self.leases.retain(|_, (_, until)| *until > now);
                    }
                    if self.leases.len() < DENIAL_CACHE {
                        let until = now.saturating_add(l.ttl.get());
                        self.leases
                            .insert(pending.descriptor.clone(), (extra, until));
                    }
                }
                RateDecision::Allowed
            }
            0 => {
                self.metrics.store_waited += 1;
                RateDecision::Wait(Duration::from_nanos(r.wait))
            }
            1 => {
                self.metrics.store_denied += 1;
                // Store time ≥ send time, so `sent + retry_after` is never later than the
                // store would admit; until `max_wait` before it, the same check (or a costlier
                // one) could not even reserve.
                let pass_at = pending.sent.saturating_add(Duration::from_nanos(r.wait));
                let until = pass_at.saturating_sub(Duration::from_nanos(pending.max_wait));
                if self.config.cache_denials && until > now {
                    let denial = CachedDenial {
                        pass_at,
                        until,
                        cost: pending.cost,
                    };
                    self.cache_denial(pending.descriptor, denial, now);
                }
                RateDecision::Denied {
                    retry_after: Some(Duration::from_nanos(r.wait)),
                }
            }
            _ => {
                self.metrics.store_denied += 1;
                RateDecision::Denied { retry_after: None }
            }
        };
        Ok((decision, Source::Store))
    }

    /// Forget a request whose caller went away; its reply, if it comes, is an unknown id.
    /// The store may have admitted it: nothing is given back (never resend, never undo).
    pub fn abandon(&mut self, id: RequestId, now: Instant) {
        absent!(self.config);
        let now = self.clock.observe(now);
        if let Some(p) = self.pending.remove(&id.0) {
            if let Some(permit) = p.permit {
                self.store.release(permit, now);
            }
        }
        self.metrics.in_flight = self.pending.len() as u64;
    }

    /// The next queued event (`storeStateChanged` when the store breaker moves).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// Counters and gauges.
    #[must_use]
    pub fn metrics(&self) -> StoreMetrics {
        absent!(self.config);
        StoreMetrics {
            store_state: self.store.state(),
            ..self.metrics
        }
    }

    /// The last error reply (a deployment mistake such as `CROSSSLOT` or `NOPERM`).
    #[must_use]
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// This instance's heartbeat id.
    #[must_use]
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The store breaker's state.
    #[must_use]
    pub fn store_state(&self) -> BreakerState {
        self.store.state()
    }

    fn drain_store_events(&mut self) {
        while let Some(e) = self.store.poll_event() {
            if let EventKind::StateChanged { from, to } = e.kind {
                self.events.push(Event {
                    at: e.at,
                    kind: EventKind::StoreStateChanged { from, to },
                });
            }
        }
    }

    fn fallback(&mut self, descriptor: &str, now: Instant, cost: u64) -> RateDecision {
        absent!(self.config);
        let decision = match self.config.on_unavailable {
            OnUnavailable::Allow => RateDecision::Allowed,
            OnUnavailable::Deny => RateDecision::Denied { retry_after: None },
            OnUnavailable::Local => match &mut self.fallback {
                Fallback::Single(l) => l.check(now, cost),
                Fallback::Keyed(k) => k.check(descriptor, now, cost),
            },
        };
        // The fallback's own events (rejections) would double the pipeline's.
        match &mut self.fallback {
            Fallback::Single(l) => while l.poll_event().is_some() {},
            Fallback::Keyed(k) => while k.poll_event().is_some() {},
        }
        if decision.is_allowed() {
            self.metrics.fallback_allowed += 1;
        } else {
            self.metrics.fallback_denied += 1;
        }
        decision
    }

    fn cache_denial(&mut self, descriptor: String, denial: CachedDenial, now: Instant) {
        if self.cache.len() >= DENIAL_CACHE {
            self.cache.retain(|_, d| d.until > now);
        }
        if self.cache.len() < DENIAL_CACHE {
            self.cache.insert(descriptor, denial);
        }
    }

    fn set_instances(&mut self, n: u32) {
        if self.config.expected_instances != Instances::Auto || n == self.instances {
            return;
        }
        self.instances = n;
        self.metrics.instances = n;
        let (limits, keyed) = (scaled(&self.limits, n), self.keyed.clone());
        match &mut self.fallback {
            Fallback::Single(l) => {
                // Same shape, smaller numbers: reconfigure keeps the levels.
                let _ = l.reconfigure(limits, self.clock.last());
            }
            Fallback::Keyed(k) => {
                if let Some(mut kc) = keyed {
                    kc.limit = limits;
                    let _ = k.reconfigure(kc, self.clock.last());
                }
            }
        }
    }

    fn build_request(
        &mut self,
        id: RequestId,
        descriptor: &str,
        now: Instant,
        cost: u64,
        max_wait: u64,
    ) -> StoreRequest {
        absent!(self.config);
        let n = self.params.len();
        let tag = format!(
            "{}:{{rl:{}:{}}}",
            self.config.prefix,
            self.config.key,
            truncate(descriptor, MAX_KEY_BYTES)
        );
        let mut keys: Vec<String> = (0..n).map(|i| format!("{tag}:{i}")).collect();
        let heartbeat =
            self.config.expected_instances == Instances::Auto && now >= self.next_heartbeat;
        let mut args = Vec::with_capacity(5 + 2 * n);
        args.push(match self.config.lease {
            Some(l) if cost > 0 => format!("{cost}+{}", u64::from(l.size).saturating_sub(cost)),
            _ => cost.to_string(),
        });
        args.push(max_wait.to_string());
        args.push(if self.host_clock {
            now.as_nanos().to_string()
        } else {
            String::new()
        });
        if heartbeat {
            keys.push(format!("{tag}:members"));
            args.push(self.member.clone());
            self.next_heartbeat = now.saturating_add(self.config.heartbeat.get());
        } else {
            args.push(String::new());
        }
        args.push(self.config.heartbeat.nanos().saturating_mul(3).to_string());
        for (t, tau) in self.params.iter() {
            args.push(t.to_string());
            args.push(tau.to_string());
        }
        StoreRequest {
            id,
            timeout: self.config.timeout.get(),
            resend_safe: cost == 0,
            script: &GCRA,
            keys,
            args,
        }
    }

    /// Make the script use the host's `now` instead of the store's clock. Only for
    /// conformance tests that replay vectors through a real store: in production the store's
    /// clock is the one clock of the fleet.
    pub fn use_host_clock(&mut self, on: bool) {
        absent!(self.config);
        self.host_clock = on;
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `rate/N`, `burst/N` (burst rounded up, at least 1).
fn scaled(limits: &RateLimitConfig, n: u32) -> RateLimitConfig {
    let n64 = u64::from(n.max(1));
    RateLimitConfig::all(
        limits
            .limits
            .iter()
            .map(|l| {
                let rate = Rate {
                    limit: l.rate.limit,
                    period_nanos: l.rate.period_nanos.saturating_mul(n64),
                };
                let mut s = LimitConfig::new(rate)
                    .with_algorithm(Algorithm::Gcra)
                    .with_burst(l.effective_burst().div_ceil(n64).max(1))
                    .with_max_wait(l.max_wait.get());
                // A period scaled past 100 years would fail validation: keep the unscaled one.
                if s.validate().is_err() {
                    s = *l;
                }
                s
            })
            .collect(),
    )
}

fn build_fallback(
    limits: &RateLimitConfig,
    keyed: Option<&KeyedRateLimitConfig>,
    n: u32,
    seed: u64,
) -> Result<Fallback, ConfigError> {
    let limits = scaled(limits, n);
    Ok(match keyed {
        Some(k) => {
            let mut k = k.clone();
            k.limit = limits;
            Fallback::Keyed(KeyedRateLimiter::new(k, seed)?)
        }
        None => Fallback::Single(RateLimiter::new(limits)?),
    })
}

/// The script's reply, checked.
struct Parsed {
    code: i64,
    wait: u64,
    members: Option<u32>,
    /// Units leased with an admission (a 9th value, when a lease was asked for).
    leased: Option<u64>,
}

impl Parsed {
    fn read(v: &[i64], limits: usize) -> Option<Parsed> {
        let bad = !(8..=9).contains(&v.len()) || !(0..=2).contains(&v[0]);
        if bad || v[3] < 0 || v[4] < 0 || v[5] < 0 {
            return None;
        }
        if usize::try_from(v[6]).ok()? > limits {
            return None;
        }
        Some(Parsed {
            code: v[0],
            wait: u64::try_from(v[3]).ok()?,
            members: u32::try_from(v[7]).ok(),
            leased: v.get(8).and_then(|n| u64::try_from(*n).ok()),
        })
    }
}

/// Answers store requests in memory exactly as the scripts do on Redis (a port of
/// `scripts/gcra.lua`, checked against it by the conformance vectors): for simulations,
/// tests, and a single process that wants the shared code path without a server. Keys never
/// expire here (an elapsed TAT is the same as none).
#[derive(Debug, Default)]
pub struct MemoryStore {
    tats: HashMap<String, u64>,
    members: HashMap<String, HashMap<String, u64>>,
    breakers: HashMap<String, FleetBreaker>,
}

/// `scripts/breaker.lua`'s state hash and votes, in memory.
#[derive(Debug, Default)]
struct FleetBreaker {
    state: i64,
    generation: i64,
    until: i64,
    prober: String,
    lease: i64,
    epoch: i64,
    votes: HashMap<String, i64>,
    /// Aggregate: (bucket, kind) → count, kind 'c' calls, 'f' failures, 's' slow.
    window: HashMap<(i64, char), i64>,
    /// Aggregate: member → last bucket with failures.
    reporters: HashMap<String, i64>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Run `request` with the store's clock at `now` (unless the request carries its own).
    pub fn run(&mut self, request: &StoreRequest, now: Instant) -> StoreReply {
        let values = if request.script.name == GCRA.name {
            self.gcra(&request.keys, &request.args, now.as_nanos())
        } else if request.script.name == BREAKER.name {
            self.breaker(&request.keys, &request.args, now.as_nanos() / 1_000)
        } else {
            return StoreReply::Failed(format!("unknown script {:?}", request.script.name));
        };
        match values {
            Some(values) => StoreReply::Values(values),
            None => StoreReply::Failed("ERR malformed script arguments".to_owned()),
        }
    }

    fn gcra(&mut self, keys: &[String], args: &[String], clock: u64) -> Option<Vec<i64>> {
        let num = |s: &String| s.parse::<u64>().ok();
        let (cost, lease) = match args.first()?.split_once('+') {
            Some((c, l)) => (c.parse::<u64>().ok()?, Some(l.parse::<u64>().ok()?)),
            None => (num(args.first()?)?, None),
        };
        let reply = |mut v: Vec<i64>, leased: u64| {
            if lease.is_some() {
                v.push(leased as i64);
            }
            Some(v)
        };
        let max_wait = num(args.get(1)?)?;
        let now = if args.get(2)?.is_empty() {
            clock
        } else {
            num(&args[2])?
        };
        let n = args.len().checked_sub(5)? / 2;
        // The script's KEYS: one per limit, plus the heartbeat set when it names a member.
        if keys.len() != n + usize::from(!args[3].is_empty()) {
            return None;
        }
        let params: Vec<(u64, u64)> = (0..n)
            .map(|i| Some((num(&args[5 + 2 * i])?, num(&args[6 + 2 * i])?)))
            .collect::<Option<_>>()?;
        let (s, ns) = ((now / 1_000_000_000) as i64, (now % 1_000_000_000) as i64);
        let mut members = 0;
        if !args[3].is_empty() {
            let ttl_ms = num(&args[4])?.div_ceil(1_000_000);
            let now_ms = now / 1_000_000;
            let set = self.members.entry(keys.get(n)?.clone()).or_default();
            set.insert(args[3].clone(), now_ms);
            // ZREMRANGEBYSCORE -inf (now - ttl): inclusive, and the bound may be negative.
            set.retain(|_, at| i128::from(*at) > i128::from(now_ms) - i128::from(ttl_ms));
            members = set.len() as i64;
        }
        let wide = |x: u64| i128::from(x);
        let (mut at, mut decider, mut never) = (wide(now), 0, 0);
        let mut tats = Vec::with_capacity(n);
        for (i, &(t, tau)) in params.iter().enumerate() {
            if wide(cost) * wide(t) > wide(tau) {
                if never == 0 {
                    never = i + 1;
                }
                tats.push(wide(now));
                continue;
            }
            let stored = self.tats.get(keys.get(i)?).copied().unwrap_or(now);
            let tat = wide(stored).min(wide(now) + wide(tau) + wide(max_wait));
            tats.push(tat);
            let pass = tat.max(wide(now)) + wide(cost) * wide(t) - wide(tau);
            if pass > at {
                (at, decider) = (pass, i + 1);
            }
        }
        let remaining = |tat: i128| {
            let (t, tau) = params[0];
            ((wide(tau) - (tat - wide(now)).max(0)).max(0) / wide(t)) as i64
        };
        let full = |tats: &[i128]| tats.iter().map(|t| t - wide(now)).fold(0, i128::max) as i64;
        if never > 0 {
            return reply(vec![2, s, ns, 0, 0, 0, never as i64, members], 0);
        }
        let wait = at - wide(now);
        if wait > wide(max_wait) {
            let r = remaining(tats[0]);
            let v = vec![
                1,
                s,
                ns,
                wait as i64,
                full(&tats),
                r,
                decider as i64,
                members,
            ];
            return reply(v, 0);
        }
        // A lease: the extra units every limit still passes now, after this admission.
        let mut extra = 0;
        if let Some(l) = lease.filter(|l| *l > 0 && wait == 0 && cost > 0) {
            extra = wide(l);
            for (i, &(t, tau)) in params.iter().enumerate() {
                let after = tats[i].max(at) + wide(cost) * wide(t);
                extra = extra.min((wide(now) + wide(tau) - after).max(0) / wide(t));
            }
        }
        if cost > 0 {
            for (i, &(t, _)) in params.iter().enumerate() {
                tats[i] = tats[i].max(at) + (wide(cost) + extra) * wide(t);
                self.tats
                    .insert(keys[i].clone(), u64::try_from(tats[i]).unwrap_or(u64::MAX));
            }
        }
        let r = remaining(tats[0]);
        let v = vec![
            0,
            s,
            ns,
            wait as i64,
            full(&tats),
            r,
            decider as i64,
            members,
        ];
        reply(v, extra as u64)
    }

    /// A port of `scripts/breaker.lua` (µs of store time).
    fn breaker(&mut self, keys: &[String], args: &[String], clock_us: u64) -> Option<Vec<i64>> {
        // The script's KEYS: state, votes, window (a missing one is a Lua error on Redis).
        if keys.len() != 3 {
            return None;
        }
        let int = |i: usize| args.get(i)?.parse::<i64>().ok();
        let op = args.first()?.as_str();
        let now = if args.get(1)?.is_empty() {
            i64::try_from(clock_us).ok()?
        } else {
            int(1)?
        };
        let member = args.get(2)?.clone();
        let (open_us, quorum, vote_us, lease_us) = (int(3)?, int(4)?, int(5)?, int(6)?);
        let b = self.breakers.entry(keys.first()?.clone()).or_default();
        let stored = b.epoch != 0;
        let mut epoch = if stored { b.epoch } else { int(7)? };
        b.votes.retain(|_, at| *at > now - vote_us);
        if op == "trip" {
            b.votes.insert(member.clone(), now);
        }
        let mut votes = b.votes.len() as i64;
        let (mut changed, mut granted) = (false, 0);
        let (mut st, mut generation, mut until) = (b.state, b.generation, b.until);
        let (mut prober, mut lease) = (b.prober.clone(), b.lease);
        let (mut calls, mut fails, mut slows, mut reporters) = (0, 0, 0, 0);
        if op == "flush" {
            let (width, nb) = (int(13)?, int(14)?);
            let bucket = now.div_euclid(width);
            let oldest = bucket - nb + 1;
            for (i, kind) in [(10, 'c'), (11, 'f'), (12, 's')] {
                let d = int(i)?;
                if d > 0 {
                    *b.window.entry((bucket, kind)).or_default() += d;
                }
            }
            if int(11)? > 0 {
                b.reporters.insert(member.clone(), bucket);
            }
            b.window.retain(|(k, _), _| *k >= oldest);
            b.reporters.retain(|_, k| *k >= oldest);
            for ((_, kind), v) in &b.window {
                match kind {
                    'c' => calls += v,
                    'f' => fails += v,
                    _ => slows += v,
                }
            }
            reporters = b.reporters.len() as i64;
            let rate: f64 = args.get(15)?.parse().ok()?;
            let slow_rate: Option<f64> = args.get(16)?.parse().ok();
            let tripped = fails as f64 >= rate * calls as f64
                || slow_rate.is_some_and(|r| slows as f64 >= r * calls as f64);
            if st == 0 && calls > 0 && calls >= int(17)? && tripped && reporters >= quorum {
                (st, generation, until, changed) = (1, generation + 1, now + open_us, true);
            }
        }
        if op == "trip" && st == 0 && votes >= quorum {
            (st, generation, until, changed) = (1, generation + 1, now + open_us, true);
        } else if op == "probe" {
            if (st == 1 && now >= until) || (st == 2 && now >= lease) {
                (st, prober, lease, granted, changed) = (2, member, now + lease_us, 1, true);
            }
        } else if op == "result" && st == 2 && prober == member && int(8)? == generation {
            if args.get(9)? == "1" {
                (st, generation, changed) = (0, generation + 1, true);
                b.votes.clear();
                votes = 0;
            } else {
                (st, generation, until, changed) = (1, generation + 1, now + open_us, true);
            }
            (prober, lease) = (String::new(), 0);
        }
        if changed {
            (b.state, b.generation, b.until) = (st, generation, until);
            (b.prober, b.lease, b.epoch) = (prober, lease, epoch);
        }
        let remaining = match st {
            1 => (until - now).max(0),
            2 => (lease - now).max(0),
            _ => 0,
        };
        if !stored && !changed {
            epoch = 0;
        }
        Some(vec![
            st,
            generation,
            remaining,
            votes,
            epoch,
            granted,
            now / 1_000_000,
            now % 1_000_000,
            calls,
            fails,
            reporters,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }

    /// Run `l`'s check at `now` through `store` (or report `reply` instead when given).
    fn decide(
        l: &mut SharedLimiter,
        store: &mut MemoryStore,
        now: Instant,
        reply: Option<StoreReply>,
    ) -> (RateDecision, Source) {
        match l.check("", now, 1, None) {
            SharedCheck::Decided { decision, source } => (decision, source),
            SharedCheck::Send(id) => {
                let r = l.request(id).unwrap().clone();
                let reply = reply.unwrap_or_else(|| store.run(&r, now));
                l.on_reply(id, reply, now).unwrap()
            }
        }
    }

    #[test]
    fn auto_instances_divide_the_fallback_by_the_live_heartbeats() {
        let config = r#"{"rateLimit": {"algorithm": "gcra", "rate": "100/s", "burst": 10},
                         "store": {"key": "auto", "expectedInstances": "auto", "heartbeat": "1s"}}"#;
        let mut store = MemoryStore::new();
        let mut a = SharedLimiter::from_json(config, 1).unwrap();
        let mut b = SharedLimiter::from_json(config, 2).unwrap();
        let mut c = SharedLimiter::from_json(config, 3).unwrap();
        assert_ne!(a.member(), b.member());
        for l in [&mut a, &mut b, &mut c] {
            l.use_host_clock(true);
            let _ = decide(l, &mut store, ms(0), None);
        }
        // Three live members: the third instance's first request counted all three.
        assert_eq!(c.metrics().instances, 3);
        // Heartbeats are sent once per `heartbeat`, not on every request.
        let id = match a.check("", ms(10), 1, None) {
            SharedCheck::Send(id) => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            a.request(id).unwrap().keys.len(),
            1,
            "no heartbeat within the second"
        );
        a.abandon(id, ms(10));
        // The store dies: c's fallback admits burst/N = ⌈10/3⌉ = 4 at once, then 100/3 per s.
        let admitted = (0..10)
            .filter(|_| {
                decide(&mut c, &mut store, ms(20), Some(StoreReply::Unavailable))
                    .0
                    .is_allowed()
            })
            .count();
        assert_eq!(admitted, 4);
        // A and B stop beating; after 3 heartbeats only C counts, and its fallback grows back.
        let _ = decide(&mut c, &mut store, ms(5_000), None);
        assert_eq!(c.metrics().instances, 1);
    }

    #[test]
    fn lease_config_errors_name_their_fields() {
        let e = StoreConfig::from_json(r#"{"key": "k", "lease": {"size": 1, "ttl": 0}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lease.size: must be 2 to 10000, got 1"), "{e}");
        assert!(e.contains("lease.ttl: must be 1ms to 1m"), "{e}");
        let e = StoreConfig::from_json(r#"{"key": "k", "lease": {"size": 3}}"#).unwrap_err();
        assert!(e.to_string().contains("lease"), "{e}");
    }

    #[test]
    fn a_lease_never_outlives_its_ttl_nor_serves_a_costlier_check() {
        let config = r#"{"rateLimit": {"algorithm": "gcra", "rate": "10/s", "burst": 5},
                         "store": {"key": "l", "lease": {"size": 4, "ttl": "50ms"}}}"#;
        let mut l = SharedLimiter::from_json(config, 1).unwrap();
        l.use_host_clock(true);
        let mut store = MemoryStore::new();
        let SharedCheck::Send(id) = l.check("", ms(0), 1, None) else {
            panic!("the first check asks the store")
        };
        assert_eq!(l.request(id).unwrap().args[0], "1+3");
        let r = l.request(id).unwrap().clone();
        assert_eq!(
            l.on_reply(id, store.run(&r, ms(0)), ms(0)).unwrap().1,
            Source::Store
        );
        // Three units leased: a check of cost 4 is not served from them.
        assert!(matches!(l.check("", ms(1), 4, None), SharedCheck::Send(_)));
        l.abandon(RequestId::from_raw(2), ms(1));
        assert_eq!(decide(&mut l, &mut store, ms(2), None).1, Source::Cache);
        // After the ttl the remaining units are gone: the store is asked again.
        assert_eq!(decide(&mut l, &mut store, ms(60), None).1, Source::Store);
        assert_eq!(l.metrics().lease_allowed, 1);
    }

    #[test]
    fn a_cached_denial_is_conservative_on_the_host_clock() {
        let config = r#"{"rateLimit": {"algorithm": "gcra", "rate": "10/s", "burst": 1},
                         "store": {"key": "c"}}"#;
        let mut l = SharedLimiter::from_json(config, 1).unwrap();
        let mut store = MemoryStore::new();
        assert!(decide(&mut l, &mut store, ms(0), None).0.is_allowed());
        // Sent at 10 ms, answered at 30 ms (a slow round trip): denied for 90 ms of store time.
        let id = match l.check("", ms(10), 1, None) {
            SharedCheck::Send(id) => id,
            other => panic!("{other:?}"),
        };
        let r = l.request(id).unwrap().clone();
        let reply = store.run(&r, ms(10));
        let (d, _) = l.on_reply(id, reply, ms(30)).unwrap();
        assert_eq!(d.retry_after(), Some(Duration::from_millis(90)));
        // The cache ends at send + 90 ms = 100 ms: never later than the store would admit.
        let (d, source) = decide(&mut l, &mut store, ms(99), None);
        assert_eq!(
            (d.retry_after(), source),
            (Some(Duration::from_millis(1)), Source::Cache)
        );
        let (d, source) = decide(&mut l, &mut store, ms(100), None);
        assert_eq!((d.is_allowed(), source), (true, Source::Store));
    }

    #[test]
    fn unreadable_replies_and_unknown_ids_are_errors_not_panics() {
        let config =
            r#"{"rateLimit": {"algorithm": "gcra", "rate": "10/s"}, "store": {"key": "u"}}"#;
        let mut l = SharedLimiter::from_json(config, 1).unwrap();
        assert_eq!(
            l.on_reply(RequestId::from_raw(99), StoreReply::Timeout, ms(0)),
            Err(UsageError::UnknownRequest)
        );
        for bad in [
            vec![],
            vec![7, 0, 0, 0, 0, 0, 0, 0],
            vec![0, 0, 0, -5, 0, 0, 0, 0],
            vec![0; 10],
        ] {
            let SharedCheck::Send(id) = l.check("", ms(0), 1, None) else {
                panic!("the store is asked")
            };
            let (_, source) = l.on_reply(id, StoreReply::Values(bad), ms(0)).unwrap();
            assert_eq!(source, Source::Fallback);
        }
        assert_eq!(l.metrics().errors, 4);
        assert!(l.last_error().unwrap().contains("unreadable script reply"));
        // Errors do not open the store breaker (they are deployment mistakes).
        assert_eq!(l.store_state(), BreakerState::Closed);
        let e = SharedLimiter::from_json(
            r#"{"rateLimit": {"rate": "1/s"}, "store": {"key": "k", "prefix": 7}}"#,
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("store.prefix"), "{e}");
    }
}

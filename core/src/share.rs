//! A circuit breaker shared by a fleet through a store (`circuitBreaker.share`, SCALE-OUT.md):
//! local breakers, a shared signal, one prober.
//!
//! Each instance keeps its ordinary local breaker: the first line of defence, and the whole
//! breaker whenever the store is away. With `share.mode = "signal"` a local trip is a *vote*;
//! `quorum` live votes open the fleet's breaker, and every instance adopts a shared open at
//! its next sync (every `flush`, jittered, carried by the call that finds it due). When the
//! open period ends, the first instance to ask gets a *lease* and probes; only its result,
//! tagged with the current generation, closes or reopens the fleet — a stale prober cannot
//! close a newer episode, and a dead prober's lease expires. A random *epoch* written with the
//! state tells instances when the store lost it; nobody writes "closed" at start-up.
//!
//! All of it is one script (`scripts/breaker.lua`) on two keys with one hash tag; the cost is
//! one round trip per instance per `flush` plus one per local transition, independent of the
//! request rate. `halfOpen.permittedCalls` then counts per fleet (one prober at a time).

// Without the `store` feature the config types are uninhabited (`store::Absent`): the code
// below still compiles, and the compiler proves it unreachable.
#![cfg_attr(
    not(feature = "store"),
    allow(unreachable_code, unused_variables, unused_mut, dead_code)
)]

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::{
    Admission, BreakerConfig, CircuitBreaker, Outcome, Permit, TripRule, WindowConfig,
};
use crate::config::ConfigDuration;
use crate::error::{ConfigError, Issues, UsageError};
use crate::event::{BreakerState, Event, EventKind, EventQueue};
use crate::pipeline::IdMap;
use crate::rng::Rng;
use crate::store::{absent, RequestId, StoreConfig, StoreReply, StoreRequest, BREAKER};
use crate::time::{Instant, Monotonic};

/// How a breaker shares its state (`circuitBreaker.share.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ShareMode {
    /// Local only.
    #[default]
    Off,
    /// A local trip is a vote; `quorum` live votes open every instance.
    Signal,
    /// Every `flush` each instance adds its outcomes to a fleet-wide time window; the fleet
    /// opens when the breaker's `failureRate` rule fires on the sums *and* at least `quorum`
    /// instances reported failures (one sick instance cannot open the fleet).
    Aggregate,
}

crate::read::read_unit_enum!(ShareMode {
    "off" => Off,
    "signal" => Signal,
    "aggregate" => Aggregate,
});

/// `circuitBreaker.share`: `{"mode": "signal", "quorum": 2, "flush": "1s"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "store", derive(Deserialize))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ShareConfig {
    /// `off`, `signal` (default) or `aggregate`.
    #[serde(default = "default_mode")]
    pub mode: ShareMode,
    /// Live votes (distinct instances) that open the fleet's breaker (default 2).
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// How often an instance syncs with the shared state (default 1 s; jittered ±10 %).
    #[serde(default = "default_flush")]
    pub flush: ConfigDuration,
    /// How long a vote counts (default 30 s).
    #[serde(default = "default_vote_ttl")]
    pub vote_ttl: ConfigDuration,
    /// How long a prober holds the lease before another instance may probe (default 10 s).
    #[serde(default = "default_lease")]
    pub lease: ConfigDuration,
    /// Without the `store` feature no share config exists (see [`crate::store::Absent`]).
    #[cfg(not(feature = "store"))]
    #[serde(skip)]
    absent: crate::store::Absent,
}

#[cfg(not(feature = "store"))]
impl<'de> Deserialize<'de> for ShareConfig {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(crate::store::NOT_IN_THIS_BUILD))
    }
}

#[cfg(feature = "store")]
impl crate::read::FromTree for ShareConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct ShareConfig",
            ShareConfig {
                mode: "mode" = default_mode(),
                quorum: "quorum" = default_quorum(),
                flush: "flush" = default_flush(),
                vote_ttl: "voteTtl" = default_vote_ttl(),
                lease: "lease" = default_lease(),
            }
        )
    }
}

#[cfg(not(feature = "store"))]
impl crate::read::FromTree for ShareConfig {
    fn read(_: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        Err(crate::read::custom(crate::store::NOT_IN_THIS_BUILD, at))
    }
}

fn default_mode() -> ShareMode {
    ShareMode::Signal
}
fn default_quorum() -> u32 {
    2
}
fn default_flush() -> ConfigDuration {
    ConfigDuration::from_secs(1)
}
fn default_vote_ttl() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}
fn default_lease() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

#[cfg(feature = "store")]
impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            mode: default_mode(),
            quorum: default_quorum(),
            flush: default_flush(),
            vote_ttl: default_vote_ttl(),
            lease: default_lease(),
        }
    }
}

/// The longest durations the script handles exactly (µs in Lua doubles; 100 days).
const MAX_SHARE_NANOS: u64 = 100 * 24 * 3600 * 1_000_000_000;

impl ShareConfig {
    /// Every issue with a path relative to `share`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if self.quorum == 0 {
            issues.push("quorum", "must be >= 1, got 0");
        }
        for (field, d) in [
            ("flush", self.flush),
            ("voteTtl", self.vote_ttl),
            ("lease", self.lease),
        ] {
            if d.nanos() < 1_000_000 {
                issues.push(field, "must be at least 1ms");
            } else if d.nanos() > MAX_SHARE_NANOS {
                issues.push(field, "must be at most 100 days");
            }
        }
        issues.finish(())
    }
}

/// The shared breaker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ShareMetrics {
    /// Requests emitted (syncs, votes, probes, results).
    pub requests: u64,
    /// Local trips sent as votes.
    pub votes: u64,
    /// Probe leases this instance got.
    pub probes_granted: u64,
    /// Probes refused because another instance holds the lease or the fleet is still open.
    pub probes_denied: u64,
    /// Times this instance adopted the fleet's open state.
    pub adopted_open: u64,
    /// Times this instance adopted the fleet's recovery (closed).
    pub adopted_closed: u64,
    /// Times the store's epoch changed (it lost the shared state).
    pub epoch_changes: u64,
    /// Replies that were timeouts, unavailable or errors.
    pub failed: u64,
    /// Aggregate: the fleet window's calls, failures and reporting instances, as last read.
    pub fleet_calls: u64,
    /// See `fleet_calls`.
    pub fleet_failures: u64,
    /// See `fleet_calls`.
    pub fleet_reporters: u64,
    /// The fleet's state as last seen.
    pub fleet_state: BreakerState,
}

/// What a call passing the breaker stage should do before its local breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing to send: go on to the local breaker.
    None,
    /// Run this request first.
    Send(RequestId),
    /// Another call of this instance is asking for the probe lease: wait (`circuitOpen`).
    Reject,
}

/// What a call passing the breaker stage should do after a shared-breaker reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go on to the local breaker. `done`: this call asks nothing more — after its probe
    /// (granted, it is the trial; unanswered, the local breaker decides alone), a sync, or a
    /// failed request; only a delivered vote or result leaves it free to probe next, so a
    /// call carries at most three requests.
    Proceed { done: bool },
    /// The fleet is open (or another instance probes): reject as `circuitOpen`.
    Reject(Option<Duration>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Sync,
    Trip,
    Probe,
    Result {
        generation: i64,
        success: bool,
    },
    /// Aggregate: this instance's outcomes since its last flush.
    Flush {
        calls: u64,
        failures: u64,
        slow: u64,
    },
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Sync => "sync",
            Op::Trip => "trip",
            Op::Probe => "probe",
            Op::Result { .. } => "result",
            Op::Flush { .. } => "flush",
        }
    }
}

#[derive(Debug)]
struct Pending {
    request: StoreRequest,
    op: Op,
    sent: Instant,
    permit: Option<Permit>,
}

/// The sans-IO side of a shared breaker; the pipeline owns it next to its local breaker.
#[derive(Debug)]
pub(crate) struct SharedBreaker {
    config: ShareConfig,
    /// Aggregate: the rule's window and thresholds, as script arguments.
    rule: Option<AggregateRule>,
    /// Aggregate: the local breaker's cumulative (calls, failures, slow) at the last flush.
    flushed: (u64, u64, u64),
    open_nanos: u64,
    prefix_tag: String,
    timeout: Duration,
    member: String,
    rng: Rng,
    /// The breaker around the store (timeouts and unavailability open it).
    avail: CircuitBreaker,
    next_sync: Instant,
    pending_vote: bool,
    pending_result: Option<(i64, bool)>,
    /// The generation this instance is probing, while it holds the lease.
    probing: Option<i64>,
    /// The fleet generation whose open this instance adopted (its local open is not its own).
    adopted: Option<i64>,
    /// The next local `closed → open` is an adoption, not a trip (no vote).
    adopting: bool,
    epoch: i64,
    pending: IdMap<Pending>,
    next_id: u64,
    clock: Monotonic,
    events: EventQueue,
    metrics: ShareMetrics,
    host_clock: bool,
    last_error: Option<String>,
}

/// The fleet-wide rule of aggregate mode, from the breaker's `failureRate` rule.
#[derive(Clone, Debug)]
struct AggregateRule {
    bucket_us: u64,
    buckets: u32,
    failure_rate: f64,
    slow_rate: Option<f64>,
    minimum_calls: u32,
}

impl AggregateRule {
    fn of(breaker: &BreakerConfig) -> Option<AggregateRule> {
        match &breaker.trip {
            TripRule::FailureRate {
                failure_rate,
                window: w @ WindowConfig::Time { buckets, .. },
                minimum_calls,
                slow_calls,
            } => Some(AggregateRule {
                bucket_us: w.bucket_nanos()? / 1_000,
                buckets: *buckets,
                failure_rate: *failure_rate,
                slow_rate: slow_calls.as_ref().map(|s| s.rate),
                minimum_calls: *minimum_calls,
            }),
            _ => None,
        }
    }
}

/// Whether `breaker` can share in aggregate mode (a `failureRate` rule over a time window
/// with buckets of at least 1 ms).
pub(crate) fn aggregate_fits(breaker: &BreakerConfig) -> bool {
    AggregateRule::of(breaker).is_some_and(|r| r.bucket_us >= 1_000)
}

/// Shared-breaker request ids carry this bit, so the pipeline can route replies.
pub(crate) const SHARE_ID_BIT: u64 = 1 << 63;

impl SharedBreaker {
    pub(crate) fn new(
        share: &ShareConfig,
        breaker: &BreakerConfig,
        store: &StoreConfig,
        seed: u64,
    ) -> Result<SharedBreaker, ConfigError> {
        let mut rng = Rng::new(seed ^ 0x7368_6172_6564_6362);
        Ok(SharedBreaker {
            rule: (share.mode == ShareMode::Aggregate)
                .then(|| AggregateRule::of(breaker))
                .flatten(),
            flushed: (0, 0, 0),
            config: share.clone(),
            open_nanos: crate::time::duration_nanos(breaker.open_duration.nth(1)),
            prefix_tag: format!("{}:{{cb:{}}}", store.prefix, store.key),
            timeout: store.timeout.get(),
            member: format!("{:016x}", rng.next_u64()),
            avail: CircuitBreaker::new(store.breaker.clone())?,
            next_sync: Instant::ZERO,
            pending_vote: false,
            pending_result: None,
            probing: None,
            adopted: None,
            adopting: false,
            epoch: 0,
            pending: IdMap::default(),
            next_id: 1,
            clock: Monotonic::new(),
            events: EventQueue::new(),
            metrics: ShareMetrics::default(),
            host_clock: false,
            last_error: None,
            rng,
        })
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

    /// Whether this id names one of ours.
    pub(crate) fn owns(id: RequestId) -> bool {
        id.get() & SHARE_ID_BIT != 0
    }

    /// The request a call passing the breaker stage must run first, if any: a pending vote or
    /// result, a probe when the local open period is over, or a due sync.
    pub(crate) fn before_acquire(&mut self, local: &CircuitBreaker, now: Instant) -> Effect {
        absent!(self.config);
        let now = self.clock.observe(now);
        let local_probe_due = local.state() == BreakerState::Open
            && local.poll_timeout().is_some_and(|until| now >= until);
        // One probe request per instance at a time: the other calls would otherwise take the
        // local trial slot the lease is being asked for. (Until that request's deadline only:
        // a host that lost the call must not hold every other call back.)
        let probing = self
            .pending
            .values()
            .any(|p| p.op == Op::Probe && now < p.sent.saturating_add(p.request.timeout));
        if local_probe_due && probing {
            return Effect::Reject;
        }
        let op = if let Some((generation, success)) = self.pending_result {
            Op::Result {
                generation,
                success,
            }
        } else if self.pending_vote {
            Op::Trip
        } else if local_probe_due {
            Op::Probe
        } else if now >= self.next_sync {
            match self.rule {
                Some(_) => {
                    let m = local.metrics();
                    let total = (m.successes + m.failures, m.failures, m.slow_calls);
                    let (c, f, s) = self.flushed;
                    Op::Flush {
                        calls: total.0.saturating_sub(c),
                        failures: total.1.saturating_sub(f),
                        slow: total.2.saturating_sub(s),
                    }
                }
                None => Op::Sync,
            }
        } else {
            return Effect::None;
        };
        // The store is away: the local breaker decides alone (votes wait for its return).
        let permit = match self.avail.try_acquire(now) {
            Admission::Admitted(p) => p,
            _ => {
                self.drain_avail();
                if matches!(op, Op::Sync | Op::Flush { .. }) {
                    self.schedule_sync(now);
                }
                return Effect::None;
            }
        };
        self.drain_avail();
        // Every reply carries the fleet's whole state, so any request is also this period's sync.
        self.schedule_sync(now);
        match op {
            Op::Result { .. } => self.pending_result = None,
            Op::Trip => self.pending_vote = false,
            Op::Sync => {}
            Op::Flush {
                calls,
                failures,
                slow,
            } => {
                // Sent at most once: a flush lost to a timeout is not resent (it may have
                // been counted), so its outcomes are dropped rather than doubled.
                let (c, f, s) = self.flushed;
                self.flushed = (c + calls, f + failures, s + slow);
            }
            Op::Probe => {}
        }
        let id = RequestId::from_raw(SHARE_ID_BIT | self.next_id);
        self.next_id += 1;
        let request = self.build(id, op, now);
        self.pending.insert(
            id.get(),
            Pending {
                request,
                op,
                sent: now,
                permit: Some(permit),
            },
        );
        self.metrics.requests += 1;
        if op == Op::Trip {
            self.metrics.votes += 1;
        }
        Effect::Send(id)
    }

    fn schedule_sync(&mut self, now: Instant) {
        let flush = self.config.flush.nanos();
        let jitter = self.rng.uniform_inclusive(flush / 5);
        self.next_sync = now.saturating_add_nanos(flush - flush / 10 + jitter);
    }

    fn build(&self, id: RequestId, op: Op, now: Instant) -> StoreRequest {
        absent!(self.config);
        let us = |ns: u64| (ns / 1_000).to_string();
        let (generation, success) = match op {
            Op::Result {
                generation,
                success,
            } => (generation.to_string(), if success { "1" } else { "0" }),
            _ => ("0".to_owned(), "0"),
        };
        // A fresh epoch below 2^53, exact in Lua: only written when the state is created.
        let fresh_epoch = ((self.member_hash() >> 11) | 1).to_string();
        StoreRequest::new(
            id,
            self.timeout,
            op == Op::Sync,
            &BREAKER,
            vec![
                format!("{}:state", self.prefix_tag),
                format!("{}:votes", self.prefix_tag),
                format!("{}:window", self.prefix_tag),
            ],
            vec![
                op.name().to_owned(),
                if self.host_clock {
                    us(now.as_nanos())
                } else {
                    String::new()
                },
                self.member.clone(),
                us(self.open_nanos),
                self.config.quorum.to_string(),
                us(self.config.vote_ttl.nanos()),
                us(self.config.lease.nanos()),
                fresh_epoch,
                generation,
                success.to_owned(),
            ]
            .into_iter()
            .chain(self.flush_args(op))
            .collect(),
        )
    }

    /// ARGV[11..18] of a flush (empty for the other ops).
    fn flush_args(&self, op: Op) -> Vec<String> {
        absent!(self.config);
        let (
            Op::Flush {
                calls,
                failures,
                slow,
            },
            Some(rule),
        ) = (op, &self.rule)
        else {
            return Vec::new();
        };
        vec![
            calls.to_string(),
            failures.to_string(),
            slow.to_string(),
            rule.bucket_us.to_string(),
            rule.buckets.to_string(),
            crate::decimal::Float(rule.failure_rate).to_string(),
            rule.slow_rate
                .map_or(String::new(), |r| crate::decimal::Float(r).to_string()),
            rule.minimum_calls.to_string(),
        ]
    }

    fn member_hash(&self) -> u64 {
        u64::from_str_radix(&self.member, 16).unwrap_or(1)
    }

    pub(crate) fn request(&self, id: RequestId) -> Option<&StoreRequest> {
        self.pending.get(&id.get()).map(|p| &p.request)
    }

    pub(crate) fn request_deadline(&self, id: RequestId) -> Option<Instant> {
        self.pending
            .get(&id.get())
            .map(|p| p.sent.saturating_add(p.request.timeout))
    }

    /// For conformance tests: the script uses the host's `now` instead of the store's.
    pub(crate) fn use_host_clock(&mut self, on: bool) {
        self.host_clock = on;
    }

    /// The reply to `id`: adopt the fleet's state into `local`; the verdict for the call.
    pub(crate) fn on_reply(
        &mut self,
        id: RequestId,
        reply: StoreReply,
        local: &mut CircuitBreaker,
        now: Instant,
    ) -> Result<Verdict, UsageError> {
        absent!(self.config);
        let now = self.clock.observe(now);
        let pending = self
            .pending
            .remove(&id.get())
            .ok_or(UsageError::UnknownRequest)?;
        let done = !matches!(pending.op, Op::Trip | Op::Result { .. });
        // A reply after the request's timeout is a timeout, whatever it says.
        let reply = if now >= pending.sent.saturating_add(pending.request.timeout) {
            StoreReply::Timeout
        } else {
            reply
        };
        let values = match &reply {
            StoreReply::Values(v) if v.len() >= 8 && (0..=2).contains(&v[0]) => Some(v.clone()),
            _ => None,
        };
        let outcome = match (&reply, &values) {
            (_, Some(_)) => Outcome::Success,
            (StoreReply::Timeout | StoreReply::Unavailable, _) => Outcome::Failure,
            _ => Outcome::Ignored,
        };
        if let Some(p) = pending.permit {
            self.avail.record(p, outcome, now);
        }
        self.drain_avail();
        let Some(v) = values else {
            self.metrics.failed += 1;
            match &reply {
                StoreReply::Failed(msg) => self.last_error = Some(msg.clone()),
                StoreReply::NoScript => self.last_error = Some("NOSCRIPT after EVAL".to_owned()),
                StoreReply::Values(v) => {
                    self.last_error = Some(format!("unreadable script reply {v:?}"));
                }
                _ => {}
            }
            // Not delivered: a vote or a result is retried by the next call.
            match pending.op {
                Op::Trip => self.pending_vote = true,
                Op::Result {
                    generation,
                    success,
                } => self.pending_result = Some((generation, success)),
                Op::Probe | Op::Sync | Op::Flush { .. } => {}
            }
            return Ok(Verdict::Proceed { done: true });
        };
        let (state, generation, remaining, epoch, granted) = (
            v[0],
            v[1],
            u64::try_from(v[2]).unwrap_or(0),
            v[4],
            v[5] == 1,
        );
        if epoch != 0 && self.epoch != 0 && epoch != self.epoch {
            // The store lost the shared state: what this instance adopted is void.
            self.metrics.epoch_changes += 1;
            self.probing = None;
        }
        if epoch != 0 {
            self.epoch = epoch;
        }
        if let (Op::Flush { .. }, [.., calls, failures, reporters]) = (pending.op, v.as_slice()) {
            self.metrics.fleet_calls = u64::try_from(*calls).unwrap_or(0);
            self.metrics.fleet_failures = u64::try_from(*failures).unwrap_or(0);
            self.metrics.fleet_reporters = u64::try_from(*reporters).unwrap_or(0);
        }
        let remaining = Duration::from_micros(remaining);
        self.metrics.fleet_state = match state {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        };
        if state == 0
            && self.adopted.is_some_and(|g| generation > g)
            && matches!(local.state(), BreakerState::Open | BreakerState::HalfOpen)
        {
            // The fleet recovered: an open this instance only adopted ends too (no probe).
            self.adopted = None;
            self.metrics.adopted_closed += 1;
            local.reset(now);
            return Ok(Verdict::Proceed { done });
        }
        if pending.op == Op::Probe {
            if granted {
                self.metrics.probes_granted += 1;
                self.probing = Some(generation);
                return Ok(Verdict::Proceed { done });
            }
            if state != 0 {
                // Another instance probes (or the fleet is still open): stay open meanwhile.
                self.metrics.probes_denied += 1;
                self.adopt_open(local, generation, now.saturating_add(remaining), now);
                return Ok(Verdict::Reject(Some(remaining).filter(|d| !d.is_zero())));
            }
            // The fleet is closed: this local episode is the instance's own; probe alone.
            return Ok(Verdict::Proceed { done });
        }
        // The fleet is open (or another instance probes) and this instance is closed: adopt.
        if state != 0
            && remaining > Duration::ZERO
            && self.probing.is_none()
            && local.state() == BreakerState::Closed
        {
            self.adopt_open(local, generation, now.saturating_add(remaining), now);
            return Ok(Verdict::Reject(Some(remaining)));
        }
        Ok(Verdict::Proceed { done })
    }

    fn adopt_open(
        &mut self,
        local: &mut CircuitBreaker,
        generation: i64,
        until: Instant,
        now: Instant,
    ) {
        absent!(self.config);
        if local.state() == BreakerState::Closed {
            self.adopting = true;
            self.metrics.adopted_open += 1;
        }
        self.adopted = Some(generation);
        local.open_until_at_least(until, now);
    }

    /// A local transition (from the local breaker's events): a trip is a vote; the end of a
    /// probe this instance holds the lease for is its result.
    pub(crate) fn observe(&mut self, from: BreakerState, to: BreakerState) {
        absent!(self.config);
        match (from, to) {
            (BreakerState::Closed, BreakerState::Open) => {
                // Aggregate mode does not vote: its flushes carry the outcomes themselves.
                if core::mem::take(&mut self.adopting) || self.rule.is_some() {
                    return;
                }
                self.pending_vote = true;
            }
            (BreakerState::HalfOpen, BreakerState::Closed | BreakerState::Open) => {
                if let Some(generation) = self.probing.take() {
                    self.pending_result = Some((generation, to == BreakerState::Closed));
                }
                if to == BreakerState::Closed {
                    self.adopted = None;
                }
            }
            _ => {}
        }
    }

    /// A call waiting for `id` went away.
    pub(crate) fn abandon(&mut self, id: RequestId, now: Instant) {
        absent!(self.config);
        let now = self.clock.observe(now);
        if let Some(p) = self.pending.remove(&id.get()) {
            if let Some(permit) = p.permit {
                self.avail.release(permit, now);
            }
            match p.op {
                Op::Trip => self.pending_vote = true,
                Op::Result {
                    generation,
                    success,
                } => self.pending_result = Some((generation, success)),
                Op::Sync | Op::Probe | Op::Flush { .. } => {}
            }
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        absent!(self.config);
        self.events.pop()
    }

    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub(crate) fn metrics(&self) -> ShareMetrics {
        absent!(self.config);
        self.metrics
    }

    fn drain_avail(&mut self) {
        while let Some(e) = self.avail.poll_event() {
            if let EventKind::StateChanged { from, to } = e.kind {
                self.events.push(Event {
                    at: e.at,
                    kind: EventKind::StoreStateChanged { from, to },
                });
            }
        }
    }
}

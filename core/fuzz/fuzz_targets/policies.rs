//! Arbitrary operation sequences, at arbitrary times (backwards, tiny steps, huge jumps, the
//! end of time), on every policy on its own, with the invariants of
//! `core/tests/properties_*.rs` checked as assertions after every operation:
//!
//! - circuit breaker: an open breaker never admits before its open period ends and rejects with
//!   exactly the time left; the n-th open period lasts `openDuration.nth(n)`; a trial is only
//!   admitted into a free trial slot; no phantom permits in flight; counters add up; snapshots
//!   restore;
//! - rate limiter (every algorithm, and lists): `peek` predicts `check`; waits stay within
//!   `maxWait`; `retryAfter` and waits are exact; over any span the admitted cost stays within
//!   the algorithm's bound (`burst + rate·T` for tokenBucket, GCRA and slidingWindow, a burst
//!   per window touched for fixedWindow);
//! - keyed limiter: never more than `maxKeys` keys, a limited key is never evicted;
//! - bulkhead: step for step equal to a reference model; in-flight never over `maxConcurrent`,
//!   the queue never over `maxQueue`, no slot leaked, FIFO wakes;
//! - retry: every decision within `maxRetries`, the cap, the hint, the deadline and
//!   `maxElapsed`; the budget within `[0, maxTokens]`; counters add up;
//! - health registry: the status follows from the checks, counters add up, due checks get
//!   `now + timeout` deadlines.
#![no_main]

use std::collections::VecDeque;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tripwire_core::breaker::{Admission, BreakerConfig, BreakerSnapshot, CircuitBreaker, Permit};
use tripwire_core::bulkhead::{Bulkhead, BulkheadConfig, Entry, Ticket};
use tripwire_core::health::{CheckConfig, CheckResult, CheckStatus, HealthRegistry, HealthStatus};
use tripwire_core::{
    Algorithm, BackoffKind, BreakerState, BudgetConfig, ConfigDuration, ErrorKind, EventKind,
    FailureInfo, Instant, Jitter, KeyedRateLimitConfig, KeyedRateLimiter, LimitConfig, Rate,
    RateDecision, RateLimitConfig, RateLimiter, Retry, RetryConfig, RetryDecision, Rng,
};

const MS: u64 = 1_000_000;

#[derive(Arbitrary, Debug)]
enum Input {
    Breaker(BreakerCase),
    Limiter(LimiterCase),
    Keyed(KeyedCase),
    Bulkhead(BulkheadCase),
    Retry(RetryCase),
    Health(Vec<(Tick, HealthOp)>),
}

fuzz_target!(|input: Input| {
    match input {
        Input::Breaker(c) => breaker(c),
        Input::Limiter(c) => limiter(c),
        Input::Keyed(c) => keyed(c),
        Input::Bulkhead(c) => bulkhead(c),
        Input::Retry(c) => retry(c),
        Input::Health(ops) => health(ops),
    }
});

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// How the host clock moves before an operation.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Tick {
    Same,
    Nanos(u8),
    Micros(u16),
    Millis(u16),
    Seconds(u16),
    BackMillis(u16),
    BackSeconds(u16),
    /// Anywhere at all.
    Jump(u64),
    /// Close to the end of time.
    NearMax(u16),
    Zero,
}

impl Tick {
    fn apply(self, host: u64) -> u64 {
        match self {
            Tick::Same => host,
            Tick::Nanos(n) => host.saturating_add(u64::from(n)),
            Tick::Micros(n) => host.saturating_add(u64::from(n) * 1_000),
            Tick::Millis(n) => host.saturating_add(u64::from(n) * MS),
            Tick::Seconds(n) => host.saturating_add(u64::from(n) * 1_000 * MS),
            Tick::BackMillis(n) => host.saturating_sub(u64::from(n) * MS),
            Tick::BackSeconds(n) => host.saturating_sub(u64::from(n) * 1_000 * MS),
            Tick::Jump(t) => t,
            Tick::NearMax(n) => u64::MAX - u64::from(n),
            Tick::Zero => 0,
        }
    }
}

/// A duration in a config, in nanoseconds: mostly realistic, sometimes extreme.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Span {
    Millis(u16),
    Seconds(u8),
    Nanos(u32),
    Any(u64),
}

impl Span {
    fn nanos(self) -> u64 {
        match self {
            Span::Millis(n) => u64::from(n) * MS,
            Span::Seconds(n) => u64::from(n) * 1_000 * MS,
            Span::Nanos(n) => u64::from(n),
            // At most 100 years, the longest duration a config accepts.
            Span::Any(n) => n % 3_155_760_000_000_000_000,
        }
    }

    /// As a JSON duration string with a unit, exact to the nanosecond for what the parser
    /// reads back exactly.
    fn json(self) -> String {
        format!("\"{}ns\"", self.nanos())
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
enum TripSpec {
    Consecutive(u8),
    Calls {
        calls: u16,
        minimum: u16,
        rate: u8,
        slow: Option<(u8, Span)>,
    },
    Time {
        duration: Span,
        buckets: u16,
        minimum: u16,
        rate: u8,
        slow: Option<(u8, Span)>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum OpenSpec {
    Fixed(Span),
    Backoff {
        base: Span,
        multiplier_tenths: u8,
        max_factor: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct BreakerSpec {
    trip: TripSpec,
    open: OpenSpec,
    permitted: u8,
    threshold: u8,
}

/// A rate in (0, 1] from a byte.
fn rate(r: u8) -> f64 {
    f64::from(r.max(1)) / 255.0
}

impl BreakerSpec {
    fn json(&self) -> String {
        let slow = |s: Option<(u8, Span)>| match s {
            Some((r, d)) => format!(
                r#", "slowCallRate": {}, "slowCallDuration": {}"#,
                rate(r),
                d.json()
            ),
            None => String::new(),
        };
        let trip = match self.trip {
            TripSpec::Consecutive(n) => format!(r#"{{"consecutiveFailures": {}}}"#, n.max(1)),
            TripSpec::Calls {
                calls,
                minimum,
                rate: r,
                slow: s,
            } => {
                let calls = calls % 300 + 1;
                format!(
                    r#"{{"failureRate": {}, "window": {{"calls": {calls}}}, "minimumCalls": {}{}}}"#,
                    rate(r),
                    minimum % (calls + 1) + 1,
                    slow(s)
                )
            }
            TripSpec::Time {
                duration,
                buckets,
                minimum,
                rate: r,
                slow: s,
            } => format!(
                r#"{{"failureRate": {}, "window": {{"duration": {}, "buckets": {}}}, "minimumCalls": {}{}}}"#,
                rate(r),
                duration.json(),
                buckets % 64 + 1,
                minimum % 40 + 1,
                slow(s)
            ),
        };
        let open = match self.open {
            OpenSpec::Fixed(d) => d.json(),
            OpenSpec::Backoff {
                base,
                multiplier_tenths,
                max_factor,
            } => {
                let base = base.nanos();
                format!(
                    r#"{{"base": "{base}ns", "multiplier": {}, "max": "{}ns"}}"#,
                    1.0 + f64::from(multiplier_tenths) / 10.0,
                    base.saturating_mul(u64::from(max_factor.max(1)))
                        .min(3_155_760_000_000_000_000)
                )
            }
        };
        format!(
            r#"{{"trip": {trip}, "openDuration": {open}, "halfOpen": {{"permittedCalls": {}, "successThreshold": {}}}}}"#,
            self.permitted % 6 + 1,
            self.threshold % 6 + 1
        )
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BreakerOp {
    Acquire,
    Record(u8, u8),
    Release(u8),
    Time(Tick),
    /// The clock to `poll_timeout` − 1, exactly, or + 1.
    ToTimeout(i8),
    ForceOpen,
    Disable,
    Reset,
    HandleTimeout,
    Snapshot,
    Reconfigure(bool),
}

#[derive(Arbitrary, Debug)]
struct BreakerCase {
    config: BreakerSpec,
    other: BreakerSpec,
    ops: Vec<BreakerOp>,
}

fn breaker_outcome(o: u8) -> tripwire_core::breaker::Outcome {
    use tripwire_core::breaker::Outcome;
    [Outcome::Success, Outcome::Failure, Outcome::Ignored][usize::from(o % 3)]
}

fn breaker(case: BreakerCase) {
    let Ok(config) = BreakerConfig::from_json(&case.config.json()) else {
        return;
    };
    let Ok(other) = BreakerConfig::from_json(&case.other.json()) else {
        return;
    };
    let mut b = CircuitBreaker::new(config.clone()).expect("a validated config builds");
    let mut host = 0u64;
    let mut seen = 0u64;
    let mut live: Vec<Permit> = Vec::new();
    let mut n = 1u32; // the model's open streak
    let (mut acquires, mut records) = (0u64, 0u64);
    for op in case.ops {
        let mut restored = false;
        match op {
            BreakerOp::Acquire => {
                acquires += 1;
                let eff = host.max(seen);
                let before = b.state();
                let until = b.poll_timeout();
                let a = b.try_acquire(Instant::from_nanos(host));
                seen = eff;
                match before {
                    BreakerState::Open => {
                        let until = until
                            .expect("an open breaker knows when it ends")
                            .as_nanos();
                        if eff < until {
                            assert_eq!(
                                a,
                                Admission::Rejected {
                                    retry_after: Some(Duration::from_nanos(until - eff))
                                },
                                "open: rejected with exactly the time left"
                            );
                        } else {
                            assert!(
                                a.permit().is_some_and(|p| p.is_trial()),
                                "{a:?} at {eff} past {until}"
                            );
                            assert_eq!(b.state(), BreakerState::HalfOpen);
                        }
                    }
                    BreakerState::ForcedOpen => {
                        assert_eq!(a, Admission::Rejected { retry_after: None });
                    }
                    BreakerState::Closed | BreakerState::Disabled => {
                        assert!(a.permit().is_some_and(|p| !p.is_trial()), "{a:?}");
                    }
                    BreakerState::HalfOpen => {
                        if let Some(p) = a.permit() {
                            assert!(p.is_trial());
                        } else {
                            assert_eq!(a, Admission::Rejected { retry_after: None });
                        }
                    }
                    other => panic!("unknown state {other:?}"),
                }
                if let Some(p) = a.permit() {
                    assert_eq!(p.started().as_nanos(), eff, "permits carry the clamped now");
                    live.push(p);
                    if p.is_trial() {
                        let m = b.metrics();
                        assert!(
                            m.half_open_in_flight
                                <= u64::from(b.config().half_open.permitted_calls),
                            "a trial admitted beyond permittedCalls: {m:?}"
                        );
                    }
                }
            }
            BreakerOp::Record(i, o) => {
                if !live.is_empty() {
                    records += 1;
                    let p = live.swap_remove(usize::from(i) % live.len());
                    b.record(p, breaker_outcome(o), Instant::from_nanos(host));
                    seen = seen.max(host);
                }
            }
            BreakerOp::Release(i) => {
                if !live.is_empty() {
                    let p = live.swap_remove(usize::from(i) % live.len());
                    b.release(p, Instant::from_nanos(host));
                    seen = seen.max(host);
                }
            }
            BreakerOp::Time(t) => host = t.apply(host),
            BreakerOp::ToTimeout(delta) => {
                if let Some(t) = b.poll_timeout() {
                    host = t
                        .as_nanos()
                        .saturating_add_signed(i64::from(delta.clamp(-1, 1)));
                }
            }
            BreakerOp::ForceOpen => {
                b.force_open(Instant::from_nanos(host));
                seen = seen.max(host);
                assert_eq!(b.state(), BreakerState::ForcedOpen);
            }
            BreakerOp::Disable => {
                b.disable(Instant::from_nanos(host));
                seen = seen.max(host);
                assert_eq!(b.state(), BreakerState::Disabled);
            }
            BreakerOp::Reset => {
                b.reset(Instant::from_nanos(host));
                seen = seen.max(host);
                assert_eq!(b.state(), BreakerState::Closed);
                assert_eq!(b.metrics().open_streak, 1);
            }
            BreakerOp::HandleTimeout => {
                let due = b
                    .poll_timeout()
                    .is_some_and(|u| u.as_nanos() <= host.max(seen));
                b.handle_timeout(Instant::from_nanos(host));
                seen = seen.max(host);
                if due {
                    assert_eq!(b.state(), BreakerState::HalfOpen);
                }
            }
            BreakerOp::Snapshot => {
                let now = Instant::from_nanos(host);
                let text = serde_json::to_string(&b.snapshot()).expect("serializes");
                let snapshot: BreakerSnapshot =
                    serde_json::from_str(&text).expect("a snapshot parses back");
                assert_eq!(snapshot, b.snapshot(), "snapshot round trip through {text}");
                let mut fresh = CircuitBreaker::new(b.config().clone()).expect("builds");
                fresh
                    .restore(&snapshot, now)
                    .unwrap_or_else(|e| panic!("own snapshot {text} refused: {e}"));
                assert_eq!(fresh.state(), b.state());
                assert_eq!(fresh.poll_timeout().is_some(), b.poll_timeout().is_some());
                b.restore(&snapshot, now)
                    .unwrap_or_else(|e| panic!("own snapshot {text} refused: {e}"));
                seen = seen.max(host);
                restored = true;
            }
            BreakerOp::Reconfigure(use_other) => {
                let next = if use_other { &other } else { &config };
                b.reconfigure(next.clone(), Instant::from_nanos(host))
                    .expect("a validated config is accepted");
                seen = seen.max(host);
            }
        }
        while let Some(e) = b.poll_event() {
            assert_eq!(e.at.as_nanos(), seen, "events carry the clamped now");
            if restored {
                continue;
            }
            if let EventKind::StateChanged { from, to } = e.kind {
                match to {
                    BreakerState::Closed => n = 1,
                    BreakerState::Open => {
                        if from == BreakerState::HalfOpen {
                            n = n.saturating_add(1);
                        } else {
                            assert_eq!(from, BreakerState::Closed, "open from {from:?}");
                            assert_eq!(n, 1, "a trip from closed opens period 1");
                        }
                        let expected = e.at.saturating_add(b.config().open_duration.nth(n));
                        assert_eq!(b.poll_timeout(), Some(expected), "open period {n}");
                        assert_eq!(b.metrics().open_streak, u64::from(n));
                    }
                    _ => {}
                }
            }
        }
        let m = b.metrics();
        if restored {
            n = u32::try_from(m.open_streak).expect("a u32 streak");
        }
        assert_eq!(m.admitted + m.rejected, acquires);
        assert_eq!(m.successes + m.failures + m.ignored, records);
        assert!(m.window_failures <= m.window_calls && m.window_slow_calls <= m.window_calls);
        // No phantom permits: what the breaker counts in flight, the host holds.
        assert!(
            m.in_flight <= live.len() as u64,
            "{m:?} with {} live",
            live.len()
        );
        assert!(m.half_open_in_flight <= m.in_flight);
        if b.state() != BreakerState::HalfOpen {
            assert_eq!(m.half_open_in_flight, 0);
        }
        if b.state() == BreakerState::Open {
            assert!(b.poll_timeout().is_some());
        }
        if b.is_idle(Instant::from_nanos(host)) {
            assert!(matches!(
                b.state(),
                BreakerState::Closed | BreakerState::Disabled
            ));
            assert_eq!(m.in_flight, 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limiter
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
enum PeriodSpec {
    Millis(u16),
    Seconds(u8),
    Nanos(u32),
    Hours(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum WaitSpec {
    Zero,
    Nanos(u32),
    /// Up to three periods.
    Periods(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct LimitSpec {
    algorithm: u8,
    limit: u16,
    period: PeriodSpec,
    burst: Option<u16>,
    max_wait: WaitSpec,
}

impl LimitSpec {
    fn config(&self) -> Option<LimitConfig> {
        let period = match self.period {
            PeriodSpec::Millis(n) => u64::from(n.max(1)) * MS,
            PeriodSpec::Seconds(n) => u64::from(n.max(1)) * 1_000 * MS,
            PeriodSpec::Nanos(n) => u64::from(n.max(1)),
            PeriodSpec::Hours(n) => u64::from(n.max(1)) * 3_600_000 * MS,
        };
        let algorithm = [
            Algorithm::TokenBucket,
            Algorithm::Gcra,
            Algorithm::FixedWindow,
            Algorithm::SlidingWindow,
        ][usize::from(self.algorithm % 4)];
        let max_wait = match self.max_wait {
            WaitSpec::Zero => 0,
            WaitSpec::Nanos(n) => u64::from(n),
            WaitSpec::Periods(k) => period.saturating_mul(u64::from(k % 4)) / 2,
        };
        let rate = Rate::new(u64::from(self.limit.max(1)), Duration::from_nanos(period))?;
        let mut c = LimitConfig::new(rate)
            .with_algorithm(algorithm)
            .with_max_wait(Duration::from_nanos(max_wait));
        if let Some(b) = self.burst {
            c = c.with_burst(u64::from(b % 64).max(1));
        }
        c.validate().ok()?;
        Some(c)
    }
}

/// Over a span `[t0, t1]` between two admissions, whether `sum` admitted respects the
/// algorithm's bound (the proofs are in `core/tests/properties_ratelimit.rs`).
fn within_bound(c: &LimitConfig, sum: u128, t0: u128, t1: u128) -> bool {
    let (b, l, p, span) = (
        u128::from(c.effective_burst()),
        u128::from(c.rate.limit),
        u128::from(c.rate.period_nanos),
        t1 - t0,
    );
    let w = (b * p).div_ceil(l).max(1);
    match c.algorithm {
        Algorithm::TokenBucket | Algorithm::Gcra => sum * p <= b * p + l * span,
        Algorithm::SlidingWindow => sum * w <= b * w + b * span,
        Algorithm::FixedWindow => {
            let windows = t1 / w - t0 / w + 1;
            sum <= b * windows && sum * p <= 2 * b * p + l * span
        }
        _ => true,
    }
}

#[derive(Arbitrary, Debug)]
struct LimiterCase {
    first: LimitSpec,
    more: Vec<LimitSpec>,
    ops: Vec<(Tick, u8)>,
}

/// The end of time is not a place to measure rates: an instant cannot pass `u64::MAX`, so
/// the bounds are checked only for admissions that run well before it.
const FAR: u128 = (u64::MAX / 2) as u128;

fn limiter(case: LimiterCase) {
    let mut limits = Vec::new();
    for spec in std::iter::once(&case.first).chain(case.more.iter().take(2)) {
        match spec.config() {
            Some(c) => limits.push(c),
            None => return,
        }
    }
    let config = if limits.len() == 1 {
        RateLimitConfig::single(limits[0])
    } else {
        RateLimitConfig::all(limits.clone())
    };
    let Ok(mut l) = RateLimiter::new(config) else {
        return;
    };
    let min_burst = limits
        .iter()
        .map(LimitConfig::effective_burst)
        .min()
        .unwrap();
    let max_wait = limits.iter().map(|c| c.max_wait.nanos()).min().unwrap();
    let mut host = 0u64;
    let mut seen = 0u64;
    let mut admitted: Vec<(u128, u64)> = Vec::new();
    let mut checks = 0u64;
    for &(tick, cost) in case.ops.iter().take(200) {
        host = tick.apply(host);
        let now = Instant::from_nanos(host);
        let eff = host.max(seen);
        seen = eff;
        let cost = u64::from(cost % 24);
        let before = l.clone();
        let peeked = l.peek(now, cost);
        let d = l.check(now, cost);
        checks += 1;
        assert_eq!(peeked, d, "peek predicts check");
        let exact_after = match d {
            RateDecision::Allowed => {
                admitted.push((u128::from(eff), cost));
                None
            }
            RateDecision::Wait(w) => {
                let w = u64::try_from(w.as_nanos()).expect("a wait fits in u64");
                assert!(w > 0, "a zero wait is Allowed");
                assert!(w <= max_wait, "wait {w} over maxWait {max_wait}");
                admitted.push((u128::from(eff) + u128::from(w), cost));
                Some(w)
            }
            RateDecision::Denied { retry_after: None } => {
                assert!(
                    cost > min_burst || eff > u64::MAX / 2,
                    "never-passes for cost {cost} <= burst {min_burst} at {eff}"
                );
                None
            }
            RateDecision::Denied {
                retry_after: Some(r),
            } => {
                assert!(
                    cost <= min_burst,
                    "cost {cost} > burst {min_burst} may pass"
                );
                Some(u64::try_from(r.as_nanos()).expect("fits"))
            }
            _ => unreachable!(),
        };
        if let Some(w) = exact_after {
            if let Some(at) = eff.checked_add(w) {
                if u128::from(at) < FAR {
                    assert_ne!(
                        before.clone().check(Instant::from_nanos(at - 1), cost),
                        RateDecision::Allowed,
                        "passes before the wait/retryAfter {w} ends"
                    );
                    assert_eq!(
                        before.clone().check(Instant::from_nanos(at), cost),
                        RateDecision::Allowed,
                        "does not pass when the wait/retryAfter {w} ends"
                    );
                }
            }
        }
        let m = l.metrics();
        assert_eq!(m.allowed + m.waited + m.denied, checks);
        while let Some(e) = l.poll_event() {
            assert_eq!(e.at.as_nanos(), seen);
        }
    }
    // Every run of admissions (ordered by when they run) within every limit's bound.
    admitted.retain(|a| a.0 < FAR);
    admitted.sort_by_key(|a| a.0);
    for c in &limits {
        for i in 0..admitted.len() {
            let mut sum = 0u128;
            for j in i..admitted.len() {
                sum += u128::from(admitted[j].1);
                assert!(
                    within_bound(c, sum, admitted[i].0, admitted[j].0),
                    "{c:?}: {sum} admitted in [{}, {}]",
                    admitted[i].0,
                    admitted[j].0
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keyed rate limiter
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
enum KeyedOp {
    Check { key: u8, cost: u8, tick: Tick },
    Sweep(Tick),
    Reconfigure { max_keys: u8, expiry: Option<u16> },
}

#[derive(Arbitrary, Debug)]
struct KeyedCase {
    limit: LimitSpec,
    max_keys: u8,
    expiry: Option<u16>,
    ops: Vec<KeyedOp>,
}

const KEYS: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];

fn keyed(case: KeyedCase) {
    let Some(limit) = case.limit.config() else {
        return;
    };
    let keyed_config = |max_keys: u8, expiry: Option<u16>| {
        KeyedRateLimitConfig::new(RateLimitConfig::single(limit))
            .with_max_keys(u32::from(max_keys % 8) + 1)
            .with_idle_expiry(expiry.map(|ms| Duration::from_millis(u64::from(ms) + 1)))
    };
    let mut k = KeyedRateLimiter::new(keyed_config(case.max_keys, case.expiry), 3)
        .expect("a validated config builds");
    let mut host = 0u64;
    let mut checks = 0u64;
    for op in case.ops {
        let now = Instant::from_nanos(host);
        let busy_before: Vec<&str> = KEYS
            .iter()
            .copied()
            .filter(|key| k.contains(key) && !k.is_idle(key, now))
            .collect();
        let keys_before = k.keys();
        match op {
            KeyedOp::Check { key, cost, tick } => {
                host = tick.apply(host);
                let busy_before: Vec<&str> = KEYS
                    .iter()
                    .copied()
                    .filter(|key| k.contains(key) && !k.is_idle(key, Instant::from_nanos(host)))
                    .collect();
                let _ = k.check(
                    KEYS[usize::from(key) % KEYS.len()],
                    Instant::from_nanos(host),
                    u64::from(cost % 6),
                );
                checks += 1;
                for key in busy_before {
                    assert!(k.contains(key), "limited key {key} was evicted");
                }
            }
            KeyedOp::Sweep(tick) => {
                host = tick.apply(host);
                let busy_before: Vec<&str> = KEYS
                    .iter()
                    .copied()
                    .filter(|key| k.contains(key) && !k.is_idle(key, Instant::from_nanos(host)))
                    .collect();
                let _ = k.sweep(Instant::from_nanos(host));
                for key in busy_before {
                    assert!(k.contains(key), "limited key {key} was swept");
                }
            }
            KeyedOp::Reconfigure { max_keys, expiry } => {
                k.reconfigure(keyed_config(max_keys, expiry), now)
                    .expect("a validated config is accepted");
                for key in &busy_before {
                    assert!(k.contains(key), "limited key {key} dropped by reconfigure");
                }
            }
        }
        let max = k.config().max_keys as usize;
        assert!(
            k.keys() <= max || k.keys() <= keys_before,
            "{} keys > maxKeys {max}",
            k.keys()
        );
        let m = k.metrics();
        assert_eq!(m.keys, k.keys() as u64);
        assert_eq!(m.allowed + m.waited + m.denied, checks);
        assert!(m.table_full <= m.denied);
        while k.poll_event().is_some() {}
    }
}

// ---------------------------------------------------------------------------------------------
// Bulkhead (the model of core/tests/properties_bulkhead.rs)
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BulkheadOp {
    /// A call arrives; the deadline is an offset in ms from the host's (unclamped) time.
    Enter(Option<i16>),
    Release,
    Cancel {
        pick: u8,
        timed_out: bool,
    },
    Expire,
    Reconfigure {
        max_concurrent: u8,
        max_queue: u8,
        max_wait: Option<u16>,
    },
}

#[derive(Arbitrary, Debug)]
struct BulkheadCase {
    max_concurrent: u8,
    max_queue: u8,
    max_wait: Option<u16>,
    reconfigure: bool,
    ops: Vec<(Tick, BulkheadOp)>,
}

struct Model {
    max_concurrent: u32,
    max_queue: u32,
    max_wait: Option<u64>,
    clock: u64,
    holders: u32,
    queue: VecDeque<(u64, Option<u64>)>,
    next_ticket: u64,
    events: Vec<EventKind>,
    entry_timeouts: u64,
}

fn timeout_event() -> EventKind {
    EventKind::Rejected {
        reason: ErrorKind::QueueTimeout,
        retry_after: None,
    }
}

/// A waiter's wait has run out. `u64::MAX` is "no limit" (documented): it never runs out.
fn expired(until: Option<u64>, now: u64) -> bool {
    until.is_some_and(|u| u <= now && u != u64::MAX)
}

/// A newcomer whose `until` has already come is refused (`until <= now`, documented).
fn expired_on_entry(until: Option<u64>, now: u64) -> bool {
    until.is_some_and(|u| u <= now)
}

impl Model {
    fn enter(&mut self, deadline: Option<u64>) -> Entry {
        let now = self.clock;
        if self.holders < self.max_concurrent {
            self.holders += 1;
            return Entry::Admitted;
        }
        if self.queue.len() >= self.max_queue as usize {
            let before = self.queue.len();
            self.queue.retain(|&(_, u)| !expired(u, now));
            for _ in self.queue.len()..before {
                self.events.push(timeout_event());
            }
        }
        let may_wait = self.max_queue > 0 && self.max_wait != Some(0);
        if !may_wait || self.queue.len() >= self.max_queue as usize {
            self.events.push(EventKind::Rejected {
                reason: ErrorKind::BulkheadFull,
                retry_after: None,
            });
            return Entry::Rejected {
                reason: ErrorKind::BulkheadFull,
            };
        }
        let until = match (self.max_wait.map(|w| now.saturating_add(w)), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if expired_on_entry(until, now) {
            self.entry_timeouts += 1;
            self.events.push(timeout_event());
            return Entry::Rejected {
                reason: ErrorKind::QueueTimeout,
            };
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queue.push_back((ticket, until));
        self.events.push(EventKind::Queued { ticket });
        Entry::Queued {
            ticket: Ticket::from_raw(ticket),
            until: until.map(Instant::from_nanos),
        }
    }

    fn wake_next(&mut self) -> Option<u64> {
        while self.holders < self.max_concurrent {
            let (ticket, until) = self.queue.pop_front()?;
            if expired(until, self.clock) {
                self.events.push(timeout_event());
                continue;
            }
            self.holders += 1;
            self.events.push(EventKind::Woken { ticket });
            return Some(ticket);
        }
        None
    }
}

fn bulkhead_config(max_concurrent: u8, max_queue: u8, max_wait: Option<u16>) -> BulkheadConfig {
    BulkheadConfig::new(
        u32::from(max_concurrent % 4) + 1,
        u32::from(max_queue % 6),
        max_wait.map(|w| ConfigDuration::from_millis(u64::from(w % 200))),
    )
}

fn bulkhead(case: BulkheadCase) {
    let config = bulkhead_config(case.max_concurrent, case.max_queue, case.max_wait);
    let mut b = Bulkhead::new(config.clone()).expect("a valid config");
    let mut m = Model {
        max_concurrent: config.max_concurrent,
        max_queue: config.max_queue,
        max_wait: config.max_wait.map(ConfigDuration::nanos),
        clock: 0,
        holders: 0,
        queue: VecDeque::new(),
        next_ticket: 1,
        events: Vec::new(),
        entry_timeouts: 0,
    };
    let strict = !case.reconfigure;
    let mut host = 0u64;
    let mut issued: Vec<Ticket> = Vec::new();
    let mut last_woken = 0u64;
    let (mut releases, mut unmatched) = (0u64, 0u64);
    for (i, (tick, op)) in case.ops.into_iter().enumerate() {
        host = tick.apply(host);
        if strict && matches!(op, BulkheadOp::Reconfigure { .. }) {
            continue; // never reaches the bulkhead, so its clock must not move either
        }
        let now = Instant::from_nanos(host);
        m.clock = m.clock.max(host);
        let (in_flight_before, queued_before) = (b.in_flight(), b.queued());
        let mut woken_now: Vec<u64> = Vec::new();
        match op {
            BulkheadOp::Enter(deadline) => {
                let deadline = deadline
                    .map(|d| host.saturating_add_signed(i64::from(d).saturating_mul(MS as i64)));
                let got = b.try_enter(now, deadline.map(Instant::from_nanos));
                let want = m.enter(deadline);
                assert_eq!(got, want, "step {i}: enter");
                if let Entry::Queued { ticket, until } = got {
                    assert!(until.is_none_or(|u| u > Instant::from_nanos(m.clock)));
                    issued.push(ticket);
                }
            }
            BulkheadOp::Release => {
                let got = b.release(now);
                let want = if m.holders == 0 {
                    unmatched += 1;
                    None
                } else {
                    releases += 1;
                    m.holders -= 1;
                    m.wake_next()
                };
                assert_eq!(got.map(Ticket::get), want, "step {i}: release");
                woken_now.extend(got.map(Ticket::get));
            }
            BulkheadOp::Cancel { pick, timed_out } => {
                let ticket = issued
                    .get(usize::from(pick) % issued.len().max(1))
                    .copied()
                    .unwrap_or(Ticket::from_raw(0));
                let got = b.cancel(ticket, now, timed_out);
                let index = m.queue.iter().position(|&(t, _)| t == ticket.get());
                if let Some(index) = index {
                    m.queue.remove(index);
                    if timed_out {
                        m.events.push(timeout_event());
                    }
                }
                assert_eq!(got, index.is_some(), "step {i}: cancel");
                assert!(!b.is_waiting(ticket));
            }
            BulkheadOp::Expire => {
                let mut got = Vec::new();
                while let Some(t) = b.poll_expired(now) {
                    got.push(t.get());
                    assert!(got.len() <= 64, "poll_expired never ends");
                }
                let clock = m.clock;
                let want: Vec<u64> = m
                    .queue
                    .iter()
                    .filter(|&&(_, u)| expired(u, clock))
                    .map(|&(t, _)| t)
                    .collect();
                m.queue.retain(|&(_, u)| !expired(u, clock));
                m.events.extend(want.iter().map(|_| timeout_event()));
                assert_eq!(got, want, "step {i}: expired waiters, oldest first");
            }
            BulkheadOp::Reconfigure {
                max_concurrent,
                max_queue,
                max_wait,
            } => {
                let config = bulkhead_config(max_concurrent, max_queue, max_wait);
                let got = b.reconfigure(config.clone(), now).expect("a valid config");
                m.max_concurrent = config.max_concurrent;
                m.max_queue = config.max_queue;
                m.max_wait = config.max_wait.map(ConfigDuration::nanos);
                let mut want = Vec::new();
                while let Some(t) = m.wake_next() {
                    want.push(t);
                }
                let got: Vec<u64> = got.into_iter().map(Ticket::get).collect();
                assert_eq!(got, want, "step {i}: reconfigure wakes");
                woken_now.extend(got);
            }
        }
        for t in woken_now {
            assert!(t > last_woken, "step {i}: woke {t} after {last_woken}");
            last_woken = t;
        }
        let metrics = b.metrics();
        assert_eq!(b.in_flight(), m.holders, "step {i}: in-flight");
        assert_eq!(metrics.admitted - releases, u64::from(b.in_flight()));
        assert_eq!(metrics.unmatched_releases, unmatched);
        let cfg = b.config();
        if strict {
            assert!(
                b.in_flight() <= cfg.max_concurrent,
                "step {i}: over maxConcurrent"
            );
            assert!(b.queued() <= cfg.max_queue, "step {i}: over maxQueue");
        }
        assert!(b.in_flight() <= cfg.max_concurrent || b.in_flight() <= in_flight_before);
        assert!(b.queued() <= cfg.max_queue || b.queued() <= queued_before);
        assert!(
            b.queued() == 0 || b.in_flight() >= cfg.max_concurrent,
            "step {i}: a waiter beside a free slot"
        );
        assert_eq!(b.queued() as usize, m.queue.len());
        assert!(m
            .queue
            .iter()
            .all(|&(t, _)| b.is_waiting(Ticket::from_raw(t))));
        let next = m
            .queue
            .iter()
            .filter_map(|&(_, u)| u)
            // `Instant::MAX` is "no limit" (documented): the end of time never fires.
            .filter(|&u| u != u64::MAX)
            .min()
            .map(Instant::from_nanos);
        assert_eq!(b.poll_timeout(), next, "step {i}: poll_timeout");
        let waiting_timeouts = metrics.queue_timeouts - m.entry_timeouts;
        assert_eq!(
            metrics.queued,
            metrics.woken + metrics.cancelled + waiting_timeouts + metrics.queue_depth,
            "step {i}: queued calls conserved"
        );
        let events: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
        assert!(events.iter().all(|e| e.at == Instant::from_nanos(m.clock)));
        let kinds: Vec<EventKind> = events.into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, std::mem::take(&mut m.events), "step {i}: events");
    }
}

// ---------------------------------------------------------------------------------------------
// Retry
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
struct RetrySpec {
    max_retries: u8,
    kind: u8,
    base: Span,
    multiplier_tenths: u16,
    max_factor: u8,
    jitter: u8,
    max_elapsed: Option<Span>,
    budget: Option<(u8, u16)>,
}

impl RetrySpec {
    fn config(&self) -> RetryConfig {
        let mut c = RetryConfig::default();
        c.max_retries = u32::from(self.max_retries % 8);
        c.backoff.kind = [
            BackoffKind::Constant,
            BackoffKind::Linear,
            BackoffKind::Exponential,
        ][usize::from(self.kind % 3)];
        let base = self.base.nanos();
        c.backoff.base = ConfigDuration(Duration::from_nanos(base));
        c.backoff.multiplier = 1.0 + f64::from(self.multiplier_tenths) / 10.0;
        c.backoff.max = ConfigDuration(Duration::from_nanos(
            base.saturating_mul(u64::from(self.max_factor.max(1)))
                .min(3_155_760_000_000_000_000),
        ));
        c.backoff.jitter = [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
            Jitter::Proportional,
        ][usize::from(self.jitter % 5)];
        c.max_elapsed = self
            .max_elapsed
            .map(|s| ConfigDuration(Duration::from_nanos(s.nanos().max(1))));
        c.budget = self.budget.map(|(max_tokens, ratio_milli)| {
            let max_tokens = u32::from(max_tokens % 20) + 1;
            let mut b = BudgetConfig::default();
            b.max_tokens = max_tokens;
            b.token_ratio = f64::from(u32::from(ratio_milli).clamp(1, max_tokens * 1000)) / 1000.0;
            b
        });
        c
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum RetryOp {
    Begin(Tick),
    Attempt(u8),
    Success(u8),
    Failure {
        call: u8,
        tick: Tick,
        retryable: bool,
        hint: Option<Span>,
        deadline: Option<i32>,
    },
    Reconfigure,
}

#[derive(Arbitrary, Debug)]
struct RetryCase {
    config: RetrySpec,
    other: RetrySpec,
    seed: u64,
    ops: Vec<RetryOp>,
}

fn retry(case: RetryCase) {
    let config = case.config.config();
    if config.validate().is_err() {
        return;
    }
    let mut retry = Retry::new(config).expect("a validated config builds");
    let mut rng = Rng::new(case.seed);
    let mut calls = Vec::new();
    let mut host = 0u64;
    let mut latest = Instant::ZERO;
    for op in case.ops {
        match op {
            RetryOp::Begin(tick) => {
                host = tick.apply(host);
                let s = retry.start(Instant::from_nanos(host));
                assert_eq!(s.started_at(), Instant::from_nanos(host).max(latest));
                calls.push(s);
            }
            RetryOp::Attempt(i) => {
                if let Some(s) = calls.get_mut(usize::from(i)) {
                    let before = s.attempts();
                    assert_eq!(retry.begin_attempt(s), before.saturating_add(1));
                }
            }
            RetryOp::Success(i) => {
                if let Some(s) = calls.get(usize::from(i)) {
                    retry.on_success(s);
                }
            }
            RetryOp::Failure {
                call,
                tick,
                retryable,
                hint,
                deadline,
            } => {
                host = tick.apply(host);
                let Some(s) = calls.get_mut(usize::from(call)) else {
                    continue;
                };
                let config = retry.config().clone();
                let clamped = Instant::from_nanos(host).max(s.started_at()).max(latest);
                latest = clamped;
                let hint = hint.map(Span::nanos);
                let failure = FailureInfo {
                    retryable,
                    retry_after: hint.map(Duration::from_nanos),
                };
                let deadline = deadline.map(|d| {
                    Instant::from_nanos(
                        host.saturating_add_signed(i64::from(d).saturating_mul(1_000)),
                    )
                });
                let decision =
                    retry.on_failure(s, failure, Instant::from_nanos(host), deadline, &mut rng);
                if let RetryDecision::Retry { attempt, delay } = decision {
                    let delay = u64::try_from(delay.as_nanos()).expect("fits");
                    let cap = config.backoff.max.nanos();
                    assert!(retryable, "a non-retryable failure retried");
                    assert_eq!(attempt, s.attempts().max(1).saturating_add(1));
                    assert!(s.attempts().max(1) <= config.max_retries, "over maxRetries");
                    assert!(
                        delay <= cap.max(hint.unwrap_or(0)),
                        "delay {delay} over the cap"
                    );
                    assert!(delay >= hint.unwrap_or(0), "delay {delay} under the hint");
                    let resume = clamped.saturating_add_nanos(delay);
                    if let Some(d) = deadline {
                        assert!(resume < d, "a retry resuming at or past the deadline");
                    }
                    if let Some(limit) = config.max_elapsed {
                        assert!(resume.nanos_since(s.started_at()) <= limit.nanos());
                    }
                }
            }
            RetryOp::Reconfigure => {
                let next = case.other.config();
                if next.validate().is_ok() {
                    retry
                        .reconfigure(next)
                        .expect("a validated config is accepted");
                }
            }
        }
        match retry.config().budget {
            Some(b) => {
                let t = retry.budget_tokens().expect("a budget has tokens");
                let max = f64::from(b.max_tokens);
                assert!((0.0..=max).contains(&t), "tokens {t} outside [0, {max}]");
            }
            None => assert_eq!(retry.budget_tokens(), None),
        }
        let m = retry.metrics();
        let gave_up = m.gave_up_exhausted
            + m.gave_up_not_retryable
            + m.gave_up_budget_exhausted
            + m.gave_up_deadline_exceeded;
        assert_eq!(m.retries + gave_up, m.failures);
        assert!(m.successes_after_retry <= m.successes);
    }
}

// ---------------------------------------------------------------------------------------------
// Health registry
// ---------------------------------------------------------------------------------------------

const NAMES: [&str; 3] = ["a", "b", "c"];
const STATES: [BreakerState; 5] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
    BreakerState::ForcedOpen,
    BreakerState::Disabled,
];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum HealthOp {
    Register {
        name: u8,
        timeout: Span,
        interval: Span,
        fail: u8,
        succ: u8,
        critical: bool,
    },
    Unregister(u8),
    Due,
    DueAll,
    Report {
        name: u8,
        ok: bool,
        latency: Span,
        error: bool,
    },
    Expire,
    Breaker {
        name: u8,
        state: u8,
    },
    RemoveBreaker(u8),
}

fn health(ops: Vec<(Tick, HealthOp)>) {
    let mut reg = HealthRegistry::new();
    let mut host = 0u64;
    let mut high = 0u64;
    for (tick, op) in ops {
        host = tick.apply(host);
        let now = Instant::from_nanos(host);
        let was_running: Vec<bool> = NAMES
            .iter()
            .map(|n| reg.id(n).is_some_and(|id| reg.is_running(id)))
            .collect();
        match op {
            HealthOp::Register {
                name,
                timeout,
                interval,
                fail,
                succ,
                critical,
            } => {
                let name = NAMES[usize::from(name) % 3];
                let cfg = CheckConfig::default()
                    .with_timeout(Duration::from_nanos(timeout.nanos().max(1)))
                    .with_interval(Duration::from_nanos(interval.nanos().max(1)))
                    .with_failure_threshold(u32::from(fail % 4) + 1)
                    .with_success_threshold(u32::from(succ % 4) + 1)
                    .with_critical(critical);
                let existed = reg.id(name).is_some();
                assert_eq!(reg.register(name, cfg).is_err(), existed);
                let id = reg.id(name).expect("registered");
                if !existed {
                    assert_eq!(reg.check_status(id), Some(CheckStatus::Pending));
                }
            }
            HealthOp::Unregister(name) => {
                let name = NAMES[usize::from(name) % 3];
                let existed = reg.id(name).is_some();
                assert_eq!(reg.unregister(name), existed);
                assert!(reg.id(name).is_none());
            }
            HealthOp::Due | HealthOp::DueAll => {
                let all = matches!(op, HealthOp::DueAll);
                let due = if all { reg.due_all(now) } else { reg.due(now) };
                high = high.max(host);
                let mut last: Option<&str> = None;
                for d in &due {
                    let name = reg.name(d.id).expect("a due check exists");
                    assert!(last.is_none_or(|l| l < name), "name order");
                    last = Some(name);
                    let timeout = reg.config(d.id).expect("exists").timeout.nanos();
                    assert_eq!(d.deadline.as_nanos(), high.saturating_add(timeout));
                    assert!(reg.is_running(d.id));
                }
                if all {
                    for id in reg.ids().collect::<Vec<_>>() {
                        assert!(reg.is_running(id));
                    }
                } else if let Some(t) = reg.poll_timeout() {
                    // Nothing is left due or overdue, unless the end of time is reached.
                    assert!(t.as_nanos() > high || high == u64::MAX, "{t:?} <= {high}");
                }
            }
            HealthOp::Report {
                name,
                ok,
                latency,
                error,
            } => {
                let index = usize::from(name) % 3;
                let Some(id) = reg.id(NAMES[index]) else {
                    continue;
                };
                let before = reg.metrics();
                let result = CheckResult {
                    ok,
                    latency: Duration::from_nanos(latency.nanos()),
                    error: error.then_some("boom"),
                };
                reg.report(id, result, now).expect("a registered check");
                high = high.max(host);
                assert!(!reg.is_running(id));
                let after = reg.metrics();
                if was_running[index] {
                    assert_eq!(
                        after.successes + after.failures,
                        before.successes + before.failures + 1
                    );
                } else {
                    assert_eq!(after.ignored_reports, before.ignored_reports + 1);
                }
            }
            HealthOp::Expire => {
                reg.expire(now);
                high = high.max(host);
            }
            HealthOp::Breaker { name, state } => reg.set_breaker(
                NAMES[usize::from(name) % 2],
                STATES[usize::from(state) % STATES.len()],
            ),
            HealthOp::RemoveBreaker(name) => {
                let _ = reg.remove_breaker(NAMES[usize::from(name) % 2]);
            }
        }
        let report = reg.report_json("t");
        assert_eq!(report["status"].as_str(), Some(reg.status().as_str()));
        assert_eq!(overall_from_report(&report), reg.status().as_str());
        assert_eq!(
            reg.status().http_status() == 503,
            reg.status() == HealthStatus::Unhealthy
        );
        let m = reg.metrics();
        assert_eq!(m.checks as usize, reg.len());
        assert_eq!(m.pending + m.healthy + m.unhealthy, m.checks);
        assert!(m.runs >= m.successes + m.failures + m.running);
        if reg.poll_timeout().is_none() {
            assert!(reg.is_empty());
        }
        while reg.poll_event().is_some() {}
    }
}

/// The overall rule, recomputed from the report alone.
fn overall_from_report(report: &serde_json::Value) -> &'static str {
    let mut status = "healthy";
    for check in report["checks"].as_object().expect("checks").values() {
        if check["status"] != "healthy" {
            if check["critical"] == true {
                return "unhealthy";
            }
            status = "degraded";
        }
    }
    let open = report["breakers"]
        .as_object()
        .expect("breakers")
        .values()
        .any(|b| {
            matches!(
                b["state"].as_str(),
                Some("open" | "halfOpen" | "forcedOpen")
            )
        });
    if open {
        status = "degraded";
    }
    status
}

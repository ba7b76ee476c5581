//! Arbitrary interleavings of `begin`, `begin_keyed`, `poll`, `report`, `cancel`,
//! `reconfigure` and `handle_timeout` over up to 64 concurrent calls, at arbitrary times, on a
//! pipeline built from a small arbitrary choice of configs (every policy optional, four
//! orders, keyed or not).
//!
//! Invariants, after every operation:
//! - every call ends exactly once: after `Done`, `Fail` or `cancel` its handle is unknown, and
//!   a live handle is never unknown;
//! - `poll` says `AttemptInFlight` exactly while an attempt runs, `report` is accepted exactly
//!   then; attempts count up; an attempt never starts at or after its deadline; a sleep or a
//!   park always ends in the future; `Done` reports the last attempt's number;
//! - the stats add up: `calls == succeeded + Σfailed + cancelled + in_flight`, `attempts` is
//!   the number of `Attempt` steps handed out;
//! - the bulkhead never holds more than `maxConcurrent` (nor queues more than `maxQueue`)
//!   except while draining after a reconfiguration lowered them; slots and queue places are
//!   only ever held by live calls; a keyed pipeline never holds more than `maxKeys` keys;
//! - a refused reconfiguration leaves the config in force;
//! - wakes name live parked calls; events never come from the future.
//!
//! Then every call left is driven to its end (successes, time moving to the next wake-up),
//! and nothing may leak: no call in flight, no bulkhead slot or queue place, no breaker permit.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tripwire_core::pipeline::{CallId, Outcome, Pipeline, PipelineConfig, Report, Step};
use tripwire_core::{ErrorKind, Instant, UsageError};

const MS: u64 = 1_000_000;
const MAX_CALLS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
struct LimitSpec {
    algorithm: u8,
    per_second: u8,
    burst: u8,
    max_wait_ms: u8,
}

impl LimitSpec {
    fn json(&self) -> String {
        let algorithm = ["tokenBucket", "gcra", "fixedWindow", "slidingWindow"]
            [usize::from(self.algorithm % 4)];
        format!(
            r#"{{"algorithm": "{algorithm}", "rate": "{}/s", "burst": {}, "maxWait": {}}}"#,
            u32::from(self.per_second % 200) + 1,
            self.burst % 8 + 1,
            self.max_wait_ms % 60
        )
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BreakerSpec {
    Consecutive {
        n: u8,
        open_ms: u8,
    },
    Calls {
        calls: u8,
        minimum: u8,
        open_ms: u8,
    },
    Time {
        seconds: u8,
        buckets: u8,
        open_ms: u8,
    },
    Backoff {
        n: u8,
        base_ms: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct ConfigSpec {
    rate_limit: Option<(LimitSpec, Option<LimitSpec>)>,
    bulkhead: Option<(u8, u8, Option<u8>)>,
    breaker: Option<(BreakerSpec, u8, u8)>,
    retry: Option<(u8, u8, u8, bool, bool, Option<u8>)>,
    timeout: Option<(Option<u8>, Option<u16>)>,
    order: u8,
    keyed: Option<(u8, Option<u8>)>,
    fallback: Option<u16>,
}

const KINDS: [&str; 9] = [
    "circuitOpen",
    "bulkheadFull",
    "queueTimeout",
    "rateLimited",
    "timeout",
    "retriesExhausted",
    "budgetExhausted",
    "deadlineExceeded",
    "failure",
];

impl ConfigSpec {
    fn json(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some((first, second)) = self.rate_limit {
            parts.push(match second {
                None => format!(r#""rateLimit": {}"#, first.json()),
                Some(second) => format!(r#""rateLimit": [{}, {}]"#, first.json(), second.json()),
            });
        }
        if let Some((max_concurrent, max_queue, max_wait)) = self.bulkhead {
            let wait = max_wait.map_or(String::new(), |w| format!(r#", "maxWait": {}"#, w % 120));
            parts.push(format!(
                r#""bulkhead": {{"maxConcurrent": {}, "maxQueue": {}{wait}}}"#,
                max_concurrent % 4 + 1,
                max_queue % 6
            ));
        }
        if let Some((spec, permitted, threshold)) = self.breaker {
            let (trip, open) = match spec {
                BreakerSpec::Consecutive { n, open_ms } => (
                    format!(r#"{{"consecutiveFailures": {}}}"#, n % 3 + 1),
                    format!("{}", u32::from(open_ms) + 1),
                ),
                BreakerSpec::Calls {
                    calls,
                    minimum,
                    open_ms,
                } => {
                    let calls = calls % 10 + 1;
                    (
                        format!(
                            r#"{{"failureRate": 0.5, "window": {{"calls": {calls}}}, "minimumCalls": {}, "slowCallRate": 0.8, "slowCallDuration": 20}}"#,
                            minimum % calls + 1
                        ),
                        format!("{}", u32::from(open_ms) + 1),
                    )
                }
                BreakerSpec::Time {
                    seconds,
                    buckets,
                    open_ms,
                } => (
                    format!(
                        r#"{{"failureRate": 0.4, "window": {{"duration": "{}s", "buckets": {}}}, "minimumCalls": 2}}"#,
                        seconds % 5 + 1,
                        buckets % 7 + 1
                    ),
                    format!("{}", u32::from(open_ms) + 1),
                ),
                BreakerSpec::Backoff { n, base_ms } => (
                    format!(r#"{{"consecutiveFailures": {}}}"#, n % 3 + 1),
                    format!(
                        r#"{{"base": {}, "multiplier": 2, "max": {}}}"#,
                        u32::from(base_ms) + 1,
                        (u32::from(base_ms) + 1) * 8
                    ),
                ),
            };
            parts.push(format!(
                r#""circuitBreaker": {{"trip": {trip}, "openDuration": {open}, "halfOpen": {{"permittedCalls": {}, "successThreshold": {}}}}}"#,
                permitted % 3 + 1,
                threshold % 3 + 1
            ));
        }
        if let Some((max_retries, base_ms, jitter, budget, pushback, max_elapsed)) = self.retry {
            let jitter =
                ["none", "full", "equal", "decorrelated", "proportional"][usize::from(jitter % 5)];
            let kind = ["constant", "linear", "exponential"][usize::from(base_ms % 3)];
            let base = u32::from(base_ms % 20) + 1;
            let mut retry = format!(
                r#""retry": {{"maxRetries": {}, "backoff": {{"type": "{kind}", "base": {base}, "max": {}, "jitter": "{jitter}"}}"#,
                max_retries % 4,
                base * 4
            );
            if budget {
                retry.push_str(r#", "budget": {"maxTokens": 4, "tokenRatio": 0.5}"#);
            }
            if pushback {
                retry.push_str(r#", "pushback": "pipeline""#);
            }
            if let Some(e) = max_elapsed {
                retry.push_str(&format!(r#", "maxElapsed": {}"#, u32::from(e) + 1));
            }
            retry.push('}');
            parts.push(retry);
        }
        if let Some((per_attempt, overall)) = self.timeout {
            let per_attempt =
                per_attempt.map_or("null".to_owned(), |p| (u32::from(p) + 1).to_string());
            let overall = overall.map_or(String::new(), |o| {
                format!(r#", "overall": {}"#, o % 600 + 1)
            });
            parts.push(format!(
                r#""timeout": {{"perAttempt": {per_attempt}{overall}}}"#
            ));
        }
        let order = match self.order % 4 {
            0 => None,
            1 => Some(
                r#"["fallback", "retry", "rateLimit", "bulkhead", "circuitBreaker", "timeout"]"#,
            ),
            2 => Some(r#"["rateLimit", "bulkhead", "circuitBreaker", "timeout", "retry"]"#),
            _ => Some(r#"["retry", "rateLimit", "bulkhead", "circuitBreaker", "timeout"]"#),
        };
        if let Some(order) = order {
            parts.push(format!(r#""order": {order}"#));
        }
        if let Some((max_keys, idle)) = self.keyed {
            let idle = idle.map_or("null".to_owned(), |i| (u32::from(i) + 1).to_string());
            parts.push(format!(
                r#""keyed": {{"maxKeys": {}, "idleExpiry": {idle}}}"#,
                max_keys % 4 + 1
            ));
        }
        if let Some(mask) = self.fallback {
            let on: Vec<String> = KINDS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, k)| format!("\"{k}\""))
                .collect();
            parts.push(format!(r#""fallback": {{"on": [{}]}}"#, on.join(", ")));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Tick {
    Same,
    Nanos(u8),
    Millis(u8),
    ManyMillis(u16),
    BackMillis(u8),
    Jump(u64),
    Zero,
}

impl Tick {
    fn apply(self, host: u64) -> u64 {
        match self {
            Tick::Same => host,
            Tick::Nanos(n) => host.saturating_add(u64::from(n)),
            Tick::Millis(n) => host.saturating_add(u64::from(n) * MS),
            Tick::ManyMillis(n) => host.saturating_add(u64::from(n) * MS),
            Tick::BackMillis(n) => host.saturating_sub(u64::from(n) * MS),
            Tick::Jump(t) => t,
            Tick::Zero => 0,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Begin {
        deadline_ms: Option<u16>,
    },
    BeginKeyed {
        key: u8,
        deadline_ms: Option<u16>,
    },
    Poll(u8),
    Report {
        call: u8,
        outcome: u8,
        retryable: bool,
        hint_ms: Option<u16>,
    },
    Cancel(u8),
    /// Use a handle that has ended: it must be unknown.
    Stale(u8),
    Reconfigure(u8),
    HandleTimeout,
    Time(Tick),
    /// The clock to `poll_timeout`, or to the `until` of a call's sleep or park.
    ToTimeout,
    ToWake(u8),
}

#[derive(Arbitrary, Debug)]
struct Case {
    config: ConfigSpec,
    others: [ConfigSpec; 2],
    seed: u64,
    ops: Vec<Op>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Begun or between steps: the next poll decides.
    Idle,
    Running,
    Sleeping(Instant),
    Parked(Option<Instant>),
}

#[derive(Clone, Debug)]
struct Call {
    id: CallId,
    phase: Phase,
    last_attempt: u32,
}

#[derive(Default)]
struct Tally {
    begun: u64,
    attempts: u64,
    done: u64,
    failed: u64,
    cancelled: u64,
}

struct Harness {
    p: Pipeline,
    live: Vec<Call>,
    ended: Vec<CallId>,
    keys: BTreeSet<String>,
    host: u64,
    /// The latest instant the pipeline has seen: its clock.
    seen: u64,
    tally: Tally,
    /// A reconfiguration may leave the bulkhead or key map above a lowered bound while it
    /// drains; from then on the bounds are checked in their "never grows above" form.
    reconfigured: bool,
}

fuzz_target!(|case: Case| {
    let Ok(config) = PipelineConfig::from_json(&case.config.json()) else {
        return;
    };
    let p = Pipeline::new(config, case.seed).expect("an accepted config builds");
    let mut h = Harness {
        p,
        live: Vec::new(),
        ended: Vec::new(),
        keys: BTreeSet::new(),
        host: 1_000 * MS,
        seen: 0,
        tally: Tally::default(),
        reconfigured: false,
    };
    for op in case.ops.iter().take(400) {
        let before = h.bounds();
        h.apply(*op, &case);
        h.check(before);
    }
    h.drain();
});

impl Harness {
    /// The host's now, for an input the pipeline observes (clamps its clock with): every
    /// call on a live handle, `begin`, an accepted `reconfigure`, `handle_timeout`. Refused
    /// inputs (unknown handle, no attempt in flight, invalid config) observe nothing.
    fn now(&mut self) -> Instant {
        self.seen = self.seen.max(self.host);
        Instant::from_nanos(self.host)
    }

    fn host_now(&self) -> Instant {
        Instant::from_nanos(self.host)
    }

    fn pick(&self, i: u8) -> Option<usize> {
        (!self.live.is_empty()).then(|| usize::from(i) % self.live.len())
    }

    fn begin(&mut self, key: Option<String>, deadline_ms: Option<u16>) {
        if self.live.len() >= MAX_CALLS {
            return;
        }
        let now = self.now();
        let deadline = deadline_ms.map(|d| now.saturating_add_nanos(u64::from(d) * MS));
        let id = match &key {
            Some(k) => self.p.begin_keyed(k, now, deadline),
            None => self.p.begin(now, deadline),
        };
        assert!(
            !self.live.iter().any(|c| c.id == id),
            "a live handle handed out again"
        );
        self.tally.begun += 1;
        if let Some(k) = &key {
            self.keys.insert(k.clone());
        }
        self.live.push(Call {
            id,
            phase: Phase::Idle,
            last_attempt: 0,
        });
    }

    fn end(&mut self, i: usize) {
        let call = self.live.swap_remove(i);
        if self.ended.len() >= 32 {
            self.ended.remove(0);
        }
        self.ended.push(call.id);
    }

    /// Poll call `i` and check the step; returns whether the call ended.
    fn poll(&mut self, i: usize) -> bool {
        let now = self.now();
        let eff = Instant::from_nanos(self.seen);
        let id = self.live[i].id;
        let step = self.p.poll(id, now);
        // Wakes first: a call woken now is still parked in the model.
        self.drain_outputs();
        match step {
            Err(UsageError::AttemptInFlight) => {
                assert_eq!(
                    self.live[i].phase,
                    Phase::Running,
                    "in flight, but not running"
                );
                false
            }
            Err(e) => panic!("a live call's poll failed: {e} ({:?})", self.live[i]),
            Ok(step) => {
                assert_ne!(
                    self.live[i].phase,
                    Phase::Running,
                    "polled past a running attempt"
                );
                match step {
                    Step::Attempt { attempt, deadline } => {
                        assert!(
                            attempt > self.live[i].last_attempt,
                            "attempt {attempt} after {}",
                            self.live[i].last_attempt
                        );
                        if let Some(d) = deadline {
                            // `Instant::MAX` is "never": a timeout saturated at the end of time.
                            assert!(
                                d > eff || d == Instant::MAX,
                                "an attempt started at or after its deadline"
                            );
                        }
                        self.live[i].last_attempt = attempt;
                        self.live[i].phase = Phase::Running;
                        self.tally.attempts += 1;
                        false
                    }
                    Step::Sleep { until } => {
                        assert!(until > eff, "a sleep that has already ended");
                        self.live[i].phase = Phase::Sleeping(until);
                        false
                    }
                    Step::Park { until, .. } => {
                        assert!(
                            until.is_none_or(|u| u > eff),
                            "a park that has already ended"
                        );
                        self.live[i].phase = Phase::Parked(until);
                        false
                    }
                    Step::Done { attempts } => {
                        assert!(attempts >= 1);
                        assert_eq!(
                            attempts, self.live[i].last_attempt,
                            "Done names the last attempt"
                        );
                        self.tally.done += 1;
                        self.finished(i);
                        true
                    }
                    Step::Fail(f) => {
                        assert!(f.attempts >= self.live[i].last_attempt);
                        if f.attempts == 0 {
                            assert_eq!(f.cause, None, "a cause without an attempt");
                        }
                        if matches!(
                            f.kind,
                            ErrorKind::RetriesExhausted | ErrorKind::BudgetExhausted
                        ) {
                            assert!(
                                f.cause.is_some(),
                                "{:?} without the last attempt's cause",
                                f.kind
                            );
                        }
                        assert_ne!(f.kind, ErrorKind::InvalidConfig);
                        if !self.reconfigured {
                            let on = self.p.config().fallback.as_ref();
                            assert_eq!(
                                f.fallback,
                                on.is_none_or(|c| c.on.contains(&f.kind)),
                                "fallback flag of {:?}",
                                f.kind
                            );
                        }
                        self.tally.failed += 1;
                        self.finished(i);
                        true
                    }
                    other => panic!("unknown step {other:?}"),
                }
            }
        }
    }

    /// The call just ended: its handle is unknown from now on.
    fn finished(&mut self, i: usize) {
        let id = self.live[i].id;
        let now = Instant::from_nanos(self.host);
        assert_eq!(
            self.p.poll(id, now),
            Err(UsageError::UnknownCall),
            "polled after its end"
        );
        self.end(i);
    }

    fn report(&mut self, i: usize, report: Report) {
        let running = self.live[i].phase == Phase::Running;
        let now = if running { self.now() } else { self.host_now() };
        let id = self.live[i].id;
        let r = self.p.report(id, report, now);
        self.drain_outputs();
        assert_eq!(
            r.is_ok(),
            running,
            "report {r:?} while {:?}",
            self.live[i].phase
        );
        if running {
            self.live[i].phase = Phase::Idle;
        } else {
            assert_eq!(r, Err(UsageError::NoAttemptInFlight));
        }
    }

    fn apply(&mut self, op: Op, case: &Case) {
        match op {
            Op::Begin { deadline_ms } => self.begin(None, deadline_ms),
            Op::BeginKeyed { key, deadline_ms } => {
                self.begin(Some(format!("k{}", key % 6)), deadline_ms);
            }
            Op::Poll(i) => {
                if let Some(i) = self.pick(i) {
                    self.poll(i);
                }
            }
            Op::Report {
                call,
                outcome,
                retryable,
                hint_ms,
            } => {
                if let Some(i) = self.pick(call) {
                    let outcome = [
                        Outcome::Success,
                        Outcome::Failure,
                        Outcome::Timeout,
                        Outcome::Ignored,
                    ][usize::from(outcome % 4)];
                    let report = Report {
                        outcome,
                        retryable,
                        retry_after: hint_ms
                            .map(|h| std::time::Duration::from_millis(u64::from(h))),
                    };
                    self.report(i, report);
                }
            }
            Op::Cancel(i) => {
                if let Some(i) = self.pick(i) {
                    let now = self.now();
                    self.p
                        .cancel(self.live[i].id, now)
                        .expect("a live call can be cancelled");
                    self.tally.cancelled += 1;
                    let id = self.live[i].id;
                    self.end(i);
                    assert_eq!(self.p.cancel(id, now), Err(UsageError::UnknownCall));
                }
            }
            Op::Stale(i) => {
                if !self.ended.is_empty() {
                    let id = self.ended[usize::from(i) % self.ended.len()];
                    let now = Instant::from_nanos(self.host);
                    assert_eq!(self.p.poll(id, now), Err(UsageError::UnknownCall));
                    assert_eq!(
                        self.p.report(id, Report::SUCCESS, now),
                        Err(UsageError::UnknownCall)
                    );
                    assert_eq!(self.p.cancel(id, now), Err(UsageError::UnknownCall));
                }
            }
            Op::Reconfigure(which) => {
                let spec = case.others[usize::from(which % 2)];
                let text = spec.json();
                let before = self.p.config().clone();
                match PipelineConfig::from_json(&text) {
                    Ok(config) => {
                        let now = self.now();
                        self.p
                            .reconfigure(config.clone(), now)
                            .expect("an accepted config is accepted live");
                        assert_eq!(self.p.config(), &config);
                        self.reconfigured = true;
                    }
                    Err(_) => {
                        // Parsed without validation, it must still be refused, changing nothing.
                        if let Ok(config) = tripwire_core::config::from_json_str(&text) {
                            let now = self.host_now();
                            assert!(self.p.reconfigure(config, now).is_err());
                            assert_eq!(self.p.config(), &before, "a refused config took effect");
                        }
                    }
                }
            }
            Op::HandleTimeout => {
                let now = self.now();
                self.p.handle_timeout(now);
            }
            Op::Time(t) => self.host = t.apply(self.host),
            Op::ToTimeout => {
                if let Some(t) = self.p.poll_timeout() {
                    self.host = t.as_nanos();
                }
            }
            Op::ToWake(i) => {
                if let Some(i) = self.pick(i) {
                    match self.live[i].phase {
                        Phase::Sleeping(until) | Phase::Parked(Some(until)) => {
                            self.host = until.as_nanos();
                        }
                        _ => {}
                    }
                }
            }
        }
        self.drain_outputs();
    }

    fn drain_outputs(&mut self) {
        while let Some(id) = self.p.poll_wake() {
            let call = self
                .live
                .iter()
                .find(|c| c.id == id)
                .unwrap_or_else(|| panic!("woke {id:?}, which is not a live call"));
            assert!(
                matches!(call.phase, Phase::Parked(_)),
                "woke a call that is not parked: {call:?}"
            );
        }
        while let Some(e) = self.p.poll_event() {
            assert!(
                e.at.as_nanos() <= self.seen,
                "an event from the future: {e:?}"
            );
        }
    }

    /// The bounds before an operation: (bulkhead in flight, queued, keys).
    fn bounds(&self) -> (u64, u64, usize) {
        let s = self.p.stats();
        let b = s.bulkhead.unwrap_or_default();
        (b.in_flight, b.queue_depth, self.p.keys().unwrap_or(0))
    }

    fn check(&self, (in_flight_before, queued_before, keys_before): (u64, u64, usize)) {
        let s = self.p.stats();
        let ended = s.succeeded + s.failed.iter().sum::<u64>() + s.cancelled;
        assert_eq!(s.calls, ended + s.in_flight, "calls add up: {s:?}");
        assert_eq!(s.calls, self.tally.begun);
        assert_eq!(s.attempts, self.tally.attempts, "attempts = Attempt steps");
        assert!(
            s.in_flight <= self.live.len() as u64,
            "more in flight than live calls"
        );
        let running = self
            .live
            .iter()
            .filter(|c| c.phase == Phase::Running)
            .count();
        assert!(
            s.in_flight >= running as u64,
            "a running call counted as ended"
        );
        assert!(
            s.succeeded >= self.tally.done && s.failed.iter().sum::<u64>() >= self.tally.failed
        );
        assert!(s.cancelled <= self.tally.cancelled);
        if let Some(b) = s.bulkhead {
            let parked = self
                .live
                .iter()
                .filter(|c| matches!(c.phase, Phase::Parked(_)))
                .count() as u64;
            assert!(
                b.in_flight <= self.live.len() as u64,
                "a slot held by no live call: {b:?}"
            );
            assert!(
                b.queue_depth <= parked,
                "a queue place held by no parked call: {b:?}"
            );
            if self.reconfigured {
                assert!(b.in_flight <= b.max_concurrent || b.in_flight <= in_flight_before);
                assert!(b.queue_depth <= b.max_queue || b.queue_depth <= queued_before);
            } else {
                assert!(
                    b.in_flight <= b.max_concurrent,
                    "bulkhead over capacity: {b:?}"
                );
                assert!(b.queue_depth <= b.max_queue, "queue over capacity: {b:?}");
            }
        }
        if let Some(b) = s.breaker {
            assert!(
                b.in_flight <= self.live.len() as u64,
                "a permit held by no live call"
            );
        }
        if let (Some(keys), Some(k)) = (self.p.keys(), &self.p.config().keyed) {
            let max = k.max_keys as usize;
            if self.reconfigured {
                assert!(
                    keys <= max || keys <= keys_before,
                    "{keys} keys > maxKeys {max}"
                );
            } else {
                assert!(keys <= max, "{keys} keys > maxKeys {max}");
            }
        }
    }

    /// Drive every call left to its end; then nothing may be held.
    fn drain(&mut self) {
        for _ in 0..5_000 {
            if self.live.is_empty() {
                break;
            }
            let before = self.bounds();
            let mut next: Option<Instant> = None;
            let mut i = 0;
            while i < self.live.len() {
                if self.live[i].phase == Phase::Running {
                    self.report(i, Report::SUCCESS);
                }
                if self.poll(i) {
                    continue;
                }
                match self.live[i].phase {
                    Phase::Running => {
                        self.report(i, Report::SUCCESS);
                        if self.poll(i) {
                            continue;
                        }
                    }
                    Phase::Sleeping(u) | Phase::Parked(Some(u)) => {
                        next = Some(next.map_or(u, |n| n.min(u)));
                    }
                    _ => {}
                }
                i += 1;
            }
            self.drain_outputs();
            self.check(before);
            // Move to the next wake-up, or a little on when only wakes are awaited.
            self.host = match next {
                Some(t) => t.as_nanos().max(self.host.saturating_add(1)),
                None => self.host.saturating_add(MS),
            };
        }
        assert!(self.live.is_empty(), "calls never ended: {:?}", self.live);
        let s = self.p.stats();
        assert_eq!(s.in_flight, 0);
        assert_eq!(s.calls, self.tally.begun);
        assert_eq!(
            s.succeeded + s.failed.iter().sum::<u64>() + s.cancelled,
            self.tally.begun
        );
        if let Some(b) = s.bulkhead {
            assert_eq!(b.in_flight, 0, "a bulkhead slot leaked: {b:?}");
            assert_eq!(b.queue_depth, 0, "a queue place leaked: {b:?}");
        }
        if let Some(b) = s.breaker {
            assert_eq!(b.in_flight, 0, "a breaker permit leaked: {b:?}");
        }
        for key in &self.keys {
            if let Some(b) = self.p.keyed_breaker(key) {
                assert_eq!(
                    b.metrics().in_flight,
                    0,
                    "key {key}: a breaker permit leaked"
                );
            }
        }
    }
}

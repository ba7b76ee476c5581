//! A small fleet (1–3 pipelines) sharing a rate limit and a breaker through one
//! `MemoryStore`, driven by arbitrary interleavings of calls, outcomes and store replies —
//! including the hostile ones a network brings: timeouts, unavailability, error replies,
//! `NOSCRIPT`, arrays of arbitrary integers of any length, replies after the timeout — with
//! arbitrary times (backwards too) and reconfigurations.
//!
//! Invariants, after every operation: nothing panics; each call ends exactly once (its handle
//! is unknown afterwards, and a live one never is); a store step always names a request the
//! pipeline can show; `report_store` is accepted exactly when the call waits for a reply; the
//! stats add up (`calls == succeeded + Σfailed + cancelled + in_flight`). At the end every
//! call is driven to its end and no store request is left in flight.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tripwire_core::pipeline::{CallId, Pipeline, PipelineConfig, Report, Step};
use tripwire_core::store::{MemoryStore, StoreReply};
use tripwire_core::{ErrorKind, Instant, UsageError};

const MS: u64 = 1_000_000;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Spec {
    per_second: u8,
    burst: u8,
    max_wait_ms: u8,
    on_unavailable: u8,
    instances: u8,
    share: u8,
    quorum: u8,
    flush_ms: u8,
    keyed: bool,
}

impl Spec {
    fn json(&self, key: u8) -> String {
        let on = ["local", "allow", "deny"][usize::from(self.on_unavailable % 3)];
        let share = match self.share % 3 {
            0 => String::new(),
            1 => format!(
                r#", "share": {{"mode": "signal", "quorum": {}, "flush": {}}}"#,
                self.quorum % 3 + 1,
                u32::from(self.flush_ms) + 1
            ),
            _ => format!(
                r#", "share": {{"mode": "aggregate", "quorum": {}, "flush": {}}}"#,
                self.quorum % 3 + 1,
                u32::from(self.flush_ms) + 1
            ),
        };
        // Keyed pipelines cannot share their breaker; "auto" cannot be keyed.
        let (share, keyed, instances) = if self.keyed {
            (String::new(), r#", "keyed": {"maxKeys": 4}"#, "2")
        } else {
            (share, "", if self.share % 2 == 0 { "\"auto\"" } else { "2" })
        };
        format!(
            r#"{{"rateLimit": {{"algorithm": "gcra", "rate": "{}/s", "burst": {}, "maxWait": {}}},
                "store": {{"key": "k{key}", "timeout": 25, "onUnavailable": "{on}",
                           "expectedInstances": {instances}, "heartbeat": 100}},
                "circuitBreaker": {{"trip": {{"failureRate": 0.5, "window": {{"duration": 400, "buckets": 4}},
                                   "minimumCalls": 3}}, "openDuration": 200{share}}},
                "retry": {{"maxRetries": 1, "backoff": {{"type": "constant", "base": 5, "jitter": "full"}}}}
                {keyed}}}"#,
            u32::from(self.per_second % 100) + 1,
            self.burst % 6 + 1,
            self.max_wait_ms % 50,
        )
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Reply {
    Store,
    Timeout,
    Unavailable,
    Failed,
    NoScript,
    Garbage(Vec<i64>),
    /// The store's answer, reported this many ms late.
    Late(u8),
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Begin { instance: u8, key: u8 },
    Poll { call: u8, reply: Reply, ok: bool },
    Cancel { call: u8 },
    Advance { ms: u8 },
    Back { ms: u8 },
    Reconfigure { instance: u8, key: u8 },
    StrayReport { call: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    spec: Spec,
    ops: Vec<Op>,
}

struct Live {
    instance: usize,
    id: CallId,
    in_attempt: bool,
}

fn check_stats(p: &Pipeline) {
    let s = p.stats();
    let failed: u64 = ErrorKind::ALL.iter().map(|k| s.failed(*k)).sum();
    assert_eq!(
        s.calls,
        s.succeeded + failed + s.cancelled + s.in_flight,
        "calls must add up: {s:?}"
    );
}

/// Drive one step of `c`; returns whether the call ended.
fn step(
    p: &mut Pipeline,
    store: &mut MemoryStore,
    c: &mut Live,
    now: Instant,
    reply: &Reply,
    ok: bool,
) -> bool {
    if c.in_attempt {
        let report = if ok { Report::SUCCESS } else { Report::failure(true, None) };
        p.report(c.id, report, now).expect("an attempt in flight takes its report");
        c.in_attempt = false;
        return false;
    }
    match p.poll(c.id, now).expect("a live call polls") {
        Step::Store { request, until } => {
            assert!(until > now, "a store step must leave time to answer");
            let r = p.store_request(request).expect("a store step names a request").clone();
            let (reply, at) = match reply {
                Reply::Store => (store.run(&r, now), now),
                Reply::Timeout => (StoreReply::Timeout, now),
                Reply::Unavailable => (StoreReply::Unavailable, now),
                Reply::Failed => (StoreReply::Failed("WRONGTYPE".into()), now),
                Reply::NoScript => (StoreReply::NoScript, now),
                Reply::Garbage(v) => (StoreReply::Values(v.clone()), now),
                Reply::Late(ms) => (
                    store.run(&r, now),
                    now.saturating_add_nanos(u64::from(*ms) * MS),
                ),
            };
            p.report_store(c.id, reply, at).expect("a waiting call takes its reply");
            false
        }
        Step::Attempt { .. } => {
            c.in_attempt = true;
            false
        }
        Step::Sleep { until } | Step::Park { until: Some(until), .. } => {
            assert!(until > now, "a wait must end in the future");
            false
        }
        Step::Park { until: None, .. } => false,
        Step::Done { .. } | Step::Fail(_) => {
            assert_eq!(p.poll(c.id, now), Err(UsageError::UnknownCall));
            true
        }
        _ => false,
    }
}

fuzz_target!(|input: Input| {
    let spec = input.spec;
    let n = usize::from(spec.instances % 3) + 1;
    let mut fleet: Vec<Pipeline> = (0..n)
        .map(|i| Pipeline::from_json(&spec.json(0), i as u64 + 1).expect("a valid config"))
        .collect();
    let mut store = MemoryStore::new();
    let mut calls: Vec<Live> = Vec::new();
    let mut now = Instant::from_nanos(1_000 * MS);
    for op in input.ops.iter().take(400) {
        match op {
            Op::Begin { instance, key } => {
                if calls.len() < 32 {
                    let instance = usize::from(*instance) % n;
                    let k = format!("key{}", key % 6);
                    let id = fleet[instance].begin_keyed(&k, now, None);
                    calls.push(Live {
                        instance,
                        id,
                        in_attempt: false,
                    });
                }
            }
            Op::Poll { call, reply, ok } => {
                if !calls.is_empty() {
                    let i = usize::from(*call) % calls.len();
                    let p = &mut fleet[calls[i].instance];
                    if step(p, &mut store, &mut calls[i], now, reply, *ok) {
                        calls.swap_remove(i);
                    }
                }
            }
            Op::Cancel { call } => {
                if !calls.is_empty() {
                    let i = usize::from(*call) % calls.len();
                    let c = calls.swap_remove(i);
                    fleet[c.instance].cancel(c.id, now).expect("a live call cancels");
                    assert_eq!(
                        fleet[c.instance].cancel(c.id, now),
                        Err(UsageError::UnknownCall)
                    );
                }
            }
            Op::Advance { ms } => now = now.saturating_add_nanos(u64::from(*ms) * MS),
            Op::Back { ms } => now = now.saturating_sub(std::time::Duration::from_millis(u64::from(*ms))),
            Op::Reconfigure { instance, key } => {
                let p = &mut fleet[usize::from(*instance) % n];
                let config = PipelineConfig::from_json(&spec.json(key % 3)).expect("valid");
                p.reconfigure(config, now).expect("a valid config applies");
            }
            Op::StrayReport { call } => {
                if !calls.is_empty() {
                    let c = &calls[usize::from(*call) % calls.len()];
                    // Accepted only while the call waits for a reply; never a panic.
                    let _ = fleet[c.instance].report_store(c.id, StoreReply::Timeout, now);
                }
            }
        }
        for p in &fleet {
            check_stats(p);
        }
    }
    // Drive every call to its end: the store answers, attempts succeed, time moves on.
    for _ in 0..10_000 {
        if calls.is_empty() {
            break;
        }
        now = now.saturating_add_nanos(5 * MS);
        let mut i = 0;
        while i < calls.len() {
            let p = &mut fleet[calls[i].instance];
            if step(p, &mut store, &mut calls[i], now, &Reply::Store, true) {
                calls.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
    assert!(calls.is_empty(), "calls never ended");
    for p in &fleet {
        check_stats(p);
        let s = p.stats();
        assert_eq!(s.in_flight, 0);
        if let Some(st) = s.store {
            assert_eq!(st.in_flight, 0, "a store request left in flight");
        }
    }
});

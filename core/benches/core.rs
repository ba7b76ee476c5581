//! Core benchmarks: ns per decision on the hot paths (DESIGN.md §6 budgets: breaker
//! acquire + record ≤ 20 ns, limiter check ≤ 10 ns, whole pipeline call ≤ 150 ns).
//! Run: `cargo bench -p tripwire-core --bench core` (or `make bench`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tripwire_core::breaker::{Admission, BreakerConfig, CircuitBreaker, Outcome};
use tripwire_core::bulkhead::{Bulkhead, BulkheadConfig, Entry};
use tripwire_core::pipeline::{Pipeline, Report};
use tripwire_core::rate_limit::{RateLimitConfig, RateLimiter};
use tripwire_core::retry::{FailureInfo, Retry, RetryConfig};
use tripwire_core::{Instant, Rng};

fn breaker(c: &mut Criterion) {
    let rules = [
        ("consecutive", r#"{"trip": {"consecutiveFailures": 5}}"#),
        (
            "count_window",
            r#"{"trip": {"failureRate": 0.5, "window": {"calls": 100}, "minimumCalls": 20}}"#,
        ),
        (
            "time_window",
            r#"{"trip": {"failureRate": 0.5, "window": {"duration": "60s", "buckets": 10}, "minimumCalls": 20}}"#,
        ),
        (
            "time_window_slow",
            r#"{"trip": {"failureRate": 0.5, "window": {"duration": "60s", "buckets": 10}, "slowCallRate": 0.8, "slowCallDuration": "2s"}}"#,
        ),
    ];
    for (name, cfg) in rules {
        let mut b = CircuitBreaker::new(BreakerConfig::from_json(cfg).unwrap()).unwrap();
        let mut now = 1_000_000_000u64;
        c.bench_function(&format!("breaker_acquire_record/{name}"), |bench| {
            bench.iter(|| {
                now += 1_000;
                let t = Instant::from_nanos(now);
                if let Admission::Admitted(p) = b.try_acquire(black_box(t)) {
                    b.record(p, black_box(Outcome::Success), t);
                }
            })
        });
    }
}

fn rate_limit(c: &mut Criterion) {
    for algo in ["tokenBucket", "gcra", "fixedWindow", "slidingWindow"] {
        let cfg = RateLimitConfig::from_json(&format!(
            r#"{{"algorithm": "{algo}", "rate": "1000000/s"}}"#
        ))
        .unwrap();
        let mut l = RateLimiter::new(cfg).unwrap();
        let mut now = 1_000_000_000u64;
        c.bench_function(&format!("rate_limit_check/{algo}"), |bench| {
            bench.iter(|| {
                now += 1_000;
                black_box(l.check(black_box(Instant::from_nanos(now)), 1))
            })
        });
    }
}

fn bulkhead(c: &mut Criterion) {
    let mut b = Bulkhead::new(BulkheadConfig::default()).unwrap();
    let t = Instant::from_nanos(1);
    c.bench_function("bulkhead_enter_release", |bench| {
        bench.iter(|| {
            if let Entry::Admitted = b.try_enter(black_box(t), None) {
                black_box(b.release(t));
            }
        })
    });
}

fn retry(c: &mut Criterion) {
    let mut r = Retry::new(RetryConfig::default()).unwrap();
    let mut rng = Rng::new(7);
    let t = Instant::from_nanos(1);
    c.bench_function("retry_decision", |bench| {
        bench.iter(|| {
            let mut s = r.start(t);
            let _ = r.begin_attempt(&mut s);
            black_box(r.on_failure(
                &mut s,
                FailureInfo {
                    retryable: true,
                    retry_after: None,
                },
                t,
                None,
                &mut rng,
            ))
        })
    });
}

fn pipeline(c: &mut Criterion) {
    let mut p = Pipeline::from_json(
        r#"{"bulkhead": {"maxConcurrent": 10}, "circuitBreaker": {}, "retry": {}, "timeout": {"perAttempt": "1s"}}"#,
        1,
    )
    .unwrap();
    let mut now = 1_000_000_000u64;
    c.bench_function("pipeline_call/bulkhead+breaker+retry+timeout", |bench| {
        bench.iter(|| {
            now += 1_000;
            let t = Instant::from_nanos(now);
            let call = p.begin(t, None);
            let _ = p.poll(call, t);
            let _ = p.report(call, Report::SUCCESS, t);
            black_box(p.poll(call, t))
        })
    });
}

/// Reading a policy file's JSON: the route every binding takes (`FromTree`: JSON → tree →
/// the core's reader) beside the derived serde route (`config::from_json_str`).
fn config(c: &mut Criterion) {
    use tripwire_core::pipeline::PolicyFile;
    use tripwire_core::FromTree;
    let text = include_str!("../../examples/policies/services.json");
    c.bench_function("config_read/services.json/from_tree", |bench| {
        bench.iter(|| black_box(PolicyFile::from_json_str(black_box(text)).unwrap()))
    });
    c.bench_function("config_read/services.json/serde", |bench| {
        bench.iter(|| {
            black_box(tripwire_core::config::from_json_str::<PolicyFile>(black_box(text)).unwrap())
        })
    });
}

criterion_group!(benches, breaker, rate_limit, bulkhead, retry, pipeline, config);
criterion_main!(benches);

//! Regression tests for what `cargo fuzz` (core/fuzz) found. Each test names the target that
//! found it and the invariant that broke; the fix is in the core, not in the test.

use std::time::Duration;

use tripwire_core::breaker::{BreakerConfig, BreakerSnapshot, CircuitBreaker, Outcome};
use tripwire_core::{ConfigDuration, Instant};

fn round_trip(d: ConfigDuration) -> ConfigDuration {
    let text = serde_json::to_string(&d).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text} does not parse back: {e}"))
}

/// Found by `policies` (breaker snapshot round trip): a time window of 365 days in 7 buckets
/// has buckets of 4 505 142 857 142 857 ns. Durations were serialized as float milliseconds,
/// which cannot hold that to the nanosecond, so the snapshot came back with another bucket
/// width and the breaker refused to restore its own snapshot.
#[test]
fn a_breaker_restores_its_own_snapshot_whatever_its_bucket_width() {
    let config = BreakerConfig::from_json(
        r#"{"trip": {"failureRate": 0.5, "window": {"duration": "365d", "buckets": 7}}}"#,
    )
    .unwrap();
    let mut b = CircuitBreaker::new(config.clone()).unwrap();
    let now = Instant::from_nanos(1_000_000_000);
    let p = b.try_acquire(now).permit().unwrap();
    b.record(p, Outcome::Failure, now);
    let text = serde_json::to_string(&b.snapshot()).unwrap();
    let snapshot: BreakerSnapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(snapshot, b.snapshot(), "through {text}");
    let mut fresh = CircuitBreaker::new(config).unwrap();
    fresh
        .restore(&snapshot, now)
        .unwrap_or_else(|e| panic!("own snapshot {text} refused: {e}"));
    assert_eq!(fresh.metrics().window_failures, 1);
}

/// Found by `config` and `policies`: every duration a config can hold round-trips through
/// serde to the nanosecond, including sub-millisecond parts of durations beyond ~11 days.
#[test]
fn every_config_duration_round_trips_exactly() {
    for ns in [
        1,
        999_999,
        3_333_333_333,
        999_999_999_999_999,
        4_505_142_857_142_857,
        41_686_471_548_308_715, // a float in memory, but not through serde_json's parser
        9_007_199_254_740_993,  // 2^53 + 1
        2_835_601_425_472_609_877,
        3_153_600_000_000_000_000 - 1, // one ns under 100 years
    ] {
        let d = ConfigDuration(Duration::from_nanos(ns));
        assert_eq!(round_trip(d), d, "{ns} ns");
    }
}

/// Found by `config`: an integer with a unit is read exactly, not through a float.
#[test]
fn integer_duration_strings_are_exact() {
    let parse = |s: &str| serde_json::from_str::<ConfigDuration>(s).map(ConfigDuration::nanos);
    assert_eq!(
        parse(r#""9007199254740993ns""#).unwrap(),
        9_007_199_254_740_993
    );
    assert_eq!(
        parse(r#""2835601425472609877ns""#).unwrap(),
        2_835_601_425_472_609_877
    );
    assert_eq!(parse(r#""1m30s""#).unwrap(), 90_000_000_000);
    assert_eq!(parse(r#""36500d""#).unwrap(), 3_153_600_000_000_000_000);
    assert!(parse(r#""36500d1ns""#).is_err(), "one ns past 100 years");
    assert!(parse(r#""99999999999999999999999999999999999999999ns""#).is_err());
    // Fractions still go through milliseconds as before.
    assert_eq!(parse(r#""1.5m""#).unwrap(), 90_000_000_000);
    assert_eq!(parse(r#""0.5us""#).unwrap(), 500);
}

/// Found by `policies` (bulkhead model): once the clock reached `Instant::MAX`, a waiter
/// queued without a time limit (stored as `until = Instant::MAX`, "no limit") counted as
/// expired and was dropped with a queue timeout. Its host had no timer for it and was never
/// told: a pipeline call parked there would have waited forever.
#[test]
fn a_waiter_without_a_limit_never_times_out_even_at_the_end_of_time() {
    use tripwire_core::bulkhead::{Bulkhead, BulkheadConfig, Entry};
    let mut b = Bulkhead::new(BulkheadConfig::new(1, 1, None)).unwrap();
    assert!(b.try_enter(Instant::MAX, None).is_admitted());
    let Entry::Queued { ticket, until } = b.try_enter(Instant::MAX, None) else {
        panic!("queues")
    };
    assert_eq!(until, None);
    // A newcomer finds the queue full: the waiter must not be dropped to make room.
    assert!(!b.try_enter(Instant::MAX, None).is_admitted());
    assert!(b.is_waiting(ticket));
    assert_eq!(b.poll_expired(Instant::MAX), None);
    assert_eq!(
        b.release(Instant::MAX),
        Some(ticket),
        "the waiter gets the slot"
    );
    assert_eq!(b.metrics().queue_timeouts, 0);
}

/// The same through a pipeline: a call parked without a deadline at the end of time is woken
/// by the release, not lost.
#[test]
fn a_pipeline_call_parked_at_the_end_of_time_is_woken() {
    use tripwire_core::pipeline::{Pipeline, Report, Step};
    let mut p =
        Pipeline::from_json(r#"{"bulkhead": {"maxConcurrent": 1, "maxQueue": 1}}"#, 1).unwrap();
    let now = Instant::MAX;
    let a = p.begin(now, None);
    assert!(matches!(p.poll(a, now).unwrap(), Step::Attempt { .. }));
    let b = p.begin(now, None);
    assert!(matches!(
        p.poll(b, now).unwrap(),
        Step::Park { until: None, .. }
    ));
    let c = p.begin(now, None);
    assert!(
        matches!(p.poll(c, now).unwrap(), Step::Fail(_)),
        "the queue is full"
    );
    p.report(a, Report::SUCCESS, now).unwrap();
    assert!(matches!(p.poll(a, now).unwrap(), Step::Done { .. }));
    assert_eq!(p.poll_wake(), Some(b), "the parked call is woken");
    assert!(matches!(p.poll(b, now).unwrap(), Step::Attempt { .. }));
}

/// A host that drains the wake queue late is not named a call that ended, or was polled,
/// since its wake (found in review: the C binding had filtered these itself).
#[test]
fn a_wake_drained_late_names_only_a_call_still_waiting() {
    use tripwire_core::pipeline::{Pipeline, Report, Step};
    let mut p =
        Pipeline::from_json(r#"{"bulkhead": {"maxConcurrent": 1, "maxQueue": 2}}"#, 1).unwrap();
    let now = Instant::from_nanos(1_000_000);
    let park = |p: &mut Pipeline| {
        let c = p.begin(now, None);
        assert!(matches!(p.poll(c, now).unwrap(), Step::Park { .. }));
        c
    };
    // Woken, then cancelled before the host drained the queue.
    let a = p.begin(now, None);
    assert!(matches!(p.poll(a, now).unwrap(), Step::Attempt { .. }));
    let b = park(&mut p);
    p.report(a, Report::SUCCESS, now).unwrap();
    assert!(matches!(p.poll(a, now).unwrap(), Step::Done { .. }));
    p.cancel(b, now).unwrap();
    assert_eq!(p.poll_wake(), None, "b ended after its wake");
    // Woken, then polled (it proceeds) before the host drained the queue.
    let c = p.begin(now, None);
    assert!(matches!(p.poll(c, now).unwrap(), Step::Attempt { .. }));
    let d = park(&mut p);
    p.report(c, Report::SUCCESS, now).unwrap();
    assert!(matches!(p.poll(c, now).unwrap(), Step::Done { .. }));
    assert!(matches!(p.poll(d, now).unwrap(), Step::Attempt { .. }));
    assert_eq!(p.poll_wake(), None, "d was polled since its wake");
    // And one still waiting is named.
    let e = park(&mut p);
    p.report(d, Report::SUCCESS, now).unwrap();
    assert!(matches!(p.poll(d, now).unwrap(), Step::Done { .. }));
    assert_eq!(p.poll_wake(), Some(e));
    assert_eq!(p.poll_wake(), None);
}

/// Found in review: a call woken, polled before the queue was drained, then parked and woken
/// again, was named twice (its first wake still looked current).
#[test]
fn a_call_woken_twice_before_a_late_drain_is_named_once() {
    use tripwire_core::pipeline::{Pipeline, Report, Step};
    let mut p = Pipeline::from_json(
        r#"{"bulkhead": {"maxConcurrent": 1, "maxQueue": 4},
            "retry": {"maxRetries": 1, "backoff": {"type": "constant", "base": 1, "jitter": "none"}},
            "order": ["retry", "bulkhead"]}"#,
        1,
    )
    .unwrap();
    let t0 = Instant::from_nanos(1_000_000);
    let a = p.begin(t0, None);
    assert!(matches!(p.poll(a, t0).unwrap(), Step::Attempt { .. }));
    let b = p.begin(t0, None);
    assert!(matches!(p.poll(b, t0).unwrap(), Step::Park { .. }));
    p.report(a, Report::SUCCESS, t0).unwrap(); // b is woken (not drained)
    assert!(matches!(p.poll(a, t0).unwrap(), Step::Done { .. }));
    assert!(matches!(p.poll(b, t0).unwrap(), Step::Attempt { .. }));
    let c = p.begin(t0, None);
    assert!(matches!(p.poll(c, t0).unwrap(), Step::Park { .. }));
    p.report(b, Report::failure(true, None), t0).unwrap(); // c is woken; b retries after 1 ms
    let Step::Sleep { until } = p.poll(b, t0).unwrap() else {
        panic!("b sleeps before its retry");
    };
    assert!(matches!(p.poll(c, t0).unwrap(), Step::Attempt { .. }));
    assert!(matches!(p.poll(b, until).unwrap(), Step::Park { .. }));
    p.report(c, Report::SUCCESS, until).unwrap(); // b is woken again
    assert!(matches!(p.poll(c, until).unwrap(), Step::Done { .. }));
    let woken: Vec<_> = std::iter::from_fn(|| p.poll_wake()).collect();
    assert_eq!(woken, vec![b], "b once, under its current ticket");
    assert!(matches!(p.poll(b, until).unwrap(), Step::Attempt { .. }));
}

/// Found by `pipeline`: a call begun before a reconfiguration added a retry policy has no retry
/// state; the pipeline then panicked ("retry state exists with a retry policy") when the call
/// reached its attempt. Such a call is now simply not retried.
#[test]
fn a_call_begun_before_retry_was_added_finishes_without_retrying() {
    use tripwire_core::pipeline::{Pipeline, PipelineConfig, Report, Step};
    use tripwire_core::ErrorKind;
    let with_retry = || {
        PipelineConfig::from_json(
            r#"{"retry": {"maxRetries": 2, "backoff": {"type": "constant", "base": 1, "jitter": "none"}}}"#,
        )
        .unwrap()
    };
    let ms = |v: u64| Instant::from_nanos(v * 1_000_000);

    // Added before the call's first poll.
    let mut p = Pipeline::from_json(r#"{"timeout": {"perAttempt": null}}"#, 1).unwrap();
    let call = p.begin(ms(0), None);
    p.reconfigure(with_retry(), ms(1)).unwrap();
    assert_eq!(
        p.poll(call, ms(1)).unwrap(),
        Step::Attempt {
            attempt: 1,
            deadline: None
        }
    );
    p.report(call, Report::failure(true, None), ms(2)).unwrap();
    let Step::Fail(f) = p.poll(call, ms(2)).unwrap() else {
        panic!("fails")
    };
    assert_eq!((f.kind, f.attempts), (ErrorKind::Failure, 1));

    // Added while the attempt runs.
    let mut p = Pipeline::from_json("{}", 1).unwrap();
    let call = p.begin(ms(0), None);
    assert!(matches!(p.poll(call, ms(0)).unwrap(), Step::Attempt { .. }));
    p.reconfigure(with_retry(), ms(1)).unwrap();
    p.report(call, Report::failure(true, None), ms(2)).unwrap();
    assert!(matches!(p.poll(call, ms(2)).unwrap(), Step::Fail(_)));

    // Calls begun afterwards are retried.
    let call = p.begin(ms(3), None);
    assert!(matches!(
        p.poll(call, ms(3)).unwrap(),
        Step::Attempt { attempt: 1, .. }
    ));
    p.report(call, Report::failure(true, None), ms(3)).unwrap();
    assert_eq!(p.poll(call, ms(3)).unwrap(), Step::Sleep { until: ms(4) });
    let s = p.stats();
    assert_eq!(
        s.calls,
        s.succeeded + s.failed.iter().sum::<u64>() + s.cancelled + s.in_flight
    );
}

/// The same through a per-attempt refusal: the call (begun without retry) meets a breaker that
/// now sits inside the new retry policy; the refusal used to go to the retry policy and panic.
#[test]
fn a_per_attempt_refusal_of_a_call_begun_without_retry_fails_it() {
    use tripwire_core::pipeline::{Pipeline, PipelineConfig, Step};
    use tripwire_core::ErrorKind;
    let ms = |v: u64| Instant::from_nanos(v * 1_000_000);
    let mut p = Pipeline::from_json(r#"{"circuitBreaker": {}}"#, 1).unwrap();
    let call = p.begin(ms(0), None);
    let inside = PipelineConfig::from_json(
        r#"{"circuitBreaker": {}, "retry": {"maxRetries": 2},
            "order": ["retry", "circuitBreaker"]}"#,
    )
    .unwrap();
    p.reconfigure(inside, ms(1)).unwrap();
    p.breaker_mut().unwrap().force_open(ms(1));
    let Step::Fail(f) = p.poll(call, ms(2)).unwrap() else {
        panic!("refused")
    };
    assert_eq!(f.kind, ErrorKind::CircuitOpen);
    assert_eq!(p.stats().in_flight, 0);
}

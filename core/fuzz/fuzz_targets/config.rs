//! Arbitrary bytes into every config parser of the core.
//!
//! Invariants, for each parser (`PolicyFile`, `PipelineConfig`, and every policy's own
//! config, plus breaker snapshots):
//! - parsing never panics, whatever the bytes;
//! - an accepted config builds its policy (validation and construction agree), and the built
//!   policy survives a first use at the extremes of time (0 and `u64::MAX` nanoseconds);
//! - an accepted config round-trips: serialize → parse (and validate) → equal, and the second
//!   serialization is byte-identical to the first.
#![no_main]

use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tripwire_core::breaker::{BreakerSnapshot, Outcome as BreakerOutcome};
use tripwire_core::config::from_json_str;
use tripwire_core::deadline::TimeoutConfig;
use tripwire_core::health::{CheckConfig, CheckResult, HealthConfig, HealthRegistry};
use tripwire_core::pipeline::{Pipeline, PipelineConfig, PolicyFile, Report, Step};
use tripwire_core::{
    BreakerConfig, BulkheadConfig, CircuitBreaker, Instant, KeyedRateLimitConfig, KeyedRateLimiter,
    RateLimitConfig, RateLimiter, Retry, RetryConfig, Rng,
};

fuzz_target!(|data: &[u8]| {
    // Lossy, so that inputs with a stray invalid byte still reach the parsers.
    let text = String::from_utf8_lossy(data);
    policy_file(&text);
    pipeline_config(&text);
    breaker(&text);
    retry(&text);
    bulkhead(&text);
    rate_limit(&text);
    keyed_rate_limit(&text);
    timeout(&text);
    health(&text);
    snapshot(&text);
});

const EXTREMES: [Instant; 3] = [
    Instant::ZERO,
    Instant::from_nanos(1_000_000_000),
    Instant::MAX,
];

/// serialize → parse with `parse` → equal, and serializing again gives the same text.
fn round_trip<T>(value: &T, parse: impl Fn(&str) -> Result<T, tripwire_core::ConfigError>)
where
    T: Serialize + PartialEq + core::fmt::Debug,
{
    let text = serde_json::to_string(value).expect("an accepted config serializes");
    let back = match parse(&text) {
        Ok(back) => back,
        Err(e) => panic!("{value:?} serialized as {text} is refused: {e}"),
    };
    assert_eq!(&back, value, "round trip through {text}");
    let again = serde_json::to_string(&back).expect("serializes");
    assert_eq!(again, text, "serialization is not a fixed point");
}

/// Parse with serde only (for types without their own `from_json`), then validate.
fn parse_validated<T: DeserializeOwned>(
    text: &str,
    validate: impl Fn(&T) -> Result<(), tripwire_core::ConfigError>,
) -> Result<T, tripwire_core::ConfigError> {
    let value: T = from_json_str(text)?;
    validate(&value)?;
    Ok(value)
}

fn policy_file(text: &str) {
    let Ok(file) = PolicyFile::from_json(text) else {
        return;
    };
    for name in file.names() {
        let mut p = file
            .pipeline(name, 7)
            .unwrap_or_else(|e| panic!("accepted policy {name:?} does not build: {e}"));
        first_use(&mut p);
    }
    round_trip(&file, PolicyFile::from_json);
}

fn pipeline_config(text: &str) {
    let Ok(config) = PipelineConfig::from_json(text) else {
        return;
    };
    let mut p = match Pipeline::new(config.clone(), 7) {
        Ok(p) => p,
        Err(e) => panic!("accepted pipeline config does not build: {e}"),
    };
    first_use(&mut p);
    // A live pipeline takes it too (from an empty one, and from itself).
    let mut empty = Pipeline::new(PipelineConfig::default(), 7).expect("the empty config builds");
    empty
        .reconfigure(config.clone(), Instant::from_nanos(5))
        .expect("an accepted config is accepted by reconfigure");
    first_use(&mut empty);
    p.reconfigure(config.clone(), Instant::MAX)
        .expect("an accepted config is accepted by reconfigure");
    round_trip(&config, PipelineConfig::from_json);
}

/// Two calls, at time 0 and at the end of time: no panic, each reaches a sensible step.
fn first_use(p: &mut Pipeline) {
    for (now, key) in [(Instant::ZERO, "a"), (Instant::MAX, "b")] {
        let call = p.begin_keyed(key, now, None);
        for _ in 0..4 {
            match p.poll(call, now).expect("a fresh call's handle is valid") {
                Step::Attempt { deadline, .. } => {
                    if let Some(d) = deadline {
                        assert!(d > now || now == Instant::MAX, "attempt at its deadline");
                    }
                    p.report(call, Report::failure(true, None), now)
                        .expect("an attempt is running");
                }
                Step::Done { .. } | Step::Fail(_) => break,
                Step::Sleep { .. } | Step::Park { .. } => {
                    p.cancel(call, now).expect("cancel a waiting call");
                    break;
                }
                _ => break,
            }
        }
        while p.poll_event().is_some() {}
        while p.poll_wake().is_some() {}
    }
    let _ = p.poll_timeout();
    p.handle_timeout(Instant::MAX);
    let _ = p.prometheus("fuzz");
    let s = p.stats();
    assert_eq!(
        s.calls,
        s.succeeded + s.failed.iter().sum::<u64>() + s.cancelled + s.in_flight
    );
}

fn breaker(text: &str) {
    let Ok(config) = BreakerConfig::from_json(text) else {
        return;
    };
    let mut b = match CircuitBreaker::new(config.clone()) {
        Ok(b) => b,
        Err(e) => panic!("accepted breaker config does not build: {e}"),
    };
    for now in EXTREMES {
        if let Some(p) = b.try_acquire(now).permit() {
            b.record(p, BreakerOutcome::Failure, now);
        }
        let _ = b.poll_timeout();
        b.handle_timeout(now);
    }
    round_trip(&config, BreakerConfig::from_json);
}

fn retry(text: &str) {
    let Ok(config) = RetryConfig::from_json(text) else {
        return;
    };
    let mut r = match Retry::new(config.clone()) {
        Ok(r) => r,
        Err(e) => panic!("accepted retry config does not build: {e}"),
    };
    let mut rng = Rng::new(1);
    for now in EXTREMES {
        let mut s = r.start(now);
        let _ = r.begin_attempt(&mut s);
        let info = tripwire_core::FailureInfo {
            retryable: true,
            retry_after: Some(Duration::MAX),
        };
        let _ = r.on_failure(&mut s, info, now, None, &mut rng);
        let _ = r.on_failure(&mut s, Default::default(), now, Some(now), &mut rng);
    }
    round_trip(&config, RetryConfig::from_json);
}

fn bulkhead(text: &str) {
    let Ok(config) = BulkheadConfig::from_json(text) else {
        return;
    };
    if let Err(e) = tripwire_core::Bulkhead::new(config.clone()) {
        panic!("accepted bulkhead config does not build: {e}");
    }
    round_trip(&config, BulkheadConfig::from_json);
}

fn rate_limit(text: &str) {
    let Ok(config) = RateLimitConfig::from_json(text) else {
        return;
    };
    let mut l = match RateLimiter::new(config.clone()) {
        Ok(l) => l,
        Err(e) => panic!("accepted rate limit does not build: {e}"),
    };
    for now in EXTREMES {
        let _ = l.check(now, 1);
        let _ = l.check(now, u64::MAX);
        let _ = l.available(now);
    }
    round_trip(&config, RateLimitConfig::from_json);
}

fn keyed_rate_limit(text: &str) {
    let Ok(config) = KeyedRateLimitConfig::from_json(text) else {
        return;
    };
    let mut l = match KeyedRateLimiter::new(config.clone(), 3) {
        Ok(l) => l,
        Err(e) => panic!("accepted keyed rate limit does not build: {e}"),
    };
    for now in EXTREMES {
        let _ = l.check("a", now, 1);
        let _ = l.check("b", now, 2);
        assert!(l.keys() <= config.max_keys as usize);
    }
    round_trip(&config, KeyedRateLimitConfig::from_json);
}

fn timeout(text: &str) {
    let Ok(config) = parse_validated(text, TimeoutConfig::validate) else {
        return;
    };
    for now in EXTREMES {
        let call = config.call_deadline(now, Some(now));
        assert!(call.is_none_or(|d| d >= now));
        let _ = config.attempt_deadline(now, call);
    }
    round_trip(&config, |t| parse_validated(t, TimeoutConfig::validate));
}

fn health(text: &str) {
    if let Ok(check) = CheckConfig::from_json(text) {
        let mut reg = HealthRegistry::new();
        let id = reg
            .register("check", check)
            .expect("an accepted check config registers");
        for now in EXTREMES {
            for due in reg.due_all(now) {
                assert!(due.deadline >= now);
            }
            let result = CheckResult {
                ok: false,
                latency: Duration::MAX,
                error: Some("x"),
            };
            reg.report(id, result, now).expect("a registered check");
        }
        round_trip(&check, CheckConfig::from_json);
    }
    if let Ok(config) = HealthConfig::from_json(text) {
        let mut reg = match HealthRegistry::from_config(config.clone()) {
            Ok(r) => r,
            Err(e) => panic!("accepted health config does not build: {e}"),
        };
        assert_eq!(reg.len(), config.checks.len());
        let _ = reg.due(Instant::MAX);
        let _ = reg.report_json("t");
        round_trip(&config, HealthConfig::from_json);
    }
}

/// Snapshots come back from an external store: restoring an arbitrary one never panics, and
/// a refused snapshot changes nothing.
fn snapshot(text: &str) {
    let Ok(snapshot) = from_json_str::<BreakerSnapshot>(text) else {
        return;
    };
    for config in [
        r#"{"trip": {"consecutiveFailures": 3}}"#,
        r#"{"trip": {"failureRate": 0.5, "window": {"calls": 10}}}"#,
        r#"{"trip": {"failureRate": 0.5, "window": {"duration": "10s", "buckets": 10}}}"#,
    ] {
        let config = BreakerConfig::from_json(config).expect("a valid config");
        let mut b = CircuitBreaker::new(config).expect("builds");
        for now in EXTREMES {
            let before = b.snapshot();
            match b.restore(&snapshot, now) {
                Ok(()) => {
                    let _ = b.try_acquire(now);
                }
                Err(_) => assert_eq!(b.snapshot(), before, "a refused restore changed state"),
            }
        }
    }
}

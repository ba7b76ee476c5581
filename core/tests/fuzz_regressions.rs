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
        9_007_199_254_740_993, // 2^53 + 1
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

//! Replays every conformance vector in `tests/vectors/` through the core's public API.
//! The format is documented in `tests/vectors/README.md`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tripwire_core::{Event, EventKind, Instant};

mod breaker;
mod bulkhead;
mod config;
pub mod fleet;
mod health;
mod pipeline;
mod rate_limit;
mod retry;
pub mod shared;

/// The vectors directory: `tests/vectors` in the nearest ancestor of the crate that has one
/// (this runner is also compiled into the Redis adapters' tests).
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("tests/vectors"))
        .find(|d| d.join("README.md").is_file())
        .expect("a tests/vectors directory above the crate")
}

#[test]
#[allow(clippy::print_stdout)] // the replay count is the test's report
fn every_vector_replays() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() > 100, "the vectors are missing: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).expect("readable vector");
        let v: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: not JSON: {e}"));
                continue;
            }
        };
        let kind = v["kind"].as_str().unwrap_or("");
        let result = match kind {
            "circuitBreaker" => breaker::run(&v),
            "rateLimit" | "keyedRateLimit" => rate_limit::run(&v).and_then(|()| {
                // gcra vectors also replay through the shared path, against the reference store.
                if shared::is_gcra(&v) {
                    let mut memory = tripwire_core::store::MemoryStore::new();
                    shared::replay_gcra(&v, &mut |r| memory.run(r, Instant::ZERO))
                } else {
                    Ok(())
                }
            }),
            "sharedRateLimit" => shared::run(&v),
            "fleet" => fleet::run(&v),
            "bulkhead" => bulkhead::run(&v),
            "pipeline" | "policyFile" => pipeline::run(&v),
            "health" => health::run(&v),
            "retry" => retry::run(&v),
            "config" => config::run(&v),
            other => Err(format!("unknown kind {other:?}")),
        };
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    println!(
        "{} vectors replayed, {} failed",
        files.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "vector failures:\n{}",
        failures.join("\n")
    );
}

/// The step's `at`, as an instant (ms → ns, rounded).
pub fn at(step: &Value) -> Instant {
    Instant::from_nanos(ms_to_ns(&step["at"]))
}

/// A millisecond number as rounded nanoseconds (0 when absent).
pub fn ms_to_ns(v: &Value) -> u64 {
    tripwire_core::time::millis_f64_to_nanos(v.as_f64().unwrap_or(0.0))
}

/// Optional milliseconds as an optional instant.
pub fn opt_instant(v: &Value) -> Option<Instant> {
    v.as_f64().map(|_| Instant::from_nanos(ms_to_ns(v)))
}

/// An instant as milliseconds for comparison.
pub fn ms(i: Instant) -> Value {
    json!(i.as_millis_f64())
}

/// A duration as milliseconds for comparison.
pub fn dur_ms(d: std::time::Duration) -> Value {
    json!(tripwire_core::time::nanos_to_millis_f64(
        tripwire_core::time::duration_nanos(d)
    ))
}

/// Every field of `expected` must match `actual`; numbers match when equal in rounded ns.
pub fn check(expected: &Value, actual: &Value, ctx: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a.get(k).unwrap_or(&Value::Null);
                check(ev, av, &format!("{ctx}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{ctx}: expected {expected}, got {actual}"));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                check(ev, av, &format!("{ctx}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(_), Value::Number(_)) => {
            if ms_to_ns_signed(expected) == ms_to_ns_signed(actual) {
                Ok(())
            } else {
                Err(format!("{ctx}: expected {expected}, got {actual}"))
            }
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{ctx}: expected {expected}, got {actual}")),
    }
}

fn ms_to_ns_signed(v: &Value) -> i128 {
    (v.as_f64().unwrap_or(f64::NAN) * 1e6).round() as i128
}

/// An event as the vector format's JSON.
pub fn event_json(e: &Event) -> Value {
    match e.kind {
        EventKind::StateChanged { from, to } => {
            json!({"type": "stateChanged", "from": from.as_str(), "to": to.as_str(), "at": ms(e.at)})
        }
        EventKind::Rejected {
            reason,
            retry_after,
        } => json!({
            "type": "rejected", "reason": reason.as_str(),
            "retryAfter": retry_after.map(dur_ms), "at": ms(e.at)
        }),
        EventKind::RetryScheduled { attempt, delay } => {
            json!({"type": "retryScheduled", "attempt": attempt, "delay": dur_ms(delay), "at": ms(e.at)})
        }
        EventKind::GaveUp { reason, attempts } => {
            json!({"type": "gaveUp", "reason": reason.as_str(), "attempts": attempts, "at": ms(e.at)})
        }
        EventKind::Queued { ticket } => json!({"type": "queued", "ticket": ticket, "at": ms(e.at)}),
        EventKind::Woken { ticket } => json!({"type": "woken", "ticket": ticket, "at": ms(e.at)}),
        EventKind::StoreStateChanged { from, to } => json!({
            "type": "storeStateChanged", "from": from.as_str(), "to": to.as_str(), "at": ms(e.at)
        }),
        _ => json!({"type": e.kind.name(), "at": ms(e.at)}),
    }
}

/// Compare a drained list of events with a step's expectation.
pub fn check_events(step: &Value, drained: Vec<Event>, ctx: &str) -> Result<(), String> {
    let actual = Value::Array(drained.iter().map(event_json).collect());
    check(&step["expect"], &actual, ctx)
}

/// The label a step refers to (`permit`, `ticket`, `call`...).
pub fn label<'a>(step: &'a Value, field: &str) -> Result<&'a str, String> {
    step[field]
        .as_str()
        .ok_or_else(|| format!("step lacks {field:?}: {step}"))
}

/// "step N (op)" for messages.
pub fn ctx(i: usize, step: &Value) -> String {
    format!("step {i} ({})", step["op"].as_str().unwrap_or("?"))
}

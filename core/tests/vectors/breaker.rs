//! Vector ops for the `circuitBreaker` kind (see tests/vectors/README.md): `acquire`,
//! `record`, `release`, `state`, `forceOpen`, `disable`, `reset`, `pollTimeout`,
//! `snapshotRestore`, `metrics` and `events`.
//!
//! `acquire` yields `{"admitted", "retryAfter"}` (`retryAfter` null when admitted or unknown).
//! `metrics` yields every `BreakerMetrics` field under its camelCase name. `snapshotRestore`
//! serializes the snapshot to JSON text, parses it back, builds a new breaker from the same
//! config and restores into it at the step's `at`; the old breaker's undrained events and its
//! counters are left behind with it, and permits labelled earlier become stale.
use std::collections::HashMap;

use serde_json::{json, Value};
use tripwire_core::breaker::{
    Admission, BreakerConfig, BreakerSnapshot, CircuitBreaker, Outcome, Permit,
};

use super::{at, check, check_events, ctx, dur_ms, label, ms};

pub fn run(v: &Value) -> Result<(), String> {
    let config = BreakerConfig::from_json(&v["config"].to_string())
        .map_err(|e| format!("config refused: {e}"))?;
    let mut breaker =
        CircuitBreaker::new(config.clone()).map_err(|e| format!("config refused: {e}"))?;
    let mut permits: HashMap<String, Permit> = HashMap::new();
    let steps = v["steps"].as_array().ok_or("vector lacks steps")?;
    for (i, step) in steps.iter().enumerate() {
        let ctx = ctx(i, step);
        let now = at(step);
        let permit = |permits: &HashMap<String, Permit>| -> Result<Permit, String> {
            let name = label(step, "permit")?;
            permits
                .get(name)
                .copied()
                .ok_or_else(|| format!("{ctx}: no permit labelled {name:?}"))
        };
        let actual = match step["op"].as_str().unwrap_or("") {
            "acquire" => match breaker.try_acquire(now) {
                Admission::Admitted(p) => {
                    if let Some(name) = step["as"].as_str() {
                        permits.insert(name.to_owned(), p);
                    }
                    json!({"admitted": true, "retryAfter": null})
                }
                Admission::Rejected { retry_after } => {
                    json!({"admitted": false, "retryAfter": retry_after.map(dur_ms)})
                }
            },
            "record" => {
                let p = permit(&permits)?;
                let name = step["outcome"].as_str().unwrap_or("");
                let outcome = Outcome::from_name(name)
                    .ok_or_else(|| format!("{ctx}: unknown outcome {name:?}"))?;
                breaker.record(p, outcome, now);
                Value::Null
            }
            "release" => {
                let p = permit(&permits)?;
                breaker.release(p, now);
                Value::Null
            }
            "state" => json!(breaker.state().as_str()),
            "forceOpen" => {
                breaker.force_open(now);
                Value::Null
            }
            "disable" => {
                breaker.disable(now);
                Value::Null
            }
            "reset" => {
                breaker.reset(now);
                Value::Null
            }
            "pollTimeout" => breaker.poll_timeout().map_or(Value::Null, ms),
            "snapshotRestore" => {
                let text = serde_json::to_string(&breaker.snapshot())
                    .map_err(|e| format!("{ctx}: {e}"))?;
                let snapshot: BreakerSnapshot = serde_json::from_str(&text)
                    .map_err(|e| format!("{ctx}: snapshot {text} does not parse: {e}"))?;
                let mut fresh =
                    CircuitBreaker::new(config.clone()).map_err(|e| format!("{ctx}: {e}"))?;
                fresh
                    .restore(&snapshot, now)
                    .map_err(|e| format!("{ctx}: restore of {text} refused: {e}"))?;
                breaker = fresh;
                Value::Null
            }
            "metrics" => {
                serde_json::to_value(breaker.metrics()).map_err(|e| format!("{ctx}: {e}"))?
            }
            "events" => {
                let drained: Vec<_> = std::iter::from_fn(|| breaker.poll_event()).collect();
                check_events(step, drained, &ctx)?;
                continue;
            }
            other => return Err(format!("{ctx}: unknown circuitBreaker op {other:?}")),
        };
        if step.get("expect").is_some() {
            check(&step["expect"], &actual, &ctx)?;
        }
    }
    Ok(())
}

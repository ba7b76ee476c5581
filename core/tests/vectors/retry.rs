//! Vector ops for the `retry` kind (see tests/vectors/README.md): one `Retry` policy and one
//! PRNG (the vector's `seed`, 0 when absent) shared by every call of the vector.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tripwire_core::{FailureInfo, Retry, RetryConfig, RetryDecision, RetryState, Rng};

use super::{at, ctx, dur_ms, label, ms_to_ns, opt_instant};

pub fn run(v: &Value) -> Result<(), String> {
    let config =
        RetryConfig::from_json(&v["config"].to_string()).map_err(|e| format!("config: {e}"))?;
    let mut retry = Retry::new(config).map_err(|e| format!("config: {e}"))?;
    let mut rng = Rng::new(v["seed"].as_u64().unwrap_or(0));
    let mut calls: HashMap<String, RetryState> = HashMap::new();
    let steps = v["steps"].as_array().ok_or("steps must be a list")?;
    for (i, step) in steps.iter().enumerate() {
        let cx = ctx(i, step);
        let now = at(step);
        let op = step["op"].as_str().unwrap_or("");
        let call = |field: &str| -> Result<String, String> {
            let name = label(step, field).map_err(|e| format!("{cx}: {e}"))?;
            if calls.contains_key(name) {
                Ok(name.to_owned())
            } else {
                Err(format!("{cx}: unknown call {name:?}"))
            }
        };
        let actual: Option<Value> = match op {
            "begin" => {
                let name = label(step, "as").map_err(|e| format!("{cx}: {e}"))?;
                calls.insert(name.to_owned(), retry.start(now));
                None
            }
            "attempt" => {
                let name = call("call")?;
                let state = calls.get_mut(&name).expect("checked above");
                Some(json!(retry.begin_attempt(state)))
            }
            "failure" => {
                let name = call("call")?;
                let state = calls.get_mut(&name).expect("checked above");
                let failure = FailureInfo {
                    retryable: step["retryable"].as_bool().unwrap_or(true),
                    retry_after: step["retryAfter"]
                        .as_f64()
                        .map(|_| Duration::from_nanos(ms_to_ns(&step["retryAfter"]))),
                };
                let deadline = opt_instant(&step["deadline"]);
                Some(decision_json(
                    retry.on_failure(state, failure, now, deadline, &mut rng),
                ))
            }
            "success" => {
                let name = call("call")?;
                retry.on_success(&calls[&name]);
                None
            }
            "budget" => Some(json!(retry.budget_tokens())),
            other => return Err(format!("{cx}: unknown op {other:?} for kind retry")),
        };
        match (step.get("expect"), actual) {
            (Some(expected), Some(actual)) => super::check(expected, &actual, &cx)?,
            (Some(_), None) => return Err(format!("{cx}: this op has no result to expect")),
            (None, _) => {}
        }
    }
    Ok(())
}

fn decision_json(d: RetryDecision) -> Value {
    match d {
        RetryDecision::Retry { attempt, delay } => {
            json!({"decision": "retry", "attempt": attempt, "delay": dur_ms(delay)})
        }
        RetryDecision::GiveUp { reason } => {
            json!({"decision": "giveUp", "reason": reason.as_str()})
        }
        _ => json!({"decision": "unknown"}),
    }
}

//! Vector ops for `pipeline` and `policyFile` (see tests/vectors/README.md).

use std::collections::HashMap;

use serde_json::{json, Value};
use tripwire_core::pipeline::{
    CallId, Outcome, Pipeline, PipelineConfig, PolicyFile, Report, Step,
};

use super::{at, check, check_events, ctx, dur_ms, label, ms, ms_to_ns, opt_instant};

/// A step as the vector format's JSON.
pub fn step_json(step: Step) -> Value {
    match step {
        Step::Attempt { attempt, deadline } => {
            json!({"step": "attempt", "attempt": attempt, "deadline": deadline.map(ms)})
        }
        Step::Sleep { until } => json!({"step": "sleep", "until": ms(until)}),
        Step::Park { until, .. } => json!({"step": "park", "until": until.map(ms)}),
        Step::Done { attempts } => json!({"step": "done", "attempts": attempts}),
        Step::Fail(f) => json!({
            "step": "fail", "kind": f.kind.as_str(), "retryAfter": f.retry_after.map(dur_ms),
            "attempts": f.attempts, "fallback": f.fallback, "cause": f.cause.map(|k| k.as_str()),
        }),
        _ => json!({"step": "unknown"}),
    }
}

fn outcome(step: &Value) -> Result<Report, String> {
    let outcome = match step["outcome"].as_str().unwrap_or("") {
        "success" => Outcome::Success,
        "failure" => Outcome::Failure,
        "timeout" => Outcome::Timeout,
        "ignored" => Outcome::Ignored,
        other => return Err(format!("unknown outcome {other:?}")),
    };
    let retryable = step["retryable"].as_bool().unwrap_or(true);
    let retry_after = step["retryAfter"]
        .as_f64()
        .map(|_| std::time::Duration::from_nanos(ms_to_ns(&step["retryAfter"])));
    Ok(Report {
        outcome,
        retryable,
        retry_after,
    })
}

pub fn run(v: &Value) -> Result<(), String> {
    let seed = v["seed"].as_u64().unwrap_or(0);
    let text = v["config"].to_string();
    let file = if v["kind"] == "policyFile" {
        Some(PolicyFile::from_json(&text).map_err(|e| format!("config refused: {e}"))?)
    } else {
        None
    };
    let mut pipelines: HashMap<String, Pipeline> = HashMap::new();
    if file.is_none() {
        let p = Pipeline::from_json(&text, seed).map_err(|e| format!("config refused: {e}"))?;
        pipelines.insert(String::new(), p);
    }
    let mut calls: HashMap<String, (String, CallId)> = HashMap::new();
    let mut last_policy = String::new();
    for (i, step) in v["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let c = ctx(i, step);
        let now = at(step);
        let policy = step["policy"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| last_policy.clone());
        if let Some(f) = &file {
            if !pipelines.contains_key(&policy) {
                let p = f.pipeline(&policy, seed).map_err(|e| format!("{c}: {e}"))?;
                pipelines.insert(policy.clone(), p);
            }
        }
        last_policy = policy.clone();
        let call_of =
            |calls: &HashMap<String, (String, CallId)>| -> Result<(String, CallId), String> {
                let l = label(step, "call")?;
                calls
                    .get(l)
                    .cloned()
                    .ok_or_else(|| format!("{c}: unknown call label {l:?}"))
            };
        match step["op"].as_str().unwrap_or("") {
            "begin" => {
                let p = pipelines
                    .get_mut(&policy)
                    .ok_or_else(|| format!("{c}: no pipeline"))?;
                let deadline = opt_instant(&step["deadline"]);
                let id = match step["key"].as_str() {
                    Some(key) => p.begin_keyed(key, now, deadline),
                    None => p.begin(now, deadline),
                };
                calls.insert(label(step, "as")?.to_owned(), (policy.clone(), id));
            }
            "poll" => {
                let (p, id) = call_of(&calls)?;
                match (
                    pipelines.get_mut(&p).unwrap().poll(id, now),
                    step["expectError"].as_str(),
                ) {
                    (Ok(got), None) => check(&step["expect"], &step_json(got), &c)?,
                    (Err(e), Some(want)) if e.to_string() == want => {}
                    (got, want) => return Err(format!("{c}: expected {want:?}, got {got:?}")),
                }
            }
            "report" => {
                let (p, id) = call_of(&calls)?;
                let r = outcome(step).map_err(|e| format!("{c}: {e}"))?;
                pipelines
                    .get_mut(&p)
                    .unwrap()
                    .report(id, r, now)
                    .map_err(|e| format!("{c}: {e}"))?;
            }
            "cancel" => {
                let (p, id) = call_of(&calls)?;
                pipelines
                    .get_mut(&p)
                    .unwrap()
                    .cancel(id, now)
                    .map_err(|e| format!("{c}: {e}"))?;
            }
            "wakes" => {
                let p = pipelines.get_mut(&policy).unwrap();
                let mut woke = Vec::new();
                while let Some(id) = p.poll_wake() {
                    let name = calls
                        .iter()
                        .find(|(_, (_, cid))| *cid == id)
                        .map(|(k, _)| k.clone());
                    woke.push(json!(name));
                }
                check(&step["expect"], &Value::Array(woke), &c)?;
            }
            "events" => {
                let p = pipelines.get_mut(&policy).unwrap();
                let mut drained = Vec::new();
                while let Some(e) = p.poll_event() {
                    drained.push(e);
                }
                check_events(step, drained, &c)?;
            }
            "pollTimeout" => {
                let p = pipelines.get(&policy).unwrap();
                check(&step["expect"], &json!(p.poll_timeout().map(ms)), &c)?;
            }
            "stats" => {
                let p = pipelines.get(&policy).unwrap();
                check(&step["expect"], &stats_json(p), &c)?;
            }
            "reconfigure" => {
                let p = pipelines.get_mut(&policy).unwrap();
                let got = match PipelineConfig::from_json(&step["config"].to_string()) {
                    Ok(cfg) => match p.reconfigure(cfg, now) {
                        Ok(()) => json!({"ok": true}),
                        Err(e) => json!({"ok": false, "error": e.to_string()}),
                    },
                    Err(e) => json!({"ok": false, "error": e.to_string()}),
                };
                let expect = &step["expect"];
                if let Some(prefix) = expect["error"].as_str() {
                    let actual = got["error"].as_str().unwrap_or("");
                    if !actual.starts_with(prefix) {
                        return Err(format!(
                            "{c}: expected error starting {prefix:?}, got {got}"
                        ));
                    }
                }
                check(&json!({"ok": expect["ok"]}), &got, &c)?;
            }
            other => return Err(format!("{c}: unknown op {other:?}")),
        }
    }
    Ok(())
}

/// The pipeline's stats as JSON (the shape the README documents).
pub fn stats_json(p: &Pipeline) -> Value {
    let s = p.stats();
    let mut failed = serde_json::Map::new();
    for k in tripwire_core::ErrorKind::ALL {
        failed.insert(k.as_str().to_owned(), json!(s.failed(k)));
    }
    json!({
        "calls": s.calls, "succeeded": s.succeeded, "failed": failed, "cancelled": s.cancelled,
        "attempts": s.attempts, "inFlight": s.in_flight,
        "state": p.breaker().map(|b| b.state().as_str()),
        "budgetTokens": s.budget_tokens,
        "keys": s.keys,
    })
}

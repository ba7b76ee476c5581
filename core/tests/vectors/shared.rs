//! Vector ops for `sharedRateLimit`, and the replay of `gcra` rate-limit vectors through the
//! shared path (see tests/vectors/README.md). The store is a parameter: the core's own test
//! answers with `MemoryStore` (the core's port of the script); the Redis adapters' tests
//! answer with the real script. Both must give the vectors' answers, which for `gcra`
//! vectors are the in-memory limiter's.
//!
//! `check` → `{"allowed", "wait", "retryAfter", "source", "sent"}`; `sent` says whether a
//! store request was emitted. A step's `reply` (`"store"` by default, or `"timeout"`,
//! `"unavailable"`, `"failed"`) says what the host reports for it.
use serde_json::{json, Value};
use tripwire_core::store::{MemoryStore, SharedCheck, SharedLimiter, StoreReply, StoreRequest};
use tripwire_core::{Instant, RateDecision};

use super::{at, check, check_events, ctx, dur_ms};

/// Runs a request on the store under test.
pub type Store<'a> = &'a mut dyn FnMut(&StoreRequest) -> StoreReply;

fn decision_json(d: RateDecision, source: &str, sent: bool) -> Value {
    let (allowed, wait, ra) = match d {
        RateDecision::Allowed => (true, json!(0), Value::Null),
        RateDecision::Wait(w) => (true, dur_ms(w), Value::Null),
        RateDecision::Denied { retry_after } => {
            (false, json!(0), retry_after.map_or(Value::Null, dur_ms))
        }
        _ => (false, json!(0), json!("unknown decision")),
    };
    json!({"allowed": allowed, "wait": wait, "retryAfter": ra, "source": source, "sent": sent})
}

fn reply_for(step: &Value, request: &StoreRequest, store: Store<'_>) -> Result<StoreReply, String> {
    Ok(match step["reply"].as_str().unwrap_or("store") {
        "store" => store(request),
        "timeout" => StoreReply::Timeout,
        "unavailable" => StoreReply::Unavailable,
        "failed" => StoreReply::Failed("WRONGTYPE Operation against a key".into()),
        other => return Err(format!("unknown reply {other:?}")),
    })
}

/// One shared check, answered by `store`.
fn shared_check(
    l: &mut SharedLimiter,
    step: &Value,
    key: &str,
    cost: u64,
    store: Store<'_>,
) -> Result<Value, String> {
    let now = at(step);
    Ok(match l.check(key, now, cost, None) {
        SharedCheck::Decided { decision, source } => {
            decision_json(decision, source.as_str(), false)
        }
        SharedCheck::Send(id) => {
            let request = l
                .request(id)
                .ok_or("a sent request must be readable")?
                .clone();
            let reply = reply_for(step, &request, store)?;
            let (decision, source) = l.on_reply(id, reply, now).map_err(|e| e.as_str())?;
            decision_json(decision, source.as_str(), true)
        }
    })
}

fn cost(step: &Value, c: &str) -> Result<u64, String> {
    match &step["cost"] {
        Value::Null => Ok(1),
        n => n
            .as_u64()
            .ok_or_else(|| format!("{c}: cost must be a whole number, got {n}")),
    }
}

/// A `sharedRateLimit` vector.
pub fn run_with(v: &Value, store: Store<'_>) -> Result<(), String> {
    if v["description"].as_str().is_none_or(str::is_empty) {
        return Err("a vector needs a description".into());
    }
    let seed = v["seed"].as_u64().unwrap_or(0);
    let mut l =
        SharedLimiter::from_json(&v["config"].to_string(), seed).map_err(|e| e.to_string())?;
    l.use_host_clock(true);
    for (i, step) in v["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let c = ctx(i, step);
        let actual = match step["op"].as_str().unwrap_or("") {
            "check" => {
                let key = step["key"].as_str().unwrap_or("");
                shared_check(&mut l, step, key, cost(step, &c)?, &mut *store)?
            }
            "storeState" => json!(l.store_state().as_str()),
            "metrics" => serde_json::to_value(l.metrics()).map_err(|e| e.to_string())?,
            "events" => {
                let drained: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
                check_events(step, drained, &c)?;
                continue;
            }
            other => return Err(format!("{c}: unknown op {other:?}")),
        };
        if !step["expect"].is_null() {
            check(&step["expect"], &actual, &c)?;
        }
    }
    Ok(())
}

/// A `sharedRateLimit` vector against the in-memory reference store.
pub fn run(v: &Value) -> Result<(), String> {
    let mut memory = MemoryStore::new();
    run_with(v, &mut |r| memory.run(r, Instant::ZERO))
}

/// Whether a `rateLimit` vector can replay through the shared path: every limit `gcra`.
pub fn is_gcra(v: &Value) -> bool {
    v["kind"] == "rateLimit"
        && match &v["config"] {
            Value::Array(ls) => ls.iter().all(|l| l["algorithm"] == "gcra"),
            l => l["algorithm"] == "gcra",
        }
}

/// Replay a `gcra` rate-limit vector's checks through a shared limiter and `store`: every
/// decision must equal the in-memory limiter's (events are the pipeline's business, skipped).
pub fn replay_gcra(v: &Value, store: Store<'_>) -> Result<(), String> {
    let name = v["name"].as_str().unwrap_or("vector");
    let config = json!({
        "rateLimit": v["config"],
        "store": {"key": format!("vectors:{name}")},
    });
    let mut l = SharedLimiter::from_json(&config.to_string(), 0).map_err(|e| e.to_string())?;
    l.use_host_clock(true);
    for (i, step) in v["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let c = ctx(i, step);
        if step["op"] != "check" {
            continue;
        }
        let actual = shared_check(&mut l, step, "", cost(step, &c)?, &mut *store)?;
        check(&step["expect"], &actual, &format!("shared {c}"))?;
    }
    Ok(())
}

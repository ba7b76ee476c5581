//! Vector ops for `rateLimit` and `keyedRateLimit` (see tests/vectors/README.md).
//!
//! `check` → `{"allowed", "wait", "retryAfter"}`: an immediate admission is
//! `{true, 0, null}`, a reserved wait `{true, wait, null}`, a denial `{false, 0, retryAfter|null}`.
use serde_json::{json, Value};
use tripwire_core::{
    KeyedRateLimitConfig, KeyedRateLimiter, RateDecision, RateLimitConfig, RateLimiter,
};

use super::{at, check, check_events, ctx, dur_ms};

enum Limiter {
    Plain(RateLimiter),
    Keyed(KeyedRateLimiter),
}

fn decision_json(d: RateDecision) -> Result<Value, String> {
    Ok(match d {
        RateDecision::Allowed => json!({"allowed": true, "wait": 0, "retryAfter": null}),
        RateDecision::Wait(w) => json!({"allowed": true, "wait": dur_ms(w), "retryAfter": null}),
        RateDecision::Denied { retry_after } => {
            json!({"allowed": false, "wait": 0, "retryAfter": retry_after.map(dur_ms)})
        }
        other => return Err(format!("unknown decision {other:?}")),
    })
}

fn build(v: &Value) -> Result<Limiter, String> {
    let config = v["config"].clone();
    match v["kind"].as_str() {
        Some("rateLimit") => {
            let c: RateLimitConfig =
                tripwire_core::config::from_json_value(config).map_err(|e| e.to_string())?;
            RateLimiter::new(c)
                .map(Limiter::Plain)
                .map_err(|e| e.to_string())
        }
        Some("keyedRateLimit") => {
            let c: KeyedRateLimitConfig =
                tripwire_core::config::from_json_value(config).map_err(|e| e.to_string())?;
            let seed = v["seed"].as_u64().unwrap_or(0);
            KeyedRateLimiter::new(c, seed)
                .map(Limiter::Keyed)
                .map_err(|e| e.to_string())
        }
        other => Err(format!("not a rate limit kind: {other:?}")),
    }
}

pub fn run(v: &Value) -> Result<(), String> {
    if v["description"].as_str().is_none_or(str::is_empty) {
        return Err("a vector needs a description".into());
    }
    let mut limiter = build(v)?;
    let steps = v["steps"].as_array().ok_or("no steps")?;
    for (i, step) in steps.iter().enumerate() {
        let c = ctx(i, step);
        let now = at(step);
        let op = step["op"].as_str().unwrap_or("");
        let actual = match (op, &mut limiter) {
            ("check", l) => {
                let cost = match &step["cost"] {
                    Value::Null => 1,
                    n => n
                        .as_u64()
                        .ok_or_else(|| format!("{c}: cost must be a whole number, got {n}"))?,
                };
                let d = match l {
                    Limiter::Plain(l) => l.check(now, cost),
                    Limiter::Keyed(l) => {
                        let key = step["key"]
                            .as_str()
                            .ok_or_else(|| format!("{c}: a keyed check needs a key"))?;
                        l.check(key, now, cost)
                    }
                };
                decision_json(d)?
            }
            ("events", l) => {
                let drained: Vec<_> = match l {
                    Limiter::Plain(l) => core::iter::from_fn(|| l.poll_event()).collect(),
                    Limiter::Keyed(l) => core::iter::from_fn(|| l.poll_event()).collect(),
                };
                check_events(step, drained, &c)?;
                continue;
            }
            ("keys", Limiter::Keyed(l)) => json!(l.keys()),
            (other, _) => return Err(format!("{c}: unknown op {other:?} for {}", v["kind"])),
        };
        if !step["expect"].is_null() {
            check(&step["expect"], &actual, &c)?;
        }
    }
    Ok(())
}

//! Vector ops for the `health` kind (see tests/vectors/README.md, "health").
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tripwire_core::health::{
    CheckConfig, CheckId, CheckResult, HealthConfig, HealthEvent, HealthEventKind, HealthRegistry,
};
use tripwire_core::{BreakerState, UsageError};

use super::{at, check, ctx, label, ms, ms_to_ns};

/// The timestamp handed to `reportJson` when a step gives none.
const DEFAULT_TIMESTAMP: &str = "1970-01-01T00:00:00.000Z";

pub fn run(v: &Value) -> Result<(), String> {
    let built = tripwire_core::config::from_json_value::<HealthConfig>(v["config"].clone())
        .and_then(HealthRegistry::from_config);
    if let Some(want) = v["expectError"].as_str() {
        return match built {
            Ok(_) => Err(format!("config accepted, expected error {want:?}")),
            Err(e) => first_issue_starts_with(&e, want, "config"),
        };
    }
    let mut reg = built.map_err(|e| format!("config refused: {e}"))?;
    // Every id ever handed out, by name, so that a step can report on an unregistered check.
    let mut ids: HashMap<String, CheckId> = reg
        .ids()
        .map(|id| (reg.name(id).unwrap().to_owned(), id))
        .collect();
    let steps = v["steps"].as_array().ok_or("no steps")?;
    for (i, step) in steps.iter().enumerate() {
        let c = ctx(i, step);
        let now = at(step);
        let op = step["op"].as_str().unwrap_or("");
        let actual: Value = match op {
            "register" => {
                let name = label(step, "name")?;
                let config = if step["config"].is_null() {
                    Ok(CheckConfig::default())
                } else {
                    tripwire_core::config::from_json_value::<CheckConfig>(step["config"].clone())
                        .map_err(|e| e.within(&format!("checks.{name}")))
                };
                match config.and_then(|cfg| reg.register(name, cfg)) {
                    Ok(id) => {
                        ids.insert(name.to_owned(), id);
                        json!({"ok": true, "error": null})
                    }
                    Err(e) => {
                        if let Some(want) = step["expect"]["error"].as_str() {
                            first_issue_starts_with(&e, want, &c)?;
                            continue;
                        }
                        json!({"ok": false, "error": e.to_string()})
                    }
                }
            }
            "unregister" => json!(reg.unregister(label(step, "name")?)),
            "due" => {
                let due = reg.due(now);
                due_json(&reg, &due)
            }
            "dueAll" => {
                let due = reg.due_all(now);
                due_json(&reg, &due)
            }
            "report" => {
                let name = label(step, "name")?;
                let id = *ids
                    .get(name)
                    .ok_or_else(|| format!("{c}: no check {name:?} was ever registered"))?;
                let result = CheckResult {
                    ok: step["ok"]
                        .as_bool()
                        .ok_or_else(|| format!("{c}: lacks \"ok\""))?,
                    latency: Duration::from_nanos(ms_to_ns(&step["latency"])),
                    error: step["error"].as_str(),
                };
                match reg.report(id, result, now) {
                    Ok(()) => json!({"error": null}),
                    Err(UsageError::UnknownCheck) => json!({"error": "unknownCheck"}),
                    Err(e) => json!({"error": e.to_string()}),
                }
            }
            "expire" => {
                reg.expire(now);
                Value::Null
            }
            "status" => json!(reg.status().as_str()),
            "httpStatus" => json!(reg.status().http_status()),
            "checkStatus" => {
                let name = label(step, "name")?;
                json!(reg
                    .id(name)
                    .and_then(|id| reg.check_status(id))
                    .map(|s| s.as_str()))
            }
            "pollTimeout" => reg.poll_timeout().map_or(Value::Null, ms),
            "setBreaker" => {
                let state = label(step, "state")?;
                let state = BreakerState::from_name(state)
                    .ok_or_else(|| format!("{c}: unknown breaker state {state:?}"))?;
                reg.set_breaker(label(step, "name")?, state);
                Value::Null
            }
            "removeBreaker" => json!(reg.remove_breaker(label(step, "name")?)),
            "reportJson" => {
                reg.report_json(step["timestamp"].as_str().unwrap_or(DEFAULT_TIMESTAMP))
            }
            "metrics" => serde_json::to_value(reg.metrics()).map_err(|e| e.to_string())?,
            "events" => {
                let drained: Vec<HealthEvent> = std::iter::from_fn(|| reg.poll_event()).collect();
                Value::Array(drained.iter().map(|e| event_json(&ids, e)).collect())
            }
            other => return Err(format!("{c}: unknown op {other:?}")),
        };
        if !step["expect"].is_null() || op == "events" {
            check(&step["expect"], &actual, &c)?;
        }
    }
    Ok(())
}

fn first_issue_starts_with(
    e: &tripwire_core::ConfigError,
    want: &str,
    c: &str,
) -> Result<(), String> {
    let got = e.issues()[0].to_string();
    if got.starts_with(want) {
        Ok(())
    } else {
        Err(format!(
            "{c}: expected error starting {want:?}, got {got:?}"
        ))
    }
}

fn due_json(reg: &HealthRegistry, due: &[tripwire_core::DueCheck]) -> Value {
    Value::Array(
        due.iter()
            .map(|d| json!({"name": reg.name(d.id), "deadline": ms(d.deadline)}))
            .collect(),
    )
}

fn event_json(ids: &HashMap<String, CheckId>, e: &HealthEvent) -> Value {
    let name = |id: CheckId| ids.iter().find(|(_, v)| **v == id).map(|(k, _)| k.clone());
    match e.kind {
        HealthEventKind::CheckChanged { check, from, to } => json!({
            "type": "checkChanged", "check": name(check),
            "from": from.as_str(), "to": to.as_str(), "at": ms(e.at)
        }),
        HealthEventKind::TimedOut { check } => {
            json!({"type": "timedOut", "check": name(check), "at": ms(e.at)})
        }
        HealthEventKind::StatusChanged { from, to } => json!({
            "type": "statusChanged", "from": from.as_str(), "to": to.as_str(), "at": ms(e.at)
        }),
        _ => json!({"type": e.kind.name(), "at": ms(e.at)}),
    }
}

//! Vector ops for the `bulkhead` kind (see tests/vectors/README.md): `enter`, `release`,
//! `cancel`, `stats` and `events`.
//!
//! `enter` yields `{"result", "until", "reason"}` (`reason` is the rejection's kind, else
//! null). `stats` yields every metric under its camelCase name; `queued` is the number of calls
//! waiting now (as `Bulkhead::queued`), `queuedTotal` the number that ever joined the queue.
use std::collections::HashMap;

use serde_json::{json, Value};
use tripwire_core::bulkhead::{Bulkhead, BulkheadConfig, Entry, Ticket};

use super::{at, check, check_events, ctx, label, ms, opt_instant};

pub fn run(v: &Value) -> Result<(), String> {
    let config = BulkheadConfig::from_json(&v["config"].to_string())
        .map_err(|e| format!("config refused: {e}"))?;
    let mut bulkhead = Bulkhead::new(config).map_err(|e| format!("config refused: {e}"))?;
    let mut tickets: HashMap<String, Ticket> = HashMap::new();
    let steps = v["steps"].as_array().ok_or("vector lacks steps")?;
    for (i, step) in steps.iter().enumerate() {
        let ctx = ctx(i, step);
        let now = at(step);
        let actual = match step["op"].as_str().unwrap_or("") {
            "enter" => {
                let entry = bulkhead.try_enter(now, opt_instant(&step["deadline"]));
                match entry {
                    Entry::Admitted => json!({"result": "admitted", "until": null, "reason": null}),
                    Entry::Queued { ticket, until } => {
                        if let Some(name) = step["as"].as_str() {
                            tickets.insert(name.to_owned(), ticket);
                        }
                        json!({"result": "queued", "until": until.map(ms), "reason": null})
                    }
                    Entry::Rejected { reason } => {
                        json!({"result": "rejected", "until": null, "reason": reason.as_str()})
                    }
                    other => return Err(format!("{ctx}: unknown entry {other:?}")),
                }
            }
            "release" => {
                let woke = bulkhead.release(now).map(|t| name_of(&tickets, t));
                json!({ "woke": woke })
            }
            "cancel" => {
                let name = label(step, "ticket")?;
                let ticket = *tickets
                    .get(name)
                    .ok_or_else(|| format!("{ctx}: no ticket labelled {name:?}"))?;
                let timed_out = step["timedOut"].as_bool().unwrap_or(false);
                json!(bulkhead.cancel(ticket, now, timed_out))
            }
            "stats" => {
                let m = bulkhead.metrics();
                json!({
                    "inFlight": m.in_flight,
                    "queued": m.queue_depth,
                    "queueDepth": m.queue_depth,
                    "queuedTotal": m.queued,
                    "admitted": m.admitted,
                    "woken": m.woken,
                    "rejectedFull": m.rejected_full,
                    "queueTimeouts": m.queue_timeouts,
                    "cancelled": m.cancelled,
                    "unmatchedReleases": m.unmatched_releases,
                    "maxConcurrent": m.max_concurrent,
                    "maxQueue": m.max_queue,
                })
            }
            "events" => {
                let drained: Vec<_> = std::iter::from_fn(|| bulkhead.poll_event()).collect();
                check_events(step, drained, &ctx)?;
                continue;
            }
            other => return Err(format!("{ctx}: unknown bulkhead op {other:?}")),
        };
        if step.get("expect").is_some() {
            check(&step["expect"], &actual, &ctx)?;
        }
    }
    Ok(())
}

/// The label a ticket was given, or `#n` for one the vector never labelled.
fn name_of(tickets: &HashMap<String, Ticket>, ticket: Ticket) -> String {
    tickets
        .iter()
        .find(|(_, t)| **t == ticket)
        .map_or_else(|| format!("#{}", ticket.get()), |(name, _)| name.clone())
}

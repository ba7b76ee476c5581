//! Vector ops for `fleet` (see tests/vectors/README.md): several pipelines ("instances",
//! seeded 1, 2, …) share a breaker and limits through one store. The store is a parameter,
//! as in `shared.rs`: the core answers with `MemoryStore`, the Redis adapters with the scripts.
use serde_json::{json, Value};
use tripwire_core::pipeline::{Pipeline, Report, Step};
use tripwire_core::store::{MemoryStore, StoreReply, StoreRequest};
use tripwire_core::ErrorKind;

use super::{at, check, ctx};

/// Runs a request on the store under test.
pub type Store<'a> = &'a mut dyn FnMut(&StoreRequest) -> StoreReply;

/// One call through `p` at the step's `at`, its attempt ending with the step's `outcome`:
/// `{"result": "ok" | "failed" | <error kind>, "requests": <store requests carried>}`.
fn call(p: &mut Pipeline, step: &Value, store: Store<'_>) -> Result<Value, String> {
    let now = at(step);
    let ok = match step["outcome"].as_str().unwrap_or("success") {
        "success" => true,
        "failure" => false,
        other => return Err(format!("unknown outcome {other:?}")),
    };
    let c = p.begin(now, None);
    let mut requests = 0;
    for _ in 0..16 {
        match p.poll(c, now).map_err(|e| e.as_str())? {
            Step::Store { request, .. } => {
                requests += 1;
                let r = p
                    .store_request(request)
                    .ok_or("a store step names its request")?
                    .clone();
                p.report_store(c, store(&r), now).map_err(|e| e.as_str())?;
            }
            Step::Attempt { .. } => {
                let report = if ok {
                    Report::SUCCESS
                } else {
                    Report::failure(false, None)
                };
                p.report(c, report, now).map_err(|e| e.as_str())?;
            }
            Step::Done { .. } => return Ok(json!({"result": "ok", "requests": requests})),
            Step::Fail(f) => {
                let result = if f.kind == ErrorKind::Failure {
                    "failed"
                } else {
                    f.kind.as_str()
                };
                return Ok(json!({"result": result, "requests": requests}));
            }
            other => return Err(format!("unexpected step {other:?}")),
        }
    }
    Err("a call did not end within 16 steps".into())
}

/// A `fleet` vector against `store`.
pub fn run_with(v: &Value, store: Store<'_>) -> Result<(), String> {
    if v["description"].as_str().is_none_or(str::is_empty) {
        return Err("a vector needs a description".into());
    }
    let n = v["instances"].as_u64().ok_or("instances")?;
    let mut fleet = Vec::new();
    for i in 0..n {
        let mut p =
            Pipeline::from_json(&v["config"].to_string(), i + 1).map_err(|e| e.to_string())?;
        p.use_store_host_clock(true);
        fleet.push(p);
    }
    for (i, step) in v["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let c = ctx(i, step);
        let k = step["instance"]
            .as_u64()
            .ok_or_else(|| format!("{c}: instance"))? as usize;
        let p = fleet
            .get_mut(k)
            .ok_or_else(|| format!("{c}: no instance {k}"))?;
        let actual = match step["op"].as_str().unwrap_or("") {
            "call" => call(p, step, &mut *store).map_err(|e| format!("{c}: {e}"))?,
            "state" => json!(p.breaker().ok_or("no breaker")?.state().as_str()),
            "share" => serde_json::to_value(p.stats().share).map_err(|e| e.to_string())?,
            other => return Err(format!("{c}: unknown op {other:?}")),
        };
        check(&step["expect"], &actual, &format!("{c} (instance {k})"))?;
    }
    Ok(())
}

/// A `fleet` vector against the in-memory store.
pub fn run(v: &Value) -> Result<(), String> {
    let mut memory = MemoryStore::new();
    run_with(v, &mut |r| memory.run(r, tripwire_core::Instant::ZERO))
}

//! Every `gcra` rate-limit vector and every `sharedRateLimit` vector, replayed through the
//! real script on a real Redis: decisions must equal the in-memory core's (the vectors'
//! answers). Needs `TRIPWIRE_REDIS_URL` (`scripts/ci/test-rust.sh` starts a private
//! redis-server); without it the test says so and passes nothing off as checked.
#![allow(clippy::print_stdout)]

#[path = "../../../core/tests/vectors/main.rs"]
#[allow(dead_code)]
mod vectors;

use serde_json::Value;
use tripwire_redis::RedisStore;

mod common;

#[test]
fn vectors_replay_through_the_redis_script() {
    let Some((client, mut admin)) = common::redis() else {
        return;
    };
    // Start with an empty script cache, so the EVAL count below is exact.
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut admin)
        .expect("SCRIPT FLUSH");
    let mut store = RedisStore::new(client);
    let mut files: Vec<_> = std::fs::read_dir(vectors::vectors_dir())
        .expect("tests/vectors exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut replayed, mut failures) = (0, Vec::new());
    for file in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("readable"))
            .expect("a JSON vector");
        let run = |store: &mut RedisStore| -> Option<Result<(), String>> {
            if vectors::shared::is_gcra(&v) {
                Some(vectors::shared::replay_gcra(&v, &mut |r| store.run(r)))
            } else if v["kind"] == "sharedRateLimit" {
                Some(vectors::shared::run_with(&v, &mut |r| store.run(r)))
            } else if v["kind"] == "fleet" {
                Some(vectors::fleet::run_with(&v, &mut |r| store.run(r)))
            } else {
                None
            }
        };
        // Each vector starts from an empty store (and an unloaded script, the first time).
        redis::cmd("FLUSHALL").exec(&mut admin).expect("FLUSHALL");
        if let Some(result) = run(&mut store) {
            replayed += 1;
            if let Err(e) = result {
                failures.push(format!("{}: {e}", file.display()));
            }
        }
    }
    println!(
        "{replayed} vectors replayed through Redis, {} failed",
        failures.len()
    );
    assert!(replayed >= 12, "the gcra and shared vectors are missing");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // FLUSHALL keeps the script cache: each script was loaded once (EVAL after NOSCRIPT).
    assert_eq!(
        store.evals, 2,
        "one EVAL per script (gcra, breaker): the rest are EVALSHAs"
    );
}

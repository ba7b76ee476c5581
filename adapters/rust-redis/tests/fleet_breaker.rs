//! The shared-breaker scenarios of `core/tests/fleet_breaker.rs` through the real script on
//! a real Redis (`TRIPWIRE_REDIS_URL`, started by `scripts/ci/test-rust.sh`).
#![allow(clippy::print_stdout)]

#[path = "../../../core/tests/fleet_breaker.rs"]
mod scenarios;

use tripwire_redis::RedisStore;

mod common;

#[test]
fn shared_breaker_scenarios_through_redis() {
    let Some((client, mut admin)) = common::redis() else {
        return;
    };
    let mut store = RedisStore::new(client);
    redis::cmd("FLUSHALL").exec(&mut admin).expect("FLUSHALL");
    scenarios::quorum_opens_and_one_prober_closes(&mut |r, _| store.run(r));
    redis::cmd("FLUSHALL").exec(&mut admin).expect("FLUSHALL");
    scenarios::failed_probe_reopens(&mut |r, _| store.run(r));
    let ttl: i64 = redis::cmd("PTTL")
        .arg("tw:{cb:fleet}:state")
        .query(&mut admin)
        .unwrap();
    assert!(ttl > 0, "the shared state must expire, got PTTL {ttl}");
    redis::cmd("FLUSHALL").exec(&mut admin).expect("FLUSHALL");
    scenarios::aggregate_needs_a_quorum_of_reporters(&mut |r, _| store.run(r));
    let ttl: i64 = redis::cmd("PTTL")
        .arg("tw:{cb:agg}:window")
        .query(&mut admin)
        .unwrap();
    assert!(ttl > 0, "the window must expire, got PTTL {ttl}");
}

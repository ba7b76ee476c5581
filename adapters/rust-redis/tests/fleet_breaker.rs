//! The shared-breaker scenarios of `core/tests/fleet_breaker.rs` through the real script on
//! a real Redis (`TRIPWIRE_REDIS_URL`, started by `scripts/ci/test-rust.sh`).
#![allow(clippy::print_stdout)]

#[path = "../../../core/tests/fleet_breaker.rs"]
mod scenarios;

use tripwire_redis::RedisStore;

#[test]
fn shared_breaker_scenarios_through_redis() {
    let Some(url) = std::env::var("TRIPWIRE_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!("TRIPWIRE_REDIS_URL unset: no Redis to run the scenarios on");
        assert!(
            std::env::var("TRIPWIRE_REQUIRE_REDIS").is_err(),
            "Redis is required here"
        );
        return;
    };
    let client = redis::Client::open(url.as_str()).expect("a valid Redis URL");
    let mut admin = client.get_connection().expect("Redis is up");
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

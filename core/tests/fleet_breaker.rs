//! A fleet of pipelines sharing one breaker through one store (`circuitBreaker.share`,
//! signal mode): votes, quorum, adoption, one prober, recovery, and the store going away.
//! The store is `MemoryStore` (the scripts' port); `adapters/rust-redis` runs the same
//! scenario through Redis.

use tripwire_core::pipeline::{Pipeline, Report, Step};
use tripwire_core::store::{MemoryStore, StoreReply, StoreRequest};
use tripwire_core::{BreakerState, ErrorKind, Instant};

fn ms(v: u64) -> Instant {
    Instant::from_nanos(v * 1_000_000)
}

const CONFIG: &str = r#"{
    "circuitBreaker": {"trip": {"consecutiveFailures": 2}, "openDuration": "3s",
                       "halfOpen": {"permittedCalls": 1, "successThreshold": 1},
                       "share": {"mode": "signal", "quorum": 2, "flush": "1s", "lease": "2s"}},
    "store": {"key": "fleet"}
}"#;

/// What one call ended with, and how many store requests it carried.
#[derive(Debug, PartialEq)]
enum End {
    Ok,
    Failed,
    Rejected(ErrorKind),
}

/// Runs a store request (the store under test); `now` is the host's, for stores without
/// their own clock.
pub type Store<'a> = &'a mut dyn FnMut(&StoreRequest, Instant) -> StoreReply;

/// Run one call at `now` whose attempt (if any) ends with `ok`; store requests go to
/// `store` (or are answered `Unavailable` when it is `None`).
fn call(p: &mut Pipeline, store: Option<Store<'_>>, now: Instant, ok: bool) -> (End, u32) {
    let mut store = store;
    let c = p.begin(now, None);
    let mut requests = 0;
    loop {
        match p.poll(c, now).unwrap() {
            Step::Store { request, .. } => {
                requests += 1;
                let r = p.store_request(request).unwrap().clone();
                let reply = match store.as_mut() {
                    Some(s) => s(&r, now),
                    None => StoreReply::Unavailable,
                };
                p.report_store(c, reply, now).unwrap();
            }
            Step::Attempt { .. } => {
                let report = if ok {
                    Report::SUCCESS
                } else {
                    Report::failure(false, None)
                };
                p.report(c, report, now).unwrap();
            }
            Step::Done { .. } => return (End::Ok, requests),
            Step::Fail(f) if f.kind == ErrorKind::Failure => return (End::Failed, requests),
            Step::Fail(f) => return (End::Rejected(f.kind), requests),
            other => panic!("unexpected step {other:?}"),
        }
    }
}

fn fleet(n: u64) -> Vec<Pipeline> {
    (0..n)
        .map(|i| {
            let mut p = Pipeline::from_json(CONFIG, i + 1).unwrap();
            p.use_store_host_clock(true);
            p
        })
        .collect()
}

#[test]
fn a_quorum_of_trips_opens_every_instance_and_one_prober_closes_it() {
    let mut memory = MemoryStore::new();
    quorum_opens_and_one_prober_closes(&mut |r, now| memory.run(r, now));
}

#[test]
fn a_failed_probe_reopens_the_fleet_for_every_instance() {
    let mut memory = MemoryStore::new();
    failed_probe_reopens(&mut |r, now| memory.run(r, now));
}

#[test]
fn aggregate_opens_on_fleet_sums_only_with_a_quorum_of_reporting_instances() {
    let mut memory = MemoryStore::new();
    aggregate_needs_a_quorum_of_reporters(&mut |r, now| memory.run(r, now));
}

const AGGREGATE: &str = r#"{
    "circuitBreaker": {"trip": {"failureRate": 0.5, "window": {"duration": "10s", "buckets": 10},
                                "minimumCalls": 10},
                       "openDuration": "5s",
                       "share": {"mode": "aggregate", "quorum": 2, "flush": "1s"}},
    "store": {"key": "agg"}
}"#;

/// Aggregate mode: one sick instance cannot open the fleet; two can, and the healthy one
/// adopts the open at its next flush.
pub fn aggregate_needs_a_quorum_of_reporters(store: Store<'_>) {
    let mut f: Vec<Pipeline> = (0..3)
        .map(|i| {
            let mut p = Pipeline::from_json(AGGREGATE, i + 10).unwrap();
            p.use_store_host_clock(true);
            p
        })
        .collect();
    // A: 10 calls, 6 failures: its own breaker trips. C: 10 successes.
    for t in 0..10 {
        let _ = call(&mut f[0], Some(&mut *store), ms(t), t % 5 < 2);
        let _ = call(&mut f[2], Some(&mut *store), ms(t), true);
    }
    assert_eq!(f[0].breaker().unwrap().state(), BreakerState::Open);
    // Their next flushes (due within 0.9–1.1 s) carry the outcomes: 20 calls, 6 failures,
    // one reporting instance — the fleet stays closed.
    let _ = call(&mut f[0], Some(&mut *store), ms(1_200), true);
    let _ = call(&mut f[2], Some(&mut *store), ms(1_200), true);
    let a = f[0].stats().share.unwrap();
    let c = f[2].stats().share.unwrap();
    assert_eq!(
        (a.fleet_calls, a.fleet_failures, a.fleet_reporters),
        (10, 6, 1)
    );
    assert_eq!(
        (c.fleet_calls, c.fleet_failures, c.fleet_reporters),
        (20, 6, 1)
    );
    assert_eq!(a.votes, 0, "aggregate mode does not vote");
    assert_eq!(
        c.fleet_state,
        BreakerState::Closed,
        "one sick instance opened the fleet"
    );
    // B fails 10 of 10; its flush makes 30 calls, 16 failures (53 %), two reporters: open.
    for t in 1_600..1_610 {
        let _ = call(&mut f[1], Some(&mut *store), ms(t), false);
    }
    let _ = call(&mut f[1], Some(&mut *store), ms(2_800), true);
    let b = f[1].stats().share.unwrap();
    assert_eq!(
        (b.fleet_calls, b.fleet_failures, b.fleet_reporters),
        (30, 16, 2)
    );
    assert_eq!(b.fleet_state, BreakerState::Open);
    let mut t = 2_800;
    // C, healthy and closed, adopts the fleet's open at its next flush.
    while f[2].breaker().unwrap().state() == BreakerState::Closed {
        t += 20;
        assert!(t < 4_000, "C never adopted");
        let _ = call(&mut f[2], Some(&mut *store), ms(t), true);
    }
    assert_eq!(f[2].stats().share.unwrap().adopted_open, 1);
}

/// Three instances: votes, quorum, adoption, one prober, recovery.
pub fn quorum_opens_and_one_prober_closes(store: Store<'_>) {
    let mut f = fleet(3);
    let state = |p: &Pipeline| p.breaker().unwrap().state();
    // Everybody syncs once at start: the fleet is closed, nothing is written.
    for p in &mut f {
        assert_eq!(call(p, Some(&mut *store), ms(0), true), (End::Ok, 1));
    }
    // A trips locally; its vote rides on its next call. One vote is below the quorum.
    call(&mut f[0], Some(&mut *store), ms(10), false);
    call(&mut f[0], Some(&mut *store), ms(11), false);
    assert_eq!(state(&f[0]), BreakerState::Open);
    assert_eq!(
        call(&mut f[0], Some(&mut *store), ms(12), true),
        (End::Rejected(ErrorKind::CircuitOpen), 1)
    );
    assert_eq!(f[0].stats().share.unwrap().votes, 1);
    assert_eq!(
        f[0].stats().share.unwrap().fleet_state,
        BreakerState::Closed
    );
    // C is healthy and not due for a sync: no round trip, still closed.
    assert_eq!(
        call(&mut f[2], Some(&mut *store), ms(20), true),
        (End::Ok, 0)
    );
    // B trips too: the second live vote opens the fleet (until 21 ms + 3 s).
    call(&mut f[1], Some(&mut *store), ms(20), false);
    call(&mut f[1], Some(&mut *store), ms(21), false);
    call(&mut f[1], Some(&mut *store), ms(21), true);
    assert_eq!(f[1].stats().share.unwrap().fleet_state, BreakerState::Open);
    // C adopts the open at its next sync (after its jittered flush, ≤ 1.1 s): refused.
    let mut t = 100;
    while state(&f[2]) == BreakerState::Closed {
        t += 50;
        assert!(t <= 1_200, "C never synced");
        let _ = call(&mut f[2], Some(&mut *store), ms(t), true);
    }
    assert_eq!(state(&f[2]), BreakerState::Open);
    assert_eq!(f[2].stats().share.unwrap().adopted_open, 1);
    assert_eq!(
        call(&mut f[2], Some(&mut *store), ms(t + 1), true).0,
        End::Rejected(ErrorKind::CircuitOpen)
    );
    // The fleet's open period (until 3021 ms) is over: A asks first and becomes the prober…
    let (end, requests) = call(&mut f[0], Some(&mut *store), ms(3_100), true);
    assert_eq!((end, requests), (End::Ok, 1));
    assert_eq!(f[0].stats().share.unwrap().probes_granted, 1);
    assert_eq!(state(&f[0]), BreakerState::Closed);
    // …while B, asking during A's lease, is refused and stays open.
    assert_eq!(
        call(&mut f[1], Some(&mut *store), ms(3_101), true).0,
        End::Rejected(ErrorKind::CircuitOpen)
    );
    assert_eq!(f[1].stats().share.unwrap().probes_denied, 1);
    // A's next call carries the probe's result: the fleet closes (generation 2).
    assert_eq!(
        call(&mut f[0], Some(&mut *store), ms(3_102), true),
        (End::Ok, 1)
    );
    assert_eq!(
        f[0].stats().share.unwrap().fleet_state,
        BreakerState::Closed
    );
    // B and C learn it at their next sync and close without probing themselves.
    for p in &mut f[1..] {
        let mut t = 3_110;
        while p.breaker().unwrap().state() != BreakerState::Closed {
            t += 50;
            assert!(t <= 5_000, "an instance never adopted the recovery");
            let _ = call(p, Some(&mut *store), ms(t), true);
        }
        assert_eq!(
            p.stats().share.unwrap().adopted_closed,
            1,
            "{:?} at {t}",
            p.stats().share
        );
        assert_eq!(p.stats().share.unwrap().probes_granted, 0);
    }
}

/// Two instances: a failed probe reopens the fleet; the other's probe is denied meanwhile.
pub fn failed_probe_reopens(store: Store<'_>) {
    let mut f = fleet(2);
    for p in &mut f {
        call(p, Some(&mut *store), ms(0), false);
        call(p, Some(&mut *store), ms(1), false);
        call(p, Some(&mut *store), ms(2), true); // the vote
    }
    assert_eq!(f[1].stats().share.unwrap().fleet_state, BreakerState::Open);
    // A probes at 3.1 s and fails: its result reopens the fleet for another 3 s.
    assert_eq!(
        call(&mut f[0], Some(&mut *store), ms(3_100), false),
        (End::Failed, 1)
    );
    assert_eq!(
        call(&mut f[0], Some(&mut *store), ms(3_101), true).0,
        End::Rejected(ErrorKind::CircuitOpen)
    );
    assert_eq!(f[0].stats().share.unwrap().fleet_state, BreakerState::Open);
    // B's probe inside the new open period is denied.
    assert_eq!(
        call(&mut f[1], Some(&mut *store), ms(3_200), true).0,
        End::Rejected(ErrorKind::CircuitOpen)
    );
    assert!(f[1].stats().share.unwrap().probes_denied >= 1);
}

#[test]
fn while_one_call_asks_for_the_probe_lease_the_others_wait_and_only_it_is_the_trial() {
    let mut store = MemoryStore::new();
    let mut f = fleet(2);
    for p in &mut f {
        call(p, Some(&mut |r, now| store.run(r, now)), ms(0), false);
        call(p, Some(&mut |r, now| store.run(r, now)), ms(1), false);
        call(p, Some(&mut |r, now| store.run(r, now)), ms(2), true); // the vote
    }
    // After the open period two calls of A arrive together: the first asks for the lease…
    let p = &mut f[0];
    let a = p.begin(ms(3_100), None);
    let Step::Store { request, .. } = p.poll(a, ms(3_100)).unwrap() else {
        panic!("the first call asks for the probe lease")
    };
    // …the second, meanwhile, is refused rather than taking the local trial slot.
    let b = p.begin(ms(3_100), None);
    match p.poll(b, ms(3_100)).unwrap() {
        Step::Fail(f) => assert_eq!(f.kind, ErrorKind::CircuitOpen),
        other => panic!("the second call must wait for the probe, got {other:?}"),
    }
    let r = p.store_request(request).unwrap().clone();
    p.report_store(a, store.run(&r, ms(3_100)), ms(3_100))
        .unwrap();
    assert!(
        matches!(p.poll(a, ms(3_100)).unwrap(), Step::Attempt { .. }),
        "the prober runs"
    );
    assert_eq!(p.breaker().unwrap().state(), BreakerState::HalfOpen);
    p.report(a, Report::SUCCESS, ms(3_101)).unwrap();
    assert!(matches!(p.poll(a, ms(3_101)).unwrap(), Step::Done { .. }));
    assert_eq!(p.stats().share.unwrap().probes_granted, 1);
    assert_eq!(p.stats().share.unwrap().probes_denied, 0);
}

#[test]
fn a_call_ends_even_when_every_poll_finds_a_sync_due() {
    // Found by the `store` fuzz target: a 1 ms flush polled every 5 ms made each poll of one
    // call ask for another sync, forever. A call carries at most three requests.
    let config = r#"{"circuitBreaker": {"trip": {"failureRate": 0.5, "window": {"duration": 400, "buckets": 4},
                                         "minimumCalls": 3}, "openDuration": 200,
                                         "share": {"mode": "aggregate", "quorum": 1, "flush": 1}},
                     "store": {"key": "k0"}}"#;
    let mut p = Pipeline::from_json(config, 1).unwrap();
    let mut store = MemoryStore::new();
    let c = p.begin(ms(1_000), None);
    let mut t = 1_000;
    let mut requests = 0;
    loop {
        t += 5;
        match p.poll(c, ms(t)).unwrap() {
            Step::Store { request, .. } => {
                requests += 1;
                let r = p.store_request(request).unwrap().clone();
                p.report_store(c, store.run(&r, ms(t)), ms(t)).unwrap();
            }
            Step::Attempt { .. } => p.report(c, Report::SUCCESS, ms(t)).unwrap(),
            Step::Done { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(requests <= 3, "a call carried {requests} store requests");
    }
}

#[test]
fn with_the_store_gone_every_instance_still_opens_on_its_own_thresholds() {
    let mut f = fleet(2);
    for p in &mut f {
        call(p, None, ms(0), false);
        call(p, None, ms(1), false);
        assert_eq!(p.breaker().unwrap().state(), BreakerState::Open);
        assert_eq!(
            call(p, None, ms(2), true).0,
            End::Rejected(ErrorKind::CircuitOpen)
        );
        assert!(p.stats().share.unwrap().failed >= 1);
    }
    // After three failed requests the store breaker opens: no more round trips for 500 ms.
    let p = &mut f[0];
    let _ = call(p, None, ms(3), true);
    let (_, requests) = call(p, None, ms(4), true);
    assert_eq!(requests, 0, "the store breaker stops asking a dead store");
    // Back after its open period: the local breaker probes alone and closes.
    let mut memory = MemoryStore::new();
    let mut t = 3_100;
    while p.breaker().unwrap().state() != BreakerState::Closed {
        let _ = call(p, Some(&mut |r, now| memory.run(r, now)), ms(t), true);
        t += 100;
        assert!(t < 6_000);
    }
}

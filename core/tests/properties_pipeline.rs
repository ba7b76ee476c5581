//! Property: random interleavings of up to 50 concurrent calls through a full pipeline keep
//! every invariant, and every call ends in exactly one `Done` or `Fail`.

use proptest::prelude::*;
use tripwire_core::pipeline::{CallId, Outcome, Pipeline, Report, Step};
use tripwire_core::{Instant, UsageError};

const CONFIG: &str = r#"{
  "rateLimit": {"rate": "200/s", "burst": 20, "maxWait": "20ms"},
  "bulkhead": {"maxConcurrent": 3, "maxQueue": 5, "maxWait": "50ms"},
  "circuitBreaker": {"trip": {"failureRate": 0.5, "window": {"calls": 10}, "minimumCalls": 4},
                     "openDuration": {"base": "50ms", "multiplier": 2, "max": "400ms"},
                     "halfOpen": {"permittedCalls": 2, "successThreshold": 2}},
  "retry": {"maxRetries": 2, "backoff": {"type": "exponential", "base": "5ms", "max": "40ms", "jitter": "full"},
            "budget": {"maxTokens": 10, "tokenRatio": 0.5}},
  "timeout": {"perAttempt": "30ms", "overall": "200ms"}
}"#;

#[derive(Clone, Debug)]
enum Op {
    Begin { deadline_ms: Option<u16> },
    Poll(usize),
    Report(usize, u8),
    Cancel(usize),
    Advance(u16),
    BackInTime(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::option::of(1u16..300).prop_map(|d| Op::Begin { deadline_ms: d }),
        6 => (0usize..50).prop_map(Op::Poll),
        5 => ((0usize..50), 0u8..5).prop_map(|(i, o)| Op::Report(i, o)),
        1 => (0usize..50).prop_map(Op::Cancel),
        3 => (0u16..80).prop_map(Op::Advance),
        1 => (0u16..50).prop_map(Op::BackInTime),
    ]
}

struct Live {
    id: CallId,
    running: bool,
}

fn report_for(code: u8) -> Report {
    match code {
        0 | 1 => Report::SUCCESS,
        2 => Report::failure(true, None),
        3 => Report::TIMEOUT,
        _ => Report {
            outcome: Outcome::Ignored,
            retryable: false,
            retry_after: None,
        },
    }
}

fn check_invariants(p: &Pipeline) -> Result<(), TestCaseError> {
    let s = p.stats();
    let b = s.bulkhead.expect("bulkhead configured");
    prop_assert!(b.in_flight <= 3, "bulkhead over capacity: {b:?}");
    prop_assert!(b.queue_depth <= 5, "queue over capacity: {b:?}");
    let ended = s.succeeded + s.failed.iter().sum::<u64>() + s.cancelled;
    prop_assert_eq!(s.calls, ended + s.in_flight);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_call_ends_once_and_nothing_leaks(ops in proptest::collection::vec(op(), 1..300)) {
        let mut p = Pipeline::from_json(CONFIG, 42).unwrap();
        let mut now_ms: u64 = 1000;
        let mut live: Vec<Live> = Vec::new();
        let mut ended = 0u64;
        let mut begun = 0u64;
        let t = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        for op in ops {
            match op {
                Op::Begin { deadline_ms } if live.len() < 50 => {
                    let id = p.begin(t(now_ms), deadline_ms.map(|d| t(now_ms + u64::from(d))));
                    live.push(Live { id, running: false });
                    begun += 1;
                }
                Op::Poll(i) if i < live.len() => {
                    match p.poll(live[i].id, t(now_ms)) {
                        Ok(Step::Attempt { deadline, .. }) => {
                            prop_assert!(deadline.is_some(), "the overall timeout bounds every attempt");
                            live[i].running = true;
                        }
                        Ok(Step::Done { .. }) | Ok(Step::Fail(_)) => {
                            live.remove(i);
                            ended += 1;
                        }
                        Ok(Step::Sleep { until }) => prop_assert!(until > t(now_ms)),
                        Ok(_) => {}
                        Err(UsageError::AttemptInFlight) => prop_assert!(live[i].running),
                        Err(e) => prop_assert!(false, "unexpected error {e}"),
                    }
                }
                Op::Report(i, code) if i < live.len() => {
                    let r = p.report(live[i].id, report_for(code), t(now_ms));
                    prop_assert_eq!(r.is_ok(), live[i].running);
                    live[i].running = false;
                }
                Op::Cancel(i) if i < live.len() => {
                    p.cancel(live[i].id, t(now_ms)).unwrap();
                    live.remove(i);
                    ended += 1;
                }
                Op::Advance(ms) => now_ms += u64::from(ms),
                Op::BackInTime(ms) => {
                    // The host's clock steps back; the pipeline must clamp, not panic.
                    let _ = p.poll_timeout();
                    now_ms = now_ms.saturating_sub(u64::from(ms)).max(1000);
                }
                _ => {}
            }
            while p.poll_wake().is_some() {}
            while p.poll_event().is_some() {}
            check_invariants(&p)?;
        }
        // Drive every remaining call to its end: success for every attempt.
        for _ in 0..10_000 {
            if live.is_empty() {
                break;
            }
            now_ms += 7;
            let mut i = 0;
            while i < live.len() {
                if live[i].running {
                    p.report(live[i].id, Report::SUCCESS, t(now_ms)).unwrap();
                    live[i].running = false;
                }
                match p.poll(live[i].id, t(now_ms)).unwrap() {
                    Step::Attempt { .. } => { live[i].running = true; i += 1; }
                    Step::Done { .. } | Step::Fail(_) => { live.remove(i); ended += 1; }
                    _ => i += 1,
                }
            }
            while p.poll_wake().is_some() {}
            check_invariants(&p)?;
        }
        prop_assert!(live.is_empty(), "calls never ended: {}", live.len());
        prop_assert_eq!(ended, begun);
        let s = p.stats();
        prop_assert_eq!(s.in_flight, 0);
        let b = s.bulkhead.unwrap();
        prop_assert_eq!(b.in_flight, 0, "a bulkhead slot leaked");
        prop_assert_eq!(b.queue_depth, 0, "a queue place leaked");
    }
}

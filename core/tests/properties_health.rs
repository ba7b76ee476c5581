//! Property tests of the health registry: random hosts (results, timeouts, breakers, clocks that
//! step back) never break its invariants.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use tripwire_core::health::{CheckConfig, CheckResult, CheckStatus, HealthRegistry, HealthStatus};
use tripwire_core::{BreakerState, Instant};

const NAMES: [&str; 3] = ["a", "b", "c"];
const STATES: [BreakerState; 5] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
    BreakerState::ForcedOpen,
    BreakerState::Disabled,
];

#[derive(Clone, Debug)]
enum Op {
    Register {
        name: usize,
        timeout_ms: u64,
        interval_ms: u64,
        fail: u32,
        succ: u32,
        critical: bool,
    },
    Unregister(usize),
    Due,
    DueAll,
    Report {
        name: usize,
        ok: bool,
        latency_ms: u64,
    },
    Expire,
    Breaker {
        name: usize,
        state: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..3usize,
            1..200u64,
            1..500u64,
            1..4u32,
            1..4u32,
            any::<bool>()
        )
            .prop_map(|(name, timeout_ms, interval_ms, fail, succ, critical)| {
                Op::Register {
                    name,
                    timeout_ms,
                    interval_ms,
                    fail,
                    succ,
                    critical,
                }
            }),
        (0..3usize).prop_map(Op::Unregister),
        Just(Op::Due),
        Just(Op::DueAll),
        (0..3usize, any::<bool>(), 0..300u64).prop_map(|(name, ok, latency_ms)| Op::Report {
            name,
            ok,
            latency_ms
        }),
        Just(Op::Expire),
        (0..2usize, 0..5usize).prop_map(|(name, state)| Op::Breaker { name, state }),
    ]
}

/// The overall rule, recomputed from the report alone.
fn overall_from_report(report: &Value) -> &'static str {
    let mut status = "healthy";
    for check in report["checks"].as_object().unwrap().values() {
        if check["status"] != "healthy" {
            if check["critical"] == true {
                return "unhealthy";
            }
            status = "degraded";
        }
    }
    let open = report["breakers"].as_object().unwrap().values().any(|b| {
        matches!(
            b["state"].as_str(),
            Some("open" | "halfOpen" | "forcedOpen")
        )
    });
    if open {
        status = "degraded";
    }
    status
}

proptest! {
    #[test]
    fn random_hosts_keep_the_invariants(
        ops in prop::collection::vec((op(), -50i64..400), 1..80)
    ) {
        let mut reg = HealthRegistry::new();
        let mut clock: i64 = 0;
        let mut high: u64 = 0;
        for (op, step) in ops {
            // The host clock wanders, sometimes backwards; the registry sees max(now, high).
            clock = (clock + step).max(0);
            let now_ms = clock as u64;
            let now = Instant::from_nanos(now_ms * 1_000_000);
            let was_running: Vec<bool> = NAMES
                .iter()
                .map(|n| reg.id(n).is_some_and(|id| reg.is_running(id)))
                .collect();
            match op {
                Op::Register { name, timeout_ms, interval_ms, fail, succ, critical } => {
                    let cfg = CheckConfig::default()
                        .with_timeout(Duration::from_millis(timeout_ms))
                        .with_interval(Duration::from_millis(interval_ms))
                        .with_failure_threshold(fail)
                        .with_success_threshold(succ)
                        .with_critical(critical);
                    let existed = reg.id(NAMES[name]).is_some();
                    prop_assert_eq!(reg.register(NAMES[name], cfg).is_err(), existed);
                    let id = reg.id(NAMES[name]).unwrap();
                    if !existed {
                        prop_assert_eq!(reg.check_status(id), Some(CheckStatus::Pending));
                    }
                }
                Op::Unregister(name) => {
                    let existed = reg.id(NAMES[name]).is_some();
                    prop_assert_eq!(reg.unregister(NAMES[name]), existed);
                    prop_assert!(reg.id(NAMES[name]).is_none());
                }
                Op::Due | Op::DueAll => {
                    let due = if matches!(op, Op::Due) { reg.due(now) } else { reg.due_all(now) };
                    high = high.max(now_ms);
                    let mut last: Option<&str> = None;
                    for d in &due {
                        let name = reg.name(d.id).unwrap();
                        prop_assert!(last.is_none_or(|l| l < name), "name order");
                        last = Some(name);
                        let timeout = reg.config(d.id).unwrap().timeout.nanos();
                        prop_assert_eq!(d.deadline.as_nanos(), high * 1_000_000 + timeout);
                        prop_assert!(reg.is_running(d.id));
                    }
                    if matches!(op, Op::Due) {
                        // Nothing is left due or overdue: the next callback is in the future.
                        if let Some(t) = reg.poll_timeout() {
                            prop_assert!(t.as_nanos() > high * 1_000_000, "{t:?} <= {high}ms");
                        }
                    } else {
                        // Every check is running afterwards: started now or left running.
                        for id in reg.ids().collect::<Vec<_>>() {
                            prop_assert!(reg.is_running(id));
                        }
                    }
                }
                Op::Report { name, ok, latency_ms } => {
                    let Some(id) = reg.id(NAMES[name]) else { continue };
                    let before = reg.metrics();
                    let result = CheckResult {
                        ok,
                        latency: Duration::from_millis(latency_ms),
                        error: (!ok).then_some("boom"),
                    };
                    prop_assert!(reg.report(id, result, now).is_ok());
                    high = high.max(now_ms);
                    prop_assert!(!reg.is_running(id));
                    let after = reg.metrics();
                    if was_running[name] {
                        prop_assert_eq!(after.successes + after.failures, before.successes + before.failures + 1);
                    } else {
                        prop_assert_eq!(after.ignored_reports, before.ignored_reports + 1);
                    }
                }
                Op::Expire => {
                    reg.expire(now);
                    high = high.max(now_ms);
                }
                Op::Breaker { name, state } => reg.set_breaker(NAMES[name], STATES[state]),
            }
            let report = reg.report_json("t");
            prop_assert_eq!(report["status"].as_str().unwrap(), reg.status().as_str());
            prop_assert_eq!(overall_from_report(&report), reg.status().as_str());
            let code = reg.status().http_status();
            prop_assert_eq!(code == 503, reg.status() == HealthStatus::Unhealthy);
            let m = reg.metrics();
            prop_assert_eq!(m.checks as usize, reg.len());
            prop_assert_eq!(m.pending + m.healthy + m.unhealthy, m.checks);
            prop_assert!(m.runs >= m.successes + m.failures + m.running);
            if reg.poll_timeout().is_none() {
                prop_assert!(reg.is_empty());
            }
            while reg.poll_event().is_some() {}
        }
    }

    /// The status follows the kubelet's rule: it changes only when a run of identical results
    /// reaches that result's threshold.
    #[test]
    fn hysteresis_matches_the_threshold_model(
        fail in 1..5u32,
        succ in 1..5u32,
        outcomes in prop::collection::vec(any::<bool>(), 1..60),
    ) {
        let mut reg = HealthRegistry::new();
        let cfg = CheckConfig::default()
            .with_failure_threshold(fail)
            .with_success_threshold(succ);
        let id = reg.register("db", cfg).unwrap();
        let (mut status, mut run_ok, mut run_len) = (CheckStatus::Pending, true, 0u32);
        for (i, ok) in outcomes.into_iter().enumerate() {
            let now = Instant::from_nanos(i as u64 * 1_000_000);
            let due = reg.due_all(now);
            prop_assert_eq!(due.len(), 1);
            let result = CheckResult { ok, latency: Duration::ZERO, error: None };
            reg.report(id, result, now).unwrap();
            run_len = if ok == run_ok { run_len + 1 } else { 1 };
            run_ok = ok;
            if ok && run_len >= succ {
                status = CheckStatus::Healthy;
            } else if !ok && run_len >= fail {
                status = CheckStatus::Unhealthy;
            }
            prop_assert_eq!(reg.check_status(id), Some(status));
        }
    }

    /// A result at or after the deadline is always a timeout; one before it never is.
    #[test]
    fn the_deadline_decides_timeouts(
        start in 0..1_000_000u64,
        timeout in 1..10_000u64,
        after in 0..20_000u64,
        ok in any::<bool>(),
    ) {
        let mut reg = HealthRegistry::new();
        let cfg = CheckConfig::default().with_timeout(Duration::from_nanos(timeout));
        let id = reg.register("db", cfg).unwrap();
        let due = reg.due(Instant::from_nanos(start));
        prop_assert_eq!(due[0].deadline, Instant::from_nanos(start + timeout));
        let result = CheckResult { ok, latency: Duration::from_nanos(after), error: Some("x") };
        reg.report(id, result, Instant::from_nanos(start + after)).unwrap();
        let report = reg.report_json("");
        let error = &report["checks"]["db"]["error"];
        if after >= timeout {
            prop_assert_eq!(error, "timeout");
            prop_assert_eq!(reg.metrics().timeouts, 1);
        } else if ok {
            prop_assert!(error.is_null());
        } else {
            prop_assert_eq!(error, "x");
        }
    }
}

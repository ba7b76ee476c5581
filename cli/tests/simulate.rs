//! The simulator: deterministic, and on the outage scenario the example policy beats no policy
//! and naive retries by the obvious measures.

use std::path::{Path, PathBuf};
use std::process::Command;

use tripwire_cli::scenario::{builtin, Scenario, Trace, SEC};
use tripwire_cli::sim::Source;
use tripwire_cli::{policy, simulate, PolicyInfo, Simulation};
use tripwire_core::BreakerState;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn default_policy() -> (tripwire_core::pipeline::PipelineConfig, String) {
    let text = std::fs::read_to_string(root().join("examples/policies/default.json")).unwrap();
    policy::load_pipeline(&text, None).unwrap()
}

fn run(source: &Source, seed: u64) -> Simulation {
    let (config, name) = default_policy();
    let info = PolicyInfo {
        file: "examples/policies/default.json".into(),
        name,
    };
    simulate(source, &config, info, seed, &mut |_, _| {})
}

fn outage(seed: u64) -> Simulation {
    run(&Source::Model(builtin("outage").unwrap()), seed)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tripwire-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn same_seed_same_json_other_seed_other_json() {
    let a = serde_json::to_string(&outage(7)).unwrap();
    let b = serde_json::to_string(&outage(7)).unwrap();
    assert_eq!(a, b);
    let c = serde_json::to_string(&outage(8)).unwrap();
    assert_ne!(a, c);
}

#[test]
fn the_cli_writes_identical_json_for_the_same_seed() {
    let bin = env!("CARGO_BIN_EXE_tripwire");
    let mut outputs = Vec::new();
    for i in 0..2 {
        let json = temp(&format!("det-{i}.json"));
        let svg = temp(&format!("det-{i}.svg"));
        let out = Command::new(bin)
            .current_dir(root())
            .args(["simulate", "--policy", "examples/policies/default.json"])
            .args(["--scenario", "brownout", "--seed", "3", "--json"])
            .arg(&json)
            .arg("--svg")
            .arg(&svg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("naive retries"), "{stdout}");
        assert!(stdout.contains("timeline: "), "{stdout}");
        outputs.push((
            std::fs::read_to_string(&json).unwrap(),
            std::fs::read_to_string(&svg).unwrap(),
        ));
    }
    assert_eq!(outputs[0], outputs[1]);
    let parsed: serde_json::Value = serde_json::from_str(&outputs[0].0).unwrap();
    assert_eq!(parsed["runs"].as_array().unwrap().len(), 3);
    assert_eq!(parsed["seed"], 3);
    assert!(outputs[0].1.starts_with("<svg ") && outputs[0].1.trim_end().ends_with("</svg>"));
}

#[test]
fn the_policy_beats_no_policy_and_naive_retries_on_the_outage() {
    let sim = outage(1);
    let [none, naive, policy] = [&sim.runs[0], &sim.runs[1], &sim.runs[2]];
    let (n, r, p) = (&none.summary, &naive.summary, &policy.summary);
    assert_eq!(n.calls, p.calls, "every run replays the same arrivals");
    assert_eq!(r.calls, p.calls);

    // Callers are answered fast during the outage instead of hanging.
    assert_eq!(n.rejected_fast, 0);
    assert_eq!(r.rejected_fast, 0);
    assert!(p.rejected_fast > 2000, "{p:?}");
    // No caller of the policy waits past its 2 s overall deadline (plus a bulkhead wait).
    assert!(
        p.p99_ms < 2300.0 && n.p99_ms >= 9000.0 && r.p99_ms > n.p99_ms,
        "{p:?}"
    );
    assert!(p.p50_ms < n.p50_ms, "{p:?}");
    assert!(p.peak_in_flight * 10 < n.peak_in_flight, "{p:?} vs {n:?}");

    // The downstream gets less load, not more.
    assert!((n.amplification - 1.0).abs() < 1e-9);
    assert!(r.amplification > 1.5, "{r:?}");
    assert!(p.amplification < 0.8, "{p:?}");

    // During the outage's middle the policy sends almost nothing downstream.
    let sent = |run: &tripwire_cli::sim::Run| -> u64 {
        run.timeline[20..44].iter().map(|s| s.attempts).sum()
    };
    assert!(
        sent(policy) * 20 < sent(none),
        "{} vs {}",
        sent(policy),
        sent(none)
    );

    // Naive retries turn the recovery into a retry storm; the policy recovers sooner.
    let (pr, rr) = (p.recovery_ms.unwrap(), r.recovery_ms.unwrap());
    assert!(pr < rr, "policy {pr} ms vs naive {rr} ms");
    assert!(pr <= 6000.0, "{pr}");

    // The breaker opened a few seconds into the outage (failures reach it only as calls hit
    // their 2 s deadline, 32 at a time through the bulkhead) and closed soon after it.
    let opened = policy
        .breaker
        .iter()
        .find(|t| t.to == BreakerState::Open)
        .expect("the breaker opened");
    assert!((15_000.0..20_000.0).contains(&opened.at_ms), "{opened:?}");
    let last = policy.breaker.last().unwrap();
    assert_eq!(last.to, BreakerState::Closed);
    assert!(last.at_ms > 45_000.0 && last.at_ms < 52_000.0, "{last:?}");
    assert_eq!(p.breaker_transitions, policy.breaker.len() as u64);
    assert_eq!(policy.pipeline_stats.calls, p.calls);
    assert_eq!(policy.pipeline_stats.attempts, p.downstream_attempts);
    assert_eq!(policy.pipeline_stats.in_flight, 0, "every call finished");
    assert_eq!(policy.timeline.len(), 75);
}

#[test]
fn every_builtin_scenario_runs_and_accounts_for_every_call() {
    for name in tripwire_cli::scenario::BUILTIN {
        let sim = run(&Source::Model(builtin(name).unwrap()), 2);
        for r in &sim.runs {
            let s = &r.summary;
            assert_eq!(
                s.succeeded + s.failed + s.rejected_fast,
                s.calls,
                "{name} {}",
                r.label
            );
            assert_eq!(s.failures.values().sum::<u64>(), s.failed + s.rejected_fast);
            let ended: u64 = r
                .timeline
                .iter()
                .map(|t| t.succeeded + t.failed + t.rejected)
                .sum();
            assert!(ended <= s.calls);
        }
    }
}

#[test]
fn a_scenario_file_is_read_and_its_errors_name_the_field() {
    let s = Scenario::from_json(
        r#"{"name": "tiny", "duration": "5s", "clients": {"rate": 20},
            "downstream": {"capacity": 50, "latency": {"median": "10ms", "p99": "40ms"},
                           "windows": [{"from": "1s", "to": "3s", "mode": "down"}]}}"#,
    )
    .unwrap();
    let sim = run(&Source::Model(s), 1);
    assert!(sim.runs[0].summary.failed > 10);
    let path = temp("bad-scenario.json");
    std::fs::write(
        &path,
        r#"{"duration": "5s", "clients": {"rate": 20}, "downstream": {"capacity": 50,
            "latency": {"median": "10ms", "p99": "40ms"}, "windows": [{"from": "3s", "to": "1s"}]}}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .current_dir(root())
        .args([
            "simulate",
            "--policy",
            "examples/policies/default.json",
            "--scenario",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("downstream.windows[0].to: must be after `from`"),
        "{err}"
    );
}

/// 40 s of calls every 50 ms; from 10 s to 20 s every call fails with a 503.
fn bad_afternoon() -> String {
    let origin = 1_718_114_400_000u64; // 2024-06-11 14:00:00 UTC
    let mut csv = String::from("timestamp_ms,outcome,latency_ms\n");
    for i in 0..800u64 {
        let t = i * 50;
        let failing = (10_000..20_000).contains(&t);
        let (outcome, latency) = if failing { ("503", 3) } else { ("200", 25) };
        csv.push_str(&format!("{},{outcome},{latency}\n", origin + t));
    }
    csv
}

#[test]
fn a_recorded_trace_shows_when_the_breaker_would_have_opened_and_closed() {
    let trace = Trace::from_csv("tuesday.csv", &bad_afternoon()).unwrap();
    assert!(trace.is_epoch());
    let sim = run(&Source::Trace(trace), 1);
    let policy = sim.policy_run();
    let opened = policy
        .breaker
        .iter()
        .find(|t| t.to == BreakerState::Open)
        .unwrap();
    // 100 calls of window, 50% to trip: 50 failures after 10 s of successes, 20 calls a second.
    assert!((11_000.0..13_500.0).contains(&opened.at_ms), "{opened:?}");
    let last = policy.breaker.last().unwrap();
    assert_eq!(last.to, BreakerState::Closed);
    assert!((20_000.0..26_000.0).contains(&last.at_ms), "{last:?}");
    // Replayed as recorded, no policy fails exactly the failing quarter.
    assert_eq!(sim.runs[0].summary.failed, 200);
    assert!(policy.summary.rejected_fast > 100);

    let path = temp("tuesday.csv");
    std::fs::write(&path, bad_afternoon()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .current_dir(root())
        .args([
            "simulate",
            "--policy",
            "examples/policies/default.json",
            "--scenario",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("trace tuesday.csv: 800 recorded calls"),
        "{stdout}"
    );
    assert!(stdout.contains("opened 1 time,"), "{stdout}");
    assert!(stdout.contains("  open 2024-06-11 14:00:1"), "{stdout}");
    assert!(stdout.contains("→ closed 2024-06-11 14:00:2"), "{stdout}");
}

#[test]
fn sixty_seconds_at_a_hundred_calls_per_second_is_fast() {
    // Not a benchmark: a guard that virtual time never turns into real waiting.
    let s = builtin("overload").unwrap();
    assert!(s.duration.nanos() >= 60 * SEC);
    #[allow(clippy::disallowed_methods)]
    let t = std::time::Instant::now();
    let sim = run(&Source::Model(s), 1);
    assert!(sim.runs[0].summary.calls > 7000);
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}

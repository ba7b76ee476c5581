//! `tripwire validate`: exit codes and `path: reason` messages from the core.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validate(files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .arg("validate")
        .args(files)
        .output()
        .unwrap()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tripwire-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_example_policy_is_valid() {
    let dir = root().join("examples/policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = validate(&refs);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("default.json: ok, 1 pipeline"), "{stdout}");
    assert!(
        stdout.contains("api: fallback → rateLimit → bulkhead → circuitBreaker → retry → timeout"),
        "{stdout}"
    );
    assert_eq!(stdout.matches(": ok, ").count(), files.len());
}

#[test]
fn each_issue_is_printed_as_path_and_reason_with_exit_1() {
    let bad = temp_file(
        "bad.json",
        r#"{"policies": {"api": {
            "circuitBreaker": {"halfOpen": {"permittedCalls": 0}},
            "timeout": {"perAttempt": 0},
            "retry": {"backoff": {"base": "10s", "max": "1s"}}}}}"#,
    );
    let out = validate(&[&bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.contains(&"policies.api.circuitBreaker.halfOpen.permittedCalls: must be >= 1, got 0"),
        "{stderr}"
    );
    assert!(
        lines.contains(&"policies.api.timeout.perAttempt: must be > 0, got 0"),
        "{stderr}"
    );
    assert!(
        lines.contains(&"policies.api.retry.backoff.base: must be <= max (1000ms), got 10000ms"),
        "{stderr}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("bad.json: invalid (3 issues)"),
        "{stderr}"
    );
}

#[test]
fn unknown_fields_bad_units_and_broken_json_are_named() {
    let cases = [
        (
            r#"{"policies": {"api": {"retry": {"maxRetires": 3}}}}"#,
            "policies.api.retry.maxRetires: unknown field `maxRetires`",
        ),
        (
            r#"{"policies": {"api": {"timeout": {"perAttempt": "5 parsecs"}}}}"#,
            "policies.api.timeout.perAttempt: invalid duration",
        ),
        (
            r#"{"policies": {"api": {"rateLimit": {"rate": "fast"}}}}"#,
            "policies.api.rateLimit.rate: invalid rate",
        ),
        (r#"{"policies": {"api": {}}"#, "invalid JSON"),
        (
            r#"{"pipelines": {}}"#,
            "pipelines: unknown field `pipelines`",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let f = temp_file(&format!("case{i}.json"), text);
        let out = validate(&[&f]);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.lines().next().unwrap().starts_with(expected),
            "{text}: {stderr}"
        );
    }
}

#[test]
fn one_bad_file_among_good_ones_fails_the_run() {
    let good = root().join("examples/policies/default.json");
    let bad = temp_file(
        "bad2.json",
        r#"{"policies": {"x": {"bulkhead": {"maxConcurrent": 0}}}}"#,
    );
    let out = validate(&[&good, &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("default.json: ok"));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("policies.x.bulkhead.maxConcurrent: must be >= 1, got 0"));
}

#[test]
fn a_missing_file_is_an_error() {
    let out = validate(&[Path::new("/nonexistent/policy.json")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("cannot read"));
}

#[test]
fn help_reads_well() {
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for word in ["simulate", "validate", "schema", "scenario"] {
        assert!(help.contains(word), "{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .args(["simulate", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--policy",
        "--name",
        "--scenario",
        "--seed",
        "--svg",
        "--json",
        "timestamp_ms,outcome,latency_ms",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
}

//! The JSON Schema: valid draft 2020-12, printed by `tripwire schema`, and in agreement with the
//! core's parser on every example policy and every pipeline or policy-file vector.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema() -> Value {
    serde_json::from_str(tripwire_cli::SCHEMA).expect("the schema is JSON")
}

/// A validator for the policy file (the schema's root).
fn file_validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

/// A validator for a bare pipeline config: the schema's `$defs/pipeline`.
fn pipeline_validator() -> jsonschema::Validator {
    let s = schema();
    let pipeline = json!({
        "$schema": s["$schema"],
        "$ref": "#/$defs/pipeline",
        "$defs": s["$defs"],
    });
    jsonschema::draft202012::new(&pipeline).expect("the pipeline schema compiles")
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_schema_is_valid_draft_2020_12() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(jsonschema::meta::is_valid(&s));
    assert!(jsonschema::draft202012::meta::is_valid(&s));
}

#[test]
fn tripwire_schema_prints_the_schema_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let on_disk = std::fs::read_to_string(root().join("schema/tripwire.schema.json")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), on_disk);
}

#[test]
fn accepts_every_example_policy() {
    let v = file_validator();
    let files = json_files(&root().join("examples/policies"));
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(errors(&v, &doc), Vec::<String>::new(), "{}", f.display());
    }
}

#[test]
fn accepts_every_pipeline_and_policy_file_vector() {
    let file = file_validator();
    let pipeline = pipeline_validator();
    let mut checked = 0;
    for f in json_files(&root().join("tests/vectors")) {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let validator = match doc["kind"].as_str() {
            Some("pipeline") => &pipeline,
            Some("policyFile") => &file,
            _ => continue,
        };
        assert_eq!(
            errors(validator, &doc["config"]),
            Vec::<String>::new(),
            "{}",
            f.display()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} vectors checked");
}

#[test]
fn rejects_unknown_fields_everywhere() {
    let file = file_validator();
    let pipeline = pipeline_validator();
    assert!(!file.is_valid(&json!({"policies": {}, "version": 2})));
    assert!(!file.is_valid(&json!({"policies": {"api": {"retries": 3}}})));
    assert!(!pipeline.is_valid(&json!({"retry": {"maxRetries": 3, "jitter": "full"}})));
    assert!(!pipeline.is_valid(
        &json!({"circuitBreaker": {"trip": {"consecutiveFailures": 3, "window": {"calls": 10}}}})
    ));
    assert!(!pipeline.is_valid(&json!({"bulkhead": {"maxConcurrent": 2, "queue": 3}})));
    assert!(
        !pipeline.is_valid(&json!({"rateLimit": {"rate": {"limit": 5, "period": "1s", "per": 1}}}))
    );
    assert!(file.is_valid(&json!({"policies": {}})));
    assert!(!file.is_valid(&json!({})), "policies is required");
}

#[test]
fn rejects_what_the_core_refuses_where_a_schema_can_say_it() {
    let p = pipeline_validator();
    let bad = [
        json!({"timeout": {"perAttempt": "5 parsecs"}}),
        json!({"timeout": {"perAttempt": "250"}}),
        json!({"timeout": {"perAttempt": -1}}),
        json!({"timeout": {"perAttempt": 0}}),
        json!({"rateLimit": {"rate": "0/s"}}),
        json!({"rateLimit": {"rate": "fast"}}),
        json!({"rateLimit": []}),
        json!({"rateLimit": {"rate": "5/s", "algorithm": "leakyBucket"}}),
        json!({"bulkhead": {"maxConcurrent": 0}}),
        json!({"circuitBreaker": {"halfOpen": {"permittedCalls": 0}}}),
        json!({"circuitBreaker": {"trip": {"failureRate": 1.5, "window": {"calls": 10}}}}),
        json!({"circuitBreaker": {"trip": {"failureRate": 0.5}}}),
        json!({"circuitBreaker": {"trip": {"failureRate": 0.5, "window": {"calls": 10}, "slowCallRate": 0.5}}}),
        json!({"circuitBreaker": {"openDuration": {"base": "1s"}}}),
        json!({"retry": {"backoff": {"type": "fibonacci"}}}),
        json!({"retry": {"backoff": {"multiplier": 0.5}}}),
        json!({"retry": {"pushback": "everyone"}}),
        json!({"order": ["retry", "retry"]}),
        json!({"order": ["cache"]}),
        json!({"seed": -1}),
    ];
    for config in bad {
        assert!(!p.is_valid(&config), "the schema accepted {config}");
        // The core refuses every one of them too.
        assert!(
            tripwire_core::pipeline::PipelineConfig::from_json(&config.to_string()).is_err(),
            "the core accepted {config}"
        );
    }
    // `invalidConfig` is not a way a call can fail, so no fallback can apply to it; the core
    // parses it (and never uses it), the schema flags it.
    assert!(!p.is_valid(&json!({"fallback": {"on": ["invalidConfig"]}})));
    let good = [
        json!({}),
        json!({"timeout": {"perAttempt": "1m30s", "overall": null}}),
        json!({"timeout": {"perAttempt": 0.5}}),
        json!({"rateLimit": [{"rate": "5/10s"}, {"rate": {"limit": 1000, "period": "1h"}, "algorithm": "gcra"}]}),
        json!({"rateLimit": {"rate": "100/m", "burst": 3, "maxWait": "250ms"}}),
        json!({"bulkhead": {"maxWait": null, "maxQueue": 0}}),
        json!({"circuitBreaker": {"trip": {"failureRate": 0.5, "window": {"duration": "60s"}, "slowCallRate": 1, "slowCallDuration": "2s"}, "openDuration": {"base": "5s", "max": "5m"}}}),
        json!({"retry": {"maxRetries": 0, "budget": null, "maxElapsed": "10s", "backoff": {"jitter": "decorrelated"}}}),
        json!({"order": ["fallback", "retry", "circuitBreaker"], "seed": 18446744073709551615u64}),
    ];
    for config in good {
        assert_eq!(errors(&p, &config), Vec::<String>::new(), "{config}");
        assert!(
            tripwire_core::pipeline::PipelineConfig::from_json(&config.to_string()).is_ok(),
            "the core refused {config}"
        );
    }
}

#[test]
fn documents_every_property_with_a_description() {
    // Every property of every object in the schema says what it means.
    fn walk(v: &Value, path: &str, missing: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        let described = prop.get("description").is_some()
                            || prop
                                .get("$ref")
                                .and_then(Value::as_str)
                                .is_some_and(|r| r.starts_with("#/$defs/"));
                        if !described {
                            missing.push(format!("{path}.{name}"));
                        }
                    }
                }
                for (k, child) in map {
                    walk(child, &format!("{path}/{k}"), missing);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(&schema(), "", &mut missing);
    assert_eq!(missing, Vec::<String>::new());
}

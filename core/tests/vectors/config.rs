//! Config-error vectors: the first issue's `path: reason` must start with `expectError`.

use serde_json::Value;
use tripwire_core::pipeline::{PipelineConfig, PolicyFile};

pub fn run(v: &Value) -> Result<(), String> {
    let text = match v["configText"].as_str() {
        Some(t) => t.to_owned(),
        None => v["config"].to_string(),
    };
    let expect = v["expectError"]
        .as_str()
        .ok_or("config vector lacks expectError")?;
    let err = match v["target"].as_str().unwrap_or("") {
        "policyFile" => PolicyFile::from_json(&text).err(),
        "pipeline" => PipelineConfig::from_json(&text).err(),
        "circuitBreaker" => tripwire_core::breaker::BreakerConfig::from_json(&text).err(),
        "retry" => tripwire_core::retry::RetryConfig::from_json(&text).err(),
        "timeout" => {
            tripwire_core::config::from_json_str::<tripwire_core::deadline::TimeoutConfig>(&text)
                .and_then(|t| t.validate())
                .err()
        }
        "bulkhead" => tripwire_core::bulkhead::BulkheadConfig::from_json(&text).err(),
        "rateLimit" => tripwire_core::rate_limit::RateLimitConfig::from_json(&text).err(),
        other => return Err(format!("unknown target {other:?}")),
    };
    let err =
        err.ok_or_else(|| format!("expected the error {expect:?}, but the config was accepted"))?;
    let first = err.issues()[0].to_string();
    if first.starts_with(expect) {
        Ok(())
    } else {
        Err(format!(
            "expected an error starting {expect:?}, got {first:?}"
        ))
    }
}

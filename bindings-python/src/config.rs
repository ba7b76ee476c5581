//! Config validation by target (the config-error vectors and `tripwire.validate`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tripwire_core::pipeline::{PipelineConfig, PolicyFile};
use tripwire_core::ConfigError;

use crate::errors;

/// Validate `text` as `target` (`policyFile`, `pipeline`, `circuitBreaker`, `retry`,
/// `timeout`, `bulkhead`, `rateLimit`, `keyedRateLimit`, `health`, `healthCheck`, `store`,
/// `sharedRateLimit`); raises
/// `ConfigError` with every issue.
#[pyfunction]
pub fn validate(py: Python<'_>, target: &str, text: &str) -> PyResult<()> {
    let result: Result<(), ConfigError> = match target {
        "policyFile" => PolicyFile::from_json(text).map(drop),
        "pipeline" => PipelineConfig::from_json(text).map(drop),
        "circuitBreaker" => tripwire_core::BreakerConfig::from_json(text).map(drop),
        "retry" => tripwire_core::RetryConfig::from_json(text).map(drop),
        "timeout" => {
            <tripwire_core::deadline::TimeoutConfig as tripwire_core::FromTree>::from_json_str(text)
                .and_then(|t| t.validate())
        }
        "bulkhead" => tripwire_core::BulkheadConfig::from_json(text).map(drop),
        "rateLimit" => tripwire_core::RateLimitConfig::from_json(text).map(drop),
        "keyedRateLimit" => tripwire_core::KeyedRateLimitConfig::from_json(text).map(drop),
        "health" => tripwire_core::HealthConfig::from_json(text).map(drop),
        "healthCheck" => tripwire_core::CheckConfig::from_json(text).map(drop),
        "store" => tripwire_core::StoreConfig::from_json(text).map(drop),
        "sharedRateLimit" => tripwire_core::SharedLimiter::from_json(text, 0).map(drop),
        other => {
            return Err(PyValueError::new_err(format!(
                "target: not a config kind: {other:?}"
            )))
        }
    };
    result.map_err(|e| errors::config_error(py, &e))
}

//! `tw_config_validate`: check a configuration without building anything (editors, CI, the
//! `tripwire validate` equivalent for C hosts).

use std::ffi::c_char;

use tripwire_core::deadline::TimeoutConfig;
use tripwire_core::pipeline::{PipelineConfig, PolicyFile};
use tripwire_core::FromTree;
use tripwire_core::{
    BreakerConfig, BulkheadConfig, ConfigError, HealthConfig, KeyedRateLimitConfig,
    RateLimitConfig, RetryConfig,
};

use crate::error::{guard, tw_error, tw_status, Error};
use crate::util::{c_names, json};

/// Which kind of configuration a JSON text is.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_config_target {
    /// `{"seed"?, "policies": {name: pipeline}}`.
    PolicyFile = 0,
    /// One pipeline.
    Pipeline = 1,
    /// A circuit breaker.
    CircuitBreaker = 2,
    /// A retry policy.
    Retry = 3,
    /// `{"perAttempt", "overall"}`.
    Timeout = 4,
    /// A bulkhead.
    Bulkhead = 5,
    /// One rate limit or a list.
    RateLimit = 6,
    /// `{"limit", "maxKeys", "idleExpiry"}`.
    KeyedRateLimit = 7,
    /// `{"checks": {...}}`.
    Health = 8,
}

/// A ::tw_config_target as C passes it (validated before use).
pub type RawConfigTarget = u32;

fn validate(target: RawConfigTarget, text: &str) -> Result<(), Error> {
    // What tw_policies_new and tw_health_new accept: names C can carry, too.
    let result: Result<(), ConfigError> = match target {
        0 => return c_names("policies", PolicyFile::from_json(text)?.policies.keys()),
        1 => PipelineConfig::from_json(text).map(drop),
        2 => BreakerConfig::from_json(text).map(drop),
        3 => RetryConfig::from_json(text).map(drop),
        4 => TimeoutConfig::from_json_str(text).and_then(|t| t.validate()),
        5 => BulkheadConfig::from_json(text).map(drop),
        6 => RateLimitConfig::from_json(text).map(drop),
        7 => KeyedRateLimitConfig::from_json(text).map(drop),
        8 => return c_names("checks", HealthConfig::from_json(text)?.checks.keys()),
        other => {
            return Err(Error::invalid(format!(
                "target: {other} is not a tw_config_target (0..=8)"
            )))
        }
    };
    Ok(result?)
}

/// Validate `json` as a `target` configuration: ::TW_STATUS_OK, or
/// ::TW_STATUS_INVALID_CONFIG with every problem (`path: reason`, `; `-separated) in the
/// message and the first one's path in tw_error_path().
///
/// # Safety
/// `json` is valid for `len` bytes; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_config_validate(
    target: RawConfigTarget,
    json_text: *const c_char,
    len: usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe { guard(err, || validate(target, json(json_text, len)?)) }
}

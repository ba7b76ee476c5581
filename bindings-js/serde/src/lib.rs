//! The cold side of the tripwire npm package's glue: configs from JS values ([`FromJs`]) and
//! metrics, snapshots and reports to JS values ([`ToJs`]).
//!
//! The config types read themselves in the core (`tripwire_core::FromTree`) and metrics write
//! themselves there (`tripwire_core::ToTree`); this crate holds the conversions between JS
//! values and those trees and the per-type impls, so that `scripts/ci/build-js.sh` can
//! compile them for size (opt-level "z") while the `tripwire-js` glue, which holds the
//! per-call hot paths, stays at opt-level 3.
#![forbid(unsafe_code)]

mod tree;

use tripwire_core::bulkhead::BulkheadConfig;
use tripwire_core::deadline::TimeoutConfig;
use tripwire_core::health::{CheckConfig, HealthConfig};
use tripwire_core::pipeline::{PipelineConfig, PipelineStats, PolicyFile};
use tripwire_core::{
    BreakerConfig, BreakerMetrics, BreakerSnapshot, BulkheadMetrics, ConfigError, FromTree,
    HealthMetrics, KeyedRateLimitConfig, KeyedRateLimitMetrics, RateLimitConfig, RateLimitMetrics,
    RetryConfig, StoreMetrics,
};
use wasm_bindgen::JsValue;

/// A config type read from a JS value.
pub trait FromJs: Sized {
    /// Deserialize from a JS value (a plain object as the user wrote it), naming the field
    /// path of the first problem: the value and the error texts are exactly the core's for
    /// the same JSON (`config::from_json_value`).
    fn from_js(value: &JsValue) -> Result<Self, ConfigError>;
}

macro_rules! from_js {
    ($($t:ty),* $(,)?) => {
        $(
            impl FromJs for $t {
                #[inline(never)]
                fn from_js(value: &JsValue) -> Result<$t, ConfigError> {
                    parse(value)
                }
            }
        )*
    };
}

from_js!(
    PolicyFile,
    PipelineConfig,
    BreakerConfig,
    RetryConfig,
    TimeoutConfig,
    BulkheadConfig,
    RateLimitConfig,
    KeyedRateLimitConfig,
    HealthConfig,
    CheckConfig,
    BreakerSnapshot,
);

fn parse<T: FromTree>(value: &JsValue) -> Result<T, ConfigError> {
    #[cfg(feature = "json-config")]
    {
        let text = js_sys::JSON::stringify(value)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_else(|| "null".to_owned());
        T::from_json_str(&text)
    }
    #[cfg(not(feature = "json-config"))]
    {
        // Read every own property into a tree first (so unknown fields are seen and a value
        // JS cannot express in JSON is refused before any field), then deserialize.
        let node = tree::from_js(value)
            .map_err(|e| ConfigError::new("", format!("not a config value: {e}")))?;
        T::from_tree(node)
    }
}

/// A metrics, snapshot or report value as a plain JS object.
pub trait ToJs {
    /// Maps as objects, absent values as `null`.
    fn to_js(&self) -> JsValue;
}

macro_rules! to_js {
    ($($t:ty),* $(,)?) => {
        $(
            impl ToJs for $t {
                #[inline(never)]
                fn to_js(&self) -> JsValue {
                    tree::to_js(tripwire_core::ToTree::to_tree(self))
                }
            }
        )*
    };
}

/// A tree the core built (a report) as a plain JS value, taking it rather than a copy.
pub fn tree_to_js(node: tripwire_core::tree::Node) -> JsValue {
    tree::to_js(node)
}

to_js!(
    BreakerMetrics,
    BreakerSnapshot,
    BulkheadMetrics,
    RateLimitMetrics,
    KeyedRateLimitMetrics,
    HealthMetrics,
    PipelineStats,
    StoreMetrics,
);

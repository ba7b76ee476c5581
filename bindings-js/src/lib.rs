//! WebAssembly glue for the tripwire npm package.
//!
//! This crate converts units and types, owns handles and maps errors; every decision is the
//! core's. JavaScript passes times as milliseconds in `f64` (never `BigInt`) and reads the
//! details of a decision from one shared scratch buffer ([`out`]) instead of allocating a JS
//! object per call. The idiomatic API (`Pipeline`, `CircuitBreaker`, errors, events, clocks)
//! lives in `../js/`; the classes here are its low-level layer, also used by the conformance
//! vector runner.
//!
//! No panic may reach JavaScript: every input is validated here or is one the core documents
//! as safe (NaN, negative or backwards times are clamped by the core).
#![forbid(unsafe_code)]

mod breaker;
mod bulkhead;
mod convert;
mod events;
mod health;
mod limiter;
mod out;
mod pipeline;
mod retry;
#[cfg(feature = "store")]
mod store;

pub use breaker::RawBreaker;
pub use bulkhead::RawBulkhead;
pub use convert::{error_kind_name, live_objects, state_name, validate_config};
pub use health::RawHealth;
pub use limiter::{RawKeyedLimiter, RawLimiter};
pub use out::{out_len, out_ptr};
pub use pipeline::{RawPipeline, RawPolicyFile};
pub use retry::RawRetry;
#[cfg(feature = "store")]
pub use store::{store_scripts, RawSharedLimiter};

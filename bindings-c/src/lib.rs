//! The C API of tripwire: `include/tripwire.h` (generated from this crate by cbindgen) and
//! `libtripwire.{a,so}`.
//!
//! A thin layer: every function converts C types and units, locks the handle's mutex, calls the
//! core, drains the core's outputs, and maps errors to a `tw_status` through one table
//! (`error.rs`). Every body runs under `catch_unwind`, so no panic crosses the boundary.
//!
//! | file | what it is |
//! |---|---|
//! | `error.rs` | statuses, `tw_error`, the thread-local last error, the panic guard |
//! | `types.rs` | enums, POD results and events shared by every handle |
//! | `handle.rs` | a handle: the core object behind a mutex, its listener, the drain |
//! | `util.rs` | C strings in, texts out into caller buffers, the clock, OS seeds |
//! | `pipeline.rs` | `tw_pipeline`, the `tw_call_*` step protocol, `tw_pipeline_execute`, `tw_policies` |
//! | `breaker.rs`, `limiter.rs`, `bulkhead.rs`, `retry.rs`, `health.rs` | one handle each |
//! | `config.rs` | `tw_config_validate` |
//! | `store.rs` | a rate limit and a breaker shared through a store: the STORE step, share metrics, `tw_shared_limiter`, `tw_store_scripts` |
#![allow(non_camel_case_types)]
#![warn(missing_docs)]

pub mod breaker;
pub mod bulkhead;
pub mod config;
pub mod error;
mod handle;
pub mod health;
pub mod limiter;
pub mod pipeline;
pub mod retry;
pub mod store;
pub mod types;
mod util;

pub use util::tw_now_ns;

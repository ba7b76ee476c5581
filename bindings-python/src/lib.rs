//! PyO3 glue for the tripwire Python package: the `tripwire._native` extension module.
//!
//! This layer converts units and types (seconds ↔ `Instant` nanoseconds, JSON config text →
//! core configs, core decisions → small tuples), maps errors (one table, `errors.rs`), owns
//! the core objects behind a `Mutex` inside `#[pyclass(frozen)]` handles so that they are
//! `Send + Sync`, reads the host clock and drains the core's outputs after every input. It
//! never decides policy: every `if` about breakers, retries or limits lives in the core.
//!
//! The lock is never held while Python code runs: a handle locks, calls the core, drains its
//! events and wakes into its own buffers, unlocks, and only then calls back into Python (the
//! package's `flush` hook delivers wakes and runs listeners). A listener may therefore call
//! back into the same object without deadlocking.

use pyo3::prelude::*;

mod breaker;
mod bulkhead;
mod clock;
mod config;
mod convert;
mod errors;
mod health;
mod limiter;
mod pipeline;
mod retry;
mod store;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    clock::init(m.py())?;
    m.add_class::<pipeline::PyPipeline>()?;
    m.add_class::<pipeline::Guarded>()?;
    m.add_class::<pipeline::PyPolicyFile>()?;
    m.add_class::<breaker::PyBreaker>()?;
    m.add_class::<breaker::PyPermit>()?;
    m.add_class::<limiter::PyRateLimiter>()?;
    m.add_class::<limiter::PyKeyedRateLimiter>()?;
    m.add_class::<limiter::Decision>()?;
    m.add_class::<bulkhead::PyBulkhead>()?;
    m.add_class::<retry::PyRetry>()?;
    m.add_class::<health::PyHealthRegistry>()?;
    m.add_class::<store::PySharedLimiter>()?;
    m.add_class::<store::PyStoreRequest>()?;
    m.add_function(wrap_pyfunction!(store::scripts, m)?)?;
    m.add_function(wrap_pyfunction!(clock::monotonic_ns, m)?)?;
    m.add_function(wrap_pyfunction!(config::validate, m)?)?;
    m.add("ERROR_KINDS", convert::error_kind_names())?;
    m.add("STEP_ATTEMPT", convert::STEP_ATTEMPT)?;
    m.add("STEP_SLEEP", convert::STEP_SLEEP)?;
    m.add("STEP_PARK", convert::STEP_PARK)?;
    m.add("STEP_DONE", convert::STEP_DONE)?;
    m.add("STEP_FAIL", convert::STEP_FAIL)?;
    m.add("STEP_STORE", convert::STEP_STORE)?;
    m.add("OUTCOME_SUCCESS", convert::OUTCOME_SUCCESS)?;
    m.add("OUTCOME_FAILURE", convert::OUTCOME_FAILURE)?;
    m.add("OUTCOME_TIMEOUT", convert::OUTCOME_TIMEOUT)?;
    m.add("OUTCOME_IGNORED", convert::OUTCOME_IGNORED)?;
    Ok(())
}

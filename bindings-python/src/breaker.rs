//! `CircuitBreaker`: the core breaker alone, with permits as handles (the conformance
//! runner's breaker; the public `tripwire.CircuitBreaker` drives a one-policy pipeline).

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tripwire_core::breaker::{
    Admission, BreakerConfig, BreakerSnapshot, CircuitBreaker, Outcome, Permit,
};
use tripwire_core::{Event, Instant};

use crate::convert::{events_list, ns};
use crate::errors;

/// A permit from `acquire`, to hand back to `record` or `release`.
#[pyclass(frozen, module = "tripwire._native", name = "Permit")]
#[derive(Debug)]
pub struct PyPermit(Permit);

#[pymethods]
impl PyPermit {
    /// Whether it is a half-open trial.
    #[getter]
    fn trial(&self) -> bool {
        self.0.is_trial()
    }
}

/// A circuit breaker.
#[pyclass(frozen, module = "tripwire._native", name = "CircuitBreaker")]
#[derive(Debug)]
pub struct PyBreaker {
    inner: Mutex<Option<CircuitBreaker>>,
}

impl PyBreaker {
    fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&mut CircuitBreaker) -> R) -> PyResult<R> {
        let mut g: MutexGuard<'_, Option<CircuitBreaker>> =
            self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.as_mut()
            .map(f)
            .ok_or_else(|| errors::closed(py, "circuit breaker"))
    }
}

fn outcome(py: Python<'_>, name: &str) -> PyResult<Outcome> {
    Outcome::from_name(name).ok_or_else(|| {
        errors::usage_error(
            py,
            "badOutcome",
            &format!("outcome: must be \"success\", \"failure\" or \"ignored\", got {name:?}"),
        )
    })
}

#[pymethods]
impl PyBreaker {
    /// Build from a breaker config's JSON text.
    #[new]
    fn new(py: Python<'_>, config: &str) -> PyResult<Self> {
        let config = BreakerConfig::from_json(config).map_err(|e| errors::config_error(py, &e))?;
        let b = CircuitBreaker::new(config).map_err(|e| errors::config_error(py, &e))?;
        Ok(PyBreaker {
            inner: Mutex::new(Some(b)),
        })
    }

    /// `(admitted, retry_after_ns | None, permit | None)`.
    fn acquire(&self, py: Python<'_>, now: u64) -> PyResult<(bool, Option<u64>, Option<PyPermit>)> {
        let a = self.with(py, |b| b.try_acquire(Instant::from_nanos(now)))?;
        Ok(match a {
            Admission::Admitted(p) => (true, None, Some(PyPermit(p))),
            Admission::Rejected { retry_after } => (false, retry_after.map(ns), None),
        })
    }

    /// Record a permit's outcome: `"success"`, `"failure"` or `"ignored"`.
    fn record(
        &self,
        py: Python<'_>,
        permit: &PyPermit,
        outcome_name: &str,
        now: u64,
    ) -> PyResult<()> {
        let o = outcome(py, outcome_name)?;
        self.with(py, |b| b.record(permit.0, o, Instant::from_nanos(now)))
    }

    /// Abandon a permit without an outcome.
    fn release(&self, py: Python<'_>, permit: &PyPermit, now: u64) -> PyResult<()> {
        self.with(py, |b| b.release(permit.0, Instant::from_nanos(now)))
    }

    /// The state's name.
    fn state(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.with(py, |b| b.state().as_str())
    }

    fn force_open(&self, py: Python<'_>, now: u64) -> PyResult<()> {
        self.with(py, |b| b.force_open(Instant::from_nanos(now)))
    }

    fn disable(&self, py: Python<'_>, now: u64) -> PyResult<()> {
        self.with(py, |b| b.disable(Instant::from_nanos(now)))
    }

    fn reset(&self, py: Python<'_>, now: u64) -> PyResult<()> {
        self.with(py, |b| b.reset(Instant::from_nanos(now)))
    }

    /// When the open period ends, in nanoseconds.
    fn poll_timeout(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.with(py, |b| b.poll_timeout().map(Instant::as_nanos))
    }

    /// The snapshot as JSON text.
    fn snapshot(&self, py: Python<'_>) -> PyResult<String> {
        let s = self.with(py, |b| b.snapshot())?;
        serde_json::to_string(&s).map_err(|e| errors::json_error(&e))
    }

    /// Restore from a snapshot's JSON text.
    fn restore(&self, py: Python<'_>, snapshot: &str, now: u64) -> PyResult<()> {
        let snap = <BreakerSnapshot as tripwire_core::FromTree>::from_json_str(snapshot)
            .map_err(|e| errors::config_error_at(py, e, "snapshot"))?;
        self.with(py, |b| b.restore(&snap, Instant::from_nanos(now)))?
            .map_err(|e| errors::config_error_at(py, e, "snapshot"))
    }

    /// `BreakerMetrics` as JSON text.
    fn metrics_json(&self, py: Python<'_>) -> PyResult<String> {
        let m = self.with(py, |b| b.metrics())?;
        serde_json::to_string(&m).map_err(|e| errors::json_error(&e))
    }

    /// Drain the queued events.
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let events: Vec<Event> =
            self.with(py, |b| std::iter::from_fn(|| b.poll_event()).collect())?;
        events_list(py, &events)
    }

    /// Free the core; later use raises `UsageError` (reason `closed`).
    fn close(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

//! `Retry`: the core retry policy alone, with its own PRNG and per-call states as integer
//! handles (the conformance runner's retry).

use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tripwire_core::{FailureInfo, Instant, Retry, RetryConfig, RetryDecision, RetryState, Rng};

use crate::convert::ns;
use crate::errors;

#[derive(Debug)]
struct Inner {
    retry: Retry,
    rng: Rng,
    states: Vec<RetryState>,
}

/// A retry policy shared by the calls started on it.
#[pyclass(frozen, module = "tripwire._native", name = "Retry")]
#[derive(Debug)]
pub struct PyRetry {
    inner: Mutex<Inner>,
}

impl PyRetry {
    fn with<R>(
        &self,
        py: Python<'_>,
        call: Option<usize>,
        f: impl FnOnce(&mut Inner) -> R,
    ) -> PyResult<R> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = call {
            if c >= g.states.len() {
                return Err(errors::usage_error(
                    py,
                    "unknownCall",
                    "unknown retry call handle",
                ));
            }
        }
        Ok(f(&mut g))
    }
}

#[pymethods]
impl PyRetry {
    /// Build from a retry config's JSON text; `seed` seeds the jitter PRNG.
    #[new]
    fn new(py: Python<'_>, config: &str, seed: u64) -> PyResult<Self> {
        let config = RetryConfig::from_json(config).map_err(|e| errors::config_error(py, &e))?;
        let retry = Retry::new(config).map_err(|e| errors::config_error(py, &e))?;
        Ok(PyRetry {
            inner: Mutex::new(Inner {
                retry,
                rng: Rng::new(seed),
                states: Vec::new(),
            }),
        })
    }

    /// Start a call at `now`; returns its handle.
    fn start(&self, py: Python<'_>, now: u64) -> PyResult<usize> {
        self.with(py, None, |i| {
            let s = i.retry.start(Instant::from_nanos(now));
            i.states.push(s);
            i.states.len() - 1
        })
    }

    /// Begin the call's next attempt; returns its number (1 for the first).
    fn begin_attempt(&self, py: Python<'_>, call: usize) -> PyResult<u32> {
        self.with(py, Some(call), |i| {
            i.retry.begin_attempt(&mut i.states[call])
        })
    }

    /// A failed attempt: `("retry", attempt, delay_ns)` or `("giveUp", reason, None)`.
    #[pyo3(signature = (call, retryable, retry_after, now, deadline=None))]
    fn on_failure<'py>(
        &self,
        py: Python<'py>,
        call: usize,
        retryable: bool,
        retry_after: Option<u64>,
        now: u64,
        deadline: Option<u64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let failure = FailureInfo {
            retryable,
            retry_after: retry_after.map(Duration::from_nanos),
        };
        let d = self.with(py, Some(call), |i| {
            let Inner { retry, rng, states } = i;
            retry.on_failure(
                &mut states[call],
                failure,
                Instant::from_nanos(now),
                deadline.map(Instant::from_nanos),
                rng,
            )
        })?;
        match d {
            RetryDecision::Retry { attempt, delay } => {
                ("retry", attempt, ns(delay)).into_pyobject(py)
            }
            RetryDecision::GiveUp { reason } => {
                ("giveUp", reason.as_str(), py.None()).into_pyobject(py)
            }
            _ => Err(errors::usage_error(
                py,
                "unknownDecision",
                "the core returned a retry decision this binding does not know",
            )),
        }
    }

    /// The call succeeded.
    fn on_success(&self, py: Python<'_>, call: usize) -> PyResult<()> {
        self.with(py, Some(call), |i| i.retry.on_success(&i.states[call]))
    }

    /// Budget tokens left, or `None` without a budget.
    fn budget(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        self.with(py, None, |i| i.retry.budget_tokens())
    }
}

//! `RateLimiter` and `KeyedRateLimiter`: `check` is the public hot path (one native call that
//! reads the clock, decides, drains events and returns a decision object).

use std::sync::{Mutex, MutexGuard};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use pyo3::PyTraverseError;
use tripwire_core::{
    Event, Instant, KeyedRateLimitConfig, KeyedRateLimiter, RateDecision, RateLimitConfig,
    RateLimiter,
};

use crate::clock::Clock;
use crate::convert::{events_list, ns};
use crate::errors;
use crate::pipeline::{Outbox, Runner};

/// A rate limit decision: `allowed`, `wait` (seconds to wait before going on, when the limit
/// reserved capacity within `maxWait`) and `retry_after` (seconds until the same check would
/// pass, on a denial; `None` when the cost can never pass). Truthy when allowed.
#[pyclass(frozen, module = "tripwire._native", name = "RateLimitDecision")]
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    #[pyo3(get)]
    allowed: bool,
    #[pyo3(get)]
    wait: f64,
    #[pyo3(get)]
    retry_after: Option<f64>,
}

#[pymethods]
impl Decision {
    fn __bool__(&self) -> bool {
        self.allowed
    }

    fn __repr__(&self) -> String {
        let ra = self
            .retry_after
            .map_or_else(|| "None".to_owned(), |s| format!("{s}"));
        format!(
            "RateLimitDecision(allowed={}, wait={}, retry_after={ra})",
            if self.allowed { "True" } else { "False" },
            self.wait
        )
    }
}

static ALLOWED: PyOnceLock<Py<Decision>> = PyOnceLock::new();

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A decision object; the common "allowed now" is one shared instance (no allocation).
fn decision(py: Python<'_>, d: RateDecision) -> PyResult<Py<Decision>> {
    let (allowed, wait, retry_after) = decision_parts(d);
    if allowed && wait == 0 {
        let shared = ALLOWED.get_or_try_init(py, || {
            Py::new(
                py,
                Decision {
                    allowed: true,
                    wait: 0.0,
                    retry_after: None,
                },
            )
        })?;
        return Ok(shared.clone_ref(py));
    }
    Py::new(
        py,
        Decision {
            allowed,
            wait: secs(wait),
            retry_after: retry_after.map(secs),
        },
    )
}

/// `(allowed, wait_ns, retry_after_ns | None)`. `RateDecision` is non-exhaustive: an unknown
/// decision denies without a retry time.
pub fn decision_parts(d: RateDecision) -> (bool, u64, Option<u64>) {
    match d {
        RateDecision::Allowed => (true, 0, None),
        RateDecision::Wait(w) => (true, ns(w), None),
        RateDecision::Denied { retry_after } => (false, 0, retry_after.map(ns)),
        _ => (false, 0, None),
    }
}

#[derive(Debug)]
pub struct LimiterInner<L> {
    pub core: Option<L>,
    out: Outbox,
}

pub trait Limits {
    fn next_event(&mut self) -> Option<Event>;
}

impl Limits for RateLimiter {
    fn next_event(&mut self) -> Option<Event> {
        self.poll_event()
    }
}

impl Limits for KeyedRateLimiter {
    fn next_event(&mut self) -> Option<Event> {
        self.poll_event()
    }
}

/// Shared plumbing of both limiters: lock, decide, drain, unlock, flush.
#[derive(Debug)]
pub struct Handle<L> {
    inner: Mutex<LimiterInner<L>>,
    pub clock: Clock,
    runner: Option<Runner>,
    what: &'static str,
}

impl<L: Limits> Handle<L> {
    pub fn new(
        core: L,
        clock: Option<&Bound<'_, PyAny>>,
        runner: Option<&Bound<'_, PyAny>>,
        what: &'static str,
    ) -> PyResult<Self> {
        Ok(Handle {
            inner: Mutex::new(LimiterInner {
                core: Some(core),
                out: Outbox::default(),
            }),
            clock: Clock::from_arg(clock),
            runner: Runner::from_arg(runner)?,
            what,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, LimiterInner<L>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    pub fn input<R>(&self, slf: &Bound<'_, PyAny>, f: impl FnOnce(&mut L) -> R) -> PyResult<R> {
        let py = slf.py();
        let (r, pending) = {
            let mut g = self.lock();
            let g = &mut *g;
            let Some(core) = g.core.as_mut() else {
                return Err(errors::closed(py, self.what));
            };
            let r = f(core);
            while let Some(e) = core.next_event() {
                g.out.push_event(e);
            }
            (r, g.out.pending())
        };
        if pending {
            if let Some(runner) = &self.runner {
                runner.flush.bind(py).call1((slf,))?;
            }
        }
        Ok(r)
    }

    pub fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&L) -> R) -> PyResult<R> {
        let g = self.lock();
        g.core
            .as_ref()
            .map(f)
            .ok_or_else(|| errors::closed(py, self.what))
    }

    pub fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let events: Vec<Event> = self.lock().out.events.drain(..).collect();
        events_list(py, &events)
    }

    pub fn set_listening(&self, on: bool) {
        let mut g = self.lock();
        g.out.listening = on;
        if !on {
            g.out.events.clear();
        }
    }

    pub fn close(&self) {
        let mut g = self.lock();
        g.core = None;
        g.out.events.clear();
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.clock.traverse(visit)?;
        if let Some(r) = &self.runner {
            r.traverse(visit)?;
        }
        Ok(())
    }
}

/// A rate limiter (one limit or several that must all pass).
#[pyclass(frozen, module = "tripwire._native", name = "RateLimiter")]
#[derive(Debug)]
pub struct PyRateLimiter {
    h: Handle<RateLimiter>,
}

#[pymethods]
impl PyRateLimiter {
    /// Build from a rate limit config's JSON text (one limit or a list).
    #[new]
    #[pyo3(signature = (config, *, clock=None, runner=None))]
    fn new(
        py: Python<'_>,
        config: &str,
        clock: Option<&Bound<'_, PyAny>>,
        runner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config =
            RateLimitConfig::from_json(config).map_err(|e| errors::config_error(py, &e))?;
        let core = RateLimiter::new(config).map_err(|e| errors::config_error(py, &e))?;
        Ok(PyRateLimiter {
            h: Handle::new(core, clock, runner, "rate limiter")?,
        })
    }

    /// Take `cost` now (on this limiter's clock): a `RateLimitDecision`.
    #[pyo3(signature = (cost=1))]
    fn check(slf: &Bound<'_, Self>, cost: u64) -> PyResult<Py<Decision>> {
        let py = slf.py();
        let this = slf.get();
        let now = Instant::from_nanos(this.h.clock.now(py)?);
        let d = this.h.input(slf.as_any(), |l| l.check(now, cost))?;
        decision(py, d)
    }

    /// Take `cost` at `now` (ns): `(allowed, wait_ns, retry_after_ns | None)`.
    #[pyo3(signature = (now, cost=1))]
    fn check_at(slf: &Bound<'_, Self>, now: u64, cost: u64) -> PyResult<(bool, u64, Option<u64>)> {
        let d = slf
            .get()
            .h
            .input(slf.as_any(), |l| l.check(Instant::from_nanos(now), cost))?;
        Ok(decision_parts(d))
    }

    /// Read this limiter's clock, in nanoseconds.
    fn now(&self, py: Python<'_>) -> PyResult<u64> {
        self.h.clock.now(py)
    }

    /// Units available at `now` (ns) without waiting (the tightest limit's).
    fn available(&self, py: Python<'_>, now: u64) -> PyResult<u64> {
        self.h.read(py, |l| l.available(Instant::from_nanos(now)))
    }

    /// `RateLimitMetrics` as JSON text.
    fn metrics_json(&self, py: Python<'_>) -> PyResult<String> {
        let m = self.h.read(py, RateLimiter::metrics)?;
        serde_json::to_string(&m).map_err(|e| errors::json_error(&e))
    }

    fn set_listening(&self, on: bool) {
        self.h.set_listening(on);
    }

    /// Buffered events (kept only while listening), oldest first.
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.h.take_events(py)
    }

    fn close(&self) {
        self.h.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.h.lock().core.is_none()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.h.traverse(&visit)
    }
}

/// One rate limiter per key, in bounded memory.
#[pyclass(frozen, module = "tripwire._native", name = "KeyedRateLimiter")]
#[derive(Debug)]
pub struct PyKeyedRateLimiter {
    h: Handle<KeyedRateLimiter>,
}

#[pymethods]
impl PyKeyedRateLimiter {
    /// Build from `{"limit": ..., "maxKeys": N, "idleExpiry": D}` JSON text. `seed` keys the
    /// map's hasher.
    #[new]
    #[pyo3(signature = (config, seed, *, clock=None, runner=None))]
    fn new(
        py: Python<'_>,
        config: &str,
        seed: u64,
        clock: Option<&Bound<'_, PyAny>>,
        runner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config =
            KeyedRateLimitConfig::from_json(config).map_err(|e| errors::config_error(py, &e))?;
        let core = KeyedRateLimiter::new(config, seed).map_err(|e| errors::config_error(py, &e))?;
        Ok(PyKeyedRateLimiter {
            h: Handle::new(core, clock, runner, "keyed rate limiter")?,
        })
    }

    /// Take `cost` for `key` now: a `RateLimitDecision`.
    #[pyo3(signature = (key, cost=1))]
    fn check(slf: &Bound<'_, Self>, key: &str, cost: u64) -> PyResult<Py<Decision>> {
        let py = slf.py();
        let this = slf.get();
        let now = Instant::from_nanos(this.h.clock.now(py)?);
        let d = this.h.input(slf.as_any(), |l| l.check(key, now, cost))?;
        decision(py, d)
    }

    /// Take `cost` for `key` at `now` (ns): `(allowed, wait_ns, retry_after_ns | None)`.
    #[pyo3(signature = (key, now, cost=1))]
    fn check_at(
        slf: &Bound<'_, Self>,
        key: &str,
        now: u64,
        cost: u64,
    ) -> PyResult<(bool, u64, Option<u64>)> {
        let d = slf.get().h.input(slf.as_any(), |l| {
            l.check(key, Instant::from_nanos(now), cost)
        })?;
        Ok(decision_parts(d))
    }

    /// Keys held now.
    fn keys(&self, py: Python<'_>) -> PyResult<usize> {
        self.h.read(py, KeyedRateLimiter::keys)
    }

    /// `KeyedRateLimitMetrics` as JSON text.
    fn metrics_json(&self, py: Python<'_>) -> PyResult<String> {
        let m = self.h.read(py, KeyedRateLimiter::metrics)?;
        serde_json::to_string(&m).map_err(|e| errors::json_error(&e))
    }

    fn set_listening(&self, on: bool) {
        self.h.set_listening(on);
    }

    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.h.take_events(py)
    }

    fn close(&self) {
        self.h.close();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.h.traverse(&visit)
    }
}

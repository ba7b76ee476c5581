//! `Pipeline`: the core's step protocol behind a lock, plus the native fast path that runs one
//! protected call without leaving Rust while nothing unusual happens.
//!
//! Fast path (`Pipeline.call`, `Guarded.__call__`): read the clock, `begin` + `poll` under the
//! lock; on `Attempt`, call the function without the lock; read the clock, `report` + `poll`
//! under the lock; on `Done`, return the value. Anything else (a first step that is not an
//! attempt, an exception, a deadline passed) hands the call, as it stands, to the Python
//! runner's `resume`, which drives the same protocol from there (sleeps, parks, retries,
//! fallback, error mapping). The fast path never decides policy: it only switches on the step.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyTraverseError;
use tripwire_core::pipeline::{CallId, Pipeline, PipelineConfig, PolicyFile, Report, Step};
use tripwire_core::store::RequestId;
use tripwire_core::{BreakerSnapshot, Event, Instant, UsageError};

use crate::clock::Clock;
use crate::convert::{events_list, report, step_tuple};
use crate::errors;
use crate::store::{reply_from, PyStoreRequest};

/// The most events a handle buffers for its listeners between two flushes.
pub const EVENT_BUFFER: usize = 4096;

/// Events and wakes drained from a core object, waiting for the Python hook.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Whether events are kept (a listener is registered); otherwise they are dropped.
    pub listening: bool,
    pub events: VecDeque<Event>,
    pub dropped: u64,
    pub wakes: Vec<u64>,
}

impl Outbox {
    pub fn push_event(&mut self, e: Event) {
        if !self.listening {
            return;
        }
        if self.events.len() >= EVENT_BUFFER {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(e);
    }

    #[inline]
    pub fn pending(&self) -> bool {
        !self.events.is_empty() || !self.wakes.is_empty()
    }
}

/// The Python side of a handle: `flush(native)` delivers wakes and events after the lock is
/// released; `resume(native, fn, args, kwargs, call, step, exc)` continues a call off the
/// fast path.
#[derive(Debug)]
pub struct Runner {
    pub flush: Py<PyAny>,
    pub resume: Option<Py<PyAny>>,
}

impl Runner {
    pub fn from_arg(runner: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Runner>> {
        let Some(r) = runner.filter(|r| !r.is_none()) else {
            return Ok(None);
        };
        let py = r.py();
        let resume = match r.getattr(intern!(py, "resume")) {
            Ok(f) => Some(f.unbind()),
            Err(_) => None,
        };
        Ok(Some(Runner {
            flush: r.getattr(intern!(py, "flush"))?.unbind(),
            resume,
        }))
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.flush)?;
        if let Some(r) = &self.resume {
            visit.call(r)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Inner {
    core: Option<Pipeline>,
    out: Outbox,
}

impl Inner {
    /// After any input: drain the core's events and wakes. Returns whether the hook has work.
    #[inline]
    fn drain(&mut self) -> bool {
        if let Some(core) = self.core.as_mut() {
            while let Some(e) = core.poll_event() {
                self.out.push_event(e);
            }
            while let Some(id) = core.poll_wake() {
                self.out.wakes.push(id.to_raw());
            }
        }
        self.out.pending()
    }
}

/// A pipeline handle, safe to share between threads.
#[pyclass(frozen, module = "tripwire._native", name = "Pipeline")]
#[derive(Debug)]
pub struct PyPipeline {
    inner: Mutex<Inner>,
    clock: Clock,
    runner: Option<Runner>,
    name: String,
}

fn to_instant(ns: u64) -> Instant {
    Instant::from_nanos(ns)
}

impl PyPipeline {
    pub fn from_core(
        core: Pipeline,
        clock: Option<&Bound<'_, PyAny>>,
        runner: Option<&Bound<'_, PyAny>>,
        name: String,
    ) -> PyResult<PyPipeline> {
        Ok(PyPipeline {
            inner: Mutex::new(Inner {
                core: Some(core),
                out: Outbox::default(),
            }),
            clock: Clock::from_arg(clock),
            runner: Runner::from_arg(runner)?,
            name,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic cannot happen under this lock (the core does not panic), but never turn
        // a poisoned lock into a crash.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the core under the lock and drain; returns whether the hook has work.
    #[inline]
    fn input_raw<R>(
        slf: &Bound<'_, Self>,
        f: impl FnOnce(&mut Pipeline) -> R,
    ) -> PyResult<(R, bool)> {
        let this = slf.get();
        let mut g = this.lock();
        let Some(core) = g.core.as_mut() else {
            return Err(errors::closed(slf.py(), "pipeline"));
        };
        let r = f(core);
        Ok((r, g.drain()))
    }

    /// Run `f` on the core under the lock, drain, unlock, then flush if needed.
    #[inline]
    fn input<R>(slf: &Bound<'_, Self>, f: impl FnOnce(&mut Pipeline) -> R) -> PyResult<R> {
        let (r, pending) = Self::input_raw(slf, f)?;
        if pending {
            Self::flush(slf)?;
        }
        Ok(r)
    }

    /// `begin` + `poll`, then flush. Should the hook raise (a `BaseException` out of a
    /// listener), the new call is cancelled first so that it holds nothing.
    fn begin_call(
        slf: &Bound<'_, Self>,
        now: Instant,
        deadline: Option<Instant>,
    ) -> PyResult<(CallId, Step)> {
        let py = slf.py();
        let ((id, step), pending) = Self::input_raw(slf, |core| {
            let id = core.begin(now, deadline);
            (id, core.poll(id, now))
        })?;
        if pending {
            if let Err(e) = Self::flush(slf) {
                abandon(slf, id, now.as_nanos());
                return Err(e);
            }
        }
        Ok((id, step.map_err(|e| errors::usage(py, e))?))
    }

    /// `report` + `poll`, then flush; a raising hook cancels a call that is still live.
    fn report_call(slf: &Bound<'_, Self>, id: CallId, r: Report, now: Instant) -> PyResult<Step> {
        let py = slf.py();
        let (step, pending) = Self::input_raw(slf, |core| -> Result<Step, UsageError> {
            core.report(id, r, now)?;
            core.poll(id, now)
        })?;
        let step = step.map_err(|e| errors::usage(py, e))?;
        if pending {
            if let Err(e) = Self::flush(slf) {
                if !matches!(step, Step::Done { .. } | Step::Fail(_)) {
                    abandon(slf, id, now.as_nanos());
                }
                return Err(e);
            }
        }
        Ok(step)
    }

    /// Hand pending wakes and events to the Python hook (with no lock held).
    fn flush(slf: &Bound<'_, Self>) -> PyResult<()> {
        if let Some(r) = &slf.get().runner {
            r.flush.bind(slf.py()).call1((slf,))?;
        }
        Ok(())
    }

    fn with_breaker<R>(
        slf: &Bound<'_, Self>,
        f: impl FnOnce(&mut tripwire_core::CircuitBreaker) -> R,
    ) -> PyResult<R> {
        let py = slf.py();
        Self::input(slf, |core| core.breaker_mut().map(f))?.ok_or_else(|| {
            errors::usage_error(py, "noBreaker", "this pipeline has no circuit breaker")
        })
    }
}

/// One protected call on the fast path, handing over to the runner at the first surprise.
#[inline]
fn fast_call<'py>(
    slf: &Bound<'py, PyPipeline>,
    func: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let this = slf.get();
    let now = this.clock.now(py)?;
    let (call, step) = PyPipeline::begin_call(slf, to_instant(now), None)?;
    let Step::Attempt { deadline, .. } = step else {
        return resume(slf, func, args, kwargs, call, Some(step), None);
    };
    match func.call(args, kwargs) {
        Ok(value) => {
            let t = match this.clock.now(py) {
                Ok(t) => t,
                Err(e) => {
                    abandon(slf, call, now);
                    return Err(e);
                }
            };
            let t = to_instant(t);
            // The cooperative timeout of sync code: a result after the deadline is a timeout.
            let r = if deadline.is_some_and(|d| t >= d) {
                Report::TIMEOUT
            } else {
                Report::SUCCESS
            };
            let next = PyPipeline::report_call(slf, call, r, t)?;
            if let Step::Done { .. } = next {
                return Ok(value);
            }
            resume(slf, func, args, kwargs, call, Some(next), None)
        }
        Err(err) => {
            // Handed over with the attempt it ended, so the runner sees its deadline.
            let exc = err.into_value(py).into_any();
            let exc = exc.bind(py).clone();
            resume(slf, func, args, kwargs, call, Some(step), Some(exc))
        }
    }
}

/// Cancel a call after a host failure (a broken clock) so that it holds nothing.
fn abandon(slf: &Bound<'_, PyPipeline>, call: CallId, now: u64) {
    let _ = PyPipeline::input(slf, |core| core.cancel(call, to_instant(now)));
}

/// Continue a call in the Python runner.
fn resume<'py>(
    slf: &Bound<'py, PyPipeline>,
    func: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
    call: CallId,
    step: Option<Step>,
    exc: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let Some(resume) = slf.get().runner.as_ref().and_then(|r| r.resume.as_ref()) else {
        abandon(slf, call, 0);
        return Err(errors::usage_error(
            py,
            "noRunner",
            "this native pipeline was built without a runner; use tripwire.Pipeline",
        ));
    };
    let step = match step {
        Some(s) => Some(step_tuple(py, s)?),
        None => None,
    };
    resume
        .bind(py)
        .call1((slf, func, args, kwargs, call.to_raw(), step, exc))
}

#[pymethods]
impl PyPipeline {
    /// Build from a pipeline config's JSON text. `seed` seeds jitter when the config has none.
    #[new]
    #[pyo3(signature = (config, seed, *, clock=None, runner=None, name="default"))]
    fn new(
        py: Python<'_>,
        config: &str,
        seed: u64,
        clock: Option<&Bound<'_, PyAny>>,
        runner: Option<&Bound<'_, PyAny>>,
        name: &str,
    ) -> PyResult<Self> {
        let core = Pipeline::from_json(config, seed).map_err(|e| errors::config_error(py, &e))?;
        PyPipeline::from_core(core, clock, runner, name.to_owned())
    }

    /// The name used in metrics.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The clock object given at construction (`None`: the native clock).
    #[getter]
    fn clock(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.clock.object(py)
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().core.is_none()
    }

    /// Read this pipeline's clock, in nanoseconds.
    fn now(&self, py: Python<'_>) -> PyResult<u64> {
        self.clock.now(py)
    }

    /// Keep events for `take_events` (a listener exists) or drop them.
    fn set_listening(&self, on: bool) {
        let mut g = self.lock();
        g.out.listening = on;
        if !on {
            g.out.events.clear();
        }
    }

    /// Begin a call (for `key` on a keyed pipeline); returns its handle.
    #[pyo3(signature = (now, deadline=None, key=None))]
    fn begin(
        slf: &Bound<'_, Self>,
        now: u64,
        deadline: Option<u64>,
        key: Option<&str>,
    ) -> PyResult<u64> {
        Self::input(slf, |core| {
            core.begin_keyed(key.unwrap_or(""), to_instant(now), deadline.map(to_instant))
                .to_raw()
        })
    }

    /// `begin` + `poll`: `(call, step)`.
    #[pyo3(signature = (now, deadline=None))]
    fn start<'py>(
        slf: &Bound<'py, Self>,
        now: u64,
        deadline: Option<u64>,
    ) -> PyResult<(u64, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let (id, step) = Self::begin_call(slf, to_instant(now), deadline.map(to_instant))?;
        Ok((id.to_raw(), step_tuple(py, step)?))
    }

    /// The call's next step.
    fn poll<'py>(slf: &Bound<'py, Self>, call: u64, now: u64) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let step = Self::input(slf, |core| {
            core.poll(CallId::from_raw(call), to_instant(now))
        })?
        .map_err(|e| errors::usage(py, e))?;
        step_tuple(py, step)
    }

    /// Report the running attempt's outcome (codes `OUTCOME_*`).
    #[pyo3(signature = (call, outcome, retryable, retry_after, now))]
    fn report(
        slf: &Bound<'_, Self>,
        call: u64,
        outcome: u8,
        retryable: bool,
        retry_after: Option<u64>,
        now: u64,
    ) -> PyResult<()> {
        let py = slf.py();
        let r = report(py, outcome, retryable, retry_after)?;
        Self::input(slf, |core| {
            core.report(CallId::from_raw(call), r, to_instant(now))
        })?
        .map_err(|e| errors::usage(py, e))
    }

    /// `report` + `poll`: the step after the outcome.
    #[pyo3(signature = (call, outcome, retryable, retry_after, now))]
    fn finish<'py>(
        slf: &Bound<'py, Self>,
        call: u64,
        outcome: u8,
        retryable: bool,
        retry_after: Option<u64>,
        now: u64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let r = report(py, outcome, retryable, retry_after)?;
        let step = Self::report_call(slf, CallId::from_raw(call), r, to_instant(now))?;
        step_tuple(py, step)
    }

    /// Cancel a call: it leaves any queue and frees what it holds without an outcome.
    fn cancel(slf: &Bound<'_, Self>, call: u64, now: u64) -> PyResult<()> {
        let py = slf.py();
        Self::input(slf, |core| {
            core.cancel(CallId::from_raw(call), to_instant(now))
        })?
        .map_err(|e| errors::usage(py, e))
    }

    /// The store request of a call whose step is `STEP_STORE` (`None` once it is answered,
    /// or when a `reconfigure` replaced the shared limit).
    fn store_request(&self, py: Python<'_>, request: u64) -> PyResult<Option<PyStoreRequest>> {
        let g = self.lock();
        let core = g
            .core
            .as_ref()
            .ok_or_else(|| errors::closed(py, "pipeline"))?;
        core.store_request(RequestId::from_raw(request))
            .map(|r| PyStoreRequest::from_core(py, r))
            .transpose()
    }

    /// Report the reply to `call`'s store request (see `store.rs` for its Python forms).
    fn report_store(
        slf: &Bound<'_, Self>,
        call: u64,
        reply: &Bound<'_, PyAny>,
        now: u64,
    ) -> PyResult<()> {
        let py = slf.py();
        let reply = reply_from(reply)?;
        Self::input(slf, |core| {
            core.report_store(CallId::from_raw(call), reply, to_instant(now))
        })?
        .map_err(|e| errors::usage(py, e))
    }

    /// `report_store` + `poll`: the step after the store's reply. A raising hook cancels a
    /// call that is still live.
    fn store_finish<'py>(
        slf: &Bound<'py, Self>,
        call: u64,
        reply: &Bound<'py, PyAny>,
        now: u64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let reply = reply_from(reply)?;
        let id = CallId::from_raw(call);
        let now = to_instant(now);
        let (step, pending) = Self::input_raw(slf, |core| -> Result<Step, UsageError> {
            core.report_store(id, reply, now)?;
            core.poll(id, now)
        })?;
        let step = step.map_err(|e| errors::usage(py, e))?;
        if pending {
            if let Err(e) = Self::flush(slf) {
                if !matches!(step, Step::Done { .. } | Step::Fail(_)) {
                    abandon(slf, id, now.as_nanos());
                }
                return Err(e);
            }
        }
        step_tuple(py, step)
    }

    /// The last error reply of the shared rate limit's store (`CROSSSLOT`, `NOPERM`,
    /// `WRONGTYPE`...: a deployment mistake; `stats()["store"]["errors"]` counts them), or
    /// `None`.
    fn store_last_error(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let g = self.lock();
        let core = g
            .core
            .as_ref()
            .ok_or_else(|| errors::closed(py, "pipeline"))?;
        Ok(core.store_last_error().map(str::to_owned))
    }

    /// Make the store scripts (shared rate limit and shared breaker) use the caller's `now`
    /// instead of the store's clock: a testing hook for conformance vectors only (in
    /// production the store's clock is the fleet's one clock).
    #[pyo3(name = "_use_store_host_clock")]
    fn use_store_host_clock(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        let mut g = self.lock();
        let core = g
            .core
            .as_mut()
            .ok_or_else(|| errors::closed(py, "pipeline"))?;
        core.use_store_host_clock(on);
        Ok(())
    }

    /// The config's store timeout in nanoseconds (`None` without a `store`).
    fn store_timeout(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let g = self.lock();
        let core = g
            .core
            .as_ref()
            .ok_or_else(|| errors::closed(py, "pipeline"))?;
        Ok(core.config().store.as_ref().map(|s| s.timeout.nanos()))
    }

    /// Parked calls whose bulkhead slot was granted since the last take, oldest first.
    fn take_wakes(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock().out.wakes)
    }

    /// Buffered events (kept only while listening), oldest first.
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let events: Vec<Event> = {
            let mut g = self.lock();
            g.out.events.drain(..).collect()
        };
        events_list(py, &events)
    }

    /// Events dropped because the buffer was full.
    #[getter]
    fn events_dropped(&self) -> u64 {
        self.lock().out.dropped
    }

    /// When the next policy-level time-driven change is due, in nanoseconds.
    fn poll_timeout(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let g = self.lock();
        let core = g
            .core
            .as_ref()
            .ok_or_else(|| errors::closed(py, "pipeline"))?;
        Ok(core.poll_timeout().map(Instant::as_nanos))
    }

    /// `PipelineStats` as JSON text.
    fn stats_json(&self, py: Python<'_>) -> PyResult<String> {
        let stats = {
            let g = self.lock();
            g.core
                .as_ref()
                .ok_or_else(|| errors::closed(py, "pipeline"))?
                .stats()
        };
        serde_json::to_string(&stats).map_err(|e| errors::json_error(&e))
    }

    /// The core's Prometheus text, labelled with this pipeline's name.
    fn prometheus(&self, py: Python<'_>) -> PyResult<String> {
        let g = self.lock();
        let core = g
            .core
            .as_ref()
            .ok_or_else(|| errors::closed(py, "pipeline"))?;
        Ok(core.prometheus(&self.name))
    }

    /// Apply a new config (JSON text); an invalid one is refused and the old one stays.
    fn reconfigure(slf: &Bound<'_, Self>, config: &str, now: u64) -> PyResult<()> {
        let py = slf.py();
        let config = PipelineConfig::from_json(config).map_err(|e| errors::config_error(py, &e))?;
        Self::input(slf, |core| core.reconfigure(config, to_instant(now)))?
            .map_err(|e| errors::config_error(py, &e))
    }

    /// Whether the pipeline has a circuit breaker.
    #[getter]
    fn has_breaker(&self) -> bool {
        self.lock()
            .core
            .as_ref()
            .is_some_and(|c| c.breaker().is_some())
    }

    /// Whether the pipeline has a bulkhead.
    #[getter]
    fn has_bulkhead(&self) -> bool {
        self.lock()
            .core
            .as_ref()
            .is_some_and(|c| c.config().bulkhead.is_some())
    }

    /// The breaker's state name, or `None` without a breaker.
    fn breaker_state(&self, py: Python<'_>) -> PyResult<Option<&'static str>> {
        let g = self.lock();
        let core = g
            .core
            .as_ref()
            .ok_or_else(|| errors::closed(py, "pipeline"))?;
        Ok(core.breaker().map(|b| b.state().as_str()))
    }

    /// Open the breaker until `reset`.
    fn force_open(slf: &Bound<'_, Self>, now: u64) -> PyResult<()> {
        Self::with_breaker(slf, |b| b.force_open(to_instant(now)))
    }

    /// Admit every call (metrics only) until `reset`.
    fn disable(slf: &Bound<'_, Self>, now: u64) -> PyResult<()> {
        Self::with_breaker(slf, |b| b.disable(to_instant(now)))
    }

    /// Back to closed with an empty window.
    fn reset(slf: &Bound<'_, Self>, now: u64) -> PyResult<()> {
        Self::with_breaker(slf, |b| b.reset(to_instant(now)))
    }

    /// The breaker's snapshot as JSON text.
    fn snapshot(slf: &Bound<'_, Self>) -> PyResult<String> {
        let snap = Self::with_breaker(slf, |b| b.snapshot())?;
        serde_json::to_string(&snap).map_err(|e| errors::json_error(&e))
    }

    /// Restore the breaker from a snapshot's JSON text.
    fn restore(slf: &Bound<'_, Self>, snapshot: &str, now: u64) -> PyResult<()> {
        let py = slf.py();
        let snap = <BreakerSnapshot as tripwire_core::FromTree>::from_json_str(snapshot)
            .map_err(|e| errors::config_error_at(py, e, "snapshot"))?;
        Self::with_breaker(slf, |b| b.restore(&snap, to_instant(now)))?
            .map_err(|e| errors::config_error_at(py, e, "snapshot"))
    }

    /// The async fast path's first half: read the clock, `begin` + `poll`. Returns the call
    /// handle alone when the step is an attempt without a deadline (run the coroutine
    /// inline), else `(call, step)`.
    fn enter<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let now = to_instant(slf.get().clock.now(py)?);
        let (id, step) = Self::begin_call(slf, now, None)?;
        if let Step::Attempt { deadline: None, .. } = step {
            return Ok(id.to_raw().into_pyobject(py)?.into_any());
        }
        Ok((id.to_raw(), step_tuple(py, step)?)
            .into_pyobject(py)?
            .into_any())
    }

    /// The fast path's second half: read the clock, report success, poll. `None` when the
    /// call is done, else the next step.
    fn succeed<'py>(slf: &Bound<'py, Self>, call: u64) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let py = slf.py();
        let now = to_instant(slf.get().clock.now(py)?);
        let step = Self::report_call(slf, CallId::from_raw(call), Report::SUCCESS, now)?;
        match step {
            Step::Done { .. } => Ok(None),
            other => Ok(Some(step_tuple(py, other)?)),
        }
    }

    /// Run `func(*args, **kwargs)` through the pipeline (the fast path; see the module docs).
    #[pyo3(signature = (func, /, *args, **kwargs))]
    fn call<'py>(
        slf: &Bound<'py, Self>,
        func: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        fast_call(slf, func, args, kwargs)
    }

    /// `func` wrapped: a callable that runs it through this pipeline.
    fn guard(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> Guarded {
        Guarded {
            pipeline: slf.clone().unbind(),
            func: func.clone().unbind(),
        }
    }

    /// Free the core; later use raises `UsageError` (reason `closed`).
    fn close(&self) {
        let mut g = self.lock();
        g.core = None;
        g.out.events.clear();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.clock.traverse(&visit)?;
        if let Some(r) = &self.runner {
            r.traverse(&visit)?;
        }
        Ok(())
    }
}

static METHOD_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A function protected by a pipeline: calling it runs the native fast path. Carries a
/// `__dict__` so that `functools.update_wrapper` can copy the function's name and docs, and
/// binds like a function when used as a method.
#[pyclass(frozen, dict, weakref, module = "tripwire._native", name = "Guarded")]
#[derive(Debug)]
pub struct Guarded {
    pipeline: Py<PyPipeline>,
    func: Py<PyAny>,
}

#[pymethods]
impl Guarded {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        fast_call(self.pipeline.bind(py), self.func.bind(py), args, kwargs)
    }

    fn __get__<'py>(
        slf: &Bound<'py, Self>,
        obj: Option<&Bound<'py, PyAny>>,
        objtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = objtype;
        let py = slf.py();
        match obj {
            Some(o) if !o.is_none() => {
                let method_type = METHOD_TYPE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                    Ok(py.import("types")?.getattr("MethodType")?.unbind())
                })?;
                method_type.bind(py).call1((slf, o))
            }
            _ => Ok(slf.clone().into_any()),
        }
    }

    /// The pipeline's native handle.
    #[getter]
    fn pipeline(&self, py: Python<'_>) -> Py<PyPipeline> {
        self.pipeline.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.pipeline)?;
        visit.call(&self.func)
    }
}

/// A validated policy file.
#[pyclass(frozen, module = "tripwire._native", name = "PolicyFile")]
#[derive(Debug)]
pub struct PyPolicyFile {
    file: PolicyFile,
}

#[pymethods]
impl PyPolicyFile {
    #[new]
    fn new(py: Python<'_>, text: &str) -> PyResult<Self> {
        let file = PolicyFile::from_json(text).map_err(|e| errors::config_error(py, &e))?;
        Ok(PyPolicyFile { file })
    }

    /// The pipelines' names, sorted.
    fn names(&self) -> Vec<String> {
        self.file.names().map(str::to_owned).collect()
    }

    /// A new pipeline for `name` (named `name` in metrics).
    #[pyo3(signature = (name, seed, *, clock=None, runner=None))]
    fn pipeline(
        &self,
        py: Python<'_>,
        name: &str,
        seed: u64,
        clock: Option<&Bound<'_, PyAny>>,
        runner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyPipeline> {
        let core = self
            .file
            .pipeline(name, seed)
            .map_err(|e| errors::usage(py, e))?;
        PyPipeline::from_core(core, clock, runner, name.to_owned())
    }
}

//! A rate limit shared through a store (SCALE-OUT.md): the raw `SharedLimiter` over the core's,
//! the `StoreRequest` a host runs, replies from Python values, and `scripts()`.
//!
//! A reply is, in Python: a sequence of integers (the script's reply), `"timeout"`,
//! `"unavailable"`, `"noScript"`, or `("failed", message)`. The binding never runs a request:
//! the package's adapters (`tripwire.redis_store`) do, with the user's own client.

use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use pyo3::PyTraverseError;
use tripwire_core::store::{
    self, RequestId, SharedCheck, SharedLimiter, Source, StoreReply, StoreRequest,
};
use tripwire_core::{Event, Instant, RateDecision};

use crate::errors;
use crate::limiter::{decision_parts, Handle, Limits};

impl Limits for SharedLimiter {
    fn next_event(&mut self) -> Option<Event> {
        self.poll_event()
    }
}

/// A store request: run `EVALSHA sha1 len(keys) *keys *args` (on `NOSCRIPT`, and only then,
/// `EVAL source ...` once), give up after `timeout` seconds, never resend unless
/// `resend_safe`.
#[pyclass(frozen, module = "tripwire._native", name = "StoreRequest")]
#[derive(Debug)]
pub struct PyStoreRequest {
    /// The request's id (echo it with the reply).
    #[pyo3(get)]
    id: u64,
    script: &'static store::Script,
    keys: Py<PyTuple>,
    args: Py<PyTuple>,
    /// The timeout in nanoseconds.
    #[pyo3(get)]
    timeout_ns: u64,
    /// Whether it may be sent again after a timeout or a dropped connection.
    #[pyo3(get)]
    resend_safe: bool,
}

impl PyStoreRequest {
    pub fn from_core(py: Python<'_>, r: &StoreRequest) -> PyResult<PyStoreRequest> {
        Ok(PyStoreRequest {
            id: r.id.get(),
            script: r.script,
            keys: PyTuple::new(py, &r.keys)?.unbind(),
            args: PyTuple::new(py, &r.args)?.unbind(),
            timeout_ns: crate::convert::ns(r.timeout),
            resend_safe: r.resend_safe,
        })
    }
}

#[pymethods]
impl PyStoreRequest {
    /// The script's name (`"gcra"`).
    #[getter]
    fn script(&self) -> &'static str {
        self.script.name
    }

    /// The script's lowercase hex SHA1 (for `EVALSHA`).
    #[getter]
    fn sha1(&self) -> &'static str {
        self.script.sha1
    }

    /// The script's Lua source (for `EVAL` after `NOSCRIPT`).
    #[getter]
    fn source(&self) -> &'static str {
        self.script.source
    }

    /// The keys (one hash tag), a tuple of str.
    #[getter]
    fn keys(&self, py: Python<'_>) -> Py<PyTuple> {
        self.keys.clone_ref(py)
    }

    /// The arguments, a tuple of str.
    #[getter]
    fn args(&self, py: Python<'_>) -> Py<PyTuple> {
        self.args.clone_ref(py)
    }

    /// The timeout in seconds.
    #[getter]
    fn timeout(&self) -> f64 {
        self.timeout_ns as f64 / 1e9
    }

    fn __repr__(&self) -> String {
        format!(
            "StoreRequest(id={}, script={:?}, timeout={}, resend_safe={})",
            self.id,
            self.script.name,
            self.timeout_ns as f64 / 1e9,
            if self.resend_safe { "True" } else { "False" }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.keys)?;
        visit.call(&self.args)
    }
}

const REPLY_SHAPE: &str = "a sequence of integers, \"timeout\", \"unavailable\", \"noScript\" \
                           or (\"failed\", message)";

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// A store reply from its Python form (see the module docs).
pub fn reply_from(obj: &Bound<'_, PyAny>) -> PyResult<StoreReply> {
    if let Ok(s) = obj.cast::<PyString>() {
        return match &*s.to_cow()? {
            "timeout" => Ok(StoreReply::Timeout),
            "unavailable" => Ok(StoreReply::Unavailable),
            "noScript" => Ok(StoreReply::NoScript),
            other => Err(PyTypeError::new_err(format!(
                "reply: must be {REPLY_SHAPE}, got the string {other:?}"
            ))),
        };
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        if t.len() == 2
            && t.get_item(0)?
                .cast::<PyString>()
                .is_ok_and(|s| s == "failed")
        {
            let msg = t.get_item(1)?;
            let msg = match msg.cast::<PyString>() {
                Ok(s) => s.to_cow()?.into_owned(),
                Err(_) => msg.str()?.to_cow()?.into_owned(),
            };
            return Ok(StoreReply::Failed(msg));
        }
    }
    match obj.extract::<Vec<i64>>() {
        Ok(values) => Ok(StoreReply::Values(values)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "reply: must be {REPLY_SHAPE}, got {}",
            type_name(obj)
        ))),
    }
}

/// `(allowed, wait_ns, retry_after_ns | None, source)`.
type DecisionTuple = (bool, u64, Option<u64>, &'static str);

fn decision_tuple(d: RateDecision, source: Source) -> DecisionTuple {
    let (allowed, wait, retry_after) = decision_parts(d);
    (allowed, wait, retry_after, source.as_str())
}

/// A rate limit shared through a store (the raw layer over the core's `SharedLimiter`).
#[pyclass(frozen, module = "tripwire._native", name = "SharedLimiter")]
#[derive(Debug)]
pub struct PySharedLimiter {
    h: Handle<SharedLimiter>,
}

#[pymethods]
impl PySharedLimiter {
    /// Build from `{"rateLimit": ..., "store": ..., "keyed"?: {"maxKeys", "idleExpiry"}}`
    /// JSON text. `seed` names this instance in heartbeats and keys the denial cache.
    #[new]
    #[pyo3(signature = (config, seed, *, clock=None, runner=None))]
    fn new(
        py: Python<'_>,
        config: &str,
        seed: u64,
        clock: Option<&Bound<'_, PyAny>>,
        runner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let core =
            SharedLimiter::from_json(config, seed).map_err(|e| errors::config_error(py, &e))?;
        Ok(PySharedLimiter {
            h: Handle::new(core, clock, runner, "shared limiter")?,
        })
    }

    /// Decide `cost` for `key` (`""` when not keyed) at `now` (ns): the request id (an int)
    /// when the store must be asked, else `(allowed, wait_ns, retry_after_ns | None,
    /// source)` with source `"cache"` or `"fallback"`. `max_wait` (ns) narrows the limits'
    /// own `maxWait`.
    #[pyo3(signature = (key, now, cost=1, max_wait=None))]
    fn check(
        slf: &Bound<'_, Self>,
        key: &str,
        now: u64,
        cost: u64,
        max_wait: Option<u64>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let max_wait = max_wait.map(std::time::Duration::from_nanos);
        let r = slf.get().h.input(slf.as_any(), |l| {
            l.check(key, Instant::from_nanos(now), cost, max_wait)
        })?;
        match r {
            SharedCheck::Send(id) => Ok(id.get().into_pyobject(py)?.into_any().unbind()),
            SharedCheck::Decided { decision, source } => Ok(decision_tuple(decision, source)
                .into_pyobject(py)?
                .into_any()
                .unbind()),
        }
    }

    /// The request to run for `id` (`None` once it was answered or abandoned).
    fn request(&self, py: Python<'_>, id: u64) -> PyResult<Option<PyStoreRequest>> {
        let r = self
            .h
            .read(py, |l| l.request(RequestId::from_raw(id)).cloned())?;
        r.map(|r| PyStoreRequest::from_core(py, &r)).transpose()
    }

    /// When request `id` times out at the latest (ns), `None` when not pending.
    fn request_deadline(&self, py: Python<'_>, id: u64) -> PyResult<Option<u64>> {
        self.h.read(py, |l| {
            l.request_deadline(RequestId::from_raw(id))
                .map(Instant::as_nanos)
        })
    }

    /// Report the reply to request `id` at `now` (ns): `(allowed, wait_ns, retry_after_ns |
    /// None, source)`. An unknown or already answered id raises `UsageError` (unknownCall).
    fn reply(
        slf: &Bound<'_, Self>,
        id: u64,
        reply: &Bound<'_, PyAny>,
        now: u64,
    ) -> PyResult<DecisionTuple> {
        let py = slf.py();
        let reply = reply_from(reply)?;
        let r = slf.get().h.input(slf.as_any(), |l| {
            l.on_reply(RequestId::from_raw(id), reply, Instant::from_nanos(now))
        })?;
        let (decision, source) = r.map_err(|e| errors::usage(py, e))?;
        Ok(decision_tuple(decision, source))
    }

    /// Forget request `id` (its caller went away); a later reply is an unknown id.
    fn abandon(slf: &Bound<'_, Self>, id: u64, now: u64) -> PyResult<()> {
        slf.get().h.input(slf.as_any(), |l| {
            l.abandon(RequestId::from_raw(id), Instant::from_nanos(now));
        })
    }

    /// Read this limiter's clock, in nanoseconds.
    fn now(&self, py: Python<'_>) -> PyResult<u64> {
        self.h.clock.now(py)
    }

    /// `StoreMetrics` as JSON text.
    fn metrics_json(&self, py: Python<'_>) -> PyResult<String> {
        let m = self.h.read(py, SharedLimiter::metrics)?;
        serde_json::to_string(&m).map_err(|e| errors::json_error(&e))
    }

    /// The store breaker's state (`"closed"`: the store decides).
    fn store_state(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.h.read(py, |l| l.store_state().as_str())
    }

    /// The last error reply (a deployment mistake such as `WRONGTYPE`), if any.
    fn last_error(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.h.read(py, |l| l.last_error().map(str::to_owned))
    }

    /// This instance's id in the heartbeat set.
    #[getter]
    fn member(&self, py: Python<'_>) -> PyResult<String> {
        self.h.read(py, |l| l.member().to_owned())
    }

    /// The store timeout, ns.
    #[getter]
    fn timeout_ns(&self, py: Python<'_>) -> PyResult<u64> {
        self.h.read(py, |l| l.config().timeout.nanos())
    }

    /// Make the script use the caller's `now` instead of the store's clock: conformance
    /// vectors only (in production the store's clock is the fleet's one clock).
    fn use_host_clock(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        let mut g = self.h.lock();
        let core = g
            .core
            .as_mut()
            .ok_or_else(|| errors::closed(py, "shared limiter"))?;
        core.use_host_clock(on);
        Ok(())
    }

    fn set_listening(&self, on: bool) {
        self.h.set_listening(on);
    }

    /// Buffered events (`storeStateChanged`; kept only while listening), oldest first.
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

/// Every script a store may be asked to run: `[(name, sha1, source)]` (to `SCRIPT LOAD` at
/// start).
#[pyfunction]
pub fn scripts() -> Vec<(&'static str, &'static str, &'static str)> {
    store::scripts()
        .iter()
        .map(|s| (s.name, s.sha1, s.source))
        .collect()
}

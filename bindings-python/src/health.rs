//! `HealthRegistry`: the core plans which checks run and when; the Python `HealthChecker`
//! runs them (threads or tasks) and reports results here.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tripwire_core::health::{
    CheckConfig, CheckId, CheckResult, HealthConfig, HealthEvent, HealthEventKind, HealthRegistry,
};
use tripwire_core::{BreakerState, Instant};

use crate::errors;

#[derive(Debug)]
struct Inner {
    reg: HealthRegistry,
    /// Every id ever handed out, with its name (events and late reports name unregistered checks).
    names: HashMap<u32, String>,
}

/// A registry of named checks.
#[pyclass(frozen, module = "tripwire._native", name = "HealthRegistry")]
#[derive(Debug)]
pub struct PyHealthRegistry {
    inner: Mutex<Inner>,
}

impl PyHealthRegistry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn due_list(inner: &Inner, due: &[tripwire_core::DueCheck]) -> Vec<(u32, String, u64)> {
    due.iter()
        .map(|d| {
            let name = inner.reg.name(d.id).unwrap_or_default().to_owned();
            (d.id.get(), name, d.deadline.as_nanos())
        })
        .collect()
}

#[pymethods]
impl PyHealthRegistry {
    /// An empty registry, or one built from `{"checks": {name: checkConfig}}` JSON text.
    #[new]
    #[pyo3(signature = (config=None))]
    fn new(py: Python<'_>, config: Option<&str>) -> PyResult<Self> {
        let reg = match config {
            Some(text) => {
                let c = HealthConfig::from_json(text).map_err(|e| errors::config_error(py, &e))?;
                HealthRegistry::from_config(c).map_err(|e| errors::config_error(py, &e))?
            }
            None => HealthRegistry::new(),
        };
        let names = reg
            .ids()
            .map(|id| (id.get(), reg.name(id).unwrap_or_default().to_owned()))
            .collect();
        Ok(PyHealthRegistry {
            inner: Mutex::new(Inner { reg, names }),
        })
    }

    /// Register a check (config JSON text, default `{}`); returns its id. Errors carry
    /// paths under `checks.<name>`.
    #[pyo3(signature = (name, config=None))]
    fn register(&self, py: Python<'_>, name: &str, config: Option<&str>) -> PyResult<u32> {
        let config = match config {
            Some(text) => <CheckConfig as tripwire_core::FromTree>::from_json_str(text)
                .map_err(|e| errors::config_error_at(py, e, &format!("checks.{name}")))?,
            None => CheckConfig::default(),
        };
        let mut g = self.lock();
        let id = g
            .reg
            .register(name, config)
            .map_err(|e| errors::config_error(py, &e))?;
        g.names.insert(id.get(), name.to_owned());
        Ok(id.get())
    }

    /// Remove a check; `False` when none has that name.
    fn unregister(&self, name: &str) -> bool {
        self.lock().reg.unregister(name)
    }

    /// The id of the check named `name`.
    fn id(&self, name: &str) -> Option<u32> {
        self.lock().reg.id(name).map(CheckId::get)
    }

    /// Start the checks due at `now`: `[(id, name, deadline_ns)]` in name order.
    fn due(&self, now: u64) -> Vec<(u32, String, u64)> {
        let mut g = self.lock();
        let due = g.reg.due(Instant::from_nanos(now));
        due_list(&g, &due)
    }

    /// Start every idle check now (an on-demand run).
    fn due_all(&self, now: u64) -> Vec<(u32, String, u64)> {
        let mut g = self.lock();
        let due = g.reg.due_all(Instant::from_nanos(now));
        due_list(&g, &due)
    }

    /// Report one run's result (`UsageError` reason `unknownCheck` for a stale id).
    #[pyo3(signature = (id, ok, latency, error, now))]
    fn report(
        &self,
        py: Python<'_>,
        id: u32,
        ok: bool,
        latency: u64,
        error: Option<&str>,
        now: u64,
    ) -> PyResult<()> {
        let result = CheckResult {
            ok,
            latency: Duration::from_nanos(latency),
            error,
        };
        self.lock()
            .reg
            .report(CheckId::from_raw(id), result, Instant::from_nanos(now))
            .map_err(|e| errors::usage(py, e))
    }

    /// Fail every run past its deadline.
    fn expire(&self, now: u64) {
        self.lock().reg.expire(Instant::from_nanos(now));
    }

    /// `"healthy"`, `"degraded"` or `"unhealthy"`.
    fn status(&self) -> &'static str {
        self.lock().reg.status().as_str()
    }

    /// 200 or 503.
    fn http_status(&self) -> u16 {
        self.lock().reg.status().http_status()
    }

    /// A check's status by name, `None` when not registered.
    fn check_status(&self, name: &str) -> Option<&'static str> {
        let g = self.lock();
        g.reg
            .id(name)
            .and_then(|id| g.reg.check_status(id))
            .map(|s| s.as_str())
    }

    /// When to call back, in nanoseconds.
    fn poll_timeout(&self) -> Option<u64> {
        self.lock().reg.poll_timeout().map(Instant::as_nanos)
    }

    /// Tell the registry a breaker's state by name.
    fn set_breaker(&self, name: &str, state: &str) -> PyResult<()> {
        let s = BreakerState::from_name(state).ok_or_else(|| {
            PyValueError::new_err(format!("state: not a breaker state: {state:?}"))
        })?;
        self.lock().reg.set_breaker(name, s);
        Ok(())
    }

    /// Stop listing a breaker.
    fn remove_breaker(&self, name: &str) -> bool {
        self.lock().reg.remove_breaker(name)
    }

    /// The report as JSON text.
    fn report_json(&self, timestamp: &str) -> PyResult<String> {
        let v = self.lock().reg.report_json(timestamp);
        serde_json::to_string(&v).map_err(|e| errors::json_error(&e))
    }

    /// `HealthMetrics` as JSON text.
    fn metrics_json(&self) -> PyResult<String> {
        let m = self.lock().reg.metrics();
        serde_json::to_string(&m).map_err(|e| errors::json_error(&e))
    }

    /// Drain events: `("checkChanged", at_ns, name, from, to)`, `("timedOut", at_ns, name,
    /// None, None)`, `("statusChanged", at_ns, None, from, to)`.
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let (events, names): (Vec<HealthEvent>, HashMap<u32, String>) = {
            let mut g = self.lock();
            let events = std::iter::from_fn(|| g.reg.poll_event()).collect();
            (events, g.names.clone())
        };
        let name = |id: CheckId| names.get(&id.get()).cloned();
        events
            .iter()
            .map(|e| {
                let at = e.at.as_nanos();
                match e.kind {
                    HealthEventKind::CheckChanged { check, from, to } => (
                        "checkChanged",
                        at,
                        name(check),
                        Some(from.as_str()),
                        Some(to.as_str()),
                    )
                        .into_pyobject(py),
                    HealthEventKind::TimedOut { check } => {
                        ("timedOut", at, name(check), None::<&str>, None::<&str>).into_pyobject(py)
                    }
                    HealthEventKind::StatusChanged { from, to } => (
                        "statusChanged",
                        at,
                        None::<String>,
                        Some(from.as_str()),
                        Some(to.as_str()),
                    )
                        .into_pyobject(py),
                    ref other => (other.name(), at, None::<String>, None::<&str>, None::<&str>)
                        .into_pyobject(py),
                }
            })
            .collect()
    }
}

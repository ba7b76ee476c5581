//! `Bulkhead`: the core bulkhead alone, tickets as integers (the conformance runner's bulkhead;
//! the public `tripwire.Bulkhead` drives a one-policy pipeline, which parks and wakes).

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tripwire_core::bulkhead::{Bulkhead, BulkheadConfig, Entry, Ticket};
use tripwire_core::{Event, Instant};

use crate::convert::events_list;
use crate::errors;

/// A bulkhead.
#[pyclass(frozen, module = "tripwire._native", name = "Bulkhead")]
#[derive(Debug)]
pub struct PyBulkhead {
    inner: Mutex<Option<Bulkhead>>,
}

impl PyBulkhead {
    fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&mut Bulkhead) -> R) -> PyResult<R> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.as_mut()
            .map(f)
            .ok_or_else(|| errors::closed(py, "bulkhead"))
    }
}

/// `(result, until_ns | None, reason | None, ticket | None)`.
type EntryTuple = (&'static str, Option<u64>, Option<&'static str>, Option<u64>);

#[pymethods]
impl PyBulkhead {
    #[new]
    fn new(py: Python<'_>, config: &str) -> PyResult<Self> {
        let config = BulkheadConfig::from_json(config).map_err(|e| errors::config_error(py, &e))?;
        let b = Bulkhead::new(config).map_err(|e| errors::config_error(py, &e))?;
        Ok(PyBulkhead {
            inner: Mutex::new(Some(b)),
        })
    }

    /// Enter: `("admitted" | "queued" | "rejected", until_ns, reason, ticket)`.
    #[pyo3(signature = (now, deadline=None))]
    fn enter(&self, py: Python<'_>, now: u64, deadline: Option<u64>) -> PyResult<EntryTuple> {
        let e = self.with(py, |b| {
            b.try_enter(Instant::from_nanos(now), deadline.map(Instant::from_nanos))
        })?;
        Ok(match e {
            Entry::Admitted => ("admitted", None, None, None),
            Entry::Queued { ticket, until } => (
                "queued",
                until.map(Instant::as_nanos),
                None,
                Some(ticket.get()),
            ),
            Entry::Rejected { reason } => ("rejected", None, Some(reason.as_str()), None),
            _ => {
                return Err(errors::usage_error(
                    py,
                    "unknownEntry",
                    "the core returned an entry this binding does not know",
                ))
            }
        })
    }

    /// Release a slot; the ticket woken, if any.
    fn release(&self, py: Python<'_>, now: u64) -> PyResult<Option<u64>> {
        self.with(py, |b| b.release(Instant::from_nanos(now)).map(Ticket::get))
    }

    /// Leave the queue; `True` when the ticket was waiting.
    #[pyo3(signature = (ticket, now, timed_out=false))]
    fn cancel(&self, py: Python<'_>, ticket: u64, now: u64, timed_out: bool) -> PyResult<bool> {
        self.with(py, |b| {
            b.cancel(
                Ticket::from_raw(ticket),
                Instant::from_nanos(now),
                timed_out,
            )
        })
    }

    /// `BulkheadMetrics` as JSON text.
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

    fn close(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

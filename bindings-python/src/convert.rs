//! Core values as small Python tuples, and the codes shared with the Python layer.
//!
//! A step is a tuple whose first item is its tag:
//! `(STEP_ATTEMPT, attempt, deadline_ns | None)`, `(STEP_SLEEP, until_ns)`,
//! `(STEP_PARK, until_ns | None, ticket)`, `(STEP_DONE, attempts)`,
//! `(STEP_FAIL, kind_code, retry_after_ns | None, attempts, fallback, cause_code | None)`,
//! `(STEP_STORE, until_ns, request_id)`.
//! Kind codes are `ErrorKind::code()`; `ERROR_KINDS[code - 1]` is the kind's name.
//! An event is `(type, at_ns, a, b)` (see `event_tuple`).

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tripwire_core::pipeline::{Outcome, Report, Step};
use tripwire_core::time::duration_nanos;
use tripwire_core::{ErrorKind, Event, EventKind, Instant};

use crate::errors;

pub const STEP_ATTEMPT: u8 = 0;
pub const STEP_SLEEP: u8 = 1;
pub const STEP_PARK: u8 = 2;
pub const STEP_DONE: u8 = 3;
pub const STEP_FAIL: u8 = 4;
pub const STEP_STORE: u8 = 5;

pub const OUTCOME_SUCCESS: u8 = 0;
pub const OUTCOME_FAILURE: u8 = 1;
pub const OUTCOME_TIMEOUT: u8 = 2;
pub const OUTCOME_IGNORED: u8 = 3;

/// Every kind's name, indexed by `code - 1`.
pub fn error_kind_names() -> Vec<&'static str> {
    ErrorKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// Nanoseconds of a duration.
#[inline]
pub fn ns(d: Duration) -> u64 {
    duration_nanos(d)
}

/// A step as its tuple. `Step` is `#[non_exhaustive]`: an unknown step is a usage error
/// rather than a guess.
pub fn step_tuple<'py>(py: Python<'py>, step: Step) -> PyResult<Bound<'py, PyTuple>> {
    match step {
        Step::Attempt { attempt, deadline } => {
            (STEP_ATTEMPT, attempt, deadline.map(Instant::as_nanos)).into_pyobject(py)
        }
        Step::Sleep { until } => (STEP_SLEEP, until.as_nanos()).into_pyobject(py),
        Step::Park { ticket, until } => {
            (STEP_PARK, until.map(Instant::as_nanos), ticket).into_pyobject(py)
        }
        Step::Store { request, until } => {
            (STEP_STORE, until.as_nanos(), request.get()).into_pyobject(py)
        }
        Step::Done { attempts } => (STEP_DONE, attempts).into_pyobject(py),
        Step::Fail(f) => (
            STEP_FAIL,
            f.kind.code(),
            f.retry_after.map(ns),
            f.attempts,
            f.fallback,
            f.cause.map(ErrorKind::code),
        )
            .into_pyobject(py),
        _ => Err(errors::usage_error(
            py,
            "unknownStep",
            "the core returned a step this binding does not know",
        )),
    }
}

/// An attempt's outcome from its code and the host's predicate.
pub fn report(
    py: Python<'_>,
    outcome: u8,
    retryable: bool,
    retry_after: Option<u64>,
) -> PyResult<Report> {
    let outcome = match outcome {
        OUTCOME_SUCCESS => Outcome::Success,
        OUTCOME_FAILURE => Outcome::Failure,
        OUTCOME_TIMEOUT => Outcome::Timeout,
        OUTCOME_IGNORED => Outcome::Ignored,
        other => {
            return Err(errors::usage_error(
                py,
                "badOutcome",
                &format!("outcome: must be 0 (success), 1 (failure), 2 (timeout) or 3 (ignored), got {other}"),
            ))
        }
    };
    Ok(Report {
        outcome,
        retryable,
        retry_after: retry_after.map(Duration::from_nanos),
    })
}

/// An event as `(type, at_ns, a, b)`:
/// `stateChanged` (from, to), `rejected` (reason, retry_after_ns | None),
/// `retryScheduled` (attempt, delay_ns), `gaveUp` (reason, attempts), `queued` (ticket, None),
/// `woken` (ticket, None), `storeStateChanged` (from, to); an event kind this binding does not know yet is `(name, at, None, None)`.
pub fn event_tuple<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyTuple>> {
    let at = e.at.as_nanos();
    let none = py.None();
    let t = match e.kind {
        EventKind::StateChanged { from, to } => {
            ("stateChanged", at, from.as_str(), to.as_str()).into_pyobject(py)?
        }
        EventKind::Rejected {
            reason,
            retry_after,
        } => ("rejected", at, reason.as_str(), retry_after.map(ns)).into_pyobject(py)?,
        EventKind::RetryScheduled { attempt, delay } => {
            ("retryScheduled", at, attempt, ns(delay)).into_pyobject(py)?
        }
        EventKind::GaveUp { reason, attempts } => {
            ("gaveUp", at, reason.as_str(), attempts).into_pyobject(py)?
        }
        EventKind::Queued { ticket } => ("queued", at, ticket, none).into_pyobject(py)?,
        EventKind::Woken { ticket } => ("woken", at, ticket, none).into_pyobject(py)?,
        EventKind::StoreStateChanged { from, to } => {
            ("storeStateChanged", at, from.as_str(), to.as_str()).into_pyobject(py)?
        }
        ref other => (other.name(), at, none.clone_ref(py), none).into_pyobject(py)?,
    };
    Ok(t)
}

/// Drained events as a list of tuples.
pub fn events_list<'py>(py: Python<'py>, events: &[Event]) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    events.iter().map(|e| event_tuple(py, e)).collect()
}

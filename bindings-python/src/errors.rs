//! The error table of this boundary. Rejections are not errors (they are step values that
//! the Python layer maps to its exception classes); this file raises only for bad
//! configuration, misuse, and broken clocks, as the package's own classes
//! (`tripwire.errors`), imported once.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use tripwire_core::{ConfigError, UsageError};

static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static USAGE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CLOCK_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

const MODULE: &str = "tripwire.errors";

fn raise<A>(py: Python<'_>, cell: &PyOnceLock<Py<PyType>>, name: &str, args: A) -> PyErr
where
    A: for<'py> pyo3::call::PyCallArgs<'py>,
{
    match cell.import(py, MODULE, name) {
        Ok(cls) => match cls.call1(args) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// `tripwire.ConfigError(message, issues)`: every issue as `(path, reason)`.
pub fn config_error(py: Python<'_>, e: &ConfigError) -> PyErr {
    let issues: Vec<(String, String)> = e
        .issues()
        .iter()
        .map(|i| (i.path.clone(), i.reason.clone()))
        .collect();
    raise(py, &CONFIG_ERROR, "ConfigError", (e.to_string(), issues))
}

/// A config error at `path` found by the binding itself (e.g. a check config's shape).
pub fn config_error_at(py: Python<'_>, e: ConfigError, prefix: &str) -> PyErr {
    config_error(py, &e.within(prefix))
}

/// `tripwire.UsageError(message, reason)`.
pub fn usage_error(py: Python<'_>, reason: &str, message: &str) -> PyErr {
    raise(
        py,
        &USAGE_ERROR,
        "UsageError",
        (message.to_owned(), reason.to_owned()),
    )
}

/// The core's misuse errors. `UsageError` is `#[non_exhaustive]` in the core, so this table
/// needs a last arm; it keeps the core's own text and a generic reason.
pub fn usage(py: Python<'_>, e: UsageError) -> PyErr {
    let reason = match e {
        UsageError::UnknownCall => "unknownCall",
        UsageError::AttemptInFlight => "attemptInFlight",
        UsageError::NoAttemptInFlight => "noAttemptInFlight",
        UsageError::UnknownCheck => "unknownCheck",
        UsageError::DuplicateCheck => "duplicateCheck",
        UsageError::UnknownPolicy => "unknownPolicy",
        UsageError::NoStoreRequest => "noStoreRequest",
        UsageError::UnknownRequest => "unknownRequest",
        _ => "usage",
    };
    usage_error(py, reason, e.as_str())
}

/// Using an object after `close()`.
pub fn closed(py: Python<'_>, what: &str) -> PyErr {
    usage_error(py, "closed", &format!("this {what} is closed"))
}

/// `tripwire.ClockError(message)`: a clock returned something that is not an instant.
pub fn clock_error(py: Python<'_>, message: &str) -> PyErr {
    raise(py, &CLOCK_ERROR, "ClockError", (message.to_owned(),))
}

/// JSON rendering of a core value failed (it cannot for the core's types; kept typed).
pub fn json_error(e: &serde_json::Error) -> PyErr {
    PyRuntimeError::new_err(format!("tripwire: cannot render JSON: {e}"))
}

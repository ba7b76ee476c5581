//! The host clock: the native monotonic clock (the default) or any Python object with a
//! `monotonic()` method returning seconds.

use std::sync::OnceLock;
use std::time::Instant as StdInstant;

use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

use crate::errors;

/// `time.monotonic_ns()` at module load, and the std instant taken at the same moment. Both
/// read `CLOCK_MONOTONIC` on Linux, so native and Python readings agree (and any sub-µs
/// calibration skew is absorbed by the core's clamp).
static ORIGIN: OnceLock<(StdInstant, u64)> = OnceLock::new();

/// The host reads the clock: this binding is the host (clippy.toml bans clocks in the core).
#[allow(clippy::disallowed_methods)]
fn std_now() -> StdInstant {
    StdInstant::now()
}

/// Calibrate the native clock against `time.monotonic_ns()`.
pub fn init(py: Python<'_>) -> PyResult<()> {
    let base: u64 = py
        .import(intern!(py, "time"))?
        .call_method0(intern!(py, "monotonic_ns"))?
        .extract()?;
    let _ = ORIGIN.get_or_init(|| (std_now(), base));
    Ok(())
}

/// Nanoseconds on the native monotonic clock (the `time.monotonic_ns()` timeline).
pub fn native_now() -> u64 {
    let (origin, base) = ORIGIN.get_or_init(|| (std_now(), 0));
    let elapsed = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
    base.saturating_add(elapsed)
}

/// `time.monotonic_ns()`, read natively: the default clock of every tripwire object.
#[pyfunction]
pub fn monotonic_ns() -> u64 {
    native_now()
}

/// Seconds (a Python number) to nanoseconds, refusing what is not a time.
pub fn secs_to_ns(py: Python<'_>, value: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    let secs: f64 = value.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: must be a number of seconds, got {}",
            value
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ))
    })?;
    secs_f64_to_ns(py, secs, what)
}

/// Seconds (a float) to nanoseconds, rounded; NaN, infinities and negatives are refused.
pub fn secs_f64_to_ns(py: Python<'_>, secs: f64, what: &str) -> PyResult<u64> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(errors::clock_error(
            py,
            &format!("{what}: must be a finite number of seconds >= 0, got {secs}"),
        ));
    }
    let ns = (secs * 1e9).round();
    Ok(if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns as u64
    })
}

/// Where a handle reads `now`.
#[derive(Debug)]
pub enum Clock {
    /// The native monotonic clock.
    Native,
    /// A Python clock object (`monotonic()` in seconds).
    Py(Py<PyAny>),
}

impl Clock {
    /// `None` means the native clock.
    pub fn from_arg(clock: Option<&Bound<'_, PyAny>>) -> Clock {
        match clock {
            Some(c) if !c.is_none() => Clock::Py(c.clone().unbind()),
            _ => Clock::Native,
        }
    }

    /// The current instant in nanoseconds.
    #[inline]
    pub fn now(&self, py: Python<'_>) -> PyResult<u64> {
        match self {
            Clock::Native => Ok(native_now()),
            Clock::Py(c) => {
                let v = c.bind(py).call_method0(intern!(py, "monotonic"))?;
                secs_to_ns(py, &v, "clock.monotonic()")
            }
        }
    }

    /// The Python clock object, if any.
    pub fn object(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match self {
            Clock::Native => None,
            Clock::Py(c) => Some(c.clone_ref(py)),
        }
    }

    /// GC support.
    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Clock::Native => Ok(()),
            Clock::Py(c) => visit.call(c),
        }
    }
}

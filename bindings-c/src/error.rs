//! Statuses, error objects, the thread-local last error, and the guard every `extern "C"`
//! function runs its body in (so that no panic crosses the boundary).

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use tripwire_core::{ConfigError, ErrorKind, UsageError};

/// The result of every fallible call. Values are stable: `0` is success, `1..=99` misuse and
/// configuration problems, `100 + k` a protected call that failed with ::tw_kind `k`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument was out of range or malformed (not UTF-8, an unknown enum value...).
    InvalidArgument = 2,
    /// A JSON configuration was refused; the message starts with the field path.
    InvalidConfig = 3,
    /// The caller's buffer is too small; `*needed` holds the size required.
    BufferTooSmall = 4,
    /// The call handle does not name a live call (finished, ended, or never begun).
    UnknownCall = 5,
    /// tw_call_poll() while an attempt is running: report its outcome first.
    AttemptInFlight = 6,
    /// tw_call_report() while no attempt is running.
    NoAttemptInFlight = 7,
    /// No health check with that name or id.
    UnknownCheck = 8,
    /// A health check with that name is already registered.
    DuplicateCheck = 9,
    /// The policy file defines no pipeline with that name.
    UnknownPolicy = 10,
    /// The pipeline has no such policy (e.g. breaker operations without `circuitBreaker`).
    NotConfigured = 11,
    /// An internal error (a bug in tripwire); the host process is unaffected.
    Panic = 12,
    /// An earlier call panicked inside this handle; free it and build a new one.
    Poisoned = 13,
    /// The protected call was refused: the circuit breaker is open.
    CircuitOpen = 101,
    /// The protected call was refused: no bulkhead slot and no queue place.
    BulkheadFull = 102,
    /// The protected call waited in the bulkhead queue too long.
    QueueTimeout = 103,
    /// The protected call was refused by a rate limit (or a server's pushback).
    RateLimited = 104,
    /// The protected call's attempt ran past its timeout.
    Timeout = 105,
    /// Every allowed attempt failed.
    RetriesExhausted = 106,
    /// The retry budget refused a retry.
    BudgetExhausted = 107,
    /// The call's deadline passed, or the next retry could not start before it.
    DeadlineExceeded = 108,
    /// Your function failed and no retry applied: its own error stands (in your context).
    Failure = 109,
}

/// The status a call that failed with `kind` returns (the one mapping table of kinds).
pub(crate) fn kind_status(kind: ErrorKind) -> tw_status {
    match kind {
        ErrorKind::CircuitOpen => tw_status::CircuitOpen,
        ErrorKind::BulkheadFull => tw_status::BulkheadFull,
        ErrorKind::QueueTimeout => tw_status::QueueTimeout,
        ErrorKind::RateLimited => tw_status::RateLimited,
        ErrorKind::Timeout => tw_status::Timeout,
        ErrorKind::RetriesExhausted => tw_status::RetriesExhausted,
        ErrorKind::BudgetExhausted => tw_status::BudgetExhausted,
        ErrorKind::DeadlineExceeded => tw_status::DeadlineExceeded,
        ErrorKind::Failure => tw_status::Failure,
        ErrorKind::InvalidConfig => tw_status::InvalidConfig,
        // ErrorKind is #[non_exhaustive]: a kind added to the core before this table learns
        // it is still a failed call, reported as the function's failure.
        _ => tw_status::Failure,
    }
}

/// The status of a misuse error (the one mapping table of usage errors).
fn usage_status(e: UsageError) -> tw_status {
    match e {
        UsageError::UnknownCall => tw_status::UnknownCall,
        UsageError::AttemptInFlight => tw_status::AttemptInFlight,
        UsageError::NoAttemptInFlight => tw_status::NoAttemptInFlight,
        UsageError::UnknownCheck => tw_status::UnknownCheck,
        UsageError::DuplicateCheck => tw_status::DuplicateCheck,
        UsageError::UnknownPolicy => tw_status::UnknownPolicy,
        // An unknown store request id is the same mistake as an unknown call handle.
        UsageError::UnknownRequest => tw_status::UnknownCall,
        // UsageError is #[non_exhaustive]; its message still names the problem.
        _ => tw_status::InvalidArgument,
    }
}

const STATUSES: [tw_status; 23] = [
    tw_status::Ok,
    tw_status::NullArgument,
    tw_status::InvalidArgument,
    tw_status::InvalidConfig,
    tw_status::BufferTooSmall,
    tw_status::UnknownCall,
    tw_status::AttemptInFlight,
    tw_status::NoAttemptInFlight,
    tw_status::UnknownCheck,
    tw_status::DuplicateCheck,
    tw_status::UnknownPolicy,
    tw_status::NotConfigured,
    tw_status::Panic,
    tw_status::Poisoned,
    tw_status::CircuitOpen,
    tw_status::BulkheadFull,
    tw_status::QueueTimeout,
    tw_status::RateLimited,
    tw_status::Timeout,
    tw_status::RetriesExhausted,
    tw_status::BudgetExhausted,
    tw_status::DeadlineExceeded,
    tw_status::Failure,
];

impl tw_status {
    /// The status's stable name, NUL-terminated.
    const fn name(self) -> &'static str {
        match self {
            tw_status::Ok => "ok\0",
            tw_status::NullArgument => "nullArgument\0",
            tw_status::InvalidArgument => "invalidArgument\0",
            tw_status::InvalidConfig => "invalidConfig\0",
            tw_status::BufferTooSmall => "bufferTooSmall\0",
            tw_status::UnknownCall => "unknownCall\0",
            tw_status::AttemptInFlight => "attemptInFlight\0",
            tw_status::NoAttemptInFlight => "noAttemptInFlight\0",
            tw_status::UnknownCheck => "unknownCheck\0",
            tw_status::DuplicateCheck => "duplicateCheck\0",
            tw_status::UnknownPolicy => "unknownPolicy\0",
            tw_status::NotConfigured => "notConfigured\0",
            tw_status::Panic => "panic\0",
            tw_status::Poisoned => "poisoned\0",
            tw_status::CircuitOpen => "circuitOpen\0",
            tw_status::BulkheadFull => "bulkheadFull\0",
            tw_status::QueueTimeout => "queueTimeout\0",
            tw_status::RateLimited => "rateLimited\0",
            tw_status::Timeout => "timeout\0",
            tw_status::RetriesExhausted => "retriesExhausted\0",
            tw_status::BudgetExhausted => "budgetExhausted\0",
            tw_status::DeadlineExceeded => "deadlineExceeded\0",
            tw_status::Failure => "failure\0",
        }
    }
}

/// An error as the library builds it before handing it to C.
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) status: tw_status,
    pub(crate) message: Cow<'static, str>,
    /// For configuration errors: the first issue's field path.
    pub(crate) path: String,
}

impl Error {
    pub(crate) fn new(status: tw_status, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            status,
            message: message.into(),
            path: String::new(),
        }
    }

    pub(crate) fn null(what: &'static str) -> Error {
        Error::new(tw_status::NullArgument, format!("{what}: must not be NULL"))
    }

    pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(tw_status::InvalidArgument, message)
    }

    pub(crate) fn not_configured(what: &'static str) -> Error {
        Error::new(
            tw_status::NotConfigured,
            format!("this pipeline has no {what}"),
        )
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error {
            status: tw_status::InvalidConfig,
            path: e
                .issues()
                .first()
                .map(|i| i.path.clone())
                .unwrap_or_default(),
            message: e.to_string().into(),
        }
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Error {
        Error::new(usage_status(e), e.as_str())
    }
}

/// An error handed to C: status, message and (for configuration errors) the field path.
/// Release with tw_error_free().
#[derive(Debug)]
pub struct tw_error {
    status: tw_status,
    /// NUL-terminated.
    message: Vec<u8>,
    /// NUL-terminated.
    path: Vec<u8>,
}

fn nul_terminated(text: &str) -> Vec<u8> {
    // Interior NULs would cut the C string short; they cannot come from the core's messages
    // but may come from a caller's text echoed back.
    let mut v: Vec<u8> = text
        .bytes()
        .map(|b| if b == 0 { b'?' } else { b })
        .collect();
    v.push(0);
    v
}

struct LastError {
    status: tw_status,
    /// NUL-terminated; its capacity is reused across errors.
    message: Vec<u8>,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = const {
        RefCell::new(LastError { status: tw_status::Ok, message: Vec::new() })
    };
}

fn set_last_error(e: &Error) {
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            last.status = e.status;
            last.message.clear();
            last.message
                .extend(e.message.bytes().map(|b| if b == 0 { b'?' } else { b }));
            last.message.push(0);
        }
    });
}

/// Report `e`: the thread-local last error, and `*err` when the caller asked for one.
///
/// # Safety
/// `err` is NULL or points to a writable `tw_error *`.
unsafe fn fail(err: *mut *mut tw_error, e: Error) -> tw_status {
    set_last_error(&e);
    if !err.is_null() {
        // SAFETY: the caller passes NULL or a valid `tw_error **`.
        let slot = unsafe { &mut *err };
        // The first error wins (as with GLib's GError): an unreleased one is never overwritten,
        // so it can neither leak nor be freed behind the caller's back.
        if slot.is_null() {
            *slot = Box::into_raw(Box::new(tw_error {
                status: e.status,
                message: nul_terminated(&e.message),
                path: nul_terminated(&e.path),
            }));
        }
    }
    e.status
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("internal error (please report it): {text}")
}

/// Run an `extern "C"` function's body: a panic becomes ::TW_STATUS_PANIC, an `Err` its
/// status, both recorded for the caller.
///
/// # Safety
/// `err` is NULL or points to a writable `tw_error *`.
pub(crate) unsafe fn guard(
    err: *mut *mut tw_error,
    body: impl FnOnce() -> Result<(), Error>,
) -> tw_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => tw_status::Ok,
        // SAFETY: forwarded from our caller's contract.
        Ok(Err(e)) => unsafe { fail(err, e) },
        Err(payload) => {
            let e = Error::new(tw_status::Panic, panic_message(payload.as_ref()));
            // SAFETY: forwarded from our caller's contract.
            unsafe { fail(err, e) }
        }
    }
}

/// Like [`guard`] for functions that cannot report an error (`_free`, getters returning a
/// value): a panic gives `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The status's stable name (`"ok"`, `"circuitOpen"`, ...), or `"unknown"` for a value that
/// is not a ::tw_status. The string is static; never free it.
#[no_mangle]
pub extern "C" fn tw_status_str(status: RawStatus) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        STATUSES
            .iter()
            .find(|s| **s as c_int == status)
            .map_or(c"unknown".as_ptr(), |s| s.name().as_ptr().cast())
    })
}

/// A ::tw_status value as C passes it (any `int`, validated before use).
pub type RawStatus = c_int;

/// The status of the error.
///
/// Returns ::TW_STATUS_NULL_ARGUMENT when `err` is NULL.
///
/// # Safety
/// `err` is NULL or an error returned through a `tw_error **` and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn tw_error_status(err: *const tw_error) -> tw_status {
    // SAFETY: per this function's contract.
    guard_value(tw_status::Panic, || match unsafe { err.as_ref() } {
        Some(e) => e.status,
        None => tw_status::NullArgument,
    })
}

/// The error's message, NUL-terminated, valid until tw_error_free(). For configuration errors
/// it reads `path: reason` (for example
/// `circuitBreaker.halfOpen.permittedCalls: must be >= 1, got 0`). Never NULL: a NULL `err`
/// gives an empty string.
///
/// # Safety
/// `err` is NULL or an error returned through a `tw_error **` and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn tw_error_message(err: *const tw_error) -> *const c_char {
    // SAFETY: per this function's contract.
    guard_value(c"".as_ptr(), || match unsafe { err.as_ref() } {
        Some(e) => e.message.as_ptr().cast(),
        None => c"".as_ptr(),
    })
}

/// For a configuration error, the field path of the first problem (`"retry.backoff.base"`;
/// empty for the document root and for other errors). Valid until tw_error_free(); never NULL.
///
/// # Safety
/// `err` is NULL or an error returned through a `tw_error **` and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn tw_error_path(err: *const tw_error) -> *const c_char {
    // SAFETY: per this function's contract.
    guard_value(c"".as_ptr(), || match unsafe { err.as_ref() } {
        Some(e) => e.path.as_ptr().cast(),
        None => c"".as_ptr(),
    })
}

/// Release an error. NULL is ignored.
///
/// # Safety
/// `err` is NULL or an error returned through a `tw_error **` and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn tw_error_free(err: *mut tw_error) {
    guard_value((), || {
        if !err.is_null() {
            // SAFETY: per this function's contract, `err` came from Box::into_raw in `fail`.
            drop(unsafe { Box::from_raw(err) });
        }
    });
}

/// The status of the last call that failed on this thread (::TW_STATUS_OK if none has).
/// Successful calls leave it unchanged, as with `errno`.
#[no_mangle]
pub extern "C" fn tw_last_error_status() -> tw_status {
    guard_value(tw_status::Panic, || {
        LAST_ERROR
            .try_with(|l| l.try_borrow().map_or(tw_status::Panic, |l| l.status))
            .unwrap_or(tw_status::Ok)
    })
}

/// The message of the last call that failed on this thread, NUL-terminated (empty if none
/// has). Valid until the next failing call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn tw_last_error_message() -> *const c_char {
    guard_value(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|l| match l.try_borrow() {
                Ok(l) if !l.message.is_empty() => l.message.as_ptr().cast(),
                _ => c"".as_ptr(),
            })
            .unwrap_or(c"".as_ptr())
    })
}

/// Write `*out = value` for a checked, non-NULL out-pointer.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, what: &'static str, value: T) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL, and valid per the caller's contract.
    unsafe { ptr::write(out, value) };
    Ok(())
}

/// Write `*out = value` when `out` is not NULL (optional out-parameters).
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn put_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL, and valid per the caller's contract.
        unsafe { ptr::write(out, value) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn message(err: *const tw_error) -> String {
        // SAFETY: a live error from `guard`.
        unsafe { CStr::from_ptr(tw_error_message(err)) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let mut err: *mut tw_error = ptr::null_mut();
        // SAFETY: `err` is a valid out-pointer.
        let status = unsafe { guard(&mut err, || panic!("boom")) };
        assert_eq!(status, tw_status::Panic);
        assert!(!err.is_null());
        assert!(message(err).contains("boom"), "{}", message(err));
        assert_eq!(tw_last_error_status(), tw_status::Panic);
        // SAFETY: freed once.
        unsafe { tw_error_free(err) };
    }

    #[test]
    fn the_first_error_wins_and_is_not_leaked() {
        let mut err: *mut tw_error = ptr::null_mut();
        // SAFETY: `err` is a valid out-pointer.
        unsafe {
            guard(&mut err, || Err(Error::invalid("first")));
            guard(&mut err, || Err(Error::invalid("second")));
        }
        assert_eq!(message(err), "first");
        // SAFETY: the thread-local message is a valid C string.
        let last = unsafe { CStr::from_ptr(tw_last_error_message()) };
        assert_eq!(last.to_str().unwrap(), "second");
        // SAFETY: freed once.
        unsafe { tw_error_free(err) };
    }

    #[test]
    fn every_status_has_a_distinct_name_and_value() {
        let mut seen = std::collections::HashSet::new();
        for s in STATUSES {
            // SAFETY: static strings.
            let name = unsafe { CStr::from_ptr(tw_status_str(s as c_int)) };
            assert_ne!(name.to_str().unwrap(), "unknown");
            assert!(seen.insert(s as c_int));
        }
        // SAFETY: static string.
        let unknown = unsafe { CStr::from_ptr(tw_status_str(-7)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown");
        for k in ErrorKind::ALL {
            if k != ErrorKind::InvalidConfig {
                assert_eq!(kind_status(k) as u32, 100 + k.code());
            }
        }
    }
}

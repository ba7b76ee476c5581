//! Unit and type conversions at the boundary: C strings in, texts out into caller buffers, the
//! host clock, and OS randomness for seeds.

use std::ffi::{c_char, CStr};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{tw_status, Error};

/// Bytes from a pointer and a length.
///
/// # Safety
/// `p` is NULL or valid for reads of `len` bytes.
pub(crate) unsafe fn bytes<'a>(
    p: *const c_char,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], Error> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid(format!(
            "{what}: length {len} is not a valid length"
        )));
    }
    // SAFETY: non-NULL and valid for `len` bytes per the contract.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// A JSON configuration text from a pointer and a length. Not UTF-8 is a configuration error.
///
/// # Safety
/// `p` is NULL or valid for reads of `len` bytes.
pub(crate) unsafe fn json<'a>(p: *const c_char, len: usize) -> Result<&'a str, Error> {
    // SAFETY: per the contract.
    let b = unsafe { bytes(p, len, "json") }?;
    std::str::from_utf8(b).map_err(|e| {
        Error::new(
            tw_status::InvalidConfig,
            format!("invalid JSON: not UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// A UTF-8 text from a pointer and a length.
///
/// # Safety
/// `p` is NULL or valid for reads of `len` bytes.
pub(crate) unsafe fn text<'a>(
    p: *const c_char,
    len: usize,
    what: &'static str,
) -> Result<&'a str, Error> {
    // SAFETY: per the contract.
    let b = unsafe { bytes(p, len, what) }?;
    std::str::from_utf8(b)
        .map_err(|e| Error::invalid(format!("{what}: not UTF-8 (at byte {})", e.valid_up_to())))
}

/// A NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn cstr<'a>(p: *const c_char, what: &'static str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| Error::invalid(format!("{what}: not UTF-8 (at byte {})", e.valid_up_to())))
}

/// The names of a config's entries (`section.<name>`) reach C as NUL-terminated strings, and C
/// names them back the same way: a name holding a NUL byte could never be named, and would be
/// cut short when read. Refused like any other config problem.
pub(crate) fn c_names<'a>(
    section: &'static str,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), Error> {
    match names.into_iter().find(|n| n.contains('\0')) {
        None => Ok(()),
        Some(name) => {
            let path = format!("{section}.{}", name.escape_debug());
            Err(Error {
                status: tw_status::InvalidConfig,
                message: format!("{path}: a name must not hold a NUL byte (C strings cannot)")
                    .into(),
                path,
            })
        }
    }
}

/// Copy `text` and a NUL into the caller's buffer, reporting the size needed.
///
/// `buf == NULL && cap == 0` asks for the size only (OK). A smaller buffer gets an empty
/// string and ::TW_STATUS_BUFFER_TOO_SMALL.
///
/// # Safety
/// `buf` is NULL or valid for writes of `cap` bytes; `needed` is NULL or writable.
pub(crate) unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> Result<(), Error> {
    let need = text.len() + 1;
    // SAFETY: per the contract.
    unsafe { crate::error::put_opt(needed, need) };
    if buf.is_null() {
        if cap == 0 {
            return if needed.is_null() {
                Err(Error::null(
                    "needed (for a size query with buf NULL and cap 0)",
                ))
            } else {
                Ok(())
            };
        }
        return Err(Error::null("buf"));
    }
    if cap < need {
        if cap > 0 {
            // SAFETY: cap >= 1 bytes are writable.
            unsafe { *buf = 0 };
        }
        return Err(Error::new(
            tw_status::BufferTooSmall,
            format!("buf: {cap} bytes are too few; {need} are needed"),
        ));
    }
    // SAFETY: `cap >= need` bytes are writable, and `text` does not overlap a caller buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}

fn origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    #[allow(clippy::disallowed_methods)] // the binding is the host: it reads the clock
    *ORIGIN.get_or_init(std::time::Instant::now)
}

/// Nanoseconds on the host's monotonic clock since the process origin.
pub(crate) fn now_ns() -> u64 {
    #[allow(clippy::disallowed_methods)] // the binding is the host: it reads the clock
    let now = std::time::Instant::now();
    u64::try_from(now.saturating_duration_since(origin()).as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds on a monotonic clock (CLOCK_MONOTONIC) since an origin fixed at the first call
/// in this process. The blocking helpers read this clock; pass it as `now_ns` everywhere, or
/// any monotonic clock of your own (consistently per handle).
#[no_mangle]
pub extern "C" fn tw_now_ns() -> u64 {
    crate::error::guard_value(0, now_ns)
}

/// Sleep until `until` on the clock of [`now_ns`].
pub(crate) fn sleep_until(until: u64) {
    let now = now_ns();
    if until > now {
        #[allow(clippy::disallowed_methods)] // the binding is the host: it sleeps
        std::thread::sleep(Duration::from_nanos(until - now));
    }
}

/// A seed from OS randomness (config without `seed`). Falls back to the clock if the OS
/// refuses, which only weakens jitter decorrelation between processes.
pub(crate) fn os_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| now_ns() ^ 0x9E37_79B9_7F4A_7C15)
}

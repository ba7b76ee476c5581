//! `tw_limiter` (one rate limit or several that must all pass) and `tw_keyed_limiter` (per key,
//! with bounded memory) (DESIGN.md §3.5).

use std::ffi::{c_char, c_void};

use tripwire_core::{
    Instant, KeyedRateLimitConfig, KeyedRateLimiter, RateDecision, RateLimitConfig, RateLimiter,
};

use crate::error::{guard, put, tw_error, tw_status, Error};
use crate::handle::{free, handle, Ctx, Drain, Shared};
use crate::types::{opt_nanos, tw_event, tw_event_fn};
use crate::util::{json, os_seed, text};

/// A rate limiter. Opaque; safe to share between threads (one mutex per limiter).
#[derive(Debug)]
pub struct tw_limiter(Shared<RateLimiter>);

/// A keyed rate limiter (one limit per key: user, host...). Opaque; safe to share between
/// threads (one mutex per limiter).
#[derive(Debug)]
pub struct tw_keyed_limiter(Shared<KeyedRateLimiter>);

impl Drain for RateLimiter {
    type Event = tw_event;
    fn pop_event(&mut self) -> Option<tw_event> {
        self.poll_event().map(tw_event::from)
    }
}

impl Drain for KeyedRateLimiter {
    type Event = tw_event;
    fn pop_event(&mut self) -> Option<tw_event> {
        self.poll_event().map(tw_event::from)
    }
}

/// The answer to a rate-limit check.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_rate_decision {
    /// Whether the call may go (at once, or after `wait_ns`).
    pub allowed: bool,
    /// When allowed after a wait (the config's `maxWait`): how long to wait first. The capacity
    /// is reserved: sleep, then go without checking again. 0 when allowed at once.
    pub wait_ns: u64,
    /// When denied: whether `retry_after_ns` is known (it is not when the cost can never pass).
    pub has_retry_after: bool,
    /// When denied: the shortest wait after which the same check passes.
    pub retry_after_ns: u64,
}

pub(crate) fn decision_out(d: RateDecision) -> Result<tw_rate_decision, Error> {
    Ok(match d {
        RateDecision::Allowed => tw_rate_decision {
            allowed: true,
            wait_ns: 0,
            has_retry_after: false,
            retry_after_ns: 0,
        },
        RateDecision::Wait(w) => tw_rate_decision {
            allowed: true,
            wait_ns: opt_nanos(Some(w)).1,
            has_retry_after: false,
            retry_after_ns: 0,
        },
        RateDecision::Denied { retry_after } => {
            let (has, ns) = opt_nanos(retry_after);
            tw_rate_decision {
                allowed: false,
                wait_ns: 0,
                has_retry_after: has,
                retry_after_ns: ns,
            }
        }
        // RateDecision is #[non_exhaustive]; the core this library is built with has no other.
        other => {
            return Err(Error::new(
                tw_status::Panic,
                format!("internal error: decision {other:?} is unknown to the C binding"),
            ))
        }
    })
}

/// A limiter's counters and gauge.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_limiter_metrics {
    /// Checks allowed at once.
    pub allowed: u64,
    /// Checks allowed after a reserved wait.
    pub waited: u64,
    /// Checks denied.
    pub denied: u64,
    /// Whole units of cost the first limit would admit at once now.
    pub available: u64,
}

/// A keyed limiter's counters and gauges.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_keyed_limiter_metrics {
    /// Checks allowed at once.
    pub allowed: u64,
    /// Checks allowed after a reserved wait.
    pub waited: u64,
    /// Checks denied (including `table_full`).
    pub denied: u64,
    /// Of `denied`: new keys refused because every key slot was held by a busy key.
    pub table_full: u64,
    /// Keys held now.
    pub keys: u64,
    /// Idle keys evicted to make room.
    pub evicted: u64,
    /// Idle keys dropped for idle expiry.
    pub expired: u64,
}

/// Build a rate limiter from its JSON config: one limit
/// (`{"algorithm": "tokenBucket", "rate": "100/s", "burst": 20, "maxWait": "0ms"}`) or a list
/// of limits that must all pass.
///
/// # Safety
/// `json` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_limiter_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_limiter,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let l = RateLimiter::new(RateLimitConfig::from_json(json(json_text, len)?)?)?;
            put(
                out,
                "out",
                Box::into_raw(Box::new(tw_limiter(Shared::new(l)))),
            )
        })
    }
}

/// Release a limiter. NULL is ignored.
///
/// # Safety
/// `l` is NULL or a live limiter that no other thread is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_limiter_free(l: *mut tw_limiter) {
    // SAFETY: per the contract.
    unsafe { free(l) }
}

/// Check (and when allowed, take) `cost` units (usually 1) at `now_ns`.
///
/// # Safety
/// `l` is a live limiter; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_limiter_check(
    l: *mut tw_limiter,
    now_ns: u64,
    cost: u64,
    out: *mut tw_rate_decision,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let l = &handle(l, "limiter")?.0;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let d = l.with(|c| Ok(c.check(Instant::from_nanos(now_ns), cost)))?;
            put(out, "out", decision_out(d)?)
        })
    }
}

/// Take the oldest queued event into `*out` (`out->type == TW_EVENT_TYPE_NONE` when none).
///
/// # Safety
/// `l` is a live limiter; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_limiter_poll_event(
    l: *mut tw_limiter,
    out: *mut tw_event,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let l = &handle(l, "limiter")?.0;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let e = l.lock()?.inner.pop_event();
            put(out, "out", e.unwrap_or(tw_event::NONE))
        })
    }
}

/// Deliver events to `listener(ctx, event)` after every input. NULL removes the listener.
///
/// # Safety
/// `l` is a live limiter; `listener` (if any) may be called with `ctx` from any thread that
/// uses `l`; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_limiter_set_listener(
    l: *mut tw_limiter,
    listener: tw_event_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            handle(l, "limiter")?
                .0
                .set_listener(listener.map(|f| (f, Ctx(ctx))))
        })
    }
}

/// The limiter's counters and gauge.
///
/// # Safety
/// `l` is a live limiter; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_limiter_get_metrics(
    l: *const tw_limiter,
    out: *mut tw_limiter_metrics,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let m = handle(l, "limiter")?.0.lock()?.inner.metrics();
            put(
                out,
                "out",
                tw_limiter_metrics {
                    allowed: m.allowed,
                    waited: m.waited,
                    denied: m.denied,
                    available: m.available,
                },
            )
        })
    }
}

/// Build a keyed limiter: `{"limit": <rate limit config>, "maxKeys": N, "idleExpiry": d}`.
/// Its key hashing is seeded from OS randomness.
///
/// # Safety
/// `json` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_keyed_limiter_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_keyed_limiter,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { tw_keyed_limiter_new_with_seed(json_text, len, os_seed(), out, err) }
}

/// As tw_keyed_limiter_new(), with `seed` in place of OS randomness (reproducible tests).
///
/// # Safety
/// As tw_keyed_limiter_new().
#[no_mangle]
pub unsafe extern "C" fn tw_keyed_limiter_new_with_seed(
    json_text: *const c_char,
    len: usize,
    seed: u64,
    out: *mut *mut tw_keyed_limiter,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let config = KeyedRateLimitConfig::from_json(json(json_text, len)?)?;
            let l = KeyedRateLimiter::new(config, seed)?;
            put(
                out,
                "out",
                Box::into_raw(Box::new(tw_keyed_limiter(Shared::new(l)))),
            )
        })
    }
}

/// Release a keyed limiter. NULL is ignored.
///
/// # Safety
/// `l` is NULL or a live keyed limiter that no other thread is using; it is invalid
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_keyed_limiter_free(l: *mut tw_keyed_limiter) {
    // SAFETY: per the contract.
    unsafe { free(l) }
}

/// Check (and when allowed, take) `cost` units for the key `key[0..key_len)` (UTF-8) at
/// `now_ns`.
///
/// # Safety
/// `l` is a live keyed limiter; `key` is valid for `key_len` bytes; `out` is writable; `err`
/// is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_keyed_limiter_check(
    l: *mut tw_keyed_limiter,
    key: *const c_char,
    key_len: usize,
    now_ns: u64,
    cost: u64,
    out: *mut tw_rate_decision,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let l = &handle(l, "keyed limiter")?.0;
            let key = text(key, key_len, "key")?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let d = l.with(|c| Ok(c.check(key, Instant::from_nanos(now_ns), cost)))?;
            put(out, "out", decision_out(d)?)
        })
    }
}

/// Drop every key unused for `idleExpiry` that is idle at `now_ns`; `*removed` (when not
/// NULL) receives how many. Checks already do this a little at a time.
///
/// # Safety
/// `l` is a live keyed limiter; `removed` is NULL or writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_keyed_limiter_sweep(
    l: *mut tw_keyed_limiter,
    now_ns: u64,
    removed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let n = handle(l, "keyed limiter")?
                .0
                .with(|c| Ok(c.sweep(Instant::from_nanos(now_ns))))?;
            crate::error::put_opt(removed, n);
            Ok(())
        })
    }
}

/// Take the oldest queued event into `*out` (`out->type == TW_EVENT_TYPE_NONE` when none).
///
/// # Safety
/// `l` is a live keyed limiter; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_keyed_limiter_poll_event(
    l: *mut tw_keyed_limiter,
    out: *mut tw_event,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let l = &handle(l, "keyed limiter")?.0;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let e = l.lock()?.inner.pop_event();
            put(out, "out", e.unwrap_or(tw_event::NONE))
        })
    }
}

/// Deliver events to `listener(ctx, event)` after every input. NULL removes the listener.
///
/// # Safety
/// `l` is a live keyed limiter; `listener` (if any) may be called with `ctx` from any thread
/// that uses `l`; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_keyed_limiter_set_listener(
    l: *mut tw_keyed_limiter,
    listener: tw_event_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            handle(l, "keyed limiter")?
                .0
                .set_listener(listener.map(|f| (f, Ctx(ctx))))
        })
    }
}

/// The keyed limiter's counters and gauges.
///
/// # Safety
/// `l` is a live keyed limiter; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_keyed_limiter_get_metrics(
    l: *const tw_keyed_limiter,
    out: *mut tw_keyed_limiter_metrics,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let m = handle(l, "keyed limiter")?.0.lock()?.inner.metrics();
            put(
                out,
                "out",
                tw_keyed_limiter_metrics {
                    allowed: m.allowed,
                    waited: m.waited,
                    denied: m.denied,
                    table_full: m.table_full,
                    keys: m.keys,
                    evicted: m.evicted,
                    expired: m.expired,
                },
            )
        })
    }
}

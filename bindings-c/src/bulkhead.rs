//! `tw_bulkhead`: a concurrency limit with a FIFO queue (DESIGN.md §3.4).

use std::ffi::{c_char, c_void};

use tripwire_core::{Bulkhead, BulkheadConfig, Entry, Instant, Ticket};

use crate::error::{guard, put, put_opt, tw_error, tw_status, Error};
use crate::handle::{free, handle, Ctx, Drain, Shared};
use crate::types::{deadline_in, opt_instant, tw_event, tw_event_fn, tw_kind};
use crate::util::json;

/// A bulkhead. Opaque; safe to share between threads (one mutex per bulkhead).
#[derive(Debug)]
pub struct tw_bulkhead(Shared<Bulkhead>);

impl Drain for Bulkhead {
    type Event = tw_event;
    fn pop_event(&mut self) -> Option<tw_event> {
        self.poll_event().map(tw_event::from)
    }
}

/// What tw_bulkhead_enter() decided (::tw_entry.result).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_entry_result {
    /// The call holds a slot: run it, then tw_bulkhead_release().
    Admitted = 1,
    /// The call waits under `ticket` until a release names it, or until `until_ns`.
    Queued = 2,
    /// The call is refused (`reason`: bulkheadFull or queueTimeout).
    Rejected = 3,
}

/// The answer to tw_bulkhead_enter().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_entry {
    /// Admitted, queued or rejected.
    pub result: tw_entry_result,
    /// QUEUED: the waiter's ticket (never 0).
    pub ticket: u64,
    /// QUEUED: whether the wait is limited (`until_ns`).
    pub has_until: bool,
    /// QUEUED: when the wait ends with queueTimeout.
    pub until_ns: u64,
    /// REJECTED: ::TW_KIND_BULKHEAD_FULL or ::TW_KIND_QUEUE_TIMEOUT.
    pub reason: tw_kind,
}

/// A bulkhead's counters (totals) and gauges (current values).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_bulkhead_metrics {
    /// Slots granted: calls admitted at once plus waiters woken.
    pub admitted: u64,
    /// Calls that joined the queue.
    pub queued: u64,
    /// Waiters woken by a release or a reconfiguration.
    pub woken: u64,
    /// Calls rejected with bulkheadFull.
    pub rejected_full: u64,
    /// Calls that ended with queueTimeout.
    pub queue_timeouts: u64,
    /// Waiters cancelled by the host.
    pub cancelled: u64,
    /// Releases with nothing in flight (ignored).
    pub unmatched_releases: u64,
    /// Slots held now.
    pub in_flight: u64,
    /// Calls waiting now.
    pub queue_depth: u64,
    /// The configured maxConcurrent.
    pub max_concurrent: u64,
    /// The configured maxQueue.
    pub max_queue: u64,
}

/// # Safety
/// `b` is NULL or a live bulkhead.
unsafe fn bulkhead<'a>(b: *const tw_bulkhead) -> Result<&'a Shared<Bulkhead>, Error> {
    // SAFETY: per the contract.
    Ok(&unsafe { handle(b, "bulkhead") }?.0)
}

/// Build a bulkhead from its JSON config (`{"maxConcurrent": 10, "maxQueue": 100,
/// "maxWait": "1s"}`).
///
/// # Safety
/// `json` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_bulkhead,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let b = Bulkhead::new(BulkheadConfig::from_json(json(json_text, len)?)?)?;
            put(
                out,
                "out",
                Box::into_raw(Box::new(tw_bulkhead(Shared::new(b)))),
            )
        })
    }
}

/// Release a bulkhead. NULL is ignored.
///
/// # Safety
/// `b` is NULL or a live bulkhead that no other thread is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_free(b: *mut tw_bulkhead) {
    // SAFETY: per the contract.
    unsafe { free(b) }
}

/// Ask for a slot at `now_ns` for a call bounded by `deadline_ns` (::TW_NO_DEADLINE for none).
///
/// # Safety
/// `b` is a live bulkhead; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_enter(
    b: *mut tw_bulkhead,
    now_ns: u64,
    deadline_ns: u64,
    out: *mut tw_entry,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = bulkhead(b)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let entry =
                b.with(|c| Ok(c.try_enter(Instant::from_nanos(now_ns), deadline_in(deadline_ns))))?;
            let mut e = tw_entry {
                result: tw_entry_result::Admitted,
                ticket: 0,
                has_until: false,
                until_ns: 0,
                reason: tw_kind::None,
            };
            match entry {
                Entry::Admitted => {}
                Entry::Queued { ticket, until } => {
                    e.result = tw_entry_result::Queued;
                    e.ticket = ticket.get();
                    (e.has_until, e.until_ns) = opt_instant(until);
                }
                Entry::Rejected { reason } => {
                    e.result = tw_entry_result::Rejected;
                    e.reason = reason.into();
                }
                // Entry is #[non_exhaustive]; the core this library is built with has no other.
                other => {
                    return Err(Error::new(
                        tw_status::Panic,
                        format!("internal error: entry {other:?} is unknown to the C binding"),
                    ))
                }
            }
            put(out, "out", e)
        })
    }
}

/// A call holding a slot ended at `now_ns`. When a waiter gets the slot, `*woke = true` and
/// `*ticket` names it: wake that call (it now holds the slot).
///
/// # Safety
/// `b` is a live bulkhead; `woke` and `ticket` are NULL or writable; `err` is NULL or a
/// writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_release(
    b: *mut tw_bulkhead,
    now_ns: u64,
    woke: *mut bool,
    ticket: *mut u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let t = bulkhead(b)?.with(|c| Ok(c.release(Instant::from_nanos(now_ns))))?;
            put_opt(woke, t.is_some());
            put_opt(ticket, t.map_or(0, Ticket::get));
            Ok(())
        })
    }
}

/// The waiter holding `ticket` leaves the queue at `now_ns`: its wait ran out (`timed_out`)
/// or the host abandoned it. `*left` (when not NULL) says whether it was waiting.
///
/// # Safety
/// `b` is a live bulkhead; `left` is NULL or writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_cancel(
    b: *mut tw_bulkhead,
    ticket: u64,
    now_ns: u64,
    timed_out: bool,
    left: *mut bool,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let was = bulkhead(b)?.with(|c| {
                Ok(c.cancel(
                    Ticket::from_raw(ticket),
                    Instant::from_nanos(now_ns),
                    timed_out,
                ))
            })?;
            put_opt(left, was);
            Ok(())
        })
    }
}

/// The oldest waiter whose wait has run out at `now_ns` (`*expired = true`, `*ticket`): fail
/// it with queueTimeout. Call until `*expired == false` when the timer from
/// tw_bulkhead_poll_timeout() fires.
///
/// # Safety
/// `b` is a live bulkhead; `expired` and `ticket` are writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_poll_expired(
    b: *mut tw_bulkhead,
    now_ns: u64,
    expired: *mut bool,
    ticket: *mut u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = bulkhead(b)?;
            if expired.is_null() || ticket.is_null() {
                return Err(Error::null(if expired.is_null() {
                    "expired"
                } else {
                    "ticket"
                }));
            }
            let t = b.with(|c| Ok(c.poll_expired(Instant::from_nanos(now_ns))))?;
            put(expired, "expired", t.is_some())?;
            put(ticket, "ticket", t.map_or(0, Ticket::get))
        })
    }
}

/// When the next waiter times out (`*has = true`, `*at_ns`); `*has = false` when nobody waits
/// with a limit.
///
/// # Safety
/// `b` is a live bulkhead; `has` and `at_ns` are writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_poll_timeout(
    b: *const tw_bulkhead,
    has: *mut bool,
    at_ns: *mut u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = bulkhead(b)?;
            if has.is_null() || at_ns.is_null() {
                return Err(Error::null(if has.is_null() { "has" } else { "at_ns" }));
            }
            let (h, ns) = opt_instant(b.lock()?.inner.poll_timeout());
            put(has, "has", h)?;
            put(at_ns, "at_ns", ns)
        })
    }
}

/// Take the oldest queued event into `*out` (`out->type == TW_EVENT_TYPE_NONE` when none).
///
/// # Safety
/// `b` is a live bulkhead; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_poll_event(
    b: *mut tw_bulkhead,
    out: *mut tw_event,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = bulkhead(b)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let e = b.lock()?.inner.pop_event();
            put(out, "out", e.unwrap_or(tw_event::NONE))
        })
    }
}

/// Deliver events to `listener(ctx, event)` after every input. NULL removes the listener.
///
/// # Safety
/// `b` is a live bulkhead; `listener` (if any) may be called with `ctx` from any thread that
/// uses `b`; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_set_listener(
    b: *mut tw_bulkhead,
    listener: tw_event_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            bulkhead(b)?.set_listener(listener.map(|f| (f, Ctx(ctx))))
        })
    }
}

/// The bulkhead's counters and gauges.
///
/// # Safety
/// `b` is a live bulkhead; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_bulkhead_get_metrics(
    b: *const tw_bulkhead,
    out: *mut tw_bulkhead_metrics,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let m = bulkhead(b)?.lock()?.inner.metrics();
            put(
                out,
                "out",
                tw_bulkhead_metrics {
                    admitted: m.admitted,
                    queued: m.queued,
                    woken: m.woken,
                    rejected_full: m.rejected_full,
                    queue_timeouts: m.queue_timeouts,
                    cancelled: m.cancelled,
                    unmatched_releases: m.unmatched_releases,
                    in_flight: m.in_flight,
                    queue_depth: m.queue_depth,
                    max_concurrent: m.max_concurrent,
                    max_queue: m.max_queue,
                },
            )
        })
    }
}

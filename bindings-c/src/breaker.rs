//! `tw_breaker`: a circuit breaker on its own (DESIGN.md §3.1).

use std::ffi::{c_char, c_void};

use tripwire_core::breaker::{Admission, BreakerSnapshot, CircuitBreaker, Outcome, Permit};
use tripwire_core::{BreakerConfig, Instant};

use crate::error::{guard, put, tw_error, tw_status, Error};
use crate::handle::{free, handle, Ctx, Drain, Shared};
use crate::types::{
    opt_instant, opt_nanos, tw_attempt, tw_attempt_fn, tw_breaker_state, tw_event, tw_event_fn,
};
use crate::util::{json, now_ns, write_text};

/// A circuit breaker. Opaque; safe to share between threads (one mutex per breaker).
#[derive(Debug)]
pub struct tw_breaker(Shared<CircuitBreaker>);

impl Drain for CircuitBreaker {
    type Event = tw_event;
    fn pop_event(&mut self) -> Option<tw_event> {
        self.poll_event().map(tw_event::from)
    }
}

/// How a breaker-protected call ended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_breaker_outcome {
    /// It worked.
    Success = 0,
    /// It failed in a way that speaks about the dependency's health.
    Failure = 1,
    /// It does not count (e.g. a 4xx): not recorded, frees a half-open trial slot.
    Ignored = 2,
}

/// A ::tw_breaker_outcome as C passes it (validated before use).
pub type RawBreakerOutcome = u32;

/// Proof of admission: hand it back once to tw_breaker_record() or tw_breaker_release().
/// A plain value; copy it freely.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_permit {
    /// The breaker state generation that issued it (a permit from before a state change
    /// drives no transition).
    pub generation: u32,
    /// When it was admitted (the clamped `now_ns`).
    pub started_ns: u64,
    /// Whether it is a half-open trial.
    pub trial: bool,
}

impl From<Permit> for tw_permit {
    fn from(p: Permit) -> tw_permit {
        tw_permit {
            generation: p.generation(),
            started_ns: p.started().as_nanos(),
            trial: p.is_trial(),
        }
    }
}

impl From<tw_permit> for Permit {
    fn from(p: tw_permit) -> Permit {
        Permit::from_parts(p.generation, Instant::from_nanos(p.started_ns), p.trial)
    }
}

/// The answer to tw_breaker_acquire().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_admission {
    /// Whether the call may run; then record or release `permit`.
    pub admitted: bool,
    /// The permit (when admitted).
    pub permit: tw_permit,
    /// When rejected: whether `retry_after_ns` is known (it is not when forced open, or half
    /// open with every trial slot taken).
    pub has_retry_after: bool,
    /// When rejected: exactly the time until a call could pass.
    pub retry_after_ns: u64,
}

/// A breaker's counters (totals) and gauges (current values).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_breaker_metrics {
    /// The current state.
    pub state: tw_breaker_state,
    /// Calls admitted.
    pub admitted: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Successes recorded.
    pub successes: u64,
    /// Failures recorded (slow trial successes included).
    pub failures: u64,
    /// Ignored outcomes recorded.
    pub ignored: u64,
    /// Slow calls recorded.
    pub slow_calls: u64,
    /// Outcomes recorded with a permit from an earlier state generation.
    pub stale: u64,
    /// State changes.
    pub transitions: u64,
    /// Permits of the current generation not yet recorded or released.
    pub in_flight: u64,
    /// Half-open trials in flight.
    pub half_open_in_flight: u64,
    /// Successful trials in the current half-open episode.
    pub half_open_successes: u64,
    /// Failures in a row (consecutive-failure rule).
    pub consecutive_failures: u64,
    /// Open periods in a row (for the open-duration backoff).
    pub open_streak: u64,
    /// Calls in the rate rule's window.
    pub window_calls: u64,
    /// Failures in the rate rule's window.
    pub window_failures: u64,
    /// Slow calls in the rate rule's window.
    pub window_slow_calls: u64,
    /// Events dropped because they were not drained in time.
    pub events_dropped: u64,
}

fn outcome_from_raw(raw: RawBreakerOutcome) -> Result<Outcome, Error> {
    Ok(match raw {
        0 => Outcome::Success,
        1 => Outcome::Failure,
        2 => Outcome::Ignored,
        other => {
            return Err(Error::invalid(format!(
                "outcome: {other} is not a tw_breaker_outcome (0..=2)"
            )))
        }
    })
}

/// # Safety
/// `b` is NULL or a live breaker.
unsafe fn breaker<'a>(b: *const tw_breaker) -> Result<&'a Shared<CircuitBreaker>, Error> {
    // SAFETY: per the contract.
    Ok(&unsafe { handle(b, "breaker") }?.0)
}

/// Build a circuit breaker from its JSON config (the `circuitBreaker` object of a pipeline,
/// e.g. `{"trip": {"consecutiveFailures": 3}, "openDuration": "30s"}`).
///
/// Returns ::TW_STATUS_INVALID_CONFIG (message `path: reason`) when the config is refused.
///
/// # Safety
/// `json` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_breaker,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let config = BreakerConfig::from_json(json(json_text, len)?)?;
            let b = CircuitBreaker::new(config)?;
            put(
                out,
                "out",
                Box::into_raw(Box::new(tw_breaker(Shared::new(b)))),
            )
        })
    }
}

/// Release a breaker. NULL is ignored.
///
/// # Safety
/// `b` is NULL or a live breaker that no other thread is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_free(b: *mut tw_breaker) {
    // SAFETY: per the contract.
    unsafe { free(b) }
}

/// Ask to run a call at `now_ns`. When `out->admitted`, run it and then tw_breaker_record()
/// (or tw_breaker_release()) `out->permit`; otherwise it is refused as circuit-open.
///
/// # Safety
/// `b` is a live breaker; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_acquire(
    b: *mut tw_breaker,
    now_ns: u64,
    out: *mut tw_admission,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = breaker(b)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let admission = b.with(|c| Ok(c.try_acquire(Instant::from_nanos(now_ns))))?;
            let value = match admission {
                Admission::Admitted(p) => tw_admission {
                    admitted: true,
                    permit: p.into(),
                    has_retry_after: false,
                    retry_after_ns: 0,
                },
                Admission::Rejected { retry_after } => {
                    let (has, ns) = opt_nanos(retry_after);
                    tw_admission {
                        admitted: false,
                        permit: tw_permit {
                            generation: 0,
                            started_ns: 0,
                            trial: false,
                        },
                        has_retry_after: has,
                        retry_after_ns: ns,
                    }
                }
            };
            put(out, "out", value)
        })
    }
}

/// Record how an admitted call ended.
///
/// # Safety
/// `b` is a live breaker; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_record(
    b: *mut tw_breaker,
    permit: tw_permit,
    outcome: RawBreakerOutcome,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = breaker(b)?;
            let outcome = outcome_from_raw(outcome)?;
            b.with(|c| {
                c.record(permit.into(), outcome, Instant::from_nanos(now_ns));
                Ok(())
            })
        })
    }
}

/// Abandon an admitted call without an outcome (it frees its half-open trial slot).
///
/// # Safety
/// `b` is a live breaker; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_release(
    b: *mut tw_breaker,
    permit: tw_permit,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            breaker(b)?.with(|c| {
                c.release(permit.into(), Instant::from_nanos(now_ns));
                Ok(())
            })
        })
    }
}

/// The breaker's state as of its last input (`open` turns `halfOpen` lazily, at the next
/// acquire once the open period has passed).
///
/// # Safety
/// `b` is a live breaker; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_get_state(
    b: *const tw_breaker,
    out: *mut tw_breaker_state,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let state = breaker(b)?.with(|c| Ok(c.state()))?;
            put(out, "out", state.into())
        })
    }
}

/// # Safety
/// `b` is NULL or a live breaker; `err` is NULL or a writable `tw_error *`.
unsafe fn command(
    b: *mut tw_breaker,
    now_ns: u64,
    err: *mut *mut tw_error,
    f: fn(&mut CircuitBreaker, Instant),
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            breaker(b)?.with(|c| {
                f(c, Instant::from_nanos(now_ns));
                Ok(())
            })
        })
    }
}

/// Reject every call (with no retry-after) until tw_breaker_reset().
///
/// # Safety
/// `b` is a live breaker; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_force_open(
    b: *mut tw_breaker,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { command(b, now_ns, err, CircuitBreaker::force_open) }
}

/// Admit every call and only record metrics, until tw_breaker_reset().
///
/// # Safety
/// `b` is a live breaker; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_disable(
    b: *mut tw_breaker,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { command(b, now_ns, err, CircuitBreaker::disable) }
}

/// Back to `closed` with empty counts and window, from any state.
///
/// # Safety
/// `b` is a live breaker; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_reset(
    b: *mut tw_breaker,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { command(b, now_ns, err, CircuitBreaker::reset) }
}

/// Move `open` to `halfOpen` now if its time has come (for hosts that want the change and
/// its event when due, rather than at the next acquire).
///
/// # Safety
/// `b` is a live breaker; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_handle_timeout(
    b: *mut tw_breaker,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { command(b, now_ns, err, CircuitBreaker::handle_timeout) }
}

/// When `open`: the instant `halfOpen` becomes possible (`*has = true`); otherwise
/// `*has = false`. Arm one timer for it and call tw_breaker_handle_timeout().
///
/// # Safety
/// `b` is a live breaker; `has` and `at_ns` are writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_poll_timeout(
    b: *const tw_breaker,
    has: *mut bool,
    at_ns: *mut u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let t = breaker(b)?.with(|c| Ok(c.poll_timeout()))?;
            if has.is_null() || at_ns.is_null() {
                return Err(Error::null(if has.is_null() { "has" } else { "at_ns" }));
            }
            let (h, ns) = opt_instant(t);
            put(has, "has", h)?;
            put(at_ns, "at_ns", ns)
        })
    }
}

/// Take the oldest queued event into `*out` (`out->type == TW_EVENT_TYPE_NONE` when none).
/// Drain until NONE after your inputs, or set a listener instead.
///
/// # Safety
/// `b` is a live breaker; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_poll_event(
    b: *mut tw_breaker,
    out: *mut tw_event,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = breaker(b)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let e = b.lock()?.inner.pop_event();
            put(out, "out", e.unwrap_or(tw_event::NONE))
        })
    }
}

/// Deliver events to `listener(ctx, event)` after every input instead of queueing them for
/// tw_breaker_poll_event(). NULL removes the listener.
///
/// # Safety
/// `b` is a live breaker; `listener` (if any) may be called from any thread that uses `b`
/// with `ctx`; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_set_listener(
    b: *mut tw_breaker,
    listener: tw_event_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            breaker(b)?.set_listener(listener.map(|l| (l, Ctx(ctx))))
        })
    }
}

/// The breaker's counters and gauges.
///
/// # Safety
/// `b` is a live breaker; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_get_metrics(
    b: *const tw_breaker,
    out: *mut tw_breaker_metrics,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let m = breaker(b)?.with(|c| Ok(c.metrics()))?;
            put(
                out,
                "out",
                tw_breaker_metrics {
                    state: m.state.into(),
                    admitted: m.admitted,
                    rejected: m.rejected,
                    successes: m.successes,
                    failures: m.failures,
                    ignored: m.ignored,
                    slow_calls: m.slow_calls,
                    stale: m.stale,
                    transitions: m.transitions,
                    in_flight: m.in_flight,
                    half_open_in_flight: m.half_open_in_flight,
                    half_open_successes: m.half_open_successes,
                    consecutive_failures: m.consecutive_failures,
                    open_streak: m.open_streak,
                    window_calls: m.window_calls,
                    window_failures: m.window_failures,
                    window_slow_calls: m.window_slow_calls,
                    events_dropped: m.events_dropped,
                },
            )
        })
    }
}

/// The breaker's state as JSON (a few fields), to store and later tw_breaker_restore() into a
/// breaker built from the same config (in this process or another).
///
/// # Safety
/// `b` is a live breaker; `buf` is NULL or writable for `cap` bytes; `needed` is NULL or
/// writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_snapshot(
    b: *const tw_breaker,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let snapshot = breaker(b)?.with(|c| Ok(c.snapshot()))?;
            let text = serde_json::to_string(&snapshot)
                .map_err(|e| Error::invalid(format!("snapshot: {e}")))?;
            write_text(&text, buf, cap, needed)
        })
    }
}

/// Restore a snapshot taken by tw_breaker_snapshot() at `now_ns` (an open period continues
/// for the time it had left). A malformed snapshot gives ::TW_STATUS_INVALID_CONFIG.
///
/// # Safety
/// `b` is a live breaker; `json` is valid for `len` bytes; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_restore(
    b: *mut tw_breaker,
    json_text: *const c_char,
    len: usize,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = breaker(b)?;
            let snapshot =
                <BreakerSnapshot as tripwire_core::FromTree>::from_json_str(json(json_text, len)?)?;
            b.with(|c| Ok(c.restore(&snapshot, Instant::from_nanos(now_ns))?))
        })
    }
}

/// Protect one call of `fn(ctx, attempt)` with the breaker, on the tw_now_ns() clock:
/// acquire, run, record. Returns ::TW_STATUS_OK when it succeeded,
/// ::TW_STATUS_CIRCUIT_OPEN when refused (without running it), and ::TW_STATUS_FAILURE when
/// it reported a failure, timeout or ignored outcome (its own error is in your `ctx`).
///
/// # Safety
/// `b` is a live breaker; `fn` is callable with `ctx`; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_breaker_execute(
    b: *mut tw_breaker,
    r#fn: tw_attempt_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let b = breaker(b)?;
            let f = r#fn.ok_or_else(|| Error::null("fn"))?;
            let permit = match b.with(|c| Ok(c.try_acquire(Instant::from_nanos(now_ns()))))? {
                Admission::Admitted(p) => p,
                Admission::Rejected { retry_after } => {
                    let after = match retry_after {
                        Some(d) => format!("; retry after {} ns", d.as_nanos()),
                        None => String::new(),
                    };
                    return Err(Error::new(
                        tw_status::CircuitOpen,
                        format!("circuitOpen: the circuit breaker is open{after}"),
                    ));
                }
            };
            let mut attempt = tw_attempt {
                number: 1,
                has_deadline: false,
                deadline_ns: 0,
                retryable: true,
                has_retry_after: false,
                retry_after_ns: 0,
            };
            let raw = f(ctx, &mut attempt);
            let now = Instant::from_nanos(now_ns());
            let outcome = match crate::types::outcome_from_raw(raw) {
                Ok(tripwire_core::pipeline::Outcome::Success) => Outcome::Success,
                Ok(tripwire_core::pipeline::Outcome::Ignored) => Outcome::Ignored,
                Ok(_) => Outcome::Failure,
                Err(e) => {
                    b.with(|c| {
                        c.release(permit, now);
                        Ok(())
                    })?;
                    return Err(e);
                }
            };
            b.with(|c| {
                c.record(permit, outcome, now);
                Ok(())
            })?;
            if outcome == Outcome::Success {
                Ok(())
            } else {
                Err(Error::new(
                    tw_status::Failure,
                    format!("failure: the function reported {}", outcome.as_str()),
                ))
            }
        })
    }
}

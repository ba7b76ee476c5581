//! `tw_retry`: a retry policy on its own (DESIGN.md §3.2), for hosts that run their own loop;
//! one policy (and its budget and PRNG) shared by many calls.

use std::ffi::c_char;
use std::time::Duration;

use tripwire_core::{
    FailureInfo, GiveUp, Instant, Retry, RetryConfig, RetryDecision, RetryState, Rng,
};

use crate::error::{guard, put, tw_error, tw_status, Error};
use crate::handle::{free, handle, Drain, Shared};
use crate::types::{deadline_in, opt_nanos};
use crate::util::{json, os_seed};

/// One call's retry progress inside a ::tw_retry (a generational handle; a stale one is
/// ::TW_STATUS_UNKNOWN_CALL).
pub type tw_retry_call = u64;

#[derive(Debug)]
pub(crate) struct Inner {
    core: Retry,
    rng: Rng,
    /// Call slots: (generation, state when live).
    calls: Vec<(u32, Option<RetryState>)>,
    free: Vec<u32>,
}

impl Drain for Inner {
    type Event = crate::types::tw_event;
    fn pop_event(&mut self) -> Option<Self::Event> {
        None // the retry policy reports through its decisions, not events
    }
}

impl Inner {
    fn slot(&mut self, call: tw_retry_call) -> Result<&mut RetryState, Error> {
        let (index, generation) = (call as u32, (call >> 32) as u32);
        match self.calls.get_mut(index as usize) {
            Some((g, Some(state))) if *g == generation => Ok(state),
            _ => Err(Error::new(
                tw_status::UnknownCall,
                "unknown or finished retry call handle",
            )),
        }
    }
}

/// A retry policy. Opaque; safe to share between threads (one mutex per policy).
#[derive(Debug)]
pub struct tw_retry(Shared<Inner>);

/// Why a call stops retrying.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_give_up {
    /// Not giving up (a retry was decided).
    None = 0,
    /// maxRetries retries have run, or the next would end past maxElapsed.
    Exhausted = 1,
    /// The retry predicate refused the error: it propagates unchanged.
    NotRetryable = 2,
    /// The shared retry budget refused the retry.
    BudgetExhausted = 3,
    /// The retry could not start before the call's deadline.
    DeadlineExceeded = 4,
}

/// What to do after a failed attempt.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_retry_decision {
    /// Whether to retry: wait `delay_ns`, then start attempt `attempt`.
    pub retry: bool,
    /// The attempt that will run next (2 for the first retry).
    pub attempt: u32,
    /// The wait before it: max(jittered backoff, Retry-After hint).
    pub delay_ns: u64,
    /// When not retrying: why.
    pub give_up: tw_give_up,
}

/// A retry policy's counters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_retry_metrics {
    /// Calls that succeeded.
    pub successes: u64,
    /// Of those, calls that succeeded after at least one retry.
    pub successes_after_retry: u64,
    /// Failed attempts reported.
    pub failures: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Give-ups: exhausted.
    pub gave_up_exhausted: u64,
    /// Give-ups: not retryable.
    pub gave_up_not_retryable: u64,
    /// Give-ups: budget exhausted.
    pub gave_up_budget_exhausted: u64,
    /// Give-ups: deadline exceeded.
    pub gave_up_deadline_exceeded: u64,
    /// Budget tokens left, in thousandths.
    pub budget_milli_tokens: u64,
}

/// # Safety
/// `r` is NULL or a live retry policy.
unsafe fn retry<'a>(r: *const tw_retry) -> Result<&'a Shared<Inner>, Error> {
    // SAFETY: per the contract.
    Ok(&unsafe { handle(r, "retry") }?.0)
}

/// Build a retry policy from its JSON config (`{"maxRetries": 3, "backoff": {...},
/// "maxElapsed": "10s", "budget": {...}}`); jitter is seeded from OS randomness.
///
/// # Safety
/// `json` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_retry,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { tw_retry_new_with_seed(json_text, len, os_seed(), out, err) }
}

/// As tw_retry_new(), seeding jitter with `seed` (reproducible tests).
///
/// # Safety
/// As tw_retry_new().
#[no_mangle]
pub unsafe extern "C" fn tw_retry_new_with_seed(
    json_text: *const c_char,
    len: usize,
    seed: u64,
    out: *mut *mut tw_retry,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let core = Retry::new(RetryConfig::from_json(json(json_text, len)?)?)?;
            let inner = Inner {
                core,
                rng: Rng::new(seed),
                calls: Vec::new(),
                free: Vec::new(),
            };
            put(
                out,
                "out",
                Box::into_raw(Box::new(tw_retry(Shared::new(inner)))),
            )
        })
    }
}

/// Release a retry policy. NULL is ignored.
///
/// # Safety
/// `r` is NULL or a live retry policy that no other thread is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_free(r: *mut tw_retry) {
    // SAFETY: per the contract.
    unsafe { free(r) }
}

/// Start tracking a call at `now_ns`. Track it until tw_retry_end().
///
/// # Safety
/// `r` is a live retry policy; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_begin(
    r: *mut tw_retry,
    now_ns: u64,
    out: *mut tw_retry_call,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let r = retry(r)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let call = r.with(|i| {
                let state = i.core.start(Instant::from_nanos(now_ns));
                let index = match i.free.pop() {
                    Some(index) => index,
                    None => {
                        i.calls.push((0, None));
                        u32::try_from(i.calls.len() - 1)
                            .map_err(|_| Error::invalid("too many retry calls in flight"))?
                    }
                };
                let slot = &mut i.calls[index as usize];
                slot.0 = slot.0.wrapping_add(1);
                slot.1 = Some(state);
                Ok((u64::from(slot.0) << 32) | u64::from(index))
            })?;
            put(out, "out", call)
        })
    }
}

/// An attempt of `call` starts; `*attempt` receives its number (1 for the first).
///
/// # Safety
/// `r` is a live retry policy; `attempt` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_attempt(
    r: *mut tw_retry,
    call: tw_retry_call,
    attempt: *mut u32,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let r = retry(r)?;
            if attempt.is_null() {
                return Err(Error::null("attempt"));
            }
            let n = r.with(|i| {
                let mut state = *i.slot(call)?;
                let n = i.core.begin_attempt(&mut state);
                *i.slot(call)? = state;
                Ok(n)
            })?;
            put(attempt, "attempt", n)
        })
    }
}

/// The running attempt of `call` failed at `now_ns`: decide whether to retry. `retryable` is
/// your predicate's verdict; `has_retry_after`/`retry_after_ns` a server's hint;
/// `deadline_ns` the call's deadline (::TW_NO_DEADLINE for none).
///
/// # Safety
/// `r` is a live retry policy; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_on_failure(
    r: *mut tw_retry,
    call: tw_retry_call,
    retryable: bool,
    has_retry_after: bool,
    retry_after_ns: u64,
    now_ns: u64,
    deadline_ns: u64,
    out: *mut tw_retry_decision,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let r = retry(r)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let failure = FailureInfo {
                retryable,
                retry_after: has_retry_after.then_some(Duration::from_nanos(retry_after_ns)),
            };
            let d = r.with(|i| {
                let mut state = *i.slot(call)?;
                let d = i.core.on_failure(
                    &mut state,
                    failure,
                    Instant::from_nanos(now_ns),
                    deadline_in(deadline_ns),
                    &mut i.rng,
                );
                *i.slot(call)? = state;
                Ok(d)
            })?;
            let value = match d {
                RetryDecision::Retry { attempt, delay } => tw_retry_decision {
                    retry: true,
                    attempt,
                    delay_ns: opt_nanos(Some(delay)).1,
                    give_up: tw_give_up::None,
                },
                RetryDecision::GiveUp { reason } => tw_retry_decision {
                    retry: false,
                    attempt: 0,
                    delay_ns: 0,
                    give_up: match reason {
                        GiveUp::Exhausted => tw_give_up::Exhausted,
                        GiveUp::NotRetryable => tw_give_up::NotRetryable,
                        GiveUp::BudgetExhausted => tw_give_up::BudgetExhausted,
                        GiveUp::DeadlineExceeded => tw_give_up::DeadlineExceeded,
                        // GiveUp is #[non_exhaustive]; a newer reason still ends the call.
                        _ => tw_give_up::Exhausted,
                    },
                },
                // RetryDecision is #[non_exhaustive]; the core built in has no other.
                other => {
                    return Err(Error::new(
                        tw_status::Panic,
                        format!("internal error: decision {other:?} is unknown to the C binding"),
                    ))
                }
            };
            put(out, "out", value)
        })
    }
}

/// `call` succeeded (refills the retry budget).
///
/// # Safety
/// `r` is a live retry policy; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_on_success(
    r: *mut tw_retry,
    call: tw_retry_call,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            retry(r)?.with(|i| {
                let state = *i.slot(call)?;
                i.core.on_success(&state);
                Ok(())
            })
        })
    }
}

/// Stop tracking `call` (its handle is invalid afterwards).
///
/// # Safety
/// `r` is a live retry policy; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_end(
    r: *mut tw_retry,
    call: tw_retry_call,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            retry(r)?.with(|i| {
                i.slot(call)?;
                let index = call as u32;
                i.calls[index as usize].1 = None;
                i.free.push(index);
                Ok(())
            })
        })
    }
}

/// The retry budget's tokens (`*has = false` without a budget).
///
/// # Safety
/// `r` is a live retry policy; `has` and `tokens` are writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_budget(
    r: *const tw_retry,
    has: *mut bool,
    tokens: *mut f64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let r = retry(r)?;
            if has.is_null() || tokens.is_null() {
                return Err(Error::null(if has.is_null() { "has" } else { "tokens" }));
            }
            let t = r.lock()?.inner.core.budget_tokens();
            put(has, "has", t.is_some())?;
            put(tokens, "tokens", t.unwrap_or(0.0))
        })
    }
}

/// The retry policy's counters.
///
/// # Safety
/// `r` is a live retry policy; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_retry_get_metrics(
    r: *const tw_retry,
    out: *mut tw_retry_metrics,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let m = retry(r)?.lock()?.inner.core.metrics();
            put(
                out,
                "out",
                tw_retry_metrics {
                    successes: m.successes,
                    successes_after_retry: m.successes_after_retry,
                    failures: m.failures,
                    retries: m.retries,
                    gave_up_exhausted: m.gave_up_exhausted,
                    gave_up_not_retryable: m.gave_up_not_retryable,
                    gave_up_budget_exhausted: m.gave_up_budget_exhausted,
                    gave_up_deadline_exceeded: m.gave_up_deadline_exceeded,
                    budget_milli_tokens: m.budget_milli_tokens,
                },
            )
        })
    }
}

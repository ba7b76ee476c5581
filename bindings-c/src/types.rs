//! Plain C types shared by every handle: enums with explicit values, POD results and events,
//! and the conversions between them and the core's types (units and types only).

use std::time::Duration;

use tripwire_core::time::duration_nanos;
use tripwire_core::{BreakerState, ErrorKind, Event, EventKind, Instant};

use crate::error::Error;

/// "No deadline": pass it where a deadline is optional.
pub const TW_NO_DEADLINE: u64 = u64::MAX;

/// Why a protected call did not produce the function's value. Values equal the core's codes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_kind {
    /// Not a failure (a field that does not apply).
    None = 0,
    /// The circuit breaker is open.
    CircuitOpen = 1,
    /// The bulkhead has no free slot and no queue place.
    BulkheadFull = 2,
    /// The call waited in the bulkhead queue too long.
    QueueTimeout = 3,
    /// A rate limit (or a server's Retry-After pushback) refused the call.
    RateLimited = 4,
    /// An attempt ran past its per-attempt timeout.
    Timeout = 5,
    /// Every allowed attempt failed.
    RetriesExhausted = 6,
    /// The shared retry budget refused a retry.
    BudgetExhausted = 7,
    /// The call's deadline passed, or the next retry could not start before it.
    DeadlineExceeded = 8,
    /// The function's own error, propagated unchanged.
    Failure = 9,
    /// A configuration was refused.
    InvalidConfig = 10,
}

impl From<ErrorKind> for tw_kind {
    fn from(k: ErrorKind) -> tw_kind {
        match k {
            ErrorKind::CircuitOpen => tw_kind::CircuitOpen,
            ErrorKind::BulkheadFull => tw_kind::BulkheadFull,
            ErrorKind::QueueTimeout => tw_kind::QueueTimeout,
            ErrorKind::RateLimited => tw_kind::RateLimited,
            ErrorKind::Timeout => tw_kind::Timeout,
            ErrorKind::RetriesExhausted => tw_kind::RetriesExhausted,
            ErrorKind::BudgetExhausted => tw_kind::BudgetExhausted,
            ErrorKind::DeadlineExceeded => tw_kind::DeadlineExceeded,
            ErrorKind::Failure => tw_kind::Failure,
            ErrorKind::InvalidConfig => tw_kind::InvalidConfig,
            // ErrorKind is #[non_exhaustive]: a newer kind is still a failed call.
            _ => tw_kind::Failure,
        }
    }
}

/// A circuit breaker's state. Values equal the core's codes (and the Prometheus gauge).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_breaker_state {
    /// Calls flow; outcomes are recorded against the trip rule.
    Closed = 0,
    /// Calls are rejected until the open period ends.
    Open = 1,
    /// A bounded number of trial calls decide between closed and open.
    HalfOpen = 2,
    /// Manually opened: every call is rejected until reset.
    ForcedOpen = 3,
    /// Manually disabled: every call is admitted; metrics are still recorded.
    Disabled = 4,
}

/// A ::tw_breaker_state as C passes it (validated before use).
pub type RawBreakerState = u32;

impl From<BreakerState> for tw_breaker_state {
    fn from(s: BreakerState) -> tw_breaker_state {
        match s {
            BreakerState::Closed => tw_breaker_state::Closed,
            BreakerState::Open => tw_breaker_state::Open,
            BreakerState::HalfOpen => tw_breaker_state::HalfOpen,
            BreakerState::ForcedOpen => tw_breaker_state::ForcedOpen,
            BreakerState::Disabled => tw_breaker_state::Disabled,
            // BreakerState is #[non_exhaustive]; a newer state rejects like open.
            _ => tw_breaker_state::Open,
        }
    }
}

pub(crate) fn breaker_state_from_raw(raw: RawBreakerState) -> Result<BreakerState, Error> {
    Ok(match raw {
        0 => BreakerState::Closed,
        1 => BreakerState::Open,
        2 => BreakerState::HalfOpen,
        3 => BreakerState::ForcedOpen,
        4 => BreakerState::Disabled,
        other => {
            return Err(Error::invalid(format!(
                "state: {other} is not a tw_breaker_state (0..=4)"
            )))
        }
    })
}

/// What happened inside a policy (::tw_event.type).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_event_type {
    /// No event: the queue was empty.
    None = 0,
    /// A circuit breaker changed state (`from`, `to`).
    StateChanged = 1,
    /// A call was refused by a policy (`reason`, `retry_after_ns`).
    Rejected = 2,
    /// A retry was scheduled: attempt `attempt` after `delay_ns`.
    RetryScheduled = 3,
    /// A call gave up after `attempt` attempts (`reason`).
    GaveUp = 4,
    /// A call joined the bulkhead queue (`ticket`).
    Queued = 5,
    /// A released slot was handed to the queued call holding `ticket`.
    Woken = 6,
    /// The breaker around a shared rate limit's store changed state (`from`, `to`): open means
    /// the store is not asked and `store.onUnavailable` decides.
    StoreStateChanged = 7,
    /// An event this version does not describe (only `at_ns` is set).
    Other = 255,
}

/// One event, as a plain struct. Fields that do not apply to `type` are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_event {
    /// What happened; ::TW_EVENT_TYPE_NONE when no event was queued.
    pub r#type: tw_event_type,
    /// The (clamped) instant of the input that caused it.
    pub at_ns: u64,
    /// ::TW_EVENT_TYPE_STATE_CHANGED: the state left.
    pub from: tw_breaker_state,
    /// ::TW_EVENT_TYPE_STATE_CHANGED: the state entered.
    pub to: tw_breaker_state,
    /// ::TW_EVENT_TYPE_REJECTED, ::TW_EVENT_TYPE_GAVE_UP: why.
    pub reason: tw_kind,
    /// ::TW_EVENT_TYPE_REJECTED: whether `retry_after_ns` is known.
    pub has_retry_after: bool,
    /// ::TW_EVENT_TYPE_REJECTED: when the same call could pass.
    pub retry_after_ns: u64,
    /// ::TW_EVENT_TYPE_RETRY_SCHEDULED: the attempt that will run (2 for the first retry);
    /// ::TW_EVENT_TYPE_GAVE_UP: attempts made.
    pub attempt: u32,
    /// ::TW_EVENT_TYPE_RETRY_SCHEDULED: the wait before it.
    pub delay_ns: u64,
    /// ::TW_EVENT_TYPE_QUEUED, ::TW_EVENT_TYPE_WOKEN: the bulkhead ticket.
    pub ticket: u64,
}

impl tw_event {
    pub(crate) const NONE: tw_event = tw_event {
        r#type: tw_event_type::None,
        at_ns: 0,
        from: tw_breaker_state::Closed,
        to: tw_breaker_state::Closed,
        reason: tw_kind::None,
        has_retry_after: false,
        retry_after_ns: 0,
        attempt: 0,
        delay_ns: 0,
        ticket: 0,
    };
}

impl From<Event> for tw_event {
    fn from(e: Event) -> tw_event {
        let mut out = tw_event {
            at_ns: e.at.as_nanos(),
            ..tw_event::NONE
        };
        match e.kind {
            EventKind::StateChanged { from, to } => {
                out.r#type = tw_event_type::StateChanged;
                out.from = from.into();
                out.to = to.into();
            }
            EventKind::Rejected {
                reason,
                retry_after,
            } => {
                out.r#type = tw_event_type::Rejected;
                out.reason = reason.into();
                (out.has_retry_after, out.retry_after_ns) = opt_nanos(retry_after);
            }
            EventKind::RetryScheduled { attempt, delay } => {
                out.r#type = tw_event_type::RetryScheduled;
                out.attempt = attempt;
                out.delay_ns = duration_nanos(delay);
            }
            EventKind::GaveUp { reason, attempts } => {
                out.r#type = tw_event_type::GaveUp;
                out.reason = reason.into();
                out.attempt = attempts;
            }
            EventKind::Queued { ticket } => {
                out.r#type = tw_event_type::Queued;
                out.ticket = ticket;
            }
            EventKind::Woken { ticket } => {
                out.r#type = tw_event_type::Woken;
                out.ticket = ticket;
            }
            EventKind::StoreStateChanged { from, to } => {
                out.r#type = tw_event_type::StoreStateChanged;
                out.from = from.into();
                out.to = to.into();
            }
            // EventKind is #[non_exhaustive].
            _ => out.r#type = tw_event_type::Other,
        }
        out
    }
}

/// A listener for events: called with your `ctx` and one event, on the thread whose call
/// produced it, after that call released the handle's mutex. The event is valid during the
/// call only.
pub type tw_event_fn =
    Option<unsafe extern "C" fn(ctx: *mut std::ffi::c_void, event: *const tw_event)>;

/// An optional duration as (present, nanoseconds).
pub(crate) fn opt_nanos(d: Option<Duration>) -> (bool, u64) {
    match d {
        Some(d) => (true, duration_nanos(d)),
        None => (false, 0),
    }
}

/// An optional instant as (present, nanoseconds).
pub(crate) fn opt_instant(i: Option<Instant>) -> (bool, u64) {
    match i {
        Some(i) => (true, i.as_nanos()),
        None => (false, 0),
    }
}

/// A C deadline (::TW_NO_DEADLINE for none) as the core's.
pub(crate) fn deadline_in(ns: u64) -> Option<Instant> {
    (ns != TW_NO_DEADLINE).then_some(Instant::from_nanos(ns))
}

/// How an attempt of your function ended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_outcome {
    /// It returned a value.
    Success = 0,
    /// It failed (retried when `retryable`).
    Failure = 1,
    /// It was cancelled at its deadline (always retryable; counts as a failure).
    Timeout = 2,
    /// It failed in a way that is the caller's fault (a 4xx): not counted by the breaker and
    /// not retried.
    Ignored = 3,
}

/// A ::tw_outcome as C passes it (validated before use).
pub type RawOutcome = u32;

pub(crate) fn outcome_from_raw(raw: RawOutcome) -> Result<tripwire_core::pipeline::Outcome, Error> {
    use tripwire_core::pipeline::Outcome;
    Ok(match raw {
        0 => Outcome::Success,
        1 => Outcome::Failure,
        2 => Outcome::Timeout,
        3 => Outcome::Ignored,
        other => {
            return Err(Error::invalid(format!(
                "outcome: {other} is not a tw_outcome (0..=3)"
            )))
        }
    })
}

/// One attempt of your function, as the blocking helpers hand it over. Fields marked "out"
/// may be set by your function; they start as `retryable = true`, no hint.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_attempt {
    /// The attempt number (the first is 1).
    pub number: u32,
    /// Whether the attempt has a deadline.
    pub has_deadline: bool,
    /// When to give up (on the tw_now_ns() clock): honour it in your I/O. An attempt that
    /// returns at or after its deadline is reported as ::TW_OUTCOME_TIMEOUT, as a host that
    /// cancels at the deadline would see it.
    pub deadline_ns: u64,
    /// Out: whether a ::TW_OUTCOME_FAILURE may be retried (your retry predicate).
    pub retryable: bool,
    /// Out: whether `retry_after_ns` carries a server's Retry-After hint.
    pub has_retry_after: bool,
    /// Out: the hint, in nanoseconds (the next retry waits at least this long).
    pub retry_after_ns: u64,
}

/// Your protected function: run one attempt and say how it ended. It runs without any lock
/// held; it must not throw (C++) or longjmp out.
pub type tw_attempt_fn = Option<
    unsafe extern "C" fn(ctx: *mut std::ffi::c_void, attempt: *mut tw_attempt) -> RawOutcome,
>;

/// A name as a NUL-terminated C string, built at compile time from the core's `const` names
/// (a name longer than 31 bytes fails the build).
pub(crate) const fn nul(name: &str) -> [u8; 32] {
    let b = name.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    assert!(b.len() < 32, "a public name is longer than 31 bytes");
    out
}

/// The C string for a table entry, or "unknown".
pub(crate) fn c_name(name: Option<&'static [u8; 32]>) -> *const std::ffi::c_char {
    name.map_or(c"unknown".as_ptr(), |n| n.as_ptr().cast())
}

static KIND_NAMES: [[u8; 32]; 10] = [
    nul(ErrorKind::CircuitOpen.as_str()),
    nul(ErrorKind::BulkheadFull.as_str()),
    nul(ErrorKind::QueueTimeout.as_str()),
    nul(ErrorKind::RateLimited.as_str()),
    nul(ErrorKind::Timeout.as_str()),
    nul(ErrorKind::RetriesExhausted.as_str()),
    nul(ErrorKind::BudgetExhausted.as_str()),
    nul(ErrorKind::DeadlineExceeded.as_str()),
    nul(ErrorKind::Failure.as_str()),
    nul(ErrorKind::InvalidConfig.as_str()),
];

static STATE_NAMES: [[u8; 32]; 5] = [
    nul(BreakerState::Closed.as_str()),
    nul(BreakerState::Open.as_str()),
    nul(BreakerState::HalfOpen.as_str()),
    nul(BreakerState::ForcedOpen.as_str()),
    nul(BreakerState::Disabled.as_str()),
];

const CLOSED: BreakerState = BreakerState::Closed;

static EVENT_NAMES: [[u8; 32]; 7] = [
    nul(EventKind::StateChanged {
        from: CLOSED,
        to: CLOSED,
    }
    .name()),
    nul(EventKind::Rejected {
        reason: ErrorKind::CircuitOpen,
        retry_after: None,
    }
    .name()),
    nul(EventKind::RetryScheduled {
        attempt: 0,
        delay: Duration::ZERO,
    }
    .name()),
    nul(EventKind::GaveUp {
        reason: ErrorKind::Failure,
        attempts: 0,
    }
    .name()),
    nul(EventKind::Queued { ticket: 0 }.name()),
    nul(EventKind::Woken { ticket: 0 }.name()),
    nul(EventKind::StoreStateChanged {
        from: CLOSED,
        to: CLOSED,
    }
    .name()),
];

/// The kind's public name (`"circuitOpen"`, the same in every language; `"none"` for
/// ::TW_KIND_NONE), or `"unknown"`. Static; never free it.
#[no_mangle]
pub extern "C" fn tw_kind_str(kind: u32) -> *const std::ffi::c_char {
    crate::error::guard_value(c"unknown".as_ptr(), || {
        if kind == tw_kind::None as u32 {
            return c"none".as_ptr();
        }
        // Values are the core's codes (1-based, in declaration order); the table is checked
        // against `ErrorKind::code` in the tests.
        c_name(KIND_NAMES.get((kind as usize).wrapping_sub(1)))
    })
}

/// The breaker state's public name (`"closed"`, `"open"`, `"halfOpen"`, `"forcedOpen"`,
/// `"disabled"`), or `"unknown"`. Static; never free it.
#[no_mangle]
pub extern "C" fn tw_breaker_state_str(state: RawBreakerState) -> *const std::ffi::c_char {
    crate::error::guard_value(c"unknown".as_ptr(), || {
        c_name(STATE_NAMES.get(state as usize))
    })
}

/// The event type's public name (`"stateChanged"`, `"rejected"`, `"retryScheduled"`,
/// `"gaveUp"`, `"queued"`, `"woken"`, `"storeStateChanged"`), or `"unknown"`. Static; never
/// free it.
#[no_mangle]
pub extern "C" fn tw_event_type_str(event_type: u32) -> *const std::ffi::c_char {
    crate::error::guard_value(c"unknown".as_ptr(), || {
        c_name(EVENT_NAMES.get((event_type as usize).wrapping_sub(1)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn s(p: *const std::ffi::c_char) -> &'static str {
        // SAFETY: the functions return static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn names_follow_the_core_codes() {
        for k in ErrorKind::ALL {
            assert_eq!(s(tw_kind_str(tw_kind::from(k) as u32)), k.as_str());
            assert_eq!(tw_kind::from(k) as u32, k.code());
        }
        assert_eq!(s(tw_kind_str(0)), "none");
        assert_eq!(s(tw_kind_str(11)), "unknown");
        for raw in 0..5 {
            let state = breaker_state_from_raw(raw).unwrap();
            assert_eq!(s(tw_breaker_state_str(raw)), state.as_str());
            assert_eq!(tw_breaker_state::from(state) as u32, state.code());
        }
        assert_eq!(s(tw_breaker_state_str(5)), "unknown");
        assert_eq!(s(tw_event_type_str(1)), "stateChanged");
        assert_eq!(s(tw_event_type_str(6)), "woken");
        assert_eq!(s(tw_event_type_str(7)), "storeStateChanged");
        assert_eq!(s(tw_event_type_str(0)), "unknown");
    }
}

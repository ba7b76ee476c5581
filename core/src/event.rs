//! The shared vocabulary of decisions and events, and the bounded event queue.
//!
//! The core never calls back into the host: what happened is queued here and the binding
//! drains it after every input (`poll_event` until `None`) and turns it into its own idiom.
//! A queue holds at most [`EVENT_CAPACITY`] events; when a host does not drain, the oldest
//! are dropped and counted, so memory stays bounded.

use core::fmt;
use core::time::Duration;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::time::Instant;

/// The most events a queue holds before it drops the oldest.
pub const EVENT_CAPACITY: usize = 256;

/// Why a protected call did not produce the function's value. The same names in every
/// language (`code` in JS and Python, `TW_KIND_*` in C).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The circuit breaker is open (or forced open, or half open with every trial slot taken).
    CircuitOpen,
    /// The bulkhead has no free slot and no queue place.
    BulkheadFull,
    /// The call waited in the bulkhead queue longer than `maxWait` (or its deadline).
    QueueTimeout,
    /// A rate limit (or a server's Retry-After pushback) refused the call.
    RateLimited,
    /// An attempt ran past its per-attempt timeout.
    Timeout,
    /// Every allowed attempt failed; carries the attempt count and the last error.
    RetriesExhausted,
    /// The shared retry budget refused a retry.
    BudgetExhausted,
    /// The call's deadline passed, or the next retry could not start before it.
    DeadlineExceeded,
    /// The function's own error, propagated unchanged.
    Failure,
    /// A configuration was refused.
    InvalidConfig,
}

crate::read::read_unit_enum!(ErrorKind {
    "circuitOpen" => CircuitOpen,
    "bulkheadFull" => BulkheadFull,
    "queueTimeout" => QueueTimeout,
    "rateLimited" => RateLimited,
    "timeout" => Timeout,
    "retriesExhausted" => RetriesExhausted,
    "budgetExhausted" => BudgetExhausted,
    "deadlineExceeded" => DeadlineExceeded,
    "failure" => Failure,
    "invalidConfig" => InvalidConfig,
});

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::CircuitOpen,
        ErrorKind::BulkheadFull,
        ErrorKind::QueueTimeout,
        ErrorKind::RateLimited,
        ErrorKind::Timeout,
        ErrorKind::RetriesExhausted,
        ErrorKind::BudgetExhausted,
        ErrorKind::DeadlineExceeded,
        ErrorKind::Failure,
        ErrorKind::InvalidConfig,
    ];

    /// The kind's public name (`"circuitOpen"`...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::CircuitOpen => "circuitOpen",
            ErrorKind::BulkheadFull => "bulkheadFull",
            ErrorKind::QueueTimeout => "queueTimeout",
            ErrorKind::RateLimited => "rateLimited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RetriesExhausted => "retriesExhausted",
            ErrorKind::BudgetExhausted => "budgetExhausted",
            ErrorKind::DeadlineExceeded => "deadlineExceeded",
            ErrorKind::Failure => "failure",
            ErrorKind::InvalidConfig => "invalidConfig",
        }
    }

    /// The kind named `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A stable small integer (the C enum value).
    #[must_use]
    pub const fn code(self) -> u32 {
        self as u32 + 1
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A circuit breaker's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls flow; outcomes are recorded against the trip rule.
    #[default]
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// A bounded number of trial calls decide between closed and open.
    HalfOpen,
    /// Manually opened: every call is rejected until `reset`.
    ForcedOpen,
    /// Manually disabled: every call is admitted; metrics are still recorded.
    Disabled,
}

crate::read::read_unit_enum!(BreakerState {
    "closed" => Closed,
    "open" => Open,
    "halfOpen" => HalfOpen,
    "forcedOpen" => ForcedOpen,
    "disabled" => Disabled,
});

impl BreakerState {
    /// The state's public name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "halfOpen",
            BreakerState::ForcedOpen => "forcedOpen",
            BreakerState::Disabled => "disabled",
        }
    }

    /// The state named `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<BreakerState> {
        [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::ForcedOpen,
            BreakerState::Disabled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// A stable small integer (the C enum value, the Prometheus gauge value).
    #[must_use]
    pub const fn code(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened inside a policy, stamped with the `now` that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The (clamped) instant of the input that caused it.
    pub at: Instant,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A circuit breaker changed state.
    StateChanged {
        /// The state left.
        from: BreakerState,
        /// The state entered.
        to: BreakerState,
    },
    /// A call was refused by a policy.
    Rejected {
        /// Which refusal.
        reason: ErrorKind,
        /// When the same call could pass, where known.
        retry_after: Option<Duration>,
    },
    /// A retry was scheduled: attempt `attempt` (the first retry is attempt 2) after `delay`.
    RetryScheduled {
        /// The attempt that will run.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// A call gave up after `attempts` attempts.
    GaveUp {
        /// Why.
        reason: ErrorKind,
        /// Attempts made, the first included.
        attempts: u32,
    },
    /// A call joined the bulkhead queue.
    Queued {
        /// Its ticket.
        ticket: u64,
    },
    /// A released slot was handed to the queued call holding `ticket`.
    Woken {
        /// The ticket woken.
        ticket: u64,
    },
    /// The breaker around a shared store changed state: `open` means the store is not asked
    /// and `store.onUnavailable` decides; `closed` means the store is back.
    StoreStateChanged {
        /// The state left.
        from: BreakerState,
        /// The state entered.
        to: BreakerState,
    },
}

impl EventKind {
    /// The event's public name (`"stateChanged"`...).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            EventKind::StateChanged { .. } => "stateChanged",
            EventKind::Rejected { .. } => "rejected",
            EventKind::RetryScheduled { .. } => "retryScheduled",
            EventKind::GaveUp { .. } => "gaveUp",
            EventKind::Queued { .. } => "queued",
            EventKind::Woken { .. } => "woken",
            EventKind::StoreStateChanged { .. } => "storeStateChanged",
        }
    }
}

/// A bounded FIFO of events. Allocates only when the first event arrives, so an idle policy
/// costs one pointer.
#[derive(Clone, Debug, Default)]
pub struct EventQueue<E = Event> {
    inner: Option<Box<QueueInner<E>>>,
}

#[derive(Clone, Debug)]
struct QueueInner<E> {
    buf: VecDeque<E>,
    dropped: u64,
}

impl<E> EventQueue<E> {
    /// An empty queue.
    #[must_use]
    pub const fn new() -> EventQueue<E> {
        EventQueue { inner: None }
    }

    /// Queue `event`, dropping (and counting) the oldest when full.
    pub fn push(&mut self, event: E) {
        let inner = self.inner.get_or_insert_with(|| {
            Box::new(QueueInner {
                buf: VecDeque::with_capacity(16),
                dropped: 0,
            })
        });
        if inner.buf.len() >= EVENT_CAPACITY {
            inner.buf.pop_front();
            inner.dropped += 1;
        }
        inner.buf.push_back(event);
    }

    /// The oldest queued event, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<E> {
        self.inner.as_mut().and_then(|i| i.buf.pop_front())
    }

    /// Events queued now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.buf.len())
    }

    /// Whether no event is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped because the host did not drain in time.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_bounded_and_counts_overflow() {
        let mut q = EventQueue::<u32>::new();
        assert_eq!(q.pop(), None);
        for i in 0..(EVENT_CAPACITY as u32 + 10) {
            q.push(i);
        }
        assert_eq!(q.len(), EVENT_CAPACITY);
        assert_eq!(q.dropped(), 10);
        assert_eq!(q.pop(), Some(10));
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(
            BreakerState::from_name("halfOpen"),
            Some(BreakerState::HalfOpen)
        );
        let codes: std::collections::HashSet<u32> =
            ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
    }
}

//! Events across the boundary: each is written to the scratch buffer's event region as a type
//! code, its instant and up to three numbers, and the JS layer builds the listener's object.

use tripwire_core::{
    CheckStatus, Event, EventKind, EventQueue, HealthEvent, HealthEventKind, HealthStatus,
};
use wasm_bindgen::prelude::*;

use crate::convert::{dur_ms, kind_code, ms, opt_dur_ms};
use crate::out::{put, EVENT};

/// Policy event type names, indexed by the code [`write_event`] returns.
const EVENT_NAMES: [&str; 8] = [
    "",
    "stateChanged",
    "rejected",
    "retryScheduled",
    "gaveUp",
    "queued",
    "woken",
    "storeStateChanged",
];

/// Health event type names, indexed by the code [`write_health_event`] returns.
const HEALTH_EVENT_NAMES: [&str; 4] = ["", "checkChanged", "timedOut", "statusChanged"];

/// Check status names, indexed by [`check_status_code`].
const CHECK_STATUS_NAMES: [&str; 4] = ["", "pending", "healthy", "unhealthy"];

/// Overall status names, indexed by [`health_status_code`].
const HEALTH_STATUS_NAMES: [&str; 4] = ["", "healthy", "degraded", "unhealthy"];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Policy event type names by code.
#[wasm_bindgen(js_name = eventTypeNames)]
#[must_use]
pub fn event_type_names() -> Vec<String> {
    names(&EVENT_NAMES)
}

/// Health event type names by code.
#[wasm_bindgen(js_name = healthEventTypeNames)]
#[must_use]
pub fn health_event_type_names() -> Vec<String> {
    names(&HEALTH_EVENT_NAMES)
}

/// Check status names by code.
#[wasm_bindgen(js_name = checkStatusNames)]
#[must_use]
pub fn check_status_names() -> Vec<String> {
    names(&CHECK_STATUS_NAMES)
}

/// Overall health status names by code.
#[wasm_bindgen(js_name = healthStatusNames)]
#[must_use]
pub fn health_status_names() -> Vec<String> {
    names(&HEALTH_STATUS_NAMES)
}

/// A check status's code (0 for a status this glue does not know yet).
pub fn check_status_code(s: CheckStatus) -> f64 {
    let name = s.as_str();
    CHECK_STATUS_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or(0) as f64
}

/// An overall status's code (0 for a status this glue does not know yet).
pub fn health_status_code(s: HealthStatus) -> f64 {
    let name = s.as_str();
    HEALTH_STATUS_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or(0) as f64
}

/// Write `e` to the event region; returns its type code.
pub fn write_event(e: &Event) -> u32 {
    put(EVENT + 1, ms(e.at));
    let (code, a, b) = match e.kind {
        EventKind::StateChanged { from, to } => (1, f64::from(from.code()), f64::from(to.code())),
        EventKind::Rejected {
            reason,
            retry_after,
        } => (2, kind_code(reason), opt_dur_ms(retry_after)),
        EventKind::RetryScheduled { attempt, delay } => (3, f64::from(attempt), dur_ms(delay)),
        EventKind::GaveUp { reason, attempts } => (4, kind_code(reason), f64::from(attempts)),
        EventKind::Queued { ticket } => (5, ticket as f64, f64::NAN),
        EventKind::Woken { ticket } => (6, ticket as f64, f64::NAN),
        EventKind::StoreStateChanged { from, to } => {
            (7, f64::from(from.code()), f64::from(to.code()))
        }
        // `EventKind` is non-exhaustive: a kind added to the core reaches JS as type "".
        _ => (0, f64::NAN, f64::NAN),
    };
    put(EVENT, f64::from(code));
    put(EVENT + 2, a);
    put(EVENT + 3, b);
    code
}

/// Write `e` to the event region; returns its type code.
pub fn write_health_event(e: &HealthEvent) -> u32 {
    put(EVENT + 1, ms(e.at));
    let (code, check, from, to) = match e.kind {
        HealthEventKind::CheckChanged { check, from, to } => (
            1,
            f64::from(check.get()),
            check_status_code(from),
            check_status_code(to),
        ),
        HealthEventKind::TimedOut { check } => (2, f64::from(check.get()), 0.0, 0.0),
        HealthEventKind::StatusChanged { from, to } => (
            3,
            f64::NAN,
            health_status_code(from),
            health_status_code(to),
        ),
        // Non-exhaustive in the core: a new kind reaches JS as type "".
        _ => (0, f64::NAN, 0.0, 0.0),
    };
    put(EVENT, f64::from(code));
    put(EVENT + 2, check);
    put(EVENT + 3, from);
    put(EVENT + 4, to);
    code
}

/// Events a standalone policy produced, kept for JS only while someone listens.
#[derive(Debug)]
pub struct Outbox {
    listening: bool,
    queue: EventQueue,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            listening: false,
            queue: EventQueue::new(),
        }
    }
}

impl Outbox {
    /// Keep events for JS (true) or drop them as they come (false).
    pub fn set_listening(&mut self, on: bool) {
        self.listening = on;
        if !on {
            while self.queue.pop().is_some() {}
        }
    }

    /// Move every event `poll` yields into the outbox (or drop them); whether any is waiting.
    #[inline]
    pub fn drain(&mut self, mut poll: impl FnMut() -> Option<Event>) -> bool {
        while let Some(e) = poll() {
            if self.listening {
                self.queue.push(e);
            }
        }
        !self.queue.is_empty()
    }

    /// Write the oldest waiting event; its type code, or `None` when there is none.
    pub fn next(&mut self) -> Option<u32> {
        self.queue.pop().map(|e| write_event(&e))
    }
}

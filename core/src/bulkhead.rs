//! The bulkhead: at most `maxConcurrent` calls run at once; up to `maxQueue` more wait in a FIFO
//! queue for a slot, each for at most `maxWait` (or its own deadline).
//!
//! `{"maxConcurrent": 10, "maxQueue": 100, "maxWait": "1s"}` — the seed's defaults, except that
//! `maxWait` defaults to none: a waiter then waits until the call's deadline, or forever without
//! one.
//!
//! ## The protocol a host drives
//!
//! ```text
//! match bulkhead.try_enter(now, deadline) {
//!     Admitted                 => run the call; then bulkhead.release(now)
//!     Queued { ticket, until } => park until woken or until `until`
//!     Rejected { reason }      => fail with `reason` (bulkheadFull or queueTimeout)
//! }
//! release(now) -> Some(t)      => the parked call holding ticket t now owns the freed slot:
//!                                 wake it; it runs and later calls release(now) itself
//! parked call reaches `until`  => cancel(t, now, true); fail it with queueTimeout
//! parked call is abandoned     => cancel(t, now, false)
//! one timer for every waiter   => arm it at poll_timeout(); when it fires, poll_expired(now)
//!                                 until None names each waiter to fail with queueTimeout
//! ```
//!
//! A slot is owned either by an admitted call or by a woken ticket, never by a waiter: a waiter
//! that leaves the queue (cancelled, timed out, or dropped because it expired) never held one,
//! so it cannot leak one. Releasing hands the slot straight to the oldest live waiter, so a newly
//! arriving call can never overtake the queue.
//!
//! ## Formulas
//!
//! - A waiter's `until` is `min(now + maxWait, deadline)`; `None` when both are absent.
//! - A waiter has *expired* at `now` when `until <= now`. Expired waiters are never woken: a
//!   release skips (and drops) them, counting each as a queue timeout.
//! - Invariant: the queue is non-empty only while `in_flight >= maxConcurrent`, so a call is
//!   admitted exactly when `in_flight < maxConcurrent`.
//!
//! Time is clamped: every `now` is treated as `max(now, the latest now seen)` (see
//! [`Monotonic`]), so a clock that steps back cannot revive an expired waiter or expire a live
//! one early. Deadlines are absolute instants and are not clamped.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::config::ConfigDuration;
use crate::deadline::min_deadline;
use crate::error::{ConfigError, Issues};
use crate::event::{ErrorKind, Event, EventKind, EventQueue};
use crate::time::{Instant, Monotonic};

/// The default `maxConcurrent`: 10 (the seed's).
pub const DEFAULT_MAX_CONCURRENT: u32 = 10;
/// The default `maxQueue`: 100 (the seed's).
pub const DEFAULT_MAX_QUEUE: u32 = 100;
/// The largest `maxQueue` accepted. The queue is allocated in full at construction so that
/// entering never allocates; a bigger queue is almost surely a typo and would reserve
/// `16 bytes × maxQueue` up front.
pub const MAX_QUEUE_LIMIT: u32 = 1_000_000;

/// `{"maxConcurrent": 10, "maxQueue": 100, "maxWait": "1s"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct BulkheadConfig {
    /// Calls allowed to run at once (default 10, at least 1).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// Calls allowed to wait for a slot (default 100; 0 means no queue: a call that finds no
    /// free slot is rejected with `bulkheadFull` at once). Counts waiting calls only.
    #[serde(default = "default_max_queue")]
    pub max_queue: u32,
    /// The longest a call waits in the queue before `queueTimeout` (default none: the call's
    /// deadline, or forever without one). Zero means "never wait": a call that finds no free
    /// slot is rejected with `bulkheadFull`, as resilience4j does with `maxWaitDuration` 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<ConfigDuration>,
}

impl crate::read::FromTree for BulkheadConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct BulkheadConfig",
            BulkheadConfig {
                max_concurrent: "maxConcurrent" = default_max_concurrent(),
                max_queue: "maxQueue" = default_max_queue(),
                max_wait: "maxWait" = None,
            }
        )
    }
}

fn default_max_concurrent() -> u32 {
    DEFAULT_MAX_CONCURRENT
}

fn default_max_queue() -> u32 {
    DEFAULT_MAX_QUEUE
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_queue: DEFAULT_MAX_QUEUE,
            max_wait: None,
        }
    }
}

impl BulkheadConfig {
    /// A config from its three fields (the struct is `#[non_exhaustive]`, so other crates
    /// cannot use a struct literal). Not validated: [`Bulkhead::new`] does that.
    #[must_use]
    pub fn new(
        max_concurrent: u32,
        max_queue: u32,
        max_wait: Option<ConfigDuration>,
    ) -> BulkheadConfig {
        BulkheadConfig {
            max_concurrent,
            max_queue,
            max_wait,
        }
    }

    /// Parse a bulkhead config (the JSON under `"bulkhead"`) and validate it. Error paths are
    /// relative to the bulkhead's own root (`maxConcurrent: must be >= 1, got 0`).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config = <BulkheadConfig as crate::read::FromTree>::from_json_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Every problem with this config: `maxConcurrent` must be >= 1 (a bulkhead that admits
    /// nothing is a misconfiguration, not a policy) and `maxQueue` at most [`MAX_QUEUE_LIMIT`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if self.max_concurrent == 0 {
            issues.push("maxConcurrent", "must be >= 1, got 0");
        }
        if self.max_queue > MAX_QUEUE_LIMIT {
            issues.push(
                "maxQueue",
                format!("must be <= {MAX_QUEUE_LIMIT}, got {}", self.max_queue),
            );
        }
        issues.finish(())
    }

    /// Whether a call that finds no free slot may wait at all.
    fn may_queue(&self) -> bool {
        self.max_queue > 0 && self.max_wait.is_none_or(|d| d.nanos() > 0)
    }
}

/// The handle of a queued call: the host parks the call under it, and [`Bulkhead::release`]
/// names it when the call's turn comes. Tickets start at 1 and increase with every queued call,
/// so a smaller ticket joined the queue earlier; 0 is never issued (a C "no ticket").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

impl Ticket {
    /// The ticket's number (what crosses FFI boundaries and appears in events).
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The ticket numbered `raw` (from [`Ticket::get`] or an event). A number the bulkhead never
    /// issued names no waiter: [`Bulkhead::cancel`] then returns `false`.
    #[must_use]
    pub const fn from_raw(raw: u64) -> Ticket {
        Ticket(raw)
    }
}

/// What [`Bulkhead::try_enter`] decided.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// The call holds a slot: run it, then [`Bulkhead::release`].
    Admitted,
    /// The call waits in the queue under `ticket` until woken by a release, or until `until`
    /// (`min(now + maxWait, deadline)`; `None` = no limit), when it fails with `queueTimeout`.
    Queued {
        /// The waiter's handle.
        ticket: Ticket,
        /// When the wait ends with `queueTimeout`, if ever.
        until: Option<Instant>,
    },
    /// The call is refused: `BulkheadFull` when no slot and no queue place is free (or the
    /// config forbids waiting), `QueueTimeout` when it would have to wait but its `until` has
    /// already passed (`until <= now`).
    Rejected {
        /// `ErrorKind::BulkheadFull` or `ErrorKind::QueueTimeout`.
        reason: ErrorKind,
    },
}

impl Entry {
    /// Whether the call may run now.
    #[must_use]
    pub const fn is_admitted(&self) -> bool {
        matches!(self, Entry::Admitted)
    }
}

/// Counters (monotonic totals) and gauges (current values) of one bulkhead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BulkheadMetrics {
    /// Slots granted: calls admitted at once plus waiters woken.
    pub admitted: u64,
    /// Calls that joined the queue.
    pub queued: u64,
    /// Waiters woken by a release or a reconfiguration (included in `admitted`).
    pub woken: u64,
    /// Calls rejected with `bulkheadFull`.
    pub rejected_full: u64,
    /// Calls that ended with `queueTimeout`: refused at entry because their wait had already
    /// run out, dropped from the queue after expiring, or cancelled with `timed_out`.
    pub queue_timeouts: u64,
    /// Waiters cancelled by the host (not timed out).
    pub cancelled: u64,
    /// Releases with nothing in flight (host misuse), ignored.
    pub unmatched_releases: u64,
    /// Gauge: slots held now.
    pub in_flight: u64,
    /// Gauge: calls waiting now.
    pub queue_depth: u64,
    /// Gauge: the configured `maxConcurrent`.
    pub max_concurrent: u64,
    /// Gauge: the configured `maxQueue`.
    pub max_queue: u64,
}

/// One waiting call. `until == Instant::MAX` stands for "no limit", which keeps a waiter at
/// 16 bytes; a real deadline at `Instant::MAX` means the same thing.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    ticket: Ticket,
    until: Instant,
}

impl Waiter {
    /// `Instant::MAX` is "no limit": such a waiter never expires, not even once the clock
    /// itself reaches `Instant::MAX` (it would be dropped unseen: its host arms no timer).
    fn expired(&self, now: Instant) -> bool {
        self.until <= now && self.until != Instant::MAX
    }
}

/// A bulkhead: bounded concurrency with a bounded FIFO queue. See the module docs for the
/// protocol a host drives.
#[derive(Clone, Debug)]
pub struct Bulkhead {
    config: BulkheadConfig,
    clock: Monotonic,
    in_flight: u32,
    /// Allocated with capacity `maxQueue` up front; entering and releasing never allocate.
    queue: VecDeque<Waiter>,
    next_ticket: u64,
    events: EventQueue,
    metrics: BulkheadMetrics,
}

impl Bulkhead {
    /// A bulkhead with nothing in flight and an empty queue of capacity `maxQueue`.
    pub fn new(config: BulkheadConfig) -> Result<Bulkhead, ConfigError> {
        config.validate()?;
        Ok(Bulkhead {
            queue: VecDeque::with_capacity(config.max_queue as usize),
            config,
            clock: Monotonic::new(),
            in_flight: 0,
            next_ticket: 1,
            events: EventQueue::new(),
            metrics: BulkheadMetrics::default(),
        })
    }

    /// Ask for a slot at `now` for a call that must finish by `deadline`.
    ///
    /// Admitted when a slot is free (`in_flight < maxConcurrent`), whatever the deadline: the
    /// bulkhead limits concurrency, the deadline is the pipeline's business. Otherwise the call
    /// queues with `until = min(now + maxWait, deadline)` — unless the queue holds `maxQueue`
    /// waiters even after dropping expired ones, `maxQueue` is 0 or `maxWait` is 0
    /// (`bulkheadFull`), or `until <= now` (`queueTimeout`). Queuing emits `Queued`, a
    /// rejection `Rejected`.
    pub fn try_enter(&mut self, now: Instant, deadline: Option<Instant>) -> Entry {
        let now = self.clock.observe(now);
        if self.in_flight < self.config.max_concurrent {
            self.in_flight += 1;
            self.metrics.admitted += 1;
            return Entry::Admitted;
        }
        if self.queue.len() >= self.config.max_queue as usize {
            // Waiters whose time ran out are gone in all but bookkeeping (their hosts' timers
            // are due): they must not keep a live call out.
            self.drop_expired(now);
        }
        if !self.config.may_queue() || self.queue.len() >= self.config.max_queue as usize {
            return self.reject(now, ErrorKind::BulkheadFull);
        }
        let own = self
            .config
            .max_wait
            .map(|d| now.saturating_add_nanos(d.nanos()));
        let until = min_deadline(own, deadline);
        if until.is_some_and(|u| u <= now) {
            return self.reject(now, ErrorKind::QueueTimeout);
        }
        let ticket = Ticket(self.next_ticket);
        // 2^64 tickets are never reached; wrapping (skipping 0) keeps this total anyway.
        self.next_ticket = self.next_ticket.wrapping_add(1).max(1);
        self.queue.push_back(Waiter {
            ticket,
            until: until.unwrap_or(Instant::MAX),
        });
        self.metrics.queued += 1;
        self.events.push(Event {
            at: now,
            kind: EventKind::Queued {
                ticket: ticket.get(),
            },
        });
        Entry::Queued { ticket, until }
    }

    /// A call that held a slot finished at `now`.
    ///
    /// The slot goes straight to the oldest waiter whose `until > now`, which is returned (and
    /// `Woken` emitted): the host wakes that call, which now holds the slot and must release it
    /// in turn. Waiters passed over because they expired are dropped, each counted as a queue
    /// timeout with a `Rejected { QueueTimeout }` event. `None` means the slot is simply free —
    /// or, after a reconfiguration lowered `maxConcurrent`, retired while in-flight calls drain.
    ///
    /// Releasing with nothing in flight is host misuse: it is ignored (the count never
    /// underflows) and counted in `unmatched_releases`.
    pub fn release(&mut self, now: Instant) -> Option<Ticket> {
        let now = self.clock.observe(now);
        if self.in_flight == 0 {
            self.metrics.unmatched_releases += 1;
            return None;
        }
        self.in_flight -= 1;
        self.wake_next(now)
    }

    /// The waiter holding `ticket` leaves the queue at `now`: its wait ran out (`timed_out`,
    /// counted in `queue_timeouts` with a `Rejected { QueueTimeout }` event) or the host
    /// abandoned it (counted in `cancelled`). O(queue length).
    ///
    /// Returns `true` if it was waiting. `false` means it was not in the queue: never issued,
    /// already cancelled, dropped as expired — or already woken, in which case it holds a slot
    /// and the host must [`release`](Bulkhead::release) it (the host learns of every wake from
    /// `release`/`reconfigure`'s return value, so it can tell these apart).
    pub fn cancel(&mut self, ticket: Ticket, now: Instant, timed_out: bool) -> bool {
        let now = self.clock.observe(now);
        let Some(index) = self.queue.iter().position(|w| w.ticket == ticket) else {
            return false;
        };
        self.queue.remove(index);
        if timed_out {
            self.count_timeout(now);
        } else {
            self.metrics.cancelled += 1;
        }
        true
    }

    /// Remove and return the oldest waiter whose wait has run out (`until <= now`), counting it
    /// as a queue timeout. A host that arms one timer at [`poll_timeout`](Bulkhead::poll_timeout)
    /// calls this until `None` when it fires and fails each returned call with `queueTimeout`.
    pub fn poll_expired(&mut self, now: Instant) -> Option<Ticket> {
        let now = self.clock.observe(now);
        let index = self.queue.iter().position(|w| w.expired(now))?;
        let waiter = self.queue.remove(index)?;
        self.count_timeout(now);
        Some(waiter.ticket)
    }

    /// The earliest `until` among waiters: when the next one times out. `None` when nobody
    /// waits or no waiter has a limit. May lie in the past if expired waiters have not been
    /// collected yet. O(queue length).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue
            .iter()
            .map(|w| w.until)
            .filter(|&u| u != Instant::MAX)
            .min()
    }

    /// Slots held now. May exceed `maxConcurrent` only after a reconfiguration lowered it.
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Calls waiting now. May exceed `maxQueue` only after a reconfiguration lowered it.
    #[must_use]
    pub fn queued(&self) -> u32 {
        // The queue is bounded by MAX_QUEUE_LIMIT (or by an earlier, also validated, maxQueue).
        u32::try_from(self.queue.len()).unwrap_or(u32::MAX)
    }

    /// Whether `ticket` is waiting in the queue now.
    #[must_use]
    pub fn is_waiting(&self, ticket: Ticket) -> bool {
        self.queue.iter().any(|w| w.ticket == ticket)
    }

    /// The oldest undrained event: `Queued`, `Woken`, or `Rejected` with `BulkheadFull` or
    /// `QueueTimeout` (no `retry_after`: when a slot frees is up to the running calls).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// A snapshot of the counters and gauges.
    #[must_use]
    pub fn metrics(&self) -> BulkheadMetrics {
        BulkheadMetrics {
            in_flight: u64::from(self.in_flight),
            queue_depth: self.queue.len() as u64,
            max_concurrent: u64::from(self.config.max_concurrent),
            max_queue: u64::from(self.config.max_queue),
            ..self.metrics
        }
    }

    /// Apply a new config at `now`, keeping slot holders and waiters. An invalid config is
    /// refused and the old one stays in force.
    ///
    /// A larger `maxConcurrent` wakes waiters, oldest first, into the new slots (returned in
    /// wake order, each with a `Woken` event; expired ones are dropped as in `release`). A
    /// smaller one never revokes a slot: in-flight calls drain, and waiters wait until
    /// `in_flight` is back under the new limit. A smaller `maxQueue` keeps every existing waiter
    /// and refuses newcomers until the queue is below it. `until` of existing waiters is kept;
    /// a new `maxWait` applies to calls queued from now on. May allocate (to grow the queue).
    pub fn reconfigure(
        &mut self,
        config: BulkheadConfig,
        now: Instant,
    ) -> Result<Vec<Ticket>, ConfigError> {
        config.validate()?;
        let now = self.clock.observe(now);
        let wanted = config.max_queue as usize;
        if wanted > self.queue.capacity() {
            self.queue.reserve(wanted - self.queue.len());
        }
        self.config = config;
        let mut woken = Vec::new();
        while let Some(ticket) = self.wake_next(now) {
            woken.push(ticket);
        }
        Ok(woken)
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> &BulkheadConfig {
        &self.config
    }

    /// Hand one free slot (if any) to the oldest live waiter, dropping expired ones passed over.
    fn wake_next(&mut self, now: Instant) -> Option<Ticket> {
        while self.in_flight < self.config.max_concurrent {
            let waiter = self.queue.pop_front()?;
            if waiter.expired(now) {
                self.count_timeout(now);
                continue;
            }
            self.in_flight += 1;
            self.metrics.admitted += 1;
            self.metrics.woken += 1;
            self.events.push(Event {
                at: now,
                kind: EventKind::Woken {
                    ticket: waiter.ticket.get(),
                },
            });
            return Some(waiter.ticket);
        }
        None
    }

    /// Drop every expired waiter, wherever it sits (deadlines differ, so `until` is not
    /// ordered along the queue). `retain` works in place: no allocation.
    fn drop_expired(&mut self, now: Instant) {
        let before = self.queue.len();
        self.queue.retain(|w| !w.expired(now));
        for _ in self.queue.len()..before {
            self.count_timeout(now);
        }
    }

    fn count_timeout(&mut self, now: Instant) {
        self.metrics.queue_timeouts += 1;
        self.push_rejected(now, ErrorKind::QueueTimeout);
    }

    fn reject(&mut self, now: Instant, reason: ErrorKind) -> Entry {
        match reason {
            ErrorKind::BulkheadFull => {
                self.metrics.rejected_full += 1;
                self.push_rejected(now, reason);
            }
            _ => self.count_timeout(now),
        }
        Entry::Rejected { reason }
    }

    fn push_rejected(&mut self, now: Instant, reason: ErrorKind) {
        self.events.push(Event {
            at: now,
            kind: EventKind::Rejected {
                reason,
                retry_after: None,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }

    fn bulkhead(json: &str) -> Bulkhead {
        Bulkhead::new(BulkheadConfig::from_json(json).unwrap()).unwrap()
    }

    fn drain(b: &mut Bulkhead) -> Vec<EventKind> {
        std::iter::from_fn(|| b.poll_event())
            .map(|e| e.kind)
            .collect()
    }

    fn queued(e: Entry) -> (Ticket, Option<Instant>) {
        match e {
            Entry::Queued { ticket, until } => (ticket, until),
            other => panic!("expected queued, got {other:?}"),
        }
    }

    #[test]
    fn defaults_parse_validate_and_round_trip() {
        let c = BulkheadConfig::from_json("{}").unwrap();
        assert_eq!(c, BulkheadConfig::default());
        assert_eq!((c.max_concurrent, c.max_queue, c.max_wait), (10, 100, None));
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"maxConcurrent":10,"maxQueue":100}"#
        );
        let c =
            BulkheadConfig::from_json(r#"{"maxConcurrent": 2, "maxQueue": 0, "maxWait": "1.5s"}"#)
                .unwrap();
        assert_eq!(c.max_wait, Some(ConfigDuration::from_millis(1500)));
        let back: BulkheadConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn validation_names_every_field() {
        let e =
            BulkheadConfig::from_json(r#"{"maxConcurrent": 0, "maxQueue": 1000001}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "maxConcurrent: must be >= 1, got 0; maxQueue: must be <= 1000000, got 1000001"
        );
        assert_eq!(
            e.within("bulkhead").issues()[0].path,
            "bulkhead.maxConcurrent"
        );
        let e = BulkheadConfig::from_json(r#"{"maxConcurent": 3}"#).unwrap_err();
        assert!(
            e.to_string().contains("unknown field `maxConcurent`"),
            "{e}"
        );
        let e = BulkheadConfig::from_json(r#"{"maxWait": "soon"}"#).unwrap_err();
        assert_eq!(e.issues()[0].path, "maxWait");
        assert!(Bulkhead::new(BulkheadConfig::new(0, 1, None)).is_err());
    }

    #[test]
    fn queue_is_preallocated() {
        let b = bulkhead(r#"{"maxConcurrent": 1, "maxQueue": 37}"#);
        assert!(b.queue.capacity() >= 37);
    }

    #[test]
    fn admits_queues_then_rejects_and_hands_slots_over_in_order() {
        let mut b = bulkhead(r#"{"maxConcurrent": 2, "maxQueue": 2, "maxWait": 100}"#);
        assert!(b.try_enter(ms(0), None).is_admitted());
        assert!(b.try_enter(ms(0), None).is_admitted());
        let (t1, u1) = queued(b.try_enter(ms(1), None));
        let (t2, u2) = queued(b.try_enter(ms(2), Some(ms(50))));
        assert_eq!((u1, u2), (Some(ms(101)), Some(ms(50))));
        assert!(t1.get() < t2.get());
        assert_eq!(
            b.try_enter(ms(3), None),
            Entry::Rejected {
                reason: ErrorKind::BulkheadFull
            }
        );
        assert_eq!(b.poll_timeout(), Some(ms(50)));
        assert_eq!(b.release(ms(10)), Some(t1));
        assert_eq!(b.release(ms(10)), Some(t2));
        assert_eq!(b.release(ms(10)), None);
        assert_eq!((b.in_flight(), b.queued()), (1, 0));
        assert_eq!(
            drain(&mut b),
            vec![
                EventKind::Queued { ticket: t1.get() },
                EventKind::Queued { ticket: t2.get() },
                EventKind::Rejected {
                    reason: ErrorKind::BulkheadFull,
                    retry_after: None
                },
                EventKind::Woken { ticket: t1.get() },
                EventKind::Woken { ticket: t2.get() },
            ]
        );
        let m = b.metrics();
        assert_eq!(
            (m.admitted, m.woken, m.queued, m.rejected_full),
            (4, 2, 2, 1)
        );
    }

    #[test]
    fn zero_wait_or_queue_never_queues_and_past_budgets_time_out() {
        let mut b = bulkhead(r#"{"maxConcurrent": 1, "maxWait": 0}"#);
        assert!(b.try_enter(ms(0), None).is_admitted());
        assert_eq!(
            b.try_enter(ms(0), None),
            Entry::Rejected {
                reason: ErrorKind::BulkheadFull
            }
        );
        let mut b = bulkhead(r#"{"maxConcurrent": 1, "maxQueue": 0}"#);
        assert!(b.try_enter(ms(0), None).is_admitted());
        assert_eq!(
            b.try_enter(ms(0), None),
            Entry::Rejected {
                reason: ErrorKind::BulkheadFull
            }
        );
        let mut b = bulkhead(r#"{"maxConcurrent": 1}"#);
        assert!(
            b.try_enter(ms(10), Some(ms(5))).is_admitted(),
            "a free slot ignores the deadline"
        );
        assert_eq!(
            b.try_enter(ms(10), Some(ms(10))),
            Entry::Rejected {
                reason: ErrorKind::QueueTimeout
            }
        );
        assert_eq!(queued(b.try_enter(ms(10), None)).1, None);
        assert_eq!(b.poll_timeout(), None);
        assert_eq!(b.metrics().queue_timeouts, 1);
    }

    #[test]
    fn expired_waiters_are_skipped_dropped_and_collected() {
        let mut b = bulkhead(r#"{"maxConcurrent": 1, "maxQueue": 3}"#);
        assert!(b.try_enter(ms(0), None).is_admitted());
        let (a, _) = queued(b.try_enter(ms(0), Some(ms(30))));
        let (c, _) = queued(b.try_enter(ms(0), Some(ms(10))));
        let (d, _) = queued(b.try_enter(ms(0), Some(ms(50))));
        assert_eq!(b.poll_expired(ms(9)), None);
        assert_eq!(b.poll_expired(ms(10)), Some(c));
        assert_eq!(b.poll_expired(ms(10)), None);
        // `a` expired at 30; the slot goes to `d`.
        assert_eq!(b.release(ms(30)), Some(d));
        assert!(!b.cancel(a, ms(31), true), "a was dropped already");
        assert_eq!(b.metrics().queue_timeouts, 2);
        assert_eq!((b.in_flight(), b.queued()), (1, 0));
    }

    #[test]
    fn a_full_queue_of_expired_waiters_does_not_keep_a_live_call_out() {
        let mut b = bulkhead(r#"{"maxConcurrent": 1, "maxQueue": 2}"#);
        assert!(b.try_enter(ms(0), None).is_admitted());
        let (x, _) = queued(b.try_enter(ms(0), Some(ms(5))));
        let (y, _) = queued(b.try_enter(ms(0), None));
        let (z, _) = queued(b.try_enter(ms(5), None));
        assert!(!b.is_waiting(x) && b.is_waiting(y) && b.is_waiting(z));
        assert_eq!(b.metrics().queue_timeouts, 1);
    }

    #[test]
    fn cancel_counts_by_cause_and_never_frees_a_slot() {
        let mut b = bulkhead(r#"{"maxConcurrent": 1}"#);
        assert!(b.try_enter(ms(0), None).is_admitted());
        let (a, _) = queued(b.try_enter(ms(0), None));
        let (c, _) = queued(b.try_enter(ms(0), None));
        assert!(b.cancel(a, ms(1), false));
        assert!(!b.cancel(a, ms(1), false));
        assert!(b.cancel(c, ms(1), true));
        assert!(!b.cancel(Ticket::from_raw(999), ms(1), true));
        let m = b.metrics();
        assert_eq!(
            (m.cancelled, m.queue_timeouts, m.in_flight, m.queue_depth),
            (1, 1, 1, 0)
        );
        assert_eq!(b.release(ms(2)), None);
        assert_eq!(b.in_flight(), 0);
    }

    #[test]
    fn unmatched_release_is_ignored_and_counted() {
        let mut b = bulkhead("{}");
        assert_eq!(b.release(ms(0)), None);
        assert_eq!(b.in_flight(), 0);
        assert!(b.try_enter(ms(0), None).is_admitted());
        assert_eq!(b.release(ms(0)), None);
        assert_eq!(b.release(ms(0)), None);
        assert_eq!((b.in_flight(), b.metrics().unmatched_releases), (0, 2));
    }

    #[test]
    fn time_going_backwards_is_clamped() {
        let mut b = bulkhead(r#"{"maxConcurrent": 1, "maxWait": 100}"#);
        assert!(b.try_enter(ms(1000), None).is_admitted());
        let (t, until) = queued(b.try_enter(ms(10), None));
        assert_eq!(until, Some(ms(1100)), "maxWait counts from the clamped now");
        assert_eq!(b.poll_expired(ms(0)), None);
        assert_eq!(b.release(ms(5)), Some(t));
        assert!(drain(&mut b)
            .iter()
            .all(|k| !matches!(k, EventKind::Rejected { .. })));
    }

    #[test]
    fn reconfigure_wakes_into_new_slots_and_drains_without_revoking() {
        let mut b = bulkhead(r#"{"maxConcurrent": 2, "maxQueue": 5}"#);
        for _ in 0..2 {
            assert!(b.try_enter(ms(0), None).is_admitted());
        }
        let tickets: Vec<Ticket> = (0..4).map(|_| queued(b.try_enter(ms(0), None)).0).collect();
        let woken = b
            .reconfigure(BulkheadConfig::new(4, 5, None), ms(1))
            .unwrap();
        assert_eq!(woken, tickets[..2]);
        assert_eq!((b.in_flight(), b.queued()), (4, 2));
        // Shrink to 1 slot and a queue of 1: nobody is revoked or evicted.
        assert!(b
            .reconfigure(BulkheadConfig::new(1, 1, None), ms(2))
            .unwrap()
            .is_empty());
        assert_eq!((b.in_flight(), b.queued()), (4, 2));
        assert_eq!(
            b.try_enter(ms(2), None),
            Entry::Rejected {
                reason: ErrorKind::BulkheadFull
            }
        );
        for _ in 0..3 {
            assert_eq!(
                b.release(ms(3)),
                None,
                "draining to the new limit wakes nobody"
            );
        }
        assert_eq!(b.release(ms(3)), Some(tickets[2]));
        assert!(b
            .reconfigure(BulkheadConfig::new(0, 1, None), ms(4))
            .is_err());
        assert_eq!(
            b.config().max_concurrent,
            1,
            "a refused config leaves the old one"
        );
        let grown = b
            .reconfigure(BulkheadConfig::new(1, 500, None), ms(4))
            .unwrap();
        assert!(grown.is_empty() && b.queue.capacity() >= 500);
    }
}

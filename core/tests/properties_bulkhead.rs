//! Property tests of the bulkhead: random enter / release / cancel / expire (and, in the second
//! property, reconfigure) sequences at random, sometimes backwards, times, checked step by step
//! against a reference model of the queue and against invariants that hold whatever the model
//! says: in-flight never exceeds maxConcurrent, no slot is ever leaked, the queue never exceeds
//! maxQueue, waiters are woken in arrival order, and every queued call ends exactly once.

use std::collections::VecDeque;

use proptest::prelude::*;
use tripwire_core::bulkhead::{Bulkhead, BulkheadConfig, Entry, Ticket};
use tripwire_core::{ConfigDuration, ErrorKind, EventKind, Instant};

const MS: u64 = 1_000_000;

#[derive(Clone, Debug)]
enum Op {
    /// A call arrives; `deadline` is an offset in ms from the host's (unclamped) time.
    Enter { deadline: Option<i64> },
    /// One admitted call finishes (the model picks none when nothing is held: misuse).
    Release,
    /// The host abandons or times out the `pick`-th ticket ever issued (waiting or not).
    Cancel { pick: usize, timed_out: bool },
    /// The host's single timer fired: collect expired waiters until none is left.
    Expire,
    /// A new config (only in the reconfigure property).
    Reconfigure {
        max_concurrent: u32,
        max_queue: u32,
        max_wait: Option<u64>,
    },
}

#[derive(Clone, Debug)]
struct Step {
    /// Host clock change in ms; negative steps exercise the clamp.
    dt: i64,
    op: Op,
}

fn max_wait_strategy() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        Just(None),
        Just(Some(0)),
        Just(Some(10)),
        Just(Some(50)),
        Just(Some(100))
    ]
}

fn op_strategy(reconfigure: bool) -> BoxedStrategy<Op> {
    let base = prop_oneof![
        4 => proptest::option::weighted(0.6, -20i64..150).prop_map(|deadline| Op::Enter { deadline }),
        3 => Just(Op::Release),
        2 => (0usize..64, any::<bool>()).prop_map(|(pick, timed_out)| Op::Cancel { pick, timed_out }),
        1 => Just(Op::Expire),
    ];
    if reconfigure {
        prop_oneof![
            10 => base,
            1 => (1u32..5, 0u32..6, max_wait_strategy()).prop_map(|(max_concurrent, max_queue, max_wait)| {
                Op::Reconfigure { max_concurrent, max_queue, max_wait }
            }),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

fn steps_strategy(reconfigure: bool) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (
            prop_oneof![1 => -40i64..0, 4 => 0i64..40],
            op_strategy(reconfigure),
        )
            .prop_map(|(dt, op)| Step { dt, op }),
        1..120,
    )
}

fn config(max_concurrent: u32, max_queue: u32, max_wait: Option<u64>) -> BulkheadConfig {
    BulkheadConfig::new(
        max_concurrent,
        max_queue,
        max_wait.map(ConfigDuration::from_millis),
    )
}

/// The reference model: a count of holders and a FIFO of `(ticket, until)`.
struct Model {
    max_concurrent: u32,
    max_queue: u32,
    max_wait: Option<u64>,
    clock: u64,
    holders: u32,
    queue: VecDeque<(u64, Option<u64>)>,
    next_ticket: u64,
    events: Vec<EventKind>,
    entry_timeouts: u64,
}

impl Model {
    fn timeout_event() -> EventKind {
        EventKind::Rejected {
            reason: ErrorKind::QueueTimeout,
            retry_after: None,
        }
    }

    fn expired(until: Option<u64>, now: u64) -> bool {
        until.is_some_and(|u| u <= now)
    }

    fn enter(&mut self, deadline: Option<u64>) -> Entry {
        let now = self.clock;
        if self.holders < self.max_concurrent {
            self.holders += 1;
            return Entry::Admitted;
        }
        if self.queue.len() >= self.max_queue as usize {
            let before = self.queue.len();
            self.queue.retain(|&(_, u)| !Model::expired(u, now));
            for _ in self.queue.len()..before {
                self.events.push(Model::timeout_event());
            }
        }
        let may_wait = self.max_queue > 0 && self.max_wait != Some(0);
        if !may_wait || self.queue.len() >= self.max_queue as usize {
            self.events.push(EventKind::Rejected {
                reason: ErrorKind::BulkheadFull,
                retry_after: None,
            });
            return Entry::Rejected {
                reason: ErrorKind::BulkheadFull,
            };
        }
        let until = match (self.max_wait.map(|w| now + w * MS), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if Model::expired(until, now) {
            self.entry_timeouts += 1;
            self.events.push(Model::timeout_event());
            return Entry::Rejected {
                reason: ErrorKind::QueueTimeout,
            };
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queue.push_back((ticket, until));
        self.events.push(EventKind::Queued { ticket });
        Entry::Queued {
            ticket: Ticket::from_raw(ticket),
            until: until.map(Instant::from_nanos),
        }
    }

    fn wake_next(&mut self) -> Option<u64> {
        while self.holders < self.max_concurrent {
            let (ticket, until) = self.queue.pop_front()?;
            if Model::expired(until, self.clock) {
                self.events.push(Model::timeout_event());
                continue;
            }
            self.holders += 1;
            self.events.push(EventKind::Woken { ticket });
            return Some(ticket);
        }
        None
    }
}

/// Replays `steps` against the bulkhead and the model, failing on any difference or broken
/// invariant. `strict`: no reconfiguration happens, so the limits hold without exception.
fn replay(
    max_concurrent: u32,
    max_queue: u32,
    max_wait: Option<u64>,
    steps: &[Step],
    strict: bool,
) -> Result<(), TestCaseError> {
    let mut b = Bulkhead::new(config(max_concurrent, max_queue, max_wait)).unwrap();
    let mut m = Model {
        max_concurrent,
        max_queue,
        max_wait,
        clock: 0,
        holders: 0,
        queue: VecDeque::new(),
        next_ticket: 1,
        events: Vec::new(),
        entry_timeouts: 0,
    };
    let mut host: i64 = 0;
    let mut issued: Vec<Ticket> = Vec::new();
    let mut last_woken = 0u64;
    let mut releases = 0u64;
    let mut unmatched = 0u64;
    for (i, step) in steps.iter().enumerate() {
        host = (host + step.dt).max(0);
        let now_ns = host as u64 * MS;
        let now = Instant::from_nanos(now_ns);
        m.clock = m.clock.max(now_ns);
        let (in_flight_before, queued_before) = (b.in_flight(), b.queued());
        let mut woken_now: Vec<u64> = Vec::new();
        match &step.op {
            Op::Enter { deadline } => {
                let deadline = deadline.map(|d| (host + d).max(0) as u64 * MS);
                let got = b.try_enter(now, deadline.map(Instant::from_nanos));
                let want = m.enter(deadline);
                prop_assert_eq!(got, want, "step {}: enter", i);
                if let Entry::Queued { ticket, until } = got {
                    prop_assert!(until.is_none_or(|u| u > Instant::from_nanos(m.clock)));
                    issued.push(ticket);
                }
            }
            Op::Release => {
                let got = b.release(now);
                let want = if m.holders == 0 {
                    unmatched += 1;
                    None
                } else {
                    releases += 1;
                    m.holders -= 1;
                    m.wake_next()
                };
                prop_assert_eq!(got.map(Ticket::get), want, "step {}: release", i);
                woken_now.extend(got.map(Ticket::get));
            }
            Op::Cancel { pick, timed_out } => {
                // With nothing issued yet, ticket 0 (never issued) must be refused.
                let ticket = issued
                    .get(pick % issued.len().max(1))
                    .copied()
                    .unwrap_or(Ticket::from_raw(0));
                let got = b.cancel(ticket, now, *timed_out);
                let index = m.queue.iter().position(|&(t, _)| t == ticket.get());
                if let Some(index) = index {
                    m.queue.remove(index);
                    if *timed_out {
                        m.events.push(Model::timeout_event());
                    }
                }
                prop_assert_eq!(got, index.is_some(), "step {}: cancel", i);
                prop_assert!(!b.is_waiting(ticket));
            }
            Op::Expire => {
                let mut got = Vec::new();
                while let Some(t) = b.poll_expired(now) {
                    got.push(t.get());
                    prop_assert!(got.len() <= 64, "poll_expired never ends");
                }
                let clock = m.clock;
                let want: Vec<u64> = m
                    .queue
                    .iter()
                    .filter(|&&(_, u)| Model::expired(u, clock))
                    .map(|&(t, _)| t)
                    .collect();
                m.queue.retain(|&(_, u)| !Model::expired(u, clock));
                m.events.extend(want.iter().map(|_| Model::timeout_event()));
                prop_assert_eq!(got, want, "step {}: expired waiters, oldest first", i);
            }
            Op::Reconfigure {
                max_concurrent,
                max_queue,
                max_wait,
            } => {
                let got = b
                    .reconfigure(config(*max_concurrent, *max_queue, *max_wait), now)
                    .unwrap();
                m.max_concurrent = *max_concurrent;
                m.max_queue = *max_queue;
                m.max_wait = *max_wait;
                let mut want = Vec::new();
                while let Some(t) = m.wake_next() {
                    want.push(t);
                }
                let got: Vec<u64> = got.into_iter().map(Ticket::get).collect();
                prop_assert_eq!(&got, &want, "step {}: reconfigure wakes", i);
                woken_now.extend(got);
            }
        }

        // FIFO: every wake names a later arrival than the wake before it.
        for t in woken_now {
            prop_assert!(
                t > last_woken,
                "step {}: woke {} after {}",
                i,
                t,
                last_woken
            );
            last_woken = t;
        }

        // No slot leaked or conjured: in-flight is exactly the holders the model tracks.
        let metrics = b.metrics();
        prop_assert_eq!(b.in_flight(), m.holders, "step {}: in-flight", i);
        prop_assert_eq!(metrics.in_flight, u64::from(m.holders));
        prop_assert_eq!(
            metrics.admitted - releases,
            u64::from(b.in_flight()),
            "step {}: admitted - released",
            i
        );
        prop_assert_eq!(metrics.unmatched_releases, unmatched);

        // Bounds: in-flight and the queue stay under their limits, or (only after a
        // reconfiguration lowered a limit) never grow while above it.
        let cfg = b.config();
        if strict {
            prop_assert!(
                b.in_flight() <= cfg.max_concurrent,
                "step {}: in-flight over maxConcurrent",
                i
            );
            prop_assert!(
                b.queued() <= cfg.max_queue,
                "step {}: queue over maxQueue",
                i
            );
        }
        prop_assert!(
            b.in_flight() <= cfg.max_concurrent || b.in_flight() <= in_flight_before,
            "step {}: in-flight {} > maxConcurrent {}",
            i,
            b.in_flight(),
            cfg.max_concurrent
        );
        prop_assert!(
            b.queued() <= cfg.max_queue || b.queued() <= queued_before,
            "step {}: queue {} > maxQueue {}",
            i,
            b.queued(),
            cfg.max_queue
        );
        // Waiters exist only while every slot is taken: nobody waits beside a free slot.
        prop_assert!(
            b.queued() == 0 || b.in_flight() >= cfg.max_concurrent,
            "step {}: a waiter beside a free slot",
            i
        );

        // The queue is the model's queue, in the same order, with the same timers.
        prop_assert_eq!(b.queued() as usize, m.queue.len());
        prop_assert!(m
            .queue
            .iter()
            .all(|&(t, _)| b.is_waiting(Ticket::from_raw(t))));
        let next = m
            .queue
            .iter()
            .filter_map(|&(_, u)| u)
            .min()
            .map(Instant::from_nanos);
        prop_assert_eq!(b.poll_timeout(), next, "step {}: poll_timeout", i);

        // Every queued call ends exactly once: woken, cancelled, timed out, or still waiting.
        let waiting_timeouts = metrics.queue_timeouts - m.entry_timeouts;
        prop_assert_eq!(
            metrics.queued,
            metrics.woken + metrics.cancelled + waiting_timeouts + metrics.queue_depth,
            "step {}: queued calls conserved",
            i
        );

        // Events: exactly the model's, stamped with the clamped now.
        let events: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
        prop_assert!(
            events.iter().all(|e| e.at == Instant::from_nanos(m.clock)),
            "step {}: event times",
            i
        );
        let kinds: Vec<EventKind> = events.into_iter().map(|e| e.kind).collect();
        prop_assert_eq!(kinds, std::mem::take(&mut m.events), "step {}: events", i);
    }
    Ok(())
}

proptest! {
    #[test]
    fn bulkhead_matches_the_model_and_keeps_its_invariants(
        max_concurrent in 1u32..4,
        max_queue in 0u32..5,
        max_wait in max_wait_strategy(),
        steps in steps_strategy(false),
    ) {
        replay(max_concurrent, max_queue, max_wait, &steps, true)?;
    }

    #[test]
    fn reconfiguration_never_revokes_or_leaks(
        max_concurrent in 1u32..4,
        max_queue in 0u32..5,
        max_wait in max_wait_strategy(),
        steps in steps_strategy(true),
    ) {
        replay(max_concurrent, max_queue, max_wait, &steps, false)?;
    }
}

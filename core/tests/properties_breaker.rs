//! Circuit breaker invariants under arbitrary operation sequences, and the no-allocation
//! promise of the hot path (checked with a counting allocator).
//!
//! - An open breaker never admits before its open period has elapsed, rejects with exactly
//!   the time left, and each open period lasts `openDuration.nth(n)` for the model's n.
//! - In halfOpen no more than `permittedCalls` trial permits of one period are ever
//!   outstanding at once.
//! - Any sequence of instants (backwards, huge jumps, `u64::MAX`) and operations never panics
//!   and keeps the counters consistent.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use proptest::prelude::*;
use tripwire_core::breaker::{
    Admission, BreakerConfig, BreakerSnapshot, CircuitBreaker, Outcome, Permit, WindowSnapshot,
};
use tripwire_core::{BreakerState, EventKind, Instant};

// ---------------------------------------------------------------------------------------------
// A per-thread allocation counter, so tests running in parallel do not disturb each other.

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn note(bytes: usize) {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + bytes as u64));
}

// SAFETY: every method forwards to `System` unchanged; the counters are const-initialised
// thread-locals without destructors, which are safe to touch from inside the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes requested by `f` on this thread.
fn counting<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    let (a0, b0) = (ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get));
    let out = f();
    (
        out,
        ALLOCATIONS.with(Cell::get) - a0,
        BYTES.with(Cell::get) - b0,
    )
}

fn ms(v: u64) -> Instant {
    Instant::from_nanos(v * 1_000_000)
}

fn breaker(json: &str) -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig::from_json(json).unwrap()).unwrap()
}

#[test]
fn an_idle_consecutive_breaker_owns_one_shared_config_allocation() {
    let config = BreakerConfig::default();
    let (b, allocations, bytes) = counting(|| CircuitBreaker::new(config).unwrap());
    // The Arc's two counters plus the config; nothing else until the first event.
    assert_eq!(
        (allocations, bytes),
        (
            1,
            (2 * size_of::<usize>() + size_of::<BreakerConfig>()) as u64
        )
    );
    assert!(size_of::<CircuitBreaker>() <= 128);
    let shared = b.shared_config().clone();
    let (_keyed, allocations, _) = counting(|| {
        (0..100)
            .map(|_| CircuitBreaker::with_shared_config(shared.clone()).unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(
        allocations, 1,
        "100 keyed breakers share the config: only the Vec allocates"
    );
}

#[test]
fn window_buffers_are_allocated_once_at_construction() {
    let (_, allocations, _) =
        counting(|| breaker(r#"{"trip": {"failureRate": 0.5, "window": {"calls": 1000}}}"#));
    assert!(allocations >= 3, "config, window, bit buffer");
    let b = breaker(r#"{"trip": {"failureRate": 0.5, "window": {"calls": 1000}}}"#);
    assert_eq!(b.window_heap_bytes(), 56 + 16 * 1000usize.div_ceil(64));
    let b =
        breaker(r#"{"trip": {"failureRate": 0.5, "window": {"duration": "60s", "buckets": 60}}}"#);
    assert_eq!(b.window_heap_bytes(), 56 + 24 * 60);
}

/// Drive trips, rejections, half-open trials, closes and slow calls; the hot path must not
/// allocate once the event queue holds its buffer.
fn churn(b: &mut CircuitBreaker, rounds: u64) {
    let mut t = 1_000_000u64;
    for i in 0..rounds {
        t += 7;
        match b.try_acquire(ms(t)) {
            Admission::Admitted(p) => {
                let outcome = match i % 5 {
                    0 | 1 => Outcome::Failure,
                    2 => Outcome::Ignored,
                    _ => Outcome::Success,
                };
                if i % 11 == 0 {
                    b.release(p, ms(t + 3));
                } else {
                    b.record(p, outcome, ms(t + (i % 4) * 60));
                }
            }
            Admission::Rejected { .. } => t += 40,
        }
        while b.poll_event().is_some() {}
        let _ = b.poll_timeout();
        let _ = b.metrics();
    }
}

#[test]
fn acquire_and_record_do_not_allocate() {
    for json in [
        r#"{"trip": {"consecutiveFailures": 2}, "openDuration": 100, "halfOpen": {"permittedCalls": 2, "successThreshold": 2}}"#,
        r#"{"trip": {"failureRate": 0.4, "window": {"calls": 50}, "minimumCalls": 5, "slowCallRate": 0.5, "slowCallDuration": 100}, "openDuration": {"base": 50, "max": 400}}"#,
        r#"{"trip": {"failureRate": 0.4, "window": {"duration": "1s", "buckets": 10}, "minimumCalls": 5}, "openDuration": 100}"#,
    ] {
        let mut b = breaker(json);
        churn(&mut b, 200); // the event queue allocates its buffer here
        let m0 = b.metrics();
        let ((), allocations, _) = counting(|| churn(&mut b, 20_000));
        let m = b.metrics();
        assert!(
            m.transitions > m0.transitions + 100 && m.rejected > m0.rejected,
            "{json}: the churn must exercise every state"
        );
        assert_eq!(allocations, 0, "{json}");
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    Record(usize, u8),
    Release(usize),
    /// Move the host clock forward by this many ns.
    Advance(u64),
    /// Move the host clock backward by this many ns.
    Back(u64),
    /// Move the host clock to the breaker's `poll_timeout` plus this many ns (−1, 0, +1): the
    /// boundaries where an off-by-one would hide.
    ToTimeout(i8),
    ForceOpen,
    Disable,
    Reset,
    HandleTimeout,
}

enum OpKind {
    Clock,
    Permit,
    Other,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        6 => (any::<usize>(), 0u8..3).prop_map(|(i, o)| Op::Record(i, o)),
        1 => any::<usize>().prop_map(Op::Release),
        4 => (0u64..3_000_000_000).prop_map(Op::Advance),
        1 => (0u64..u64::MAX / 4).prop_map(Op::Advance),
        1 => (0u64..5_000_000_000).prop_map(Op::Back),
        2 => (-1i8..=1).prop_map(Op::ToTimeout),
        1 => prop_oneof![Just(Op::ForceOpen), Just(Op::Disable)],
        1 => Just(Op::Reset),
        1 => Just(Op::HandleTimeout),
    ]
}

fn config() -> impl Strategy<Value = String> {
    let trip = prop_oneof![
        (1u32..5).prop_map(|n| format!(r#"{{"consecutiveFailures": {n}}}"#)),
        (1u32..8, 0u32..8, 1u32..5, any::<bool>()).prop_map(|(calls, min, rate, slow)| {
            let min = min.min(calls).max(1);
            let slow = if slow { r#", "slowCallRate": 0.5, "slowCallDuration": 200"# } else { "" };
            format!(r#"{{"failureRate": {}, "window": {{"calls": {calls}}}, "minimumCalls": {min}{slow}}}"#, f64::from(rate) / 4.0)
        }),
        (1u64..10, 1u32..6, 1u32..5).prop_map(|(secs, buckets, min)| format!(
            r#"{{"failureRate": 0.5, "window": {{"duration": "{secs}s", "buckets": {buckets}}}, "minimumCalls": {min}, "slowCallRate": 1, "slowCallDuration": 500}}"#
        )),
    ];
    let open = prop_oneof![
        (1u64..3_000).prop_map(|d| d.to_string()),
        (1u64..1_000, 0usize..3, 1u64..6).prop_map(|(base, m, k)| {
            let multiplier = ["1", "1.5", "2"][m];
            format!(
                r#"{{"base": {base}, "multiplier": {multiplier}, "max": {}}}"#,
                base * k
            )
        }),
    ];
    (trip, open, 1u32..5, 1u32..5).prop_map(|(trip, open, permitted, threshold)| {
        format!(
            r#"{{"trip": {trip}, "openDuration": {open}, "halfOpen": {{"permittedCalls": {permitted}, "successThreshold": {threshold}}}}}"#
        )
    })
}

fn outcome(o: u8) -> Outcome {
    [Outcome::Success, Outcome::Failure, Outcome::Ignored][usize::from(o % 3)]
}

proptest! {
    /// The open period is honoured exactly, and half-open trials are bounded.
    #[test]
    fn open_is_never_cut_short_and_trials_are_bounded(json in config(), ops in prop::collection::vec(op(), 1..200)) {
        let config = BreakerConfig::from_json(&json).unwrap();
        let permitted = config.half_open.permitted_calls as usize;
        let open_duration = config.open_duration;
        let mut b = CircuitBreaker::new(config).unwrap();
        let mut now = 0u64;
        let mut seen = 0u64;
        let mut live: Vec<Permit> = Vec::new();
        let mut n = 1u32; // the model's open streak

        for op in ops {
            let op_kind = match op {
                Op::Advance(_) | Op::Back(_) | Op::ToTimeout(_) => OpKind::Clock,
                Op::Record(..) | Op::Release(_) => OpKind::Permit,
                _ => OpKind::Other,
            };
            let had_permit = !live.is_empty();
            match op {
                Op::Acquire => {
                    let eff = now.max(seen);
                    let before = b.state();
                    let until = b.poll_timeout();
                    let a = b.try_acquire(Instant::from_nanos(now));
                    match before {
                        BreakerState::Open => {
                            let until = until.unwrap().as_nanos();
                            if eff < until {
                                prop_assert_eq!(a, Admission::Rejected { retry_after: Some(Duration::from_nanos(until - eff)) });
                            } else {
                                prop_assert!(a.permit().is_some_and(|p| p.is_trial()), "{:?} at {} past {}", a, eff, until);
                                prop_assert_eq!(b.state(), BreakerState::HalfOpen);
                            }
                        }
                        BreakerState::ForcedOpen => prop_assert_eq!(a, Admission::Rejected { retry_after: None }),
                        BreakerState::Closed | BreakerState::Disabled => {
                            prop_assert!(a.permit().is_some_and(|p| !p.is_trial()));
                        }
                        BreakerState::HalfOpen => {
                            if a.is_admitted() {
                                prop_assert!(a.permit().unwrap().is_trial());
                            } else {
                                prop_assert_eq!(a, Admission::Rejected { retry_after: None });
                            }
                        }
                        other => prop_assert!(false, "unknown state {:?}", other),
                    }
                    if let Some(p) = a.permit() {
                        prop_assert_eq!(p.started().as_nanos(), eff);
                        live.push(p);
                        if p.is_trial() {
                            let outstanding = live.iter().filter(|q| q.is_trial() && q.generation() == p.generation()).count();
                            prop_assert!(outstanding <= permitted, "{} trials outstanding, {} permitted", outstanding, permitted);
                        }
                    }
                }
                Op::Record(i, o) if !live.is_empty() => {
                    let p = live.swap_remove(i % live.len());
                    b.record(p, outcome(o), Instant::from_nanos(now));
                }
                Op::Release(i) if !live.is_empty() => {
                    let p = live.swap_remove(i % live.len());
                    b.release(p, Instant::from_nanos(now));
                }
                Op::Record(..) | Op::Release(_) => {}
                Op::Advance(d) => now = now.saturating_add(d),
                Op::Back(d) => now = now.saturating_sub(d),
                Op::ToTimeout(delta) => {
                    if let Some(t) = b.poll_timeout() {
                        now = t.as_nanos().saturating_add_signed(i64::from(delta));
                    }
                }
                Op::ForceOpen => b.force_open(Instant::from_nanos(now)),
                Op::Disable => b.disable(Instant::from_nanos(now)),
                Op::Reset => b.reset(Instant::from_nanos(now)),
                Op::HandleTimeout => {
                    let due = b.poll_timeout().is_some_and(|u| u.as_nanos() <= now.max(seen));
                    b.handle_timeout(Instant::from_nanos(now));
                    if due {
                        prop_assert_eq!(b.state(), BreakerState::HalfOpen);
                    }
                }
            }
            // The breaker saw `now` only if the op reached it.
            let reached = match op_kind {
                OpKind::Clock => false,
                OpKind::Permit => had_permit,
                OpKind::Other => true,
            };
            if reached {
                seen = seen.max(now);
            }
            while let Some(e) = b.poll_event() {
                prop_assert_eq!(e.at.as_nanos(), seen, "events carry the clamped now");
                if let EventKind::StateChanged { from, to } = e.kind {
                    match to {
                        BreakerState::Closed => n = 1,
                        BreakerState::Open => {
                            if from == BreakerState::HalfOpen {
                                n = n.saturating_add(1);
                            } else {
                                prop_assert_eq!(from, BreakerState::Closed);
                                prop_assert_eq!(n, 1);
                            }
                            let expected = e.at.saturating_add(open_duration.nth(n));
                            prop_assert_eq!(b.poll_timeout(), Some(expected));
                            prop_assert_eq!(b.metrics().open_streak, u64::from(n));
                        }
                        _ => {}
                    }
                }
            }
            let m = b.metrics();
            if b.state() == BreakerState::HalfOpen {
                prop_assert!(m.half_open_in_flight as usize <= permitted);
            }
        }
    }

    /// Arbitrary instants, every operation, snapshots and reconfigurations: no panic, and the
    /// counters add up.
    #[test]
    fn arbitrary_time_never_panics(
        json in config(),
        other in config(),
        ops in prop::collection::vec((0u8..14, any::<u64>(), any::<usize>()), 1..150),
    ) {
        let mut b = breaker(&json);
        let mut live: Vec<Permit> = Vec::new();
        let (mut acquires, mut records) = (0u64, 0u64);
        for (kind, raw, i) in ops {
            // Mostly extreme instants: 0, u64::MAX, around them, and anything.
            let now = Instant::from_nanos(match raw % 5 {
                0 => 0,
                1 => u64::MAX - (raw >> 60),
                2 => raw >> 20,
                _ => raw,
            });
            match kind {
                0..=3 => {
                    acquires += 1;
                    if let Some(p) = b.try_acquire(now).permit() {
                        live.push(p);
                    }
                }
                4..=6 if !live.is_empty() => {
                    records += 1;
                    let p = live.swap_remove(i % live.len());
                    b.record(p, outcome(i as u8), now);
                }
                7 if !live.is_empty() => {
                    let p = live.swap_remove(i % live.len());
                    b.release(p, now);
                }
                8 => b.handle_timeout(now),
                9 => match i % 3 {
                    0 => b.force_open(now),
                    1 => b.disable(now),
                    _ => b.reset(now),
                },
                10 => {
                    let text = serde_json::to_string(&b.snapshot()).unwrap();
                    let snapshot: BreakerSnapshot = serde_json::from_str(&text).unwrap();
                    let mut fresh = CircuitBreaker::new(b.config().clone()).unwrap();
                    fresh.restore(&snapshot, now).unwrap();
                    prop_assert_eq!(fresh.state(), b.state());
                    prop_assert_eq!(fresh.poll_timeout().is_some(), b.poll_timeout().is_some());
                    let held = fresh.metrics().window_calls;
                    match &snapshot.window {
                        Some(WindowSnapshot::Calls { outcomes, .. }) => prop_assert_eq!(held, outcomes.len() as u64),
                        // Restored near the origin, buckets older than the origin are dropped.
                        Some(WindowSnapshot::Time { recent, .. }) => prop_assert!(held <= recent.iter().map(|r| r[1]).sum::<u64>()),
                        Some(_) => prop_assert!(false, "unknown window snapshot"),
                        None => prop_assert_eq!(held, 0),
                    }
                    b.restore(&snapshot, now).unwrap();
                }
                11 => {
                    let next = if i % 2 == 0 { &other } else { &json };
                    b.reconfigure(BreakerConfig::from_json(next).unwrap(), now).unwrap();
                }
                12 => {
                    let _ = b.is_idle(now);
                    let _ = b.poll_timeout();
                }
                _ => {}
            }
            while b.poll_event().is_some() {}
            let m = b.metrics();
            prop_assert_eq!(m.admitted + m.rejected, acquires);
            prop_assert_eq!(m.successes + m.failures + m.ignored, records);
            prop_assert!(m.window_failures <= m.window_calls && m.window_slow_calls <= m.window_calls);
        }
    }
}

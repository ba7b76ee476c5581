//! The hot paths allocate nothing: a counting global allocator watches them after warm-up.
//! (Memory budgets are asserted here too.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tripwire_core::breaker::{Admission, BreakerConfig, CircuitBreaker, Outcome};
use tripwire_core::bulkhead::{Bulkhead, BulkheadConfig, Entry};
use tripwire_core::pipeline::{Pipeline, Report, Step};
use tripwire_core::rate_limit::{RateLimitConfig, RateLimiter};
use tripwire_core::retry::{FailureInfo, Retry, RetryConfig};
use tripwire_core::{Instant, Rng};

struct Counting;

thread_local! {
    // Per thread: the test harness allocates on its own threads while a test runs.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    ALLOCS.with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(mut f: impl FnMut(u64)) -> u64 {
    // Warm up so lazily grown buffers reach their steady size.
    for i in 0..1000 {
        f(i);
    }
    let before = ALLOCS.with(Cell::get);
    for i in 1000..11_000 {
        f(i);
    }
    ALLOCS.with(Cell::get) - before
}

fn t(i: u64) -> Instant {
    Instant::from_nanos(1_000_000_000 + i * 1_000)
}

#[test]
fn hot_paths_do_not_allocate() {
    let mut breaker = CircuitBreaker::new(BreakerConfig::default()).unwrap();
    let n = allocations_in(|i| {
        if let Admission::Admitted(p) = breaker.try_acquire(t(i)) {
            breaker.record(p, Outcome::Success, t(i));
        }
    });
    assert_eq!(n, 0, "breaker acquire + record allocated");

    let rate = BreakerConfig::from_json(
        r#"{"trip": {"failureRate": 0.5, "window": {"duration": "10s", "buckets": 10}, "minimumCalls": 5}}"#,
    )
    .unwrap();
    let mut breaker = CircuitBreaker::new(rate).unwrap();
    let n = allocations_in(|i| {
        if let Admission::Admitted(p) = breaker.try_acquire(t(i)) {
            let o = if i % 3 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            breaker.record(p, o, t(i));
        }
        while breaker.poll_event().is_some() {}
    });
    assert_eq!(n, 0, "time-window breaker allocated");

    for algo in ["tokenBucket", "gcra", "fixedWindow", "slidingWindow"] {
        let cfg = RateLimitConfig::from_json(&format!(
            r#"{{"algorithm": "{algo}", "rate": "1000/s", "burst": 10}}"#
        ))
        .unwrap();
        let mut limiter = RateLimiter::new(cfg).unwrap();
        let n = allocations_in(|i| {
            let _ = limiter.check(t(i), 1);
            while limiter.poll_event().is_some() {}
        });
        assert_eq!(n, 0, "{algo} check allocated");
    }

    let mut bulkhead = Bulkhead::new(BulkheadConfig::default()).unwrap();
    let n = allocations_in(|i| {
        if let Entry::Admitted = bulkhead.try_enter(t(i), None) {
            let _ = bulkhead.release(t(i));
        }
    });
    assert_eq!(n, 0, "bulkhead enter + release allocated");

    let mut retry = Retry::new(RetryConfig::default()).unwrap();
    let mut rng = Rng::new(1);
    let n = allocations_in(|i| {
        let mut state = retry.start(t(i));
        let _ = retry.begin_attempt(&mut state);
        let _ = retry.on_failure(
            &mut state,
            FailureInfo {
                retryable: true,
                retry_after: None,
            },
            t(i),
            None,
            &mut rng,
        );
        retry.on_success(&state);
    });
    assert_eq!(n, 0, "retry decision allocated");

    let mut pipeline = Pipeline::from_json(
        r#"{"bulkhead": {"maxConcurrent": 10}, "circuitBreaker": {}, "retry": {}, "timeout": {"perAttempt": "1s"}}"#,
        1,
    )
    .unwrap();
    let n = allocations_in(|i| {
        let call = pipeline.begin(t(i), None);
        let step = pipeline.poll(call, t(i)).unwrap();
        assert!(matches!(step, Step::Attempt { .. }));
        pipeline.report(call, Report::SUCCESS, t(i)).unwrap();
        assert!(matches!(
            pipeline.poll(call, t(i)).unwrap(),
            Step::Done { .. }
        ));
    });
    assert_eq!(n, 0, "a whole pipeline call allocated");
}

#[test]
fn an_idle_consecutive_failure_breaker_fits_in_128_bytes() {
    assert!(
        std::mem::size_of::<CircuitBreaker>() <= 128,
        "{}",
        std::mem::size_of::<CircuitBreaker>()
    );
}

//! Attacker-chosen keys: a flood of distinct keys (one per "client IP") through a keyed rate
//! limiter and a keyed pipeline bounded at `maxKeys` = 10 000, while a hundred victim keys are
//! kept limited (and, in the pipeline, half of them with their breaker open).
//!
//! - the map never holds more than `maxKeys` keys;
//! - a victim is never evicted while it is busy (limited, owing tokens, or open), however many
//!   new keys arrive: cycling through fresh keys cannot reset anyone's limit or breaker;
//! - the flood itself is served (attacker keys turn idle and make room), not refused wholesale;
//! - the heap held per key is measured with a counting allocator and printed (and bounded, so
//!   a regression in the per-key layout fails here).
//!
//! Size: 10^6 flood keys, about 7 s for both tests in a debug build on a busy 2-core machine
//! (under a second in release). `TRIPWIRE_FLOOD_KEYS=<n>` sets another size (it must exceed
//! `maxKeys` for the table to fill).
//!
//! Bytes per key are the bytes *requested* from the allocator (the allocator's own per-block
//! overhead comes on top), measured from the moment the victims are set up to the moment the
//! table first holds `maxKeys` keys, divided by the keys added in between.

// The measured bytes per key are part of this test's output (`--nocapture` shows them).
#![allow(clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tripwire_core::pipeline::{Pipeline, Report, Step};
use tripwire_core::{
    BreakerState, ErrorKind, Instant, KeyedRateLimitConfig, KeyedRateLimiter, RateDecision,
    RateLimitConfig,
};

// ---------------------------------------------------------------------------------------------
// Live heap bytes of this thread (tests run on their own threads, so they do not disturb each
// other's figures; everything measured here is allocated and freed on the test's thread).

struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    let _ = LIVE.try_with(|c| c.set(c.get() + delta));
}

// SAFETY: every method forwards to `System` unchanged; the counter is a const-initialised
// thread-local without a destructor, which is safe to touch from inside the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> i64 {
    LIVE.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------

const MAX_KEYS: usize = 10_000;
const VICTIMS: usize = 100;
/// How often the victims are checked (and drained again), in flood keys.
const CHECK_EVERY: usize = 2_000;
/// Host time per flood key: 10^6 keys span one simulated second.
const STEP_NS: u64 = 1_000;

fn flood_size() -> usize {
    std::env::var("TRIPWIRE_FLOOD_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A client address, as a per-IP limiter would be keyed: `198.a.b.c`.
fn attacker(i: usize) -> String {
    format!("198.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn victim(i: usize) -> String {
    format!("victim-{i}")
}

/// 1000/s with a burst of 10: a key that spent one unit is busy for 1 ms (1 000 flood keys),
/// one that spent its burst for 10 ms.
const LIMIT: &str = r#"{"rate": "1000/s", "burst": 10}"#;

#[test]
fn a_flood_of_keys_never_grows_the_limiter_past_max_keys_nor_evicts_a_limited_key() {
    let n = flood_size();
    let config = KeyedRateLimitConfig::new(RateLimitConfig::from_json(LIMIT).unwrap())
        .with_max_keys(MAX_KEYS as u32)
        .with_idle_expiry(None);
    let mut k = KeyedRateLimiter::new(config, 0x5eed).unwrap();
    let mut t = 0u64;
    let at = |t: u64| Instant::from_nanos(t);

    // Drain every victim: a cost-1 check fails for the next millisecond at least.
    let drain = |k: &mut KeyedRateLimiter, t: u64| {
        for v in 0..VICTIMS {
            let key = victim(v);
            let mut spent = 0;
            while k.check(&key, at(t), 1).is_allowed() {
                spent += 1;
                assert!(
                    spent <= 10,
                    "victim {v}: more than the burst admitted at once"
                );
            }
            assert!(k.is_limited(&key, at(t)));
        }
    };
    drain(&mut k, t);
    // Measured from here: the flood keys alone (the victims' keys are already held).
    let (base, keys_at_base) = (live_bytes(), k.keys());

    let (mut allowed, mut refused) = (0usize, 0usize);
    let mut peak = 0usize;
    let mut bytes_at_full = None;
    for i in 0..n {
        t += STEP_NS;
        match k.check(&attacker(i), at(t), 1) {
            RateDecision::Allowed => allowed += 1,
            _ => refused += 1,
        }
        let keys = k.keys();
        assert!(keys <= MAX_KEYS, "{keys} keys after {i} flood keys");
        peak = peak.max(keys);
        if keys == MAX_KEYS && bytes_at_full.is_none() {
            bytes_at_full = Some((live_bytes() - base, k.heap_bytes()));
        }
        if i % CHECK_EVERY == CHECK_EVERY - 1 {
            for v in 0..VICTIMS {
                let key = victim(v);
                assert!(k.contains(&key), "victim {v} evicted after {i} flood keys");
                // Spent 10 at most 2 ms ago: still owing tokens, so not idle.
                assert!(!k.is_idle(&key, at(t)), "victim {v} refilled already?");
            }
            drain(&mut k, t);
        }
    }
    assert_eq!(peak, MAX_KEYS, "the flood fills the table");
    assert_eq!(allowed + refused, n);
    // Flood keys turn idle after 1 ms, so the table always has room: nothing is refused.
    assert_eq!(
        refused, 0,
        "the flood was refused instead of recycling idle keys"
    );
    let m = k.metrics();
    assert_eq!(m.table_full, 0);
    assert!(m.evicted as usize >= n - MAX_KEYS, "{m:?}");

    let (measured, estimate) = bytes_at_full.expect("the table filled up");
    let per_key = measured as f64 / (MAX_KEYS - keys_at_base) as f64;
    println!(
        "keyed limiter (tokenBucket, keys like \"198.1.2.3\"): {per_key:.1} heap bytes per key \
         measured, {:.1} estimated by heap_bytes(), slot {} B; {n} keys flooded, {} evicted",
        estimate as f64 / MAX_KEYS as f64,
        k.slot_size(),
        m.evicted,
    );
    // DESIGN.md §6: 100k keyed limiters in <= 16 MB, i.e. <= 167 bytes per key.
    assert!(per_key <= 167.0, "{per_key} bytes per key");
}

#[test]
fn a_flood_of_keys_never_grows_a_keyed_pipeline_past_max_keys_nor_evicts_an_open_breaker() {
    let n = flood_size();
    let config = format!(
        r#"{{"rateLimit": {LIMIT},
            "circuitBreaker": {{"trip": {{"consecutiveFailures": 1}}, "openDuration": "1h"}},
            "keyed": {{"maxKeys": {MAX_KEYS}, "idleExpiry": null}}}}"#
    );
    let mut p = Pipeline::from_json(&config, 0x5eed).unwrap();
    let mut t = 1_000_000_000u64;
    let at = |t: u64| Instant::from_nanos(t);

    // One call for `key`: run the attempt to `report`, or return how it failed.
    let call = |p: &mut Pipeline, key: &str, t: u64, report: Report| -> Option<ErrorKind> {
        let c = p.begin_keyed(key, at(t), None);
        loop {
            match p.poll(c, at(t)).unwrap() {
                Step::Attempt { .. } => p.report(c, report, at(t)).unwrap(),
                Step::Done { .. } => return None,
                Step::Fail(f) => return Some(f.kind),
                other => panic!("{key}: unexpected {other:?}"),
            }
        }
    };

    // Even victims: their breaker opens (for an hour). Odd ones: their limiter is drained.
    let limit_victims = |p: &mut Pipeline, t: u64| {
        for v in (1..VICTIMS).step_by(2) {
            while call(p, &victim(v), t, Report::SUCCESS) != Some(ErrorKind::RateLimited) {}
        }
    };
    for v in (0..VICTIMS).step_by(2) {
        assert_eq!(
            call(&mut p, &victim(v), t, Report::failure(false, None)),
            Some(ErrorKind::Failure)
        );
        assert_eq!(
            p.keyed_breaker(&victim(v)).unwrap().state(),
            BreakerState::Open
        );
    }
    limit_victims(&mut p, t);
    while p.poll_event().is_some() {}
    let (base, keys_at_base) = (live_bytes(), p.keys().unwrap());

    let mut peak = 0usize;
    let mut bytes_at_full = None;
    let mut failed = 0usize;
    for i in 0..n {
        t += STEP_NS;
        if call(&mut p, &attacker(i), t, Report::SUCCESS).is_some() {
            failed += 1;
        }
        let keys = p.keys().unwrap();
        assert!(keys <= MAX_KEYS, "{keys} keys after {i} flood keys");
        peak = peak.max(keys);
        if keys == MAX_KEYS && bytes_at_full.is_none() {
            bytes_at_full = Some(live_bytes() - base);
        }
        if i % CHECK_EVERY == CHECK_EVERY - 1 {
            while p.poll_event().is_some() {}
            for v in (0..VICTIMS).step_by(2) {
                let b = p
                    .keyed_breaker(&victim(v))
                    .unwrap_or_else(|| panic!("victim {v} (open) evicted after {i} keys"));
                assert_eq!(b.state(), BreakerState::Open);
            }
            for v in (1..VICTIMS).step_by(2) {
                assert!(
                    p.keyed_breaker(&victim(v)).is_some(),
                    "victim {v} (limited) evicted after {i} keys"
                );
            }
            limit_victims(&mut p, t);
        }
    }
    while p.poll_event().is_some() {}
    assert_eq!(peak, MAX_KEYS);
    assert_eq!(
        failed, 0,
        "flood calls failed instead of recycling idle keys"
    );
    // An open victim still fails fast: its breaker was never reset by eviction.
    assert_eq!(
        call(&mut p, &victim(0), t, Report::SUCCESS),
        Some(ErrorKind::CircuitOpen)
    );
    let s = p.stats();
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.keys, Some(MAX_KEYS as u64));

    let per_key =
        bytes_at_full.expect("the map filled up") as f64 / (MAX_KEYS - keys_at_base) as f64;
    println!(
        "keyed pipeline (breaker + tokenBucket per key, keys like \"198.1.2.3\"): \
         {per_key:.1} heap bytes per key measured; {n} keys flooded"
    );
    // A breaker (128 B inline, config shared), a limiter (its config, parameters and state on
    // the heap: three small allocations per key) and the map's own share.
    assert!(per_key <= 600.0, "{per_key} bytes per key");
}

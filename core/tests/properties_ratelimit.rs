//! Property tests of the rate limiters and the keyed map.
//!
//! The bounds proved (in the admission times calls really run, `t + wait`), for a span
//! `[t0, t1]` between two admissions, `T = t1 − t0`, rate `L/P`, burst `B`, window
//! `W = ⌈B·P/L⌉`:
//!
//! - token bucket, GCRA: admitted cost `≤ B + (L/P)·T`. GCRA's interval is rounded up, which
//!   only tightens it. Proof sketch (GCRA): admission `i` at `aᵢ ≥ TATᵢ − τ` leaves
//!   `TATᵢ ≥ aᵢ + cᵢ·I`; the TAT grows by `c·I` per admission, so
//!   `Σc·I ≤ TATⱼ − TATᵢ + cᵢ·I ≤ (t1 + τ) − t0`. The bucket is the same argument in units.
//! - sliding window: admitted cost `≤ B + (B/W)·T ≤ B + (L/P)·T`. Each window's own count is at
//!   most `B`, and where a span covers the tail of window k−1 and the head of window k up to
//!   offset e, the last admission in k satisfied `prev·(W − e)/W + curr ≤ B`, so
//!   `tail + head ≤ prev + B − prev·(W − e)/W ≤ B + (B/W)·e`; chaining windows adds `B` per
//!   full window crossed, `B = (B/W)·W`.
//! - fixed window: admitted cost `≤ B·(⌊t1/W⌋ − ⌊t0/W⌋ + 1)`, at most `2·B + (L/P)·T`: one
//!   extra burst across a boundary (the vector `ratelimit-fixed-window-boundary` reaches it).

use std::time::Duration;

use proptest::prelude::*;
use tripwire_core::keyed::{Keyed, KeyedState};
use tripwire_core::{
    Algorithm, Instant, KeyedRateLimitConfig, KeyedRateLimiter, LimitConfig, Rate, RateDecision,
    RateLimitConfig, RateLimiter,
};

#[derive(Clone, Copy, Debug)]
struct Cfg {
    algorithm: Algorithm,
    limit: u64,
    period: u64,
    burst: u64,
    max_wait: u64,
}

impl Cfg {
    fn limit_config(&self) -> LimitConfig {
        LimitConfig::new(Rate::new(self.limit, Duration::from_nanos(self.period)).unwrap())
            .with_algorithm(self.algorithm)
            .with_burst(self.burst)
            .with_max_wait(Duration::from_nanos(self.max_wait))
    }

    fn window(&self) -> u128 {
        (u128::from(self.burst) * u128::from(self.period)).div_ceil(u128::from(self.limit))
    }

    /// Whether admitting `sum` over a span `[t0, t1]` respects this limit's bound.
    fn within_bound(&self, sum: u128, t0: u64, t1: u64) -> bool {
        let (b, l, p, span) = (
            u128::from(self.burst),
            u128::from(self.limit),
            u128::from(self.period),
            u128::from(t1 - t0),
        );
        match self.algorithm {
            Algorithm::TokenBucket | Algorithm::Gcra => sum * p <= b * p + l * span,
            Algorithm::SlidingWindow => {
                let w = self.window();
                sum * w <= b * w + b * span
            }
            Algorithm::FixedWindow => {
                let w = self.window();
                let windows = u128::from(t1) / w - u128::from(t0) / w + 1;
                sum <= b * windows && sum * p <= 2 * b * p + l * span
            }
            _ => unreachable!(),
        }
    }
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::TokenBucket),
        Just(Algorithm::Gcra),
        Just(Algorithm::FixedWindow),
        Just(Algorithm::SlidingWindow),
    ]
}

/// Realistic configs with awkward numbers: periods that are not multiples of the limit, small
/// bursts, and waits from none to a few periods.
fn cfg(algorithm: impl Strategy<Value = Algorithm>) -> impl Strategy<Value = Cfg> {
    (
        algorithm,
        1u64..=50,
        prop_oneof![1u64..=2_000, Just(1_000)],
        0u64..=999_999,
        1u64..=20,
        0u64..=3,
    )
        .prop_flat_map(|(algorithm, limit, period_ms, extra_ns, burst, waits)| {
            let period = period_ms * 1_000_000 + extra_ns;
            (
                Just(Cfg {
                    algorithm,
                    limit,
                    period,
                    burst,
                    max_wait: 0,
                }),
                prop_oneof![Just(0u64), 0..=waits * period],
            )
        })
        .prop_map(|(mut c, max_wait)| {
            c.max_wait = max_wait;
            c
        })
}

/// `(time step, cost)` pairs, the steps scaled to the config's period.
fn ops(max_cost: u64, period: u64) -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0..=period / 4, 0..=period * 2],
            prop_oneof![Just(1u64), 0..=max_cost + 2],
        ),
        1..60,
    )
}

/// Drive `l` and return the admissions as `(time it runs, cost)`, checking on the way that every
/// `retryAfter` and every wait is exact: one nanosecond earlier the same check would not go at
/// once, at that instant it would.
fn drive(
    l: &mut RateLimiter,
    ops: &[(u64, u64)],
    burst: u64,
) -> Result<Vec<(u64, u64)>, TestCaseError> {
    let mut t = 0u64;
    let mut admitted = Vec::new();
    for &(dt, cost) in ops {
        t += dt;
        let before = l.clone();
        let d = l.check(Instant::from_nanos(t), cost);
        let exact_after = match d {
            RateDecision::Allowed => {
                admitted.push((t, cost));
                None
            }
            RateDecision::Wait(w) => {
                let w = u64::try_from(w.as_nanos()).unwrap();
                prop_assert!(w > 0);
                admitted.push((t + w, cost));
                Some(w)
            }
            RateDecision::Denied { retry_after: None } => {
                prop_assert!(
                    cost > burst,
                    "never-passes for cost {cost} <= burst {burst}"
                );
                None
            }
            RateDecision::Denied {
                retry_after: Some(r),
            } => {
                prop_assert!(cost <= burst);
                Some(u64::try_from(r.as_nanos()).unwrap())
            }
            _ => unreachable!(),
        };
        if let Some(w) = exact_after {
            prop_assert_ne!(
                before.clone().check(Instant::from_nanos(t + w - 1), cost),
                RateDecision::Allowed
            );
            prop_assert_eq!(
                before.clone().check(Instant::from_nanos(t + w), cost),
                RateDecision::Allowed
            );
        }
    }
    Ok(admitted)
}

/// Every contiguous run of admissions (sorted by the time they run) within the bound.
fn assert_bound(c: &Cfg, admitted: &[(u64, u64)]) -> Result<(), TestCaseError> {
    let mut sorted = admitted.to_vec();
    sorted.sort_by_key(|a| a.0);
    for i in 0..sorted.len() {
        let mut sum = 0u128;
        for j in i..sorted.len() {
            sum += u128::from(sorted[j].1);
            prop_assert!(
                c.within_bound(sum, sorted[i].0, sorted[j].0),
                "{c:?}: {sum} admitted in [{}, {}]",
                sorted[i].0,
                sorted[j].0
            );
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn token_bucket_and_gcra_never_exceed_burst_plus_rate_times_span(
        (c, ops) in cfg(prop_oneof![Just(Algorithm::TokenBucket), Just(Algorithm::Gcra)])
            .prop_flat_map(|c| (Just(c), ops(c.burst, c.period)))
    ) {
        let mut l = RateLimiter::new(RateLimitConfig::single(c.limit_config())).unwrap();
        let admitted = drive(&mut l, &ops, c.burst)?;
        // Reservations keep their order: calls run in the order they were admitted.
        prop_assert!(admitted.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_bound(&c, &admitted)?;
    }

    #[test]
    fn sliding_window_never_exceeds_burst_plus_rate_times_span(
        (c, ops) in cfg(Just(Algorithm::SlidingWindow)).prop_flat_map(|c| (Just(c), ops(c.burst, c.period)))
    ) {
        let mut l = RateLimiter::new(RateLimitConfig::single(c.limit_config())).unwrap();
        let admitted = drive(&mut l, &ops, c.burst)?;
        prop_assert!(admitted.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_bound(&c, &admitted)?;
    }

    #[test]
    fn fixed_window_never_exceeds_burst_per_window_touched(
        (c, ops) in cfg(Just(Algorithm::FixedWindow)).prop_flat_map(|c| (Just(c), ops(c.burst, c.period)))
    ) {
        let mut l = RateLimiter::new(RateLimitConfig::single(c.limit_config())).unwrap();
        let admitted = drive(&mut l, &ops, c.burst)?;
        prop_assert!(admitted.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_bound(&c, &admitted)?;
    }

    #[test]
    fn with_several_limits_each_limit_keeps_its_own_bound(
        (a, b, ops) in (cfg(algorithm()), cfg(algorithm()))
            .prop_flat_map(|(a, b)| (Just(a), Just(b), ops(a.burst.max(b.burst), a.period.max(b.period))))
    ) {
        let config = RateLimitConfig::all(vec![a.limit_config(), b.limit_config()]);
        let mut l = RateLimiter::new(config).unwrap();
        let admitted = drive(&mut l, &ops, a.burst.min(b.burst))?;
        assert_bound(&a, &admitted)?;
        assert_bound(&b, &admitted)?;
    }

    #[test]
    fn a_new_or_idle_limiter_admits_exactly_burst_at_one_instant(
        c in cfg(algorithm()), start in 0u64..=10_000_000_000, ops in ops(20, 1_000_000_000)
    ) {
        let mut l = RateLimiter::new(RateLimitConfig::single(c.limit_config())).unwrap();
        let mut t = start;
        for &(dt, cost) in &ops {
            t += dt;
            let _ = l.check(Instant::from_nanos(t), cost);
        }
        // Jump far enough for every algorithm to be full again: two windows, or a whole refill.
        let idle = t + 2 * u64::try_from(c.window()).unwrap() + c.max_wait + c.period * c.burst + 1;
        for at in [start, idle] {
            let mut fresh = if at == start {
                RateLimiter::new(RateLimitConfig::single(c.limit_config())).unwrap()
            } else {
                prop_assert!(l.is_idle(Instant::from_nanos(at)));
                l.clone()
            };
            let now = Instant::from_nanos(at);
            for _ in 0..c.burst {
                prop_assert_eq!(fresh.check(now, 1), RateDecision::Allowed);
            }
            prop_assert_ne!(fresh.check(now, 1), RateDecision::Allowed);
            prop_assert!(fresh.is_limited(now));
        }
    }

    #[test]
    fn time_going_backwards_behaves_as_the_latest_instant_seen(
        c in cfg(algorithm()), steps in prop::collection::vec((0u64..=4_000_000_000, 0u64..=22), 1..60)
    ) {
        let mut raw = RateLimiter::new(RateLimitConfig::single(c.limit_config())).unwrap();
        let mut clamped = raw.clone();
        let mut latest = 0;
        for &(t, cost) in &steps {
            latest = latest.max(t);
            prop_assert_eq!(raw.check(Instant::from_nanos(t), cost), clamped.check(Instant::from_nanos(latest), cost));
        }
        prop_assert_eq!(raw.metrics(), clamped.metrics());
    }

    #[test]
    fn arbitrary_times_costs_and_configs_never_panic(
        a in (algorithm(), 1u64..=u64::MAX, 1u64..=u64::MAX, prop::option::of(0u64..=u64::MAX), 0u64..=u64::MAX),
        b in (algorithm(), 1u64..=u64::MAX, 1u64..=u64::MAX, prop::option::of(0u64..=u64::MAX), 0u64..=u64::MAX),
        steps in prop::collection::vec((any::<u64>(), any::<u64>(), 0u8..8), 1..40),
    ) {
        let make = |(algorithm, limit, period, burst, max_wait): (Algorithm, u64, u64, Option<u64>, u64)| {
            let mut l = LimitConfig::new(Rate::new(limit, Duration::from_nanos(period)).unwrap())
                .with_algorithm(algorithm)
                .with_max_wait(Duration::from_nanos(max_wait % 3_153_600_000_000_000_000));
            if let Some(burst) = burst {
                l = l.with_burst(burst);
            }
            l
        };
        let (la, lb) = (make(a), make(b));
        let Ok(mut l) = RateLimiter::new(RateLimitConfig::single(la)) else { return Ok(()) };
        let mut k = KeyedRateLimiter::new(
            KeyedRateLimitConfig::new(RateLimitConfig::single(la)).with_max_keys(3),
            5,
        ).unwrap();
        // The longest wait the limiter's current config allows: `a`'s, and after a reconfigure
        // that took `b`, either's (found by a random seed: a wait `b` allows is no bug).
        let mut max_wait = a.4;
        for &(t, cost, op) in &steps {
            let now = Instant::from_nanos(t);
            let d = l.check(now, cost);
            if let RateDecision::Wait(w) = d {
                prop_assert!(w.as_nanos() <= u128::from(max_wait));
            }
            let _ = (l.peek(now, cost), l.is_idle(now), l.is_limited(now), l.available(now), l.metrics());
            let _ = k.check(&format!("k{}", cost % 5), now, cost % 4);
            prop_assert!(k.keys() <= 3);
            let reconfigured = match op {
                0 => l.reconfigure(RateLimitConfig::all(vec![lb, la]), now).is_ok(),
                1 => l.reconfigure(RateLimitConfig::single(lb), now).is_ok(),
                2 => { let _ = k.reconfigure(KeyedRateLimitConfig::new(RateLimitConfig::all(vec![la, lb])).with_max_keys(2), now); false }
                3 => { let _ = k.sweep(now); false }
                _ => false,
            };
            if reconfigured {
                max_wait = a.4.max(b.4);
            }
            while l.poll_event().is_some() {}
            while k.poll_event().is_some() {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The keyed map
// ---------------------------------------------------------------------------------------------

/// Busy until `until` (exclusive).
#[derive(Clone, Copy, Debug)]
struct Busy {
    until: u64,
}

impl KeyedState for Busy {
    fn is_idle(&self, now: Instant) -> bool {
        now.as_nanos() >= self.until
    }
    fn idle_at(&self) -> Option<Instant> {
        Some(Instant::from_nanos(self.until))
    }
}

const KEYS: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];

proptest! {
    #[test]
    fn keyed_map_stays_bounded_and_never_evicts_a_busy_entry(
        max_keys in 0usize..=6,
        expiry in prop::option::of(0u64..=50),
        ops in prop::collection::vec((0usize..12, 0u64..=20, 0u64..=60, 0u8..10), 1..120),
    ) {
        let mut k: Keyed<Busy> = Keyed::new(max_keys, expiry.map(Duration::from_nanos), 11);
        let mut t = 0u64;
        for &(key, dt, busy_for, op) in &ops {
            t += dt;
            let now = Instant::from_nanos(t);
            let busy_before: Vec<&str> =
                KEYS.iter().copied().filter(|key| k.get(key).is_some_and(|v| !v.is_idle(now))).collect();
            let was_there = k.contains_key(KEYS[key]);
            match op {
                0 => { k.sweep(now); }
                1 => { k.remove(KEYS[key]); }
                _ => {
                    let full = k.len() >= max_keys;
                    match k.get_or_insert_with(KEYS[key], now, || Busy { until: 0 }) {
                        Some(v) => v.until = t + busy_for,
                        None => {
                            // Refused only for a new key into a full map of busy entries.
                            prop_assert!(!was_there && full);
                            prop_assert!(busy_before.len() == k.len());
                        }
                    }
                }
            }
            prop_assert!(k.len() <= max_keys);
            prop_assert_eq!(k.keys_lru().count(), k.len());
            prop_assert_eq!(k.iter().count(), k.len());
            for busy in busy_before {
                // Only an explicit `remove` of that very key may drop a busy entry.
                prop_assert!(k.contains_key(busy) || (op == 1 && busy == KEYS[key]), "busy {busy} evicted");
            }
        }
    }

    #[test]
    fn keyed_limiter_stays_bounded_and_never_evicts_a_limited_key(
        c in cfg(algorithm()),
        max_keys in 1u32..=5,
        expiry_ms in prop::option::of(0u64..=3_000),
        ops in prop::collection::vec((0usize..8, 0u64..=600_000_000, 0u64..=4), 1..100),
    ) {
        let config = KeyedRateLimitConfig::new(RateLimitConfig::single(c.limit_config()))
            .with_max_keys(max_keys)
            .with_idle_expiry(expiry_ms.map(Duration::from_millis));
        let mut k = KeyedRateLimiter::new(config, 3).unwrap();
        let mut t = 0u64;
        for &(key, dt, cost) in &ops {
            t += dt;
            let now = Instant::from_nanos(t);
            let busy_before: Vec<&str> =
                KEYS[..8].iter().copied().filter(|key| k.contains(key) && !k.is_idle(key, now)).collect();
            let _ = k.check(KEYS[key], now, cost);
            prop_assert!(k.keys() <= max_keys as usize);
            for key in busy_before {
                prop_assert!(k.contains(key), "limited key {key} was evicted");
            }
        }
        prop_assert_eq!(k.metrics().keys, k.keys() as u64);
    }
}

//! Property tests of the retry policy: every delay within its formula's bounds and the cap,
//! budget tokens within [0, maxTokens], and no panic on huge or broken inputs.

use std::time::Duration;

use proptest::prelude::*;
use tripwire_core::config::MAX_CONFIG_DURATION;
use tripwire_core::retry::delay_before_jitter;
use tripwire_core::{
    backoff_delay, BackoffConfig, BackoffKind, BudgetConfig, ConfigDuration, FailureInfo, Instant,
    Jitter, Retry, RetryBudget, RetryConfig, RetryDecision, Rng,
};

const LONGEST: u64 = MAX_CONFIG_DURATION.as_secs() * 1_000_000_000;

fn kind() -> impl Strategy<Value = BackoffKind> {
    prop_oneof![
        Just(BackoffKind::Constant),
        Just(BackoffKind::Linear),
        Just(BackoffKind::Exponential)
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
        Just(Jitter::Proportional),
    ]
}

/// Nanoseconds from tiny to the longest a config may hold, biased to the edges.
fn config_nanos() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=1_000u64,
        0..=60_000_000_000u64,
        0..=LONGEST,
        Just(LONGEST)
    ]
}

fn multiplier() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), 1.0..4.0f64, 1.0..1e6f64, Just(f64::MAX)]
}

/// A valid backoff config: multiplier >= 1 and finite, base <= max.
fn backoff() -> impl Strategy<Value = BackoffConfig> {
    (
        kind(),
        config_nanos(),
        config_nanos(),
        multiplier(),
        jitter(),
    )
        .prop_map(|(kind, a, b, m, jitter)| {
            let mut c = BackoffConfig::default();
            c.kind = kind;
            c.base = ConfigDuration(Duration::from_nanos(a.min(b)));
            c.max = ConfigDuration(Duration::from_nanos(a.max(b)));
            c.multiplier = m;
            c.jitter = jitter;
            c
        })
}

fn retry_number() -> impl Strategy<Value = u32> {
    prop_oneof![1..=70u32, any::<u32>()]
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

proptest! {
    #[test]
    fn scheduled_delay_follows_its_formula(cfg in backoff(), n in retry_number()) {
        let (base, max) = (cfg.base.nanos(), cfg.max.nanos());
        let d = nanos(delay_before_jitter(&cfg, n));
        prop_assert!(d <= max);
        match cfg.kind {
            BackoffKind::Constant => prop_assert_eq!(d, base),
            BackoffKind::Linear => {
                let exact = u128::from(base) * u128::from(n.max(1));
                prop_assert_eq!(u128::from(d), exact.min(u128::from(max)));
            }
            _ => {
                prop_assert!(d >= base, "the first term is base and the multiplier is >= 1");
                // Never shrinks from one retry to the next.
                if n < u32::MAX {
                    prop_assert!(nanos(delay_before_jitter(&cfg, n + 1)) >= d);
                }
            }
        }
    }

    #[test]
    fn exponential_is_exact_while_representable(base in 0..=1_000_000_000u64, m in 1u32..=4, n in 1u32..=20) {
        let mut cfg = BackoffConfig::default();
        cfg.kind = BackoffKind::Exponential;
        cfg.base = ConfigDuration(Duration::from_nanos(base));
        cfg.max = ConfigDuration(MAX_CONFIG_DURATION);
        cfg.multiplier = f64::from(m);
        let exact = u128::from(base) * u128::from(m).pow(n - 1);
        prop_assume!(exact < 1 << 53);
        prop_assert_eq!(u128::from(nanos(delay_before_jitter(&cfg, n))), exact);
    }

    #[test]
    fn jittered_delay_stays_within_its_formula_and_the_cap(
        cfg in backoff(),
        n in retry_number(),
        prev in prop_oneof![0..=LONGEST, any::<u64>()],
        seed in any::<u64>(),
    ) {
        let (base, max) = (cfg.base.nanos(), cfg.max.nanos());
        let d = nanos(delay_before_jitter(&cfg, n));
        let mut rng = Rng::new(seed);
        let got = nanos(backoff_delay(&cfg, n, Duration::from_nanos(prev), &mut rng));
        prop_assert!(got <= max, "{got} > cap {max}");
        match cfg.jitter {
            Jitter::None => prop_assert_eq!(got, d),
            Jitter::Full => prop_assert!(got <= d),
            Jitter::Equal => prop_assert!(got >= d / 2 && got <= d),
            Jitter::Decorrelated => {
                let hi = u128::from(prev) * 3;
                if hi <= u128::from(base) {
                    prop_assert_eq!(got, base);
                } else {
                    prop_assert!(got >= base && u128::from(got) <= hi);
                }
            }
            _ => prop_assert!(u128::from(got) >= u128::from(d).min(u128::from(max))
                && u128::from(got) <= (u128::from(d) * 2).min(u128::from(max))),
        }
        // One draw per jittered delay, none without jitter: streams stay aligned everywhere.
        let mut probe = Rng::new(seed);
        if cfg.jitter != Jitter::None {
            let _ = probe.next_u64();
        }
        prop_assert_eq!(rng, probe);
    }

    #[test]
    fn broken_backoff_configs_never_panic_and_stay_under_the_cap(
        base in any::<u64>(),
        max in any::<u64>(),
        m in prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(0.0)],
        kind in kind(),
        jitter in jitter(),
        n in any::<u32>(),
        prev in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let mut cfg = BackoffConfig::default();
        cfg.kind = kind;
        cfg.base = ConfigDuration(Duration::from_nanos(base));
        cfg.max = ConfigDuration(Duration::from_nanos(max));
        cfg.multiplier = m;
        cfg.jitter = jitter;
        let got = backoff_delay(&cfg, n, Duration::from_nanos(prev), &mut Rng::new(seed));
        prop_assert!(nanos(got) <= max);
        prop_assert!(nanos(delay_before_jitter(&cfg, n)) <= max);
    }

    #[test]
    fn budget_tokens_stay_in_range(
        max_tokens in prop_oneof![1..=10u32, any::<u32>()],
        ratio_milli in 1..=10_000u32,
        ops in prop::collection::vec(any::<bool>(), 0..300),
    ) {
        let mut cfg = BudgetConfig::default();
        cfg.max_tokens = max_tokens;
        cfg.token_ratio = f64::from(ratio_milli.min(max_tokens.saturating_mul(1000))) / 1000.0;
        let mut b = RetryBudget::new(&cfg);
        let max_milli = u64::from(max_tokens) * 1000;
        prop_assert_eq!(b.milli_tokens(), max_milli, "a budget starts full");
        for success in ops {
            let before = b.milli_tokens();
            if success { b.on_success() } else { b.on_failure() }
            let after = b.milli_tokens();
            prop_assert!(after <= max_milli);
            prop_assert!(b.tokens() >= 0.0 && b.tokens() <= f64::from(max_tokens));
            if success {
                prop_assert_eq!(after, (before + u64::from(ratio_milli)).min(max_milli));
            } else {
                prop_assert_eq!(after, before.saturating_sub(1000));
            }
            prop_assert_eq!(b.allows_retry(), 2 * after > max_milli);
        }
    }

    #[test]
    fn unvalidated_budgets_never_panic(max_tokens in any::<u32>(), ratio in any::<f64>(), n in 0..50usize) {
        let mut cfg = BudgetConfig::default();
        cfg.max_tokens = max_tokens;
        cfg.token_ratio = ratio;
        let mut b = RetryBudget::new(&cfg);
        for i in 0..n {
            if i % 3 == 0 { b.on_failure() } else { b.on_success() }
            prop_assert!(b.milli_tokens() <= u64::from(max_tokens) * 1000);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Begin(u64),
    Attempt(usize),
    Failure {
        call: usize,
        now: u64,
        retryable: bool,
        hint: Option<u64>,
        deadline: Option<u64>,
    },
    Success(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let instant = prop_oneof![0..=100_000_000_000u64, any::<u64>()];
    prop_oneof![
        instant.clone().prop_map(Op::Begin),
        (0..4usize).prop_map(Op::Attempt),
        (
            0..4usize,
            instant.clone(),
            prop::bool::weighted(0.9),
            prop::option::of(prop_oneof![0..=60_000_000_000u64, any::<u64>()]),
            prop::option::of(instant),
        )
            .prop_map(|(call, now, retryable, hint, deadline)| Op::Failure {
                call,
                now,
                retryable,
                hint,
                deadline
            }),
        (0..4usize).prop_map(Op::Success),
    ]
}

fn retry_config() -> impl Strategy<Value = RetryConfig> {
    (
        prop_oneof![0..=5u32, any::<u32>()],
        backoff(),
        prop::option::of(1..=LONGEST),
        prop::option::of((1..=20u32, 1..=2_000u32)),
    )
        .prop_map(|(max_retries, backoff, max_elapsed, budget)| {
            let mut c = RetryConfig::default();
            c.max_retries = max_retries;
            c.backoff = backoff;
            c.max_elapsed = max_elapsed.map(|n| ConfigDuration(Duration::from_nanos(n)));
            c.budget = budget.map(|(max_tokens, ratio_milli)| {
                let mut b = BudgetConfig::default();
                b.max_tokens = max_tokens;
                b.token_ratio = f64::from(ratio_milli.min(max_tokens * 1000)) / 1000.0;
                b
            });
            c
        })
}

proptest! {
    #[test]
    fn decisions_respect_every_limit(config in retry_config(), ops in prop::collection::vec(op(), 1..60), seed in any::<u64>()) {
        prop_assert!(config.validate().is_ok());
        let max_retries = config.max_retries;
        let cap = config.backoff.max.nanos();
        let max_elapsed = config.max_elapsed.map(|d| d.nanos());
        let max_tokens = config.budget.map(|b| f64::from(b.max_tokens));
        let mut retry = Retry::new(config).unwrap();
        let mut rng = Rng::new(seed);
        let mut calls = Vec::new();
        let mut latest = Instant::ZERO;
        for op in ops {
            match op {
                Op::Begin(now) => {
                    let s = retry.start(Instant::from_nanos(now));
                    prop_assert_eq!(s.started_at(), Instant::from_nanos(now).max(latest));
                    calls.push(s);
                }
                Op::Attempt(i) => {
                    if let Some(s) = calls.get_mut(i) {
                        let before = s.attempts();
                        prop_assert_eq!(retry.begin_attempt(s), before.saturating_add(1));
                    }
                }
                Op::Success(i) => {
                    if let Some(s) = calls.get(i) {
                        retry.on_success(s);
                    }
                }
                Op::Failure { call, now, retryable, hint, deadline } => {
                    let Some(s) = calls.get_mut(call) else { continue };
                    let clamped = Instant::from_nanos(now).max(s.started_at()).max(latest);
                    latest = clamped;
                    let failure = FailureInfo { retryable, retry_after: hint.map(Duration::from_nanos) };
                    let deadline = deadline.map(Instant::from_nanos);
                    let decision = retry.on_failure(s, failure, Instant::from_nanos(now), deadline, &mut rng);
                    if let RetryDecision::Retry { attempt, delay } = decision {
                        let delay = nanos(delay);
                        prop_assert!(retryable);
                        prop_assert_eq!(attempt, s.attempts().max(1) + 1);
                        prop_assert!(s.attempts().max(1) <= max_retries);
                        prop_assert!(delay <= cap.max(hint.unwrap_or(0)));
                        prop_assert!(delay >= hint.unwrap_or(0));
                        let resume = clamped.saturating_add_nanos(delay);
                        if let Some(d) = deadline {
                            prop_assert!(resume < d);
                        }
                        if let Some(limit) = max_elapsed {
                            prop_assert!(resume.nanos_since(s.started_at()) <= limit);
                        }
                    }
                }
            }
            if let Some(max) = max_tokens {
                let t = retry.budget_tokens().unwrap();
                prop_assert!((0.0..=max).contains(&t), "tokens {t} outside [0, {max}]");
            } else {
                prop_assert_eq!(retry.budget_tokens(), None);
            }
        }
        let m = retry.metrics();
        let gave_up = m.gave_up_exhausted + m.gave_up_not_retryable + m.gave_up_budget_exhausted
            + m.gave_up_deadline_exceeded;
        prop_assert_eq!(m.retries + gave_up, m.failures);
        prop_assert!(m.successes_after_retry <= m.successes);
    }

    #[test]
    fn huge_inputs_never_panic(
        base in prop_oneof![Just(LONGEST), 0..=LONGEST],
        m in prop_oneof![Just(f64::MAX), 1.0..f64::MAX],
        jitter in jitter(),
        now in prop_oneof![Just(u64::MAX), any::<u64>()],
        hint in prop_oneof![Just(Duration::MAX), any::<u64>().prop_map(Duration::from_nanos)],
        deadline in prop::option::of(any::<u64>()),
        attempts in 0..8u32,
        seed in any::<u64>(),
    ) {
        let mut c = RetryConfig::default();
        c.max_retries = u32::MAX;
        c.backoff.base = ConfigDuration(Duration::from_nanos(base));
        c.backoff.max = ConfigDuration(MAX_CONFIG_DURATION);
        c.backoff.multiplier = m;
        c.backoff.jitter = jitter;
        c.max_elapsed = Some(ConfigDuration(MAX_CONFIG_DURATION));
        c.budget = Some(BudgetConfig::default());
        let mut retry = Retry::new(c).unwrap();
        let mut rng = Rng::new(seed);
        let mut s = retry.start(Instant::from_nanos(now));
        for _ in 0..attempts {
            let _ = retry.begin_attempt(&mut s);
            let failure = FailureInfo::retryable().with_retry_after(hint);
            let d = retry.on_failure(&mut s, failure, Instant::MAX, deadline.map(Instant::from_nanos), &mut rng);
            if let RetryDecision::Retry { delay, .. } = d {
                prop_assert!(delay >= hint.min(Duration::from_nanos(u64::MAX)));
            }
        }
        retry.on_success(&s);
    }
}

/// Counts heap allocations made by the current thread, to pin "no allocation on the hot path".
mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
            // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System.alloc` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
            // SAFETY: as for `alloc` and `dealloc`.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    pub fn count() -> u64 {
        ALLOCATIONS.with(Cell::get)
    }
}

#[global_allocator]
static COUNTING: alloc_count::Counting = alloc_count::Counting;

#[test]
fn the_call_path_never_allocates() {
    let config = RetryConfig::from_json(
        r#"{"maxRetries": 5, "maxElapsed": "1m", "budget": {"maxTokens": 10, "tokenRatio": 3},
            "backoff": {"jitter": "decorrelated"}}"#,
    )
    .unwrap();
    let mut retry = Retry::new(config).unwrap();
    let mut rng = Rng::new(1);
    let before = alloc_count::count();
    let mut decisions = 0u32;
    for i in 0..2_000u64 {
        let now = Instant::from_nanos(i * 1_000_000);
        let mut call = retry.start(now);
        while retry.begin_attempt(&mut call) < 4 {
            let hint = FailureInfo::retryable().with_retry_after(Duration::from_millis(i % 7));
            match retry.on_failure(
                &mut call,
                hint,
                now,
                Some(now.saturating_add_nanos(60_000_000_000)),
                &mut rng,
            ) {
                RetryDecision::Retry { .. } => decisions += 1,
                _ => break,
            }
        }
        retry.on_success(&call);
        let _ = (retry.metrics(), retry.budget_tokens());
    }
    assert_eq!(
        alloc_count::count() - before,
        0,
        "allocations on the call path"
    );
    assert!(
        decisions > 1_000,
        "the loop exercised retries ({decisions})"
    );
}

//! # tripwire-core
//!
//! One fault-tolerance policy engine for every runtime: circuit breakers, retries with backoff
//! and jitter, deadlines, bulkheads, rate limits, fallbacks and health checks, as sans-IO state
//! machines. The core never reads a clock, sleeps, spawns or does I/O: it takes `now` and
//! outcomes and returns decisions, delays and deadlines.
//!
//! ## The run loop every binding implements
//!
//! ```text
//! call = pipeline.begin(now, deadline)
//! loop {
//!     match pipeline.poll(call, now) {
//!         Attempt { deadline, .. } => { run fn, cancelled at deadline; pipeline.report(call, outcome, now) }
//!         Sleep { until }          => sleep until `until`
//!         Park { ticket, until }   => wait until woken (drain `poll_wake`) or `until`
//!         Done                     => return fn's value
//!         Fail { kind, .. }        => fallback, or raise kind's error
//!     }
//!     drain poll_event() and poll_wake() until None; re-read poll_timeout()
//! }
//! ```
//!
//! After any input, drain the outputs, then re-read the timeout.
//!
//! ## Quick start
//!
//! ```
//! use tripwire_core::pipeline::{Pipeline, Report, Step};
//! use tripwire_core::{ErrorKind, Instant};
//!
//! let config = r#"{"circuitBreaker": {"trip": {"consecutiveFailures": 1}},
//!                  "retry": {"maxRetries": 1, "backoff": {"type": "constant", "base": "100ms", "jitter": "none"}},
//!                  "timeout": {"perAttempt": "1s"}}"#;
//! let mut p = Pipeline::from_json(config, 7)?;
//! let ms = |v: u64| Instant::from_nanos(v * 1_000_000);
//!
//! let call = p.begin(ms(0), None);
//! assert_eq!(p.poll(call, ms(0))?, Step::Attempt { attempt: 1, deadline: Some(ms(1_000)) });
//! p.report(call, Report::failure(true, None), ms(20))?; // the function failed, retryably
//! assert_eq!(p.poll(call, ms(20))?, Step::Sleep { until: ms(120) });
//! assert_eq!(p.poll(call, ms(120))?, Step::Attempt { attempt: 2, deadline: Some(ms(1_120)) });
//! p.report(call, Report::failure(true, None), ms(130))?;
//! let Step::Fail(failure) = p.poll(call, ms(130))? else { unreachable!() };
//! assert_eq!((failure.kind, failure.attempts), (ErrorKind::RetriesExhausted, 2));
//!
//! // The breaker (outside retry) saw one failed call and opened: the next call fails fast.
//! let next = p.begin(ms(140), None);
//! let Step::Fail(failure) = p.poll(next, ms(140))? else { unreachable!() };
//! assert_eq!(failure.kind, ErrorKind::CircuitOpen);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod breaker;
pub mod bulkhead;
pub mod config;
pub mod deadline;
pub mod decimal;
pub mod error;
pub mod event;
#[cfg(feature = "futures")]
pub mod execute;
pub mod health;
pub mod keyed;
pub mod metrics;
pub mod pipeline;
pub mod rate_limit;
pub mod read;
pub mod retry;
pub mod rng;
pub mod share;
pub mod store;
pub mod time;
pub mod tree;
mod window;
pub mod write;

pub use breaker::{
    Admission, BreakerConfig, BreakerMetrics, BreakerSnapshot, CircuitBreaker, HalfOpenConfig,
    OpenDuration, Outcome, Permit, TripRule,
};
pub use bulkhead::{Bulkhead, BulkheadConfig, BulkheadMetrics, Entry, Ticket};
pub use config::{ConfigDuration, Rate};
pub use error::{ConfigError, Issue, UsageError};
pub use event::{BreakerState, ErrorKind, Event, EventKind, EventQueue};
pub use health::{
    CheckConfig, CheckId, CheckResult, CheckStatus, DueCheck, HealthConfig, HealthEvent,
    HealthEventKind, HealthMetrics, HealthRegistry, HealthStatus,
};
pub use keyed::{Keyed, KeyedState};
pub use rate_limit::{
    Algorithm, KeyedRateLimitConfig, KeyedRateLimitMetrics, KeyedRateLimiter, LimitConfig,
    RateDecision, RateLimitConfig, RateLimitMetrics, RateLimiter,
};
pub use read::FromTree;
pub use retry::{
    backoff_delay, BackoffConfig, BackoffKind, BudgetConfig, FailureInfo, GiveUp, Jitter, Pushback,
    Retry, RetryBudget, RetryConfig, RetryDecision, RetryMetrics, RetryState,
};
pub use rng::Rng;
pub use store::{
    OnUnavailable, RequestId, SharedCheck, SharedLimiter, Source, StoreConfig, StoreMetrics,
    StoreReply, StoreRequest,
};
pub use time::{Instant, Monotonic};
pub use write::ToTree;

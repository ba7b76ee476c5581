//! Timeouts and deadline budgets: the per-attempt timeout, the overall timeout and a deadline
//! inherited from the caller share one budget.
//!
//! A call's deadline is `min(start + overall, inherited)`; an attempt's deadline is
//! `min(now + perAttempt, call deadline)`. Backoff sleeps and queue waits spend the same
//! budget: nothing starts at or after the call deadline.

use serde::{Deserialize, Serialize};

use crate::config::ConfigDuration;
use crate::error::{ConfigError, Issues};
use crate::time::Instant;

/// The default per-attempt timeout when a `timeout` policy is present: 5 s (the seed's).
pub const DEFAULT_PER_ATTEMPT: ConfigDuration = ConfigDuration::from_secs(5);

/// `{"perAttempt": "3s", "overall": "10s"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeoutConfig {
    /// Each attempt is cancelled after this long (default 5 s). `null` means no per-attempt
    /// timeout, only the overall one.
    #[serde(default = "default_per_attempt")]
    pub per_attempt: Option<ConfigDuration>,
    /// The whole call, retries and waits included, ends by `start + overall`.
    #[serde(default)]
    pub overall: Option<ConfigDuration>,
}

impl crate::read::FromTree for TimeoutConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct TimeoutConfig",
            TimeoutConfig {
                per_attempt: "perAttempt" = default_per_attempt(),
                overall: "overall" = None,
            }
        )
    }
}

fn default_per_attempt() -> Option<ConfigDuration> {
    Some(DEFAULT_PER_ATTEMPT)
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            per_attempt: default_per_attempt(),
            overall: None,
        }
    }
}

impl TimeoutConfig {
    /// Refuse zero timeouts: a zero budget would fail every call before it starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if self.per_attempt.is_some_and(|d| d.nanos() == 0) {
            issues.push("perAttempt", "must be > 0, got 0");
        }
        if self.overall.is_some_and(|d| d.nanos() == 0) {
            issues.push("overall", "must be > 0, got 0");
        }
        issues.finish(())
    }

    /// The call deadline for a call starting at `start` that inherited `inherited`.
    #[must_use]
    pub fn call_deadline(&self, start: Instant, inherited: Option<Instant>) -> Option<Instant> {
        let overall = self.overall.map(|d| start.saturating_add_nanos(d.nanos()));
        min_deadline(overall, inherited)
    }

    /// The deadline of an attempt starting at `now` within a call ending at `call_deadline`.
    #[must_use]
    pub fn attempt_deadline(
        &self,
        now: Instant,
        call_deadline: Option<Instant>,
    ) -> Option<Instant> {
        let own = self
            .per_attempt
            .map(|d| now.saturating_add_nanos(d.nanos()));
        min_deadline(own, call_deadline)
    }
}

/// The earlier of two optional deadlines (`None` is "no deadline").
#[must_use]
pub fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }

    #[test]
    fn attempt_deadline_is_the_minimum_of_all_budgets() {
        let t: TimeoutConfig =
            crate::config::from_json_str(r#"{"perAttempt": "3s", "overall": "10s"}"#).unwrap();
        let call = t.call_deadline(ms(0), Some(ms(8_000)));
        assert_eq!(call, Some(ms(8_000)));
        assert_eq!(t.attempt_deadline(ms(1_000), call), Some(ms(4_000)));
        assert_eq!(t.attempt_deadline(ms(6_000), call), Some(ms(8_000)));
        assert_eq!(t.call_deadline(ms(0), None), Some(ms(10_000)));
    }

    #[test]
    fn defaults_and_validation() {
        let t: TimeoutConfig = crate::config::from_json_str("{}").unwrap();
        assert_eq!(t.per_attempt, Some(DEFAULT_PER_ATTEMPT));
        assert_eq!(t.overall, None);
        let t: TimeoutConfig =
            crate::config::from_json_str(r#"{"perAttempt": null, "overall": 100}"#).unwrap();
        assert_eq!(t.attempt_deadline(ms(5), None), None);
        let t: TimeoutConfig = crate::config::from_json_str(r#"{"perAttempt": 0}"#).unwrap();
        assert_eq!(
            t.validate().unwrap_err().to_string(),
            "perAttempt: must be > 0, got 0"
        );
    }
}

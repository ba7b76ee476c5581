//! Metrics, stats and snapshots written as a [`Node`] tree: what the npm package's glue turns
//! into plain JS objects.
//!
//! Each type's derived `Serialize` stays the public serde API (Python and C write JSON with
//! it). [`ToTree`] writes the same object — the same keys in the same order, the same values —
//! from one table of names per type, without a serializer's code per type and field; `tests`
//! compares the two on values whose every field differs.

use crate::breaker::{BreakerMetrics, BreakerSnapshot, WindowSnapshot};
use crate::bulkhead::BulkheadMetrics;
use crate::config::ConfigDuration;
use crate::event::ErrorKind;
use crate::health::HealthMetrics;
use crate::pipeline::PipelineStats;
use crate::rate_limit::{KeyedRateLimitMetrics, RateLimitMetrics};
use crate::retry::RetryMetrics;
use crate::share::ShareMetrics;
use crate::store::StoreMetrics;
use crate::tree::Node;

/// A value written as a [`Node`] tree, as its `Serialize` writes it to JSON.
pub trait ToTree {
    /// The tree; objects keep their keys in declaration order.
    fn to_tree(&self) -> Node;
}

/// An object's entries from parallel tables of names and counters.
fn counters(names: &[&str], values: &[u64]) -> Vec<(String, Node)> {
    let mut entries = Vec::with_capacity(names.len() + 4);
    for (name, value) in names.iter().zip(values) {
        entries.push(pair(name, Node::PosInt(*value)));
    }
    entries
}

/// One entry of an object.
pub(crate) fn pair(name: &str, value: Node) -> (String, Node) {
    (name.to_owned(), value)
}

fn entry(entries: &mut Vec<(String, Node)>, name: &str, value: Node) {
    entries.push(pair(name, value));
}

/// A string node.
pub(crate) fn text(s: &str) -> Node {
    Node::Str(s.to_owned())
}

fn option<T: ToTree>(value: Option<&T>) -> Node {
    value.map_or(Node::Null, ToTree::to_tree)
}

impl ToTree for BreakerMetrics {
    fn to_tree(&self) -> Node {
        let mut entries = vec![pair("state", text(self.state.as_str()))];
        entries.extend(counters(
            &[
                "admitted",
                "rejected",
                "successes",
                "failures",
                "ignored",
                "slowCalls",
                "stale",
                "transitions",
                "inFlight",
                "halfOpenInFlight",
                "halfOpenSuccesses",
                "consecutiveFailures",
                "openStreak",
                "windowCalls",
                "windowFailures",
                "windowSlowCalls",
                "eventsDropped",
            ],
            &[
                self.admitted,
                self.rejected,
                self.successes,
                self.failures,
                self.ignored,
                self.slow_calls,
                self.stale,
                self.transitions,
                self.in_flight,
                self.half_open_in_flight,
                self.half_open_successes,
                self.consecutive_failures,
                self.open_streak,
                self.window_calls,
                self.window_failures,
                self.window_slow_calls,
                self.events_dropped,
            ],
        ));
        Node::Map(entries)
    }
}

impl ToTree for BulkheadMetrics {
    fn to_tree(&self) -> Node {
        Node::Map(counters(
            &[
                "admitted",
                "queued",
                "woken",
                "rejectedFull",
                "queueTimeouts",
                "cancelled",
                "unmatchedReleases",
                "inFlight",
                "queueDepth",
                "maxConcurrent",
                "maxQueue",
            ],
            &[
                self.admitted,
                self.queued,
                self.woken,
                self.rejected_full,
                self.queue_timeouts,
                self.cancelled,
                self.unmatched_releases,
                self.in_flight,
                self.queue_depth,
                self.max_concurrent,
                self.max_queue,
            ],
        ))
    }
}

impl ToTree for RateLimitMetrics {
    fn to_tree(&self) -> Node {
        Node::Map(counters(
            &["allowed", "waited", "denied", "available"],
            &[self.allowed, self.waited, self.denied, self.available],
        ))
    }
}

impl ToTree for KeyedRateLimitMetrics {
    fn to_tree(&self) -> Node {
        Node::Map(counters(
            &[
                "allowed",
                "waited",
                "denied",
                "tableFull",
                "keys",
                "evicted",
                "expired",
            ],
            &[
                self.allowed,
                self.waited,
                self.denied,
                self.table_full,
                self.keys,
                self.evicted,
                self.expired,
            ],
        ))
    }
}

impl ToTree for HealthMetrics {
    fn to_tree(&self) -> Node {
        Node::Map(counters(
            &[
                "checks",
                "pending",
                "healthy",
                "unhealthy",
                "running",
                "runs",
                "successes",
                "failures",
                "timeouts",
                "ignoredReports",
                "transitions",
                "statusChanges",
            ],
            &[
                self.checks,
                self.pending,
                self.healthy,
                self.unhealthy,
                self.running,
                self.runs,
                self.successes,
                self.failures,
                self.timeouts,
                self.ignored_reports,
                self.transitions,
                self.status_changes,
            ],
        ))
    }
}

impl ToTree for RetryMetrics {
    fn to_tree(&self) -> Node {
        Node::Map(counters(
            &[
                "successes",
                "successesAfterRetry",
                "failures",
                "retries",
                "gaveUpExhausted",
                "gaveUpNotRetryable",
                "gaveUpBudgetExhausted",
                "gaveUpDeadlineExceeded",
                "budgetMilliTokens",
            ],
            &[
                self.successes,
                self.successes_after_retry,
                self.failures,
                self.retries,
                self.gave_up_exhausted,
                self.gave_up_not_retryable,
                self.gave_up_budget_exhausted,
                self.gave_up_deadline_exceeded,
                self.budget_milli_tokens,
            ],
        ))
    }
}

impl ToTree for StoreMetrics {
    fn to_tree(&self) -> Node {
        let mut entries = counters(
            &[
                "requests",
                "storeAllowed",
                "storeWaited",
                "storeDenied",
                "cacheDenied",
                "leaseAllowed",
                "fallbackAllowed",
                "fallbackDenied",
                "timeouts",
                "unavailable",
                "errors",
                "inFlight",
            ],
            &[
                self.requests,
                self.store_allowed,
                self.store_waited,
                self.store_denied,
                self.cache_denied,
                self.lease_allowed,
                self.fallback_allowed,
                self.fallback_denied,
                self.timeouts,
                self.unavailable,
                self.errors,
                self.in_flight,
            ],
        );
        entry(&mut entries, "storeState", text(self.store_state.as_str()));
        entry(
            &mut entries,
            "instances",
            Node::PosInt(u64::from(self.instances)),
        );
        Node::Map(entries)
    }
}

impl ToTree for ShareMetrics {
    fn to_tree(&self) -> Node {
        let mut entries = counters(
            &[
                "requests",
                "votes",
                "probesGranted",
                "probesDenied",
                "adoptedOpen",
                "adoptedClosed",
                "epochChanges",
                "failed",
                "fleetCalls",
                "fleetFailures",
                "fleetReporters",
            ],
            &[
                self.requests,
                self.votes,
                self.probes_granted,
                self.probes_denied,
                self.adopted_open,
                self.adopted_closed,
                self.epoch_changes,
                self.failed,
                self.fleet_calls,
                self.fleet_failures,
                self.fleet_reporters,
            ],
        );
        entry(&mut entries, "fleetState", text(self.fleet_state.as_str()));
        Node::Map(entries)
    }
}

impl ToTree for PipelineStats {
    fn to_tree(&self) -> Node {
        let mut failed = Vec::with_capacity(ErrorKind::ALL.len());
        for kind in ErrorKind::ALL {
            if kind != ErrorKind::InvalidConfig {
                entry(&mut failed, kind.as_str(), Node::PosInt(self.failed(kind)));
            }
        }
        let mut entries = counters(&["calls", "succeeded"], &[self.calls, self.succeeded]);
        entry(&mut entries, "failed", Node::Map(failed));
        entries.extend(counters(
            &["cancelled", "attempts", "inFlight", "eventsDropped"],
            &[
                self.cancelled,
                self.attempts,
                self.in_flight,
                self.events_dropped,
            ],
        ));
        entry(&mut entries, "breaker", option(self.breaker.as_ref()));
        entry(&mut entries, "bulkhead", option(self.bulkhead.as_ref()));
        entry(&mut entries, "rateLimit", option(self.rate_limit.as_ref()));
        entry(&mut entries, "retry", option(self.retry.as_ref()));
        entry(
            &mut entries,
            "budgetTokens",
            self.budget_tokens.map_or(Node::Null, Node::Float),
        );
        entry(
            &mut entries,
            "keys",
            self.keys.map_or(Node::Null, Node::PosInt),
        );
        if let Some(store) = &self.store {
            entry(&mut entries, "store", store.to_tree());
        }
        if let Some(share) = &self.share {
            entry(&mut entries, "share", share.to_tree());
        }
        Node::Map(entries)
    }
}

impl ToTree for ConfigDuration {
    fn to_tree(&self) -> Node {
        use crate::config::DurationForm;
        match self.json_form() {
            DurationForm::Millis(ms) => Node::PosInt(ms),
            DurationForm::Float(ms) => Node::Float(ms),
            DurationForm::Nanos(ns) => Node::Str(format!("{ns}ns")),
        }
    }
}

impl ToTree for BreakerSnapshot {
    fn to_tree(&self) -> Node {
        let mut entries = vec![
            pair("state", text(self.state.as_str())),
            pair("openStreak", Node::PosInt(u64::from(self.open_streak))),
        ];
        if let Some(remaining) = &self.open_remaining {
            entry(&mut entries, "openRemaining", remaining.to_tree());
        }
        entries.extend(counters(
            &["consecutiveFailures", "halfOpenSuccesses"],
            &[
                u64::from(self.consecutive_failures),
                u64::from(self.half_open_successes),
            ],
        ));
        if let Some(window) = &self.window {
            entry(&mut entries, "window", window.to_tree());
        }
        Node::Map(entries)
    }
}

impl ToTree for WindowSnapshot {
    fn to_tree(&self) -> Node {
        let (variant, fields) = match self {
            WindowSnapshot::Calls { size, outcomes } => (
                "calls",
                vec![
                    pair("size", Node::PosInt(u64::from(*size))),
                    pair("outcomes", text(outcomes)),
                ],
            ),
            WindowSnapshot::Time {
                bucket_width,
                buckets,
                recent,
            } => {
                let recent = recent
                    .iter()
                    .map(|bucket| Node::Seq(bucket.iter().map(|n| Node::PosInt(*n)).collect()))
                    .collect();
                (
                    "time",
                    vec![
                        pair("bucketWidth", bucket_width.to_tree()),
                        pair("buckets", Node::PosInt(u64::from(*buckets))),
                        pair("recent", Node::Seq(recent)),
                    ],
                )
            }
        };
        Node::Map(vec![pair(variant, Node::Map(fields))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BreakerState;
    use serde::Serialize;

    /// The derived `Serialize` through serde_json, objects in declaration order.
    fn serde_tree<T: Serialize>(value: &T) -> Node {
        // serde_json's map sorts its keys (no preserve_order here): order is compared apart.
        Node::from(serde_json::to_value(value).unwrap())
    }

    /// Same keys, values and (where serde keeps it) order.
    fn same<T: Serialize + ToTree>(value: &T) {
        let ours = value.to_tree();
        let sorted = sort(ours.clone());
        assert_eq!(sorted, serde_tree(value), "ToTree against Serialize");
        assert_eq!(
            write(&ours),
            serde_json::to_string(value).unwrap(),
            "key order"
        );
    }

    fn sort(node: Node) -> Node {
        match node {
            Node::Map(entries) => {
                Node::map(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            Node::Seq(items) => Node::Seq(items.into_iter().map(sort).collect()),
            other => other,
        }
    }

    /// As JSON text, keys in the tree's order (serde_json's `Value` would sort them).
    fn write(node: &Node) -> String {
        match node {
            Node::Null => "null".into(),
            Node::Bool(b) => b.to_string(),
            Node::PosInt(n) => n.to_string(),
            Node::NegInt(n) => n.to_string(),
            Node::Float(f) => serde_json::to_string(f).unwrap(),
            Node::Str(s) => serde_json::to_string(s).unwrap(),
            Node::Seq(items) => format!(
                "[{}]",
                items.iter().map(write).collect::<Vec<_>>().join(",")
            ),
            Node::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), write(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    /// `n`, `n + 1`, ...: every field of a value built from it differs from every other.
    struct Counter(u64);

    impl Counter {
        fn next(&mut self) -> u64 {
            self.0 += 1;
            self.0
        }
    }

    fn breaker(c: &mut Counter) -> BreakerMetrics {
        BreakerMetrics {
            state: BreakerState::HalfOpen,
            admitted: c.next(),
            rejected: c.next(),
            successes: c.next(),
            failures: c.next(),
            ignored: c.next(),
            slow_calls: c.next(),
            stale: c.next(),
            transitions: c.next(),
            in_flight: c.next(),
            half_open_in_flight: c.next(),
            half_open_successes: c.next(),
            consecutive_failures: c.next(),
            open_streak: c.next(),
            window_calls: c.next(),
            window_failures: c.next(),
            window_slow_calls: c.next(),
            events_dropped: c.next(),
        }
    }

    fn bulkhead(c: &mut Counter) -> BulkheadMetrics {
        BulkheadMetrics {
            admitted: c.next(),
            queued: c.next(),
            woken: c.next(),
            rejected_full: c.next(),
            queue_timeouts: c.next(),
            cancelled: c.next(),
            unmatched_releases: c.next(),
            in_flight: c.next(),
            queue_depth: c.next(),
            max_concurrent: c.next(),
            max_queue: c.next(),
        }
    }

    fn rate_limit(c: &mut Counter) -> RateLimitMetrics {
        RateLimitMetrics {
            allowed: c.next(),
            waited: c.next(),
            denied: c.next(),
            available: c.next(),
        }
    }

    fn retry(c: &mut Counter) -> RetryMetrics {
        RetryMetrics {
            successes: c.next(),
            successes_after_retry: c.next(),
            failures: c.next(),
            retries: c.next(),
            gave_up_exhausted: c.next(),
            gave_up_not_retryable: c.next(),
            gave_up_budget_exhausted: c.next(),
            gave_up_deadline_exceeded: c.next(),
            budget_milli_tokens: c.next(),
        }
    }

    fn store(c: &mut Counter) -> StoreMetrics {
        StoreMetrics {
            requests: c.next(),
            store_allowed: c.next(),
            store_waited: c.next(),
            store_denied: c.next(),
            cache_denied: c.next(),
            lease_allowed: c.next(),
            fallback_allowed: c.next(),
            fallback_denied: c.next(),
            timeouts: c.next(),
            unavailable: c.next(),
            errors: c.next(),
            in_flight: c.next(),
            store_state: BreakerState::ForcedOpen,
            instances: c.next() as u32,
        }
    }

    fn share(c: &mut Counter) -> ShareMetrics {
        ShareMetrics {
            requests: c.next(),
            votes: c.next(),
            probes_granted: c.next(),
            probes_denied: c.next(),
            adopted_open: c.next(),
            adopted_closed: c.next(),
            epoch_changes: c.next(),
            failed: c.next(),
            fleet_calls: c.next(),
            fleet_failures: c.next(),
            fleet_reporters: c.next(),
            fleet_state: BreakerState::Open,
        }
    }

    #[test]
    fn metrics_are_written_as_their_serialize_writes_them() {
        let c = &mut Counter(0);
        same(&breaker(c));
        same(&bulkhead(c));
        same(&rate_limit(c));
        same(&retry(c));
        same(&store(c));
        same(&share(c));
        same(&KeyedRateLimitMetrics {
            allowed: c.next(),
            waited: c.next(),
            denied: c.next(),
            table_full: c.next(),
            keys: c.next(),
            evicted: c.next(),
            expired: c.next(),
        });
        same(&HealthMetrics {
            checks: c.next(),
            pending: c.next(),
            healthy: c.next(),
            unhealthy: c.next(),
            running: c.next(),
            runs: c.next(),
            successes: c.next(),
            failures: c.next(),
            timeouts: c.next(),
            ignored_reports: c.next(),
            transitions: c.next(),
            status_changes: c.next(),
        });
        // Above 2^53 a counter is still an integer in the tree.
        same(&RateLimitMetrics {
            allowed: u64::MAX,
            ..RateLimitMetrics::default()
        });
    }

    #[test]
    fn pipeline_stats_are_written_as_their_serialize_writes_them() {
        let c = &mut Counter(100);
        let mut failed = [0; ErrorKind::ALL.len()];
        for slot in &mut failed {
            *slot = c.next();
        }
        let full = PipelineStats {
            calls: c.next(),
            succeeded: c.next(),
            failed,
            cancelled: c.next(),
            attempts: c.next(),
            in_flight: c.next(),
            events_dropped: c.next(),
            breaker: Some(breaker(c)),
            bulkhead: Some(bulkhead(c)),
            rate_limit: Some(rate_limit(c)),
            retry: Some(retry(c)),
            budget_tokens: Some(2.5),
            keys: Some(c.next()),
            store: Some(store(c)),
            share: Some(share(c)),
        };
        same(&full);
        same(&PipelineStats::default());
    }

    #[test]
    fn snapshots_are_written_as_their_serialize_writes_them() {
        for remaining in [
            None,
            Some(ConfigDuration::from_millis(250)),
            Some(ConfigDuration(core::time::Duration::from_nanos(1_500_000))),
            Some(ConfigDuration(core::time::Duration::from_nanos(
                (1 << 53) + 1,
            ))),
        ] {
            for window in [
                None,
                Some(WindowSnapshot::Calls {
                    size: 4,
                    outcomes: "sfSF".into(),
                }),
                Some(WindowSnapshot::Time {
                    bucket_width: ConfigDuration::from_millis(100),
                    buckets: 10,
                    recent: vec![[0, 5, 2, 1], [3, 7, 1, 0]],
                }),
            ] {
                same(&BreakerSnapshot {
                    state: BreakerState::Open,
                    open_streak: 3,
                    open_remaining: remaining,
                    consecutive_failures: 7,
                    half_open_successes: 9,
                    window,
                });
            }
        }
    }
}

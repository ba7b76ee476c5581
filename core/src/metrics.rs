//! Prometheus text exposition of a pipeline's counters and gauges, rendered by the core so
//! every binding exposes the same metric names and labels.
//!
//! Every series carries `pipeline="<name>"`. The names are stable (documented in the README):
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `tripwire_calls_total` | counter | | calls begun |
//! | `tripwire_calls_succeeded_total` | counter | | calls that ended `Done` |
//! | `tripwire_calls_failed_total` | counter | `kind` | calls that ended `Fail`, by error kind |
//! | `tripwire_calls_cancelled_total` | counter | | calls cancelled by the host |
//! | `tripwire_calls_in_flight` | gauge | | calls begun and not ended |
//! | `tripwire_attempts_total` | counter | | attempts started |
//! | `tripwire_events_dropped_total` | counter | | events the host did not drain in time |
//! | `tripwire_breaker_state` | gauge | `state` | 1 for the current state, 0 for the others |
//! | `tripwire_breaker_calls_total` | counter | `outcome` | `admitted`, `rejected`, `success`, `failure`, `ignored`, `slow` |
//! | `tripwire_breaker_transitions_total` | counter | | state changes |
//! | `tripwire_bulkhead_in_flight` | gauge | | slots held |
//! | `tripwire_bulkhead_queue_depth` | gauge | | calls waiting |
//! | `tripwire_bulkhead_calls_total` | counter | `outcome` | `admitted`, `queued`, `rejected`, `queueTimeout`, `cancelled` |
//! | `tripwire_rate_limit_decisions_total` | counter | `decision` | `allowed`, `waited`, `denied` |
//! | `tripwire_rate_limit_available` | gauge | | tokens available in the first limit |
//! | `tripwire_retry_total` | counter | | retries scheduled |
//! | `tripwire_retry_gave_up_total` | counter | `reason` | `exhausted`, `notRetryable`, `budgetExhausted`, `deadlineExceeded` |
//! | `tripwire_retry_budget_tokens` | gauge | | retry budget tokens left |
//! | `tripwire_shared_limit_decisions_total` | counter | `source_decision` | `store_allowed`, `store_waited`, `store_denied`, `cache_denied`, `fallback_allowed`, `fallback_denied` |
//! | `tripwire_store_requests_total` | counter | `reply` | `sent`, `timeout`, `unavailable`, `error` |
//! | `tripwire_store_state` | gauge | `state` | the breaker around the store, 1 for the current state |
//! | `tripwire_store_instances` | gauge | | `N` of the local fallback |
//! | `tripwire_shared_breaker_total` | counter | `event` | `request`, `vote`, `probe_granted`, `probe_denied`, `adopted_open`, `adopted_closed`, `failed` |

use core::fmt::Write;

use crate::event::{BreakerState, ErrorKind};
use crate::pipeline::PipelineStats;

const STATES: [BreakerState; 5] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
    BreakerState::ForcedOpen,
    BreakerState::Disabled,
];

struct Out<'a> {
    out: &'a mut String,
    pipeline: &'a str,
}

impl Out<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, label: Option<(&str, &str)>, value: f64) {
        let _ = write!(self.out, "{name}{{pipeline=\"");
        escape_label(self.out, self.pipeline);
        if let Some((k, v)) = label {
            let _ = write!(self.out, "\",{k}=\"");
            escape_label(self.out, v);
        }
        let _ = writeln!(self.out, "\"}} {}", crate::decimal::Float(value));
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.header(name, kind, help);
        self.sample(name, None, value);
    }

    fn labelled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: &[(&str, f64)],
    ) {
        self.header(name, kind, help);
        for (v, n) in values {
            self.sample(name, Some((label, v)), *n);
        }
    }
}

/// Label values may hold any text; Prometheus escapes `\`, `"` and newlines.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Append the Prometheus text exposition of `stats` for the pipeline named `pipeline`.
pub fn render_prometheus(out: &mut String, pipeline: &str, stats: &PipelineStats) {
    let mut o = Out { out, pipeline };
    o.one(
        "tripwire_calls_total",
        "counter",
        "Calls begun.",
        stats.calls as f64,
    );
    o.one(
        "tripwire_calls_succeeded_total",
        "counter",
        "Calls that succeeded.",
        stats.succeeded as f64,
    );
    let failed: Vec<(&str, f64)> = ErrorKind::ALL
        .into_iter()
        .filter(|k| *k != ErrorKind::InvalidConfig)
        .map(|k| (k.as_str(), stats.failed(k) as f64))
        .collect();
    o.labelled(
        "tripwire_calls_failed_total",
        "counter",
        "Calls that failed, by error kind.",
        "kind",
        &failed,
    );
    o.one(
        "tripwire_calls_cancelled_total",
        "counter",
        "Calls cancelled by the host.",
        stats.cancelled as f64,
    );
    o.one(
        "tripwire_calls_in_flight",
        "gauge",
        "Calls begun and not yet ended.",
        stats.in_flight as f64,
    );
    o.one(
        "tripwire_attempts_total",
        "counter",
        "Attempts started.",
        stats.attempts as f64,
    );
    o.one(
        "tripwire_events_dropped_total",
        "counter",
        "Events dropped because the host did not drain them.",
        stats.events_dropped as f64,
    );
    if let Some(b) = &stats.breaker {
        let states: Vec<(&str, f64)> = STATES
            .iter()
            .map(|s| (s.as_str(), if *s == b.state { 1.0 } else { 0.0 }))
            .collect();
        o.labelled(
            "tripwire_breaker_state",
            "gauge",
            "Circuit breaker state (1 = current).",
            "state",
            &states,
        );
        o.labelled(
            "tripwire_breaker_calls_total",
            "counter",
            "Circuit breaker decisions and recorded outcomes.",
            "outcome",
            &[
                ("admitted", b.admitted as f64),
                ("rejected", b.rejected as f64),
                ("success", b.successes as f64),
                ("failure", b.failures as f64),
                ("ignored", b.ignored as f64),
                ("slow", b.slow_calls as f64),
            ],
        );
        o.one(
            "tripwire_breaker_transitions_total",
            "counter",
            "Circuit breaker state changes.",
            b.transitions as f64,
        );
    }
    if let Some(b) = &stats.bulkhead {
        o.one(
            "tripwire_bulkhead_in_flight",
            "gauge",
            "Bulkhead slots held.",
            b.in_flight as f64,
        );
        o.one(
            "tripwire_bulkhead_queue_depth",
            "gauge",
            "Calls waiting in the bulkhead queue.",
            b.queue_depth as f64,
        );
        o.labelled(
            "tripwire_bulkhead_calls_total",
            "counter",
            "Bulkhead decisions.",
            "outcome",
            &[
                ("admitted", b.admitted as f64),
                ("queued", b.queued as f64),
                ("rejected", b.rejected_full as f64),
                ("queueTimeout", b.queue_timeouts as f64),
                ("cancelled", b.cancelled as f64),
            ],
        );
    }
    if let Some(l) = &stats.rate_limit {
        o.labelled(
            "tripwire_rate_limit_decisions_total",
            "counter",
            "Rate limiter decisions.",
            "decision",
            &[
                ("allowed", l.allowed as f64),
                ("waited", l.waited as f64),
                ("denied", l.denied as f64),
            ],
        );
        o.one(
            "tripwire_rate_limit_available",
            "gauge",
            "Tokens available in the first limit.",
            l.available as f64,
        );
    }
    if let Some(r) = &stats.retry {
        o.one(
            "tripwire_retry_total",
            "counter",
            "Retries scheduled.",
            r.retries as f64,
        );
        o.labelled(
            "tripwire_retry_gave_up_total",
            "counter",
            "Calls the retry policy gave up on, by reason.",
            "reason",
            &[
                ("exhausted", r.gave_up_exhausted as f64),
                ("notRetryable", r.gave_up_not_retryable as f64),
                ("budgetExhausted", r.gave_up_budget_exhausted as f64),
                ("deadlineExceeded", r.gave_up_deadline_exceeded as f64),
            ],
        );
    }
    if let Some(t) = stats.budget_tokens {
        o.one(
            "tripwire_retry_budget_tokens",
            "gauge",
            "Retry budget tokens left.",
            t,
        );
    }
    if let Some(st) = &stats.store {
        o.labelled(
            "tripwire_shared_limit_decisions_total",
            "counter",
            "Shared rate-limit decisions, by where they came from.",
            "source_decision",
            &[
                ("store_allowed", st.store_allowed as f64),
                ("store_waited", st.store_waited as f64),
                ("store_denied", st.store_denied as f64),
                ("cache_denied", st.cache_denied as f64),
                ("fallback_allowed", st.fallback_allowed as f64),
                ("fallback_denied", st.fallback_denied as f64),
            ],
        );
        o.labelled(
            "tripwire_store_requests_total",
            "counter",
            "Store requests of the shared rate limit, by reply.",
            "reply",
            &[
                ("sent", st.requests as f64),
                ("timeout", st.timeouts as f64),
                ("unavailable", st.unavailable as f64),
                ("error", st.errors as f64),
            ],
        );
        o.labelled(
            "tripwire_store_state",
            "gauge",
            "The breaker around the store (1 = current; open = the fallback decides).",
            "state",
            &STATES.map(|s| (s.as_str(), f64::from(u8::from(s == st.store_state)))),
        );
        o.one(
            "tripwire_store_instances",
            "gauge",
            "Instances the local fallback divides the limit by.",
            f64::from(st.instances),
        );
    }
    if let Some(sh) = &stats.share {
        o.labelled(
            "tripwire_shared_breaker_total",
            "counter",
            "Shared-breaker activity: votes sent, probes, adoptions of the fleet's state.",
            "event",
            &[
                ("request", sh.requests as f64),
                ("vote", sh.votes as f64),
                ("probe_granted", sh.probes_granted as f64),
                ("probe_denied", sh.probes_denied as f64),
                ("adopted_open", sh.adopted_open as f64),
                ("adopted_closed", sh.adopted_closed as f64),
                ("failed", sh.failed as f64),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Pipeline, Report};
    use crate::time::Instant;

    #[test]
    fn renders_every_configured_policy_with_escaped_labels() {
        let mut p = Pipeline::from_json(
            r#"{"circuitBreaker": {}, "bulkhead": {}, "rateLimit": {"rate": "10/s"}, "retry": {"budget": {}}}"#,
            1,
        )
        .unwrap();
        let t = Instant::from_nanos(1);
        let c = p.begin(t, None);
        let _ = p.poll(c, t).unwrap();
        p.report(c, Report::SUCCESS, t).unwrap();
        let _ = p.poll(c, t).unwrap();
        let mut text = String::new();
        render_prometheus(&mut text, "api \"v1\"", &p.stats());
        assert!(
            text.contains("tripwire_calls_succeeded_total{pipeline=\"api \\\"v1\\\"\"} 1\n"),
            "{text}"
        );
        assert!(text
            .contains("tripwire_breaker_state{pipeline=\"api \\\"v1\\\"\",state=\"closed\"} 1\n"));
        assert!(
            text.contains("tripwire_breaker_state{pipeline=\"api \\\"v1\\\"\",state=\"open\"} 0\n")
        );
        assert!(text.contains("tripwire_rate_limit_decisions_total{pipeline=\"api \\\"v1\\\"\",decision=\"allowed\"} 1\n"));
        assert!(text.contains("tripwire_retry_budget_tokens{pipeline=\"api \\\"v1\\\"\"} 100\n"));
        assert!(text.contains("# TYPE tripwire_calls_failed_total counter\n"));
        // Every sample line belongs to a declared metric.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} undeclared"
            );
        }
    }

    #[test]
    fn policies_that_are_absent_are_not_rendered() {
        let p = Pipeline::from_json(r#"{"timeout": {}}"#, 1).unwrap();
        let mut text = String::new();
        render_prometheus(&mut text, "t", &p.stats());
        assert!(!text.contains("tripwire_breaker_"));
        assert!(!text.contains("tripwire_bulkhead_"));
        assert!(text.contains("tripwire_calls_total{pipeline=\"t\"} 0\n"));
        let json = serde_json::to_value(p.stats()).unwrap();
        assert_eq!(json["failed"]["circuitOpen"], 0);
        assert_eq!(json["inFlight"], 0);
        assert!(json["breaker"].is_null());
    }

    #[test]
    fn renders_the_shared_limit_and_the_store_state() {
        let mut p = Pipeline::from_json(
            r#"{"rateLimit": {"algorithm": "gcra", "rate": "10/s"}, "store": {"key": "k"},
                "circuitBreaker": {"share": {}}}"#,
            1,
        )
        .unwrap();
        let t = Instant::from_nanos(1);
        let c = p.begin(t, None);
        // The first store step times out (the host never answered): the fallback admits.
        let mut now = t;
        loop {
            match p.poll(c, now).unwrap() {
                crate::pipeline::Step::Store { until, .. } => now = until,
                crate::pipeline::Step::Attempt { .. } => {
                    p.report(c, Report::SUCCESS, now).unwrap();
                }
                _ => break,
            }
        }
        let mut text = String::new();
        render_prometheus(&mut text, "api", &p.stats());
        for line in [
            "tripwire_shared_limit_decisions_total{pipeline=\"api\",source_decision=\"fallback_allowed\"} 1\n",
            "tripwire_store_requests_total{pipeline=\"api\",reply=\"timeout\"} 1\n",
            "tripwire_store_state{pipeline=\"api\",state=\"closed\"} 1\n",
            "tripwire_store_instances{pipeline=\"api\"} 1\n",
            "tripwire_shared_breaker_total{pipeline=\"api\",event=\"failed\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}

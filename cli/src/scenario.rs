//! What the simulator replays: a modelled downstream under a client population (a scenario,
//! built in or JSON), or a recorded trace of real calls (CSV).
//!
//! A scenario file looks like this (durations as everywhere in tripwire: a number is
//! milliseconds, a string carries its unit):
//!
//! ```json
//! {
//!   "name": "outage",
//!   "description": "the downstream is unreachable for 30 s",
//!   "duration": "75s",
//!   "clients": { "rate": 100, "timeout": "10s", "phases": [] },
//!   "downstream": {
//!     "capacity": 150, "queue": 150,
//!     "latency": { "median": "40ms", "p99": "250ms" },
//!     "failureRate": 0.01,
//!     "windows": [ { "from": "15s", "to": "45s", "mode": "unreachable" } ]
//!   }
//! }
//! ```

use core::fmt;

use serde::{Deserialize, Serialize};
use tripwire_core::config::{from_json_str, ConfigDuration};
use tripwire_core::error::Issues;
use tripwire_core::ConfigError;

/// Nanoseconds per second, for the conversions below.
pub const SEC: u64 = 1_000_000_000;
/// Nanoseconds per millisecond.
pub const MS: u64 = 1_000_000;

/// A modelled scenario: who calls, and how the downstream behaves over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// A short name for tables and pictures.
    #[serde(default = "custom_name")]
    pub name: String,
    /// One line saying what happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How much virtual time new calls arrive for (calls in flight at the end still finish).
    pub duration: ConfigDuration,
    /// The client population.
    pub clients: Clients,
    /// The service being called.
    pub downstream: Downstream,
}

fn custom_name() -> String {
    "custom".to_owned()
}

/// Calls arrive as a Poisson process at `rate` per second, except during `phases`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Clients {
    /// Calls per second outside any phase.
    pub rate: f64,
    /// The HTTP client's own timeout on every attempt, policy or not (default 10 s): without
    /// it a call to an unreachable service would never end.
    #[serde(default = "default_client_timeout")]
    pub timeout: ConfigDuration,
    /// Periods with another arrival rate (a traffic spike).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
}

fn default_client_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

/// From `from` to `to`, calls arrive at `rate` per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Phase {
    /// Start (virtual time since the beginning).
    pub from: ConfigDuration,
    /// End (exclusive).
    pub to: ConfigDuration,
    /// Calls per second in the phase.
    pub rate: f64,
}

/// The downstream: `capacity` requests per second served by a pool of workers behind a
/// bounded FIFO queue. A request that finds the queue full is refused at once (a 503); one
/// that waits in the queue sees its latency grow, which is how overload (and a retry storm)
/// shows up. A request whose client gave up is still served: the server does not notice, so
/// cancelled work still costs capacity, as it does in most real servers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Downstream {
    /// Requests per second it can serve at its normal latency. The worker pool is
    /// `ceil(capacity × mean latency)`.
    pub capacity: f64,
    /// Requests that may wait for a worker (default: one second of capacity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// Service time, log-normal, given by its median and 99th percentile.
    pub latency: Latency,
    /// The chance that a served request fails (a 5xx) in normal times (default 0.01).
    #[serde(default = "default_failure_rate")]
    pub failure_rate: f64,
    /// Periods of trouble.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

fn default_failure_rate() -> f64 {
    0.01
}

/// A log-normal latency distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Latency {
    /// The median.
    pub median: ConfigDuration,
    /// The 99th percentile (>= median).
    pub p99: ConfigDuration,
}

/// How the downstream misbehaves during a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Hard down: every request is refused within a millisecond (connection refused, a 503
    /// from the load balancer).
    Down,
    /// Hard down and silent: requests are never answered; only the caller's timeout ends them.
    #[default]
    Unreachable,
    /// Brownout: slower by `latencyFactor` and failing with `failureRate`.
    Degraded,
}

impl Mode {
    /// The mode's JSON name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Down => "down",
            Mode::Unreachable => "unreachable",
            Mode::Degraded => "degraded",
        }
    }
}

/// A period of trouble.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Window {
    /// Start.
    pub from: ConfigDuration,
    /// End (exclusive).
    pub to: ConfigDuration,
    /// What happens (default `unreachable`).
    #[serde(default)]
    pub mode: Mode,
    /// `degraded`: service times are multiplied by this (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub latency_factor: f64,
    /// `degraded`: the failure probability instead of the normal one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
}

fn one() -> f64 {
    1.0
}

#[allow(clippy::trivially_copy_pass_by_ref, clippy::float_cmp)]
fn is_one(v: &f64) -> bool {
    *v == 1.0
}

impl Scenario {
    /// Parse and validate a scenario file; issues carry field paths (`downstream.capacity`).
    pub fn from_json(text: &str) -> Result<Scenario, ConfigError> {
        let s: Scenario = from_json_str(text)?;
        s.validate()?;
        Ok(s)
    }

    /// Every problem, with its field path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if self.duration.nanos() < SEC {
            issues.push("duration", "must be at least 1s");
        } else if self.duration.nanos() > 3600 * SEC {
            issues.push("duration", "must be at most 1h of virtual time");
        }
        rate_ok(&mut issues, "clients.rate", self.clients.rate);
        if self.clients.timeout.nanos() == 0 {
            issues.push("clients.timeout", "must be > 0, got 0");
        }
        for (i, p) in self.clients.phases.iter().enumerate() {
            span_ok(&mut issues, &format!("clients.phases[{i}]"), p.from, p.to);
            rate_ok(&mut issues, &format!("clients.phases[{i}].rate"), p.rate);
        }
        let d = &self.downstream;
        if !(d.capacity.is_finite() && d.capacity > 0.0 && d.capacity <= 1e6) {
            issues.push(
                "downstream.capacity",
                format!(
                    "must be > 0 and <= 1000000 requests per second, got {}",
                    d.capacity
                ),
            );
        }
        if d.queue.is_some_and(|q| q > 1_000_000) {
            issues.push("downstream.queue", "must be <= 1000000");
        }
        if d.latency.median.nanos() == 0 {
            issues.push("downstream.latency.median", "must be > 0, got 0");
        }
        if d.latency.p99 < d.latency.median {
            issues.push("downstream.latency.p99", "must be >= latency.median");
        }
        fraction_ok(&mut issues, "downstream.failureRate", d.failure_rate);
        for (i, w) in d.windows.iter().enumerate() {
            let path = format!("downstream.windows[{i}]");
            span_ok(&mut issues, &path, w.from, w.to);
            if !(w.latency_factor.is_finite() && w.latency_factor > 0.0 && w.latency_factor <= 1e4)
            {
                issues.push(
                    format!("{path}.latencyFactor"),
                    format!("must be > 0 and <= 10000, got {}", w.latency_factor),
                );
            }
            if let Some(f) = w.failure_rate {
                fraction_ok(&mut issues, &format!("{path}.failureRate"), f);
            }
        }
        issues.finish(())
    }

    /// The arrival rate at `t` (nanoseconds): the last phase covering `t`, or the base rate.
    #[must_use]
    pub fn rate_at(&self, t: u64) -> f64 {
        self.clients
            .phases
            .iter()
            .rev()
            .find(|p| p.from.nanos() <= t && t < p.to.nanos())
            .map_or(self.clients.rate, |p| p.rate)
    }

    /// The window in force at `t`, if any (the last one listed wins).
    #[must_use]
    pub fn window_at(&self, t: u64) -> Option<&Window> {
        self.downstream
            .windows
            .iter()
            .rev()
            .find(|w| w.from.nanos() <= t && t < w.to.nanos())
    }

    /// The span of trouble: from the first window or phase start to the last end.
    #[must_use]
    pub fn disruption(&self) -> Option<(u64, u64)> {
        let spans = self
            .downstream
            .windows
            .iter()
            .map(|w| (w.from.nanos(), w.to.nanos()))
            .chain(
                self.clients
                    .phases
                    .iter()
                    .map(|p| (p.from.nanos(), p.to.nanos())),
            );
        spans.fold(None, |acc, (a, b)| match acc {
            None => Some((a, b)),
            Some((x, y)) => Some((x.min(a), y.max(b))),
        })
    }
}

fn rate_ok(issues: &mut Issues, path: &str, rate: f64) {
    if !(rate.is_finite() && (0.0..=100_000.0).contains(&rate)) {
        issues.push(
            path,
            format!("must be >= 0 and <= 100000 calls per second, got {rate}"),
        );
    }
}

fn fraction_ok(issues: &mut Issues, path: &str, v: f64) {
    if !(0.0..=1.0).contains(&v) {
        issues.push(path, format!("must be a fraction in [0, 1], got {v}"));
    }
}

fn span_ok(issues: &mut Issues, path: &str, from: ConfigDuration, to: ConfigDuration) {
    if to <= from {
        issues.push(format!("{path}.to"), "must be after `from`");
    }
}

/// The built-in scenarios, by name.
pub const BUILTIN: [&str; 3] = ["outage", "brownout", "overload"];

/// A built-in scenario by name.
#[must_use]
pub fn builtin(name: &str) -> Option<Scenario> {
    let text = match name {
        "outage" => OUTAGE,
        "brownout" => BROWNOUT,
        "overload" => OVERLOAD,
        _ => return None,
    };
    Some(Scenario::from_json(text).expect("built-in scenarios are valid"))
}

const OUTAGE: &str = r#"{
  "name": "outage",
  "description": "the downstream goes hard down for 30 s (requests hang until the caller gives up), then comes back",
  "duration": "75s",
  "clients": { "rate": 100, "timeout": "10s" },
  "downstream": {
    "capacity": 150,
    "latency": { "median": "40ms", "p99": "250ms" },
    "failureRate": 0.01,
    "windows": [ { "from": "15s", "to": "45s", "mode": "unreachable" } ]
  }
}"#;

const BROWNOUT: &str = r#"{
  "name": "brownout",
  "description": "for 30 s the downstream is 3x slower and fails 30% of requests; extra load tips it over",
  "duration": "75s",
  "clients": { "rate": 100, "timeout": "10s" },
  "downstream": {
    "capacity": 330,
    "latency": { "median": "40ms", "p99": "250ms" },
    "failureRate": 0.01,
    "windows": [ { "from": "15s", "to": "45s", "mode": "degraded", "latencyFactor": 3, "failureRate": 0.3 } ]
  }
}"#;

const OVERLOAD: &str = r#"{
  "name": "overload",
  "description": "traffic spikes to 3x for 15 s, twice what the downstream can serve",
  "duration": "60s",
  "clients": { "rate": 100, "timeout": "10s", "phases": [ { "from": "15s", "to": "30s", "rate": 300 } ] },
  "downstream": {
    "capacity": 150,
    "latency": { "median": "40ms", "p99": "250ms" },
    "failureRate": 0.01
  }
}"#;

/// How one recorded call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceOutcome {
    /// A success (or a 1xx-3xx status).
    Success,
    /// A failure the retry predicate accepts (a 5xx, a 429, a network error).
    Failure,
    /// A failure that is the caller's fault (another 4xx): ignored by the breaker, not retried.
    Ignored,
    /// No answer before the recording client gave up: replayed as a request that never answers.
    Timeout,
}

/// One recorded call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceRow {
    /// When it started, in milliseconds (any origin; Unix epoch milliseconds are shown as dates).
    pub timestamp_ms: f64,
    /// How it ended.
    pub outcome: TraceOutcome,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
}

/// A recorded trace: `timestamp_ms,outcome,latency_ms` rows, sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// A name for tables (the file name).
    pub name: String,
    /// The rows, in time order.
    pub rows: Vec<TraceRow>,
}

/// A CSV problem: the 1-based line and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// The line.
    pub line: usize,
    /// Why it was refused.
    pub reason: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl Trace {
    /// Parse `timestamp_ms,outcome,latency_ms` lines. A header line, blank lines and lines
    /// starting with `#` are skipped. `outcome` is `success`/`ok`, `failure`/`error`,
    /// `timeout`, `ignored`, or an HTTP status (1xx-3xx success, 429 and 5xx failure, other
    /// 4xx ignored).
    pub fn from_csv(name: &str, text: &str) -> Result<Trace, TraceError> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let err = |reason: String| TraceError {
                line: i + 1,
                reason,
            };
            if fields.len() != 3 {
                return Err(err(format!(
                    "expected 3 fields `timestamp_ms,outcome,latency_ms`, got {}",
                    fields.len()
                )));
            }
            let Ok(timestamp_ms) = fields[0].parse::<f64>() else {
                if rows.is_empty() && i == 0 {
                    continue; // a header
                }
                return Err(err(format!("timestamp {:?} is not a number", fields[0])));
            };
            if !timestamp_ms.is_finite() || timestamp_ms < 0.0 {
                return Err(err(format!("timestamp {timestamp_ms} must be >= 0")));
            }
            let outcome = parse_outcome(fields[1]).ok_or_else(|| {
                err(format!(
                    "outcome {:?} is not success, failure, timeout, ignored or an HTTP status",
                    fields[1]
                ))
            })?;
            let latency_ms: f64 = fields[2]
                .parse()
                .ok()
                .filter(|l: &f64| l.is_finite() && *l >= 0.0)
                .ok_or_else(|| {
                    err(format!(
                        "latency {:?} is not a number of milliseconds >= 0",
                        fields[2]
                    ))
                })?;
            rows.push(TraceRow {
                timestamp_ms,
                outcome,
                latency_ms,
            });
        }
        if rows.is_empty() {
            return Err(TraceError {
                line: 0,
                reason: "the trace holds no calls".into(),
            });
        }
        rows.sort_by(|a, b| a.timestamp_ms.total_cmp(&b.timestamp_ms));
        let span = rows[rows.len() - 1].timestamp_ms - rows[0].timestamp_ms;
        if span > 7.0 * 86_400_000.0 {
            return Err(TraceError {
                line: 0,
                reason: format!(
                    "the trace spans {:.1} days; replay at most 7",
                    span / 86_400_000.0
                ),
            });
        }
        Ok(Trace {
            name: name.to_owned(),
            rows,
        })
    }

    /// The first timestamp: replayed time 0.
    #[must_use]
    pub fn origin_ms(&self) -> f64 {
        self.rows[0].timestamp_ms
    }

    /// Whether timestamps look like Unix epoch milliseconds (after 1973), to print dates.
    #[must_use]
    pub fn is_epoch(&self) -> bool {
        self.origin_ms() > 1e11
    }
}

fn parse_outcome(s: &str) -> Option<TraceOutcome> {
    match s.to_ascii_lowercase().as_str() {
        "success" | "ok" | "true" => Some(TraceOutcome::Success),
        "failure" | "error" | "fail" | "false" => Some(TraceOutcome::Failure),
        "timeout" => Some(TraceOutcome::Timeout),
        "ignored" => Some(TraceOutcome::Ignored),
        other => {
            let code: u16 = other.parse().ok()?;
            match code {
                100..=399 => Some(TraceOutcome::Success),
                429 | 500..=599 => Some(TraceOutcome::Failure),
                400..=499 => Some(TraceOutcome::Ignored),
                _ => None,
            }
        }
    }
}

/// `2024-06-11 14:03:07.250 UTC` for Unix epoch milliseconds.
#[must_use]
pub fn format_epoch_ms(ms: f64) -> String {
    let total_ms = ms.max(0.0).round() as u64;
    let (secs, millis) = (total_ms / 1000, total_ms % 1000);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_have_a_disruption() {
        for name in BUILTIN {
            let s = builtin(name).unwrap();
            assert_eq!(s.name, name);
            assert!(s.disruption().is_some(), "{name}");
        }
        assert!(builtin("nope").is_none());
    }

    #[test]
    fn scenario_errors_name_the_field() {
        let e = Scenario::from_json(
            r#"{"duration": "60s", "clients": {"rate": 10}, "downstream": {"capacity": 0,
                "latency": {"median": "50ms", "p99": "10ms"}}}"#,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("downstream.capacity: must be > 0"), "{text}");
        assert!(text.contains("downstream.latency.p99"), "{text}");
        let e = Scenario::from_json(
            r#"{"duration": "60s", "clients": {"rate": 10, "burst": 1}, "downstream": {"capacity": 1,
                "latency": {"median": "50ms", "p99": "60ms"}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `burst`"), "{e}");
    }

    #[test]
    fn rates_and_windows_by_time() {
        let s = builtin("overload").unwrap();
        assert_eq!(s.rate_at(0), 100.0);
        assert_eq!(s.rate_at(15 * SEC), 300.0);
        assert_eq!(s.rate_at(30 * SEC), 100.0);
        let s = builtin("outage").unwrap();
        assert_eq!(s.window_at(20 * SEC).unwrap().mode, Mode::Unreachable);
        assert!(s.window_at(45 * SEC).is_none());
        assert_eq!(s.disruption(), Some((15 * SEC, 45 * SEC)));
    }

    #[test]
    fn traces_parse_outcomes_headers_and_status_codes() {
        let t = Trace::from_csv(
            "t",
            "timestamp_ms,outcome,latency_ms\n# note\n20,503,5\n10,ok,1.5\n30,404,2\n40,timeout,1000\n",
        )
        .unwrap();
        let outcomes: Vec<_> = t.rows.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                TraceOutcome::Success,
                TraceOutcome::Failure,
                TraceOutcome::Ignored,
                TraceOutcome::Timeout
            ]
        );
        assert_eq!(t.origin_ms(), 10.0);
        let e = Trace::from_csv("t", "1,ok,1\n2,maybe,1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Trace::from_csv("t", "1,ok\n").is_err());
        assert!(Trace::from_csv("t", "").is_err());
    }

    #[test]
    fn epoch_dates() {
        assert_eq!(format_epoch_ms(0.0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            format_epoch_ms(1_718_114_587_250.0),
            "2024-06-11 14:03:07.250 UTC"
        );
    }
}

//! Health checks: a registry of named checks that the core schedules and the host runs.
//!
//! The core plans; the host acts. [`HealthRegistry::due`] says which checks to start now and
//! the deadline of each (`deadline = now + timeout`); the host runs them concurrently, cancels
//! any still running at its deadline, and hands each result to [`HealthRegistry::report`]. The
//! registry turns results into a per-check status with hysteresis, an overall
//! [`HealthStatus`], a JSON report shaped like the seed's, and events.
//!
//! ```text
//! loop {
//!     for d in registry.due(now) { start check d.id, cancel it at d.deadline }
//!     on a check's result:  registry.report(id, result, now)
//!     on the timer:         registry.expire(now)      // due(now) also expires first
//!     drain registry.poll_event() until None; arm one timer at registry.poll_timeout()
//! }
//! ```
//!
//! ## Semantics, pinned
//! - **Schedule.** A newly registered check is due at once. A check runs again `interval` after
//!   its previous run *started* (start-to-start, like a Kubernetes `periodSeconds`), so its
//!   rhythm does not drift with its latency; a check is never started while it is running, so
//!   a run that outlasts the interval makes the check due the moment it ends. An on-demand
//!   [`HealthRegistry::due_all`] starts every idle check and restarts its rhythm from there.
//! - **Deadlines.** A run started at `s` must report *before* `s + timeout`. A result at or after
//!   the deadline — through [`HealthRegistry::expire`] or a late [`HealthRegistry::report`] —
//!   is a failure with error `"timeout"` and latency `timeout`, whatever the host said.
//! - **Late reports.** A report for a check that is not running (it already timed out, or the
//!   result was reported twice) is ignored and counted in [`HealthMetrics::ignored_reports`]:
//!   timeouts race with results by nature, so this is not misuse. A report for an id that is
//!   not registered (never, or unregistered since) is [`UsageError::UnknownCheck`]; ids are
//!   never reused, so a stale id is always caught.
//! - **Hysteresis** (as the kubelet's prober): a check becomes `unhealthy` after
//!   `failureThreshold` consecutive failures and `healthy` after `successThreshold`
//!   consecutive successes; a shorter run leaves its status unchanged. A new check is
//!   `pending` until one of the thresholds is first met.
//! - **Overall status.** `unhealthy` if any critical check is not `healthy`; else `degraded`
//!   if any non-critical check is not `healthy` or any breaker is `open`, `halfOpen` or
//!   `forcedOpen`; else `healthy`. A `pending` check counts as failing: a service whose
//!   critical dependency has not yet answered is not ready (a Kubernetes readiness probe also
//!   starts as failed). `halfOpen` counts because most calls are still refused while the
//!   breaker probes; `closed` and `disabled` breakers admit every call and do not count.
//! - **Errors** are host text and untrusted: kept to [`MAX_ERROR_BYTES`] bytes (cut on a char
//!   boundary). A failure without text (none, or empty) reports `"failed"`; the error of a
//!   success is dropped.
//! - **Order** is by check name everywhere (due lists, report, events of one input).
//! - **Time** is clamped: `now` is `max(now, last_seen)`, so a clock that steps back can
//!   neither shorten a deadline nor run a check early. Inputs without `now` (`register`,
//!   `set_breaker`...) stamp their events with the last instant seen; a timeout noticed late
//!   (by an `expire` or `due` after the deadline) is stamped with that call's `now`.

use core::fmt;
use core::time::Duration;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigDuration;
use crate::error::{ConfigError, Issues, UsageError};
use crate::event::{BreakerState, EventQueue};
use crate::time::{duration_nanos, nanos_to_millis_f64, Instant, Monotonic};
use crate::tree::Node;

/// The longest error text kept per check, in bytes. Longer text is cut at the last char
/// boundary at or before this length.
pub const MAX_ERROR_BYTES: usize = 512;

/// The error text of a run that passed its deadline.
pub const TIMEOUT_ERROR: &str = "timeout";

/// The error text of a failure the host gave no text for.
pub const DEFAULT_ERROR: &str = "failed";

/// One check's settings: `{"timeout": "5s", "critical": true, "interval": "10s",
/// "failureThreshold": 1, "successThreshold": 1}` (the defaults; the seed's timeout and
/// criticality).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CheckConfig {
    /// A run that has not reported by `start + timeout` fails with error `"timeout"`.
    pub timeout: ConfigDuration,
    /// A failing critical check makes the report `unhealthy` (HTTP 503); a failing
    /// non-critical one only `degraded` (HTTP 200).
    pub critical: bool,
    /// Time from one run's start to the next run's start.
    pub interval: ConfigDuration,
    /// Consecutive failures that turn the check `unhealthy` (>= 1).
    pub failure_threshold: u32,
    /// Consecutive successes that turn the check `healthy` (>= 1).
    pub success_threshold: u32,
}

// The config types read from a tree (`crate::read`), as their derived `Deserialize` reads them.

impl crate::read::FromTree for CheckConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        let d = CheckConfig::default();
        crate::read::read_struct!(
            node,
            at,
            "struct CheckConfig",
            CheckConfig {
                timeout: "timeout" = d.timeout,
                critical: "critical" = d.critical,
                interval: "interval" = d.interval,
                failure_threshold: "failureThreshold" = d.failure_threshold,
                success_threshold: "successThreshold" = d.success_threshold,
            }
        )
    }
}

impl crate::read::FromTree for HealthConfig {
    fn read(node: crate::tree::Node, at: &crate::tree::At<'_>) -> Result<Self, crate::tree::Error> {
        crate::read::read_struct!(
            node,
            at,
            "struct HealthConfig",
            HealthConfig {
                checks: "checks" = BTreeMap::new(),
            }
        )
    }
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            timeout: ConfigDuration::from_secs(5),
            critical: true,
            interval: ConfigDuration::from_secs(10),
            failure_threshold: 1,
            success_threshold: 1,
        }
    }
}

impl CheckConfig {
    /// This config with `timeout` replaced.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = ConfigDuration(timeout);
        self
    }

    /// This config with `critical` replaced.
    #[must_use]
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// This config with `interval` replaced.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = ConfigDuration(interval);
        self
    }

    /// This config with `failureThreshold` replaced.
    #[must_use]
    pub fn with_failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n;
        self
    }

    /// This config with `successThreshold` replaced.
    #[must_use]
    pub fn with_success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n;
        self
    }

    /// Refuse zero durations (a zero timeout fails every run before it starts; a zero
    /// interval would run the check in a busy loop) and zero thresholds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        if self.timeout.nanos() == 0 {
            issues.push("timeout", "must be > 0, got 0");
        }
        if self.interval.nanos() == 0 {
            issues.push("interval", "must be > 0, got 0");
        }
        if self.failure_threshold == 0 {
            issues.push("failureThreshold", "must be >= 1, got 0");
        }
        if self.success_threshold == 0 {
            issues.push("successThreshold", "must be >= 1, got 0");
        }
        issues.finish(())
    }

    /// Parse and validate one check's config.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config = <CheckConfig as crate::read::FromTree>::from_json_str(text)?;
        config.validate()?;
        Ok(config)
    }
}

/// A registry's checks: `{"checks": {name: CheckConfig}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HealthConfig {
    /// The checks by name.
    #[serde(default)]
    pub checks: BTreeMap<String, CheckConfig>,
}

impl HealthConfig {
    /// Refuse empty names and every bad check config, with paths like
    /// `checks.db.failureThreshold`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::new();
        for (name, check) in &self.checks {
            if name.is_empty() {
                issues.push("checks", "a check name must not be empty");
            }
            if let Err(e) = check.validate() {
                issues.extend(&crate::error::join("checks", name), e);
            }
        }
        issues.finish(())
    }

    /// Parse and validate a registry config.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config = <HealthConfig as crate::read::FromTree>::from_json_str(text)?;
        config.validate()?;
        Ok(config)
    }
}

/// A registered check's handle. Never reused within a registry, so a handle kept past
/// `unregister` is reported as unknown rather than mistaken for a newer check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckId(u32);

impl CheckId {
    /// The raw value (for bindings that pass handles as integers).
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// A handle from its raw value. A value the registry did not hand out is simply unknown.
    #[must_use]
    pub const fn from_raw(raw: u32) -> CheckId {
        CheckId(raw)
    }
}

/// The whole service's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum HealthStatus {
    /// Every check healthy and no breaker refusing calls.
    Healthy,
    /// Only non-critical checks failing (or pending), or a breaker open: serve, but say so.
    Degraded,
    /// A critical check failing (or pending): take this instance out of rotation.
    Unhealthy,
}

impl HealthStatus {
    /// `"healthy"`, `"degraded"` or `"unhealthy"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }

    /// The HTTP status a health endpoint answers with: 200, 200, 503. Degraded is 200 so that a
    /// failing optional dependency does not pull the instance out of a load balancer.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            HealthStatus::Healthy | HealthStatus::Degraded => 200,
            HealthStatus::Unhealthy => 503,
        }
    }

    /// The status named `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<HealthStatus> {
        [
            HealthStatus::Healthy,
            HealthStatus::Degraded,
            HealthStatus::Unhealthy,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum CheckStatus {
    /// No threshold met yet since registration. Counts as failing in the overall status.
    Pending,
    /// `successThreshold` successes in a row, and not `failureThreshold` failures since.
    Healthy,
    /// `failureThreshold` failures in a row, and not `successThreshold` successes since.
    Unhealthy,
}

impl CheckStatus {
    /// `"pending"`, `"healthy"` or `"unhealthy"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pending => "pending",
            CheckStatus::Healthy => "healthy",
            CheckStatus::Unhealthy => "unhealthy",
        }
    }

    /// The status named `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<CheckStatus> {
        [
            CheckStatus::Pending,
            CheckStatus::Healthy,
            CheckStatus::Unhealthy,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check to start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct DueCheck {
    /// Which check.
    pub id: CheckId,
    /// Cancel the run at this instant: `start + timeout`. A result at or after it is a timeout.
    pub deadline: Instant,
}

/// What one run of a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckResult<'a> {
    /// Whether the check passed.
    pub ok: bool,
    /// How long the run took, as the host measured it.
    pub latency: Duration,
    /// Why it failed (host text; capped at [`MAX_ERROR_BYTES`]). Ignored when `ok`.
    pub error: Option<&'a str>,
}

impl<'a> CheckResult<'a> {
    /// A passing run.
    #[must_use]
    pub const fn success(latency: Duration) -> CheckResult<'a> {
        CheckResult {
            ok: true,
            latency,
            error: None,
        }
    }

    /// A failing run and why.
    #[must_use]
    pub const fn failure(latency: Duration, error: &'a str) -> CheckResult<'a> {
        CheckResult {
            ok: false,
            latency,
            error: Some(error),
        }
    }
}

/// Something that changed in the registry, stamped with the (clamped) `now` that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthEvent {
    /// When.
    pub at: Instant,
    /// What.
    pub kind: HealthEventKind,
}

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthEventKind {
    /// A check's status changed.
    CheckChanged {
        /// Which check.
        check: CheckId,
        /// The status left.
        from: CheckStatus,
        /// The status entered.
        to: CheckStatus,
    },
    /// A run passed its deadline (queued before any `CheckChanged` it causes).
    TimedOut {
        /// Which check.
        check: CheckId,
    },
    /// The overall status changed (queued after the check changes that caused it).
    StatusChanged {
        /// The status left.
        from: HealthStatus,
        /// The status entered.
        to: HealthStatus,
    },
}

impl HealthEventKind {
    /// The event's public name (`"checkChanged"`, `"timedOut"`, `"statusChanged"`).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            HealthEventKind::CheckChanged { .. } => "checkChanged",
            HealthEventKind::TimedOut { .. } => "timedOut",
            HealthEventKind::StatusChanged { .. } => "statusChanged",
        }
    }
}

/// Counters and gauges of a registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HealthMetrics {
    /// Checks registered now.
    pub checks: u64,
    /// Checks `pending` now.
    pub pending: u64,
    /// Checks `healthy` now.
    pub healthy: u64,
    /// Checks `unhealthy` now.
    pub unhealthy: u64,
    /// Checks running now.
    pub running: u64,
    /// Runs started.
    pub runs: u64,
    /// Runs that passed.
    pub successes: u64,
    /// Runs that failed, timeouts included.
    pub failures: u64,
    /// Runs that passed their deadline.
    pub timeouts: u64,
    /// Reports ignored because the check was not running (late after a timeout, or twice).
    pub ignored_reports: u64,
    /// Check status changes.
    pub transitions: u64,
    /// Overall status changes.
    pub status_changes: u64,
}

#[derive(Clone, Copy, Debug)]
struct Run {
    started: Instant,
    deadline: Instant,
}

#[derive(Clone, Debug)]
struct Check {
    id: CheckId,
    name: String,
    config: CheckConfig,
    status: CheckStatus,
    consecutive_failures: u32,
    consecutive_successes: u32,
    next_due: Instant,
    running: Option<Run>,
    last_latency: Option<Duration>,
    /// The last run's error; meaningful only when `has_error`. Kept as one buffer so that
    /// repeated failures reuse its capacity.
    error: String,
    has_error: bool,
}

/// Whether a breaker in `state` makes the report degraded.
#[must_use]
pub const fn breaker_degrades(state: BreakerState) -> bool {
    matches!(
        state,
        BreakerState::Open | BreakerState::HalfOpen | BreakerState::ForcedOpen
    )
}

/// `text` cut to at most `max` bytes, on a char boundary.
#[must_use]
pub fn truncate_on_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The registry of named checks. See the [module docs](self) for the semantics.
#[derive(Clone, Debug)]
pub struct HealthRegistry {
    /// Sorted by name; few enough (tens) that lookups by id scan.
    checks: Vec<Check>,
    /// Sorted by name.
    breakers: Vec<(String, BreakerState)>,
    next_id: u32,
    clock: Monotonic,
    status: HealthStatus,
    events: EventQueue<HealthEvent>,
    metrics: HealthMetrics,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        HealthRegistry::new()
    }
}

impl HealthRegistry {
    /// An empty registry (healthy: nothing to fail).
    #[must_use]
    pub fn new() -> Self {
        HealthRegistry {
            checks: Vec::new(),
            breakers: Vec::new(),
            next_id: 0,
            clock: Monotonic::new(),
            status: HealthStatus::Healthy,
            events: EventQueue::new(),
            metrics: HealthMetrics::default(),
        }
    }

    /// A registry holding the config's checks. The starting status (unhealthy while a critical
    /// check is pending) is where the registry begins, not a change: no event is queued.
    pub fn from_config(config: HealthConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut registry = HealthRegistry::new();
        registry.checks.reserve_exact(config.checks.len());
        for (name, check) in config.checks {
            registry.register(&name, check)?;
        }
        while registry.events.pop().is_some() {}
        registry.metrics.status_changes = 0;
        Ok(registry)
    }

    /// Parse, validate and build.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        HealthRegistry::from_config(HealthConfig::from_json(text)?)
    }

    /// Add a check, due at once. Errors carry paths under `checks.<name>`.
    pub fn register(&mut self, name: &str, config: CheckConfig) -> Result<CheckId, ConfigError> {
        if name.is_empty() {
            return Err(ConfigError::new("checks", "a check name must not be empty"));
        }
        let path = format!("checks.{name}");
        config.validate().map_err(|e| e.within(&path))?;
        let at = match self.checks.binary_search_by(|c| c.name.as_str().cmp(name)) {
            Ok(_) => return Err(ConfigError::new(path, "already registered")),
            Err(at) => at,
        };
        let id = CheckId(self.next_id);
        self.next_id = self
            .next_id
            .checked_add(1)
            .ok_or_else(|| ConfigError::new(path, "too many registrations for one registry"))?;
        self.checks.insert(
            at,
            Check {
                id,
                name: name.to_owned(),
                config,
                status: CheckStatus::Pending,
                consecutive_failures: 0,
                consecutive_successes: 0,
                next_due: Instant::ZERO,
                running: None,
                last_latency: None,
                error: String::new(),
                has_error: false,
            },
        );
        self.update_status(self.clock.last());
        Ok(id)
    }

    /// Remove a check; `false` when no check has that name. A result still coming for it is
    /// then [`UsageError::UnknownCheck`].
    pub fn unregister(&mut self, name: &str) -> bool {
        match self.position_by_name(name) {
            Some(i) => {
                self.checks.remove(i);
                self.update_status(self.clock.last());
                true
            }
            None => false,
        }
    }

    /// The id of the check named `name`.
    #[must_use]
    pub fn id(&self, name: &str) -> Option<CheckId> {
        self.position_by_name(name).map(|i| self.checks[i].id)
    }

    /// The name of check `id`.
    #[must_use]
    pub fn name(&self, id: CheckId) -> Option<&str> {
        self.position(id).map(|i| self.checks[i].name.as_str())
    }

    /// Check `id`'s config.
    #[must_use]
    pub fn config(&self, id: CheckId) -> Option<&CheckConfig> {
        self.position(id).map(|i| &self.checks[i].config)
    }

    /// Check `id`'s status.
    #[must_use]
    pub fn check_status(&self, id: CheckId) -> Option<CheckStatus> {
        self.position(id).map(|i| self.checks[i].status)
    }

    /// Whether check `id` is running.
    #[must_use]
    pub fn is_running(&self, id: CheckId) -> bool {
        self.position(id)
            .is_some_and(|i| self.checks[i].running.is_some())
    }

    /// Every check's id, in name order.
    pub fn ids(&self) -> impl Iterator<Item = CheckId> + '_ {
        self.checks.iter().map(|c| c.id)
    }

    /// Checks registered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether no check is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Start every idle check whose next run time has come (a new check: at once), in name
    /// order, with `deadline = now + timeout`. Runs past their deadline are expired first, so
    /// that a host calling only `due` on its timer still sees timeouts.
    #[must_use = "the returned checks are marked running: run them and report"]
    pub fn due(&mut self, now: Instant) -> Vec<DueCheck> {
        let mut due = Vec::new();
        self.due_into(now, &mut due);
        due
    }

    /// [`HealthRegistry::due`] into a buffer the host reuses (cleared first), so that a
    /// periodic host loop does not allocate.
    pub fn due_into(&mut self, now: Instant, out: &mut Vec<DueCheck>) {
        out.clear();
        let now = self.clock.observe(now);
        self.expire_at(now);
        self.start(now, false, out);
    }

    /// Start every idle check now (an on-demand `check()`), in name order; running checks are
    /// left to finish. Each started check's next periodic run is `interval` after this one.
    #[must_use = "the returned checks are marked running: run them and report"]
    pub fn due_all(&mut self, now: Instant) -> Vec<DueCheck> {
        let mut due = Vec::new();
        self.due_all_into(now, &mut due);
        due
    }

    /// [`HealthRegistry::due_all`] into a buffer the host reuses (cleared first).
    pub fn due_all_into(&mut self, now: Instant, out: &mut Vec<DueCheck>) {
        out.clear();
        let now = self.clock.observe(now);
        self.expire_at(now);
        self.start(now, true, out);
    }

    fn start(&mut self, now: Instant, all: bool, out: &mut Vec<DueCheck>) {
        for check in &mut self.checks {
            if check.running.is_some() || (!all && check.next_due > now) {
                continue;
            }
            let deadline = now.saturating_add_nanos(check.config.timeout.nanos());
            check.running = Some(Run {
                started: now,
                deadline,
            });
            self.metrics.runs += 1;
            out.push(DueCheck {
                id: check.id,
                deadline,
            });
        }
    }

    /// When to call back: the earliest next run of an idle check or deadline of a running one
    /// (possibly already past); `None` without checks.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.checks
            .iter()
            .map(|c| c.running.map_or(c.next_due, |r| r.deadline))
            .min()
    }

    /// Record one run's result. A result at or after the run's deadline is a timeout; one for
    /// a check that is not running is ignored (see the module docs).
    pub fn report(
        &mut self,
        id: CheckId,
        result: CheckResult<'_>,
        now: Instant,
    ) -> Result<(), UsageError> {
        let now = self.clock.observe(now);
        let i = self.position(id).ok_or(UsageError::UnknownCheck)?;
        let Some(run) = self.checks[i].running else {
            self.metrics.ignored_reports += 1;
            return Ok(());
        };
        if now >= run.deadline {
            self.time_out(i, run, now);
        } else {
            let error = if result.ok {
                None
            } else {
                Some(
                    result
                        .error
                        .filter(|e| !e.is_empty())
                        .unwrap_or(DEFAULT_ERROR),
                )
            };
            self.finish(i, run, result.latency, error, now);
        }
        self.update_status(now);
        Ok(())
    }

    /// Fail every run at or past its deadline with error `"timeout"`.
    pub fn expire(&mut self, now: Instant) {
        let now = self.clock.observe(now);
        self.expire_at(now);
    }

    fn expire_at(&mut self, now: Instant) {
        let mut any = false;
        for i in 0..self.checks.len() {
            if let Some(run) = self.checks[i].running {
                if now >= run.deadline {
                    self.time_out(i, run, now);
                    any = true;
                }
            }
        }
        if any {
            self.update_status(now);
        }
    }

    fn time_out(&mut self, i: usize, run: Run, now: Instant) {
        self.metrics.timeouts += 1;
        let check = self.checks[i].id;
        self.events.push(HealthEvent {
            at: now,
            kind: HealthEventKind::TimedOut { check },
        });
        let latency = run.deadline.saturating_duration_since(run.started);
        self.finish(i, run, latency, Some(TIMEOUT_ERROR), now);
    }

    /// Apply one result: counters, hysteresis, next run time. `error` is `None` on success.
    fn finish(&mut self, i: usize, run: Run, latency: Duration, error: Option<&str>, now: Instant) {
        let check = &mut self.checks[i];
        check.running = None;
        check.next_due = run
            .started
            .saturating_add_nanos(check.config.interval.nanos());
        check.last_latency = Some(latency);
        check.error.clear();
        check.has_error = error.is_some();
        let from = check.status;
        match error {
            None => {
                self.metrics.successes += 1;
                check.consecutive_failures = 0;
                check.consecutive_successes = check.consecutive_successes.saturating_add(1);
                if check.consecutive_successes >= check.config.success_threshold {
                    check.status = CheckStatus::Healthy;
                }
            }
            Some(text) => {
                self.metrics.failures += 1;
                check
                    .error
                    .push_str(truncate_on_char_boundary(text, MAX_ERROR_BYTES));
                check.consecutive_successes = 0;
                check.consecutive_failures = check.consecutive_failures.saturating_add(1);
                if check.consecutive_failures >= check.config.failure_threshold {
                    check.status = CheckStatus::Unhealthy;
                }
            }
        }
        if check.status != from {
            self.metrics.transitions += 1;
            let kind = HealthEventKind::CheckChanged {
                check: check.id,
                from,
                to: check.status,
            };
            self.events.push(HealthEvent { at: now, kind });
        }
    }

    /// Tell the registry a breaker's state (by the host's name for it). `open`, `halfOpen` and
    /// `forcedOpen` make the report at least degraded; the breaker is listed in the report
    /// until [`HealthRegistry::remove_breaker`].
    pub fn set_breaker(&mut self, name: &str, state: BreakerState) {
        match self
            .breakers
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
        {
            Ok(i) => self.breakers[i].1 = state,
            Err(i) => self.breakers.insert(i, (name.to_owned(), state)),
        }
        self.update_status(self.clock.last());
    }

    /// Stop listing a breaker; `false` when it was not listed.
    pub fn remove_breaker(&mut self, name: &str) -> bool {
        match self
            .breakers
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
        {
            Ok(i) => {
                self.breakers.remove(i);
                self.update_status(self.clock.last());
                true
            }
            Err(_) => false,
        }
    }

    /// A breaker's last known state.
    #[must_use]
    pub fn breaker(&self, name: &str) -> Option<BreakerState> {
        self.breakers
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.breakers[i].1)
    }

    /// The overall status as of the last input. Runs past their deadline count only once
    /// expired: call [`HealthRegistry::expire`] (or `due`) with the current time first.
    #[must_use]
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    fn compute_status(&self) -> HealthStatus {
        let mut status = HealthStatus::Healthy;
        for check in &self.checks {
            if check.status != CheckStatus::Healthy {
                if check.config.critical {
                    return HealthStatus::Unhealthy;
                }
                status = HealthStatus::Degraded;
            }
        }
        if self.breakers.iter().any(|(_, s)| breaker_degrades(*s)) {
            status = HealthStatus::Degraded;
        }
        status
    }

    fn update_status(&mut self, at: Instant) {
        let to = self.compute_status();
        if to != self.status {
            let from = self.status;
            self.status = to;
            self.metrics.status_changes += 1;
            self.events.push(HealthEvent {
                at,
                kind: HealthEventKind::StatusChanged { from, to },
            });
        }
    }

    /// The report, shaped like the seed's with more detail:
    ///
    /// ```json
    /// {"status": "degraded", "timestamp": "<host text>",
    ///  "checks": {"db": {"status": "healthy", "critical": true, "latencyMs": 12, "error": null,
    ///                    "consecutiveFailures": 0, "consecutiveSuccesses": 3}},
    ///  "breakers": {"payments": {"state": "open"}}}
    /// ```
    ///
    /// `latencyMs` and `error` describe the last finished run (`null` before any, `error`
    /// `null` when it passed); with hysteresis a `healthy` check may show the error of a failure
    /// below its threshold. Latencies are whole milliseconds as integers, else fractional.
    /// Keys are in name order.
    #[must_use]
    pub fn report_json(&self, timestamp: &str) -> Value {
        Value::from(self.report_tree(timestamp))
    }

    /// The report of [`HealthRegistry::report_json`] as a tree, every object's keys sorted as
    /// serde_json's map sorts them (so the npm package's report has the keys in the same
    /// order as Python's and C's JSON).
    #[must_use]
    pub fn report_tree(&self, timestamp: &str) -> Node {
        use crate::write::{pair as entry, text};
        let checks = self
            .checks
            .iter()
            .map(|c| {
                let check = Node::map(vec![
                    entry("status", text(c.status.as_str())),
                    entry("critical", Node::Bool(c.config.critical)),
                    entry("latencyMs", c.last_latency.map_or(Node::Null, millis_node)),
                    entry(
                        "error",
                        if c.has_error {
                            text(&c.error)
                        } else {
                            Node::Null
                        },
                    ),
                    entry(
                        "consecutiveFailures",
                        Node::PosInt(u64::from(c.consecutive_failures)),
                    ),
                    entry(
                        "consecutiveSuccesses",
                        Node::PosInt(u64::from(c.consecutive_successes)),
                    ),
                ]);
                (c.name.clone(), check)
            })
            .collect();
        let breakers = self
            .breakers
            .iter()
            .map(|(name, state)| {
                let breaker = Node::map(vec![entry("state", text(state.as_str()))]);
                (name.clone(), breaker)
            })
            .collect();
        Node::map(vec![
            entry("status", text(self.status.as_str())),
            entry("timestamp", text(timestamp)),
            entry("checks", Node::map(checks)),
            entry("breakers", Node::map(breakers)),
        ])
    }

    /// The oldest queued event. Drain until `None` after every input.
    pub fn poll_event(&mut self) -> Option<HealthEvent> {
        self.events.pop()
    }

    /// Events dropped because the host did not drain them.
    #[must_use]
    pub fn dropped_events(&self) -> u64 {
        self.events.dropped()
    }

    /// Counters and gauges.
    #[must_use]
    pub fn metrics(&self) -> HealthMetrics {
        let mut m = self.metrics;
        m.checks = self.checks.len() as u64;
        for c in &self.checks {
            match c.status {
                CheckStatus::Pending => m.pending += 1,
                CheckStatus::Healthy => m.healthy += 1,
                CheckStatus::Unhealthy => m.unhealthy += 1,
            }
            m.running += u64::from(c.running.is_some());
        }
        m
    }

    fn position(&self, id: CheckId) -> Option<usize> {
        self.checks.iter().position(|c| c.id == id)
    }

    fn position_by_name(&self, name: &str) -> Option<usize> {
        self.checks
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
    }
}

/// Milliseconds as a JSON number: an integer when whole, so reports read like the seed's.
fn millis_node(d: Duration) -> Node {
    let ns = duration_nanos(d);
    if ns % 1_000_000 == 0 {
        Node::PosInt(ns / 1_000_000)
    } else {
        Node::Float(nanos_to_millis_f64(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MS: u64 = 1_000_000;

    fn t(ms: u64) -> Instant {
        Instant::from_nanos(ms * MS)
    }

    fn cfg() -> CheckConfig {
        CheckConfig::default()
            .with_timeout(Duration::from_millis(100))
            .with_interval(Duration::from_millis(1000))
    }

    fn drain(r: &mut HealthRegistry) -> Vec<HealthEventKind> {
        std::iter::from_fn(|| r.poll_event())
            .map(|e| e.kind)
            .collect()
    }

    fn ok(ms: u64) -> CheckResult<'static> {
        CheckResult::success(Duration::from_millis(ms))
    }

    #[test]
    fn config_defaults_and_validation_paths() {
        let c = CheckConfig::from_json("{}").unwrap();
        assert_eq!(c, CheckConfig::default());
        assert_eq!(c.timeout.get(), Duration::from_secs(5));
        assert_eq!(c.interval.get(), Duration::from_secs(10));
        assert!(c.critical);
        assert_eq!((c.failure_threshold, c.success_threshold), (1, 1));

        let e = HealthConfig::from_json(
            r#"{"checks": {"db": {"failureThreshold": 0, "timeout": 0}, "ok": {}}}"#,
        )
        .unwrap_err();
        let texts: Vec<String> = e.issues().iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "checks.db.timeout: must be > 0, got 0",
                "checks.db.failureThreshold: must be >= 1, got 0"
            ]
        );
        let e = HealthConfig::from_json(
            r#"{"checks": {"db": {"interval": "0s", "successThreshold": 0}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.issues()[0].to_string(),
            "checks.db.interval: must be > 0, got 0"
        );
        assert_eq!(
            e.issues()[1].to_string(),
            "checks.db.successThreshold: must be >= 1, got 0"
        );
        let e = HealthConfig::from_json(r#"{"checks": {"db": {"critcal": false}}}"#).unwrap_err();
        assert!(e.issues()[0].path.starts_with("checks.db"), "{e}");
        assert!(e.to_string().contains("unknown field `critcal`"), "{e}");
        let e = HealthConfig::from_json(r#"{"checks": {"": {}}}"#).unwrap_err();
        assert_eq!(e.to_string(), "checks: a check name must not be empty");
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = HealthConfig::from_json(
            r#"{"checks": {"db": {"timeout": "250ms", "critical": false, "interval": "1.5s",
                "failureThreshold": 3, "successThreshold": 2}}}"#,
        )
        .unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(HealthConfig::from_json(&text).unwrap(), c);
        assert_eq!(c.checks["db"].interval.get(), Duration::from_millis(1500));
    }

    #[test]
    fn register_refuses_duplicates_and_bad_configs() {
        let mut r = HealthRegistry::new();
        let db = r.register("db", cfg()).unwrap();
        let e = r.register("db", cfg()).unwrap_err();
        assert_eq!(e.to_string(), "checks.db: already registered");
        let e = r
            .register("cache", cfg().with_failure_threshold(0))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "checks.cache.failureThreshold: must be >= 1, got 0"
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r.id("db"), Some(db));
        assert_eq!(r.name(db), Some("db"));
        assert!(r.unregister("db"));
        assert!(!r.unregister("db"));
        let again = r.register("db", cfg()).unwrap();
        assert_ne!(again, db, "ids are never reused");
        assert_eq!(r.report(db, ok(1), t(0)), Err(UsageError::UnknownCheck));
    }

    #[test]
    fn fresh_checks_are_due_at_once_in_name_order_then_every_interval() {
        let mut r = HealthRegistry::new();
        let b = r.register("b", cfg()).unwrap();
        let a = r
            .register("a", cfg().with_interval(Duration::from_millis(500)))
            .unwrap();
        assert_eq!(r.poll_timeout(), Some(Instant::ZERO));
        let due = r.due(t(10));
        assert_eq!(
            due,
            [
                DueCheck {
                    id: a,
                    deadline: t(110)
                },
                DueCheck {
                    id: b,
                    deadline: t(110)
                }
            ]
        );
        assert!(r.due(t(20)).is_empty(), "running checks are not due again");
        assert_eq!(r.poll_timeout(), Some(t(110)));
        r.report(a, ok(30), t(40)).unwrap();
        r.report(b, ok(35), t(45)).unwrap();
        // start-to-start: a at 10 + 500, b at 10 + 1000.
        assert_eq!(r.poll_timeout(), Some(t(510)));
        assert!(r.due(t(509)).is_empty());
        assert_eq!(
            r.due(t(510)),
            [DueCheck {
                id: a,
                deadline: t(610)
            }]
        );
        r.report(a, ok(1), t(511)).unwrap();
        assert_eq!(r.poll_timeout(), Some(t(1010)));
        assert_eq!(r.metrics().runs, 3);
    }

    #[test]
    fn due_all_starts_idle_checks_and_restarts_their_rhythm() {
        let mut r = HealthRegistry::new();
        let a = r.register("a", cfg()).unwrap();
        let b = r
            .register("b", cfg().with_timeout(Duration::from_millis(1000)))
            .unwrap();
        let _ = r.due(t(0));
        r.report(a, ok(1), t(5)).unwrap();
        let due = r.due_all(t(300));
        assert_eq!(
            due,
            [DueCheck {
                id: a,
                deadline: t(400)
            }],
            "b is still running"
        );
        r.report(a, ok(1), t(301)).unwrap();
        assert_eq!(r.poll_timeout(), Some(t(1000)), "b's deadline");
        r.expire(t(1000));
        assert_eq!(r.check_status(b), Some(CheckStatus::Unhealthy));
        assert_eq!(
            r.poll_timeout(),
            Some(t(1000)),
            "b's next run, start-to-start"
        );
        assert_eq!(
            r.due(t(1000)),
            [DueCheck {
                id: b,
                deadline: t(2000)
            }]
        );
        assert_eq!(
            r.poll_timeout(),
            Some(t(1300)),
            "a runs again at 300 + 1000"
        );
    }

    #[test]
    fn thresholds_apply_hysteresis_from_pending_and_back() {
        let mut r = HealthRegistry::new();
        let c = cfg().with_failure_threshold(3).with_success_threshold(2);
        let db = r.register("db", c).unwrap();
        let mut now = 0;
        let mut run = |r: &mut HealthRegistry, pass: bool| {
            let _ = r.due_all(t(now));
            let res = if pass {
                ok(1)
            } else {
                CheckResult::failure(Duration::from_millis(1), "down")
            };
            r.report(db, res, t(now + 1)).unwrap();
            now += 10;
            r.check_status(db).unwrap()
        };
        assert_eq!(run(&mut r, false), CheckStatus::Pending);
        assert_eq!(run(&mut r, true), CheckStatus::Pending);
        assert_eq!(run(&mut r, true), CheckStatus::Healthy);
        assert_eq!(run(&mut r, false), CheckStatus::Healthy);
        assert_eq!(run(&mut r, false), CheckStatus::Healthy);
        assert_eq!(
            run(&mut r, true),
            CheckStatus::Healthy,
            "a success resets the failure run"
        );
        assert_eq!(run(&mut r, false), CheckStatus::Healthy);
        assert_eq!(run(&mut r, false), CheckStatus::Healthy);
        assert_eq!(run(&mut r, false), CheckStatus::Unhealthy);
        assert_eq!(run(&mut r, true), CheckStatus::Unhealthy);
        assert_eq!(run(&mut r, true), CheckStatus::Healthy);
        let kinds = drain(&mut r);
        let changes: Vec<(CheckStatus, CheckStatus)> = kinds
            .iter()
            .filter_map(|k| match *k {
                HealthEventKind::CheckChanged { from, to, .. } => Some((from, to)),
                _ => None,
            })
            .collect();
        use CheckStatus::*;
        assert_eq!(
            changes,
            [
                (Pending, Healthy),
                (Healthy, Unhealthy),
                (Unhealthy, Healthy)
            ]
        );
        assert_eq!(r.metrics().transitions, 3);
    }

    #[test]
    fn overall_status_critical_noncritical_pending_and_breakers() {
        let mut r = HealthRegistry::new();
        assert_eq!(r.status(), HealthStatus::Healthy);
        let db = r.register("db", cfg()).unwrap();
        assert_eq!(
            r.status(),
            HealthStatus::Unhealthy,
            "a pending critical check"
        );
        let api = r.register("api", cfg().with_critical(false)).unwrap();
        let _ = r.due(t(0));
        r.report(db, ok(1), t(1)).unwrap();
        assert_eq!(
            r.status(),
            HealthStatus::Degraded,
            "a pending non-critical check"
        );
        r.report(
            api,
            CheckResult::failure(Duration::from_millis(2), "503"),
            t(2),
        )
        .unwrap();
        assert_eq!(r.status(), HealthStatus::Degraded);
        assert_eq!(r.status().http_status(), 200);
        assert!(r.unregister("api"));
        assert_eq!(r.status(), HealthStatus::Healthy);
        for (state, degrades) in [
            (BreakerState::Open, true),
            (BreakerState::HalfOpen, true),
            (BreakerState::ForcedOpen, true),
            (BreakerState::Closed, false),
            (BreakerState::Disabled, false),
        ] {
            r.set_breaker("payments", state);
            let want = if degrades {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            };
            assert_eq!(r.status(), want, "{state}");
        }
        r.set_breaker("payments", BreakerState::Open);
        assert!(r.remove_breaker("payments"));
        assert!(!r.remove_breaker("payments"));
        assert_eq!(r.status(), HealthStatus::Healthy);
        let _ = r.due(t(20_000));
        r.report(
            db,
            CheckResult::failure(Duration::ZERO, "refused"),
            t(20_001),
        )
        .unwrap();
        r.set_breaker("payments", BreakerState::Open);
        assert_eq!(
            r.status(),
            HealthStatus::Unhealthy,
            "critical failure outranks a breaker"
        );
        assert_eq!(r.status().http_status(), 503);
    }

    #[test]
    fn a_run_past_its_deadline_fails_with_timeout_and_a_late_report_is_ignored() {
        let mut r = HealthRegistry::new();
        let db = r.register("db", cfg()).unwrap();
        let _ = r.due(t(0));
        drain(&mut r);
        r.expire(t(99));
        assert!(r.is_running(db));
        r.expire(t(100));
        assert!(!r.is_running(db));
        let rep = r.report_json("x");
        assert_eq!(rep["checks"]["db"]["error"], "timeout");
        assert_eq!(rep["checks"]["db"]["latencyMs"], 100);
        r.report(db, ok(150), t(150)).unwrap();
        assert_eq!(r.check_status(db), Some(CheckStatus::Unhealthy));
        let m = r.metrics();
        assert_eq!(
            (m.timeouts, m.failures, m.successes, m.ignored_reports),
            (1, 1, 0, 1)
        );
        assert_eq!(
            drain(&mut r),
            [
                HealthEventKind::TimedOut { check: db },
                HealthEventKind::CheckChanged {
                    check: db,
                    from: CheckStatus::Pending,
                    to: CheckStatus::Unhealthy
                },
            ]
        );
    }

    #[test]
    fn a_success_reported_at_the_deadline_is_a_timeout() {
        let mut r = HealthRegistry::new();
        let db = r.register("db", cfg()).unwrap();
        let _ = r.due(t(0));
        r.report(db, ok(100), t(100)).unwrap();
        assert_eq!(r.check_status(db), Some(CheckStatus::Unhealthy));
        assert_eq!(r.report_json("")["checks"]["db"]["error"], "timeout");
        let _ = r.due(t(1000));
        r.report(db, ok(99), t(1099)).unwrap();
        assert_eq!(r.check_status(db), Some(CheckStatus::Healthy));
    }

    #[test]
    fn due_into_reuses_the_hosts_buffer() {
        let mut r = HealthRegistry::new();
        let db = r.register("db", cfg()).unwrap();
        let mut buf = vec![DueCheck {
            id: CheckId::from_raw(99),
            deadline: t(1),
        }];
        r.due_into(t(0), &mut buf);
        assert_eq!(
            buf,
            [DueCheck {
                id: db,
                deadline: t(100)
            }]
        );
        let cap = buf.capacity();
        r.due_all_into(t(1), &mut buf);
        assert!(buf.is_empty(), "db is running");
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn due_expires_overdue_runs_before_planning() {
        let mut r = HealthRegistry::new();
        let db = r
            .register("db", cfg().with_interval(Duration::from_millis(50)))
            .unwrap();
        let _ = r.due(t(0));
        let due = r.due(t(100));
        assert_eq!(
            due,
            [DueCheck {
                id: db,
                deadline: t(200)
            }],
            "expired at 100, due since 50"
        );
        assert_eq!(r.metrics().timeouts, 1);
    }

    #[test]
    fn time_going_backwards_is_clamped() {
        let mut r = HealthRegistry::new();
        let db = r.register("db", cfg()).unwrap();
        drain(&mut r);
        let _ = r.due(t(500));
        assert!(r.due(t(10)).is_empty());
        r.expire(t(0));
        assert!(r.is_running(db), "a step back cannot expire a run");
        r.report(db, ok(5), t(0)).unwrap();
        assert_eq!(r.check_status(db), Some(CheckStatus::Healthy));
        assert_eq!(
            r.poll_timeout(),
            Some(t(1500)),
            "rhythm anchored at the clamped start"
        );
        assert!(
            r.due(t(1)).is_empty(),
            "clamped to 500, not due before 1500"
        );
        assert_eq!(r.due(t(1500)).len(), 1);
        let e = r.poll_event().unwrap();
        assert_eq!(e.at, t(500), "events carry the clamped instant");
    }

    #[test]
    fn errors_are_capped_on_a_char_boundary_and_defaulted() {
        let mut r = HealthRegistry::new();
        let db = r.register("db", cfg()).unwrap();
        let long = format!("a{}", "é".repeat(400));
        let _ = r.due(t(0));
        r.report(db, CheckResult::failure(Duration::ZERO, &long), t(1))
            .unwrap();
        let rep = r.report_json("");
        let err = rep["checks"]["db"]["error"].as_str().unwrap();
        assert_eq!(err.len(), 511);
        assert_eq!(err, &long[..511]);
        let _ = r.due_all(t(2));
        r.report(
            db,
            CheckResult {
                ok: false,
                latency: Duration::ZERO,
                error: None,
            },
            t(3),
        )
        .unwrap();
        assert_eq!(r.report_json("")["checks"]["db"]["error"], "failed");
        let _ = r.due_all(t(4));
        r.report(
            db,
            CheckResult {
                ok: false,
                latency: Duration::ZERO,
                error: Some(""),
            },
            t(5),
        )
        .unwrap();
        assert_eq!(r.report_json("")["checks"]["db"]["error"], "failed");
        let _ = r.due_all(t(6));
        r.report(
            db,
            CheckResult {
                ok: true,
                latency: Duration::ZERO,
                error: Some("x"),
            },
            t(7),
        )
        .unwrap();
        assert_eq!(r.report_json("")["checks"]["db"]["error"], Value::Null);
        assert_eq!(truncate_on_char_boundary("héllo", 2), "h");
        assert_eq!(truncate_on_char_boundary("héllo", 3), "hé");
        assert_eq!(truncate_on_char_boundary("", 0), "");
    }

    #[test]
    fn report_json_has_the_seed_shape_and_more() {
        let mut r = HealthRegistry::from_json(
            r#"{"checks": {"db": {"timeout": 100}, "api": {"critical": false, "timeout": 100}}}"#,
        )
        .unwrap();
        assert!(
            r.poll_event().is_none(),
            "the starting status is not a change"
        );
        let db = r.id("db").unwrap();
        let api = r.id("api").unwrap();
        let _ = r.due(t(0));
        r.report(
            db,
            CheckResult::success(Duration::from_micros(12_500)),
            t(13),
        )
        .unwrap();
        r.report(
            api,
            CheckResult::failure(Duration::from_millis(7), "HTTP 502"),
            t(7),
        )
        .unwrap();
        r.set_breaker("payments", BreakerState::HalfOpen);
        let rep = r.report_json("2026-01-01T00:00:00.000Z");
        assert_eq!(
            rep,
            json!({
                "status": "degraded",
                "timestamp": "2026-01-01T00:00:00.000Z",
                "checks": {
                    "api": {"status": "unhealthy", "critical": false, "latencyMs": 7,
                            "error": "HTTP 502", "consecutiveFailures": 1, "consecutiveSuccesses": 0},
                    "db": {"status": "healthy", "critical": true, "latencyMs": 12.5,
                           "error": null, "consecutiveFailures": 0, "consecutiveSuccesses": 1}
                },
                "breakers": {"payments": {"state": "halfOpen"}}
            })
        );
        // The tree the npm package turns into JS: the same, every object's keys in order.
        let tree = r.report_tree("2026-01-01T00:00:00.000Z");
        fn sorted(node: &Node) -> bool {
            match node {
                Node::Map(entries) => {
                    entries.windows(2).all(|w| w[0].0 < w[1].0)
                        && entries.iter().all(|(_, v)| sorted(v))
                }
                _ => true,
            }
        }
        assert!(sorted(&tree), "{tree:?}");
        assert_eq!(Value::from(tree), rep);
        let empty = HealthRegistry::new().report_json("t");
        assert_eq!(
            empty,
            json!({"status": "healthy", "timestamp": "t", "checks": {}, "breakers": {}})
        );
    }

    #[test]
    fn status_changes_are_events_after_the_check_changes() {
        let mut r = HealthRegistry::new();
        let db = r.register("db", cfg()).unwrap();
        assert_eq!(
            drain(&mut r),
            [HealthEventKind::StatusChanged {
                from: HealthStatus::Healthy,
                to: HealthStatus::Unhealthy
            }]
        );
        let _ = r.due(t(0));
        r.report(db, ok(1), t(1)).unwrap();
        assert_eq!(
            drain(&mut r),
            [
                HealthEventKind::CheckChanged {
                    check: db,
                    from: CheckStatus::Pending,
                    to: CheckStatus::Healthy
                },
                HealthEventKind::StatusChanged {
                    from: HealthStatus::Unhealthy,
                    to: HealthStatus::Healthy
                },
            ]
        );
        r.set_breaker("x", BreakerState::Closed);
        assert!(r.poll_event().is_none(), "a closed breaker changes nothing");
        assert_eq!(r.metrics().status_changes, 2);
    }

    #[test]
    fn names_and_statuses_round_trip() {
        for s in [
            HealthStatus::Healthy,
            HealthStatus::Degraded,
            HealthStatus::Unhealthy,
        ] {
            assert_eq!(HealthStatus::from_name(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [
            CheckStatus::Pending,
            CheckStatus::Healthy,
            CheckStatus::Unhealthy,
        ] {
            assert_eq!(CheckStatus::from_name(s.as_str()), Some(s));
        }
    }

    #[test]
    fn saturating_instants_never_panic() {
        let mut r = HealthRegistry::new();
        let db = r.register("db", cfg()).unwrap();
        let due = r.due(Instant::MAX);
        assert_eq!(due[0].deadline, Instant::MAX);
        r.report(db, CheckResult::success(Duration::MAX), Instant::MAX)
            .unwrap();
        assert_eq!(
            r.check_status(db),
            Some(CheckStatus::Unhealthy),
            "at the deadline: timeout"
        );
        assert_eq!(r.poll_timeout(), Some(Instant::MAX));
    }
}

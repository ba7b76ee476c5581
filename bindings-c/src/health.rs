//! `tw_health`: a registry of named health checks (DESIGN.md §3.7). The core plans which checks
//! are due and their deadlines; the host runs them and reports.

use std::collections::{HashSet, VecDeque};
use std::ffi::{c_char, c_void};
use std::time::Duration;

use tripwire_core::health::{CheckResult, HealthEvent, HealthEventKind};
use tripwire_core::{
    CheckConfig, CheckId, CheckStatus, DueCheck, HealthConfig, HealthRegistry, HealthStatus,
    Instant,
};

use crate::error::{guard, put, put_opt, tw_error, tw_status, Error};
use crate::handle::{free, handle, Ctx, Drain, Shared};
use crate::types::{breaker_state_from_raw, opt_instant, RawBreakerState};
use crate::util::{c_names, cstr, json, write_text};

/// The whole service's health.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_health_status {
    /// Every check passes and no breaker is open.
    Healthy = 0,
    /// Only non-critical checks fail, or a breaker is open (HTTP 200).
    Degraded = 1,
    /// A critical check fails (HTTP 503).
    Unhealthy = 2,
}

impl From<HealthStatus> for tw_health_status {
    fn from(s: HealthStatus) -> tw_health_status {
        match s {
            HealthStatus::Healthy => tw_health_status::Healthy,
            HealthStatus::Degraded => tw_health_status::Degraded,
            HealthStatus::Unhealthy => tw_health_status::Unhealthy,
            // HealthStatus is #[non_exhaustive]; an unknown status is not healthy.
            _ => tw_health_status::Unhealthy,
        }
    }
}

/// One check's status.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_check_status {
    /// No such check is registered.
    Unknown = 0,
    /// Registered, no verdict yet.
    Pending = 1,
    /// Passing.
    Healthy = 2,
    /// Failing.
    Unhealthy = 3,
}

impl From<CheckStatus> for tw_check_status {
    fn from(s: CheckStatus) -> tw_check_status {
        match s {
            CheckStatus::Pending => tw_check_status::Pending,
            CheckStatus::Healthy => tw_check_status::Healthy,
            CheckStatus::Unhealthy => tw_check_status::Unhealthy,
            // CheckStatus is #[non_exhaustive]; an unknown status is not healthy.
            _ => tw_check_status::Unhealthy,
        }
    }
}

/// A check to run now: run it, cancel it at `deadline_ns`, and tw_health_report() it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_due_check {
    /// The check's id (tw_health_name() gives its name).
    pub id: u32,
    /// When the run times out.
    pub deadline_ns: u64,
}

/// What changed in a registry (::tw_health_event.type).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_health_event_type {
    /// No event: the queue was empty.
    None = 0,
    /// A check's status changed (`check`, `check_from`, `check_to`).
    CheckChanged = 1,
    /// A run passed its deadline (`check`).
    TimedOut = 2,
    /// The overall status changed (`status_from`, `status_to`).
    StatusChanged = 3,
    /// An event this version does not describe.
    Other = 255,
}

/// One health event. Fields that do not apply to `type` are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_health_event {
    /// What happened; ::TW_HEALTH_EVENT_TYPE_NONE when no event was queued.
    pub r#type: tw_health_event_type,
    /// The (clamped) instant of the input that caused it.
    pub at_ns: u64,
    /// CHECK_CHANGED, TIMED_OUT: the check's id.
    pub check: u32,
    /// CHECK_CHANGED: the status left.
    pub check_from: tw_check_status,
    /// CHECK_CHANGED: the status entered.
    pub check_to: tw_check_status,
    /// STATUS_CHANGED: the overall status left.
    pub status_from: tw_health_status,
    /// STATUS_CHANGED: the overall status entered.
    pub status_to: tw_health_status,
}

const NO_EVENT: tw_health_event = tw_health_event {
    r#type: tw_health_event_type::None,
    at_ns: 0,
    check: 0,
    check_from: tw_check_status::Unknown,
    check_to: tw_check_status::Unknown,
    status_from: tw_health_status::Healthy,
    status_to: tw_health_status::Healthy,
};

impl From<HealthEvent> for tw_health_event {
    fn from(e: HealthEvent) -> tw_health_event {
        let mut out = tw_health_event {
            at_ns: e.at.as_nanos(),
            ..NO_EVENT
        };
        match e.kind {
            HealthEventKind::CheckChanged { check, from, to } => {
                out.r#type = tw_health_event_type::CheckChanged;
                out.check = check.get();
                out.check_from = from.into();
                out.check_to = to.into();
            }
            HealthEventKind::TimedOut { check } => {
                out.r#type = tw_health_event_type::TimedOut;
                out.check = check.get();
            }
            HealthEventKind::StatusChanged { from, to } => {
                out.r#type = tw_health_event_type::StatusChanged;
                out.status_from = from.into();
                out.status_to = to.into();
            }
            // HealthEventKind is #[non_exhaustive].
            _ => out.r#type = tw_health_event_type::Other,
        }
        out
    }
}

/// A listener for health events (see ::tw_event_fn for when it runs).
pub type tw_health_event_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, event: *const tw_health_event)>;

/// A registry's counters and gauges.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_health_metrics {
    /// Checks registered now.
    pub checks: u64,
    /// Checks pending now.
    pub pending: u64,
    /// Checks healthy now.
    pub healthy: u64,
    /// Checks unhealthy now.
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
    /// Reports ignored because the check was not running.
    pub ignored_reports: u64,
    /// Check status changes.
    pub transitions: u64,
    /// Overall status changes.
    pub status_changes: u64,
}

#[derive(Debug)]
pub(crate) struct Inner {
    core: HealthRegistry,
    /// Started checks not yet handed out (when the caller's array was too short).
    pending: VecDeque<DueCheck>,
    scratch: Vec<DueCheck>,
}

impl Drain for Inner {
    type Event = tw_health_event;
    fn pop_event(&mut self) -> Option<tw_health_event> {
        self.core.poll_event().map(tw_health_event::from)
    }
}

/// A health check registry. Opaque; safe to share between threads (one mutex per registry).
#[derive(Debug)]
pub struct tw_health(Shared<Inner>);

/// # Safety
/// `h` is NULL or a live registry.
unsafe fn health<'a>(h: *const tw_health) -> Result<&'a Shared<Inner>, Error> {
    // SAFETY: per the contract.
    Ok(&unsafe { handle(h, "health") }?.0)
}

/// Build a registry from `{"checks": {name: {"timeout": "5s", "critical": true, "interval":
/// "10s", "failureThreshold": 1, "successThreshold": 1}}}` (`{}` for none).
///
/// # Safety
/// `json` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_health,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let config =
                <HealthConfig as tripwire_core::FromTree>::from_json_str(json(json_text, len)?)?;
            c_names("checks", config.checks.keys())?;
            let core = HealthRegistry::from_config(config)?;
            let inner = Inner {
                core,
                pending: VecDeque::new(),
                scratch: Vec::new(),
            };
            put(
                out,
                "out",
                Box::into_raw(Box::new(tw_health(Shared::new(inner)))),
            )
        })
    }
}

/// Release a registry. NULL is ignored.
///
/// # Safety
/// `h` is NULL or a live registry that no other thread is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_health_free(h: *mut tw_health) {
    // SAFETY: per the contract.
    unsafe { free(h) }
}

/// Register a check named `name` with its JSON config (`{}` for the defaults); it is due at
/// once. `*id` (when not NULL) receives its id. A duplicate name or a bad config gives
/// ::TW_STATUS_INVALID_CONFIG with a path under `checks.<name>`.
///
/// # Safety
/// `h` is a live registry; `name` is a NUL-terminated UTF-8 string; `json` is valid for `len`
/// bytes; `id` is NULL or writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_register(
    h: *mut tw_health,
    name: *const c_char,
    json_text: *const c_char,
    len: usize,
    id: *mut u32,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            let name = cstr(name, "name")?;
            let config =
                <CheckConfig as tripwire_core::FromTree>::from_json_str(json(json_text, len)?)
                    .map_err(|e| e.within(&format!("checks.{name}")))?;
            let new_id = h.with(|i| Ok(i.core.register(name, config)?))?;
            put_opt(id, new_id.get());
            Ok(())
        })
    }
}

/// Remove the check named `name`; `*removed` (when not NULL) says whether it was registered.
///
/// # Safety
/// `h` is a live registry; `name` is a NUL-terminated UTF-8 string; `removed` is NULL or
/// writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_unregister(
    h: *mut tw_health,
    name: *const c_char,
    removed: *mut bool,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            let name = cstr(name, "name")?;
            let was = h.with(|i| Ok(i.core.unregister(name)))?;
            put_opt(removed, was);
            Ok(())
        })
    }
}

/// The id of the check named `name` (::TW_STATUS_UNKNOWN_CHECK when none).
///
/// # Safety
/// `h` is a live registry; `name` is a NUL-terminated UTF-8 string; `id` is writable; `err` is
/// NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_id(
    h: *const tw_health,
    name: *const c_char,
    id: *mut u32,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            let name = cstr(name, "name")?;
            let found = h.lock()?.inner.core.id(name);
            let found = found.ok_or_else(|| {
                Error::new(
                    tw_status::UnknownCheck,
                    format!("no health check named {name:?}"),
                )
            })?;
            put(id, "id", found.get())
        })
    }
}

/// The name of check `id`, into your buffer (::TW_STATUS_UNKNOWN_CHECK when none).
///
/// # Safety
/// `h` is a live registry; `buf` is NULL or writable for `cap` bytes; `needed` is NULL or
/// writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_name(
    h: *const tw_health,
    id: u32,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let g = health(h)?.lock()?;
            let name = g.inner.core.name(CheckId::from_raw(id)).ok_or_else(|| {
                Error::new(
                    tw_status::UnknownCheck,
                    format!("no health check with id {id}"),
                )
            })?;
            write_text(name, buf, cap, needed)
        })
    }
}

/// # Safety
/// `out` is NULL or writable for `cap` elements; `count` and `remaining` are NULL or writable.
unsafe fn hand_out(
    i: &mut Inner,
    out: *mut tw_due_check,
    cap: usize,
    count: *mut usize,
    remaining: *mut usize,
) -> Result<(), Error> {
    if out.is_null() && cap > 0 {
        return Err(Error::null("out"));
    }
    // Runs queued by an earlier call that gave out fewer than were due may have ended since
    // (unregistered, reported, expired) or started again (a newer entry for the same check):
    // hand out only the current run of each check that is still running.
    if !i.pending.is_empty() {
        let mut seen = HashSet::with_capacity(i.pending.len());
        let mut current = Vec::with_capacity(i.pending.len());
        while let Some(d) = i.pending.pop_back() {
            if i.core.is_running(d.id) && seen.insert(d.id) {
                current.push(d);
            }
        }
        i.pending.extend(current.into_iter().rev());
    }
    let n = cap.min(i.pending.len());
    for k in 0..n {
        let d = i.pending.pop_front().expect("n <= len");
        // SAFETY: k < cap, and `out` is valid for `cap` elements per the contract.
        unsafe {
            out.add(k).write(tw_due_check {
                id: d.id.get(),
                deadline_ns: d.deadline.as_nanos(),
            });
        }
    }
    // SAFETY: per the contract.
    unsafe {
        put(count, "count", n)?;
        put_opt(remaining, i.pending.len());
    }
    Ok(())
}

/// Start the checks due at `now_ns` (runs past their deadline are expired first) and write up
/// to `cap` of them into `out`, in name order; `*count` receives how many. They are marked
/// running: run each and tw_health_report() it. When more are due than `cap`, the rest come
/// first from the next tw_health_due() or tw_health_due_all(); `*remaining` (when not NULL)
/// says how many wait.
///
/// # Safety
/// `h` is a live registry; `out` is NULL (with `cap == 0`) or writable for `cap` elements;
/// `count` is writable; `remaining` is NULL or writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_due(
    h: *mut tw_health,
    now_ns: u64,
    out: *mut tw_due_check,
    cap: usize,
    count: *mut usize,
    remaining: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            if count.is_null() {
                return Err(Error::null("count"));
            }
            h.with(|i| {
                let mut scratch = std::mem::take(&mut i.scratch);
                i.core.due_into(Instant::from_nanos(now_ns), &mut scratch);
                i.pending.extend(scratch.drain(..));
                i.scratch = scratch;
                hand_out(i, out, cap, count, remaining)
            })
        })
    }
}

/// As tw_health_due(), starting every idle check now (an on-demand check of everything).
///
/// # Safety
/// As tw_health_due().
#[no_mangle]
pub unsafe extern "C" fn tw_health_due_all(
    h: *mut tw_health,
    now_ns: u64,
    out: *mut tw_due_check,
    cap: usize,
    count: *mut usize,
    remaining: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            if count.is_null() {
                return Err(Error::null("count"));
            }
            h.with(|i| {
                let mut scratch = std::mem::take(&mut i.scratch);
                i.core
                    .due_all_into(Instant::from_nanos(now_ns), &mut scratch);
                i.pending.extend(scratch.drain(..));
                i.scratch = scratch;
                hand_out(i, out, cap, count, remaining)
            })
        })
    }
}

/// Report one run of check `id` at `now_ns`: `ok`, its `latency_ns`, and (when failing) an
/// `error` text (NUL-terminated, may be NULL). A result at or after the run's deadline is a
/// timeout. ::TW_STATUS_UNKNOWN_CHECK for an id no longer registered.
///
/// # Safety
/// `h` is a live registry; `error` is NULL or a NUL-terminated UTF-8 string; `err` is NULL or
/// a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_report(
    h: *mut tw_health,
    id: u32,
    ok: bool,
    latency_ns: u64,
    error: *const c_char,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            let error = if error.is_null() {
                None
            } else {
                Some(cstr(error, "error")?)
            };
            let result = CheckResult {
                ok,
                latency: Duration::from_nanos(latency_ns),
                error,
            };
            h.with(|i| {
                Ok(i.core
                    .report(CheckId::from_raw(id), result, Instant::from_nanos(now_ns))?)
            })
        })
    }
}

/// Fail every run at or past its deadline at `now_ns` with error "timeout".
///
/// # Safety
/// `h` is a live registry; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_expire(
    h: *mut tw_health,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            health(h)?.with(|i| {
                i.core.expire(Instant::from_nanos(now_ns));
                Ok(())
            })
        })
    }
}

/// The overall status as of the last input, and (when `http` is not NULL) the HTTP status a
/// health endpoint answers with (200 or 503).
///
/// # Safety
/// `h` is a live registry; `out` is writable; `http` is NULL or writable; `err` is NULL or a
/// writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_get_status(
    h: *const tw_health,
    out: *mut tw_health_status,
    http: *mut u16,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let s = health(h)?.lock()?.inner.core.status();
            put(out, "out", s.into())?;
            put_opt(http, s.http_status());
            Ok(())
        })
    }
}

/// The status of the check named `name` (::TW_CHECK_STATUS_UNKNOWN when not registered).
///
/// # Safety
/// `h` is a live registry; `name` is a NUL-terminated UTF-8 string; `out` is writable; `err`
/// is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_get_check_status(
    h: *const tw_health,
    name: *const c_char,
    out: *mut tw_check_status,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            let name = cstr(name, "name")?;
            let g = h.lock()?;
            let s = g
                .inner
                .core
                .id(name)
                .and_then(|id| g.inner.core.check_status(id))
                .map_or(tw_check_status::Unknown, tw_check_status::from);
            put(out, "out", s)
        })
    }
}

/// When the registry next needs the host (a check due, or a run's deadline): `*has = true`
/// and `*at_ns`.
///
/// # Safety
/// `h` is a live registry; `has` and `at_ns` are writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_poll_timeout(
    h: *const tw_health,
    has: *mut bool,
    at_ns: *mut u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            if has.is_null() || at_ns.is_null() {
                return Err(Error::null(if has.is_null() { "has" } else { "at_ns" }));
            }
            let (b, ns) = opt_instant(h.lock()?.inner.core.poll_timeout());
            put(has, "has", b)?;
            put(at_ns, "at_ns", ns)
        })
    }
}

/// List the circuit breaker `name` with its state (an open breaker makes the service
/// degraded).
///
/// # Safety
/// `h` is a live registry; `name` is a NUL-terminated UTF-8 string; `err` is NULL or a
/// writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_set_breaker(
    h: *mut tw_health,
    name: *const c_char,
    state: RawBreakerState,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            let name = cstr(name, "name")?;
            let state = breaker_state_from_raw(state)?;
            h.with(|i| {
                i.core.set_breaker(name, state);
                Ok(())
            })
        })
    }
}

/// Stop listing the breaker `name`; `*removed` (when not NULL) says whether it was listed.
///
/// # Safety
/// `h` is a live registry; `name` is a NUL-terminated UTF-8 string; `removed` is NULL or
/// writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_remove_breaker(
    h: *mut tw_health,
    name: *const c_char,
    removed: *mut bool,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            let name = cstr(name, "name")?;
            let was = h.with(|i| Ok(i.core.remove_breaker(name)))?;
            put_opt(removed, was);
            Ok(())
        })
    }
}

/// The report as JSON (`{"status", "timestamp", "checks": {...}, "breakers": {...}}`) into
/// your buffer. `timestamp` (NUL-terminated) is copied in as is; NULL stamps the current UTC
/// time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// # Safety
/// `h` is a live registry; `timestamp` is NULL or a NUL-terminated UTF-8 string; `buf` is
/// NULL or writable for `cap` bytes; `needed` is NULL or writable; `err` is NULL or a
/// writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_report_json(
    h: *const tw_health,
    timestamp: *const c_char,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            let stamp = if timestamp.is_null() {
                utc_now()
            } else {
                cstr(timestamp, "timestamp")?.to_owned()
            };
            let text = h.lock()?.inner.core.report_json(&stamp).to_string();
            write_text(&text, buf, cap, needed)
        })
    }
}

/// Take the oldest queued event into `*out` (`out->type == TW_HEALTH_EVENT_TYPE_NONE` when
/// none).
///
/// # Safety
/// `h` is a live registry; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_poll_event(
    h: *mut tw_health,
    out: *mut tw_health_event,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let h = health(h)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let e = h.lock()?.inner.pop_event();
            put(out, "out", e.unwrap_or(NO_EVENT))
        })
    }
}

/// Deliver events to `listener(ctx, event)` after every input. NULL removes the listener.
///
/// # Safety
/// `h` is a live registry; `listener` (if any) may be called with `ctx` from any thread that
/// uses `h`; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_set_listener(
    h: *mut tw_health,
    listener: tw_health_event_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            health(h)?.set_listener(listener.map(|f| (f, Ctx(ctx))))
        })
    }
}

/// The registry's counters and gauges.
///
/// # Safety
/// `h` is a live registry; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_health_get_metrics(
    h: *const tw_health,
    out: *mut tw_health_metrics,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let m = health(h)?.lock()?.inner.core.metrics();
            put(
                out,
                "out",
                tw_health_metrics {
                    checks: m.checks,
                    pending: m.pending,
                    healthy: m.healthy,
                    unhealthy: m.unhealthy,
                    running: m.running,
                    runs: m.runs,
                    successes: m.successes,
                    failures: m.failures,
                    timeouts: m.timeouts,
                    ignored_reports: m.ignored_reports,
                    transitions: m.transitions,
                    status_changes: m.status_changes,
                },
            )
        })
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the host's wall clock).
fn utc_now() -> String {
    #[allow(clippy::disallowed_methods)] // the binding is the host: it reads the wall clock
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    iso8601(since)
}

/// `since` the Unix epoch as an ISO-8601 UTC text with milliseconds.
fn iso8601(since: Duration) -> String {
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

static HEALTH_NAMES: [[u8; 32]; 3] = [
    crate::types::nul(HealthStatus::Healthy.as_str()),
    crate::types::nul(HealthStatus::Degraded.as_str()),
    crate::types::nul(HealthStatus::Unhealthy.as_str()),
];

static CHECK_NAMES: [[u8; 32]; 3] = [
    crate::types::nul(CheckStatus::Pending.as_str()),
    crate::types::nul(CheckStatus::Healthy.as_str()),
    crate::types::nul(CheckStatus::Unhealthy.as_str()),
];

/// The overall status's public name (`"healthy"`, `"degraded"`, `"unhealthy"`), or
/// `"unknown"`. Static; never free it.
#[no_mangle]
pub extern "C" fn tw_health_status_str(status: u32) -> *const c_char {
    crate::error::guard_value(c"unknown".as_ptr(), || {
        crate::types::c_name(HEALTH_NAMES.get(status as usize))
    })
}

/// The check status's public name (`"pending"`, `"healthy"`, `"unhealthy"`), or `"unknown"`
/// (also for ::TW_CHECK_STATUS_UNKNOWN). Static; never free it.
#[no_mangle]
pub extern "C" fn tw_check_status_str(status: u32) -> *const c_char {
    crate::error::guard_value(c"unknown".as_ptr(), || {
        crate::types::c_name(CHECK_NAMES.get((status as usize).wrapping_sub(1)))
    })
}

#[cfg(test)]
mod tests {
    use super::iso8601;
    use std::time::Duration;

    #[test]
    fn timestamps_are_iso8601_utc() {
        assert_eq!(iso8601(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(Duration::from_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            iso8601(Duration::from_secs(1_798_761_599)),
            "2026-12-31T23:59:59.000Z"
        );
    }
}

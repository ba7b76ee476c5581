//! `tw_pipeline`: the policies of one entry composed around many calls, driven through the step
//! protocol (`tw_call_*`), or by the blocking `tw_pipeline_execute` for threaded apps; and
//! `tw_policies`, a policy file of named pipelines.

use std::collections::{HashSet, VecDeque};
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

use tripwire_core::pipeline::{
    CallId, Failure, Outcome, Pipeline, PipelineConfig, PolicyFile, Report, Step,
};
use tripwire_core::{ErrorKind, Instant};

use crate::error::{guard, kind_status, put, put_opt, tw_error, tw_status, Error, RawStatus};
use crate::handle::{free, handle, poisoned, Ctx, Drain, Locked, Shared};
use crate::types::{
    deadline_in, opt_instant, opt_nanos, outcome_from_raw, tw_attempt, tw_attempt_fn,
    tw_breaker_state, tw_event, tw_event_fn, tw_kind, RawOutcome,
};
use crate::util::{c_names, cstr, json, now_ns, os_seed, sleep_until, text, write_text};

/// A call in flight: a generational handle into its pipeline (a stale one is
/// ::TW_STATUS_UNKNOWN_CALL, never another call's state).
pub type tw_call = u64;

/// A fallback: called by tw_pipeline_execute() when a call fails with a kind the config's
/// `fallback.on` lists, with the context given to tw_pipeline_add_fallback(), the context given
/// to tw_pipeline_execute() (where the call's result goes), and the failure. Return
/// ::TW_STATUS_OK when it produced the result; any other status tries the next fallback.
pub type tw_fallback_fn = Option<
    unsafe extern "C" fn(
        fallback_ctx: *mut c_void,
        call_ctx: *mut c_void,
        failure: *const tw_failure,
    ) -> RawStatus,
>;

type Fallback = (
    unsafe extern "C" fn(*mut c_void, *mut c_void, *const tw_failure) -> c_int,
    Ctx,
);

/// What the pipeline holds behind its mutex.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) core: Pipeline,
    /// Wakes for calls driven through the step protocol, for tw_pipeline_poll_wake().
    wakes: VecDeque<tw_call>,
    /// Calls parked inside tw_pipeline_execute(); a wake removes its call and notifies.
    exec_parked: Vec<tw_call>,
    /// Every call owned by a running tw_pipeline_execute(), from its begin to its end, parked
    /// or not: a wake for one of these never goes to `wakes` (a wake can land while the call
    /// is briefly unparked, e.g. between its park timing out and its next poll).
    exec_owned: HashSet<tw_call>,
    fallbacks: Arc<[Fallback]>,
    /// The host's store client and the request copies of step-driven calls.
    pub(crate) store: crate::store::PipelineStore,
}

impl Drain for Inner {
    type Event = tw_event;
    fn pop_event(&mut self) -> Option<tw_event> {
        self.core.poll_event().map(tw_event::from)
    }
}

impl Inner {
    fn new(core: Pipeline) -> Inner {
        Inner {
            core,
            wakes: VecDeque::new(),
            exec_parked: Vec::new(),
            exec_owned: HashSet::new(),
            fallbacks: Arc::new([]),
            store: crate::store::PipelineStore::default(),
        }
    }

    /// Forget any wake queued for `raw`: the host polled or ended that call since, so the wake
    /// no longer names a parked call whose slot was granted (the promise of poll_wake).
    fn forget_wake(&mut self, raw: tw_call) {
        self.wakes.retain(|c| *c != raw);
    }

    /// Drain the core's wakes (after every input); true when a blocked execute must look.
    fn drain_wakes(&mut self) -> bool {
        let mut notify = false;
        while let Some(id) = self.core.poll_wake() {
            let raw = id.to_raw();
            if let Some(pos) = self.exec_parked.iter().position(|c| *c == raw) {
                self.exec_parked.swap_remove(pos);
                notify = true;
            } else if self.exec_owned.contains(&raw) {
                // Owned by an execute that is not parked right now (nothing waits for it): its
                // next poll, made under this lock after this wake, sees the grant. Never publish
                // it: the header promises execute-owned calls never show in poll_wake.
            } else {
                self.wakes.push_back(raw);
            }
        }
        notify
    }
}

/// A pipeline. Opaque; safe to share between threads (one mutex per pipeline).
#[derive(Debug)]
pub struct tw_pipeline(pub(crate) Shared<Inner>);

/// What the host does next for a call (::tw_step.kind).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_step_kind {
    /// Run the function (attempt `attempt`), cancelling it at `deadline_ns`; then
    /// tw_call_report().
    Attempt = 1,
    /// Wait until `until_ns`, then poll again (a backoff or a rate-limit wait).
    Sleep = 2,
    /// Queued in the bulkhead: wait until tw_pipeline_poll_wake() names the call, or until
    /// `until_ns` (when `has_until`), then poll again.
    Park = 3,
    /// The call succeeded: use the function's value. The call handle is now invalid.
    Done = 4,
    /// The call failed: see `failure`. The call handle is now invalid.
    Fail = 5,
    /// Run the store request `request` (a shared rate limit or a shared breaker:
    /// tw_call_store_request()) once, giving up at `until_ns`; then tw_call_report_store() and
    /// poll again.
    Store = 6,
}

/// How a call failed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_failure {
    /// The kind of error to raise; ::TW_KIND_FAILURE means "the function's own error stands".
    pub kind: tw_kind,
    /// Whether `retry_after_ns` is known (rejections and pushback).
    pub has_retry_after: bool,
    /// When the same call could pass.
    pub retry_after_ns: u64,
    /// Attempts made, the first included (0 when refused before any attempt).
    pub attempts: u32,
    /// Whether your fallback applies (the config's `fallback.on`).
    pub fallback: bool,
    /// For retriesExhausted, budgetExhausted and deadlineExceeded after attempts: the kind of
    /// the last attempt's failure; otherwise ::TW_KIND_NONE.
    pub cause: tw_kind,
}

impl From<Failure> for tw_failure {
    fn from(f: Failure) -> tw_failure {
        let (has, ns) = opt_nanos(f.retry_after);
        tw_failure {
            kind: f.kind.into(),
            has_retry_after: has,
            retry_after_ns: ns,
            attempts: f.attempts,
            fallback: f.fallback,
            cause: f.cause.map_or(tw_kind::None, tw_kind::from),
        }
    }
}

/// One step of a call. Fields that do not apply to `kind` are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_step {
    /// What to do.
    pub kind: tw_step_kind,
    /// ::TW_STEP_KIND_ATTEMPT: the attempt number (the first is 1); DONE: attempts made.
    pub attempt: u32,
    /// ::TW_STEP_KIND_ATTEMPT: whether the attempt has a deadline.
    pub has_deadline: bool,
    /// ::TW_STEP_KIND_ATTEMPT: when to cancel it and report ::TW_OUTCOME_TIMEOUT.
    pub deadline_ns: u64,
    /// ::TW_STEP_KIND_SLEEP and ::TW_STEP_KIND_STORE (always) and ::TW_STEP_KIND_PARK: whether
    /// `until_ns` is set.
    pub has_until: bool,
    /// SLEEP: when to poll again; PARK: when to poll again at the latest; STORE: when the
    /// request times out (report ::TW_STORE_REPLY_KIND_TIMEOUT).
    pub until_ns: u64,
    /// ::TW_STEP_KIND_PARK: the bulkhead ticket.
    pub ticket: u64,
    /// ::TW_STEP_KIND_FAIL: how it failed.
    pub failure: tw_failure,
    /// ::TW_STEP_KIND_STORE: the store request's id.
    pub request: u64,
}

const NO_FAILURE: tw_failure = tw_failure {
    kind: tw_kind::None,
    has_retry_after: false,
    retry_after_ns: 0,
    attempts: 0,
    fallback: false,
    cause: tw_kind::None,
};

fn step_out(step: Step) -> Result<tw_step, Error> {
    let mut out = tw_step {
        kind: tw_step_kind::Done,
        attempt: 0,
        has_deadline: false,
        deadline_ns: 0,
        has_until: false,
        until_ns: 0,
        ticket: 0,
        failure: NO_FAILURE,
        request: 0,
    };
    match step {
        Step::Attempt { attempt, deadline } => {
            out.kind = tw_step_kind::Attempt;
            out.attempt = attempt;
            (out.has_deadline, out.deadline_ns) = opt_instant(deadline);
        }
        Step::Sleep { until } => {
            out.kind = tw_step_kind::Sleep;
            (out.has_until, out.until_ns) = (true, until.as_nanos());
        }
        Step::Park { ticket, until } => {
            out.kind = tw_step_kind::Park;
            out.ticket = ticket;
            (out.has_until, out.until_ns) = opt_instant(until);
        }
        Step::Store { request, until } => {
            out.kind = tw_step_kind::Store;
            out.request = request.get();
            (out.has_until, out.until_ns) = (true, until.as_nanos());
        }
        Step::Done { attempts } => {
            out.kind = tw_step_kind::Done;
            out.attempt = attempts;
        }
        Step::Fail(f) => {
            out.kind = tw_step_kind::Fail;
            out.attempt = f.attempts;
            out.failure = f.into();
        }
        // Step is #[non_exhaustive]; the core this library is built with has no other.
        other => {
            return Err(Error::new(
                tw_status::Panic,
                format!("internal error: step {other:?} is unknown to the C binding"),
            ))
        }
    }
    Ok(out)
}

/// How an attempt ended, as tw_call_report() takes it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_report {
    /// What happened (a ::tw_outcome).
    pub outcome: RawOutcome,
    /// Whether your retry predicate accepts this failure (a timeout is always retryable).
    pub retryable: bool,
    /// Whether `retry_after_ns` carries a server's Retry-After hint.
    pub has_retry_after: bool,
    /// The hint, in nanoseconds.
    pub retry_after_ns: u64,
}

fn report_in(r: &tw_report) -> Result<Report, Error> {
    Ok(Report {
        outcome: outcome_from_raw(r.outcome)?,
        retryable: r.retryable,
        retry_after: r
            .has_retry_after
            .then_some(Duration::from_nanos(r.retry_after_ns)),
    })
}

/// A pipeline's counters and gauges (the policies' own are in tw_pipeline_stats_json()).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_pipeline_stats {
    /// Calls begun.
    pub calls: u64,
    /// Calls that ended DONE.
    pub succeeded: u64,
    /// Calls that ended FAIL, indexed by ::tw_kind (`failed[TW_KIND_CIRCUIT_OPEN]`...).
    pub failed: [u64; 11],
    /// Calls ended by the host (tw_call_end()).
    pub cancelled: u64,
    /// Attempts started.
    pub attempts: u64,
    /// Calls begun and not yet ended.
    pub in_flight: u64,
    /// Events dropped because they were not drained in time.
    pub events_dropped: u64,
    /// Whether the pipeline has a circuit breaker (then `breaker_state` is its state).
    pub has_breaker: bool,
    /// The breaker's state.
    pub breaker_state: tw_breaker_state,
    /// Whether the pipeline has a retry budget (then `budget_tokens` is set).
    pub has_budget: bool,
    /// Retry budget tokens left.
    pub budget_tokens: f64,
    /// Whether the pipeline is keyed (then `keys` is the number of keys it holds, and the
    /// breaker fields describe no single key).
    pub has_keys: bool,
    /// Keys held by a keyed pipeline.
    pub keys: u64,
}

/// # Safety
/// `p` is NULL or a live pipeline.
unsafe fn pipeline<'a>(p: *const tw_pipeline) -> Result<&'a tw_pipeline, Error> {
    // SAFETY: per the contract.
    unsafe { handle(p, "pipeline") }
}

impl tw_pipeline {
    /// Feed an input to the core under the lock, then drain its outputs: wakes (notifying
    /// parked executes), and events to the listener outside the lock.
    pub(crate) fn input<R>(
        &self,
        f: impl FnOnce(&mut Pipeline) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut g = self.0.lock()?;
        let result = f(&mut g.inner.core);
        self.after_input(g);
        result
    }

    /// As `input`, with the store side too.
    pub(crate) fn input_inner<R>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut g = self.0.lock()?;
        let result = f(&mut g.inner);
        self.after_input(g);
        result
    }

    fn after_input<'a>(&'a self, mut g: std::sync::MutexGuard<'a, Locked<Inner>>) {
        if g.inner.drain_wakes() {
            self.0.cv.notify_all();
        }
        self.0.release(g);
    }
}

fn new_pipeline(core: Pipeline) -> *mut tw_pipeline {
    Box::into_raw(Box::new(tw_pipeline(Shared::new(Inner::new(core)))))
}

/// Build a pipeline from its JSON config (any of `rateLimit`, `bulkhead`, `circuitBreaker`,
/// `retry`, `timeout`, `fallback`, plus `order` and `seed`). Jitter is seeded by the config's
/// `seed`, else from OS randomness.
///
/// Returns ::TW_STATUS_INVALID_CONFIG with the field path (`retry.backoff.base: ...`) when the
/// config is refused.
///
/// # Safety
/// `json` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_pipeline,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe { tw_pipeline_new_with_seed(json_text, len, os_seed(), out, err) }
}

/// As tw_pipeline_new(), seeding jitter with `seed` when the config has no `seed` (for
/// reproducible tests).
///
/// # Safety
/// As tw_pipeline_new().
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_new_with_seed(
    json_text: *const c_char,
    len: usize,
    seed: u64,
    out: *mut *mut tw_pipeline,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let core = Pipeline::from_json(json(json_text, len)?, seed)?;
            put(out, "out", new_pipeline(core))
        })
    }
}

/// Release a pipeline. NULL is ignored.
///
/// # Safety
/// `p` is NULL or a live pipeline that no other thread is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_free(p: *mut tw_pipeline) {
    // SAFETY: per the contract.
    unsafe { free(p) }
}

/// Apply a new config at `now_ns`, keeping the state that still fits (breaker state, limiter
/// levels, budget tokens, bulkhead holders and queue). An invalid config is refused with
/// ::TW_STATUS_INVALID_CONFIG and the old one stays in force.
///
/// # Safety
/// `p` is a live pipeline; `json` is valid for `len` bytes; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_reconfigure(
    p: *mut tw_pipeline,
    json_text: *const c_char,
    len: usize,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let config = PipelineConfig::from_json(json(json_text, len)?)?;
            p.input(|c| Ok(c.reconfigure(config, Instant::from_nanos(now_ns))?))
        })
    }
}

/// Begin a call at `now_ns`, bounded by an inherited `deadline_ns` (::TW_NO_DEADLINE for
/// none). Then drive it with tw_call_poll() until DONE or FAIL.
///
/// # Safety
/// `p` is a live pipeline; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_call_begin(
    p: *mut tw_pipeline,
    now_ns: u64,
    deadline_ns: u64,
    out: *mut tw_call,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let id =
                p.input(|c| Ok(c.begin(Instant::from_nanos(now_ns), deadline_in(deadline_ns))))?;
            put(out, "out", id.to_raw())
        })
    }
}

/// Begin a call for `key[0..key_len)` (UTF-8: a host, a user...) at `now_ns`: on a keyed
/// pipeline it passes that key's breaker and limiter; on an unkeyed one the key is ignored.
///
/// # Safety
/// `p` is a live pipeline; `key` is valid for `key_len` bytes; `out` is writable; `err` is
/// NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_call_begin_keyed(
    p: *mut tw_pipeline,
    key: *const c_char,
    key_len: usize,
    now_ns: u64,
    deadline_ns: u64,
    out: *mut tw_call,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let key = text(key, key_len, "key")?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let id = p.input(|c| {
                Ok(c.begin_keyed(key, Instant::from_nanos(now_ns), deadline_in(deadline_ns)))
            })?;
            put(out, "out", id.to_raw())
        })
    }
}

/// Apply the time-driven changes due at `now_ns` eagerly (a breaker's open → halfOpen, with
/// its event), for hosts that arm one timer at tw_pipeline_poll_timeout(); without it they
/// happen at the next call.
///
/// # Safety
/// `p` is a live pipeline; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_handle_timeout(
    p: *mut tw_pipeline,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            pipeline(p)?.input(|c| {
                c.handle_timeout(Instant::from_nanos(now_ns));
                Ok(())
            })
        })
    }
}

/// The state of the breaker of `key[0..key_len)` on a keyed pipeline
/// (::TW_STATUS_NOT_CONFIGURED when that key is not held or the pipeline has no keyed breaker).
///
/// # Safety
/// `p` is a live pipeline; `key` is valid for `key_len` bytes; `out` is writable; `err` is
/// NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_get_keyed_breaker_state(
    p: *const tw_pipeline,
    key: *const c_char,
    key_len: usize,
    out: *mut tw_breaker_state,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let key = text(key, key_len, "key")?;
            let state =
                p.0.lock()?
                    .inner
                    .core
                    .keyed_breaker(key)
                    .map(|b| b.state())
                    .ok_or_else(|| Error::not_configured("breaker for that key"))?;
            put(out, "out", state.into())
        })
    }
}

/// What to do next for `call` at `now_ns`, into `*out`. DONE and FAIL end the call (its
/// handle is invalid afterwards). ::TW_STATUS_UNKNOWN_CALL for a stale handle,
/// ::TW_STATUS_ATTEMPT_IN_FLIGHT while an attempt awaits its report.
///
/// # Safety
/// `p` is a live pipeline; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_call_poll(
    p: *mut tw_pipeline,
    call: tw_call,
    now_ns: u64,
    out: *mut tw_step,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let step = p.input_inner(|i| {
                // Before the poll: a wake this poll queues for the call itself stays.
                i.forget_wake(call);
                let step = i
                    .core
                    .poll(CallId::from_raw(call), Instant::from_nanos(now_ns))?;
                crate::store::PipelineStore::after_poll(i, call, &step);
                Ok(step)
            })?;
            put(out, "out", step_out(step)?)
        })
    }
}

/// Report how the running attempt of `call` ended, at `now_ns`.
///
/// # Safety
/// `p` is a live pipeline; `report` is readable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_call_report(
    p: *mut tw_pipeline,
    call: tw_call,
    report: *const tw_report,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let report = report_in(report.as_ref().ok_or_else(|| Error::null("report"))?)?;
            p.input(|c| {
                Ok(c.report(CallId::from_raw(call), report, Instant::from_nanos(now_ns))?)
            })
        })
    }
}

/// End (cancel) a call the host gives up on before its final step: it leaves any queue and
/// frees what it holds without recording an outcome. ::TW_STATUS_UNKNOWN_CALL when the handle
/// no longer names a live call (e.g. after DONE or FAIL was polled).
///
/// # Safety
/// `p` is a live pipeline; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_call_end(
    p: *mut tw_pipeline,
    call: tw_call,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            pipeline(p)?.input_inner(|i| {
                i.store.forget(call);
                i.forget_wake(call);
                Ok(i.core
                    .cancel(CallId::from_raw(call), Instant::from_nanos(now_ns))?)
            })
        })
    }
}

/// The same as tw_call_end().
///
/// # Safety
/// As tw_call_end().
#[no_mangle]
pub unsafe extern "C" fn tw_call_cancel(
    p: *mut tw_pipeline,
    call: tw_call,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { tw_call_end(p, call, now_ns, err) }
}

/// The next parked call whose bulkhead slot was granted (`*woke = true`, `*call` set): poll it
/// now. Calls parked inside tw_pipeline_execute() are woken internally and never show here.
///
/// # Safety
/// `p` is a live pipeline; `call` and `woke` are writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_poll_wake(
    p: *mut tw_pipeline,
    call: *mut tw_call,
    woke: *mut bool,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            if call.is_null() || woke.is_null() {
                return Err(Error::null(if call.is_null() { "call" } else { "woke" }));
            }
            let next = p.0.lock()?.inner.wakes.pop_front();
            put(woke, "woke", next.is_some())?;
            put(call, "call", next.unwrap_or(0))
        })
    }
}

/// Take the oldest queued event into `*out` (`out->type == TW_EVENT_TYPE_NONE` when none).
///
/// # Safety
/// `p` is a live pipeline; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_poll_event(
    p: *mut tw_pipeline,
    out: *mut tw_event,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let e = p.0.lock()?.inner.pop_event();
            put(out, "out", e.unwrap_or(tw_event::NONE))
        })
    }
}

/// Deliver events to `listener(ctx, event)` after every input instead of queueing them for
/// tw_pipeline_poll_event(). NULL removes the listener.
///
/// # Safety
/// `p` is a live pipeline; `listener` (if any) may be called with `ctx` from any thread that
/// uses `p`; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_set_listener(
    p: *mut tw_pipeline,
    listener: tw_event_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            pipeline(p)?.0.set_listener(listener.map(|l| (l, Ctx(ctx))))
        })
    }
}

/// When the next policy-level time-driven change is due (a breaker's open period ending, a
/// bulkhead waiter's limit, pushback ending): `*has = true` and `*at_ns`. Per-call waits are in
/// each call's own step.
///
/// # Safety
/// `p` is a live pipeline; `has` and `at_ns` are writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_poll_timeout(
    p: *const tw_pipeline,
    has: *mut bool,
    at_ns: *mut u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            if has.is_null() || at_ns.is_null() {
                return Err(Error::null(if has.is_null() { "has" } else { "at_ns" }));
            }
            let (h, ns) = opt_instant(p.0.lock()?.inner.core.poll_timeout());
            put(has, "has", h)?;
            put(at_ns, "at_ns", ns)
        })
    }
}

/// The pipeline's counters and gauges, as a plain struct.
///
/// # Safety
/// `p` is a live pipeline; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_get_stats(
    p: *const tw_pipeline,
    out: *mut tw_pipeline_stats,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let s = p.0.lock()?.inner.core.stats();
            let mut failed = [0u64; 11];
            for k in ErrorKind::ALL {
                failed[tw_kind::from(k) as usize] = s.failed(k);
            }
            put(
                out,
                "out",
                tw_pipeline_stats {
                    calls: s.calls,
                    succeeded: s.succeeded,
                    failed,
                    cancelled: s.cancelled,
                    attempts: s.attempts,
                    in_flight: s.in_flight,
                    events_dropped: s.events_dropped,
                    has_breaker: s.breaker.is_some(),
                    breaker_state: s
                        .breaker
                        .map_or(tw_breaker_state::Closed, |b| b.state.into()),
                    has_budget: s.budget_tokens.is_some(),
                    budget_tokens: s.budget_tokens.unwrap_or(0.0),
                    has_keys: s.keys.is_some(),
                    keys: s.keys.unwrap_or(0),
                },
            )
        })
    }
}

/// The pipeline's stats as JSON (camelCase; `failed` keyed by kind; `breaker`, `bulkhead`,
/// `rateLimit`, `retry` objects for the policies present; with a `store`, `store` for the
/// shared rate limit and `share` for the shared breaker: `requests`, `votes`, `probesGranted`,
/// `probesDenied`, `adoptedOpen`, `adoptedClosed`, `epochChanges`, `failed`, `fleetCalls`,
/// `fleetFailures`, `fleetReporters`, `fleetState`), into your buffer.
///
/// # Safety
/// `p` is a live pipeline; `buf` is NULL or writable for `cap` bytes; `needed` is NULL or
/// writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_stats_json(
    p: *const tw_pipeline,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let stats = pipeline(p)?.0.lock()?.inner.core.stats();
            let text =
                serde_json::to_string(&stats).map_err(|e| Error::invalid(format!("stats: {e}")))?;
            write_text(&text, buf, cap, needed)
        })
    }
}

/// The Prometheus text exposition of the pipeline's stats, every series labelled
/// `pipeline="<name>"` (the metric names are the core's, documented in the README).
///
/// # Safety
/// `p` is a live pipeline; `name` is a NUL-terminated UTF-8 string; `buf` is NULL or writable
/// for `cap` bytes; `needed` is NULL or writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_prometheus(
    p: *const tw_pipeline,
    name: *const c_char,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let name = cstr(name, "name")?;
            let text = p.0.lock()?.inner.core.prometheus(name);
            write_text(&text, buf, cap, needed)
        })
    }
}

/// The pipeline's circuit breaker state (::TW_STATUS_NOT_CONFIGURED without a breaker).
///
/// # Safety
/// `p` is a live pipeline; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_get_breaker_state(
    p: *const tw_pipeline,
    out: *mut tw_breaker_state,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let state =
                p.0.lock()?
                    .inner
                    .core
                    .breaker()
                    .map(|b| b.state())
                    .ok_or_else(|| Error::not_configured("circuitBreaker"))?;
            put(out, "out", state.into())
        })
    }
}

/// # Safety
/// `p` is NULL or a live pipeline; `err` is NULL or a writable `tw_error *`.
unsafe fn breaker_command(
    p: *mut tw_pipeline,
    now_ns: u64,
    err: *mut *mut tw_error,
    f: fn(&mut tripwire_core::CircuitBreaker, Instant),
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            pipeline(p)?.input(|c| {
                let b = c
                    .breaker_mut()
                    .ok_or_else(|| Error::not_configured("circuitBreaker"))?;
                f(b, Instant::from_nanos(now_ns));
                Ok(())
            })
        })
    }
}

/// Force the pipeline's breaker open until reset. ::TW_STATUS_NOT_CONFIGURED without a breaker.
///
/// # Safety
/// `p` is a live pipeline; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_breaker_force_open(
    p: *mut tw_pipeline,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { breaker_command(p, now_ns, err, tripwire_core::CircuitBreaker::force_open) }
}

/// Disable the pipeline's breaker (admit all, record metrics) until reset. ::TW_STATUS_NOT_CONFIGURED without a breaker.
///
/// # Safety
/// `p` is a live pipeline; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_breaker_disable(
    p: *mut tw_pipeline,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { breaker_command(p, now_ns, err, tripwire_core::CircuitBreaker::disable) }
}

/// Reset the pipeline's breaker to closed. ::TW_STATUS_NOT_CONFIGURED without a breaker.
///
/// # Safety
/// `p` is a live pipeline; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_breaker_reset(
    p: *mut tw_pipeline,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { breaker_command(p, now_ns, err, tripwire_core::CircuitBreaker::reset) }
}

/// Append a fallback to the pipeline's chain; tw_pipeline_execute() tries them in order when
/// a call fails with a kind the config's `fallback.on` lists (all kinds without a `fallback`
/// key).
///
/// # Safety
/// `p` is a live pipeline; `fallback` may be called with `ctx` from any thread that executes
/// on `p`; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_add_fallback(
    p: *mut tw_pipeline,
    fallback: tw_fallback_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let f = fallback.ok_or_else(|| Error::null("fallback"))?;
            let mut g = p.0.lock()?;
            let mut chain: Vec<Fallback> = g.inner.fallbacks.to_vec();
            chain.push((f, Ctx(ctx)));
            g.inner.fallbacks = chain.into();
            Ok(())
        })
    }
}

/// Remove every fallback of the pipeline.
///
/// # Safety
/// `p` is a live pipeline; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_clear_fallbacks(
    p: *mut tw_pipeline,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            pipeline(p)?.0.lock()?.inner.fallbacks = Arc::new([]);
            Ok(())
        })
    }
}

fn describe(f: &Failure) -> String {
    let mut s = format!("{}", f.kind);
    match f.kind {
        ErrorKind::Failure => s.push_str(": the function failed; its own error stands"),
        _ => {
            if f.attempts > 0 {
                s.push_str(&format!(" after {} attempt(s)", f.attempts));
            }
            if let Some(cause) = f.cause {
                s.push_str(&format!(" (last: {cause})"));
            }
            if let Some(d) = f.retry_after {
                s.push_str(&format!(
                    "; retry after {} ms",
                    tripwire_core::time::nanos_to_millis_f64(tripwire_core::time::duration_nanos(
                        d
                    ))
                ));
            }
        }
    }
    s
}

/// Ends an execute's ownership of its call: on every exit it forgets the call in
/// `exec_owned`/`exec_parked` and, unless the call finished (Done or Fail, after which the
/// core has freed it), cancels it, so an execute that fails never orphans a bulkhead slot or
/// a permit. Callbacks (events) run after the lock is released.
struct ExecCall<'a> {
    p: &'a tw_pipeline,
    call: CallId,
    finished: bool,
}

impl Drop for ExecCall<'_> {
    fn drop(&mut self) {
        let raw = self.call.to_raw();
        let Ok(mut g) = self.p.0.lock() else {
            return; // poisoned: the handle is unusable anyway
        };
        if !self.finished {
            // Errors ignored: the call may already be gone (a stale handle is harmless).
            let _ = g
                .inner
                .core
                .cancel(self.call, Instant::from_nanos(now_ns()));
        }
        // Drain while still owned, so no wake for this call can reach the public queue.
        let notify = g.inner.drain_wakes();
        g.inner.exec_owned.remove(&raw);
        g.inner.exec_parked.retain(|c| *c != raw);
        if notify {
            self.p.0.cv.notify_all();
        }
        self.p.0.release(g);
    }
}

/// The blocking run loop for one call, on the tw_now_ns() clock.
fn execute(
    p: &tw_pipeline,
    f: unsafe extern "C" fn(*mut c_void, *mut tw_attempt) -> RawOutcome,
    ctx: *mut c_void,
    key: Option<&str>,
    deadline: Option<Instant>,
    failure_out: *mut tw_failure,
) -> Result<(), Error> {
    // Begin and take ownership under one lock, so no wake for the call can be published.
    let mut g = p.0.lock()?;
    let now = Instant::from_nanos(now_ns());
    let call = match key {
        Some(key) => g.inner.core.begin_keyed(key, now, deadline),
        None => g.inner.core.begin(now, deadline),
    };
    let raw = call.to_raw();
    g.inner.exec_owned.insert(raw);
    p.after_input(g);
    let mut owned = ExecCall {
        p,
        call,
        finished: false,
    };
    loop {
        let mut g = p.0.lock()?;
        let polled = g.inner.core.poll(call, Instant::from_nanos(now_ns()));
        if g.inner.drain_wakes() {
            p.0.cv.notify_all();
        }
        let step = match polled {
            Ok(step) => step,
            Err(e) => {
                p.0.release(g);
                return Err(e.into());
            }
        };
        if let Step::Park { until, .. } = step {
            g.inner.exec_parked.push(raw);
            loop {
                if !g.inner.exec_parked.contains(&raw) {
                    break; // woken: the slot is ours; poll again
                }
                let now = now_ns();
                g = match until.map(Instant::as_nanos) {
                    Some(u) if now >= u => {
                        g.inner.exec_parked.retain(|c| *c != raw);
                        break; // poll again: the core turns it into queueTimeout
                    }
                    Some(u) => {
                        p.0.cv
                            .wait_timeout(g, Duration::from_nanos(u - now))
                            .map_err(|_| poisoned())?
                            .0
                    }
                    None => p.0.cv.wait(g).map_err(|_| poisoned())?,
                };
            }
            p.0.release(g);
            continue;
        }
        p.0.release(g);
        match step {
            Step::Attempt { attempt, deadline } => {
                let (has_deadline, deadline_ns) = opt_instant(deadline);
                let mut a = tw_attempt {
                    number: attempt,
                    has_deadline,
                    deadline_ns,
                    retryable: true,
                    has_retry_after: false,
                    retry_after_ns: 0,
                };
                // SAFETY: the caller's function, called with the caller's context.
                let raw_outcome = unsafe { f(ctx, &mut a) };
                let now = now_ns();
                // On an invalid outcome, `owned` cancels the call.
                let outcome = outcome_from_raw(raw_outcome)?;
                let late = has_deadline && now >= deadline_ns;
                let report = Report {
                    outcome: if late { Outcome::Timeout } else { outcome },
                    retryable: a.retryable,
                    retry_after: a
                        .has_retry_after
                        .then_some(Duration::from_nanos(a.retry_after_ns)),
                };
                p.input(|c| Ok(c.report(call, report, Instant::from_nanos(now))?))?;
            }
            Step::Sleep { until } => sleep_until(until.as_nanos()),
            Step::Store { request, until } => {
                crate::store::execute_step(p, call, request, until)?;
            }
            Step::Done { .. } => {
                owned.finished = true;
                return Ok(());
            }
            Step::Fail(failure) => {
                owned.finished = true;
                let out = tw_failure::from(failure);
                // SAFETY: the caller passes NULL or a writable tw_failure.
                unsafe { put_opt(failure_out, out) };
                if failure.fallback {
                    let chain = Arc::clone(&p.0.lock()?.inner.fallbacks);
                    for (fallback, fctx) in chain.iter() {
                        // SAFETY: registered by the caller for this pipeline.
                        if unsafe { fallback(fctx.0, ctx, &out) } == tw_status::Ok as c_int {
                            return Ok(());
                        }
                    }
                }
                return Err(Error::new(kind_status(failure.kind), describe(&failure)));
            }
            Step::Park { .. } => unreachable!("handled above"),
            other => {
                // `owned` cancels the call.
                return Err(Error::new(
                    tw_status::Panic,
                    format!("internal error: step {other:?} is unknown to the C binding"),
                ));
            }
        }
    }
}

/// Run `fn(ctx, attempt)` through the pipeline and return when the call is over, blocking the
/// calling thread: it sleeps (backoff, rate-limit waits) with the OS clock, waits on a
/// condition variable while queued in the bulkhead, and runs each attempt without holding the
/// pipeline's lock, so many threads can execute through one pipeline at once.
///
/// Returns ::TW_STATUS_OK when an attempt succeeded (or a fallback produced the result);
/// otherwise the status of the failure's kind (::TW_STATUS_CIRCUIT_OPEN,
/// ::TW_STATUS_RETRIES_EXHAUSTED, ...; ::TW_STATUS_FAILURE when your function's own error
/// stands), with a message in `err`.
///
/// # Safety
/// `p` is a live pipeline; `fn` is callable with `ctx`; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_execute(
    p: *mut tw_pipeline,
    r#fn: tw_attempt_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe {
        tw_pipeline_execute_ex(
            p,
            r#fn,
            ctx,
            crate::types::TW_NO_DEADLINE,
            std::ptr::null_mut(),
            err,
        )
    }
}

/// As tw_pipeline_execute(), bounded by an inherited `deadline_ns` (::TW_NO_DEADLINE for
/// none), and filling `*failure` (when not NULL) with how the call failed.
///
/// # Safety
/// `p` is a live pipeline; `fn` is callable with `ctx`; `failure` is NULL or writable; `err`
/// is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_execute_ex(
    p: *mut tw_pipeline,
    r#fn: tw_attempt_fn,
    ctx: *mut c_void,
    deadline_ns: u64,
    failure: *mut tw_failure,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let f = r#fn.ok_or_else(|| Error::null("fn"))?;
            execute(p, f, ctx, None, deadline_in(deadline_ns), failure)
        })
    }
}

/// As tw_pipeline_execute_ex(), for the key `key[0..key_len)` (UTF-8) of a keyed pipeline
/// (its own breaker and limiter; ignored by an unkeyed pipeline).
///
/// # Safety
/// `p` is a live pipeline; `key` is valid for `key_len` bytes; `fn` is callable with `ctx`;
/// `failure` is NULL or writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_execute_keyed(
    p: *mut tw_pipeline,
    key: *const c_char,
    key_len: usize,
    r#fn: tw_attempt_fn,
    ctx: *mut c_void,
    deadline_ns: u64,
    failure: *mut tw_failure,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let key = text(key, key_len, "key")?;
            let f = r#fn.ok_or_else(|| Error::null("fn"))?;
            execute(p, f, ctx, Some(key), deadline_in(deadline_ns), failure)
        })
    }
}

/// A policy file: `{"seed"?, "policies": {name: pipelineConfig}}`. Immutable once built;
/// safe to share between threads without locking.
#[derive(Debug)]
pub struct tw_policies(PolicyFile);

/// Parse and validate a policy file. Every issue's path starts with `policies.<name>`.
///
/// # Safety
/// `json` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_policies_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_policies,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let file = PolicyFile::from_json(json(json_text, len)?)?;
            c_names("policies", file.policies.keys())?;
            put(out, "out", Box::into_raw(Box::new(tw_policies(file))))
        })
    }
}

/// Release a policy file (pipelines made from it live on). NULL is ignored.
///
/// # Safety
/// `pf` is NULL or a live policy file not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_policies_free(pf: *mut tw_policies) {
    // SAFETY: per the contract.
    unsafe { free(pf) }
}

/// The number of pipelines the file defines.
///
/// # Safety
/// `pf` is a live policy file; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_policies_count(
    pf: *const tw_policies,
    out: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let pf = handle(pf, "policies")?;
            put(out, "out", pf.0.policies.len())
        })
    }
}

/// The name of the `index`-th pipeline (in name order), into your buffer.
///
/// # Safety
/// `pf` is a live policy file; `buf` is NULL or writable for `cap` bytes; `needed` is NULL or
/// writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_policies_name(
    pf: *const tw_policies,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let pf = handle(pf, "policies")?;
            let count = pf.0.policies.len();
            let name = pf.0.names().nth(index).ok_or_else(|| {
                Error::invalid(format!("index: {index} is out of range (0..{count})"))
            })?;
            write_text(name, buf, cap, needed)
        })
    }
}

/// A new pipeline for the entry `name` (::TW_STATUS_UNKNOWN_POLICY when absent). Jitter is
/// seeded by the entry's `seed`, else the file's, else OS randomness.
///
/// # Safety
/// `pf` is a live policy file; `name` is a NUL-terminated UTF-8 string; `out` is writable;
/// `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_policies_pipeline(
    pf: *const tw_policies,
    name: *const c_char,
    out: *mut *mut tw_pipeline,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: per the contract.
    unsafe { tw_policies_pipeline_with_seed(pf, name, os_seed(), out, err) }
}

/// As tw_policies_pipeline(), with `seed` in place of OS randomness.
///
/// # Safety
/// As tw_policies_pipeline().
#[no_mangle]
pub unsafe extern "C" fn tw_policies_pipeline_with_seed(
    pf: *const tw_policies,
    name: *const c_char,
    seed: u64,
    out: *mut *mut tw_pipeline,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let pf = handle(pf, "policies")?;
            let name = cstr(name, "name")?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let core = pf.0.pipeline(name, seed).map_err(|e| {
                Error::new(tw_status::UnknownPolicy, format!("name: {e}: {name:?}"))
            })?;
            put(out, "out", new_pipeline(core))
        })
    }
}

//! A rate limit and a circuit breaker shared by many instances through a store (Redis,
//! Valkey): the store step of the pipeline (`tw_pipeline_set_store`, `tw_call_store_request`,
//! `tw_call_report_store`), the shared breaker's metrics (`tw_pipeline_get_share_metrics`), the
//! low-level `tw_shared_limiter`, and `tw_store_scripts` (SCALE-OUT.md).
//!
//! The library never talks to a store: it hands a request (script, keys, args, timeout) to the
//! host's client through a `tw_store` callback, or through the step protocol, and takes the
//! reply back. A request's strings are copied out of the core into a buffer the binding owns
//! (per call or per request id), so the pointers a host reads stay valid without the handle's
//! lock while its client runs.

use std::collections::HashMap;
use std::ffi::{c_char, c_void};

use tripwire_core::pipeline::{CallId, Step};
use tripwire_core::store::{
    RequestId, Script, SharedCheck, SharedLimiter, Source, StoreReply, StoreRequest,
};
use tripwire_core::{BreakerState, Instant};

use crate::error::{guard, put, tw_error, tw_status, Error};
use crate::handle::{free, handle, Ctx, Drain, Shared};
use crate::limiter::{decision_out, tw_rate_decision};
use crate::pipeline::{tw_call, tw_pipeline, Inner};
use crate::types::{tw_breaker_state, tw_event, tw_event_fn};
use crate::util::{json, now_ns, os_seed, text, write_text};

/// The most integers a ::tw_store_reply carries (the `gcra` script replies with 8).
pub const TW_STORE_MAX_VALUES: usize = 16;

/// The size of ::tw_store_reply.message, its terminating NUL included.
pub const TW_STORE_MESSAGE_SIZE: usize = 256;

/// Bytes at `ptr` for `len`. NOT NUL-terminated: always use `len` (printf: `"%.*s", (int)s.len,
/// s.ptr`). `ptr` is valid (never NULL) even when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_store_str {
    /// The first byte.
    pub ptr: *const c_char,
    /// How many bytes.
    pub len: usize,
}

impl tw_store_str {
    fn of(s: &'static str) -> tw_store_str {
        tw_store_str {
            ptr: s.as_ptr().cast(),
            len: s.len(),
        }
    }
}

/// A store script, for `SCRIPT LOAD` at start (see tw_store_scripts()). Its strings are static:
/// valid for the life of the process.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_store_script {
    /// Its name (`"gcra"`, `"breaker"`).
    pub name: tw_store_str,
    /// The lowercase hex SHA1 of `source` (40 bytes), for `EVALSHA`.
    pub sha1: tw_store_str,
    /// The Lua source, for `EVAL` after a `NOSCRIPT` reply, and `SCRIPT LOAD`.
    pub source: tw_store_str,
}

impl tw_store_script {
    fn of(s: &'static Script) -> tw_store_script {
        tw_store_script {
            name: tw_store_str::of(s.name),
            sha1: tw_store_str::of(s.sha1),
            source: tw_store_str::of(s.source),
        }
    }
}

/// What the host's store client must run, once:
/// `EVALSHA sha1 num_keys keys[0] .. keys[num_keys-1] args[0] .. args[num_args-1]`, and on a
/// `NOSCRIPT` error reply (and only then) `EVAL source num_keys keys.. args..` once.
///
/// Never send it again after a timeout or a dropped connection (report
/// ::TW_STORE_REPLY_KIND_TIMEOUT or ::TW_STORE_REPLY_KIND_UNAVAILABLE): it changes state in the
/// store, and a resend counts a call twice. Give up after `timeout_ns`.
///
/// Every pointer in it stays valid until the reply is reported (tw_call_report_store(),
/// tw_shared_limiter_reply()), the call is polled again or ended, the request is abandoned, or
/// the handle is freed; inside a ::tw_store run callback, until the callback returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_store_request {
    /// The request id (tw_shared_limiter_reply() takes it back; in a pipeline it is the STORE
    /// step's `request`).
    pub id: u64,
    /// The script's name (`"gcra"`, `"breaker"`).
    pub script_name: tw_store_str,
    /// The script's lowercase hex SHA1, for `EVALSHA`.
    pub sha1: tw_store_str,
    /// The script's Lua source, for `EVAL` after `NOSCRIPT`.
    pub source: tw_store_str,
    /// `num_keys` keys (all with one hash tag, so Redis Cluster never answers `CROSSSLOT`).
    pub keys: *const tw_store_str,
    /// How many keys.
    pub num_keys: usize,
    /// `num_args` arguments.
    pub args: *const tw_store_str,
    /// How many arguments.
    pub num_args: usize,
    /// Give up after this long (`store.timeout`) and report ::TW_STORE_REPLY_KIND_TIMEOUT.
    pub timeout_ns: u64,
    /// The same limit as an instant on the clock of the `now_ns` given to the call (tw_now_ns()
    /// for tw_pipeline_execute()): a reply reported at or after it counts as a timeout.
    pub until_ns: u64,
    /// Whether it may be sent again after a timeout or a dropped connection (only a request
    /// that changes nothing; a host can ignore this and never resend).
    pub resend_safe: bool,
}

/// What came back from the store (::tw_store_reply.kind).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_store_reply_kind {
    /// Nothing was filled in: a run callback that returns without setting `kind` is treated as
    /// ::TW_STORE_REPLY_KIND_FAILED; the step API and tw_shared_limiter_reply() refuse it
    /// (::TW_STATUS_INVALID_ARGUMENT).
    None = 0,
    /// The script's reply: `num_values` integers in `values`.
    Values = 1,
    /// No reply within the request's timeout (the connection is then unusable: a late reply
    /// would answer the next command). Counts against the store's breaker; the fallback decides.
    Timeout = 2,
    /// No connection, or it dropped. Counts against the store's breaker; the fallback decides.
    Unavailable = 3,
    /// Any other error reply (`WRONGTYPE`, `CROSSSLOT`, `NOPERM`...), put in `message`: a
    /// deployment mistake, not unavailability. It does not open the store's breaker; the
    /// fallback decides this call, and the message is kept (tw_shared_limiter_last_error()).
    Failed = 4,
    /// `NOSCRIPT` even after `EVAL` (an adapter normally never reports it).
    NoScript = 5,
}

/// A ::tw_store_reply_kind as C passes it (validated before use).
pub type RawStoreReplyKind = u32;

/// The store's reply, filled by the host's client. Plain data with room for the reply inside,
/// so a run callback can fill it from its own stack without any lifetime question.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_store_reply {
    /// What came back (a ::tw_store_reply_kind).
    pub kind: RawStoreReplyKind,
    /// ::TW_STORE_REPLY_KIND_VALUES: how many of `values` are set (at most ::TW_STORE_MAX_VALUES;
    /// a longer reply is ::TW_STORE_REPLY_KIND_FAILED).
    pub num_values: usize,
    /// ::TW_STORE_REPLY_KIND_VALUES: the script's integers, in order.
    pub values: [i64; TW_STORE_MAX_VALUES],
    /// ::TW_STORE_REPLY_KIND_FAILED: the error reply, NUL-terminated (cut to fit).
    pub message: [c_char; TW_STORE_MESSAGE_SIZE],
}

impl tw_store_reply {
    const EMPTY: tw_store_reply = tw_store_reply {
        kind: tw_store_reply_kind::None as u32,
        num_values: 0,
        values: [0; TW_STORE_MAX_VALUES],
        message: [0; TW_STORE_MESSAGE_SIZE],
    };
}

/// The host's store client: `run(ctx, request, reply)` runs `request` once (the rules of
/// ::tw_store_request) and fills `*reply` before returning.
///
/// Why a callback struct: C has no common Redis client, and the library must not pick one (nor
/// open connections behind your back). `run` is the whole contract: one request in, one plain
/// reply out, synchronously; `ctx` is your client (hiredis, a pool, a test double). The reply is
/// a struct you fill, not a return code, so there is exactly one way to say what happened.
/// bindings-c/adapters/tw_hiredis.c is a ready one over hiredis.
///
/// tw_pipeline_execute() calls `run` without holding the pipeline's lock, from every thread that
/// executes through the pipeline, possibly at once: make it thread-safe (the hiredis adapter
/// takes a mutex, bounded by the request's timeout). It must enforce `timeout_ns` itself (a
/// blocking client cannot be interrupted); a reply that comes back at or after `until_ns` is
/// dropped and counted as a timeout anyway. It must not throw (C++) or longjmp out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_store {
    /// Your client, passed back to `run`.
    pub ctx: *mut c_void,
    /// Run one request (never NULL).
    pub run: tw_store_run_fn,
}

/// See ::tw_store.
pub type tw_store_run_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        request: *const tw_store_request,
        reply: *mut tw_store_reply,
    ),
>;

type RunFn = unsafe extern "C" fn(*mut c_void, *const tw_store_request, *mut tw_store_reply);

/// Where a shared decision came from.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tw_store_source {
    /// Not decided yet: run the request (::tw_shared_decision.decided is false).
    None = 0,
    /// The store's script.
    Store = 1,
    /// `store.onUnavailable` (the store timed out, was unavailable, failed, or its breaker is
    /// open).
    Fallback = 2,
    /// A denial the store gave earlier for the same descriptor, still in force.
    Cache = 3,
}

impl From<Source> for tw_store_source {
    fn from(s: Source) -> tw_store_source {
        match s {
            Source::Store => tw_store_source::Store,
            Source::Fallback => tw_store_source::Fallback,
            Source::Cache => tw_store_source::Cache,
            // Source is #[non_exhaustive]: a newer source is not the store's word.
            _ => tw_store_source::Fallback,
        }
    }
}

/// The name of a ::tw_store_source (`"store"`, `"fallback"`, `"cache"`; `"none"` for
/// ::TW_STORE_SOURCE_NONE), or `"unknown"`. Static; never free it.
#[no_mangle]
pub extern "C" fn tw_store_source_str(source: u32) -> *const c_char {
    crate::error::guard_value(c"unknown".as_ptr(), || match source {
        0 => c"none".as_ptr(),
        1 => c"store".as_ptr(),
        2 => c"fallback".as_ptr(),
        3 => c"cache".as_ptr(),
        _ => c"unknown".as_ptr(),
    })
}

/// The answer of tw_shared_limiter_check() and tw_shared_limiter_reply().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_shared_decision {
    /// Whether `decision` and `source` are set. When false, run request `request`
    /// (tw_shared_limiter_request()) and report its reply with tw_shared_limiter_reply().
    pub decided: bool,
    /// When not decided: the request to run.
    pub request: u64,
    /// When decided: allowed (at once, or after a reserved `wait_ns`), or denied with a
    /// retry-after where known.
    pub decision: tw_rate_decision,
    /// When decided: where the decision came from.
    pub source: tw_store_source,
}

// ------------------------------------------------------------------------------- conversions

/// A request copied out of the core: its keys and args in one buffer, and the views C reads.
#[derive(Debug)]
pub(crate) struct OwnedRequest {
    id: u64,
    timeout_ns: u64,
    until_ns: u64,
    resend_safe: bool,
    script: &'static Script,
    /// Keys then args, back to back; `views` point into it.
    _bytes: Vec<u8>,
    /// Keys then args.
    views: Vec<tw_store_str>,
    num_keys: usize,
}

// SAFETY: `views` only point into `_bytes`, a heap buffer owned by the same value and never
// mutated after construction; moving the value between threads moves that ownership with it.
unsafe impl Send for OwnedRequest {}

impl OwnedRequest {
    fn new(r: &StoreRequest, until: Instant) -> OwnedRequest {
        let strings = r.keys.iter().chain(&r.args);
        let mut bytes = Vec::with_capacity(strings.clone().map(String::len).sum::<usize>() + 1);
        let mut spans = Vec::with_capacity(r.keys.len() + r.args.len());
        for s in strings {
            spans.push((bytes.len(), s.len()));
            bytes.extend_from_slice(s.as_bytes());
        }
        // One byte past the last string, so an empty string's pointer is in bounds.
        bytes.push(0);
        let base: *const u8 = bytes.as_ptr();
        let views = spans
            .into_iter()
            .map(|(at, len)| tw_store_str {
                // SAFETY: `at <= bytes.len() - 1`, inside the allocation.
                ptr: unsafe { base.add(at) }.cast(),
                len,
            })
            .collect();
        OwnedRequest {
            id: r.id.get(),
            timeout_ns: tripwire_core::time::duration_nanos(r.timeout),
            until_ns: until.as_nanos(),
            resend_safe: r.resend_safe,
            script: r.script,
            _bytes: bytes,
            views,
            num_keys: r.keys.len(),
        }
    }

    fn view(&self) -> tw_store_request {
        let (keys, args) = self.views.split_at(self.num_keys);
        tw_store_request {
            id: self.id,
            script_name: tw_store_str::of(self.script.name),
            sha1: tw_store_str::of(self.script.sha1),
            source: tw_store_str::of(self.script.source),
            keys: keys.as_ptr(),
            num_keys: keys.len(),
            args: args.as_ptr(),
            num_args: args.len(),
            timeout_ns: self.timeout_ns,
            until_ns: self.until_ns,
            resend_safe: self.resend_safe,
        }
    }
}

/// A C reply as the core's. `None` (kind 0), an unknown kind and too many values are errors.
fn reply_in(r: &tw_store_reply) -> Result<StoreReply, Error> {
    Ok(match r.kind {
        1 => {
            let n = r.num_values;
            if n > TW_STORE_MAX_VALUES {
                return Err(Error::invalid(format!(
                    "reply.num_values: {n} is more than TW_STORE_MAX_VALUES ({TW_STORE_MAX_VALUES})"
                )));
            }
            StoreReply::Values(r.values[..n].to_vec())
        }
        2 => StoreReply::Timeout,
        3 => StoreReply::Unavailable,
        4 => {
            let bytes: Vec<u8> = r
                .message
                .iter()
                .map(|c| *c as u8)
                .take_while(|b| *b != 0)
                .collect();
            StoreReply::Failed(String::from_utf8_lossy(&bytes).into_owned())
        }
        5 => StoreReply::NoScript,
        0 => {
            return Err(Error::invalid(
                "reply.kind: no reply kind was set (TW_STORE_REPLY_KIND_NONE)",
            ))
        }
        other => {
            return Err(Error::invalid(format!(
                "reply.kind: {other} is not a tw_store_reply_kind (1..=5)"
            )))
        }
    })
}

/// A reply for a request that is due at `until_ns`, reported at `now_ns`: one at or after its
/// limit is a timeout (dropped, never applied).
fn in_time(reply: StoreReply, until_ns: Option<u64>, now_ns: u64) -> StoreReply {
    match until_ns {
        Some(until) if now_ns >= until => StoreReply::Timeout,
        _ => reply,
    }
}

/// Run `request` through the host's client: a reply it failed to fill in is a failed request
/// (a deployment mistake), never a crash.
fn run_client(run: RunFn, ctx: Ctx, request: &OwnedRequest) -> StoreReply {
    let view = request.view();
    let mut reply = tw_store_reply::EMPTY;
    // SAFETY: the host registered `run` and `ctx` for this handle (tw_store's contract); the
    // request view and the reply are valid for the duration of the call.
    unsafe { run(ctx.0, &view, &mut reply) };
    reply_in(&reply).unwrap_or_else(|e| {
        StoreReply::Failed(format!(
            "the store's run callback gave no valid reply: {}",
            e.message
        ))
    })
}

fn decided(d: tripwire_core::RateDecision, s: Source) -> Result<tw_shared_decision, Error> {
    Ok(tw_shared_decision {
        decided: true,
        request: 0,
        decision: decision_out(d)?,
        source: s.into(),
    })
}

// ------------------------------------------------------------------------------- scripts

/// Every store script, so hosts can `SCRIPT LOAD` them at start: into `out[0..cap)`, with the
/// count in `*count`. `out == NULL && cap == 0` asks for the count only; a smaller `cap` gives
/// ::TW_STATUS_BUFFER_TOO_SMALL (nothing written).
///
/// # Safety
/// `out` is NULL or writable for `cap` entries; `count` is writable; `err` is NULL or a
/// writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_store_scripts(
    out: *mut tw_store_script,
    cap: usize,
    count: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let all = tripwire_core::store::scripts();
            put(count, "count", all.len())?;
            if out.is_null() {
                return if cap == 0 {
                    Ok(())
                } else {
                    Err(Error::null("out"))
                };
            }
            if cap < all.len() {
                return Err(Error::new(
                    tw_status::BufferTooSmall,
                    format!("out: {cap} entries are too few; {} are needed", all.len()),
                ));
            }
            for (i, s) in all.iter().enumerate() {
                // SAFETY: `i < all.len() <= cap` entries are writable.
                std::ptr::write(out.add(i), tw_store_script::of(s));
            }
            Ok(())
        })
    }
}

// ------------------------------------------------------------------------------- pipelines

/// The store side of a pipeline: the host's client, and the requests of calls driven through
/// the step protocol, copied for the host to read.
#[derive(Debug, Default)]
pub(crate) struct PipelineStore {
    client: Option<(RunFn, Ctx)>,
    /// Per call (raw id): the request of its current STORE step.
    requests: HashMap<tw_call, OwnedRequest>,
}

impl PipelineStore {
    /// After `call` was polled: keep the copy of its current store request (made once per
    /// request), forget it on any other step.
    pub(crate) fn after_poll(inner: &mut Inner, call: tw_call, step: &Step) {
        match *step {
            Step::Store { request, until } => {
                let current = inner.store.requests.get(&call).map(|r| r.id);
                if current != Some(request.get()) {
                    match inner.core.store_request(request) {
                        Some(r) => {
                            let owned = OwnedRequest::new(r, until);
                            inner.store.requests.insert(call, owned);
                        }
                        None => {
                            inner.store.requests.remove(&call);
                        }
                    }
                }
            }
            _ => {
                inner.store.requests.remove(&call);
            }
        }
    }

    /// The call ended: drop its request copy.
    pub(crate) fn forget(&mut self, call: tw_call) {
        self.requests.remove(&call);
    }
}

/// The STORE step of a blocking tw_pipeline_execute(): copy the request, run it through the
/// pipeline's ::tw_store without the lock (`Unavailable` without one), then report the reply,
/// as a timeout when it came at or after `until`.
pub(crate) fn execute_step(
    p: &tw_pipeline,
    call: CallId,
    request: RequestId,
    until: Instant,
) -> Result<(), Error> {
    let g = p.0.lock()?;
    let client = g.inner.store.client;
    let owned = g
        .inner
        .core
        .store_request(request)
        .map(|r| OwnedRequest::new(r, until));
    p.0.release(g);
    let reply = match (client, &owned) {
        (Some((run, ctx)), Some(r)) => run_client(run, ctx, r),
        // No client: the fallback decides. No request (a reconfigure replaced the shared
        // limiter): the core forgets the reply and the call asks again.
        _ => StoreReply::Unavailable,
    };
    let now = now_ns();
    let reply = in_time(reply, Some(until.as_nanos()), now);
    p.input(|c| Ok(c.report_store(call, reply, Instant::from_nanos(now))?))
}

/// # Safety
/// `p` is NULL or a live pipeline.
unsafe fn pipeline<'a>(p: *const tw_pipeline) -> Result<&'a tw_pipeline, Error> {
    // SAFETY: per the contract.
    unsafe { handle(p, "pipeline") }
}

/// Run the pipeline's store requests (a config with `store`: a shared rate limit, a shared
/// breaker) through `*store` in tw_pipeline_execute(). The struct is copied; `store->ctx` must
/// stay valid until the pipeline is freed or another store is set. NULL removes the store.
///
/// A pipeline with a `store` in its config and no store set still works: tw_pipeline_execute()
/// answers each store request ::TW_STORE_REPLY_KIND_UNAVAILABLE, so `store.onUnavailable` decides
/// (`local`: an in-process limit at rate/N; `allow`; `deny`). Calls driven by the step protocol
/// run their STORE steps themselves (tw_call_store_request()) and ignore this.
///
/// Returns ::TW_STATUS_NULL_ARGUMENT when `store->run` is NULL.
///
/// # Safety
/// `p` is a live pipeline; `store` is NULL or readable; `store->run` may be called with
/// `store->ctx` from any thread that executes on `p`, concurrently; `err` is NULL or a
/// writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_set_store(
    p: *mut tw_pipeline,
    store: *const tw_store,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let client = match store.as_ref() {
                None => None,
                Some(s) => Some((s.run.ok_or_else(|| Error::null("store.run"))?, Ctx(s.ctx))),
            };
            p.0.lock()?.inner.store.client = client;
            Ok(())
        })
    }
}

/// The request of `call`'s current ::TW_STEP_KIND_STORE step (the step's `request`), into
/// `*out`. Run it once (the rules of ::tw_store_request), then tw_call_report_store(). Its
/// pointers stay valid until the reply is reported, the call is polled again or ended, or the
/// pipeline is freed.
///
/// After tw_pipeline_reconfigure() replaced the shared limit, the copy still names the old
/// request: its reply is then ignored and the next poll asks again under the new config.
///
/// Returns ::TW_STATUS_INVALID_ARGUMENT when no store request is pending for `call` (its last
/// poll was not a STORE step, its reply was reported, or it ended).
///
/// # Safety
/// `p` is a live pipeline; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_call_store_request(
    p: *mut tw_pipeline,
    call: tw_call,
    out: *mut tw_store_request,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let g = p.0.lock()?;
            let view = g.inner.store.requests.get(&call).map(OwnedRequest::view);
            drop(g);
            match view {
                Some(v) => put(out, "out", v),
                None => Err(Error::new(
                    tw_status::InvalidArgument,
                    "call: no store request is pending for this call (poll it until a \
                     TW_STEP_KIND_STORE step first)",
                )),
            }
        })
    }
}

/// Report the reply to `call`'s store request at `now_ns`; then poll the call again. A reply
/// reported at or after the STORE step's `until_ns` counts as ::TW_STORE_REPLY_KIND_TIMEOUT (a late
/// reply is dropped, never applied).
///
/// Returns ::TW_STATUS_UNKNOWN_CALL for a stale handle, ::TW_STATUS_INVALID_ARGUMENT when the
/// call is not waiting for a store reply or the reply is malformed (kind NONE or unknown, more
/// than ::TW_STORE_MAX_VALUES values).
///
/// # Safety
/// `p` is a live pipeline; `reply` is readable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_call_report_store(
    p: *mut tw_pipeline,
    call: tw_call,
    reply: *const tw_store_reply,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            let reply = reply_in(reply.as_ref().ok_or_else(|| Error::null("reply"))?)?;
            p.input_inner(|inner| {
                let until = inner.store.requests.get(&call).map(|r| r.until_ns);
                let reply = in_time(reply, until, now_ns);
                inner.core.report_store(
                    CallId::from_raw(call),
                    reply,
                    Instant::from_nanos(now_ns),
                )?;
                inner.store.forget(call);
                Ok(())
            })
        })
    }
}

/// The shared breaker's counters (`circuitBreaker.share`; tw_pipeline_get_share_metrics()).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tw_share_metrics {
    /// Store requests emitted (syncs, votes, probes, results).
    pub requests: u64,
    /// Local trips sent as votes.
    pub votes: u64,
    /// Probe leases this instance got.
    pub probes_granted: u64,
    /// Probes refused because another instance holds the lease or the fleet is still open.
    pub probes_denied: u64,
    /// Times this instance adopted the fleet's open state.
    pub adopted_open: u64,
    /// Times this instance adopted the fleet's recovery (closed).
    pub adopted_closed: u64,
    /// Times the store's epoch changed (it lost the shared state).
    pub epoch_changes: u64,
    /// Replies that were timeouts, unavailable or errors.
    pub failed: u64,
    /// Aggregate mode: the fleet window's calls, as last read.
    pub fleet_calls: u64,
    /// Aggregate mode: the fleet window's failures, as last read.
    pub fleet_failures: u64,
    /// Aggregate mode: the instances reporting into the fleet window, as last read.
    pub fleet_reporters: u64,
    /// The fleet's state as last seen.
    pub fleet_state: tw_breaker_state,
}

/// The shared breaker's counters (a config with `circuitBreaker.share`), into `*out`; the same
/// numbers as the `share` object of tw_pipeline_stats_json(). ::TW_STATUS_NOT_CONFIGURED when
/// the pipeline's breaker is not shared.
///
/// # Safety
/// `p` is a live pipeline; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_get_share_metrics(
    p: *const tw_pipeline,
    out: *mut tw_share_metrics,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let p = pipeline(p)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let m =
                p.0.lock()?
                    .inner
                    .core
                    .stats()
                    .share
                    .ok_or_else(|| Error::not_configured("circuitBreaker.share"))?;
            put(
                out,
                "out",
                tw_share_metrics {
                    requests: m.requests,
                    votes: m.votes,
                    probes_granted: m.probes_granted,
                    probes_denied: m.probes_denied,
                    adopted_open: m.adopted_open,
                    adopted_closed: m.adopted_closed,
                    epoch_changes: m.epoch_changes,
                    failed: m.failed,
                    fleet_calls: m.fleet_calls,
                    fleet_failures: m.fleet_failures,
                    fleet_reporters: m.fleet_reporters,
                    fleet_state: m.fleet_state.into(),
                },
            )
        })
    }
}

/// The last error reply the store gave the pipeline's shared rate limit (a
/// ::TW_STORE_REPLY_KIND_FAILED reply: `WRONGTYPE ...`, `CROSSSLOT ...`, `NOPERM ...`, a
/// deployment mistake), into your buffer; empty when there was none (or the pipeline has no
/// shared rate limit).
///
/// # Safety
/// `p` is a live pipeline; `buf` is NULL or writable for `cap` bytes; `needed` is NULL or
/// writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_store_last_error(
    p: *const tw_pipeline,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let text = pipeline(p)?
                .0
                .lock()?
                .inner
                .core
                .store_last_error()
                .unwrap_or("")
                .to_owned();
            write_text(&text, buf, cap, needed)
        })
    }
}

/// Make the pipeline's store scripts (the shared rate limit and the shared breaker) use the
/// `now_ns` you pass instead of the store's clock (`on`), or the store's clock again. Only for
/// conformance tests that replay vectors through a real store: in production the store's clock
/// is the one clock of the fleet. A pipeline without a `store` ignores it. It applies to the
/// shared parts the pipeline has now: a tw_pipeline_reconfigure() that rebuilds them (a changed
/// `store`, `rateLimit` or `circuitBreaker.share`) starts them on the store's clock again.
///
/// # Safety
/// `p` is a live pipeline; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_pipeline_use_store_host_clock(
    p: *mut tw_pipeline,
    on: bool,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            pipeline(p)?.0.lock()?.inner.core.use_store_host_clock(on);
            Ok(())
        })
    }
}

// ------------------------------------------------------------------------------- the raw layer

/// What a shared limiter holds behind its mutex.
#[derive(Debug)]
struct Limiter {
    core: SharedLimiter,
    /// Requests copied for the host, by id.
    requests: HashMap<u64, OwnedRequest>,
}

impl Drain for Limiter {
    type Event = tw_event;
    fn pop_event(&mut self) -> Option<tw_event> {
        self.core.poll_event().map(tw_event::from)
    }
}

/// A rate limit shared through a store, without a pipeline: the low-level layer under the
/// pipeline's STORE step (fleet workers, conformance vectors, hosts with their own run loop).
/// Opaque; safe to share between threads (one mutex). Its events
/// (::TW_EVENT_TYPE_STORE_STATE_CHANGED) go to tw_shared_limiter_poll_event() or a listener.
#[derive(Debug)]
pub struct tw_shared_limiter(Shared<Limiter>);

/// # Safety
/// `l` is NULL or a live shared limiter.
unsafe fn limiter<'a>(l: *const tw_shared_limiter) -> Result<&'a tw_shared_limiter, Error> {
    // SAFETY: per the contract.
    unsafe { handle(l, "limiter") }
}

/// Build a shared limiter from `{"rateLimit": <limits, each "algorithm": "gcra">, "store":
/// {"key", "timeout"?, "onUnavailable"?, "expectedInstances"?, ...}, "keyed"?: {"maxKeys",
/// "idleExpiry"}}` (the same fields as in a pipeline config). Its instance id and hashes are
/// seeded from OS randomness.
///
/// Returns ::TW_STATUS_INVALID_CONFIG with the field path (`store.timeout: must be > 0, got
/// 0`) when the config is refused.
///
/// # Safety
/// `json_text` is valid for `len` bytes; `out` is writable; `err` is NULL or a writable
/// `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_new(
    json_text: *const c_char,
    len: usize,
    out: *mut *mut tw_shared_limiter,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe { tw_shared_limiter_new_with_seed(json_text, len, os_seed(), out, err) }
}

/// As tw_shared_limiter_new(), seeded with `seed` (reproducible tests and vectors).
///
/// # Safety
/// As tw_shared_limiter_new().
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_new_with_seed(
    json_text: *const c_char,
    len: usize,
    seed: u64,
    out: *mut *mut tw_shared_limiter,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let core = SharedLimiter::from_json(json(json_text, len)?, seed)?;
            let l = tw_shared_limiter(Shared::new(Limiter {
                core,
                requests: HashMap::new(),
            }));
            put(out, "out", Box::into_raw(Box::new(l)))
        })
    }
}

/// Release a shared limiter (and every request copy it holds). NULL is ignored.
///
/// # Safety
/// `l` is NULL or a live shared limiter that no other thread is using; invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_free(l: *mut tw_shared_limiter) {
    // SAFETY: per the contract.
    unsafe { free(l) }
}

/// Decide `cost` for the descriptor `key[0..key_len)` (UTF-8; NULL with `key_len == 0` for the
/// unkeyed `""`) at `now_ns`. Either decided at once (a cached store denial, or the fallback
/// while the store's breaker is open), or `decided == false` with a `request` to run.
///
/// # Safety
/// `l` is a live shared limiter; `key` is NULL (with `key_len == 0`) or valid for `key_len`
/// bytes; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_check(
    l: *mut tw_shared_limiter,
    key: *const c_char,
    key_len: usize,
    now_ns: u64,
    cost: u64,
    out: *mut tw_shared_decision,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let l = limiter(l)?;
            let key = if key.is_null() && key_len == 0 {
                ""
            } else {
                text(key, key_len, "key")?
            };
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let d =
                l.0.with(
                    |s| match s.core.check(key, Instant::from_nanos(now_ns), cost, None) {
                        SharedCheck::Decided { decision, source } => decided(decision, source),
                        SharedCheck::Send(id) => Ok(tw_shared_decision {
                            decided: false,
                            request: id.get(),
                            decision: decision_out(tripwire_core::RateDecision::Allowed)?,
                            source: tw_store_source::None,
                        }),
                    },
                )?;
            put(out, "out", d)
        })
    }
}

/// The request `id` (from tw_shared_limiter_check()) into `*out`: run it once (the rules of
/// ::tw_store_request), then tw_shared_limiter_reply(). Its pointers stay valid until the
/// reply is reported, the request is abandoned, or the limiter is freed.
///
/// Returns ::TW_STATUS_UNKNOWN_CALL when `id` is not a request in flight.
///
/// # Safety
/// `l` is a live shared limiter; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_request(
    l: *mut tw_shared_limiter,
    id: u64,
    out: *mut tw_store_request,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let l = limiter(l)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let view = l.0.with(|s| {
                let rid = RequestId::from_raw(id);
                if !s.requests.contains_key(&id) {
                    let (Some(r), Some(until)) =
                        (s.core.request(rid), s.core.request_deadline(rid))
                    else {
                        return Err(unknown_request(id));
                    };
                    let owned = OwnedRequest::new(r, until);
                    s.requests.insert(id, owned);
                }
                Ok(s.requests.get(&id).map(OwnedRequest::view))
            })?;
            put(out, "out", view.ok_or_else(|| unknown_request(id))?)
        })
    }
}

fn unknown_request(id: u64) -> Error {
    Error::new(
        tw_status::UnknownCall,
        format!("id: {id} is not a request in flight (unknown, answered or abandoned)"),
    )
}

/// Report the reply to request `id` at `now_ns` and get the decision into `*out` (always
/// `decided`). A reply reported at or after the request's `until_ns` counts as
/// ::TW_STORE_REPLY_KIND_TIMEOUT. Timeouts and unavailability count against the store's breaker
/// (3 in a row open it: no requests for 500 ms, the fallback decides); a failed reply does not.
///
/// Returns ::TW_STATUS_UNKNOWN_CALL when `id` is not a request in flight (answered twice,
/// abandoned), ::TW_STATUS_INVALID_ARGUMENT for a malformed reply (kind NONE or unknown, more
/// than ::TW_STORE_MAX_VALUES values).
///
/// # Safety
/// `l` is a live shared limiter; `reply` is readable; `out` is NULL or writable; `err` is NULL
/// or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_reply(
    l: *mut tw_shared_limiter,
    id: u64,
    reply: *const tw_store_reply,
    now_ns: u64,
    out: *mut tw_shared_decision,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let l = limiter(l)?;
            let reply = reply_in(reply.as_ref().ok_or_else(|| Error::null("reply"))?)?;
            let d = l.0.with(|s| {
                let rid = RequestId::from_raw(id);
                let until = s.core.request_deadline(rid).map(Instant::as_nanos);
                let reply = in_time(reply, until, now_ns);
                let (decision, source) = s
                    .core
                    .on_reply(rid, reply, Instant::from_nanos(now_ns))
                    .map_err(|_| unknown_request(id))?;
                s.requests.remove(&id);
                decided(decision, source)
            })?;
            crate::error::put_opt(out, d);
            Ok(())
        })
    }
}

/// Forget request `id` (its caller went away): its reply, if it comes, is an unknown id. The
/// store may have counted it; nothing is given back (never resend, never undo).
///
/// Returns ::TW_STATUS_OK even when `id` is not in flight.
///
/// # Safety
/// `l` is a live shared limiter; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_abandon(
    l: *mut tw_shared_limiter,
    id: u64,
    now_ns: u64,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            limiter(l)?.0.with(|s| {
                s.core
                    .abandon(RequestId::from_raw(id), Instant::from_nanos(now_ns));
                s.requests.remove(&id);
                Ok(())
            })
        })
    }
}

/// The store's breaker state (::TW_BREAKER_STATE_CLOSED: the store is asked).
///
/// # Safety
/// `l` is a live shared limiter; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_store_state(
    l: *const tw_shared_limiter,
    out: *mut tw_breaker_state,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let state: BreakerState = limiter(l)?.0.lock()?.inner.core.store_state();
            put(out, "out", state.into())
        })
    }
}

/// The counters as JSON (camelCase: `requests`, `storeAllowed`, `storeWaited`, `storeDenied`,
/// `cacheDenied`, `fallbackAllowed`, `fallbackDenied`, `timeouts`, `unavailable`, `errors`,
/// `inFlight`, `storeState`, `instances`), into your buffer.
///
/// # Safety
/// `l` is a live shared limiter; `buf` is NULL or writable for `cap` bytes; `needed` is NULL
/// or writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_metrics_json(
    l: *const tw_shared_limiter,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let m = limiter(l)?.0.lock()?.inner.core.metrics();
            let text =
                serde_json::to_string(&m).map_err(|e| Error::invalid(format!("metrics: {e}")))?;
            write_text(&text, buf, cap, needed)
        })
    }
}

/// The last error reply the store gave (a `Failed` reply: `WRONGTYPE ...`), into your buffer;
/// empty when there was none.
///
/// # Safety
/// `l` is a live shared limiter; `buf` is NULL or writable for `cap` bytes; `needed` is NULL
/// or writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_last_error(
    l: *const tw_shared_limiter,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let text = limiter(l)?
                .0
                .lock()?
                .inner
                .core
                .last_error()
                .unwrap_or("")
                .to_owned();
            write_text(&text, buf, cap, needed)
        })
    }
}

/// Make the script use the `now_ns` you pass instead of the store's clock (`on`), or the
/// store's clock again. Only for conformance tests that replay vectors through a real store: in
/// production the store's clock is the one clock of the fleet.
///
/// # Safety
/// `l` is a live shared limiter; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_use_host_clock(
    l: *mut tw_shared_limiter,
    on: bool,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            limiter(l)?.0.lock()?.inner.core.use_host_clock(on);
            Ok(())
        })
    }
}

/// Take the oldest queued event into `*out` (`out->type == TW_EVENT_TYPE_NONE` when none):
/// ::TW_EVENT_TYPE_STORE_STATE_CHANGED when the store's breaker moves.
///
/// # Safety
/// `l` is a live shared limiter; `out` is writable; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_poll_event(
    l: *mut tw_shared_limiter,
    out: *mut tw_event,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            let l = limiter(l)?;
            if out.is_null() {
                return Err(Error::null("out"));
            }
            let e = l.0.lock()?.inner.pop_event();
            put(out, "out", e.unwrap_or(tw_event::NONE))
        })
    }
}

/// Deliver events to `listener(ctx, event)` after every input instead of queueing them for
/// tw_shared_limiter_poll_event(). NULL removes the listener.
///
/// # Safety
/// `l` is a live shared limiter; `listener` (if any) may be called with `ctx` from any thread
/// that uses `l`; `err` is NULL or a writable `tw_error *`.
#[no_mangle]
pub unsafe extern "C" fn tw_shared_limiter_set_listener(
    l: *mut tw_shared_limiter,
    listener: tw_event_fn,
    ctx: *mut c_void,
    err: *mut *mut tw_error,
) -> tw_status {
    // SAFETY: pointers per the contract.
    unsafe {
        guard(err, || {
            limiter(l)?.0.set_listener(listener.map(|f| (f, Ctx(ctx))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::ptr;

    const CONFIG: &str =
        r#"{"rateLimit": {"algorithm": "gcra", "rate": "2/s", "burst": 2}, "store": {"key": "t"}}"#;

    fn s(v: tw_store_str) -> String {
        // SAFETY: the view points into a live buffer of `len` bytes.
        let b = unsafe { std::slice::from_raw_parts(v.ptr.cast::<u8>(), v.len) };
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn a_request_copy_survives_the_core_forgetting_it() {
        let mut l: *mut tw_shared_limiter = ptr::null_mut();
        // SAFETY: valid pointers throughout; freed once at the end.
        unsafe {
            assert_eq!(
                tw_shared_limiter_new_with_seed(
                    CONFIG.as_ptr().cast(),
                    CONFIG.len(),
                    1,
                    &mut l,
                    ptr::null_mut()
                ),
                tw_status::Ok
            );
            let mut d: tw_shared_decision = std::mem::zeroed();
            tw_shared_limiter_check(l, ptr::null(), 0, 0, 1, &mut d, ptr::null_mut());
            assert!(!d.decided);
            let mut r: tw_store_request = std::mem::zeroed();
            assert_eq!(
                tw_shared_limiter_request(l, d.request, &mut r, ptr::null_mut()),
                tw_status::Ok
            );
            assert_eq!(s(r.script_name), "gcra");
            assert_eq!(r.sha1.len, 40);
            assert_eq!(r.num_keys, 1);
            assert_eq!(s(*r.keys), "tw:{rl:t:}:0");
            assert_eq!(s(*r.args), "1");
            assert_eq!(r.timeout_ns, 25_000_000);
            assert_eq!(r.until_ns, 25_000_000);
            // An empty argument (`now` when the store's clock is used) still points somewhere.
            assert_eq!(s(*r.args.add(2)), "");
            assert!(!(*r.args.add(2)).ptr.is_null());
            // Late: a timeout, whatever the host says.
            let mut reply = tw_store_reply::EMPTY;
            reply.kind = tw_store_reply_kind::Values as u32;
            reply.num_values = 8;
            let mut out: tw_shared_decision = std::mem::zeroed();
            assert_eq!(
                tw_shared_limiter_reply(
                    l,
                    d.request,
                    &reply,
                    25_000_000,
                    &mut out,
                    ptr::null_mut()
                ),
                tw_status::Ok
            );
            assert_eq!(out.source, tw_store_source::Fallback);
            let mut buf = [0 as c_char; 512];
            tw_shared_limiter_metrics_json(
                l,
                buf.as_mut_ptr(),
                512,
                ptr::null_mut(),
                ptr::null_mut(),
            );
            let m = CStr::from_ptr(buf.as_ptr()).to_str().unwrap().to_owned();
            assert!(m.contains("\"timeouts\":1"), "{m}");
            // Answered: unknown now.
            assert_eq!(
                tw_shared_limiter_reply(l, d.request, &reply, 0, &mut out, ptr::null_mut()),
                tw_status::UnknownCall
            );
            tw_shared_limiter_free(l);
        }
    }

    #[test]
    fn malformed_replies_are_refused_with_their_field() {
        let mut r = tw_store_reply::EMPTY;
        assert!(reply_in(&r).unwrap_err().message.starts_with("reply.kind"));
        r.kind = 9;
        assert!(reply_in(&r)
            .unwrap_err()
            .message
            .starts_with("reply.kind: 9"));
        r.kind = 1;
        r.num_values = 17;
        assert!(reply_in(&r)
            .unwrap_err()
            .message
            .starts_with("reply.num_values"));
        r.kind = 4;
        for (i, b) in b"WRONGTYPE x".iter().enumerate() {
            r.message[i] = *b as c_char;
        }
        assert_eq!(
            reply_in(&r).unwrap(),
            StoreReply::Failed("WRONGTYPE x".into())
        );
        // No NUL at all: the whole buffer, never past it.
        r.message = [b'a' as c_char; TW_STORE_MESSAGE_SIZE];
        match reply_in(&r).unwrap() {
            StoreReply::Failed(m) => assert_eq!(m.len(), TW_STORE_MESSAGE_SIZE),
            other => panic!("{other:?}"),
        }
    }
}

//! The `c_api` target's single-policy handles: breakers (permits kept, forged and reused;
//! snapshots restored), rate limiters, keyed limiters, bulkheads (tickets kept and forged).

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr::null_mut;

use arbitrary::Arbitrary;
use tripwire::breaker::*;
use tripwire::bulkhead::*;
use tripwire::error::tw_status;
use tripwire::limiter::*;
use tripwire::pipeline::{tw_pipeline, tw_pipeline_get_stats, tw_pipeline_stats};
use tripwire::types::{tw_attempt, tw_breaker_state, tw_event, tw_event_fn, tw_event_type};

use crate::c_api_support::*;
use crate::Harness;

// ---------------------------------------------------------------------------------------------
// Listeners that re-enter their handle
// ---------------------------------------------------------------------------------------------

/// The handle a listener was set on.
#[derive(Clone, Copy)]
pub enum Target {
    Pipeline(*mut tw_pipeline),
    Breaker(*mut tw_breaker),
    Limiter(*mut tw_limiter),
    Keyed(*mut tw_keyed_limiter),
    Bulkhead(*mut tw_bulkhead),
}

/// A listener's context: it counts events and re-enters its handle (allowed: the handle's
/// mutex is released while listeners run).
pub struct Listen {
    pub target: Target,
    pub events: u64,
}

/// # Safety
/// `ctx` is a live `Listen` whose handle is live, `e` a live event (the library's contract).
pub unsafe extern "C" fn listener(ctx: *mut c_void, e: *const tw_event) {
    // SAFETY: per this function's contract.
    unsafe {
        assert!(!e.is_null(), "a listener called with NULL");
        assert!(
            (*e).r#type != tw_event_type::None,
            "a listener called with NONE"
        );
        let l = ctx.cast::<Listen>();
        (*l).events += 1;
        let st = match (*l).target {
            Target::Pipeline(p) => {
                let mut s = MaybeUninit::<tw_pipeline_stats>::uninit();
                tw_pipeline_get_stats(p, s.as_mut_ptr(), null_mut())
            }
            Target::Breaker(b) => {
                let mut m = MaybeUninit::<tw_breaker_metrics>::uninit();
                tw_breaker_get_metrics(b, m.as_mut_ptr(), null_mut())
            }
            Target::Limiter(l) => {
                let mut m = MaybeUninit::<tw_limiter_metrics>::uninit();
                tw_limiter_get_metrics(l, m.as_mut_ptr(), null_mut())
            }
            Target::Keyed(l) => {
                let mut m = MaybeUninit::<tw_keyed_limiter_metrics>::uninit();
                tw_keyed_limiter_get_metrics(l, m.as_mut_ptr(), null_mut())
            }
            Target::Bulkhead(b) => {
                let mut m = MaybeUninit::<tw_bulkhead_metrics>::uninit();
                tw_bulkhead_get_metrics(b, m.as_mut_ptr(), null_mut())
            }
        };
        assert_eq!(st, tw_status::Ok, "re-entering a handle from its listener");
    }
}

/// A new listener context for `target` (freed by the owner after the handle).
pub fn new_listen(target: Target) -> *mut Listen {
    Box::into_raw(Box::new(Listen { target, events: 0 }))
}

/// # Safety
/// `l` came from [`new_listen`] and is freed once, after its handle.
pub unsafe fn free_listen(l: *mut Listen) {
    // SAFETY: per this function's contract.
    drop(unsafe { Box::from_raw(l) });
}

/// A handle and the listener contexts made for it.
pub struct Handle<T> {
    pub h: *mut T,
    pub listeners: Vec<*mut Listen>,
}

impl<T> Handle<T> {
    pub fn new(h: *mut T) -> Handle<T> {
        Handle {
            h,
            listeners: Vec::new(),
        }
    }
}

/// The handle `i` names in `list` (NULL for a few indexes, and on an empty list).
pub fn get<T>(list: &[Handle<T>], i: u8) -> (*mut T, Option<usize>) {
    match pick(i, list.len()) {
        Some(k) => (list[k].h, Some(k)),
        None => (null_mut(), None),
    }
}

/// Free every handle of `list` once with `free`, then its listener contexts.
pub fn free_all<T>(list: &mut Vec<Handle<T>>, free: unsafe extern "C" fn(*mut T)) {
    for h in list.drain(..) {
        // SAFETY: a live handle, freed once; then its listener contexts, once each.
        unsafe {
            free(h.h);
            for l in h.listeners {
                free_listen(l);
            }
        }
    }
}

/// Set or remove a listener on handle `k` of `list` (through `set`).
pub fn set_listener<T>(
    list: &mut [Handle<T>],
    i: u8,
    on: bool,
    err: ErrOut,
    target: fn(*mut T) -> Target,
    set: unsafe extern "C" fn(
        *mut T,
        tw_event_fn,
        *mut c_void,
        *mut *mut tripwire::error::tw_error,
    ) -> tw_status,
) {
    let (h, k) = get(list, i);
    let ctx: *mut c_void = match k.filter(|_| on) {
        Some(k) => {
            let l = new_listen(target(h));
            list[k].listeners.push(l);
            l.cast()
        }
        None => null_mut(),
    };
    let f: tw_event_fn = if on { Some(listener) } else { None };
    let st = with_err(err, "tw_*_set_listener", |e| unsafe { set(h, f, ctx, e) });
    let expect = if k.is_some() {
        tw_status::Ok
    } else {
        tw_status::NullArgument
    };
    assert_eq!(st, expect, "tw_*_set_listener");
}

/// Take one event from a handle; `at_ns` never later than the latest instant handed to it.
pub fn poll_event<T>(
    list: &[Handle<T>],
    i: u8,
    out_null: bool,
    err: ErrOut,
    seen: u64,
    poll: unsafe extern "C" fn(
        *mut T,
        *mut tw_event,
        *mut *mut tripwire::error::tw_error,
    ) -> tw_status,
) {
    let (h, k) = get(list, i);
    let mut ev = MaybeUninit::<tw_event>::uninit();
    let out_p = if out_null {
        null_mut()
    } else {
        ev.as_mut_ptr()
    };
    let st = with_err(err, "tw_*_poll_event", |e| unsafe { poll(h, out_p, e) });
    if k.is_none() || out_null {
        assert_eq!(st, tw_status::NullArgument, "tw_*_poll_event");
        return;
    }
    assert_eq!(st, tw_status::Ok, "tw_*_poll_event");
    // SAFETY: written on success.
    let ev = unsafe { ev.assume_init() };
    if ev.r#type != tw_event_type::None {
        assert!(ev.at_ns <= seen, "an event from the future: {ev:?}");
    }
}

/// Create a handle from a config with `new`; on success it joins `list`.
pub fn create<T>(
    list: &mut Vec<Handle<T>>,
    what: &str,
    cfg: &Cfg,
    presets: &[&str],
    out_null: bool,
    err: ErrOut,
    new: impl FnOnce(
        *const std::ffi::c_char,
        usize,
        *mut *mut T,
        *mut *mut tripwire::error::tw_error,
    ) -> tw_status,
) {
    let bytes = cfg.bytes(presets);
    let (ptr, len) = raw(&bytes);
    let mut out: *mut T = null_mut();
    let out_p = if out_null {
        null_mut()
    } else {
        &mut out as *mut _
    };
    let st = with_err(err, what, |e| new(ptr, len, out_p, e));
    assert_eq!(
        st == tw_status::Ok,
        !out.is_null(),
        "{what}: out set exactly on success"
    );
    if bytes.is_none() || out_null {
        assert_eq!(st, tw_status::NullArgument, "{what} with a NULL");
    }
    if matches!(cfg, Cfg::Preset(_)) && !out_null {
        assert_eq!(st, tw_status::Ok, "{what}: a preset is refused");
    }
    if !out.is_null() {
        list.push(Handle::new(out));
    }
}

/// A cost for a rate-limit check.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Cost {
    One,
    Zero,
    Small(u8),
    Max,
}

impl Cost {
    pub fn get(self) -> u64 {
        match self {
            Cost::One => 1,
            Cost::Zero => 0,
            Cost::Small(n) => u64::from(n),
            Cost::Max => u64::MAX,
        }
    }
}

fn check_decision(what: &str, d: &tw_rate_decision) {
    if d.allowed {
        assert!(
            !d.has_retry_after && d.retry_after_ns == 0,
            "{what}: allowed with a retry-after: {d:?}"
        );
    } else {
        assert_eq!(d.wait_ns, 0, "{what}: denied with a wait: {d:?}");
        assert!(d.has_retry_after || d.retry_after_ns == 0, "{what}: {d:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Breakers
// ---------------------------------------------------------------------------------------------

pub const BREAKERS: &[&str] = &[
    "{}",
    r#"{"trip": {"consecutiveFailures": 2}, "openDuration": "10ms", "halfOpen": {"permittedCalls": 2, "successThreshold": 1}}"#,
    r#"{"trip": {"failureRate": 0.5, "window": {"calls": 4}, "minimumCalls": 2, "slowCallRate": 0.5, "slowCallDuration": "1ms"}, "openDuration": {"base": "1ms", "multiplier": 2, "max": "8ms"}}"#,
    r#"{"trip": {"failureRate": 0.4, "window": {"duration": "1s", "buckets": 4}, "minimumCalls": 2}}"#,
];

/// A permit: one a breaker issued, or forged from arbitrary parts.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum PermitRef {
    Issued(u8),
    Forged {
        generation: u32,
        started_ns: u64,
        trial: bool,
    },
}

/// A snapshot to restore: one taken earlier, arbitrary bytes, or NULL.
#[derive(Arbitrary, Debug)]
pub enum SnapRef {
    Taken(u8),
    Bytes(Cfg),
}

#[derive(Arbitrary, Debug)]
pub enum BreakerOp {
    New {
        cfg: Cfg,
        out_null: bool,
        err: ErrOut,
    },
    Acquire {
        b: u8,
        out_null: bool,
        err: ErrOut,
    },
    Record {
        b: u8,
        permit: PermitRef,
        outcome: u32,
        err: ErrOut,
    },
    Release {
        b: u8,
        permit: PermitRef,
        err: ErrOut,
    },
    State {
        b: u8,
        out_null: bool,
        err: ErrOut,
    },
    Command {
        b: u8,
        which: u8,
        err: ErrOut,
    },
    PollTimeout {
        b: u8,
        has_null: bool,
        at_null: bool,
        err: ErrOut,
    },
    PollEvent {
        b: u8,
        out_null: bool,
        err: ErrOut,
    },
    Listen {
        b: u8,
        on: bool,
        err: ErrOut,
    },
    Metrics {
        b: u8,
        out_null: bool,
        err: ErrOut,
    },
    Snapshot {
        b: u8,
        buf: Buf,
        err: ErrOut,
    },
    Restore {
        b: u8,
        snap: SnapRef,
        err: ErrOut,
    },
    Execute {
        b: u8,
        outcome: u32,
        null_fn: bool,
        err: ErrOut,
    },
}

/// # Safety
/// `ctx` points to the outcome to answer (a `u32`), `a` to a live attempt.
unsafe extern "C" fn breaker_attempt(ctx: *mut c_void, a: *mut tw_attempt) -> u32 {
    // SAFETY: per this function's contract.
    unsafe {
        assert_eq!((*a).number, 1, "a breaker runs one attempt");
        *ctx.cast::<u32>()
    }
}

impl Harness {
    fn permit(&self, p: PermitRef) -> tw_permit {
        match p {
            PermitRef::Issued(i) if !self.permits.is_empty() => {
                self.permits[usize::from(i) % self.permits.len()]
            }
            PermitRef::Forged {
                generation,
                started_ns,
                trial,
            } => tw_permit {
                generation,
                started_ns,
                trial,
            },
            PermitRef::Issued(_) => tw_permit {
                generation: 0,
                started_ns: 0,
                trial: false,
            },
        }
    }

    pub fn breaker_op(&mut self, op: &BreakerOp) {
        let now = self.now;
        self.seen = self.seen.max(now);
        match op {
            BreakerOp::New { cfg, out_null, err } => create(
                &mut self.breakers,
                "tw_breaker_new",
                cfg,
                BREAKERS,
                *out_null,
                *err,
                |j, n, o, e| unsafe { tw_breaker_new(j, n, o, e) },
            ),
            BreakerOp::Acquire { b, out_null, err } => {
                let (h, k) = get(&self.breakers, *b);
                let mut a = MaybeUninit::<tw_admission>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    a.as_mut_ptr()
                };
                let st = with_err(*err, "tw_breaker_acquire", |e| unsafe {
                    tw_breaker_acquire(h, now, out_p, e)
                });
                if k.is_none() || *out_null {
                    assert_eq!(st, tw_status::NullArgument, "tw_breaker_acquire");
                    return;
                }
                assert_eq!(st, tw_status::Ok, "tw_breaker_acquire");
                // SAFETY: written on success.
                let a = unsafe { a.assume_init() };
                if a.admitted {
                    assert!(!a.has_retry_after, "admitted with a retry-after");
                    if self.permits.len() >= 32 {
                        self.permits.remove(0);
                    }
                    self.permits.push(a.permit);
                }
            }
            BreakerOp::Record {
                b,
                permit,
                outcome,
                err,
            } => {
                let (h, k) = get(&self.breakers, *b);
                let (permit, outcome) = (self.permit(*permit), outcome % 4);
                let st = with_err(*err, "tw_breaker_record", |e| unsafe {
                    tw_breaker_record(h, permit, outcome, now, e)
                });
                let expect = match (k, outcome) {
                    (None, _) => tw_status::NullArgument,
                    (Some(_), 3) => tw_status::InvalidArgument,
                    _ => tw_status::Ok,
                };
                assert_eq!(st, expect, "tw_breaker_record");
            }
            BreakerOp::Release { b, permit, err } => {
                let (h, k) = get(&self.breakers, *b);
                let permit = self.permit(*permit);
                let st = with_err(*err, "tw_breaker_release", |e| unsafe {
                    tw_breaker_release(h, permit, now, e)
                });
                let expect = if k.is_some() {
                    tw_status::Ok
                } else {
                    tw_status::NullArgument
                };
                assert_eq!(st, expect, "tw_breaker_release");
            }
            BreakerOp::State { b, out_null, err } => {
                let (h, k) = get(&self.breakers, *b);
                let mut s = MaybeUninit::<tw_breaker_state>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    s.as_mut_ptr()
                };
                let st = with_err(*err, "tw_breaker_get_state", |e| unsafe {
                    tw_breaker_get_state(h, out_p, e)
                });
                let expect = if k.is_some() && !*out_null {
                    tw_status::Ok
                } else {
                    tw_status::NullArgument
                };
                assert_eq!(st, expect, "tw_breaker_get_state");
            }
            BreakerOp::Command { b, which, err } => {
                let (h, k) = get(&self.breakers, *b);
                let st = with_err(*err, "tw_breaker_command", |e| unsafe {
                    match which % 4 {
                        0 => tw_breaker_force_open(h, now, e),
                        1 => tw_breaker_disable(h, now, e),
                        2 => tw_breaker_reset(h, now, e),
                        _ => tw_breaker_handle_timeout(h, now, e),
                    }
                });
                let expect = if k.is_some() {
                    tw_status::Ok
                } else {
                    tw_status::NullArgument
                };
                assert_eq!(st, expect, "tw_breaker_command {which}");
            }
            BreakerOp::PollTimeout {
                b,
                has_null,
                at_null,
                err,
            } => {
                let (h, k) = get(&self.breakers, *b);
                let (mut has, mut at) = (false, 0u64);
                let has_p: *mut bool = if *has_null { null_mut() } else { &mut has };
                let at_p: *mut u64 = if *at_null { null_mut() } else { &mut at };
                let st = with_err(*err, "tw_breaker_poll_timeout", |e| unsafe {
                    tw_breaker_poll_timeout(h, has_p, at_p, e)
                });
                let ok = k.is_some() && !*has_null && !*at_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_breaker_poll_timeout"
                );
            }
            BreakerOp::PollEvent { b, out_null, err } => poll_event(
                &self.breakers,
                *b,
                *out_null,
                *err,
                self.seen,
                tw_breaker_poll_event,
            ),
            BreakerOp::Listen { b, on, err } => set_listener(
                &mut self.breakers,
                *b,
                *on,
                *err,
                Target::Breaker,
                tw_breaker_set_listener,
            ),
            BreakerOp::Metrics { b, out_null, err } => {
                let (h, k) = get(&self.breakers, *b);
                let mut m = MaybeUninit::<tw_breaker_metrics>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    m.as_mut_ptr()
                };
                let st = with_err(*err, "tw_breaker_get_metrics", |e| unsafe {
                    tw_breaker_get_metrics(h, out_p, e)
                });
                if k.is_none() || *out_null {
                    assert_eq!(st, tw_status::NullArgument, "tw_breaker_get_metrics");
                    return;
                }
                assert_eq!(st, tw_status::Ok, "tw_breaker_get_metrics");
                // SAFETY: written on success.
                let m = unsafe { m.assume_init() };
                assert!(
                    m.window_failures <= m.window_calls,
                    "window failures <= calls: {m:?}"
                );
            }
            BreakerOp::Snapshot { b, buf, err } => {
                let (h, k) = get(&self.breakers, *b);
                let mut f = |p, c, n, e| unsafe { tw_breaker_snapshot(h, p, c, n, e) };
                if let (Some(text), Some(k)) =
                    (text_out("tw_breaker_snapshot", *buf, *err, &mut f), k)
                {
                    serde_json::from_str::<serde_json::Value>(&text).expect("a snapshot is JSON");
                    if self.snapshots.len() >= 8 {
                        self.snapshots.remove(0);
                    }
                    self.snapshots.push((k, text.into_bytes()));
                }
            }
            BreakerOp::Restore { b, snap, err } => {
                let (h, k) = get(&self.breakers, *b);
                let (bytes, from) = match snap {
                    SnapRef::Taken(i) if !self.snapshots.is_empty() => {
                        let (from, s) = &self.snapshots[usize::from(*i) % self.snapshots.len()];
                        (Some(s.clone()), Some(*from))
                    }
                    SnapRef::Taken(_) => (None, None),
                    SnapRef::Bytes(cfg) => (cfg.bytes(BREAKERS), None),
                };
                let (ptr, len) = raw(&bytes);
                let st = with_err(*err, "tw_breaker_restore", |e| unsafe {
                    tw_breaker_restore(h, ptr, len, now, e)
                });
                if k.is_none() || bytes.is_none() {
                    assert_eq!(
                        st,
                        tw_status::NullArgument,
                        "tw_breaker_restore with a NULL"
                    );
                } else if from.is_some() && from == k {
                    assert_eq!(st, tw_status::Ok, "a breaker refuses its own snapshot");
                }
            }
            BreakerOp::Execute {
                b,
                outcome,
                null_fn,
                err,
            } => {
                let (h, k) = get(&self.breakers, *b);
                let mut outcome = outcome % 5;
                let ctx: *mut c_void = (&mut outcome as *mut u32).cast();
                let f: tripwire::types::tw_attempt_fn = if *null_fn {
                    None
                } else {
                    Some(breaker_attempt)
                };
                let st = with_err_any(*err, "tw_breaker_execute", true, |e| unsafe {
                    tw_breaker_execute(h, f, ctx, e)
                });
                self.seen = self.seen.max(tripwire::tw_now_ns());
                if k.is_none() || *null_fn {
                    assert_eq!(
                        st,
                        tw_status::NullArgument,
                        "tw_breaker_execute with a NULL"
                    );
                } else {
                    let expect: &[tw_status] = match outcome {
                        0 => &[tw_status::Ok, tw_status::CircuitOpen],
                        4 => &[tw_status::InvalidArgument, tw_status::CircuitOpen],
                        _ => &[tw_status::Failure, tw_status::CircuitOpen],
                    };
                    assert!(
                        expect.contains(&st),
                        "tw_breaker_execute of {outcome}: {st:?}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limiters
// ---------------------------------------------------------------------------------------------

pub const LIMITERS: &[&str] = &[
    r#"{"rate": "10/s", "burst": 2}"#,
    r#"{"algorithm": "gcra", "rate": "5/s", "maxWait": "100ms"}"#,
    r#"[{"algorithm": "fixedWindow", "rate": "3/s"}, {"algorithm": "slidingWindow", "rate": "100/m", "burst": 5}]"#,
    r#"{"algorithm": "tokenBucket", "rate": "1000/s", "burst": 1, "maxWait": "1s"}"#,
];

pub const KEYED_LIMITERS: &[&str] = &[
    r#"{"limit": {"rate": "1/s", "burst": 1}, "maxKeys": 2, "idleExpiry": "10ms"}"#,
    r#"{"limit": [{"algorithm": "gcra", "rate": "5/s", "maxWait": "50ms"}, {"algorithm": "slidingWindow", "rate": "10/s"}], "maxKeys": 3}"#,
    r#"{"limit": {"algorithm": "fixedWindow", "rate": "2/s"}, "maxKeys": 1, "idleExpiry": null}"#,
];

#[derive(Arbitrary, Debug)]
pub enum LimiterOp {
    New {
        cfg: Cfg,
        out_null: bool,
        err: ErrOut,
    },
    Check {
        l: u8,
        cost: Cost,
        out_null: bool,
        err: ErrOut,
    },
    PollEvent {
        l: u8,
        out_null: bool,
        err: ErrOut,
    },
    Listen {
        l: u8,
        on: bool,
        err: ErrOut,
    },
    Metrics {
        l: u8,
        out_null: bool,
        err: ErrOut,
    },
    KeyedNew {
        cfg: Cfg,
        seed: Option<u64>,
        out_null: bool,
        err: ErrOut,
    },
    KeyedCheck {
        l: u8,
        key: Key,
        cost: Cost,
        out_null: bool,
        err: ErrOut,
    },
    Sweep {
        l: u8,
        removed_null: bool,
        err: ErrOut,
    },
    KeyedPollEvent {
        l: u8,
        out_null: bool,
        err: ErrOut,
    },
    KeyedListen {
        l: u8,
        on: bool,
        err: ErrOut,
    },
    KeyedMetrics {
        l: u8,
        out_null: bool,
        err: ErrOut,
    },
}

impl Harness {
    pub fn limiter_op(&mut self, op: &LimiterOp) {
        let now = self.now;
        self.seen = self.seen.max(now);
        match op {
            LimiterOp::New { cfg, out_null, err } => create(
                &mut self.limiters,
                "tw_limiter_new",
                cfg,
                LIMITERS,
                *out_null,
                *err,
                |j, n, o, e| unsafe { tw_limiter_new(j, n, o, e) },
            ),
            LimiterOp::Check {
                l,
                cost,
                out_null,
                err,
            } => {
                let (h, k) = get(&self.limiters, *l);
                let mut d = MaybeUninit::<tw_rate_decision>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    d.as_mut_ptr()
                };
                let cost = cost.get();
                let st = with_err(*err, "tw_limiter_check", |e| unsafe {
                    tw_limiter_check(h, now, cost, out_p, e)
                });
                if k.is_none() || *out_null {
                    assert_eq!(st, tw_status::NullArgument, "tw_limiter_check");
                } else {
                    assert_eq!(st, tw_status::Ok, "tw_limiter_check");
                    // SAFETY: written on success.
                    check_decision("tw_limiter_check", unsafe { &d.assume_init() });
                }
            }
            LimiterOp::PollEvent { l, out_null, err } => poll_event(
                &self.limiters,
                *l,
                *out_null,
                *err,
                self.seen,
                tw_limiter_poll_event,
            ),
            LimiterOp::Listen { l, on, err } => set_listener(
                &mut self.limiters,
                *l,
                *on,
                *err,
                Target::Limiter,
                tw_limiter_set_listener,
            ),
            LimiterOp::Metrics { l, out_null, err } => {
                let (h, k) = get(&self.limiters, *l);
                let mut m = MaybeUninit::<tw_limiter_metrics>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    m.as_mut_ptr()
                };
                let st = with_err(*err, "tw_limiter_get_metrics", |e| unsafe {
                    tw_limiter_get_metrics(h, out_p, e)
                });
                let ok = k.is_some() && !*out_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_limiter_get_metrics"
                );
            }
            LimiterOp::KeyedNew {
                cfg,
                seed,
                out_null,
                err,
            } => create(
                &mut self.keyed,
                "tw_keyed_limiter_new",
                cfg,
                KEYED_LIMITERS,
                *out_null,
                *err,
                |j, n, o, e| unsafe {
                    match seed {
                        Some(s) => tw_keyed_limiter_new_with_seed(j, n, *s, o, e),
                        None => tw_keyed_limiter_new(j, n, o, e),
                    }
                },
            ),
            LimiterOp::KeyedCheck {
                l,
                key,
                cost,
                out_null,
                err,
            } => {
                let (h, k) = get(&self.keyed, *l);
                let key = key.bytes();
                let (kp, klen) = raw(&key);
                let mut d = MaybeUninit::<tw_rate_decision>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    d.as_mut_ptr()
                };
                let cost = cost.get();
                let st = with_err(*err, "tw_keyed_limiter_check", |e| unsafe {
                    tw_keyed_limiter_check(h, kp, klen, now, cost, out_p, e)
                });
                let utf8 = key.as_ref().is_some_and(|k| std::str::from_utf8(k).is_ok());
                if k.is_none() || key.is_none() {
                    assert_eq!(
                        st,
                        tw_status::NullArgument,
                        "tw_keyed_limiter_check with a NULL"
                    );
                } else if !utf8 {
                    assert_eq!(
                        st,
                        tw_status::InvalidArgument,
                        "tw_keyed_limiter_check of a non-UTF-8 key"
                    );
                } else if *out_null {
                    assert_eq!(
                        st,
                        tw_status::NullArgument,
                        "tw_keyed_limiter_check into NULL"
                    );
                } else {
                    assert_eq!(st, tw_status::Ok, "tw_keyed_limiter_check");
                    // SAFETY: written on success.
                    check_decision("tw_keyed_limiter_check", unsafe { &d.assume_init() });
                }
            }
            LimiterOp::Sweep {
                l,
                removed_null,
                err,
            } => {
                let (h, k) = get(&self.keyed, *l);
                let mut n = usize::MAX;
                let n_p: *mut usize = if *removed_null { null_mut() } else { &mut n };
                let st = with_err(*err, "tw_keyed_limiter_sweep", |e| unsafe {
                    tw_keyed_limiter_sweep(h, now, n_p, e)
                });
                let expect = if k.is_some() {
                    tw_status::Ok
                } else {
                    tw_status::NullArgument
                };
                assert_eq!(st, expect, "tw_keyed_limiter_sweep");
            }
            LimiterOp::KeyedPollEvent { l, out_null, err } => poll_event(
                &self.keyed,
                *l,
                *out_null,
                *err,
                self.seen,
                tw_keyed_limiter_poll_event,
            ),
            LimiterOp::KeyedListen { l, on, err } => set_listener(
                &mut self.keyed,
                *l,
                *on,
                *err,
                Target::Keyed,
                tw_keyed_limiter_set_listener,
            ),
            LimiterOp::KeyedMetrics { l, out_null, err } => {
                let (h, k) = get(&self.keyed, *l);
                let mut m = MaybeUninit::<tw_keyed_limiter_metrics>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    m.as_mut_ptr()
                };
                let st = with_err(*err, "tw_keyed_limiter_get_metrics", |e| unsafe {
                    tw_keyed_limiter_get_metrics(h, out_p, e)
                });
                if k.is_none() || *out_null {
                    assert_eq!(st, tw_status::NullArgument, "tw_keyed_limiter_get_metrics");
                    return;
                }
                assert_eq!(st, tw_status::Ok, "tw_keyed_limiter_get_metrics");
                // SAFETY: written on success.
                let m = unsafe { m.assume_init() };
                assert!(
                    m.table_full <= m.denied,
                    "table_full is part of denied: {m:?}"
                );
                assert!(m.keys <= 3, "more keys than any preset's maxKeys: {m:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bulkheads
// ---------------------------------------------------------------------------------------------

pub const BULKHEADS: &[&str] = &[
    r#"{"maxConcurrent": 1, "maxQueue": 2, "maxWait": "10ms"}"#,
    r#"{"maxConcurrent": 2}"#,
    r#"{"maxConcurrent": 1, "maxQueue": 0}"#,
    r#"{"maxConcurrent": 1, "maxQueue": 3, "maxWait": 0}"#,
];

/// A ticket: one a bulkhead handed out, or any value (0 included).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum TicketRef {
    Issued(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
pub enum BulkheadOp {
    New {
        cfg: Cfg,
        out_null: bool,
        err: ErrOut,
    },
    Enter {
        b: u8,
        deadline: When,
        out_null: bool,
        err: ErrOut,
    },
    Release {
        b: u8,
        woke_null: bool,
        ticket_null: bool,
        err: ErrOut,
    },
    Cancel {
        b: u8,
        ticket: TicketRef,
        timed_out: bool,
        left_null: bool,
        err: ErrOut,
    },
    PollExpired {
        b: u8,
        expired_null: bool,
        ticket_null: bool,
        err: ErrOut,
    },
    PollTimeout {
        b: u8,
        has_null: bool,
        at_null: bool,
        err: ErrOut,
    },
    PollEvent {
        b: u8,
        out_null: bool,
        err: ErrOut,
    },
    Listen {
        b: u8,
        on: bool,
        err: ErrOut,
    },
    Metrics {
        b: u8,
        out_null: bool,
        err: ErrOut,
    },
}

impl Harness {
    fn keep_ticket(&mut self, t: u64) {
        assert_ne!(t, 0, "a ticket is never 0");
        if self.tickets.len() >= 32 {
            self.tickets.remove(0);
        }
        self.tickets.push(t);
    }

    pub fn bulkhead_op(&mut self, op: &BulkheadOp) {
        let now = self.now;
        self.seen = self.seen.max(now);
        match op {
            BulkheadOp::New { cfg, out_null, err } => create(
                &mut self.bulkheads,
                "tw_bulkhead_new",
                cfg,
                BULKHEADS,
                *out_null,
                *err,
                |j, n, o, e| unsafe { tw_bulkhead_new(j, n, o, e) },
            ),
            BulkheadOp::Enter {
                b,
                deadline,
                out_null,
                err,
            } => {
                let (h, k) = get(&self.bulkheads, *b);
                let deadline = deadline.at(now);
                let mut entry = MaybeUninit::<tw_entry>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    entry.as_mut_ptr()
                };
                let st = with_err(*err, "tw_bulkhead_enter", |e| unsafe {
                    tw_bulkhead_enter(h, now, deadline, out_p, e)
                });
                if k.is_none() || *out_null {
                    assert_eq!(st, tw_status::NullArgument, "tw_bulkhead_enter");
                    return;
                }
                assert_eq!(st, tw_status::Ok, "tw_bulkhead_enter");
                // SAFETY: written on success.
                let entry = unsafe { entry.assume_init() };
                match entry.result {
                    tw_entry_result::Admitted => assert_eq!(entry.ticket, 0, "{entry:?}"),
                    tw_entry_result::Queued => self.keep_ticket(entry.ticket),
                    tw_entry_result::Rejected => {
                        let r = entry.reason as u32;
                        assert!(
                            r == 2 || r == 3,
                            "rejected as bulkheadFull or queueTimeout: {entry:?}"
                        );
                    }
                }
            }
            BulkheadOp::Release {
                b,
                woke_null,
                ticket_null,
                err,
            } => {
                let (h, k) = get(&self.bulkheads, *b);
                let (mut woke, mut ticket) = (false, 0u64);
                let woke_p: *mut bool = if *woke_null { null_mut() } else { &mut woke };
                let ticket_p: *mut u64 = if *ticket_null {
                    null_mut()
                } else {
                    &mut ticket
                };
                let st = with_err(*err, "tw_bulkhead_release", |e| unsafe {
                    tw_bulkhead_release(h, now, woke_p, ticket_p, e)
                });
                let expect = if k.is_some() {
                    tw_status::Ok
                } else {
                    tw_status::NullArgument
                };
                assert_eq!(st, expect, "tw_bulkhead_release");
                if woke && !*ticket_null {
                    self.keep_ticket(ticket);
                }
            }
            BulkheadOp::Cancel {
                b,
                ticket,
                timed_out,
                left_null,
                err,
            } => {
                let (h, k) = get(&self.bulkheads, *b);
                let ticket = match ticket {
                    TicketRef::Issued(i) if !self.tickets.is_empty() => {
                        self.tickets[usize::from(*i) % self.tickets.len()]
                    }
                    TicketRef::Issued(_) => 0,
                    TicketRef::Raw(t) => *t,
                };
                let mut left = false;
                let left_p: *mut bool = if *left_null { null_mut() } else { &mut left };
                let st = with_err(*err, "tw_bulkhead_cancel", |e| unsafe {
                    tw_bulkhead_cancel(h, ticket, now, *timed_out, left_p, e)
                });
                let expect = if k.is_some() {
                    tw_status::Ok
                } else {
                    tw_status::NullArgument
                };
                assert_eq!(st, expect, "tw_bulkhead_cancel");
            }
            BulkheadOp::PollExpired {
                b,
                expired_null,
                ticket_null,
                err,
            } => {
                let (h, k) = get(&self.bulkheads, *b);
                let (mut expired, mut ticket) = (false, 0u64);
                let ex_p: *mut bool = if *expired_null {
                    null_mut()
                } else {
                    &mut expired
                };
                let t_p: *mut u64 = if *ticket_null {
                    null_mut()
                } else {
                    &mut ticket
                };
                let st = with_err(*err, "tw_bulkhead_poll_expired", |e| unsafe {
                    tw_bulkhead_poll_expired(h, now, ex_p, t_p, e)
                });
                let ok = k.is_some() && !*expired_null && !*ticket_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_bulkhead_poll_expired"
                );
                assert!(expired || ticket == 0, "no expiry, yet a ticket");
            }
            BulkheadOp::PollTimeout {
                b,
                has_null,
                at_null,
                err,
            } => {
                let (h, k) = get(&self.bulkheads, *b);
                let (mut has, mut at) = (false, 0u64);
                let has_p: *mut bool = if *has_null { null_mut() } else { &mut has };
                let at_p: *mut u64 = if *at_null { null_mut() } else { &mut at };
                let st = with_err(*err, "tw_bulkhead_poll_timeout", |e| unsafe {
                    tw_bulkhead_poll_timeout(h, has_p, at_p, e)
                });
                let ok = k.is_some() && !*has_null && !*at_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_bulkhead_poll_timeout"
                );
            }
            BulkheadOp::PollEvent { b, out_null, err } => poll_event(
                &self.bulkheads,
                *b,
                *out_null,
                *err,
                self.seen,
                tw_bulkhead_poll_event,
            ),
            BulkheadOp::Listen { b, on, err } => set_listener(
                &mut self.bulkheads,
                *b,
                *on,
                *err,
                Target::Bulkhead,
                tw_bulkhead_set_listener,
            ),
            BulkheadOp::Metrics { b, out_null, err } => {
                let (h, k) = get(&self.bulkheads, *b);
                let mut m = MaybeUninit::<tw_bulkhead_metrics>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    m.as_mut_ptr()
                };
                let st = with_err(*err, "tw_bulkhead_get_metrics", |e| unsafe {
                    tw_bulkhead_get_metrics(h, out_p, e)
                });
                if k.is_none() || *out_null {
                    assert_eq!(st, tw_status::NullArgument, "tw_bulkhead_get_metrics");
                    return;
                }
                assert_eq!(st, tw_status::Ok, "tw_bulkhead_get_metrics");
                // SAFETY: written on success.
                let m = unsafe { m.assume_init() };
                assert!(
                    m.in_flight <= m.max_concurrent,
                    "slots within maxConcurrent: {m:?}"
                );
                assert!(m.queue_depth <= m.max_queue, "queue within maxQueue: {m:?}");
            }
        }
    }
}

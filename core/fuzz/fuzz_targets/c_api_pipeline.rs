//! The `c_api` target's pipelines: the step protocol against a model of live calls, the
//! pipeline's getters and commands, listeners, fallbacks, the blocking helpers, policy files.

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr::{null, null_mut};

use arbitrary::Arbitrary;
use tripwire::error::tw_status;
use tripwire::pipeline::*;
use tripwire::types::{
    tw_attempt, tw_attempt_fn, tw_breaker_state, tw_event, tw_event_fn, tw_event_type,
};

use crate::c_api_handles::{free_listen, listener, new_listen, Listen, Target};
use crate::c_api_support::*;
use crate::Harness;

/// A call handle: one this pipeline issued (live or ended), or any value.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum CallRef {
    Issued(u8),
    Live(u8),
    Raw(u64),
}

pub struct Pipe {
    pub p: *mut tw_pipeline,
    /// Every handle issued, in order (the last 64).
    pub issued: Vec<u64>,
    /// Begun and not ended.
    pub live: BTreeSet<u64>,
    /// Live with an attempt handed out and not yet reported.
    pub running: BTreeSet<u64>,
    /// Live, and parked in the bulkhead by their last poll.
    pub parked: BTreeSet<u64>,
    /// Live, and maybe decided since their last poll (the core ends a call, in its stats,
    /// when its outcome is decided: at `begin` or `report`, before the final step is polled).
    pub decided: BTreeSet<u64>,
    /// Built and reconfigured only from configs whose blocking helpers never sleep or park for
    /// long (no bulkhead, no rate-limit wait, tiny backoffs): tw_pipeline_execute is tried
    /// only on those.
    pub exec_safe: bool,
    /// The latest instant handed to the pipeline: no event may be later.
    pub seen: u64,
    /// Listener and fallback contexts, freed after the pipeline.
    pub listeners: Vec<*mut Listen>,
    pub fallbacks: Vec<*mut Fallback>,
}

impl Pipe {
    pub fn new(p: *mut tw_pipeline, exec_safe: bool) -> Pipe {
        Pipe {
            p,
            exec_safe,
            seen: 0,
            listeners: Vec::new(),
            fallbacks: Vec::new(),
            issued: Vec::new(),
            live: BTreeSet::new(),
            running: BTreeSet::new(),
            parked: BTreeSet::new(),
            decided: BTreeSet::new(),
        }
    }

    pub fn call(&self, c: CallRef) -> u64 {
        match c {
            CallRef::Issued(i) if !self.issued.is_empty() => {
                self.issued[usize::from(i) % self.issued.len()]
            }
            CallRef::Live(i) if !self.live.is_empty() => *self
                .live
                .iter()
                .nth(usize::from(i) % self.live.len())
                .expect("in range"),
            CallRef::Raw(r) => r,
            _ => 0,
        }
    }

    pub fn ended(&mut self, call: u64) {
        self.live.remove(&call);
        self.running.remove(&call);
        self.parked.remove(&call);
        self.decided.remove(&call);
    }
}

impl Harness {
    pub fn pipe(&self, i: u8) -> (*mut tw_pipeline, Option<usize>) {
        match pick(i, self.pipes.len()) {
            Some(k) => (self.pipes[k].p, Some(k)),
            None => (null_mut(), None),
        }
    }

    pub fn begin(&mut self, i: u8, key: Option<&Key>, deadline: When, out_null: bool, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let key = key.map(Key::bytes);
        let (kp, klen) = key.as_ref().map_or((null(), 0), raw);
        let (now, deadline) = (self.now, deadline.at(self.now));
        self.saw(k, now);
        let mut out: u64 = 0;
        let out_p: *mut u64 = if out_null { null_mut() } else { &mut out };
        let st = with_err(err, "tw_call_begin", |e| unsafe {
            match key {
                Some(_) => tw_call_begin_keyed(p, kp, klen, now, deadline, out_p, e),
                None => tw_call_begin(p, now, deadline, out_p, e),
            }
        });
        if p.is_null() {
            assert_eq!(st, tw_status::NullArgument, "tw_call_begin on NULL");
        } else if out_null {
            assert_ne!(st, tw_status::Ok, "tw_call_begin into NULL");
        }
        if st == tw_status::Ok {
            let pipe = &mut self.pipes[k.expect("a live pipeline")];
            assert!(
                pipe.live.insert(out),
                "a live call handle was handed out again"
            );
            pipe.decided.insert(out);
            if pipe.issued.len() >= 64 {
                pipe.issued.remove(0);
            }
            pipe.issued.push(out);
        }
        self.check_pipe(k);
    }

    pub fn poll(&mut self, i: u8, c: CallRef, out_null: bool, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let call = k.map_or(0, |k| self.pipes[k].call(c));
        let now = self.now;
        self.saw(k, now);
        let mut step = MaybeUninit::<tw_step>::uninit();
        let out_p = if out_null {
            null_mut()
        } else {
            step.as_mut_ptr()
        };
        let st = with_err(err, "tw_call_poll", |e| unsafe {
            tw_call_poll(p, call, now, out_p, e)
        });
        let Some(k) = k else {
            assert_eq!(st, tw_status::NullArgument, "tw_call_poll on NULL");
            return;
        };
        let pipe = &mut self.pipes[k];
        if out_null {
            assert_eq!(st, tw_status::NullArgument, "tw_call_poll into NULL");
        } else if !pipe.live.contains(&call) {
            assert_eq!(st, tw_status::UnknownCall, "tw_call_poll on an ended call");
        } else if pipe.running.contains(&call) {
            assert_eq!(st, tw_status::AttemptInFlight, "tw_call_poll while running");
        } else {
            assert_eq!(st, tw_status::Ok, "tw_call_poll on a live call");
            // SAFETY: written on success.
            let step = unsafe { step.assume_init() };
            pipe.decided.remove(&call);
            pipe.parked.remove(&call);
            match step.kind {
                tw_step_kind::Attempt => {
                    assert!(step.attempt >= 1, "attempt numbers start at 1");
                    pipe.running.insert(call);
                }
                tw_step_kind::Sleep => assert!(step.has_until, "a sleep has an end"),
                // A config with a `store` (arbitrary bytes may hold one) asks for a store
                // request: it is never answered here, so a later poll past its deadline counts
                // it as a timeout and the fallback decides.
                tw_step_kind::Store => assert!(step.request != 0, "a store step names a request"),
                tw_step_kind::Park => {
                    assert!(step.ticket != 0, "a park has a ticket");
                    pipe.parked.insert(call);
                }
                tw_step_kind::Done => pipe.ended(call),
                tw_step_kind::Fail => {
                    let kind = step.failure.kind as u32;
                    assert!((1..=9).contains(&kind), "a failure's kind: {kind}");
                    pipe.ended(call);
                }
            }
        }
        self.check_pipe(Some(k));
    }

    pub fn poll_all(&mut self, i: u8) {
        let Some(k) = pick(i, self.pipes.len()) else {
            return;
        };
        let pipe = &self.pipes[k];
        let idle: Vec<u64> = pipe.live.difference(&pipe.running).copied().collect();
        for call in idle {
            self.poll(i, CallRef::Raw(call), false, ErrOut::Fresh);
        }
    }

    pub fn report(&mut self, i: u8, c: CallRef, r: Option<(u32, bool, Option<u64>)>, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let call = k.map_or(0, |k| self.pipes[k].call(c));
        let now = self.now;
        self.saw(k, now);
        let report = r.map(|(outcome, retryable, hint)| tw_report {
            outcome: outcome % 6,
            retryable,
            has_retry_after: hint.is_some(),
            retry_after_ns: hint.unwrap_or(0),
        });
        let rp = report.as_ref().map_or(null(), |r| r as *const tw_report);
        let st = with_err(err, "tw_call_report", |e| unsafe {
            tw_call_report(p, call, rp, now, e)
        });
        let Some(k) = k else {
            assert_eq!(st, tw_status::NullArgument, "tw_call_report on NULL");
            return;
        };
        let pipe = &mut self.pipes[k];
        match report {
            None => assert_eq!(st, tw_status::NullArgument, "tw_call_report of NULL"),
            Some(r) if r.outcome > 3 => {
                assert_eq!(
                    st,
                    tw_status::InvalidArgument,
                    "tw_call_report of {}",
                    r.outcome
                )
            }
            Some(_) if !pipe.live.contains(&call) => {
                assert_eq!(
                    st,
                    tw_status::UnknownCall,
                    "tw_call_report on an ended call"
                )
            }
            Some(_) if !pipe.running.contains(&call) => {
                assert_eq!(
                    st,
                    tw_status::NoAttemptInFlight,
                    "tw_call_report while idle"
                )
            }
            Some(_) => {
                assert_eq!(st, tw_status::Ok, "tw_call_report of a running attempt");
                pipe.running.remove(&call);
                pipe.decided.insert(call);
            }
        }
        self.check_pipe(Some(k));
    }

    pub fn end(&mut self, i: u8, c: CallRef, cancel: bool, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let call = k.map_or(0, |k| self.pipes[k].call(c));
        let now = self.now;
        self.saw(k, now);
        let st = with_err(err, "tw_call_end", |e| unsafe {
            if cancel {
                tw_call_cancel(p, call, now, e)
            } else {
                tw_call_end(p, call, now, e)
            }
        });
        let Some(k) = k else {
            assert_eq!(st, tw_status::NullArgument, "tw_call_end on NULL");
            return;
        };
        let pipe = &mut self.pipes[k];
        if pipe.live.contains(&call) {
            assert_eq!(st, tw_status::Ok, "tw_call_end of a live call");
            pipe.ended(call);
        } else {
            assert_eq!(st, tw_status::UnknownCall, "tw_call_end of an ended call");
        }
        self.check_pipe(Some(k));
    }

    /// The stats add up, and `in_flight` is the number of live calls.
    pub fn check_pipe(&self, k: Option<usize>) {
        let Some(k) = k else { return };
        let pipe = &self.pipes[k];
        let mut s = MaybeUninit::<tw_pipeline_stats>::uninit();
        let st = with_err(ErrOut::Fresh, "tw_pipeline_get_stats", |e| unsafe {
            tw_pipeline_get_stats(pipe.p, s.as_mut_ptr(), e)
        });
        assert_eq!(st, tw_status::Ok);
        // SAFETY: written on success.
        let s = unsafe { s.assume_init() };
        let failed: u64 = s.failed.iter().sum();
        assert_eq!(
            s.calls,
            s.succeeded + failed + s.cancelled + s.in_flight,
            "calls == succeeded + failed + cancelled + in_flight: {s:?}"
        );
        assert_eq!(s.failed[0], 0, "failed[TW_KIND_NONE]");
        let live = pipe.live.len() as u64;
        let undecided = live - pipe.decided.len() as u64;
        assert!(
            (undecided..=live).contains(&s.in_flight),
            "in_flight {} counts the live calls ({live}, {undecided} undecided)",
            s.in_flight
        );
    }

    /// End every live call, check nothing is left in flight, free every handle once.
    pub fn finish(&mut self) {
        for k in 0..self.pipes.len() {
            let live: Vec<u64> = self.pipes[k].live.iter().copied().collect();
            for call in live {
                let p = self.pipes[k].p;
                let st = with_err(ErrOut::Fresh, "tw_call_end", |e| unsafe {
                    tw_call_end(p, call, u64::MAX, e)
                });
                assert_eq!(st, tw_status::Ok, "ending a live call");
                self.pipes[k].ended(call);
            }
            self.check_pipe(Some(k));
        }
        for pipe in self.pipes.drain(..) {
            // SAFETY: a live pipeline, freed once; then the contexts it may call back with,
            // each made by Box::into_raw and freed once.
            unsafe {
                tw_pipeline_free(pipe.p);
                for l in pipe.listeners {
                    free_listen(l);
                }
                for f in pipe.fallbacks {
                    drop(Box::from_raw(f));
                }
            }
        }
        for (pf, _) in self.policies.drain(..) {
            // SAFETY: a live policy file, freed once.
            unsafe { tw_policies_free(pf) };
        }
        self.finish_handles();
    }
}

// ---------------------------------------------------------------------------------------------
// Getters, commands, listeners, fallbacks
// ---------------------------------------------------------------------------------------------

/// A fallback's context: what it answers, and how often it ran.
pub struct Fallback {
    pub returns: i32,
    pub calls: u64,
}

/// # Safety
/// `ctx` is a live `Fallback`, `failure` a live failure.
pub unsafe extern "C" fn fallback(
    ctx: *mut c_void,
    call_ctx: *mut c_void,
    f: *const tw_failure,
) -> i32 {
    // SAFETY: per this function's contract.
    unsafe {
        assert!(!call_ctx.is_null(), "a fallback without the call's context");
        assert!(!f.is_null(), "a fallback without a failure");
        assert!(
            (*f).fallback,
            "a fallback for a failure it does not apply to"
        );
        let kind = (*f).kind as u32;
        assert!((1..=9).contains(&kind), "a fallback for kind {kind}");
        let fb = ctx.cast::<Fallback>();
        (*fb).calls += 1;
        (*fb).returns
    }
}

/// What `fn` answers for each attempt of a blocking execute: `(outcome, retryable, hint ns)`,
/// then successes. Outcomes beyond 3 are invalid.
pub struct Script {
    pub steps: Vec<(u32, bool, Option<u8>)>,
    pub next: usize,
}

/// # Safety
/// `ctx` is a live `Script`, `a` a live attempt.
pub unsafe extern "C" fn attempt(ctx: *mut c_void, a: *mut tw_attempt) -> u32 {
    // SAFETY: per this function's contract.
    unsafe {
        let s = &mut *ctx.cast::<Script>();
        let a = &mut *a;
        assert!(a.number >= 1, "attempt numbers start at 1");
        assert!(
            a.retryable && !a.has_retry_after,
            "out fields start as documented"
        );
        let (outcome, retryable, hint) = s.steps.get(s.next).copied().unwrap_or((0, true, None));
        s.next += 1;
        a.retryable = retryable;
        if let Some(h) = hint {
            a.has_retry_after = true;
            a.retry_after_ns = u64::from(h);
        }
        outcome % 5
    }
}

/// An inherited deadline for a blocking execute, on the tw_now_ns() clock.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ExecDeadline {
    None,
    Past,
    Soon(u16),
    Far,
}

/// Which breaker command.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Command {
    ForceOpen,
    Disable,
    Reset,
    HandleTimeout,
}

impl Harness {
    pub fn saw(&mut self, k: Option<usize>, now: u64) {
        if let Some(k) = k {
            self.pipes[k].seen = self.pipes[k].seen.max(now);
        }
    }

    pub fn poll_wake(&mut self, i: u8, call_null: bool, woke_null: bool, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let (mut call, mut woke) = (0u64, false);
        let call_p: *mut u64 = if call_null { null_mut() } else { &mut call };
        let woke_p: *mut bool = if woke_null { null_mut() } else { &mut woke };
        let st = with_err(err, "tw_pipeline_poll_wake", |e| unsafe {
            tw_pipeline_poll_wake(p, call_p, woke_p, e)
        });
        if k.is_none() || call_null || woke_null {
            assert_eq!(st, tw_status::NullArgument, "tw_pipeline_poll_wake");
            return;
        }
        assert_eq!(st, tw_status::Ok, "tw_pipeline_poll_wake");
        if woke {
            let pipe = &self.pipes[k.expect("checked")];
            assert!(pipe.issued.contains(&call), "woke {call:#x}, never issued");
            assert!(pipe.live.contains(&call), "woke {call:#x}, which has ended");
            assert!(
                pipe.parked.contains(&call),
                "woke {call:#x}, which is not parked"
            );
        } else {
            assert_eq!(call, 0, "no wake, yet a call");
        }
    }

    pub fn poll_event(&mut self, i: u8, out_null: bool, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let mut ev = MaybeUninit::<tw_event>::uninit();
        let out_p = if out_null {
            null_mut()
        } else {
            ev.as_mut_ptr()
        };
        let st = with_err(err, "tw_pipeline_poll_event", |e| unsafe {
            tw_pipeline_poll_event(p, out_p, e)
        });
        let Some(k) = k.filter(|_| !out_null) else {
            assert_eq!(st, tw_status::NullArgument, "tw_pipeline_poll_event");
            return;
        };
        assert_eq!(st, tw_status::Ok, "tw_pipeline_poll_event");
        // SAFETY: written on success.
        let ev = unsafe { ev.assume_init() };
        if ev.r#type != tw_event_type::None {
            assert!(
                ev.at_ns <= self.pipes[k].seen,
                "an event from the future: {ev:?}"
            );
        }
    }

    pub fn poll_timeout(&mut self, i: u8, has_null: bool, at_null: bool, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let (mut has, mut at) = (false, 0u64);
        let has_p: *mut bool = if has_null { null_mut() } else { &mut has };
        let at_p: *mut u64 = if at_null { null_mut() } else { &mut at };
        let st = with_err(err, "tw_pipeline_poll_timeout", |e| unsafe {
            tw_pipeline_poll_timeout(p, has_p, at_p, e)
        });
        if k.is_none() || has_null || at_null {
            assert_eq!(st, tw_status::NullArgument, "tw_pipeline_poll_timeout");
        } else {
            assert_eq!(st, tw_status::Ok, "tw_pipeline_poll_timeout");
            assert!(has || at == 0, "no timeout, yet an instant");
        }
    }

    pub fn command(&mut self, i: u8, c: Command, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let now = self.now;
        self.saw(k, now);
        let st = with_err(err, "tw_pipeline_breaker_*", |e| unsafe {
            match c {
                Command::ForceOpen => tw_pipeline_breaker_force_open(p, now, e),
                Command::Disable => tw_pipeline_breaker_disable(p, now, e),
                Command::Reset => tw_pipeline_breaker_reset(p, now, e),
                Command::HandleTimeout => tw_pipeline_handle_timeout(p, now, e),
            }
        });
        match (k, c) {
            (None, _) => assert_eq!(st, tw_status::NullArgument, "{c:?} on NULL"),
            (Some(_), Command::HandleTimeout) => assert_eq!(st, tw_status::Ok, "{c:?}"),
            (Some(_), _) => assert!(
                st == tw_status::Ok || st == tw_status::NotConfigured,
                "{c:?}: {st:?}"
            ),
        }
        self.check_pipe(k);
    }

    pub fn breaker_state(&mut self, i: u8, key: Option<&Key>, out_null: bool, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let key = key.map(Key::bytes);
        let (kp, klen) = key.as_ref().map_or((null(), 0), raw);
        let mut out = MaybeUninit::<tw_breaker_state>::uninit();
        let out_p = if out_null {
            null_mut()
        } else {
            out.as_mut_ptr()
        };
        let st = with_err(err, "tw_pipeline_get_breaker_state", |e| unsafe {
            match key {
                Some(_) => tw_pipeline_get_keyed_breaker_state(p, kp, klen, out_p, e),
                None => tw_pipeline_get_breaker_state(p, out_p, e),
            }
        });
        if k.is_none() {
            assert_eq!(
                st,
                tw_status::NullArgument,
                "tw_pipeline_get_breaker_state on NULL"
            );
        } else if out_null {
            assert_ne!(st, tw_status::Ok, "tw_pipeline_get_breaker_state into NULL");
        }
    }

    pub fn prometheus(&mut self, i: u8, name: &Key, buf: Buf, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let name = c_string(&name.bytes());
        let np = c_ptr(&name);
        let mut f = |b, c, n, e| unsafe { tw_pipeline_prometheus(p, np, b, c, n, e) };
        let text = text_out("tw_pipeline_prometheus", buf, err, &mut f);
        if let (Some(text), Some(_)) = (text, k) {
            assert!(
                text.lines()
                    .all(|l| l.is_empty() || l.starts_with('#') || l.contains("pipeline=\"")),
                "a Prometheus series without its pipeline label: {text}"
            );
        }
    }

    pub fn set_listener(&mut self, i: u8, on: bool, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let ctx = match k.filter(|_| on) {
            Some(k) => {
                let l = new_listen(Target::Pipeline(p));
                self.pipes[k].listeners.push(l);
                l.cast::<c_void>()
            }
            None => null_mut(),
        };
        let listener: tw_event_fn = if on { Some(listener) } else { None };
        let st = with_err(err, "tw_pipeline_set_listener", |e| unsafe {
            tw_pipeline_set_listener(p, listener, ctx, e)
        });
        let expect = if k.is_some() {
            tw_status::Ok
        } else {
            tw_status::NullArgument
        };
        assert_eq!(st, expect, "tw_pipeline_set_listener");
    }

    pub fn add_fallback(&mut self, i: u8, f: Option<i32>, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let (fp, ctx): (tw_fallback_fn, *mut c_void) = match (f, k) {
            (Some(returns), Some(k)) => {
                let fb = Box::into_raw(Box::new(Fallback { returns, calls: 0 }));
                self.pipes[k].fallbacks.push(fb);
                (Some(fallback), fb.cast())
            }
            (Some(_), None) => (Some(fallback), null_mut()),
            (None, _) => (None, null_mut()),
        };
        let st = with_err(err, "tw_pipeline_add_fallback", |e| unsafe {
            tw_pipeline_add_fallback(p, fp, ctx, e)
        });
        let expect = if k.is_some() && f.is_some() {
            tw_status::Ok
        } else {
            tw_status::NullArgument
        };
        assert_eq!(st, expect, "tw_pipeline_add_fallback");
    }

    pub fn clear_fallbacks(&mut self, i: u8, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let st = with_err(err, "tw_pipeline_clear_fallbacks", |e| unsafe {
            tw_pipeline_clear_fallbacks(p, e)
        });
        let expect = if k.is_some() {
            tw_status::Ok
        } else {
            tw_status::NullArgument
        };
        assert_eq!(st, expect, "tw_pipeline_clear_fallbacks");
    }

    /// The blocking helpers, on pipelines whose configs never make them sleep for long.
    #[allow(clippy::too_many_arguments)]
    pub fn execute(
        &mut self,
        i: u8,
        key: Option<&Key>,
        steps: &[(u32, bool, Option<u8>)],
        null_fn: bool,
        deadline: ExecDeadline,
        failure_null: bool,
        err: ErrOut,
    ) {
        let (p, k) = self.pipe(i);
        // The blocking helpers read the tw_now_ns() clock; a pipeline already driven past it
        // (the harness's own clock, u64::MAX...) would make them sleep until then: the
        // header asks for one clock per handle.
        if k.is_some_and(|k| !self.pipes[k].exec_safe || self.pipes[k].seen > tripwire::tw_now_ns())
        {
            return;
        }
        let mut script = Script {
            steps: steps.iter().take(8).copied().collect(),
            next: 0,
        };
        let ctx: *mut c_void = (&mut script as *mut Script).cast();
        let f: tw_attempt_fn = if null_fn { None } else { Some(attempt) };
        let key = key.map(Key::bytes);
        let (kp, klen) = key.as_ref().map_or((null(), 0), raw);
        let deadline = match deadline {
            ExecDeadline::None => u64::MAX,
            ExecDeadline::Past => 0,
            ExecDeadline::Soon(us) => tripwire::tw_now_ns().saturating_add(u64::from(us) * 1_000),
            ExecDeadline::Far => tripwire::tw_now_ns().saturating_add(3_600 * 1_000 * MS),
        };
        let mut failure = MaybeUninit::<tw_failure>::zeroed();
        let fail_p = if failure_null {
            null_mut()
        } else {
            failure.as_mut_ptr()
        };
        let st = with_err_any(err, "tw_pipeline_execute", true, |e| unsafe {
            match key {
                Some(_) => tw_pipeline_execute_keyed(p, kp, klen, f, ctx, deadline, fail_p, e),
                None if failure_null && deadline == u64::MAX => tw_pipeline_execute(p, f, ctx, e),
                None => tw_pipeline_execute_ex(p, f, ctx, deadline, fail_p, e),
            }
        });
        let Some(k) = k else {
            assert_eq!(st, tw_status::NullArgument, "tw_pipeline_execute on NULL");
            return;
        };
        self.saw(Some(k), tripwire::tw_now_ns());
        if null_fn {
            assert_ne!(st, tw_status::Ok, "tw_pipeline_execute without a function");
        }
        if (st as i32) > 100 && !failure_null {
            // SAFETY: zeroed, then written by the library (a plain struct of integers/bools).
            let failure = unsafe { failure.assume_init() };
            assert_eq!(
                failure.kind as i32 + 100,
                st as i32,
                "the failure and the status agree"
            );
        }
        self.check_pipe(Some(k));
    }
}

// ---------------------------------------------------------------------------------------------
// Policy files
// ---------------------------------------------------------------------------------------------

/// Policy files whose pipelines are all safe for the blocking helpers.
pub const POLICY_FILES: &[&str] = &[
    r#"{"policies": {"a": {}, "b": {"retry": {"maxRetries": 1, "backoff": {"type": "constant", "base": "1us", "jitter": "none"}}}}}"#,
    r#"{"seed": 7, "policies": {"k": {"keyed": {"maxKeys": 1}, "rateLimit": {"rate": "1/s", "burst": 1}}, "z": {"circuitBreaker": {"trip": {"consecutiveFailures": 1}}}}}"#,
    r#"{"policies": {}}"#,
];

const POLICY_NAMES: [&str; 6] = ["a", "b", "k", "z", "", "nope"];

impl Harness {
    pub fn new_policies(&mut self, cfg: &Cfg, out_null: bool, err: ErrOut) {
        let bytes = cfg.bytes(POLICY_FILES);
        let (ptr, len) = raw(&bytes);
        let mut out: *mut tw_policies = null_mut();
        let out_p = if out_null {
            null_mut()
        } else {
            &mut out as *mut _
        };
        let st = with_err(err, "tw_policies_new", |e| unsafe {
            tw_policies_new(ptr, len, out_p, e)
        });
        assert_eq!(
            st == tw_status::Ok,
            !out.is_null(),
            "out set exactly on success"
        );
        if !out.is_null() {
            self.policies.push((out, matches!(cfg, Cfg::Preset(_))));
        }
    }

    fn policy(&self, i: u8) -> (*mut tw_policies, Option<usize>) {
        match pick(i, self.policies.len()) {
            Some(k) => (self.policies[k].0, Some(k)),
            None => (null_mut(), None),
        }
    }

    pub fn policies_count(&mut self, i: u8, out_null: bool, err: ErrOut) -> Option<usize> {
        let (pf, k) = self.policy(i);
        let mut n = usize::MAX;
        let out_p: *mut usize = if out_null { null_mut() } else { &mut n };
        let st = with_err(err, "tw_policies_count", |e| unsafe {
            tw_policies_count(pf, out_p, e)
        });
        if k.is_none() || out_null {
            assert_eq!(st, tw_status::NullArgument, "tw_policies_count");
            None
        } else {
            assert_eq!(st, tw_status::Ok, "tw_policies_count");
            Some(n)
        }
    }

    pub fn policies_name(&mut self, i: u8, index: u8, buf: Buf, err: ErrOut) {
        let count = self.policies_count(i, false, ErrOut::Null);
        let (pf, _) = self.policy(i);
        let index = usize::from(index);
        let mut f = |b, c, n, e| unsafe { tw_policies_name(pf, index, b, c, n, e) };
        let text = text_out("tw_policies_name", buf, err, &mut f);
        if let (Some(text), Some(count)) = (text, count) {
            assert!(index < count, "a name at index {index} of {count}");
            let name = c_string(&Some(text.into_bytes()));
            let mut out = null_mut();
            let st = with_err(ErrOut::Fresh, "tw_policies_pipeline", |e| unsafe {
                tw_policies_pipeline_with_seed(pf, c_ptr(&name), 1, &mut out, e)
            });
            assert_eq!(st, tw_status::Ok, "a listed name builds its pipeline");
            let safe = self.policies[pick(i, self.policies.len()).expect("live")].1;
            self.pipes.push(Pipe::new(out, safe));
        }
    }

    pub fn policies_pipeline(
        &mut self,
        i: u8,
        name: &Key,
        seed: Option<u64>,
        out_null: bool,
        err: ErrOut,
    ) {
        let (pf, k) = self.policy(i);
        let name = match name {
            Key::Few(n) => Some(
                POLICY_NAMES[usize::from(*n) % POLICY_NAMES.len()]
                    .as_bytes()
                    .to_vec(),
            ),
            other => other.bytes(),
        };
        let name = c_string(&name);
        let mut out: *mut tw_pipeline = null_mut();
        let out_p = if out_null {
            null_mut()
        } else {
            &mut out as *mut _
        };
        let st = with_err(err, "tw_policies_pipeline", |e| unsafe {
            match seed {
                Some(s) => tw_policies_pipeline_with_seed(pf, c_ptr(&name), s, out_p, e),
                None => tw_policies_pipeline(pf, c_ptr(&name), out_p, e),
            }
        });
        assert_eq!(
            st == tw_status::Ok,
            !out.is_null(),
            "out set exactly on success"
        );
        if k.is_none() || out_null || name.is_none() {
            assert_ne!(st, tw_status::Ok, "tw_policies_pipeline with a NULL");
        }
        if !out.is_null() {
            let safe = self.policies[k.expect("live")].1;
            self.pipes.push(Pipe::new(out, safe));
        }
    }
}

impl Harness {
    pub fn new_pipeline(&mut self, cfg: &Cfg, seed: Option<u64>, out_null: bool, err: ErrOut) {
        let bytes = cfg.bytes(crate::PIPELINES);
        let (ptr, len) = raw(&bytes);
        let mut out: *mut tw_pipeline = null_mut();
        let out_p = if out_null {
            null_mut()
        } else {
            &mut out as *mut _
        };
        let st = with_err(err, "tw_pipeline_new", |e| unsafe {
            match seed {
                Some(s) => tw_pipeline_new_with_seed(ptr, len, s, out_p, e),
                None => tw_pipeline_new(ptr, len, out_p, e),
            }
        });
        assert_eq!(
            st == tw_status::Ok,
            !out.is_null(),
            "out set exactly on success"
        );
        if !out.is_null() {
            self.pipes.push(Pipe::new(out, exec_safe(cfg)));
            self.check_pipe(Some(self.pipes.len() - 1));
        }
    }

    pub fn reconfigure(&mut self, i: u8, cfg: &Cfg, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let bytes = cfg.bytes(crate::PIPELINES);
        let (json, len) = raw(&bytes);
        let now = self.now;
        self.saw(k, now);
        let st = with_err(err, "tw_pipeline_reconfigure", |e| unsafe {
            tw_pipeline_reconfigure(p, json, len, now, e)
        });
        if let Some(k) = k {
            if st == tw_status::Ok {
                self.pipes[k].exec_safe &= exec_safe(cfg);
            }
        } else {
            assert_eq!(
                st,
                tw_status::NullArgument,
                "tw_pipeline_reconfigure on NULL"
            );
        }
        self.check_pipe(k);
    }

    pub fn stats_json(&mut self, i: u8, buf: Buf, err: ErrOut) {
        let (p, k) = self.pipe(i);
        let mut f = |b, c, n, e| unsafe { tw_pipeline_stats_json(p, b, c, n, e) };
        if let Some(text) = text_out("tw_pipeline_stats_json", buf, err, &mut f) {
            let v: serde_json::Value = serde_json::from_str(&text).expect("stats JSON");
            assert!(v.get("calls").is_some(), "stats JSON has calls: {text}");
        }
        self.check_pipe(k);
    }
}

/// Whether a config is one of the presets the blocking helpers may run on.
fn exec_safe(cfg: &Cfg) -> bool {
    matches!(cfg, Cfg::Preset(i) if usize::from(*i) % crate::PIPELINES.len() < crate::EXEC_SAFE)
}

//! The `c_api` target's retry policies (a model of live retry calls), health registries (a
//! model of registered checks: names and ids), `tw_config_validate`, and the name functions.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, c_void, CStr};
use std::mem::MaybeUninit;
use std::ptr::null_mut;

use arbitrary::Arbitrary;
use tripwire::config::tw_config_validate;
use tripwire::error::{tw_status, tw_status_str};
use tripwire::health::*;
use tripwire::retry::*;
use tripwire::types::{tw_breaker_state_str, tw_event_type_str, tw_kind_str};

use crate::c_api_pipeline::CallRef;
use crate::c_api_support::*;
use crate::Harness;

// ---------------------------------------------------------------------------------------------
// Retry policies
// ---------------------------------------------------------------------------------------------

pub const RETRIES: &[&str] = &[
    "{}",
    r#"{"maxRetries": 3, "backoff": {"type": "exponential", "base": "10ms", "max": "1s", "jitter": "full"}, "budget": {"maxTokens": 3, "tokenRatio": 0.2}}"#,
    r#"{"maxRetries": 0}"#,
    r#"{"maxRetries": 2, "maxElapsed": "50ms", "backoff": {"type": "linear", "base": "5ms", "jitter": "decorrelated"}}"#,
];

pub struct RetryH {
    pub r: *mut tw_retry,
    pub issued: Vec<u64>,
    pub live: BTreeSet<u64>,
}

#[derive(Arbitrary, Debug)]
pub enum RetryOp {
    New {
        cfg: Cfg,
        seed: Option<u64>,
        out_null: bool,
        err: ErrOut,
    },
    Begin {
        r: u8,
        out_null: bool,
        err: ErrOut,
    },
    Attempt {
        r: u8,
        call: CallRef,
        out_null: bool,
        err: ErrOut,
    },
    OnFailure {
        r: u8,
        call: CallRef,
        retryable: bool,
        hint: Option<u64>,
        deadline: When,
        out_null: bool,
        err: ErrOut,
    },
    OnSuccess {
        r: u8,
        call: CallRef,
        err: ErrOut,
    },
    End {
        r: u8,
        call: CallRef,
        err: ErrOut,
    },
    Budget {
        r: u8,
        has_null: bool,
        tokens_null: bool,
        err: ErrOut,
    },
    Metrics {
        r: u8,
        out_null: bool,
        err: ErrOut,
    },
}

impl RetryH {
    fn call(&self, c: CallRef) -> u64 {
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
}

impl Harness {
    fn retry(&self, i: u8, c: CallRef) -> (*mut tw_retry, Option<usize>, u64) {
        match pick(i, self.retries.len()) {
            Some(k) => (self.retries[k].r, Some(k), self.retries[k].call(c)),
            None => (null_mut(), None, 0),
        }
    }

    /// The status a call on `call` must give: NULL handle or out-pointer, unknown, or OK.
    fn retry_expect(&self, k: Option<usize>, call: u64, out_null: bool) -> tw_status {
        match k {
            None => tw_status::NullArgument,
            Some(_) if out_null => tw_status::NullArgument,
            Some(k) if !self.retries[k].live.contains(&call) => tw_status::UnknownCall,
            Some(_) => tw_status::Ok,
        }
    }

    pub fn retry_op(&mut self, op: &RetryOp) {
        let now = self.now;
        match op {
            RetryOp::New {
                cfg,
                seed,
                out_null,
                err,
            } => {
                let bytes = cfg.bytes(RETRIES);
                let (ptr, len) = raw(&bytes);
                let mut out: *mut tw_retry = null_mut();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    &mut out as *mut _
                };
                let st = with_err(*err, "tw_retry_new", |e| unsafe {
                    match seed {
                        Some(s) => tw_retry_new_with_seed(ptr, len, *s, out_p, e),
                        None => tw_retry_new(ptr, len, out_p, e),
                    }
                });
                assert_eq!(
                    st == tw_status::Ok,
                    !out.is_null(),
                    "out set exactly on success"
                );
                if matches!(cfg, Cfg::Preset(_)) && !*out_null {
                    assert_eq!(st, tw_status::Ok, "tw_retry_new: a preset is refused");
                }
                if !out.is_null() {
                    self.retries.push(RetryH {
                        r: out,
                        issued: Vec::new(),
                        live: BTreeSet::new(),
                    });
                }
            }
            RetryOp::Begin { r, out_null, err } => {
                let (h, k, _) = self.retry(*r, CallRef::Raw(0));
                let mut call = 0u64;
                let out_p: *mut u64 = if *out_null { null_mut() } else { &mut call };
                let st = with_err(*err, "tw_retry_begin", |e| unsafe {
                    tw_retry_begin(h, now, out_p, e)
                });
                if k.is_none() || *out_null {
                    assert_eq!(st, tw_status::NullArgument, "tw_retry_begin");
                    return;
                }
                assert_eq!(st, tw_status::Ok, "tw_retry_begin");
                let rh = &mut self.retries[k.expect("checked")];
                assert!(rh.live.insert(call), "a live retry call handed out again");
                if rh.issued.len() >= 32 {
                    rh.issued.remove(0);
                }
                rh.issued.push(call);
            }
            RetryOp::Attempt {
                r,
                call,
                out_null,
                err,
            } => {
                let (h, k, call) = self.retry(*r, *call);
                let mut n = 0u32;
                let out_p: *mut u32 = if *out_null { null_mut() } else { &mut n };
                let st = with_err(*err, "tw_retry_attempt", |e| unsafe {
                    tw_retry_attempt(h, call, out_p, e)
                });
                assert_eq!(
                    st,
                    self.retry_expect(k, call, *out_null),
                    "tw_retry_attempt"
                );
                if st == tw_status::Ok {
                    assert!(n >= 1, "attempt numbers start at 1");
                }
            }
            RetryOp::OnFailure {
                r,
                call,
                retryable,
                hint,
                deadline,
                out_null,
                err,
            } => {
                let (h, k, call) = self.retry(*r, *call);
                let deadline = deadline.at(now);
                let mut d = MaybeUninit::<tw_retry_decision>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    d.as_mut_ptr()
                };
                let st = with_err(*err, "tw_retry_on_failure", |e| unsafe {
                    tw_retry_on_failure(
                        h,
                        call,
                        *retryable,
                        hint.is_some(),
                        hint.unwrap_or(0),
                        now,
                        deadline,
                        out_p,
                        e,
                    )
                });
                assert_eq!(
                    st,
                    self.retry_expect(k, call, *out_null),
                    "tw_retry_on_failure"
                );
                if st == tw_status::Ok {
                    // SAFETY: written on success.
                    let d = unsafe { d.assume_init() };
                    if d.retry {
                        assert!(d.attempt >= 2 && d.give_up == tw_give_up::None, "{d:?}");
                    } else {
                        assert!(d.give_up != tw_give_up::None, "no retry, no reason: {d:?}");
                        if !*retryable {
                            assert_eq!(d.give_up, tw_give_up::NotRetryable, "{d:?}");
                        }
                    }
                }
            }
            RetryOp::OnSuccess { r, call, err } => {
                let (h, k, call) = self.retry(*r, *call);
                let st = with_err(*err, "tw_retry_on_success", |e| unsafe {
                    tw_retry_on_success(h, call, e)
                });
                assert_eq!(st, self.retry_expect(k, call, false), "tw_retry_on_success");
            }
            RetryOp::End { r, call, err } => {
                let (h, k, call) = self.retry(*r, *call);
                let st = with_err(*err, "tw_retry_end", |e| unsafe {
                    tw_retry_end(h, call, e)
                });
                assert_eq!(st, self.retry_expect(k, call, false), "tw_retry_end");
                if let (tw_status::Ok, Some(k)) = (st, k) {
                    self.retries[k].live.remove(&call);
                }
            }
            RetryOp::Budget {
                r,
                has_null,
                tokens_null,
                err,
            } => {
                let (h, k, _) = self.retry(*r, CallRef::Raw(0));
                let (mut has, mut tokens) = (false, f64::NAN);
                let has_p: *mut bool = if *has_null { null_mut() } else { &mut has };
                let t_p: *mut f64 = if *tokens_null {
                    null_mut()
                } else {
                    &mut tokens
                };
                let st = with_err(*err, "tw_retry_budget", |e| unsafe {
                    tw_retry_budget(h, has_p, t_p, e)
                });
                let ok = k.is_some() && !*has_null && !*tokens_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_retry_budget"
                );
                if ok {
                    assert!(
                        tokens.is_finite() && tokens >= 0.0,
                        "budget tokens {tokens}"
                    );
                    assert!(has || tokens == 0.0, "no budget, yet tokens");
                }
            }
            RetryOp::Metrics { r, out_null, err } => {
                let (h, k, _) = self.retry(*r, CallRef::Raw(0));
                let mut m = MaybeUninit::<tw_retry_metrics>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    m.as_mut_ptr()
                };
                let st = with_err(*err, "tw_retry_get_metrics", |e| unsafe {
                    tw_retry_get_metrics(h, out_p, e)
                });
                let ok = k.is_some() && !*out_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_retry_get_metrics"
                );
                if ok {
                    // SAFETY: written on success.
                    let m = unsafe { m.assume_init() };
                    assert!(m.successes_after_retry <= m.successes, "{m:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Health registries
// ---------------------------------------------------------------------------------------------

pub const HEALTHS: &[&str] = &[
    "{}",
    r#"{"checks": {"db": {"timeout": "2s", "critical": false, "interval": "10s", "failureThreshold": 2, "successThreshold": 3}, "cache": {}}}"#,
    r#"{"checks": {"q": {"timeout": "5ms", "critical": true, "interval": "10ms"}}}"#,
];

const CHECKS: &[&str] = &[
    "{}",
    r#"{"timeout": "5ms", "critical": true, "interval": "10ms", "failureThreshold": 2, "successThreshold": 1}"#,
    r#"{"critical": false, "interval": "1s"}"#,
];

const NAMES: [&str; 5] = ["db", "cache", "q", "x", ""];

/// A check name: one of a few (the empty one included), arbitrary bytes, or NULL.
fn name_bytes(k: &Key) -> Option<Vec<u8>> {
    match k {
        Key::Few(i) => Some(NAMES[usize::from(*i) % NAMES.len()].as_bytes().to_vec()),
        other => other.bytes(),
    }
}

pub struct HealthH {
    pub h: *mut tw_health,
    /// The registered checks, by name (no NUL), with their ids.
    pub checks: BTreeMap<Vec<u8>, u32>,
    pub listeners: Vec<*mut HealthListen>,
}

/// A health listener's context: it counts events and re-enters the registry.
pub struct HealthListen {
    pub h: *mut tw_health,
    pub events: u64,
}

/// # Safety
/// `ctx` is a live `HealthListen` whose registry is live, `e` a live event.
unsafe extern "C" fn health_listener(ctx: *mut c_void, e: *const tw_health_event) {
    // SAFETY: per this function's contract.
    unsafe {
        assert!(!e.is_null(), "a listener called with NULL");
        assert!(
            (*e).r#type != tw_health_event_type::None,
            "a listener called with NONE"
        );
        let l = ctx.cast::<HealthListen>();
        (*l).events += 1;
        let mut m = MaybeUninit::<tw_health_metrics>::uninit();
        let st = tw_health_get_metrics((*l).h, m.as_mut_ptr(), null_mut());
        assert_eq!(
            st,
            tw_status::Ok,
            "re-entering a registry from its listener"
        );
    }
}

/// A check id: one registered, or any value.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum CheckRef {
    Known(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
pub enum HealthOp {
    New {
        cfg: Cfg,
        out_null: bool,
        err: ErrOut,
    },
    Register {
        h: u8,
        name: Key,
        cfg: Cfg,
        id_null: bool,
        err: ErrOut,
    },
    Unregister {
        h: u8,
        name: Key,
        removed_null: bool,
        err: ErrOut,
    },
    Id {
        h: u8,
        name: Key,
        id_null: bool,
        err: ErrOut,
    },
    Name {
        h: u8,
        id: CheckRef,
        buf: Buf,
        err: ErrOut,
    },
    Due {
        h: u8,
        all: bool,
        cap: u8,
        out_null: bool,
        count_null: bool,
        remaining_null: bool,
        err: ErrOut,
    },
    Report {
        h: u8,
        id: CheckRef,
        ok: bool,
        latency_ms: u16,
        error: Option<Key>,
        err: ErrOut,
    },
    Expire {
        h: u8,
        err: ErrOut,
    },
    Status {
        h: u8,
        out_null: bool,
        http_null: bool,
        err: ErrOut,
    },
    CheckStatus {
        h: u8,
        name: Key,
        out_null: bool,
        err: ErrOut,
    },
    PollTimeout {
        h: u8,
        has_null: bool,
        at_null: bool,
        err: ErrOut,
    },
    SetBreaker {
        h: u8,
        name: Key,
        state: u32,
        err: ErrOut,
    },
    RemoveBreaker {
        h: u8,
        name: Key,
        removed_null: bool,
        err: ErrOut,
    },
    ReportJson {
        h: u8,
        timestamp: Option<Key>,
        buf: Buf,
        err: ErrOut,
    },
    PollEvent {
        h: u8,
        out_null: bool,
        err: ErrOut,
    },
    Listen {
        h: u8,
        on: bool,
        err: ErrOut,
    },
    Metrics {
        h: u8,
        out_null: bool,
        err: ErrOut,
    },
}

impl Harness {
    fn health(&self, i: u8) -> (*mut tw_health, Option<usize>) {
        match pick(i, self.healths.len()) {
            Some(k) => (self.healths[k].h, Some(k)),
            None => (null_mut(), None),
        }
    }

    fn check_id(&self, k: Option<usize>, c: CheckRef) -> u32 {
        match (k, c) {
            (Some(k), CheckRef::Known(i)) if !self.healths[k].checks.is_empty() => {
                let ids: Vec<u32> = self.healths[k].checks.values().copied().collect();
                ids[usize::from(i) % ids.len()]
            }
            (_, CheckRef::Raw(id)) => id,
            _ => 0,
        }
    }

    /// The registry's checks as its report lists them, each looked up by name.
    fn learn_checks(&self, k: usize) -> BTreeMap<Vec<u8>, u32> {
        let h = self.healths[k].h;
        let mut f = |b, c, n, e| unsafe { tw_health_report_json(h, c"t".as_ptr(), b, c, n, e) };
        let text = text_out(
            "tw_health_report_json",
            Buf::SizeQuery,
            ErrOut::Fresh,
            &mut f,
        )
        .expect("a report");
        let v: serde_json::Value = serde_json::from_str(&text).expect("the report is JSON");
        let mut checks = BTreeMap::new();
        for name in v["checks"].as_object().expect("checks").keys() {
            let c = c_string(&Some(name.as_bytes().to_vec())).expect("a name");
            let mut id = 0u32;
            let st = with_err(ErrOut::Fresh, "tw_health_id", |e| unsafe {
                tw_health_id(h, c.as_ptr().cast(), &mut id, e)
            });
            assert_eq!(
                st,
                tw_status::Ok,
                "a check the report lists has no id: {name}"
            );
            checks.insert(name.as_bytes().to_vec(), id);
        }
        checks
    }

    pub fn health_op(&mut self, op: &HealthOp) {
        let now = self.now;
        self.health_seen = self.health_seen.max(now);
        match op {
            HealthOp::New { cfg, out_null, err } => {
                let bytes = cfg.bytes(HEALTHS);
                let (ptr, len) = raw(&bytes);
                let mut out: *mut tw_health = null_mut();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    &mut out as *mut _
                };
                let st = with_err(*err, "tw_health_new", |e| unsafe {
                    tw_health_new(ptr, len, out_p, e)
                });
                assert_eq!(
                    st == tw_status::Ok,
                    !out.is_null(),
                    "out set exactly on success"
                );
                if matches!(cfg, Cfg::Preset(_)) && !*out_null {
                    assert_eq!(st, tw_status::Ok, "tw_health_new: a preset is refused");
                }
                if !out.is_null() {
                    self.healths.push(HealthH {
                        h: out,
                        checks: BTreeMap::new(),
                        listeners: Vec::new(),
                    });
                    let k = self.healths.len() - 1;
                    self.healths[k].checks = self.learn_checks(k);
                }
            }
            HealthOp::Register {
                h,
                name,
                cfg,
                id_null,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let name = c_string(&name_bytes(name));
                let bytes = cfg.bytes(CHECKS);
                let (ptr, len) = raw(&bytes);
                let mut id = u32::MAX;
                let id_p: *mut u32 = if *id_null { null_mut() } else { &mut id };
                let st = with_err(*err, "tw_health_register", |e| unsafe {
                    tw_health_register(hp, c_ptr(&name), ptr, len, id_p, e)
                });
                let Some(k) = k else {
                    assert_eq!(st, tw_status::NullArgument, "tw_health_register on NULL");
                    return;
                };
                let key = name.as_ref().map(|n| n[..n.len() - 1].to_vec());
                let fresh = key.as_ref().is_some_and(|n| {
                    !n.is_empty()
                        && std::str::from_utf8(n).is_ok()
                        && !self.healths[k].checks.contains_key(n)
                });
                if fresh && matches!(cfg, Cfg::Preset(_)) {
                    assert_eq!(st, tw_status::Ok, "registering a new name with a preset");
                }
                if key
                    .as_ref()
                    .is_some_and(|n| self.healths[k].checks.contains_key(n))
                {
                    assert_ne!(st, tw_status::Ok, "registering a name twice");
                }
                if st == tw_status::Ok {
                    assert!(fresh, "registered {key:?}");
                    let learned = self.learn_checks(k);
                    let key = key.expect("registered");
                    let new_id = *learned.get(&key).expect("a registered check is listed");
                    if !*id_null {
                        assert_eq!(id, new_id, "the id registered");
                    }
                    assert!(
                        !self.healths[k].checks.values().any(|c| *c == new_id),
                        "an id reused while live"
                    );
                    self.healths[k].checks.insert(key, new_id);
                    assert_eq!(learned, self.healths[k].checks, "the registry's checks");
                }
            }
            HealthOp::Unregister {
                h,
                name,
                removed_null,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let name = c_string(&name_bytes(name));
                let mut removed = false;
                let r_p: *mut bool = if *removed_null {
                    null_mut()
                } else {
                    &mut removed
                };
                let st = with_err(*err, "tw_health_unregister", |e| unsafe {
                    tw_health_unregister(hp, c_ptr(&name), r_p, e)
                });
                if let (tw_status::Ok, Some(k)) = (st, k) {
                    let key = name.expect("a name")[..].to_vec();
                    let was = self.healths[k]
                        .checks
                        .remove(&key[..key.len() - 1])
                        .is_some();
                    if !*removed_null {
                        assert_eq!(removed, was, "tw_health_unregister: removed");
                    }
                } else if k.is_none() || name.is_none() {
                    assert_eq!(
                        st,
                        tw_status::NullArgument,
                        "tw_health_unregister with a NULL"
                    );
                }
            }
            HealthOp::Id {
                h,
                name,
                id_null,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let name = c_string(&name_bytes(name));
                let mut id = u32::MAX;
                let id_p: *mut u32 = if *id_null { null_mut() } else { &mut id };
                let st = with_err(*err, "tw_health_id", |e| unsafe {
                    tw_health_id(hp, c_ptr(&name), id_p, e)
                });
                if let (Some(k), Some(n)) = (k, &name) {
                    match self.healths[k].checks.get(&n[..n.len() - 1]) {
                        Some(known) if !*id_null => {
                            assert_eq!(st, tw_status::Ok, "tw_health_id of a registered check");
                            assert_eq!(id, *known, "tw_health_id");
                        }
                        Some(_) => {
                            assert_eq!(st, tw_status::NullArgument, "tw_health_id into NULL")
                        }
                        None => assert!(
                            st == tw_status::UnknownCheck || st == tw_status::InvalidArgument,
                            "tw_health_id of an unknown name: {st:?}"
                        ),
                    }
                } else {
                    assert_eq!(st, tw_status::NullArgument, "tw_health_id with a NULL");
                }
            }
            HealthOp::Name { h, id, buf, err } => {
                let (hp, k) = self.health(*h);
                let id = self.check_id(k, *id);
                let mut f = |b, c, n, e| unsafe { tw_health_name(hp, id, b, c, n, e) };
                let text = text_out("tw_health_name", *buf, *err, &mut f);
                if let (Some(text), Some(k)) = (text, k) {
                    assert_eq!(
                        self.healths[k].checks.get(text.as_bytes()),
                        Some(&id),
                        "tw_health_name of {id}: {text}"
                    );
                }
            }
            HealthOp::Due {
                h,
                all,
                cap,
                out_null,
                count_null,
                remaining_null,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let cap = usize::from(*cap % 5);
                let sentinel = tw_due_check {
                    id: u32::MAX,
                    deadline_ns: u64::MAX,
                };
                let mut out = vec![sentinel; cap + 1];
                let out_p = if *out_null {
                    null_mut()
                } else {
                    out.as_mut_ptr()
                };
                let (mut count, mut remaining) = (usize::MAX, usize::MAX);
                let c_p: *mut usize = if *count_null { null_mut() } else { &mut count };
                let r_p: *mut usize = if *remaining_null {
                    null_mut()
                } else {
                    &mut remaining
                };
                let st = with_err(*err, "tw_health_due", |e| unsafe {
                    if *all {
                        tw_health_due_all(hp, now, out_p, cap, c_p, r_p, e)
                    } else {
                        tw_health_due(hp, now, out_p, cap, c_p, r_p, e)
                    }
                });
                assert_eq!(out[cap].id, u32::MAX, "tw_health_due wrote past cap");
                let ok = k.is_some() && !*count_null && !(*out_null && cap > 0);
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_health_due"
                );
                if ok {
                    assert!(count <= cap, "tw_health_due: {count} checks into {cap}");
                    let k = k.expect("checked");
                    for d in &out[..count] {
                        assert!(
                            self.healths[k].checks.values().any(|id| *id == d.id),
                            "due: unknown id {}",
                            d.id
                        );
                    }
                }
            }
            HealthOp::Report {
                h,
                id,
                ok,
                latency_ms,
                error,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let id = self.check_id(k, *id);
                let error = error.as_ref().map(|e| c_string(&e.bytes()));
                let ep: *const c_char = error.as_ref().map_or(std::ptr::null(), c_ptr);
                let latency = u64::from(*latency_ms) * MS;
                let st = with_err(*err, "tw_health_report", |e| unsafe {
                    tw_health_report(hp, id, *ok, latency, ep, now, e)
                });
                let utf8 = error.as_ref().is_none_or(|e| {
                    e.as_ref()
                        .is_none_or(|e| std::str::from_utf8(&e[..e.len() - 1]).is_ok())
                });
                match k {
                    None => assert_eq!(st, tw_status::NullArgument, "tw_health_report on NULL"),
                    Some(_) if !utf8 => assert_eq!(
                        st,
                        tw_status::InvalidArgument,
                        "tw_health_report of non-UTF-8"
                    ),
                    Some(k) if self.healths[k].checks.values().any(|c| *c == id) => {
                        assert_eq!(st, tw_status::Ok, "tw_health_report of a registered check")
                    }
                    Some(_) => assert_eq!(st, tw_status::UnknownCheck, "tw_health_report of {id}"),
                }
            }
            HealthOp::Expire { h, err } => {
                let (hp, k) = self.health(*h);
                let st = with_err(*err, "tw_health_expire", |e| unsafe {
                    tw_health_expire(hp, now, e)
                });
                assert_eq!(
                    st,
                    if k.is_some() {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_health_expire"
                );
            }
            HealthOp::Status {
                h,
                out_null,
                http_null,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let mut s = MaybeUninit::<tw_health_status>::uninit();
                let s_p = if *out_null {
                    null_mut()
                } else {
                    s.as_mut_ptr()
                };
                let mut http = 0u16;
                let http_p: *mut u16 = if *http_null { null_mut() } else { &mut http };
                let st = with_err(*err, "tw_health_get_status", |e| unsafe {
                    tw_health_get_status(hp, s_p, http_p, e)
                });
                let ok = k.is_some() && !*out_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_health_get_status"
                );
                if ok && !*http_null {
                    // SAFETY: written on success.
                    let s = unsafe { s.assume_init() };
                    let want = if s == tw_health_status::Unhealthy {
                        503
                    } else {
                        200
                    };
                    assert_eq!(http, want, "the HTTP status of {s:?}");
                }
            }
            HealthOp::CheckStatus {
                h,
                name,
                out_null,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let name = c_string(&name_bytes(name));
                let mut s = MaybeUninit::<tw_check_status>::uninit();
                let s_p = if *out_null {
                    null_mut()
                } else {
                    s.as_mut_ptr()
                };
                let st = with_err(*err, "tw_health_get_check_status", |e| unsafe {
                    tw_health_get_check_status(hp, c_ptr(&name), s_p, e)
                });
                if st == tw_status::Ok {
                    // SAFETY: written on success.
                    let s = unsafe { s.assume_init() };
                    let n = name.expect("a name");
                    let known = self.healths[k.expect("a registry")]
                        .checks
                        .contains_key(&n[..n.len() - 1]);
                    assert_eq!(
                        s != tw_check_status::Unknown,
                        known,
                        "tw_health_get_check_status: {s:?}"
                    );
                } else if name.is_none() || k.is_none() {
                    assert_eq!(
                        st,
                        tw_status::NullArgument,
                        "tw_health_get_check_status with a NULL"
                    );
                } else if *out_null {
                    assert_ne!(st, tw_status::Ok, "tw_health_get_check_status into NULL");
                }
            }
            HealthOp::PollTimeout {
                h,
                has_null,
                at_null,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let (mut has, mut at) = (false, 0u64);
                let has_p: *mut bool = if *has_null { null_mut() } else { &mut has };
                let at_p: *mut u64 = if *at_null { null_mut() } else { &mut at };
                let st = with_err(*err, "tw_health_poll_timeout", |e| unsafe {
                    tw_health_poll_timeout(hp, has_p, at_p, e)
                });
                let ok = k.is_some() && !*has_null && !*at_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_health_poll_timeout"
                );
            }
            HealthOp::SetBreaker {
                h,
                name,
                state,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let name = c_string(&name_bytes(name));
                let state = state % 7;
                let st = with_err(*err, "tw_health_set_breaker", |e| unsafe {
                    tw_health_set_breaker(hp, c_ptr(&name), state, e)
                });
                let utf8 = name
                    .as_ref()
                    .is_some_and(|n| std::str::from_utf8(&n[..n.len() - 1]).is_ok());
                let expect = if k.is_none() || name.is_none() {
                    tw_status::NullArgument
                } else if !utf8 || state > 4 {
                    tw_status::InvalidArgument
                } else {
                    tw_status::Ok
                };
                assert_eq!(st, expect, "tw_health_set_breaker");
            }
            HealthOp::RemoveBreaker {
                h,
                name,
                removed_null,
                err,
            } => {
                let (hp, _) = self.health(*h);
                let name = c_string(&name_bytes(name));
                let mut removed = false;
                let r_p: *mut bool = if *removed_null {
                    null_mut()
                } else {
                    &mut removed
                };
                with_err(*err, "tw_health_remove_breaker", |e| unsafe {
                    tw_health_remove_breaker(hp, c_ptr(&name), r_p, e)
                });
            }
            HealthOp::ReportJson {
                h,
                timestamp,
                buf,
                err,
            } => {
                let (hp, k) = self.health(*h);
                let stamp = timestamp.as_ref().map(|t| c_string(&t.bytes()));
                let tp: *const c_char = stamp.as_ref().map_or(std::ptr::null(), c_ptr);
                let mut f = |b, c, n, e| unsafe { tw_health_report_json(hp, tp, b, c, n, e) };
                if let (Some(text), Some(_)) =
                    (text_out("tw_health_report_json", *buf, *err, &mut f), k)
                {
                    let v: serde_json::Value =
                        serde_json::from_str(&text).expect("the report is JSON");
                    assert!(
                        v.get("status").is_some(),
                        "a report without a status: {text}"
                    );
                }
            }
            HealthOp::PollEvent { h, out_null, err } => {
                let (hp, k) = self.health(*h);
                let mut ev = MaybeUninit::<tw_health_event>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    ev.as_mut_ptr()
                };
                let st = with_err(*err, "tw_health_poll_event", |e| unsafe {
                    tw_health_poll_event(hp, out_p, e)
                });
                let ok = k.is_some() && !*out_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_health_poll_event"
                );
                if ok {
                    // SAFETY: written on success.
                    let ev = unsafe { ev.assume_init() };
                    if ev.r#type != tw_health_event_type::None {
                        assert!(
                            ev.at_ns <= self.health_seen,
                            "an event from the future: {ev:?}"
                        );
                    }
                }
            }
            HealthOp::Listen { h, on, err } => {
                let (hp, k) = self.health(*h);
                let ctx: *mut c_void = match k.filter(|_| *on) {
                    Some(k) => {
                        let l = Box::into_raw(Box::new(HealthListen { h: hp, events: 0 }));
                        self.healths[k].listeners.push(l);
                        l.cast()
                    }
                    None => null_mut(),
                };
                let f: tw_health_event_fn = if *on { Some(health_listener) } else { None };
                let st = with_err(*err, "tw_health_set_listener", |e| unsafe {
                    tw_health_set_listener(hp, f, ctx, e)
                });
                assert_eq!(
                    st,
                    if k.is_some() {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_health_set_listener"
                );
            }
            HealthOp::Metrics { h, out_null, err } => {
                let (hp, k) = self.health(*h);
                let mut m = MaybeUninit::<tw_health_metrics>::uninit();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    m.as_mut_ptr()
                };
                let st = with_err(*err, "tw_health_get_metrics", |e| unsafe {
                    tw_health_get_metrics(hp, out_p, e)
                });
                let ok = k.is_some() && !*out_null;
                assert_eq!(
                    st,
                    if ok {
                        tw_status::Ok
                    } else {
                        tw_status::NullArgument
                    },
                    "tw_health_get_metrics"
                );
                if ok {
                    // SAFETY: written on success.
                    let m = unsafe { m.assume_init() };
                    let k = k.expect("checked");
                    assert_eq!(
                        m.checks,
                        self.healths[k].checks.len() as u64,
                        "checks registered: {m:?}"
                    );
                    assert_eq!(
                        m.pending + m.healthy + m.unhealthy,
                        m.checks,
                        "every check has a status: {m:?}"
                    );
                    assert!(m.running <= m.checks, "{m:?}");
                }
            }
        }
    }

    pub(crate) fn finish_more(&mut self) {
        for r in self.retries.drain(..) {
            // SAFETY: a live retry policy, freed once.
            unsafe { tw_retry_free(r.r) };
        }
        for h in self.healths.drain(..) {
            // SAFETY: a live registry, freed once; then its listener contexts, once each.
            unsafe {
                tw_health_free(h.h);
                for l in h.listeners {
                    drop(Box::from_raw(l));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tw_config_validate and the name functions
// ---------------------------------------------------------------------------------------------

/// Presets for each `tw_config_target` (0..=8) that has no handle of its own here.
pub const TIMEOUTS: &[&str] = &[
    r#"{"perAttempt": "1s", "overall": "5s"}"#,
    r#"{"perAttempt": null}"#,
];

pub fn validate(target: u32, cfg: &Cfg, err: ErrOut) {
    let presets: &[&str] = match target {
        0 => crate::c_api_pipeline::POLICY_FILES,
        1 => crate::PIPELINES,
        2 => crate::c_api_handles::BREAKERS,
        3 => RETRIES,
        4 => TIMEOUTS,
        5 => crate::c_api_handles::BULKHEADS,
        6 => crate::c_api_handles::LIMITERS,
        7 => crate::c_api_handles::KEYED_LIMITERS,
        _ => HEALTHS,
    };
    let bytes = cfg.bytes(presets);
    let (ptr, len) = raw(&bytes);
    let st = with_err(err, "tw_config_validate", |e| unsafe {
        tw_config_validate(target, ptr, len, e)
    });
    if bytes.is_none() {
        assert_eq!(st, tw_status::NullArgument, "tw_config_validate of NULL");
    } else if matches!(cfg, Cfg::Preset(_)) {
        let expect = if target <= 8 {
            tw_status::Ok
        } else {
            tw_status::InvalidArgument
        };
        assert_eq!(st, expect, "tw_config_validate of a preset for {target}");
    }
}

fn static_name(what: &str, p: *const c_char) -> String {
    assert!(!p.is_null(), "{what}: NULL");
    // SAFETY: the library returns static NUL-terminated strings.
    let s = unsafe { CStr::from_ptr(p) }
        .to_str()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!s.is_empty(), "{what}: empty");
    s.to_owned()
}

pub fn names(status: i32, kind: u32, state: u32, event: u32, health: u32, check: u32) {
    let s = static_name("tw_status_str", tw_status_str(status));
    assert_eq!(
        s == "unknown",
        !(0..=13).contains(&status) && !(101..=109).contains(&status),
        "status {status}: {s}"
    );
    let k = static_name("tw_kind_str", tw_kind_str(kind));
    assert_eq!(k == "unknown", kind > 10, "kind {kind}: {k}");
    let b = static_name("tw_breaker_state_str", tw_breaker_state_str(state));
    assert_eq!(b == "unknown", state > 4, "state {state}: {b}");
    let e = static_name("tw_event_type_str", tw_event_type_str(event));
    assert_eq!(
        e == "unknown",
        // 1..=6 the policies' events, 7 the store breaker's `storeStateChanged`.
        !(1..=7).contains(&event),
        "event {event}: {e}"
    );
    let h = static_name("tw_health_status_str", tw_health_status_str(health));
    assert_eq!(h == "unknown", health > 2, "health {health}: {h}");
    let c = static_name("tw_check_status_str", tw_check_status_str(check));
    assert_eq!(
        c == "unknown",
        !(1..=3).contains(&check),
        "check {check}: {c}"
    );
}

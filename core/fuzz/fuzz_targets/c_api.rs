//! The C API (`bindings-c`, `tripwire.h`) driven from Rust through its `extern "C"` functions
//! with arbitrary arguments: every handle kind (pipelines, policy files, breakers, limiters,
//! keyed limiters, bulkheads, retry policies, health registries) from presets, cut presets,
//! edge configs, arbitrary bytes and NULL; call handles, permits, tickets and check ids that
//! are issued, ended or forged; times at 0, `u64::MAX` and going backwards; out-of-range enum
//! values; NULL handles and out-pointers; `tw_error **` slots that are NULL, empty or already
//! holding an error; zero-length, undersized and NULL text buffers; listeners that re-enter
//! their handle; fallbacks; the blocking helpers (on configs that never make them sleep long).
//!
//! Invariants, after every call:
//! - no function returns `TW_STATUS_PANIC` or `TW_STATUS_POISONED` (a caught panic is a bug);
//! - statuses are documented values, and only the blocking helpers return a failed call's
//!   status (`100 + kind`); NULL handles and out-pointers give `TW_STATUS_NULL_ARGUMENT`;
//! - a failure fills an empty `tw_error *` slot with an error of the same status and a
//!   non-empty message (the thread's last error agrees; a config error's message starts with
//!   its path, no other error has one); success leaves it NULL; a slot that already holds an
//!   error is never overwritten;
//! - text functions: `needed` is the length + 1, the text NUL-terminated and UTF-8, nothing
//!   written past `cap` (nor into a 0-byte buffer), an empty string when too small, and a
//!   retry with exactly the size asked for succeeds with that length;
//! - the step protocol follows a model of live calls (UNKNOWN_CALL exactly for ended ones,
//!   ATTEMPT_IN_FLIGHT / NO_ATTEMPT_IN_FLIGHT exactly as attempts run), a woken call is live
//!   and parked, and the stats add up: `calls == succeeded + Σfailed + cancelled + in_flight`
//!   with `in_flight` between the undecided and all live calls;
//! - retry calls and health checks (names and ids, due lists) follow models of their own;
//!   bulkheads stay within their bounds; events never come from the future.
//!
//! Every call left is ended (nothing may stay in flight) and every handle freed exactly once.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tripwire::breaker::{tw_breaker, tw_permit};
use tripwire::bulkhead::tw_bulkhead;
use tripwire::limiter::{tw_keyed_limiter, tw_limiter};
use tripwire::pipeline::tw_policies;

mod c_api_handles;
mod c_api_more;
mod c_api_pipeline;
mod c_api_support;
use c_api_handles::*;
use c_api_more::*;
use c_api_pipeline::*;
use c_api_support::*;

/// Every handle made so far (each freed once, in `finish`), and the host's clock.
pub struct Harness {
    pub now: u64,
    pub pipes: Vec<Pipe>,
    /// Policy files, and whether their pipelines are safe for the blocking helpers.
    pub policies: Vec<(*mut tw_policies, bool)>,
    /// The latest instant handed to any single-policy handle: no event may be later.
    pub seen: u64,
    pub breakers: Vec<Handle<tw_breaker>>,
    /// Permits breakers issued (the last 32), to record, release, or use again.
    pub permits: Vec<tw_permit>,
    /// Snapshots taken (the last 8), with the breaker they came from.
    pub snapshots: Vec<(usize, Vec<u8>)>,
    pub limiters: Vec<Handle<tw_limiter>>,
    pub keyed: Vec<Handle<tw_keyed_limiter>>,
    pub bulkheads: Vec<Handle<tw_bulkhead>>,
    /// Tickets bulkheads handed out (the last 32).
    pub tickets: Vec<u64>,
    pub retries: Vec<RetryH>,
    pub healths: Vec<HealthH>,
    /// The latest instant handed to any registry: no event may be later.
    pub health_seen: u64,
}

impl Harness {
    pub(crate) fn finish_handles(&mut self) {
        free_all(&mut self.breakers, tripwire::breaker::tw_breaker_free);
        free_all(&mut self.limiters, tripwire::limiter::tw_limiter_free);
        free_all(&mut self.keyed, tripwire::limiter::tw_keyed_limiter_free);
        free_all(&mut self.bulkheads, tripwire::bulkhead::tw_bulkhead_free);
        self.finish_more();
    }
}

/// The presets a `Cfg::Preset` picks from for a pipeline; the first [`EXEC_SAFE`] never make
/// the blocking helpers sleep or park for long.
pub const PIPELINES: &[&str] = &[
    "{}",
    r#"{"retry": {"maxRetries": 2, "backoff": {"type": "constant", "base": "1us", "jitter": "none"}}}"#,
    r#"{"circuitBreaker": {"trip": {"consecutiveFailures": 2}, "openDuration": "50ms", "halfOpen": {"permittedCalls": 1}}}"#,
    r#"{"rateLimit": {"rate": "10/s", "burst": 2, "maxWait": 0}}"#,
    r#"{"keyed": {"maxKeys": 2, "idleExpiry": "1s"}, "circuitBreaker": {"trip": {"consecutiveFailures": 1}, "openDuration": "5ms"}, "rateLimit": {"rate": "5/s", "burst": 1}}"#,
    r#"{"bulkhead": {"maxConcurrent": 1, "maxQueue": 2, "maxWait": "10ms"}}"#,
    r#"{"rateLimit": {"rate": "100/s", "burst": 3, "maxWait": "20ms"}, "bulkhead": {"maxConcurrent": 2, "maxQueue": 1}, "circuitBreaker": {"trip": {"failureRate": 0.5, "window": {"calls": 4}, "minimumCalls": 2}, "openDuration": "20ms"}, "retry": {"maxRetries": 3, "backoff": {"type": "exponential", "base": "2ms", "jitter": "full"}, "budget": {"maxTokens": 2, "tokenRatio": 0.5}, "pushback": "pipeline"}, "timeout": {"perAttempt": "5ms", "overall": "40ms"}, "fallback": {"on": ["circuitOpen", "retriesExhausted"]}}"#,
    r#"{"retry": {"maxRetries": 5, "backoff": {"type": "linear", "base": "3ms", "jitter": "decorrelated"}, "maxElapsed": "15ms"}, "timeout": {"overall": "30ms"}}"#,
];
pub const EXEC_SAFE: usize = 5;

#[derive(Arbitrary, Debug)]
struct Case {
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    // Pipelines and the step protocol.
    NewPipeline {
        cfg: Cfg,
        seed: Option<u64>,
        out_null: bool,
        err: ErrOut,
    },
    Begin {
        p: u8,
        deadline: When,
        out_null: bool,
        err: ErrOut,
    },
    BeginKeyed {
        p: u8,
        key: Key,
        deadline: When,
        out_null: bool,
        err: ErrOut,
    },
    /// Poll every live call that awaits no report, oldest first, as a host's event loop would.
    PollAll(u8),
    Poll {
        p: u8,
        call: CallRef,
        out_null: bool,
        err: ErrOut,
    },
    Report {
        p: u8,
        call: CallRef,
        report: Option<(u32, bool, Option<u64>)>,
        err: ErrOut,
    },
    End {
        p: u8,
        call: CallRef,
        cancel: bool,
        err: ErrOut,
    },
    Reconfigure {
        p: u8,
        cfg: Cfg,
        err: ErrOut,
    },
    PollWake {
        p: u8,
        call_null: bool,
        woke_null: bool,
        err: ErrOut,
    },
    PollEvent {
        p: u8,
        out_null: bool,
        err: ErrOut,
    },
    PollTimeout {
        p: u8,
        has_null: bool,
        at_null: bool,
        err: ErrOut,
    },
    Command {
        p: u8,
        command: Command,
        err: ErrOut,
    },
    BreakerState {
        p: u8,
        key: Option<Key>,
        out_null: bool,
        err: ErrOut,
    },
    // Texts.
    StatsJson {
        p: u8,
        buf: Buf,
        err: ErrOut,
    },
    Prometheus {
        p: u8,
        name: Key,
        buf: Buf,
        err: ErrOut,
    },
    // Callbacks and the blocking helpers.
    SetListener {
        p: u8,
        on: bool,
        err: ErrOut,
    },
    AddFallback {
        p: u8,
        returns: Option<i32>,
        err: ErrOut,
    },
    ClearFallbacks {
        p: u8,
        err: ErrOut,
    },
    Execute {
        p: u8,
        key: Option<Key>,
        steps: Vec<(u32, bool, Option<u8>)>,
        null_fn: bool,
        deadline: ExecDeadline,
        failure_null: bool,
        err: ErrOut,
    },
    // Policy files.
    NewPolicies {
        cfg: Cfg,
        out_null: bool,
        err: ErrOut,
    },
    PoliciesCount {
        f: u8,
        out_null: bool,
        err: ErrOut,
    },
    PoliciesName {
        f: u8,
        index: u8,
        buf: Buf,
        err: ErrOut,
    },
    PoliciesPipeline {
        f: u8,
        name: Key,
        seed: Option<u64>,
        out_null: bool,
        err: ErrOut,
    },
    // Single-policy handles.
    Breaker(BreakerOp),
    Limiter(LimiterOp),
    Bulkhead(BulkheadOp),
    Retry(RetryOp),
    Health(HealthOp),
    // Validation and the static names.
    Validate {
        target: u8,
        cfg: Cfg,
        err: ErrOut,
    },
    Names {
        status: i32,
        kind: u32,
        state: u32,
        event: u32,
        health: u32,
        check: u32,
    },
    // The host's clock.
    Time(Tick),
    At(When),
}

fuzz_target!(|case: Case| {
    once_check_presets(&[
        (0, POLICY_FILES),
        (1, PIPELINES),
        (2, BREAKERS),
        (5, BULKHEADS),
        (6, LIMITERS),
        (3, RETRIES),
        (4, TIMEOUTS),
        (7, KEYED_LIMITERS),
        (8, HEALTHS),
    ]);
    let mut h = Harness {
        // Near 0, below the tw_now_ns() clock the blocking helpers read (see `execute`).
        now: MS,
        pipes: Vec::new(),
        policies: Vec::new(),
        seen: 0,
        breakers: Vec::new(),
        permits: Vec::new(),
        snapshots: Vec::new(),
        limiters: Vec::new(),
        keyed: Vec::new(),
        bulkheads: Vec::new(),
        tickets: Vec::new(),
        retries: Vec::new(),
        healths: Vec::new(),
        health_seen: 0,
    };
    for op in case.ops.iter().take(200) {
        h.apply(op);
    }
    h.finish();
});

impl Harness {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::NewPipeline {
                cfg,
                seed,
                out_null,
                err,
            } => self.new_pipeline(cfg, *seed, *out_null, *err),
            Op::Begin {
                p,
                deadline,
                out_null,
                err,
            } => self.begin(*p, None, *deadline, *out_null, *err),
            Op::BeginKeyed {
                p,
                key,
                deadline,
                out_null,
                err,
            } => self.begin(*p, Some(key), *deadline, *out_null, *err),
            Op::PollAll(p) => self.poll_all(*p),
            Op::Poll {
                p,
                call,
                out_null,
                err,
            } => self.poll(*p, *call, *out_null, *err),
            Op::Report {
                p,
                call,
                report,
                err,
            } => self.report(*p, *call, *report, *err),
            Op::End {
                p,
                call,
                cancel,
                err,
            } => self.end(*p, *call, *cancel, *err),
            Op::Reconfigure { p, cfg, err } => self.reconfigure(*p, cfg, *err),
            Op::PollWake {
                p,
                call_null,
                woke_null,
                err,
            } => self.poll_wake(*p, *call_null, *woke_null, *err),
            Op::PollEvent { p, out_null, err } => self.poll_event(*p, *out_null, *err),
            Op::PollTimeout {
                p,
                has_null,
                at_null,
                err,
            } => self.poll_timeout(*p, *has_null, *at_null, *err),
            Op::Command { p, command, err } => self.command(*p, *command, *err),
            Op::BreakerState {
                p,
                key,
                out_null,
                err,
            } => self.breaker_state(*p, key.as_ref(), *out_null, *err),
            Op::StatsJson { p, buf, err } => self.stats_json(*p, *buf, *err),
            Op::Prometheus { p, name, buf, err } => self.prometheus(*p, name, *buf, *err),
            Op::SetListener { p, on, err } => self.set_listener(*p, *on, *err),
            Op::AddFallback { p, returns, err } => self.add_fallback(*p, *returns, *err),
            Op::ClearFallbacks { p, err } => self.clear_fallbacks(*p, *err),
            Op::Execute {
                p,
                key,
                steps,
                null_fn,
                deadline,
                failure_null,
                err,
            } => self.execute(
                *p,
                key.as_ref(),
                steps,
                *null_fn,
                *deadline,
                *failure_null,
                *err,
            ),
            Op::NewPolicies { cfg, out_null, err } => self.new_policies(cfg, *out_null, *err),
            Op::PoliciesCount { f, out_null, err } => {
                self.policies_count(*f, *out_null, *err);
            }
            Op::PoliciesName { f, index, buf, err } => self.policies_name(*f, *index, *buf, *err),
            Op::PoliciesPipeline {
                f,
                name,
                seed,
                out_null,
                err,
            } => self.policies_pipeline(*f, name, *seed, *out_null, *err),
            Op::Breaker(op) => self.breaker_op(op),
            Op::Limiter(op) => self.limiter_op(op),
            Op::Bulkhead(op) => self.bulkhead_op(op),
            Op::Retry(op) => self.retry_op(op),
            Op::Health(op) => self.health_op(op),
            Op::Validate { target, cfg, err } => {
                let target = if *target < 200 {
                    u32::from(*target % 10)
                } else {
                    u32::from(*target) << 20 | u32::from(*target)
                };
                validate(target, cfg, *err)
            }
            Op::Names {
                status,
                kind,
                state,
                event,
                health,
                check,
            } => names(*status, *kind, *state, *event, *health, *check),
            Op::Time(t) => self.now = t.apply(self.now),
            Op::At(w) => self.now = w.at(self.now),
        }
    }
}

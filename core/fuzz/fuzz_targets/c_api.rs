//! The C API (`bindings-c`, `tripwire.h`) driven from Rust through its `extern "C"` functions
//! with arbitrary arguments: configs from arbitrary bytes (and NULL), call handles that are
//! stale, never issued or already ended, times at 0, `u64::MAX` and going backwards, NULL
//! handles and out-pointers, and `tw_error **` slots that are NULL, empty or already holding
//! an error.
//!
//! Invariants, after every call:
//! - no function returns `TW_STATUS_PANIC` or `TW_STATUS_POISONED` (a caught panic is a bug);
//! - statuses are documented values, and only the blocking helpers return a failed call's
//!   status (`100 + kind`);
//! - a failure fills an empty `tw_error *` slot with an error of the same status and a
//!   non-empty message (the thread's last error agrees); success leaves it NULL; a slot that
//!   already holds an error is never overwritten;
//! - the pipeline's stats add up: `calls == succeeded + Σfailed + cancelled + in_flight`, and
//!   `in_flight` is the number of calls begun and not yet ended (by DONE, FAIL or end).
//!
//! Every handle is freed exactly once at the end.
#![no_main]

use std::ptr::null_mut;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tripwire::error::tw_status;
use tripwire::pipeline::*;

mod c_api_support;
use c_api_support::*;

/// The presets a `Cfg::Preset` picks from for a pipeline.
const PIPELINES: &[&str] = &[
    "{}",
    r#"{"retry": {"maxRetries": 2, "backoff": {"type": "constant", "base": "1us", "jitter": "none"}}}"#,
    r#"{"circuitBreaker": {"trip": {"consecutiveFailures": 2}, "openDuration": "50ms", "halfOpen": {"permittedCalls": 1}}}"#,
    r#"{"rateLimit": {"rate": "10/s", "burst": 2, "maxWait": 0}}"#,
    r#"{"bulkhead": {"maxConcurrent": 1, "maxQueue": 2, "maxWait": "10ms"}}"#,
    r#"{"rateLimit": {"rate": "100/s", "burst": 3, "maxWait": "20ms"}, "bulkhead": {"maxConcurrent": 2, "maxQueue": 1}, "circuitBreaker": {"trip": {"failureRate": 0.5, "window": {"calls": 4}, "minimumCalls": 2}, "openDuration": "20ms"}, "retry": {"maxRetries": 3, "backoff": {"type": "exponential", "base": "2ms", "jitter": "full"}, "budget": {"maxTokens": 2, "tokenRatio": 0.5}, "pushback": "pipeline"}, "timeout": {"perAttempt": "5ms", "overall": "40ms"}, "fallback": {"on": ["circuitOpen", "retriesExhausted"]}}"#,
    r#"{"keyed": {"maxKeys": 2, "idleExpiry": "1s"}, "circuitBreaker": {"trip": {"consecutiveFailures": 1}, "openDuration": "5ms"}, "rateLimit": {"rate": "5/s", "burst": 1}}"#,
    r#"{"retry": {"maxRetries": 5, "backoff": {"type": "linear", "base": "3ms", "jitter": "decorrelated"}, "maxElapsed": "15ms"}, "timeout": {"overall": "30ms"}}"#,
];

#[derive(Arbitrary, Debug)]
struct Case {
    seed: u64,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
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
    StatsJson {
        p: u8,
        buf: Buf,
        err: ErrOut,
    },
    Time(Tick),
    At(When),
}

fuzz_target!(|case: Case| {
    once_check_presets(&[(1, PIPELINES)]);
    let mut h = Harness::new(case.seed);
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
            } => {
                let bytes = cfg.bytes(PIPELINES);
                let (ptr, len) = raw(&bytes);
                let mut out: *mut tw_pipeline = null_mut();
                let out_p = if *out_null {
                    null_mut()
                } else {
                    &mut out as *mut _
                };
                let st = with_err(*err, "tw_pipeline_new", |e| unsafe {
                    match seed {
                        Some(s) => tw_pipeline_new_with_seed(ptr, len, *s, out_p, e),
                        None => tw_pipeline_new(ptr, len, out_p, e),
                    }
                });
                assert_eq!(
                    st == tw_status::Ok,
                    !out.is_null(),
                    "out set exactly on success"
                );
                if !out.is_null() {
                    self.pipes.push(Pipe::new(out));
                }
            }
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
            Op::Reconfigure { p, cfg, err } => {
                let (ptr, i) = self.pipe(*p);
                let bytes = cfg.bytes(PIPELINES);
                let (json, len) = raw(&bytes);
                let now = self.now;
                with_err(*err, "tw_pipeline_reconfigure", |e| unsafe {
                    tw_pipeline_reconfigure(ptr, json, len, now, e)
                });
                self.check_pipe(i);
            }
            Op::StatsJson { p, buf, err } => {
                let (ptr, i) = self.pipe(*p);
                let mut f = |b, c, n, e| unsafe { tw_pipeline_stats_json(ptr, b, c, n, e) };
                if let Some(text) = text_out("tw_pipeline_stats_json", *buf, *err, &mut f) {
                    let v: serde_json::Value = serde_json::from_str(&text).expect("stats JSON");
                    assert!(v.get("calls").is_some(), "stats JSON has calls: {text}");
                }
                self.check_pipe(i);
            }
            Op::Time(t) => self.now = t.apply(self.now),
            Op::At(w) => self.now = w.at(self.now),
        }
    }
}

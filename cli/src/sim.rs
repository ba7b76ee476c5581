//! The simulator: discrete events in virtual time (no sleeping, no threads) driving the real
//! core [`Pipeline`] through its step protocol, exactly as a binding does, against a modelled
//! downstream or a recorded trace.
//!
//! One run is one pipeline config against one source. The same arrivals (one seeded stream)
//! and the same downstream randomness (another) are replayed for every config, so the runs
//! differ only by what the policy does.
//!
//! The host loop per call: `begin`; `poll` → `Attempt` sends a request to the downstream and
//! arms the attempt's deadline (the policy's, or the HTTP client's own `clients.timeout`,
//! whichever is first); a reply, or the deadline, is `report`ed (`timeout` for the policy's
//! deadline, a retryable failure for the client's); `Sleep` and `Park` arm a wake-up;
//! `Done`/`Fail` end the call. After every input the events and wakes are drained.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use serde::Serialize;
use tripwire_core::pipeline::{
    CallId, Outcome, Pipeline, PipelineConfig, PipelineStats, Report, Step,
};
use tripwire_core::{BreakerState, EventKind, Instant, Rng};

use crate::scenario::{Mode, Scenario, Trace, TraceOutcome, MS, SEC};

/// What the simulator replays.
#[derive(Clone, Debug)]
pub enum Source {
    /// A modelled downstream and client population.
    Model(Scenario),
    /// A recorded trace, replayed open-loop: the downstream's answers come from the recording,
    /// so extra load (retries) does not make them worse.
    Trace(Trace),
}

impl Source {
    /// A name for tables.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Source::Model(s) => &s.name,
            Source::Trace(t) => &t.name,
        }
    }

    /// Virtual time during which calls arrive, in nanoseconds.
    #[must_use]
    pub fn duration(&self) -> u64 {
        match self {
            Source::Model(s) => s.duration.nanos(),
            Source::Trace(t) => {
                let last = t.rows[t.rows.len() - 1].timestamp_ms - t.origin_ms();
                ms_to_nanos(last).saturating_add(1).max(SEC)
            }
        }
    }

    /// When the trouble ends, for the recovery measure (models only).
    #[must_use]
    pub fn disruption(&self) -> Option<(u64, u64)> {
        match self {
            Source::Model(s) => s.disruption(),
            Source::Trace(_) => None,
        }
    }

    /// The call start times, in nanoseconds, from the arrival stream of `seed`.
    #[must_use]
    pub fn arrivals(&self, seed: u64) -> Vec<u64> {
        match self {
            Source::Model(s) => poisson_arrivals(s, seed),
            Source::Trace(t) => {
                let origin = t.origin_ms();
                t.rows
                    .iter()
                    .map(|r| ms_to_nanos(r.timestamp_ms - origin))
                    .collect()
            }
        }
    }
}

fn ms_to_nanos(ms: f64) -> u64 {
    tripwire_core::time::millis_f64_to_nanos(ms)
}

/// A uniform float in [0, 1) from 53 random bits.
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw (Box-Muller, one value per two uniforms).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - unit(rng); // (0, 1]
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()
}

/// A non-homogeneous Poisson process, exact per piece: the gap is drawn at the current rate
/// and redrawn from a rate change it would cross (the process is memoryless).
fn poisson_arrivals(s: &Scenario, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed ^ 0xA441_7A15);
    let end = s.duration.nanos();
    let mut changes: Vec<u64> = s
        .clients
        .phases
        .iter()
        .flat_map(|p| [p.from.nanos(), p.to.nanos()])
        .filter(|t| *t < end)
        .collect();
    changes.push(end);
    changes.sort_unstable();
    let mut out = Vec::with_capacity((s.clients.rate * end as f64 / SEC as f64) as usize + 16);
    let mut t = 0u64;
    while t < end {
        let next_change = changes.iter().copied().find(|c| *c > t).unwrap_or(end);
        let rate = s.rate_at(t);
        if rate <= 0.0 {
            t = next_change;
            continue;
        }
        let gap = -(1.0 - unit(&mut rng)).ln() / rate * SEC as f64;
        let at = t.saturating_add(gap as u64);
        if at >= next_change {
            t = next_change;
            continue;
        }
        out.push(at);
        t = at;
    }
    out
}

/// How the downstream answered an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Ok,
    Error,
    Ignored,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// The downstream answers the attempt `token` of call `slot`.
    Reply {
        slot: usize,
        token: u64,
        answer: Answer,
    },
    /// A worker finishes serving a request (whoever asked for it).
    Served {
        slot: usize,
        token: u64,
        answer: Answer,
    },
    /// The attempt's deadline: cancel it.
    Deadline { slot: usize, token: u64 },
    /// A Sleep or Park ends.
    Wake { slot: usize, token: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Queued {
    slot: usize,
    token: u64,
}

/// The modelled downstream: workers, a bounded FIFO queue, windows of trouble.
#[derive(Debug)]
struct Server<'a> {
    scenario: &'a Scenario,
    workers: u32,
    busy: u32,
    queue: VecDeque<Queued>,
    queue_cap: usize,
    mu: f64,
    sigma: f64,
    rng: Rng,
}

/// The time a refusal takes (connection refused, a 503 from a full queue).
const REFUSE_NANOS: u64 = MS;

impl<'a> Server<'a> {
    fn new(scenario: &'a Scenario, seed: u64) -> Server<'a> {
        let d = &scenario.downstream;
        let median = d.latency.median.nanos() as f64;
        let p99 = d.latency.p99.nanos() as f64;
        // z(0.99) = 2.3263: p99 = median · e^(2.3263 σ).
        let sigma = (p99 / median).ln() / 2.326_347_874;
        let mean_secs = median * (sigma * sigma / 2.0).exp() / SEC as f64;
        let workers = (d.capacity * mean_secs).ceil().clamp(1.0, 1e6) as u32;
        let queue_cap = d
            .queue
            .map_or_else(|| d.capacity.ceil() as usize, |q| q as usize);
        Server {
            scenario,
            workers,
            busy: 0,
            queue: VecDeque::with_capacity(queue_cap.min(1 << 16)),
            queue_cap,
            mu: median.ln(),
            sigma,
            rng: Rng::new(seed ^ 0x5E21_7E5D),
        }
    }

    /// A request arrives at `now`; returns the event to schedule, if any.
    fn request(&mut self, now: u64, slot: usize, token: u64) -> Option<(u64, Ev)> {
        match self.scenario.window_at(now).map(|w| w.mode) {
            Some(Mode::Down) => {
                return Some((
                    now + REFUSE_NANOS,
                    Ev::Reply {
                        slot,
                        token,
                        answer: Answer::Error,
                    },
                ))
            }
            Some(Mode::Unreachable) => return None,
            Some(Mode::Degraded) | None => {}
        }
        if self.busy < self.workers {
            return Some(self.serve(now, slot, token));
        }
        if self.queue.len() < self.queue_cap {
            self.queue.push_back(Queued { slot, token });
            return None;
        }
        Some((
            now + REFUSE_NANOS,
            Ev::Reply {
                slot,
                token,
                answer: Answer::Error,
            },
        ))
    }

    fn serve(&mut self, now: u64, slot: usize, token: u64) -> (u64, Ev) {
        self.busy += 1;
        let window = self.scenario.window_at(now);
        let factor = window.map_or(1.0, |w| w.latency_factor);
        let p_fail = window
            .and_then(|w| w.failure_rate)
            .unwrap_or(self.scenario.downstream.failure_rate);
        let z = normal(&mut self.rng);
        let service = ((self.mu + self.sigma * z).exp() * factor).clamp(1.0, 3600.0 * SEC as f64);
        let answer = if unit(&mut self.rng) < p_fail {
            Answer::Error
        } else {
            Answer::Ok
        };
        (
            now + service as u64,
            Ev::Served {
                slot,
                token,
                answer,
            },
        )
    }

    /// A worker finished at `now`: take the next queued request. Requests queued when the
    /// service went down are refused or lost with it.
    fn next(&mut self, now: u64, out: &mut Vec<(u64, Ev)>) {
        self.busy -= 1;
        while let Some(q) = self.queue.pop_front() {
            match self.scenario.window_at(now).map(|w| w.mode) {
                Some(Mode::Down) => out.push((
                    now + REFUSE_NANOS,
                    Ev::Reply {
                        slot: q.slot,
                        token: q.token,
                        answer: Answer::Error,
                    },
                )),
                Some(Mode::Unreachable) => {}
                _ => {
                    out.push(self.serve(now, q.slot, q.token));
                    return;
                }
            }
        }
    }
}

/// The recorded trace as a downstream: a call's first attempt gets its own recorded answer;
/// a retry gets the answer recorded nearest after it (the trace samples the downstream's
/// health over time).
#[derive(Debug)]
struct Replay<'a> {
    trace: &'a Trace,
}

impl Replay<'_> {
    fn request(&self, now: u64, row: Option<usize>, slot: usize, token: u64) -> (u64, Ev) {
        let rows = &self.trace.rows;
        let i = row.unwrap_or_else(|| {
            let at = self.trace.origin_ms() + now as f64 / MS as f64;
            rows.partition_point(|r| r.timestamp_ms < at)
                .min(rows.len() - 1)
        });
        let r = rows[i];
        let answer = match r.outcome {
            TraceOutcome::Success => Answer::Ok,
            // A recorded timeout answers nothing for its latency; then the client gave up.
            TraceOutcome::Failure | TraceOutcome::Timeout => Answer::Error,
            TraceOutcome::Ignored => Answer::Ignored,
        };
        (
            now + ms_to_nanos(r.latency_ms),
            Ev::Reply {
                slot,
                token,
                answer,
            },
        )
    }
}

#[derive(Debug)]
enum Downstream<'a> {
    Model(Server<'a>),
    Replay(Replay<'a>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    /// An attempt is out; `policy_deadline` says whose deadline is armed.
    Running {
        token: u64,
        policy_deadline: bool,
    },
    /// Sleeping or parked until a wake with this token (or `poll_wake`).
    Waiting {
        token: u64,
        parked: bool,
    },
    Free,
}

#[derive(Clone, Copy, Debug)]
struct SimCall {
    id: CallId,
    start: u64,
    /// The trace row of the call's own first attempt.
    row: Option<usize>,
    attempts: u32,
    state: CallState,
}

/// One second of a run, counted when calls end (what the caller sees, when it sees it) and
/// when attempts start (what the downstream receives).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Second {
    /// The second (virtual time since the start).
    pub t: u64,
    /// Calls that ended with the function's value.
    pub succeeded: u64,
    /// Calls that ended in an error after reaching the downstream.
    pub failed: u64,
    /// Calls refused by the policy before any attempt (fast).
    pub rejected: u64,
    /// Attempts sent to the downstream.
    pub attempts: u64,
    /// Calls in flight at the end of the second.
    pub in_flight: u64,
    /// Median latency of the calls that ended in this second, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the calls that ended in this second, ms.
    pub p99_ms: Option<f64>,
    #[serde(skip)]
    latencies: Vec<u64>,
}

/// A breaker state change.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// When, in ms of virtual time.
    pub at_ms: f64,
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
}

/// The headline numbers of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Calls begun.
    pub calls: u64,
    /// Calls that got the function's value.
    pub succeeded: u64,
    /// Calls that failed after reaching the downstream.
    pub failed: u64,
    /// Calls refused by the policy before any attempt: fast, and no load on the downstream.
    pub rejected_fast: u64,
    /// Failed calls the host's fallback would serve (`fallback.on`).
    pub fallbacks: u64,
    /// `succeeded / calls`.
    pub success_rate: f64,
    /// Median time a caller waited (every call, whatever its outcome), ms.
    pub p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub p99_ms: f64,
    /// Requests that reached the downstream.
    pub downstream_attempts: u64,
    /// `downstream_attempts / calls`: how much the policy multiplies (or sheds) load.
    pub amplification: f64,
    /// After the trouble ends, how long until calls succeed again as before it; `None` when
    /// the scenario has no trouble or the run never recovers.
    pub recovery_ms: Option<f64>,
    /// Breaker state changes.
    pub breaker_transitions: u64,
    /// The most calls in flight at once (the caller's threads, sockets, memory).
    pub peak_in_flight: u64,
    /// Failed calls by error kind.
    pub failures: BTreeMap<String, u64>,
}

/// A finished run.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// What was run (`no policy`, `naive retries`, the policy's name).
    pub label: String,
    /// The pipeline config that was driven.
    pub config: PipelineConfig,
    /// Headline numbers.
    pub summary: Summary,
    /// Per second.
    pub timeline: Vec<Second>,
    /// Breaker state changes, in order.
    pub breaker: Vec<Transition>,
    /// The core's own counters at the end.
    pub pipeline_stats: PipelineStats,
}

/// The pipeline config of the "no policy" baseline: nothing between caller and downstream.
#[must_use]
pub fn no_policy() -> PipelineConfig {
    PipelineConfig::default()
}

/// The "naive retries" baseline: what many clients do by hand, 3 immediate retries and no
/// breaker, budget or timeout of their own.
#[must_use]
pub fn naive_retries() -> PipelineConfig {
    PipelineConfig::from_json(
        r#"{"retry": {"maxRetries": 3, "backoff": {"type": "constant", "base": 0, "max": 0, "jitter": "none"}}}"#,
    )
    .expect("the naive retry config is valid")
}

/// Run `config` against `source`. `progress` is called with the virtual time reached, about
/// once per virtual second.
pub fn run(
    label: &str,
    config: &PipelineConfig,
    source: &Source,
    seed: u64,
    progress: &mut dyn FnMut(u64),
) -> Run {
    let pipeline = Pipeline::new(config.clone(), seed).expect("the config was validated");
    let arrivals = source.arrivals(seed);
    let downstream = match source {
        Source::Model(s) => Downstream::Model(Server::new(s, seed)),
        Source::Trace(t) => Downstream::Replay(Replay { trace: t }),
    };
    let client_timeout = match source {
        Source::Model(s) => s.clients.timeout.nanos(),
        // Recorded latencies already include the recording client's timeouts.
        Source::Trace(_) => 3600 * SEC,
    };
    let mut engine = Engine {
        now: 0,
        seq: 0,
        heap: BinaryHeap::with_capacity(1024),
        pipeline,
        store: tripwire_core::store::MemoryStore::new(),
        downstream,
        client_timeout,
        calls: Vec::with_capacity(1024),
        free: Vec::new(),
        by_id: BTreeMap::new(),
        next_token: 1,
        woken: VecDeque::new(),
        scratch: Vec::new(),
        rec: Recorder::default(),
    };
    let mut next_arrival = 0;
    let mut reported_second = 0;
    loop {
        let heap_next = engine.heap.peek().map(|Reverse((t, _, _))| *t);
        let arrival_next = arrivals.get(next_arrival).copied();
        let (t, is_arrival) = match (heap_next, arrival_next) {
            (None, None) => break,
            (Some(h), Some(a)) if a <= h => (a, true),
            (None, Some(a)) => (a, true),
            (Some(h), _) => (h, false),
        };
        engine.now = t;
        while t / SEC > reported_second {
            engine.rec.in_flight_at(reported_second);
            reported_second += 1;
            progress(reported_second * SEC);
        }
        if is_arrival {
            let row = matches!(source, Source::Trace(_)).then_some(next_arrival);
            next_arrival += 1;
            engine.arrive(row);
        } else {
            let Reverse((_, _, ev)) = engine.heap.pop().expect("peeked");
            engine.handle(ev);
        }
    }
    progress(source.duration());
    let stats = engine.pipeline.stats();
    let Engine { rec, .. } = engine;
    rec.finish(label, config.clone(), source, stats)
}

struct Engine<'a> {
    now: u64,
    seq: u64,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    pipeline: Pipeline,
    /// A pipeline with a `store` asks it on every call: answered in memory, instantly, as
    /// the script would (one simulated instance alone on the shared limit).
    store: tripwire_core::store::MemoryStore,
    downstream: Downstream<'a>,
    client_timeout: u64,
    calls: Vec<SimCall>,
    free: Vec<usize>,
    by_id: BTreeMap<u64, usize>,
    next_token: u64,
    woken: VecDeque<usize>,
    scratch: Vec<(u64, Ev)>,
    rec: Recorder,
}

impl Engine<'_> {
    fn at(&self) -> Instant {
        Instant::from_nanos(self.now)
    }

    fn schedule(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, ev)));
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn arrive(&mut self, row: Option<usize>) {
        let id = self.pipeline.begin(self.at(), None);
        let call = SimCall {
            id,
            start: self.now,
            row,
            attempts: 0,
            state: CallState::Waiting {
                token: 0,
                parked: false,
            },
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.calls[s] = call;
                s
            }
            None => {
                self.calls.push(call);
                self.calls.len() - 1
            }
        };
        self.by_id.insert(id.to_raw(), slot);
        self.rec.begin();
        self.drive(slot);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Served {
                slot,
                token,
                answer,
            } => {
                let mut out = std::mem::take(&mut self.scratch);
                if let Downstream::Model(server) = &mut self.downstream {
                    server.next(self.now, &mut out);
                }
                for (t, e) in out.drain(..) {
                    self.schedule(t, e);
                }
                self.scratch = out;
                self.answer(slot, token, answer);
            }
            Ev::Reply {
                slot,
                token,
                answer,
            } => self.answer(slot, token, answer),
            Ev::Deadline { slot, token } => {
                if let CallState::Running {
                    token: t,
                    policy_deadline,
                } = self.calls[slot].state
                {
                    if t == token {
                        // The host cancels the attempt: the policy's deadline is a `timeout`,
                        // the HTTP client's own is a network error the predicate retries.
                        let report = if policy_deadline {
                            Report::TIMEOUT
                        } else {
                            Report::failure(true, None)
                        };
                        self.report(slot, report);
                    }
                }
            }
            Ev::Wake { slot, token } => {
                // Stale when the call was woken (or moved on) before its timer fired.
                if matches!(self.calls[slot].state, CallState::Waiting { token: t, .. } if t == token)
                {
                    self.drive(slot);
                }
            }
        }
    }

    fn answer(&mut self, slot: usize, token: u64, answer: Answer) {
        if let CallState::Running { token: t, .. } = self.calls[slot].state {
            if t == token {
                let report = match answer {
                    Answer::Ok => Report::SUCCESS,
                    Answer::Error => Report::failure(true, None),
                    Answer::Ignored => Report {
                        outcome: Outcome::Ignored,
                        retryable: false,
                        retry_after: None,
                    },
                };
                self.report(slot, report);
            }
        }
    }

    fn report(&mut self, slot: usize, report: Report) {
        let id = self.calls[slot].id;
        self.pipeline
            .report(id, report, self.at())
            .expect("an attempt is in flight");
        self.calls[slot].state = CallState::Waiting {
            token: 0,
            parked: false,
        };
        self.drive(slot);
    }

    /// Poll `slot` and act on its step; then drain events and wakes, driving woken calls.
    fn drive(&mut self, slot: usize) {
        self.step(slot);
        loop {
            self.drain_events();
            while let Some(id) = self.pipeline.poll_wake() {
                if let Some(&s) = self.by_id.get(&id.to_raw()) {
                    self.woken.push_back(s);
                }
            }
            let Some(s) = self.woken.pop_front() else {
                break;
            };
            if matches!(self.calls[s].state, CallState::Waiting { parked: true, .. }) {
                self.step(s);
            }
        }
    }

    fn step(&mut self, slot: usize) {
        let now = self.at();
        let id = self.calls[slot].id;
        let step = self.pipeline.poll(id, now).expect("a live call");
        match step {
            Step::Attempt { deadline, .. } => {
                let token = self.token();
                let client = self.now.saturating_add(self.client_timeout);
                let (until, policy_deadline) = match deadline {
                    Some(d) if d.as_nanos() <= client => (d.as_nanos(), true),
                    _ => (client, false),
                };
                let c = &mut self.calls[slot];
                c.state = CallState::Running {
                    token,
                    policy_deadline,
                };
                let first = c.attempts == 0;
                c.attempts += 1;
                let row = c.row.filter(|_| first);
                self.rec.attempt(self.now);
                let reply = match &mut self.downstream {
                    Downstream::Model(server) => server.request(self.now, slot, token),
                    Downstream::Replay(replay) => Some(replay.request(self.now, row, slot, token)),
                };
                if let Some((t, ev)) = reply {
                    self.schedule(t, ev);
                }
                self.schedule(until, Ev::Deadline { slot, token });
            }
            Step::Sleep { until } => {
                let token = self.token();
                self.calls[slot].state = CallState::Waiting {
                    token,
                    parked: false,
                };
                self.schedule(until.as_nanos(), Ev::Wake { slot, token });
            }
            Step::Park { until, .. } => {
                let token = self.token();
                self.calls[slot].state = CallState::Waiting {
                    token,
                    parked: true,
                };
                if let Some(u) = until {
                    self.schedule(u.as_nanos(), Ev::Wake { slot, token });
                }
            }
            Step::Store { request, .. } => {
                let reply = match self.pipeline.store_request(request) {
                    Some(r) => self.store.run(r, now),
                    None => tripwire_core::StoreReply::Unavailable,
                };
                self.pipeline
                    .report_store(id, reply, now)
                    .expect("the call waits for this reply");
                self.step(slot);
            }
            Step::Done { .. } => self.finish(slot, None),
            Step::Fail(f) => self.finish(slot, Some(f)),
            other => panic!("a step this simulator does not know: {other:?}"),
        }
    }

    fn finish(&mut self, slot: usize, failure: Option<tripwire_core::pipeline::Failure>) {
        let c = self.calls[slot];
        self.by_id.remove(&c.id.to_raw());
        self.calls[slot].state = CallState::Free;
        self.free.push(slot);
        self.rec.end(c.start, self.now, c.attempts, failure);
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.pipeline.poll_event() {
            if let EventKind::StateChanged { from, to } = e.kind {
                self.rec.breaker.push(Transition {
                    at_ms: e.at.as_millis_f64(),
                    from,
                    to,
                });
            }
        }
    }
}

#[derive(Debug, Default)]
struct Recorder {
    seconds: Vec<Second>,
    latencies: Vec<u64>,
    /// (start, succeeded) of every call, for the recovery measure.
    starts: Vec<(u64, bool)>,
    breaker: Vec<Transition>,
    summary: Summary,
    in_flight: u64,
}

impl Recorder {
    fn second(&mut self, t: u64) -> &mut Second {
        let i = (t / SEC) as usize;
        while self.seconds.len() <= i {
            let t = self.seconds.len() as u64;
            self.seconds.push(Second {
                t,
                ..Second::default()
            });
        }
        &mut self.seconds[i]
    }

    fn begin(&mut self) {
        self.summary.calls += 1;
        self.in_flight += 1;
        self.summary.peak_in_flight = self.summary.peak_in_flight.max(self.in_flight);
    }

    fn in_flight_at(&mut self, second: u64) {
        let n = self.in_flight;
        self.second(second * SEC).in_flight = n;
    }

    fn attempt(&mut self, now: u64) {
        self.summary.downstream_attempts += 1;
        self.second(now).attempts += 1;
    }

    /// A call ended; `sent` is how many of its attempts reached the downstream (a refusal by
    /// a policy inside `retry` counts as an attempt for the core, but sent nothing).
    fn end(
        &mut self,
        start: u64,
        now: u64,
        sent: u32,
        failure: Option<tripwire_core::pipeline::Failure>,
    ) {
        self.in_flight -= 1;
        let latency = now - start;
        self.latencies.push(latency);
        let ok = failure.is_none();
        self.starts.push((start, ok));
        let s = &mut self.summary;
        match failure {
            None => s.succeeded += 1,
            Some(f) => {
                if sent == 0 {
                    s.rejected_fast += 1;
                } else {
                    s.failed += 1;
                }
                if f.fallback {
                    s.fallbacks += 1;
                }
                *s.failures.entry(f.kind.as_str().to_owned()).or_default() += 1;
            }
        }
        let sec = self.second(now);
        match failure {
            None => sec.succeeded += 1,
            Some(_) if sent == 0 => sec.rejected += 1,
            Some(_) => sec.failed += 1,
        }
        sec.latencies.push(latency);
    }

    fn finish(
        mut self,
        label: &str,
        config: PipelineConfig,
        source: &Source,
        pipeline_stats: PipelineStats,
    ) -> Run {
        let mut summary = std::mem::take(&mut self.summary);
        summary.success_rate = ratio(summary.succeeded, summary.calls);
        summary.amplification = ratio(summary.downstream_attempts, summary.calls);
        self.latencies.sort_unstable();
        summary.p50_ms = percentile_ms(&self.latencies, 0.50).unwrap_or(0.0);
        summary.p99_ms = percentile_ms(&self.latencies, 0.99).unwrap_or(0.0);
        summary.breaker_transitions = self.breaker.len() as u64;
        summary.recovery_ms = source
            .disruption()
            .and_then(|(from, to)| recovery(&mut self.starts, from, to, source.duration()));
        // The timeline covers the arrival period (calls still ending afterwards are counted
        // in the summary).
        let seconds = source.duration().div_ceil(SEC) as usize;
        self.second(source.duration().saturating_sub(1));
        self.seconds.truncate(seconds);
        for s in &mut self.seconds {
            s.latencies.sort_unstable();
            s.p50_ms = percentile_ms(&s.latencies, 0.50);
            s.p99_ms = percentile_ms(&s.latencies, 0.99);
            s.latencies = Vec::new();
        }
        Run {
            label: label.to_owned(),
            config,
            summary,
            timeline: self.seconds,
            breaker: self.breaker,
            pipeline_stats,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in ms.
fn percentile_ms(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / MS as f64)
}

/// Recovery after trouble spanning `[from, to)`: calls are grouped by start time in slices
/// of half a second from `to`; a slice is bad when its success rate is more than 5 points
/// below the rate before the trouble. The run has recovered at the start of the first slice
/// with calls after the last bad one (0 when none is bad); `None` if no call follows it.
fn recovery(starts: &mut [(u64, bool)], from: u64, to: u64, end: u64) -> Option<f64> {
    const SLICE: u64 = SEC / 2;
    starts.sort_unstable();
    let before: Vec<bool> = starts
        .iter()
        .take_while(|(t, _)| *t < from)
        .map(|(_, ok)| *ok)
        .collect();
    let baseline = if before.is_empty() {
        1.0
    } else {
        before.iter().filter(|ok| **ok).count() as f64 / before.len() as f64
    };
    let threshold = baseline - 0.05;
    let slices = end.saturating_sub(to).div_ceil(SLICE) as usize;
    if slices == 0 {
        return None;
    }
    let mut ok = vec![0u64; slices];
    let mut all = vec![0u64; slices];
    for &(t, success) in starts.iter().filter(|(t, _)| *t >= to && *t < end) {
        let i = ((t - to) / SLICE) as usize;
        all[i] += 1;
        ok[i] += u64::from(success);
    }
    let bad = |i: usize| all[i] > 0 && (ok[i] as f64 / all[i] as f64) < threshold;
    match (0..slices).rev().find(|&i| bad(i)) {
        None => Some(0.0),
        // Recovered where the first slice with calls after the last bad one starts.
        Some(last_bad) => (last_bad + 1..slices)
            .find(|&i| all[i] > 0)
            .map(|i| (i as u64 * SLICE) as f64 / MS as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::builtin;

    #[test]
    fn arrivals_follow_the_rate_and_phases() {
        let s = builtin("overload").unwrap();
        let a = Source::Model(s).arrivals(1);
        let count = |from: u64, to: u64| a.iter().filter(|t| (from..to).contains(*t)).count();
        let base = count(0, 15 * SEC) as f64 / 15.0;
        let spike = count(15 * SEC, 30 * SEC) as f64 / 15.0;
        assert!((90.0..110.0).contains(&base), "{base}");
        assert!((280.0..320.0).contains(&spike), "{spike}");
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn lognormal_service_times_match_median_and_p99() {
        let s = builtin("outage").unwrap();
        let mut server = Server::new(&s, 3);
        let mut v: Vec<u64> = (0..20_000)
            .map(|_| {
                let (t, _) = server.serve(0, 0, 0);
                server.busy -= 1;
                t
            })
            .collect();
        v.sort_unstable();
        let med = percentile_ms(&v, 0.5).unwrap();
        let p99 = percentile_ms(&v, 0.99).unwrap();
        assert!((37.0..43.0).contains(&med), "{med}");
        assert!((220.0..280.0).contains(&p99), "{p99}");
    }

    #[test]
    fn recovery_is_the_first_slice_of_a_good_tail() {
        let mut starts = vec![(0, true), (SEC, true)];
        // Trouble [2s, 4s); bad slices until 5s, good afterwards.
        for i in 0..12 {
            let t = 2 * SEC + i * SEC / 2;
            starts.push((t, t >= 5 * SEC));
        }
        assert_eq!(
            recovery(&mut starts, 2 * SEC, 4 * SEC, 8 * SEC),
            Some(1000.0)
        );
        let mut never = vec![(0, true), (5 * SEC, false)];
        assert_eq!(recovery(&mut never, 2 * SEC, 4 * SEC, 6 * SEC), None);
        let mut at_once = vec![(0, true), (4 * SEC, true), (5 * SEC, true)];
        assert_eq!(recovery(&mut at_once, 2 * SEC, 4 * SEC, 6 * SEC), Some(0.0));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * MS).collect();
        assert_eq!(percentile_ms(&v, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&v, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }
}

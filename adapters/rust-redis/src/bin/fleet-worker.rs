//! The Rust fleet worker of `tests/fleet/README.md`: `C` threads share one `SharedLimiter`
//! and each runs its requests through its own Redis connection. With `--mode breaker` the
//! threads share one `Pipeline` (its breaker shared through the store) and call a fake
//! dependency that fails `--fail-rate` of the calls until `--fail-until` (ns since the Unix
//! epoch); they log every attempt, trial and local opening with wall-clock times.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use tripwire_core::store::{SharedCheck, SharedLimiter, Source, StoreReply};
use tripwire_core::{Instant, RateDecision};
use tripwire_redis::RedisStore;

struct Args {
    url: String,
    config: String,
    seconds: f64,
    callers: usize,
    out: String,
    seed: u64,
    mode: String,
    fail_until: u128,
    fail_rate: f64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        config: String::new(),
        seconds: 5.0,
        callers: 4,
        out: String::new(),
        seed: std::process::id().into(),
        mode: "limit".into(),
        fail_until: 0,
        fail_rate: 0.8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--config" => a.config = value()?,
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--callers" => a.callers = value()?.parse().map_err(|e| format!("--callers: {e}"))?,
            "--out" => a.out = value()?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--mode" => a.mode = value()?,
            "--fail-until" => {
                a.fail_until = value()?.parse().map_err(|e| format!("--fail-until: {e}"))?;
            }
            "--fail-rate" => {
                a.fail_rate = value()?.parse().map_err(|e| format!("--fail-rate: {e}"))?;
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.url.is_empty() || a.config.is_empty() || a.out.is_empty() {
        return Err(
            "usage: fleet-worker --url URL --config JSON --seconds S --callers C --out FILE".into(),
        );
    }
    Ok(a)
}

#[derive(Default)]
struct Totals {
    decisions: u64,
    admitted: u64,
    sent: u64,
    evals: u64,
    timeouts: u64,
    unavailable: u64,
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fleet-worker: {e}");
            std::process::exit(2);
        }
    };
    if a.mode == "breaker" {
        breaker_mode(&a);
        return;
    }
    let limiter = match SharedLimiter::from_json(&a.config, a.seed) {
        Ok(l) => Arc::new(Mutex::new(l)),
        Err(e) => {
            eprintln!("fleet-worker: {e}");
            std::process::exit(2);
        }
    };
    let client = redis::Client::open(a.url.as_str()).expect("a valid Redis URL");
    let origin = StdInstant::now();
    let now = move || Instant::from_nanos(origin.elapsed().as_nanos() as u64);
    let end = Duration::from_secs_f64(a.seconds);
    let totals = Arc::new(Mutex::new(Totals::default()));
    let threads: Vec<_> = (0..a.callers)
        .map(|_| {
            let (limiter, totals) = (limiter.clone(), totals.clone());
            let mut store = RedisStore::new(client.clone());
            std::thread::spawn(move || {
                let mut lines = String::new();
                let mut t = Totals::default();
                while origin.elapsed() < end {
                    let start = now();
                    let check = limiter.lock().unwrap().check("", start, 1, None);
                    let (decision, source, store_time) = match check {
                        SharedCheck::Decided { decision, source } => (decision, source, (0, 0)),
                        SharedCheck::Send(id) => {
                            let request = limiter.lock().unwrap().request(id).cloned();
                            let reply = match request {
                                Some(r) => store.run(&r),
                                None => StoreReply::Unavailable,
                            };
                            let store_time = match &reply {
                                StoreReply::Values(v) if v.len() > 2 => (v[1], v[2]),
                                StoreReply::Timeout => {
                                    t.timeouts += 1;
                                    (0, 0)
                                }
                                StoreReply::Unavailable => {
                                    t.unavailable += 1;
                                    (0, 0)
                                }
                                _ => (0, 0),
                            };
                            let (d, s) = limiter
                                .lock()
                                .unwrap()
                                .on_reply(id, reply, now())
                                .unwrap_or((
                                    RateDecision::Denied { retry_after: None },
                                    Source::Fallback,
                                ));
                            // A fallback decision has no store time.
                            let store_time = if s == Source::Store {
                                store_time
                            } else {
                                (0, 0)
                            };
                            (d, s, store_time)
                        }
                    };
                    let latency = now().nanos_since(start);
                    t.decisions += 1;
                    let allowed = decision.is_allowed();
                    t.admitted += u64::from(allowed);
                    lines.push_str(&format!(
                        "{} {} {} {} {latency}\n",
                        source.as_str(),
                        u8::from(allowed),
                        store_time.0,
                        store_time.1
                    ));
                    if !allowed {
                        let pause = decision
                            .retry_after()
                            .unwrap_or(Duration::from_millis(50))
                            .min(Duration::from_millis(50));
                        std::thread::sleep(pause);
                    } else if decision.wait() > Duration::ZERO {
                        std::thread::sleep(decision.wait());
                    }
                }
                t.sent = store.sent;
                t.evals = store.evals;
                let mut all = totals.lock().unwrap();
                all.decisions += t.decisions;
                all.admitted += t.admitted;
                all.sent += t.sent;
                all.evals += t.evals;
                all.timeouts += t.timeouts;
                all.unavailable += t.unavailable;
                lines
            })
        })
        .collect();
    let mut file = std::fs::File::create(&a.out).expect("--out is writable");
    for t in threads {
        let lines = t.join().expect("a caller thread");
        file.write_all(lines.as_bytes()).expect("write --out");
    }
    let t = totals.lock().unwrap();
    println!(
        "{{\"lang\": \"rust\", \"decisions\": {}, \"admitted\": {}, \"sent\": {}, \"evals\": {}, \"timeouts\": {}, \"unavailable\": {}}}",
        t.decisions, t.admitted, t.sent, t.evals, t.timeouts, t.unavailable
    );
}

fn wall_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// `--mode breaker`: callers share one pipeline and call a fake dependency.
fn breaker_mode(a: &Args) {
    use tripwire_core::pipeline::{Pipeline, Report, Step};
    use tripwire_core::BreakerState;

    let pipeline = match Pipeline::from_json(&a.config, a.seed) {
        Ok(p) => Arc::new(Mutex::new(p)),
        Err(e) => {
            eprintln!("fleet-worker: {e}");
            std::process::exit(2);
        }
    };
    let client = redis::Client::open(a.url.as_str()).expect("a valid Redis URL");
    let origin = StdInstant::now();
    let now = move || Instant::from_nanos(origin.elapsed().as_nanos() as u64);
    let end = Duration::from_secs_f64(a.seconds);
    let (fail_until, fail_rate) = (a.fail_until, a.fail_rate);
    let threads: Vec<_> = (0..a.callers)
        .map(|k| {
            let p = pipeline.clone();
            let mut store = RedisStore::new(client.clone());
            let mut rng = tripwire_core::Rng::new(a.seed * 1_000 + k as u64);
            std::thread::spawn(move || {
                let mut lines = String::new();
                let mut state = BreakerState::Closed;
                while origin.elapsed() < end {
                    let c = p.lock().unwrap().begin(now(), None);
                    loop {
                        let step = p.lock().unwrap().poll(c, now()).expect("a live call");
                        match step {
                            Step::Store { request, .. } => {
                                let r = p.lock().unwrap().store_request(request).cloned();
                                let reply = match r {
                                    Some(r) => store.run(&r),
                                    None => StoreReply::Unavailable,
                                };
                                let _ = p.lock().unwrap().report_store(c, reply, now());
                            }
                            Step::Attempt { .. } => {
                                let trial = p.lock().unwrap().breaker().map(|b| b.state())
                                    == Some(BreakerState::HalfOpen);
                                let start = wall_ns();
                                std::thread::sleep(Duration::from_millis(1));
                                let fails = start < fail_until
                                    && rng.uniform_inclusive(999) < (fail_rate * 1000.0) as u64;
                                lines.push_str(&format!(
                                    "attempt {start} {} {}\n",
                                    u8::from(trial),
                                    wall_ns()
                                ));
                                let report = if fails {
                                    Report::failure(false, None)
                                } else {
                                    Report::SUCCESS
                                };
                                let _ = p.lock().unwrap().report(c, report, now());
                            }
                            Step::Sleep { until } => {
                                std::thread::sleep(Duration::from_nanos(until.nanos_since(now())));
                            }
                            Step::Park { .. } => std::thread::sleep(Duration::from_millis(1)),
                            _ => break,
                        }
                    }
                    let s = p
                        .lock()
                        .unwrap()
                        .breaker()
                        .map_or(BreakerState::Closed, |b| b.state());
                    if s != state {
                        lines.push_str(&format!("state {} {}\n", wall_ns(), s.as_str()));
                        state = s;
                    }
                    // Callers pace themselves: 2 ms between calls (about 500/s each).
                    std::thread::sleep(Duration::from_millis(2));
                }
                (lines, store.sent, store.evals)
            })
        })
        .collect();
    let mut file = std::fs::File::create(&a.out).expect("--out is writable");
    let (mut sent, mut evals) = (0, 0);
    for t in threads {
        let (lines, s, e) = t.join().expect("a caller thread");
        sent += s;
        evals += e;
        file.write_all(lines.as_bytes()).expect("write --out");
    }
    let stats = pipeline.lock().unwrap().stats();
    println!(
        "{{\"lang\": \"rust\", \"calls\": {}, \"attempts\": {}, \"sent\": {sent}, \"evals\": {evals}, \"share\": {}}}",
        stats.calls,
        stats.attempts,
        serde_json::to_string(&stats.share).unwrap_or_default()
    );
}

//! The Rust fleet worker of `tests/fleet/README.md`: `C` threads share one `SharedLimiter`
//! and each runs its requests through its own Redis connection.
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
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        config: String::new(),
        seconds: 5.0,
        callers: 4,
        out: String::new(),
        seed: std::process::id().into(),
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

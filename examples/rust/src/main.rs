//! tripwire quick start in Rust: a flaky HTTP service on 127.0.0.1, called through the `api`
//! pipeline of `examples/policies/default.json` (rate limit, bulkhead, retry with a budget,
//! circuit breaker, timeouts, fallback). The service answers for 1 s, fails with 503s for
//! 3.5 s, then recovers; the program prints the retries, the breaker's trips, the fallbacks and
//! the recovery, and ends by itself.
//!
//! The core is sans-IO: this program is the host. It reads the clock, runs the attempt with
//! its deadline, sleeps when told to, and reports outcomes. Everything here is std.
//!
//! Run: `cargo run -p tripwire-example --bin quickstart [-- path/to/policies.json]`
// The host owns the clock, the sleeping, the threads and the printing (the core has none).
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant as StdInstant, SystemTime};

use tripwire_core::pipeline::{Outcome, Pipeline, PolicyFile, Report, Step};
use tripwire_core::{BreakerState, EventKind, Instant};

/// How the embedded service behaves, by time since it started.
const HEALTHY_UNTIL: Duration = Duration::from_millis(1000);
const BROKEN_UNTIL: Duration = Duration::from_millis(4500);
/// How long the program runs, and how often it calls.
const RUN_FOR: Duration = Duration::from_millis(8500);
const EVERY: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/default.json").to_owned()
    });
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            println!("cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Every issue of a bad file, each with its field path.
    let policies = match PolicyFile::from_json(&text) {
        Ok(p) => p,
        Err(e) => {
            for issue in e.issues() {
                println!("{path}: {issue}");
            }
            return ExitCode::FAILURE;
        }
    };
    // Jitter is seeded by the host (here: the time and the pid) unless the file pins a seed.
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let mut pipeline = policies
        .pipeline("api", seed)
        .expect("default.json defines the `api` pipeline");

    let origin = StdInstant::now();
    let addr = start_flaky_service(origin);
    println!("tripwire quick start: pipeline \"api\" from {path}");
    println!(
        "flaky service on http://{addr}: healthy, then 503s from 1 s to 4.5 s, then healthy\n"
    );

    let clock = Clock { origin };
    let mut log = Log::default();
    let mut n = 0;
    let mut next = origin;
    while origin.elapsed() < RUN_FOR {
        n += 1;
        let started = clock.now();
        let answer = call(&mut pipeline, &clock, addr, &mut log);
        let took = clock.now().saturating_duration_since(started);
        if answer == OK_FIRST_TRY {
            log.ok(n, clock.secs());
        } else {
            log.line(&format!(
                "{:>6.2}s  call {n:>2}  {answer}  ({} ms)",
                clock.secs(),
                took.as_millis()
            ));
        }
        // One call every 100 ms, or right away when the last one took longer.
        next = (next + EVERY).max(StdInstant::now());
        std::thread::sleep(next.saturating_duration_since(StdInstant::now()));
    }

    log.flush();
    let tally = &log;
    let stats = pipeline.stats();
    println!(
        "\n{} calls: {} answered by the service, {} by the fallback; {} requests reached it; \
         the breaker opened {} time(s) and closed again {} time(s)",
        stats.calls, stats.succeeded, tally.fallbacks, stats.attempts, tally.opened, tally.closed
    );
    // The example checks its own story, so that it cannot rot silently in CI.
    let recovered = pipeline.breaker().map(|b| b.state()) == Some(BreakerState::Closed);
    if tally.opened == 0 || tally.closed == 0 || !recovered || tally.fallbacks == 0 {
        println!("expected the breaker to open during the outage and close after it");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

const OK_FIRST_TRY: &str = "ok        price=42 from the service (1 attempt(s))";

/// What happened, printed in order; runs of plain successes become one line.
#[derive(Debug, Default)]
struct Log {
    /// (first call, last call, when the first one ended) of the current run of successes.
    oks: Option<(u32, u32, f64)>,
    fallbacks: u32,
    opened: u32,
    closed: u32,
}

impl Log {
    fn ok(&mut self, n: u32, at: f64) {
        let (first, _, at) = self.oks.unwrap_or((n, n, at));
        self.oks = Some((first, n, at));
    }

    fn line(&mut self, text: &str) {
        self.flush();
        println!("{text}");
    }

    fn flush(&mut self) {
        if let Some((first, last, at)) = self.oks.take() {
            let calls = if first == last {
                format!("call {first:>2}")
            } else {
                format!("calls {first}-{last}")
            };
            println!("{at:>6.2}s  {calls}  ok, price=42 from the service at the first attempt");
        }
    }
}

/// One protected call: the host side of the step protocol. Returns what the caller got.
fn call(pipeline: &mut Pipeline, clock: &Clock, addr: SocketAddr, log: &mut Log) -> String {
    let id = pipeline.begin(clock.now(), None);
    loop {
        let step = pipeline
            .poll(id, clock.now())
            .expect("the call is live until Done or Fail");
        drain(pipeline, clock, log);
        match step {
            Step::Attempt { deadline, .. } => {
                // Run the function, cancelled at the attempt's deadline.
                let report = match fetch(addr, deadline.map(|d| clock.to_std(d))) {
                    Ok(_) => Report::SUCCESS,
                    Err(Fetch::Timeout) => Report::TIMEOUT,
                    // A 4xx is the caller's fault: the breaker ignores it, retry does not retry.
                    Err(Fetch::Status(s)) if (400..500).contains(&s) && s != 429 => Report {
                        outcome: Outcome::Ignored,
                        retryable: false,
                        retry_after: None,
                    },
                    // 5xx, 429, connection errors: retryable.
                    Err(Fetch::Status(_) | Fetch::Io) => Report::failure(true, None),
                };
                pipeline
                    .report(id, report, clock.now())
                    .expect("an attempt is in flight");
                drain(pipeline, clock, log);
            }
            Step::Sleep { until }
            | Step::Park {
                until: Some(until), ..
            } => {
                // A backoff (or a wait for a slot; this program has one caller, so no queue).
                std::thread::sleep(until.saturating_duration_since(clock.now()));
            }
            Step::Park { until: None, .. } => std::thread::sleep(Duration::from_millis(1)),
            Step::Done { attempts } => {
                return format!("ok        price=42 from the service ({attempts} attempt(s))");
            }
            Step::Fail(f) if f.fallback => {
                log.fallbacks += 1;
                let why = match f.retry_after {
                    Some(d) => format!("{}, retry after {} ms", f.kind, d.as_millis()),
                    None => f.kind.to_string(),
                };
                return format!("fallback  price=40 from the cache ({why})");
            }
            Step::Fail(f) => {
                return format!("error     {} after {} attempt(s)", f.kind, f.attempts)
            }
            _ => unreachable!("a step this example does not know"),
        }
    }
}

/// After every input, drain the events: here, print them.
fn drain(pipeline: &mut Pipeline, clock: &Clock, log: &mut Log) {
    while let Some(event) = pipeline.poll_event() {
        match event.kind {
            EventKind::StateChanged { from, to } => {
                match to {
                    BreakerState::Open => log.opened += 1,
                    BreakerState::Closed => log.closed += 1,
                    _ => {}
                }
                log.line(&format!("{:>6.2}s  ── breaker {from} → {to}", clock.secs()));
            }
            EventKind::RetryScheduled { attempt, delay } => log.line(&format!(
                "{:>6.2}s            retry: attempt {attempt} in {} ms",
                clock.secs(),
                delay.as_millis()
            )),
            _ => {}
        }
    }
}

/// The host's monotonic clock, as the core's `Instant` (nanoseconds since `origin`).
struct Clock {
    origin: StdInstant,
}

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.origin.elapsed().as_nanos() as u64)
    }

    fn to_std(&self, at: Instant) -> StdInstant {
        self.origin + Duration::from_nanos(at.as_nanos())
    }

    fn secs(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
}

#[derive(Debug)]
enum Fetch {
    Status(u16),
    Timeout,
    Io,
}

/// `GET /price` over plain HTTP/1.1, given up at `deadline`.
fn fetch(addr: SocketAddr, deadline: Option<StdInstant>) -> Result<String, Fetch> {
    let left = || match deadline {
        Some(d) => d
            .checked_duration_since(StdInstant::now())
            .filter(|l| !l.is_zero())
            .ok_or(Fetch::Timeout),
        None => Ok(Duration::from_secs(30)),
    };
    let mut stream = TcpStream::connect_timeout(&addr, left()?).map_err(|_| Fetch::Io)?;
    stream
        .set_read_timeout(Some(left()?))
        .map_err(|_| Fetch::Io)?;
    stream
        .write_all(b"GET /price HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|_| Fetch::Io)?;
    let mut response = String::new();
    match stream.read_to_string(&mut response) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err(Fetch::Timeout)
        }
        Err(_) => return Err(Fetch::Io),
    }
    let status: u16 = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(Fetch::Status(0))?;
    match status {
        200..=299 => Ok(response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned()),
        s => Err(Fetch::Status(s)),
    }
}

/// The flaky service: one thread, one connection at a time, on an ephemeral port.
fn start_flaky_service(origin: StdInstant) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("a local address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // Read the request head.
            let mut reader = BufReader::new(&mut stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let t = origin.elapsed();
            let (status, body) = if t >= HEALTHY_UNTIL && t < BROKEN_UNTIL {
                ("503 Service Unavailable", "overloaded")
            } else {
                std::thread::sleep(Duration::from_millis(5));
                ("200 OK", "price=42")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

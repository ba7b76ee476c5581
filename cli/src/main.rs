//! `tripwire simulate | validate | schema | scenario`.
// Printing is what a command-line tool is for.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use tripwire_cli::policy::{self, Validation};
use tripwire_cli::report::{self, fmt_count};
use tripwire_cli::scenario::{self, Scenario, Trace, SEC};
use tripwire_cli::sim::Source;
use tripwire_cli::{simulate, svg, PolicyInfo, SCHEMA};

#[derive(Debug, Parser)]
#[command(
    name = "tripwire",
    version,
    about = "Simulate, validate and document tripwire fault-tolerance policies",
    long_about = "Simulate, validate and document tripwire fault-tolerance policies.\n\n\
        The simulator replays a scenario in virtual time through the real tripwire core, three \
        ways: with no policy, with naive retries, and with your policy. A minute of outage runs \
        in milliseconds, and the same seed gives the same result every time.",
    after_help = "Examples:\n  \
        tripwire simulate --policy examples/policies/default.json --scenario outage --svg outage.svg\n  \
        tripwire simulate --policy policies.json --name payments --scenario last-tuesday.csv\n  \
        tripwire validate policies.json\n  \
        tripwire scenario brownout > my-scenario.json"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a scenario with no policy, naive retries and your policy; compare them
    #[command(
        long_about = "Replay a scenario in virtual time with no policy, with naive retries \
        (3 immediate retries) and with your policy, and print a comparison: success rate, \
        latency, calls rejected fast, load on the downstream, time to recover, breaker changes.\n\n\
        A scenario is a built-in name (outage, brownout, overload), a JSON file (start from \
        `tripwire scenario outage`), or a recorded trace: a CSV of `timestamp_ms,outcome,latency_ms` \
        (outcome: success, failure, timeout, ignored or an HTTP status) replayed through the \
        policy to see when its breaker would have opened and closed."
    )]
    Simulate(SimulateArgs),
    /// Check policy files; print each issue as `path: reason` (exit 1 if any)
    Validate {
        /// Policy files (`{"seed"?, "policies": {name: pipeline}}`)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema (draft 2020-12) of policy files and pipeline configs
    Schema,
    /// Print a built-in scenario as JSON, to start your own from
    Scenario {
        /// outage, brownout or overload
        #[arg(value_parser = scenario::BUILTIN)]
        name: String,
    },
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The policy file (or a single pipeline config)
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Which pipeline of the policy file (needed when it defines several)
    #[arg(long, value_name = "PIPELINE")]
    name: Option<String>,
    /// A built-in scenario (outage, brownout, overload), a scenario JSON file, or a trace CSV
    #[arg(long, value_name = "FILE|NAME", default_value = "outage")]
    scenario: String,
    /// Seed of every random stream: arrivals, latencies, failures, jitter
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Write the timeline picture here
    #[arg(long, value_name = "OUT")]
    svg: Option<PathBuf>,
    /// Write every result here, as JSON
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
}

/// Print to stdout; a closed pipe (`tripwire schema | head`) ends the program quietly instead
/// of panicking.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("tripwire: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`emit`].
macro_rules! say {
    () => { emit("\n") };
    ($($arg:tt)*) => { emit(&format!("{}\n", format_args!($($arg)*))) };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(args) => match run_simulate(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("tripwire simulate: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Validate { files } => run_validate(&files),
        Command::Schema => {
            emit(SCHEMA);
            ExitCode::SUCCESS
        }
        Command::Scenario { name } => {
            let s = scenario::builtin(&name).expect("clap checked the name");
            say!(
                "{}",
                serde_json::to_string_pretty(&s).expect("scenarios serialize")
            );
            ExitCode::SUCCESS
        }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

fn load_source(spec: &str) -> Result<Source, String> {
    if let Some(s) = scenario::builtin(spec) {
        return Ok(Source::Model(s));
    }
    let path = Path::new(spec);
    if !path.exists() {
        return Err(format!(
            "{spec}: no such file, and not a built-in scenario ({})",
            scenario::BUILTIN.join(", ")
        ));
    }
    let text = read(path)?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        || !text.trim_start().starts_with('{');
    if is_csv {
        let name = path
            .file_name()
            .map_or_else(|| spec.to_owned(), |n| n.to_string_lossy().into_owned());
        Trace::from_csv(&name, &text)
            .map(Source::Trace)
            .map_err(|e| format!("{spec}: {e}"))
    } else {
        Scenario::from_json(&text).map(Source::Model).map_err(|e| {
            let issues: Vec<String> = e.issues().iter().map(|i| format!("  {i}")).collect();
            format!("{spec}: not a valid scenario:\n{}", issues.join("\n"))
        })
    }
}

fn run_simulate(args: &SimulateArgs) -> Result<(), String> {
    let text = read(&args.policy)?;
    let (config, name) = policy::load_pipeline(&text, args.name.as_deref()).map_err(|e| {
        let lines: Vec<String> = e.to_string().lines().map(|l| format!("  {l}")).collect();
        format!("{}:\n{}", args.policy.display(), lines.join("\n"))
    })?;
    let source = load_source(&args.scenario)?;
    let seconds = source.duration().div_ceil(SEC);
    let bar = if std::io::stdout().is_terminal() {
        let bar = ProgressBar::new(3 * seconds);
        bar.set_style(
            ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} virtual s")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let labels = ["no policy", "naive retries", "your policy"];
    // Wall time, only to tell the user how fast virtual time ran; it never reaches the core.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let sim = simulate(
        &source,
        &config,
        PolicyInfo {
            file: args.policy.display().to_string(),
            name: name.clone(),
        },
        args.seed,
        &mut |run, t| {
            bar.set_message(labels[run]);
            bar.set_position(run as u64 * seconds + (t / SEC).min(seconds));
        },
    );
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    match &source {
        Source::Model(s) => say!(
            "scenario {}: {}",
            s.name,
            s.description.as_deref().unwrap_or("(no description)")
        ),
        Source::Trace(t) => say!(
            "trace {}: {} recorded calls replayed through the policy",
            t.name,
            fmt_count(t.rows.len() as u64)
        ),
    }
    say!(
        "policy {name:?} from {}: {}",
        args.policy.display(),
        policy::describe(&config)
    );
    say!(
        "{} calls over {} s of virtual time · seed {} · 3 runs simulated in {} ms",
        fmt_count(sim.runs[0].summary.calls),
        seconds,
        args.seed,
        elapsed.as_millis()
    );
    say!();
    emit(&report::table(&sim));
    say!();
    let origin = match &source {
        Source::Trace(t) if t.is_epoch() => Some(t.origin_ms()),
        _ => None,
    };
    let story = report::transitions(sim.policy_run(), origin, 12);
    if story.is_empty() && sim.policy_run().config.circuit_breaker.is_some() {
        say!(
            "the breaker of {} never left closed",
            sim.policy_run().label
        );
    } else {
        emit(&story);
    }
    say!();
    say!("{}", report::LEGEND);
    if let Some(path) = &args.svg {
        write(path, &svg::render(&sim))?;
        say!("timeline: {}", path.display());
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&sim).expect("results serialize");
        write(path, &(json + "\n"))?;
        say!("results:  {}", path.display());
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

fn run_validate(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for path in files {
        let text = match read(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                ok = false;
                continue;
            }
        };
        match policy::validate(&text) {
            Validation::Valid(pipelines) => {
                say!(
                    "{}: ok, {} pipeline{}",
                    path.display(),
                    pipelines.len(),
                    if pipelines.len() == 1 { "" } else { "s" }
                );
                for p in pipelines {
                    say!("  {p}");
                }
            }
            Validation::Invalid(issues) => {
                ok = false;
                for issue in &issues {
                    eprintln!("{issue}");
                }
                eprintln!(
                    "{}: invalid ({} issue{})",
                    path.display(),
                    issues.len(),
                    if issues.len() == 1 { "" } else { "s" }
                );
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

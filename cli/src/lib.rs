//! `tripwire`: the policy simulator, validator and schema, as a library the binary and its
//! tests share.
//!
//! The simulator replays a scenario in virtual time three ways — no policy, naive retries,
//! and a tripwire policy — through the real core pipeline, and reports what each does to the
//! caller and to the downstream. It is possible only because the core is sans-IO: time is an
//! input, so a minute of outage runs in milliseconds, the same way every time.

pub mod policy;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod svg;

use serde::Serialize;
use tripwire_core::pipeline::PipelineConfig;

use crate::scenario::Scenario;
use crate::sim::{Run, Source};

/// The JSON Schema of policy files and pipeline configs.
pub const SCHEMA: &str = include_str!("../../schema/tripwire.schema.json");

/// Three runs of one source.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Simulation {
    /// The seed of every random stream (arrivals, downstream, jitter).
    pub seed: u64,
    /// The scenario, when the source is a model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Scenario>,
    /// The trace, when the source is a recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceInfo>,
    /// Where the policy came from.
    pub policy: PolicyInfo,
    /// Virtual time during which calls arrived, ms.
    pub duration_ms: f64,
    /// No policy, naive retries, the policy.
    pub runs: Vec<Run>,
}

/// A replayed trace, in short.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceInfo {
    /// Its name (the file).
    pub name: String,
    /// Recorded calls.
    pub calls: usize,
    /// The first timestamp (replayed time 0), ms.
    pub origin_ms: f64,
}

/// The simulated policy's origin.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    /// The file it was read from.
    pub file: String,
    /// The pipeline's name in the file.
    pub name: String,
}

impl Simulation {
    /// The policy's run (the last).
    #[must_use]
    pub fn policy_run(&self) -> &Run {
        self.runs.last().expect("three runs")
    }
}

/// Run the source with no policy, with naive retries, and with `config`. `progress` gets
/// (run index, virtual time reached in ns).
pub fn simulate(
    source: &Source,
    config: &PipelineConfig,
    policy: PolicyInfo,
    seed: u64,
    progress: &mut dyn FnMut(usize, u64),
) -> Simulation {
    let variants = [
        ("no policy".to_owned(), sim::no_policy()),
        ("naive retries".to_owned(), sim::naive_retries()),
        (format!("tripwire {:?}", policy.name), config.clone()),
    ];
    let runs = variants
        .iter()
        .enumerate()
        .map(|(i, (label, config))| sim::run(label, config, source, seed, &mut |t| progress(i, t)))
        .collect();
    Simulation {
        seed,
        scenario: match source {
            Source::Model(s) => Some(s.clone()),
            Source::Trace(_) => None,
        },
        trace: match source {
            Source::Trace(t) => Some(TraceInfo {
                name: t.name.clone(),
                calls: t.rows.len(),
                origin_ms: t.origin_ms(),
            }),
            Source::Model(_) => None,
        },
        policy,
        duration_ms: source.duration() as f64 / scenario::MS as f64,
        runs,
    }
}

//! The comparison table and the breaker's story, as plain text.

use std::fmt::Write as _;

use crate::scenario::format_epoch_ms;
use tripwire_core::BreakerState;

use crate::sim::{Run, Transition};
use crate::Simulation;

/// `1.2 ms`, `850 ms`, `3.4 s`.
#[must_use]
pub fn fmt_ms(ms: f64) -> String {
    if ms == 0.0 {
        "0 s".to_owned()
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

/// `12,345`.
#[must_use]
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const HEADERS: [&str; 9] = [
    "",
    "success",
    "p50",
    "p99",
    "rejected fast",
    "downstream load",
    "recovery",
    "breaker changes",
    "peak in flight",
];

fn row(run: &Run, has_disruption: bool) -> [String; 9] {
    let s = &run.summary;
    [
        run.label.clone(),
        format!("{:.1}%", s.success_rate * 100.0),
        fmt_ms(s.p50_ms),
        fmt_ms(s.p99_ms),
        fmt_count(s.rejected_fast),
        format!("{:.2}×", s.amplification),
        match (has_disruption, s.recovery_ms) {
            (false, _) => "—".to_owned(),
            (true, Some(ms)) => fmt_ms(ms),
            (true, None) => "never".to_owned(),
        },
        fmt_count(s.breaker_transitions),
        fmt_count(s.peak_in_flight),
    ]
}

/// The comparison table: one row per run, columns aligned.
#[must_use]
pub fn table(sim: &Simulation) -> String {
    let has_disruption = sim
        .scenario
        .as_ref()
        .is_some_and(|s| s.disruption().is_some());
    let rows: Vec<[String; 9]> = sim.runs.iter().map(|r| row(r, has_disruption)).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            if i == 0 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
        }
        out.push('\n');
    };
    line(&mut out, &HEADERS.map(str::to_owned));
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    out.push_str(&"─".repeat(total));
    out.push('\n');
    for r in &rows {
        line(&mut out, r);
    }
    out
}

/// What the columns mean, for the end of the report.
pub const LEGEND: &str = "\
success: calls that got the downstream's value · p50/p99: how long callers waited (every call)
rejected fast: refused by the policy before reaching the downstream (a fallback can answer them)
downstream load: requests sent downstream per call · recovery: after the trouble ends, until calls succeed as before it";

/// One stretch of time with the breaker not closed: from leaving `closed` to returning.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Episode {
    /// When it opened, ms.
    pub opened_ms: f64,
    /// When it closed again, ms; `None` if it was still open at the end.
    pub closed_ms: Option<f64>,
    /// Half-open trials that failed and opened it again.
    pub failed_trials: u32,
}

/// The breaker's open episodes, from its transitions.
#[must_use]
pub fn episodes(transitions: &[Transition]) -> Vec<Episode> {
    let mut out: Vec<Episode> = Vec::new();
    let mut current: Option<Episode> = None;
    for t in transitions {
        match (t.from, t.to, current.as_mut()) {
            (BreakerState::Closed, _, None) => {
                current = Some(Episode {
                    opened_ms: t.at_ms,
                    closed_ms: None,
                    failed_trials: 0,
                });
            }
            (BreakerState::HalfOpen, BreakerState::Open, Some(e)) => e.failed_trials += 1,
            (_, BreakerState::Closed, Some(e)) => {
                e.closed_ms = Some(t.at_ms);
                out.extend(current.take());
            }
            _ => {}
        }
    }
    out.extend(current);
    out
}

/// When the breaker of `run` opened and closed again; with dates when the trace has epoch
/// timestamps (`origin_ms`).
#[must_use]
pub fn transitions(run: &Run, origin_ms: Option<f64>, limit: usize) -> String {
    let mut out = String::new();
    if run.breaker.is_empty() {
        return out;
    }
    let at = |ms: f64| match origin_ms {
        Some(o) => format_epoch_ms(o + ms),
        None => format!("{:.2} s", ms / 1000.0),
    };
    let eps = episodes(&run.breaker);
    let _ = writeln!(
        out,
        "breaker of {}: opened {} time{}, {} state changes",
        run.label,
        eps.len(),
        if eps.len() == 1 { "" } else { "s" },
        run.breaker.len()
    );
    for e in eps.iter().take(limit) {
        let trials = match e.failed_trials {
            0 => String::new(),
            1 => ", 1 failed half-open trial".to_owned(),
            n => format!(", {n} failed half-open trials"),
        };
        match e.closed_ms {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "  open {} → closed {}  ({}{trials})",
                    at(e.opened_ms),
                    at(c),
                    fmt_ms(c - e.opened_ms)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  open {} → still open at the end{trials}",
                    at(e.opened_ms)
                );
            }
        }
    }
    if eps.len() > limit {
        let _ = writeln!(
            out,
            "  … {} more (every transition is in --json)",
            eps.len() - limit
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_ms(0.42), "0.4 ms");
        assert_eq!(fmt_ms(41.6), "42 ms");
        assert_eq!(fmt_ms(10_000.0), "10.0 s");
        assert_eq!(fmt_ms(90_000.0), "1.5 min");
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(1234), "1,234");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
    }

    fn t(at_ms: f64, from: BreakerState, to: BreakerState) -> Transition {
        Transition { at_ms, from, to }
    }

    #[test]
    fn episodes_span_from_open_to_closed() {
        use BreakerState::{Closed, HalfOpen, Open};
        let ts = [
            t(1.0, Closed, Open),
            t(2.0, Open, HalfOpen),
            t(3.0, HalfOpen, Open),
            t(4.0, Open, HalfOpen),
            t(5.0, HalfOpen, Closed),
            t(9.0, Closed, Open),
        ];
        assert_eq!(
            episodes(&ts),
            [
                Episode {
                    opened_ms: 1.0,
                    closed_ms: Some(5.0),
                    failed_trials: 1
                },
                Episode {
                    opened_ms: 9.0,
                    closed_ms: None,
                    failed_trials: 0
                }
            ]
        );
        assert!(episodes(&[]).is_empty());
    }
}

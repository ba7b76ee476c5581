//! The timeline picture, hand-written SVG: one panel per run (calls per second by outcome,
//! requests reaching the downstream, the trouble shaded), the breaker's state as a band, and
//! the callers' p99 latency of the three runs on one log scale.

use std::fmt::Write as _;

use tripwire_core::BreakerState;

use crate::report::{fmt_count, fmt_ms};
use crate::scenario::{Mode, SEC};
use crate::sim::Second;
use crate::Simulation;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 215.0;
const RIGHT: f64 = 1160.0;
const PANEL_H: f64 = 165.0;
const BAND_H: f64 = 16.0;
const LAT_H: f64 = 160.0;
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

const OK: &str = "#3a9d5d";
const FAILED: &str = "#d9534f";
const REJECTED: &str = "#f0ad4e";
const LOAD: &str = "#1d3557";
const RUN_COLORS: [&str; 3] = ["#8d8d8d", "#8e44ad", "#1f77b4"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Seconds grouped into at most 300 bars; values are per-second averages.
#[derive(Clone, Copy, Debug, Default)]
struct Bin {
    ok: f64,
    failed: f64,
    rejected: f64,
    attempts: f64,
    p99_ms: Option<f64>,
}

fn bins(timeline: &[Second], per: usize) -> Vec<Bin> {
    timeline
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            Bin {
                ok: c.iter().map(|s| s.succeeded as f64).sum::<f64>() / n,
                failed: c.iter().map(|s| s.failed as f64).sum::<f64>() / n,
                rejected: c.iter().map(|s| s.rejected as f64).sum::<f64>() / n,
                attempts: c.iter().map(|s| s.attempts as f64).sum::<f64>() / n,
                p99_ms: c.iter().filter_map(|s| s.p99_ms).reduce(f64::max),
            }
        })
        .collect()
}

/// A "nice" axis maximum and step for `max` (1, 2 or 5 times a power of ten).
fn nice(max: f64) -> (f64, f64) {
    let max = max.max(1.0);
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

struct Canvas {
    out: String,
}

impl Canvas {
    fn text(&mut self, x: f64, y: f64, size: f64, attrs: &str, s: &str) {
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" {attrs}>{}</text>"#,
            esc(s)
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, attrs: &str) {
        if w > 0.0 && h > 0.0 {
            let _ = writeln!(
                self.out,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" {attrs}/>"#
            );
        }
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, attrs: &str) {
        let _ = writeln!(
            self.out,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {attrs}/>"#
        );
    }

    fn polyline(&mut self, points: &[(f64, f64)], attrs: &str) {
        if points.len() < 2 {
            return;
        }
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.out,
            r#"<polyline fill="none" points="{}" {attrs}/>"#,
            pts.join(" ")
        );
    }
}

fn state_color(s: BreakerState) -> &'static str {
    match s {
        BreakerState::Closed => "#cfe8d6",
        BreakerState::Open => FAILED,
        BreakerState::HalfOpen => REJECTED,
        BreakerState::ForcedOpen => "#8b0000",
        _ => "#cccccc",
    }
}

/// Render the simulation as an SVG document.
#[must_use]
pub fn render(sim: &Simulation) -> String {
    let seconds = sim.runs[0].timeline.len().max(1);
    let per = seconds.div_ceil(300);
    let all_bins: Vec<Vec<Bin>> = sim.runs.iter().map(|r| bins(&r.timeline, per)).collect();
    let n = all_bins[0].len().max(1);
    let span_s = (n * per) as f64;
    let x_of = |t_s: f64| LEFT + (RIGHT - LEFT) * (t_s / span_s).clamp(0.0, 1.0);
    let bar_w = (RIGHT - LEFT) / n as f64;
    let y_max = all_bins
        .iter()
        .flatten()
        .map(|b| (b.ok + b.failed + b.rejected).max(b.attempts))
        .fold(1.0, f64::max);
    let (y_max, y_step) = nice(y_max);
    let top = 136.0;
    let panel_gap = 34.0;
    let mut panel_top = Vec::new();
    let mut y = top;
    for run in &sim.runs {
        panel_top.push(y);
        y += PANEL_H;
        if run.config.circuit_breaker.is_some() {
            y += BAND_H + 6.0;
        }
        y += panel_gap;
    }
    let lat_top = y + 14.0;
    let height = lat_top + LAT_H + 62.0;

    let mut c = Canvas {
        out: String::with_capacity(64 * 1024),
    };
    let _ = writeln!(
        c.out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="{FONT}">"#
    );
    c.rect(0.0, 0.0, WIDTH, height, r##"fill="#ffffff""##);

    // Title.
    let (title, subtitle) = match (&sim.scenario, &sim.trace) {
        (Some(s), _) => (
            format!("tripwire simulate · scenario {}", s.name),
            s.description.clone().unwrap_or_default(),
        ),
        (None, Some(t)) => (
            format!("tripwire simulate · trace {}", t.name),
            format!(
                "{} recorded calls replayed through the policy",
                fmt_count(t.calls as u64)
            ),
        ),
        (None, None) => ("tripwire simulate".to_owned(), String::new()),
    };
    c.text(
        24.0,
        34.0,
        22.0,
        r##"font-weight="bold" fill="#111""##,
        &title,
    );
    c.text(24.0, 58.0, 14.0, r##"fill="#444""##, &subtitle);
    c.text(
        24.0,
        78.0,
        13.0,
        r##"fill="#666""##,
        &format!(
            "policy {:?} from {} · {} calls · seed {} · same arrivals and downstream in every run",
            sim.policy.name,
            sim.policy.file,
            fmt_count(sim.runs[0].summary.calls),
            sim.seed
        ),
    );

    // Legend.
    let mut lx = LEFT;
    let ly = 100.0;
    for (color, label) in [
        (OK, "succeeded /s"),
        (FAILED, "failed /s"),
        (REJECTED, "rejected fast /s"),
    ] {
        c.rect(lx, ly - 10.0, 12.0, 12.0, &format!(r#"fill="{color}""#));
        c.text(lx + 17.0, ly, 12.0, r##"fill="#333""##, label);
        lx += 30.0 + label.len() as f64 * 7.0;
    }
    c.line(
        lx,
        ly - 4.0,
        lx + 22.0,
        ly - 4.0,
        &format!(r#"stroke="{LOAD}" stroke-width="2.5""#),
    );
    c.text(
        lx + 28.0,
        ly,
        12.0,
        r##"fill="#333""##,
        "requests reaching the downstream /s",
    );
    lx += 290.0;
    c.rect(
        lx,
        ly - 10.0,
        12.0,
        12.0,
        r##"fill="url(#trouble)" stroke="#bbb""##,
    );
    c.text(lx + 17.0, ly, 12.0, r##"fill="#333""##, "trouble");
    let _ = writeln!(
        c.out,
        r##"<defs><pattern id="trouble" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="8" height="8" fill="#f4f4f4"/><line x1="0" y1="0" x2="0" y2="8" stroke="#dcdcdc" stroke-width="4"/></pattern></defs>"##
    );

    // Trouble spans, for shading.
    let mut spans: Vec<(f64, f64, String)> = Vec::new();
    if let Some(s) = &sim.scenario {
        for w in &s.downstream.windows {
            let what = match w.mode {
                Mode::Down => "downstream down".to_owned(),
                Mode::Unreachable => "downstream unreachable".to_owned(),
                Mode::Degraded => format!(
                    "downstream degraded ({}× slower{})",
                    w.latency_factor,
                    w.failure_rate
                        .map(|f| format!(", {:.0}% errors", f * 100.0))
                        .unwrap_or_default()
                ),
            };
            spans.push((
                w.from.nanos() as f64 / SEC as f64,
                w.to.nanos() as f64 / SEC as f64,
                what,
            ));
        }
        for p in &s.clients.phases {
            spans.push((
                p.from.nanos() as f64 / SEC as f64,
                p.to.nanos() as f64 / SEC as f64,
                format!("traffic {}/s (normally {}/s)", p.rate, s.clients.rate),
            ));
        }
    }

    for (i, run) in sim.runs.iter().enumerate() {
        let y0 = panel_top[i];
        let y_of = |v: f64| y0 + PANEL_H - PANEL_H * (v / y_max).min(1.0);
        for (a, b, _) in &spans {
            c.rect(
                x_of(*a),
                y0,
                x_of(*b) - x_of(*a),
                PANEL_H,
                r#"fill="url(#trouble)""#,
            );
        }
        if i == 0 {
            for (a, b, label) in &spans {
                c.text(
                    (x_of(*a) + x_of(*b)) / 2.0,
                    y0 - 6.0,
                    12.0,
                    r##"text-anchor="middle" fill="#777" font-style="italic""##,
                    label,
                );
            }
        }
        // Grid.
        let mut v = 0.0;
        while v <= y_max + 1e-9 {
            let gy = y_of(v);
            c.line(
                LEFT,
                gy,
                RIGHT,
                gy,
                r##"stroke="#e6e6e6" stroke-width="1""##,
            );
            c.text(
                LEFT - 6.0,
                gy + 4.0,
                11.0,
                r##"text-anchor="end" fill="#888""##,
                &format!("{v}"),
            );
            v += y_step;
        }
        // Stacked bars: succeeded, failed, rejected.
        for (j, b) in all_bins[i].iter().enumerate() {
            let x = LEFT + j as f64 * bar_w;
            let w = (bar_w - if bar_w > 4.0 { 1.0 } else { 0.0 }).max(0.5);
            let mut base = 0.0;
            for (v, color) in [(b.ok, OK), (b.failed, FAILED), (b.rejected, REJECTED)] {
                if v > 0.0 {
                    let y_top = y_of(base + v);
                    c.rect(
                        x,
                        y_top,
                        w,
                        y_of(base) - y_top,
                        &format!(r#"fill="{color}""#),
                    );
                }
                base += v;
            }
        }
        // Requests reaching the downstream, as a step line.
        let mut pts = Vec::with_capacity(2 * n);
        for (j, b) in all_bins[i].iter().enumerate() {
            let x = LEFT + j as f64 * bar_w;
            pts.push((x, y_of(b.attempts)));
            pts.push((x + bar_w, y_of(b.attempts)));
        }
        c.polyline(
            &pts,
            &format!(r#"stroke="{LOAD}" stroke-width="2.5" stroke-linejoin="round""#),
        );
        c.line(
            LEFT,
            y0 + PANEL_H,
            RIGHT,
            y0 + PANEL_H,
            r##"stroke="#999""##,
        );

        // The run's name and headline numbers.
        let s = &run.summary;
        c.rect(
            16.0,
            y0 + 2.0,
            5.0,
            PANEL_H - 4.0,
            &format!(r#"fill="{}""#, RUN_COLORS[i % 3]),
        );
        c.text(
            30.0,
            y0 + 18.0,
            15.0,
            r##"font-weight="bold" fill="#111""##,
            &run.label,
        );
        let lines = [
            format!("{:.1}% succeeded", s.success_rate * 100.0),
            format!("p99 wait {}", fmt_ms(s.p99_ms)),
            format!("{} rejected fast", fmt_count(s.rejected_fast)),
            format!("downstream load {:.2}×", s.amplification),
            format!("peak {} in flight", fmt_count(s.peak_in_flight)),
        ];
        for (k, l) in lines.iter().enumerate() {
            c.text(
                30.0,
                y0 + 40.0 + 19.0 * k as f64,
                12.5,
                r##"fill="#333""##,
                l,
            );
        }

        // The breaker's state band.
        if run.config.circuit_breaker.is_some() {
            let by = y0 + PANEL_H + 6.0;
            c.text(
                LEFT - 6.0,
                by + 12.0,
                11.0,
                r##"text-anchor="end" fill="#555""##,
                "breaker",
            );
            let end_s = span_s;
            let mut state = BreakerState::Closed;
            let mut from = 0.0;
            let mut segments = Vec::new();
            for t in &run.breaker {
                let at = t.at_ms / 1000.0;
                segments.push((from, at, state));
                state = t.to;
                from = at;
            }
            segments.push((from, end_s, state));
            for (a, b, st) in segments {
                let (xa, xb) = (x_of(a), x_of(b));
                c.rect(
                    xa,
                    by,
                    (xb - xa).max(0.8),
                    BAND_H,
                    &format!(r#"fill="{}""#, state_color(st)),
                );
            }
            // Name the states once each, where there is room.
            let mut named = Vec::new();
            let mut prev = (0.0, BreakerState::Closed);
            let mut segs: Vec<(f64, f64, BreakerState)> = Vec::new();
            for t in &run.breaker {
                let at = t.at_ms / 1000.0;
                segs.push((prev.0, at, prev.1));
                prev = (at, t.to);
            }
            segs.push((prev.0, end_s, prev.1));
            for (a, b, st) in segs {
                let w = x_of(b) - x_of(a);
                if w > 60.0 && !named.contains(&st) {
                    named.push(st);
                    let fill = if st == BreakerState::Closed {
                        "#2d6a3e"
                    } else {
                        "#fff"
                    };
                    c.text(
                        (x_of(a) + x_of(b)) / 2.0,
                        by + 12.0,
                        11.0,
                        &format!(r#"text-anchor="middle" fill="{fill}" font-weight="bold""#),
                        st.as_str(),
                    );
                }
            }
        }
    }

    // Latency: p99 of the calls ending each second, log scale.
    let lat_ms_max = all_bins
        .iter()
        .flatten()
        .filter_map(|b| b.p99_ms)
        .fold(10.0, f64::max);
    let decades_top = lat_ms_max.log10().ceil().max(1.0);
    let lo = 0.0_f64; // 10^0 = 1 ms
    let ly_of = |ms: f64| {
        let l = ms.max(1.0).log10();
        lat_top + LAT_H - LAT_H * ((l - lo) / (decades_top - lo)).clamp(0.0, 1.0)
    };
    c.text(
        30.0,
        lat_top + 18.0,
        15.0,
        r##"font-weight="bold" fill="#111""##,
        "caller latency",
    );
    c.text(
        30.0,
        lat_top + 38.0,
        12.5,
        r##"fill="#333""##,
        "p99 each second",
    );
    c.text(
        30.0,
        lat_top + 55.0,
        12.5,
        r##"fill="#333""##,
        "(log scale)",
    );
    let mut lx = LEFT;
    for (i, run) in sim.runs.iter().enumerate() {
        let color = RUN_COLORS[i % 3];
        c.line(
            lx,
            lat_top - 12.0,
            lx + 22.0,
            lat_top - 12.0,
            &format!(r#"stroke="{color}" stroke-width="3""#),
        );
        c.text(
            lx + 28.0,
            lat_top - 8.0,
            12.0,
            r##"fill="#333""##,
            &run.label,
        );
        lx += 50.0 + run.label.chars().count() as f64 * 7.0;
    }
    for (a, b, _) in &spans {
        c.rect(
            x_of(*a),
            lat_top,
            x_of(*b) - x_of(*a),
            LAT_H,
            r#"fill="url(#trouble)""#,
        );
    }
    let mut d = 0.0;
    while d <= decades_top + 1e-9 {
        let ms = 10f64.powf(d);
        let gy = ly_of(ms);
        c.line(LEFT, gy, RIGHT, gy, r##"stroke="#e6e6e6""##);
        let label = match d as u32 {
            0 => "≤1 ms".to_owned(),
            1 => "10 ms".to_owned(),
            2 => "100 ms".to_owned(),
            k => format!("{} s", 10u64.pow(k - 3)),
        };
        c.text(
            LEFT - 6.0,
            gy + 4.0,
            11.0,
            r##"text-anchor="end" fill="#888""##,
            &label,
        );
        d += 1.0;
    }
    for (i, b) in all_bins.iter().enumerate() {
        // Breaks in the line where no call ended.
        let mut pts = Vec::new();
        for (j, bin) in b.iter().enumerate() {
            match bin.p99_ms {
                Some(ms) => pts.push((LEFT + (j as f64 + 0.5) * bar_w, ly_of(ms))),
                None => {
                    c.polyline(
                        &pts,
                        &format!(r#"stroke="{}" stroke-width="2.2""#, RUN_COLORS[i % 3]),
                    );
                    pts.clear();
                }
            }
        }
        c.polyline(
            &pts,
            &format!(
                r#"stroke="{}" stroke-width="2.2" stroke-linejoin="round""#,
                RUN_COLORS[i % 3]
            ),
        );
    }
    c.line(
        LEFT,
        lat_top + LAT_H,
        RIGHT,
        lat_top + LAT_H,
        r##"stroke="#999""##,
    );

    // Time axis.
    let axis_y = lat_top + LAT_H;
    let (_, t_step) = nice(span_s);
    let mut t = 0.0;
    while t <= span_s + 1e-9 {
        let x = x_of(t);
        c.line(x, axis_y, x, axis_y + 5.0, r##"stroke="#999""##);
        c.text(
            x,
            axis_y + 19.0,
            11.0,
            r##"text-anchor="middle" fill="#666""##,
            &fmt_seconds(t),
        );
        t += t_step;
    }
    c.text(
        (LEFT + RIGHT) / 2.0,
        axis_y + 40.0,
        12.0,
        r##"text-anchor="middle" fill="#666""##,
        if sim.trace.is_some() {
            "time since the first recorded call"
        } else {
            "virtual time since the start"
        },
    );
    c.out.push_str("</svg>\n");
    c.out
}

fn fmt_seconds(t: f64) -> String {
    if t >= 3600.0 {
        format!("{:.1} h", t / 3600.0)
    } else if t >= 120.0 {
        format!("{:.0} min", t / 60.0)
    } else {
        format!("{t:.0} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        assert_eq!(nice(380.0), (400.0, 100.0));
        assert_eq!(nice(75.0), (80.0, 20.0));
        assert_eq!(nice(0.0), (1.0, 0.5));
    }

    #[test]
    fn escapes_text() {
        assert_eq!(esc(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}

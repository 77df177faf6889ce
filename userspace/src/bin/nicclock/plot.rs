//! `nicclock plot`: an SVG of offset, frequency, error bound and status over time, from nicclockd's
//! `--stats-file` CSV or sampled live from a page, with the lock moment, steps and status changes marked.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nicclock::stats::{self, CsvRow};
use nicclock::Status;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::output::outln;

/// Series colours: each series is one polyline of its own colour (the test counts them).
pub const OFFSET_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub const FREQ_COLOR: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
pub const BOUND_COLOR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
pub const STATUS_COLOR: RGBColor = RGBColor(0x94, 0x67, 0xbd);
/// Markers: the lock moment, clock steps, status changes.
pub const LOCK_COLOR: RGBColor = RGBColor(0x17, 0xbe, 0xcf);
pub const STEP_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
pub const CHANGE_COLOR: RGBColor = RGBColor(0x7f, 0x7f, 0x7f);

/// Where the rows come from.
pub enum Input<'a> {
    File(&'a Path),
    Live { seconds: Duration },
}

pub fn plot(
    cli: &crate::Cli,
    input: Input,
    out: &Path,
    lock_threshold_ns: f64,
    size: (u32, u32),
) -> Result<ExitCode> {
    let (rows, source) = match input {
        Input::File(file) => {
            let text = crate::stats::read_input(file)?;
            let (rows, _) = stats::parse_csv_rows(&text).ok_or_else(|| {
                anyhow!(
                    "{} is not nicclockd's --stats-file CSV (its first line must be {:?})",
                    file.display(),
                    stats::STATS_CSV_HEADER
                )
            })?;
            (rows, file.display().to_string())
        }
        Input::Live { seconds } => (sample_live(cli, seconds)?, "live page".to_string()),
    };
    if rows.len() < 2 {
        bail!("{source} holds {} rows: a plot needs at least 2", rows.len());
    }
    render(&rows, lock_threshold_ns, &source, out, size)
        .with_context(|| format!("cannot write the plot to {}", out.display()))?;
    outln!("{} ({} rows from {source})", out.display(), rows.len());
    Ok(ExitCode::SUCCESS)
}

/// Samples the page once per update interval for `seconds`, as the stats CSV would have it.
fn sample_live(cli: &crate::Cli, seconds: Duration) -> Result<Vec<CsvRow>> {
    let clock = crate::commands::open(cli)?;
    let start = Instant::now();
    let mut rows = Vec::new();
    let mut last_update = None;
    while start.elapsed() < seconds {
        let snap = clock.snapshot()?;
        let interval = Duration::from_nanos(snap.update_interval_ns.clamp(1_000_000, 1_000_000_000));
        if last_update != Some(snap.update_count) {
            last_update = Some(snap.update_count);
            rows.push(CsvRow {
                time_s: start.elapsed().as_secs_f64(),
                offset_ns: snap.servo.offset_ns as f64,
                servo_state: snap.servo.state.min(255) as u8,
                freq_ppb: snap.servo.freq_ppt as f64 / 1000.0,
                delay_ns: snap.servo.delay_ns as f64,
                status: snap.status.name().to_string(),
                error_bound_ns: snap.error_bound_ns,
            });
        }
        std::thread::sleep(interval.min(seconds.saturating_sub(start.elapsed())));
    }
    Ok(rows)
}

fn status_level(name: &str) -> f64 {
    Status::ALL.iter().position(|s| s.name() == name).unwrap_or(0) as f64
}

fn draw_err<E: std::error::Error + Send + Sync + 'static>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

/// Draws the four panels into `out` (SVG).
pub fn render(
    rows: &[CsvRow],
    lock_threshold_ns: f64,
    title: &str,
    out: &Path,
    size: (u32, u32),
) -> Result<()> {
    let samples: Vec<stats::Sample> = rows
        .iter()
        .map(|r| stats::Sample { time_s: r.time_s, offset_ns: r.offset_ns, delay_ns: None })
        .collect();
    let summary = stats::summarize(&samples, lock_threshold_ns);
    let events = stats::run_events(rows, summary.lock_index);
    let t0 = rows[0].time_s;
    let t = |r: &CsvRow| r.time_s - t0;
    let t_end = rows.iter().map(t).fold(0.0, f64::max).max(1e-3);
    // The lock moment: the page's change to LOCKED, else the offsets' own lock; none when the
    // series starts locked (a live plot of a page locked long ago).
    let lock_s = events
        .status_changes
        .iter()
        .find(|c| c.to == Status::Locked.name())
        .map(|c| c.time_s)
        .or(summary.lock_index.filter(|&i| i > 0).map(|i| rows[i].time_s))
        .map(|s| s - t0);
    let markers = Markers {
        lock_s,
        steps: events.step_times_s.iter().map(|s| s - t0).collect(),
        changes: events.status_changes.iter().map(|c| c.time_s - t0).collect(),
    };

    let root = SVGBackend::new(out, size).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root.titled(&format!("nicclock: {title}"), ("sans-serif", 18)).map_err(draw_err)?;
    let panels = root.split_evenly((4, 1));

    // Offsets before lock can be ~1e5 times those after: zoom on the locked part, clamp the rest.
    let after: Vec<f64> =
        summary.lock_index.map_or(vec![], |i| rows[i..].iter().map(|r| r.offset_ns.abs()).collect());
    let all_max = rows.iter().map(|r| r.offset_ns.abs()).fold(1.0, f64::max);
    let zoom = after.iter().copied().fold(0.0, f64::max) * 1.5;
    let (span, offset_label) = if zoom > 0.0 && zoom < all_max {
        (zoom, "offset (ns, clipped)")
    } else {
        (all_max * 1.05, "offset (ns)")
    };
    let offsets: Vec<(f64, f64)> = rows.iter().map(|r| (t(r), r.offset_ns.clamp(-span, span))).collect();
    linear_panel(&panels[0], offset_label, &offsets, (-span, span), t_end, OFFSET_COLOR, &markers, true)?;

    // The frequency before the first step (0) would flatten the locked part likewise.
    let after_lock = summary.lock_index.map_or(rows, |i| &rows[i..]);
    let (lo, hi) =
        after_lock.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(r.freq_ppb), hi.max(r.freq_ppb)));
    let pad = ((hi - lo) * 0.1).max(1.0);
    let (lo, hi) = (lo - pad, hi + pad);
    let clipped = rows.iter().any(|r| r.freq_ppb < lo || r.freq_ppb > hi);
    let freqs: Vec<(f64, f64)> = rows.iter().map(|r| (t(r), r.freq_ppb.clamp(lo, hi))).collect();
    let freq_label = if clipped { "frequency (ppb, clipped)" } else { "frequency (ppb)" };
    linear_panel(&panels[1], freq_label, &freqs, (lo, hi), t_end, FREQ_COLOR, &markers, false)?;

    // Rows without a bound (UNSYNCHRONIZED) are left out of its line.
    let bounds: Vec<(f64, f64)> =
        rows.iter().filter_map(|r| Some((t(r), r.bound_ns()?.max(1) as f64))).collect();
    let bmax = bounds.iter().map(|b| b.1).fold(10.0, f64::max) * 2.0;
    let bmin = (bounds.iter().map(|b| b.1).fold(f64::MAX, f64::min) / 2.0).clamp(1.0, bmax / 10.0);
    let mut chart =
        builder(&panels[2]).build_cartesian_2d(0.0..t_end, (bmin..bmax).log_scale()).map_err(draw_err)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .x_desc("time (s)")
        .y_desc("error bound (ns, log)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(draw_err)?;
    chart.draw_series(LineSeries::new(bounds, BOUND_COLOR.stroke_width(2))).map_err(draw_err)?;
    markers.draw(&mut chart, (bmin, bmax), false)?;

    // Status as a step line: each status held until the next row.
    let mut steps = Vec::with_capacity(rows.len() * 2);
    for w in rows.windows(2) {
        steps.push((t(&w[0]), status_level(&w[0].status)));
        steps.push((t(&w[1]), status_level(&w[0].status)));
    }
    let last = &rows[rows.len() - 1];
    steps.push((t(last), status_level(&last.status)));
    let top = (Status::ALL.len() - 1) as f64;
    let mut chart = builder(&panels[3]).build_cartesian_2d(0.0..t_end, -0.5..top + 0.5).map_err(draw_err)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .x_desc("time (s)")
        .y_desc("status")
        .y_labels(Status::ALL.len())
        .y_label_formatter(&|v| {
            let i = v.round();
            match Status::ALL.get(i as usize) {
                Some(s) if (v - i).abs() < 1e-6 => s.name().to_string(),
                _ => String::new(),
            }
        })
        .draw()
        .map_err(draw_err)?;
    chart.draw_series(LineSeries::new(steps, STATUS_COLOR.stroke_width(2))).map_err(draw_err)?;
    markers.draw(&mut chart, (-0.5, top + 0.5), false)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

fn builder<'a, 'b>(area: &'a DrawingArea<SVGBackend<'b>, Shift>) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(area);
    b.margin(6).x_label_area_size(30).y_label_area_size(110);
    b
}

#[allow(clippy::too_many_arguments)]
fn linear_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    label: &str,
    points: &[(f64, f64)],
    (lo, hi): (f64, f64),
    t_end: f64,
    color: RGBColor,
    markers: &Markers,
    label_markers: bool,
) -> Result<()> {
    let mut chart = builder(area).build_cartesian_2d(0.0..t_end, lo..hi).map_err(draw_err)?;
    chart.configure_mesh().max_light_lines(0).x_desc("time (s)").y_desc(label).draw().map_err(draw_err)?;
    chart.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2))).map_err(draw_err)?;
    markers.draw(&mut chart, (lo, hi), label_markers)
}

/// Vertical lines at the lock moment, the steps and the status changes.
struct Markers {
    lock_s: Option<f64>,
    steps: Vec<f64>,
    changes: Vec<f64>,
}

impl Markers {
    fn draw<X, Y>(
        &self,
        chart: &mut ChartContext<SVGBackend, Cartesian2d<X, Y>>,
        (lo, hi): (f64, f64),
        labels: bool,
    ) -> Result<()>
    where
        X: Ranged<ValueType = f64>,
        Y: Ranged<ValueType = f64>,
    {
        let line = |x: f64, style: ShapeStyle| PathElement::new(vec![(x, lo), (x, hi)], style);
        for &x in &self.changes {
            chart.draw_series(std::iter::once(line(x, CHANGE_COLOR.stroke_width(1)))).map_err(draw_err)?;
        }
        for &x in &self.steps {
            chart.draw_series(std::iter::once(line(x, STEP_COLOR.stroke_width(2)))).map_err(draw_err)?;
            if labels {
                let text = Text::new("step", (x, hi), ("sans-serif", 12).into_font().color(&STEP_COLOR));
                chart.draw_series(std::iter::once(text)).map_err(draw_err)?;
            }
        }
        if let Some(x) = self.lock_s {
            chart.draw_series(std::iter::once(line(x, LOCK_COLOR.stroke_width(2)))).map_err(draw_err)?;
            if labels {
                let text = Text::new(
                    format!("LOCKED at {x:.1} s"),
                    (x, lo + (hi - lo) * 0.85),
                    ("sans-serif", 12).into_font().color(&LOCK_COLOR),
                );
                chart.draw_series(std::iter::once(text)).map_err(draw_err)?;
            }
        }
        Ok(())
    }
}

//! `nicclock stats FILE`: lock time, RMS offset, |offset| percentiles and mean delay of a servo run,
//! from nicclockd's `--stats-file` CSV or log lines (nicclockd's, phc2sys', ptp4l's), by nicclock::stats.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use nicclock::stats::{self, RunEvents, Source, Summary};
use serde::Serialize;

use crate::output::outln;

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    source: Source,
    ignored_lines: usize,
    #[serde(flatten)]
    summary: &'a Summary,
    /// Bound, steps and status changes: from a stats CSV only.
    #[serde(flatten)]
    events: Option<&'a RunEvents>,
}

/// Largest input read: a day of updates at 1000 Hz as CSV is ~5 GB, but a run anyone summarises
/// by hand is far smaller; beyond this the input is refused rather than read into memory.
const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The file's text: a regular file or a pipe, at most MAX_INPUT_BYTES (a device such as /dev/zero
/// would be read forever), invalid UTF-8 replaced (such lines are simply not samples).
pub(crate) fn read_input(file: &Path) -> Result<String> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let kind = f.metadata().with_context(|| format!("cannot stat {}", file.display()))?.file_type();
    if !(kind.is_file() || kind.is_fifo()) {
        bail!("{} is not a file: give nicclockd's --stats-file or a saved log", file.display());
    }
    let mut bytes = Vec::new();
    f.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", file.display()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!("{} is larger than {} MiB: summarise a part of it", file.display(), MAX_INPUT_BYTES >> 20);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub fn stats(file: &Path, lock_threshold_ns: f64, json: bool) -> Result<ExitCode> {
    let text = read_input(file)?;
    let parsed = stats::parse(&text);
    if parsed.samples.is_empty() {
        bail!(
            "no samples in {}: expected nicclockd's --stats-file CSV (header {:?}) or log lines like \
             'phc2sys[12.3]: CLOCK_REALTIME phc offset -23 s2 freq +100 delay 500'",
            file.display(),
            stats::STATS_CSV_HEADER
        );
    }
    let summary = stats::summarize(&parsed.samples, lock_threshold_ns);
    let events = stats::parse_csv_rows(&text).map(|(rows, _)| stats::run_events(&rows, summary.lock_index));
    if json {
        let report = Report {
            file: file.display().to_string(),
            source: parsed.source,
            ignored_lines: parsed.ignored_lines,
            summary: &summary,
            events: events.as_ref(),
        };
        outln!("{}", serde_json::to_string(&report).context("encoding the statistics as JSON")?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = &summary;
    let source = match parsed.source {
        Source::StatsCsv => "nicclockd stats CSV",
        Source::ServoLog => "servo log lines",
    };
    let ns = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ns"));
    outln!(
        "file        {} ({source}, {} samples, {} other lines)",
        file.display(),
        s.samples,
        parsed.ignored_lines
    );
    match (s.lock_index, s.lock_time_s) {
        (Some(i), Some(t)) => outln!(
            "lock        after {t:.2} s (sample {}: the first of {} in a row with |offset| < {} ns)",
            i + 1,
            stats::LOCK_RUN,
            s.lock_threshold_ns
        ),
        _ => outln!(
            "lock        never ({} in a row with |offset| < {} ns)",
            stats::LOCK_RUN,
            s.lock_threshold_ns
        ),
    }
    outln!(
        "offset      rms {} mean {} over the {} samples after lock",
        ns(s.rms_offset_ns),
        ns(s.mean_offset_ns),
        s.samples_after_lock
    );
    outln!(
        "|offset|    p50 {} p90 {} p99 {} max {} after lock; max {} overall",
        ns(s.abs_offset_p50_ns),
        ns(s.abs_offset_p90_ns),
        ns(s.abs_offset_p99_ns),
        ns(s.abs_offset_max_ns),
        ns(s.max_abs_offset_ns)
    );
    outln!("delay       mean {} after lock, {} overall", ns(s.mean_delay_ns), ns(s.mean_delay_all_ns));
    if let Some(e) = &events {
        let ns = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ns"));
        outln!(
            "bound       max {} overall, {} after lock",
            ns(e.max_error_bound_ns),
            ns(e.max_error_bound_after_lock_ns)
        );
        match e.locked_status_time_s {
            Some(t) => outln!("LOCKED      status LOCKED first after {t:.2} s"),
            None => outln!("LOCKED      the status never was LOCKED"),
        }
        let at: Vec<String> = e.step_times_s.iter().map(|t| format!("{t:.2}")).collect();
        match at.is_empty() {
            true => outln!("steps       0"),
            false => outln!("steps       {} (at {} s)", e.steps, at.join(", ")),
        }
        outln!("events      {} status changes", e.status_changes.len());
        for c in &e.status_changes {
            outln!("  {:>10.3} s  {} -> {}", c.time_s, c.from, c.to);
        }
    }
    Ok(ExitCode::SUCCESS)
}

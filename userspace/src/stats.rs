//! Servo statistics over a series of offset samples: lock time, RMS offset, |offset| percentiles,
//! mean delay. One implementation for the discipline bench, the simulated scenarios, the lab and
//! `nicclock stats`, with parsers for nicclockd's `--stats-file` CSV and linuxptp-style log lines.

use serde::Serialize;

/// Consecutive samples inside the lock threshold that make "locked".
pub const LOCK_RUN: usize = 5;

/// The CSV header nicclockd writes at the top of a new `--stats-file`.
pub const STATS_CSV_HEADER: &str = "time_s,offset_ns,servo_state,freq_ppb,delay_ns,status,error_bound_ns";

/// One measurement: when (seconds, any origin), the offset and, when known, the measurement delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub time_s: f64,
    pub offset_ns: f64,
    pub delay_ns: Option<f64>,
}

/// What a series of samples says. Figures "after lock" are over the samples from the lock index
/// on; all are `None` when the series never locked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Samples in the series.
    pub samples: usize,
    /// |offset| below which a sample counts towards lock, ns.
    pub lock_threshold_ns: f64,
    /// Index of the first of [`LOCK_RUN`] consecutive samples with |offset| < the threshold.
    pub lock_index: Option<usize>,
    /// Seconds from the first sample to the lock index's sample.
    pub lock_time_s: Option<f64>,
    /// Samples from the lock index on.
    pub samples_after_lock: usize,
    /// Root mean square of the offsets after lock, ns.
    pub rms_offset_ns: Option<f64>,
    /// Mean of the offsets after lock, ns.
    pub mean_offset_ns: Option<f64>,
    /// |offset| percentiles after lock (nearest rank: the value at index ⌊n·p⌋ of the sorted
    /// values) and the largest, ns.
    pub abs_offset_p50_ns: Option<f64>,
    pub abs_offset_p90_ns: Option<f64>,
    pub abs_offset_p99_ns: Option<f64>,
    pub abs_offset_max_ns: Option<f64>,
    /// Largest |offset| over the whole series, ns (None when empty).
    pub max_abs_offset_ns: Option<f64>,
    /// Mean delay after lock and over the whole series, ns (None without delays).
    pub mean_delay_ns: Option<f64>,
    pub mean_delay_all_ns: Option<f64>,
}

/// The index of the first of [`LOCK_RUN`] consecutive offsets with |offset| < `threshold`.
pub fn lock_index<I>(offsets: I, threshold: f64) -> Option<usize>
where
    I: IntoIterator<Item = f64>,
{
    let mut run = 0;
    for (i, o) in offsets.into_iter().enumerate() {
        if o.abs() < threshold {
            run += 1;
            if run == LOCK_RUN {
                return Some(i + 1 - LOCK_RUN);
            }
        } else {
            run = 0;
        }
    }
    None
}

/// Root mean square (None for no values).
pub fn rms(values: &[f64]) -> Option<f64> {
    mean_by(values, |v| v * v).map(f64::sqrt)
}

fn mean_by(values: &[f64], f: impl Fn(f64) -> f64) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().map(|v| f(*v)).sum::<f64>() / values.len() as f64)
}

/// The nearest-rank percentile `p` (0..=1) of ascending `sorted`: the value at ⌊n·p⌋, clamped.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((sorted.len() as f64 * p) as usize).min(last)])
}

/// Summarises `samples` with "locked" meaning |offset| < `lock_threshold_ns`.
pub fn summarize(samples: &[Sample], lock_threshold_ns: f64) -> Summary {
    let lock = lock_index(samples.iter().map(|s| s.offset_ns), lock_threshold_ns);
    let after = lock.map_or(&[][..], |i| &samples[i..]);
    let offsets: Vec<f64> = after.iter().map(|s| s.offset_ns).collect();
    let mut abs: Vec<f64> = offsets.iter().map(|o| o.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let delays = |s: &[Sample]| s.iter().filter_map(|s| s.delay_ns).collect::<Vec<f64>>();
    Summary {
        samples: samples.len(),
        lock_threshold_ns,
        lock_index: lock,
        lock_time_s: lock.map(|i| samples[i].time_s - samples[0].time_s),
        samples_after_lock: after.len(),
        rms_offset_ns: rms(&offsets),
        mean_offset_ns: mean_by(&offsets, |v| v),
        abs_offset_p50_ns: percentile(&abs, 0.5),
        abs_offset_p90_ns: percentile(&abs, 0.9),
        abs_offset_p99_ns: percentile(&abs, 0.99),
        abs_offset_max_ns: abs.last().copied(),
        max_abs_offset_ns: samples.iter().map(|s| s.offset_ns.abs()).max_by(f64::total_cmp),
        mean_delay_ns: mean_by(&delays(after), |v| v),
        mean_delay_all_ns: mean_by(&delays(samples), |v| v),
    }
}

/// Where samples came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// nicclockd's `--stats-file` CSV.
    StatsCsv,
    /// Log lines `name[time]: ... offset X sN freq Y delay Z` (nicclockd, phc2sys, ptp4l).
    ServoLog,
}

/// Samples parsed from a file's text, and how many non-blank lines were not samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub source: Source,
    pub samples: Vec<Sample>,
    pub ignored_lines: usize,
}

/// Whether `text` starts with nicclockd's stats CSV header (PTP mode appends columns to it).
pub fn is_stats_csv(text: &str) -> bool {
    text.lines().next().is_some_and(|l| {
        let l = l.trim();
        l.strip_prefix(STATS_CSV_HEADER).is_some_and(|rest| rest.is_empty() || rest.starts_with(','))
    })
}

/// Parses nicclockd's stats CSV (recognised by its header) or else servo log lines.
pub fn parse(text: &str) -> Parsed {
    if is_stats_csv(text) {
        parse_with(text.lines().skip(1), Source::StatsCsv, csv_sample)
    } else {
        parse_with(text.lines(), Source::ServoLog, log_sample)
    }
}

fn parse_with<'a>(
    lines: impl Iterator<Item = &'a str>,
    source: Source,
    sample: fn(&str) -> Option<Sample>,
) -> Parsed {
    let (mut samples, mut ignored_lines) = (Vec::new(), 0);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        match sample(line) {
            Some(s) => samples.push(s),
            None => ignored_lines += 1,
        }
    }
    Parsed { source, samples, ignored_lines }
}

/// `time_s,offset_ns,servo_state,freq_ppb,delay_ns,...`
fn csv_sample(line: &str) -> Option<Sample> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    let num = |i: usize| f.get(i)?.parse::<f64>().ok().filter(|v| v.is_finite());
    Some(Sample { time_s: num(0)?, offset_ns: num(1)?, delay_ns: Some(num(4)?) })
}

/// One line of nicclockd's `--stats-file` CSV: its first seven columns (PTP mode appends more).
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    pub time_s: f64,
    pub offset_ns: f64,
    /// linuxptp servo state: 0 unlocked, 1 jump (the clock was stepped), 2 locked, 3 locked stable.
    pub servo_state: u8,
    pub freq_ppb: f64,
    pub delay_ns: f64,
    /// The page's status name (UNSYNCHRONIZED, LOCKING, LOCKED, ...).
    pub status: String,
    /// The published error bound, ns; [`NO_BOUND`] while there is none (UNSYNCHRONIZED).
    pub error_bound_ns: u64,
}

/// The error bound column's value while the page gives no bound.
pub const NO_BOUND: u64 = u64::MAX;

impl CsvRow {
    /// The error bound, None while the page gave none.
    pub fn bound_ns(&self) -> Option<u64> {
        (self.error_bound_ns != NO_BOUND).then_some(self.error_bound_ns)
    }
}

/// The servo state of a row on which the servo stepped the clock.
pub const SERVO_JUMP: u8 = 1;

/// The rows of a stats CSV (None when `text` is not one) and how many non-blank lines were not rows.
pub fn parse_csv_rows(text: &str) -> Option<(Vec<CsvRow>, usize)> {
    if !is_stats_csv(text) {
        return None;
    }
    let (mut rows, mut ignored) = (Vec::new(), 0);
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        match csv_row(line) {
            Some(r) => rows.push(r),
            None => ignored += 1,
        }
    }
    Some((rows, ignored))
}

fn csv_row(line: &str) -> Option<CsvRow> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    let num = |i: usize| f.get(i)?.parse::<f64>().ok().filter(|v| v.is_finite());
    let status =
        f.get(5).filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))?;
    Some(CsvRow {
        time_s: num(0)?,
        offset_ns: num(1)?,
        servo_state: f.get(2)?.parse().ok()?,
        freq_ppb: num(3)?,
        delay_ns: num(4)?,
        status: status.to_string(),
        error_bound_ns: f.get(6)?.parse().ok()?,
    })
}

/// A status change seen between two consecutive rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChange {
    /// The time of the first row with the new status, s.
    pub time_s: f64,
    pub from: String,
    pub to: String,
}

/// What the stats CSV says beyond the offsets: bound, steps and status changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvents {
    /// Largest published error bound over the run and from the lock sample on, ns (rows without
    /// a bound left out).
    pub max_error_bound_ns: Option<u64>,
    pub max_error_bound_after_lock_ns: Option<u64>,
    /// Seconds from the first row to the first row whose status is LOCKED (the page's own view).
    pub locked_status_time_s: Option<f64>,
    /// Rows on which the servo stepped the clock (servo state 1), and when.
    pub steps: usize,
    pub step_times_s: Vec<f64>,
    /// Every change of the page's status, in order.
    pub status_changes: Vec<StatusChange>,
}

/// The bound, steps and status changes of `rows`; `lock_index` as [`summarize`] found it.
pub fn run_events(rows: &[CsvRow], lock_index: Option<usize>) -> RunEvents {
    let step_times_s: Vec<f64> =
        rows.iter().filter(|r| r.servo_state == SERVO_JUMP).map(|r| r.time_s).collect();
    let status_changes = rows
        .windows(2)
        .filter(|w| w[0].status != w[1].status)
        .map(|w| StatusChange { time_s: w[1].time_s, from: w[0].status.clone(), to: w[1].status.clone() })
        .collect();
    let first = rows.first().map_or(0.0, |r| r.time_s);
    RunEvents {
        max_error_bound_ns: rows.iter().filter_map(CsvRow::bound_ns).max(),
        max_error_bound_after_lock_ns: lock_index
            .and_then(|i| rows.get(i..))
            .and_then(|after| after.iter().filter_map(CsvRow::bound_ns).max()),
        locked_status_time_s: rows.iter().find(|r| r.status == "LOCKED").map(|r| r.time_s - first),
        steps: step_times_s.len(),
        step_times_s,
        status_changes,
    }
}

/// `phc2sys[12.345]: CLOCK_REALTIME phc offset -23 s2 freq +100 delay 500`: a line with an
/// `offset` value followed by a servo state `s0`..`s9`; the time is the bracketed prefix.
fn log_sample(line: &str) -> Option<Sample> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "offset")?;
    let state = words.get(at + 2)?;
    if !(state.len() == 2 && state.starts_with('s') && state.as_bytes()[1].is_ascii_digit()) {
        return None;
    }
    let num = |w: &str| w.parse::<f64>().ok().filter(|v| v.is_finite());
    let offset_ns = num(words[at + 1])?;
    let delay_ns = words.iter().position(|w| *w == "delay").and_then(|i| num(words.get(i + 1)?));
    let head = words.first()?;
    let time_s = num(head.get(head.find('[')? + 1..head.find(']')?)?)?;
    Some(Sample { time_s, offset_ns, delay_ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(offsets: &[f64]) -> Vec<Sample> {
        offsets
            .iter()
            .enumerate()
            .map(|(i, o)| Sample {
                time_s: 10.0 + i as f64 * 0.1,
                offset_ns: *o,
                delay_ns: Some(100.0 + i as f64),
            })
            .collect()
    }

    #[test]
    fn lock_is_the_first_of_five_inside_the_threshold() {
        let o = [5000.0, 10.0, 20.0, -30.0, 40.0, 2000.0, 1.0, -2.0, 3.0, 4.0, -5.0, 6.0];
        assert_eq!(lock_index(o, 1000.0), Some(6));
        assert_eq!(lock_index(o, 1.0), None);
        let s = summarize(&series(&o), 1000.0);
        assert_eq!(s.lock_index, Some(6));
        assert!((s.lock_time_s.unwrap() - 0.6).abs() < 1e-9);
        assert_eq!(s.samples_after_lock, 6);
        // RMS of 1..6: sqrt(91 / 6).
        assert!((s.rms_offset_ns.unwrap() - (91.0f64 / 6.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.mean_offset_ns, Some(7.0 / 6.0));
        assert_eq!((s.abs_offset_p50_ns, s.abs_offset_max_ns), (Some(4.0), Some(6.0)));
        assert_eq!(s.max_abs_offset_ns, Some(5000.0));
        assert_eq!(s.mean_delay_ns, Some((106.0 + 111.0) / 2.0));
        assert_eq!(s.mean_delay_all_ns, Some(105.5));
    }

    #[test]
    fn a_series_that_never_locks_has_no_after_lock_figures() {
        let s = summarize(&series(&[5000.0, 1.0, 2.0, 3.0, 4.0]), 3.5);
        assert_eq!(
            (s.lock_index, s.lock_time_s, s.rms_offset_ns, s.abs_offset_p99_ns),
            (None, None, None, None)
        );
        assert_eq!((s.samples, s.samples_after_lock, s.max_abs_offset_ns), (5, 0, Some(5000.0)));
        assert_eq!(summarize(&[], 1000.0).max_abs_offset_ns, None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(51.0));
        assert_eq!(percentile(&v, 0.9), Some(91.0));
        assert_eq!(percentile(&v, 0.99), Some(100.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn csv_rows_give_bound_steps_and_status_changes() {
        let csv = format!(
            "{STATS_CSV_HEADER}\n\
             0.0,90000,0,0,800,UNSYNCHRONIZED,18446744073709551615\n\
             0.1,90000,1,0,800,LOCKING,50000\n\
             0.2,10,2,1.5,800,LOCKING,9000\n\
             0.3,-20,2,1.5,800,LOCKED,700\n\
             bad,line\n\
             0.4,5,2,1.5,800,LOCKED,650\n"
        );
        let (rows, ignored) = parse_csv_rows(&csv).unwrap();
        assert_eq!((rows.len(), ignored), (5, 1));
        assert_eq!(rows[1].servo_state, SERVO_JUMP);
        assert_eq!(rows[3].status, "LOCKED");
        let e = run_events(&rows, Some(2));
        assert_eq!((e.max_error_bound_ns, e.max_error_bound_after_lock_ns), (Some(50000), Some(9000)));
        assert_eq!((e.steps, e.step_times_s.clone()), (1, vec![0.1]));
        assert!((e.locked_status_time_s.unwrap() - 0.3).abs() < 1e-12);
        let changes: Vec<(f64, &str, &str)> =
            e.status_changes.iter().map(|c| (c.time_s, c.from.as_str(), c.to.as_str())).collect();
        assert_eq!(changes, [(0.1, "UNSYNCHRONIZED", "LOCKING"), (0.3, "LOCKING", "LOCKED")]);
        assert_eq!(parse_csv_rows("phc2sys[1.0]: offset 1 s2 freq 0\n"), None);
    }

    #[test]
    fn parses_stats_csv_and_servo_logs() {
        let csv = format!("{STATS_CSV_HEADER}\n0.100,-96,2,100.506,832,LOCKING,5000\nbroken\n0.200,12,2,1.5,800,LOCKED,900\n");
        let p = parse(&csv);
        assert_eq!((p.source, p.ignored_lines), (Source::StatsCsv, 1));
        assert_eq!(p.samples[1], Sample { time_s: 0.2, offset_ns: 12.0, delay_ns: Some(800.0) });

        let ptp = format!("{STATS_CSV_HEADER},port_state,rx_accepted\n0.1,5,0,1.0,10,LOCKING,900,SLAVE,3\n");
        assert_eq!(parse(&ptp).source, Source::StatsCsv, "PTP mode's extra columns");
        assert_eq!(parse(&format!("{STATS_CSV_HEADER}x\n")).source, Source::ServoLog);

        let log = "phc2sys[12.345]: CLOCK_REALTIME phc offset -23 s2 freq +100 delay 500\n\
                   phc2sys[12.445]: clock jumped\n\
                   nicclockd[3868.249]: phc offset 7 s0 freq +100506 delay 832\n\
                   ptp4l[5.0]: master offset 4 s1 freq -3\n";
        let p = parse(log);
        assert_eq!((p.source, p.samples.len(), p.ignored_lines), (Source::ServoLog, 3, 1));
        assert_eq!(p.samples[0], Sample { time_s: 12.345, offset_ns: -23.0, delay_ns: Some(500.0) });
        assert_eq!(p.samples[1].offset_ns, 7.0);
        assert_eq!(p.samples[2].delay_ns, None);
    }
}

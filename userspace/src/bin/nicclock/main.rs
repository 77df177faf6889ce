//! `nicclock`: read nicclockd's time pages from the command line (list, now, status, watch, events,
//! compare, wait, stats). Exit codes: 0 success (also when a reader closes our output pipe), 1
//! runtime error (no page, stale, output failed, …), 2 usage error.

mod commands;
mod compare;
mod format;
mod output;
mod stats;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Read disciplined NIC PTP-clock time that nicclockd publishes in shared memory.
///
/// Exit status: 0 success (also when the reader of our output closes the pipe, as `head` does),
/// 1 runtime error (no page, stale or unusable page, output could not be written, …), 2 usage error.
#[derive(Parser, Debug)]
#[command(name = "nicclock", version)]
pub struct Cli {
    /// Directory holding the time pages.
    #[arg(long, global = true, default_value = nicclock::abi::DEFAULT_DIR, value_name = "DIR")]
    pub dir: PathBuf,
    /// Page to read (the part after `nicclock-`); default: the only page in DIR.
    #[arg(long, short, global = true, value_name = "NAME", value_parser = parse_page_name)]
    pub page: Option<String>,
    /// Treat the page as stale after this many seconds without an update (default: 3 update
    /// intervals, at least 1 s).
    #[arg(long, global = true, value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub max_age: Option<std::time::Duration>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the time pages in DIR with their status.
    List,
    /// Print the current time, its error bound and the clock status ("TIME ±BOUND ns STATUS").
    /// Exit 1 without a time when the page has none to give: stale, UNSYNCHRONIZED, STOPPED,
    /// DEVICE_LOST.
    Now {
        /// UTC instead of TAI.
        #[arg(long)]
        utc: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TimeFormat::Ns)]
        format: TimeFormat,
    },
    /// Print the page's identity, status and servo figures; exit 1 (after printing) when the page
    /// gives no usable time, as `now` does: stale, UNSYNCHRONIZED, STOPPED or DEVICE_LOST.
    #[command(after_long_help = STATUS_JSON_HELP)]
    Status {
        /// Machine-readable: one JSON object on one line (fields: see --help).
        #[arg(long)]
        json: bool,
    },
    /// One line a second: state, offset, frequency, error bound.
    Watch {
        /// Stop after this many lines (default: run until interrupted).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        count: Option<u64>,
        /// Seconds between lines.
        #[arg(long, default_value = "1", value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
        interval: std::time::Duration,
    },
    /// Compare the page's time with the system clock for a while, or with another page
    /// (--against); exit 1 if any reading fell outside the published error bound(s).
    ///
    /// With --against PAGE2: each reading of PAGE2 is taken between two readings of the page (one
    /// bracket), and one line per reading gives the offset (PAGE2 − page), the combined bound (both
    /// bounds plus half the bracket), and whether the offset lies within it and within the page's
    /// own bound; then a summary line. Exit 1 when any offset lies outside the combined bound.
    Compare {
        /// How long to compare with the system clock.
        #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true, conflicts_with = "against")]
        seconds: std::time::Duration,
        /// Readings per second (system clock comparison).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000), allow_negative_numbers = true, conflicts_with = "against")]
        rate: u32,
        /// Compare with this other page (the part after `nicclock-`, in the same --dir).
        #[arg(long, value_name = "PAGE", value_parser = parse_page_name)]
        against: Option<String>,
        /// Readings of both pages (with --against).
        #[arg(long, default_value_t = 10, value_name = "N", requires = "against", value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
        count: u64,
        /// Seconds between readings (with --against).
        #[arg(long, default_value = "1", value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true, requires = "against")]
        interval: std::time::Duration,
        /// One JSON object per reading ({"offset_ns","page_bound_ns","against_bound_ns",
        /// "bracket_ns","combined_bound_ns","within_combined","within_page_bound"}), then
        /// {"summary":{...}} (with --against).
        #[arg(long, requires = "against")]
        json: bool,
    },
    /// Follow clock events (steps, state changes, device lost) as they happen.
    Events {
        /// Stop after this many events.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        count: Option<u64>,
        /// Give up (exit 1) when no event arrives for this many seconds.
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
        timeout: Option<std::time::Duration>,
        /// Start with the events still in the page's ring.
        #[arg(long)]
        history: bool,
        /// One JSON object per line: {"seq","kind","urgency","tai_ns","magnitude","detail"} per
        /// event (kind and urgency as the text lines name them), {"missed": N} when the ring overflowed.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the page says STATUS: blocks on the page's event futex (and, with --page, on the
    /// page file appearing), no polling. Exit 0 when reached, 1 on timeout naming the status it is
    /// still in, or when the page is stale.
    Wait {
        /// The status to wait for: UNSYNCHRONIZED, LOCKING, LOCKED, HOLDOVER, DEVICE_LOST, STOPPED.
        #[arg(long, value_name = "STATUS", value_parser = parse_status)]
        status: nicclock::Status,
        /// Give up (exit 1) after this many seconds.
        #[arg(long, default_value = "60", value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
        timeout: std::time::Duration,
    },
    /// Statistics of a servo run: lock time, RMS offset, |offset| percentiles, mean delay.
    ///
    /// FILE is nicclockd's --stats-file CSV or a log with linuxptp-style lines
    /// (`nicclockd[T]: phc offset X s2 freq Y delay Z`, phc2sys -m, ptp4l -m). Locked: the first of
    /// 5 samples in a row with |offset| < --lock-threshold; the figures "after lock" are from there
    /// on. Exit 1 when FILE holds no samples.
    #[command(after_long_help = STATS_JSON_HELP)]
    Stats {
        /// The CSV or log file.
        file: PathBuf,
        /// |offset| below which a sample counts towards lock, ns.
        #[arg(long, default_value_t = 1000.0, value_name = "NS", value_parser = parse_threshold, allow_negative_numbers = true)]
        lock_threshold: f64,
        /// Machine-readable: one JSON object on one line (fields: see --help).
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// Nanoseconds since 1970-01-01.
    Ns,
    /// RFC 3339 with nanoseconds (`Z` for UTC, ` TAI` suffix for TAI).
    Rfc3339,
}

fn parse_page_name(s: &str) -> Result<String, String> {
    nicclock::validate_name(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

/// The largest number of seconds any option takes (~31.7 years).
const MAX_SECONDS: f64 = 1e9;

fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s
        .parse()
        .ok()
        .filter(|v: &f64| !v.is_nan())
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))?;
    if v <= 0.0 {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    if v >= MAX_SECONDS {
        return Err(format!("{s} seconds is too large: the range is 0 < SECONDS < {MAX_SECONDS:e}"));
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err(format!("{s} must be a positive, finite number of ns")),
        Err(_) => Err(format!("{s:?} is not a number of ns")),
    }
}

fn parse_status(s: &str) -> Result<nicclock::Status, String> {
    nicclock::Status::ALL.into_iter().find(|st| st.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
        let names: Vec<&str> = nicclock::Status::ALL.iter().map(|st| st.name()).collect();
        format!("{s:?} is not a status ({})", names.join(", "))
    })
}

const STATUS_JSON_HELP: &str = "\
--json fields (one object, one line):
  page                path of the page file
  model, pci_address  the NIC (\"82576\", \"0000:01:00.0\")
  clock_id            EUI-64 clock identity, \"52:54:00:ff:fe:12:34:56\"
  writer_pid          the publishing nicclockd (0: none)
  status              UNSYNCHRONIZED | LOCKING | LOCKED | HOLDOVER | DEVICE_LOST | STOPPED
  stale               true when no update came within max_age_ns
  counter             the counter the mapping is in (tsc | monotonic_raw)
  tai_ns              TAI now in ns since 1970, null when the page gives no time
  error_bound_ns      its error bound, ns (null likewise)
  age_ns              time since the last update, ns (null before the first)
  max_age_ns          the staleness limit in force, ns
  update_interval_ns  the writer's update interval, ns
  update_count        updates published so far
  tai_utc_offset_s    TAI - UTC, s
  leap                none | insert | delete (pending leap second)
  servo_offset_ns     last measured offset of the NIC clock from the reference, ns
  servo_freq_ppb      the servo's frequency figure, ppb
  servo_delay_ns      last measurement's delay (bracket width), ns
  servo_state         linuxptp servo state number (0 unlocked, 1 jump, 2 locked)
  reference           system_clock | pps | ptp | unknown (a page older than ABI 1.3)
  gm_identity         PTP grandmaster identity as ptp4l prints it (\"001122.fffe.334455\"), null unless ptp
  steps_removed       PTP stepsRemoved announced by the master (0 unless ptp)
  port_state          PTP port state (LISTENING, UNCALIBRATED, SLAVE, ...; NONE unless ptp)
  ptp_flags           the Announce's flags octet as announced (1 leap61, 2 leap59, 4 UTC offset valid,
                      8 PTP timescale, 16 time traceable, 32 frequency traceable)
  utc_offset_source   where tai_utc_offset_s comes from: host | reference | unknown
  gm_clock_accuracy   the master's announced clockAccuracy code (0x20 = 25 ns ... 0xfe unknown; 0 unless ptp)
  gm_accuracy_ns      the error bound share that accuracy implies, ns (null: announced unknown)";

const STATS_JSON_HELP: &str = "\
--json fields (one object, one line; figures in ns, null when not defined):
  file, source        the file read; stats_csv or servo_log
  ignored_lines       non-blank lines that were not samples
  samples             samples read
  lock_threshold_ns   the --lock-threshold
  lock_index          0-based index of the lock sample (null: never locked)
  lock_time_s         seconds from the first sample to the lock sample
  samples_after_lock  samples from the lock sample on
  rms_offset_ns, mean_offset_ns                    offset after lock
  abs_offset_p50_ns, abs_offset_p90_ns, abs_offset_p99_ns, abs_offset_max_ns
                      |offset| after lock: nearest-rank percentiles (value at floor(n*p)) and max
  max_abs_offset_ns   largest |offset| over all samples
  mean_delay_ns, mean_delay_all_ns                 mean delay after lock / over all samples";

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors: clap prints them and exits 2
    match commands::run(&cli) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<output::OutputError>() {
            // The reader of our output went away (`| head -1`): a quiet end.
            Some(output::OutputError::Closed) => ExitCode::SUCCESS,
            _ => {
                output::warn(format_args!("{e:#}"));
                ExitCode::from(1)
            }
        },
    }
}

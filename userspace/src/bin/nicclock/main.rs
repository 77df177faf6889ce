//! `nicclock`: read nicclockd's time pages from the command line (list, now, status, watch, events,
//! compare, wait, stats, plot, metrics). Exit codes: 0 success (also when a reader closes our output pipe), 1
//! runtime error (no page, stale, output failed, …), 2 usage error.

mod commands;
mod convert;
mod format;
mod metrics;
mod output;
mod plot;
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
    /// Compare the page's time with the system clock for a while; exit 1 if any reading fell
    /// outside the published error bound.
    Compare {
        /// How long to compare.
        #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
        seconds: std::time::Duration,
        /// Readings per second.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000), allow_negative_numbers = true)]
        rate: u32,
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
        /// One JSON object per line: {"seq","kind","urgency","tai_ns","magnitude","detail","epoch"} per
        /// event (kind and urgency as the text lines name them), {"missed": N} when the ring overflowed.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the page says STATUS, or until it is LOCKED with an error bound of at most
    /// --max-error: blocks on the page's futex words (and, with --page, on the page file
    /// appearing), no polling. Exit 0 when reached, 1 on timeout naming where the clock stands
    /// (or when the page is stale, stopped or lost), 2 on usage errors. Gate a service on it:
    /// `ExecStartPre=/usr/local/bin/nicclock --page eth0 wait --max-error 1us --timeout 120`.
    Wait {
        /// The status to wait for: UNSYNCHRONIZED, LOCKING, LOCKED, HOLDOVER, DEVICE_LOST, STOPPED.
        #[arg(long, value_name = "STATUS", value_parser = parse_status, required_unless_present = "max_error")]
        status: Option<nicclock::Status>,
        /// Wait until LOCKED with an error bound (as `now` computes it) of at most BOUND: a number
        /// with its unit, ns, us (or µs), ms or s — 1us, 250ns, 0.5ms.
        #[arg(long, value_name = "BOUND", value_parser = parse_max_error, allow_hyphen_values = true)]
        max_error: Option<u64>,
        /// Give up (exit 1) after this many seconds.
        #[arg(long, default_value = "60", value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
        timeout: std::time::Duration,
    },
    /// Convert a timestamp taken earlier (up to 15 s ago without a step) into TAI (or UTC), by the
    /// mapping in force at that moment: "TIME ±MAX ns STATUS est ±EST ns epoch N". Exit 1 when it
    /// is refused: taken before a clock step, restart or reference change (another epoch), older
    /// than the page's history, or in the future.
    #[command(group = clap::ArgGroup::new("when").required(true).multiple(false))]
    Convert {
        /// A CLOCK_MONOTONIC timestamp, SEC.NSEC (e.g. 12345.000678901, what V4L2 stamps frames with).
        #[arg(long, value_name = "SEC.NSEC", value_parser = convert::parse_timespec, group = "when")]
        monotonic: Option<u64>,
        /// A CLOCK_MONOTONIC_RAW timestamp, SEC.NSEC.
        #[arg(long, value_name = "SEC.NSEC", value_parser = convert::parse_timespec, group = "when")]
        monotonic_raw: Option<u64>,
        /// A CLOCK_REALTIME timestamp, SEC.NSEC (UTC seconds since 1970).
        #[arg(long, value_name = "SEC.NSEC", value_parser = convert::parse_timespec, group = "when")]
        realtime: Option<u64>,
        /// A value of the page's TSC counter (`rdtsc`; only on a TSC page).
        #[arg(long, value_name = "TICKS", group = "when")]
        tsc: Option<u64>,
        /// UTC instead of TAI.
        #[arg(long)]
        utc: bool,
        /// Output format of the time.
        #[arg(long, value_enum, default_value_t = TimeFormat::Ns)]
        format: TimeFormat,
    },
    /// Statistics of a servo run: lock time, RMS offset, |offset| percentiles, mean delay (and
    /// from a stats CSV: max error bound, steps, status changes).
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
    /// Draw an SVG of offset, frequency, error bound and status over time, with the lock moment,
    /// clock steps and status changes marked: from nicclockd's --stats-file CSV, or sampled live
    /// from the page (--live SECONDS). Offsets before lock are clipped to 1.5 times the largest
    /// after lock, so that the locked part is readable.
    Plot {
        /// nicclockd's --stats-file CSV.
        #[arg(required_unless_present = "live", conflicts_with = "live")]
        file: Option<PathBuf>,
        /// Sample the page (--dir/--page) at each update for this many seconds instead.
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
        live: Option<std::time::Duration>,
        /// The SVG file to write.
        #[arg(long, short, value_name = "SVG")]
        output: PathBuf,
        /// |offset| below which a sample counts towards lock (as `stats`), ns.
        #[arg(long, default_value_t = 1000.0, value_name = "NS", value_parser = parse_threshold, allow_negative_numbers = true)]
        lock_threshold: f64,
        /// Picture width and height in pixels.
        #[arg(long, default_value = "1000x900", value_name = "WxH", value_parser = parse_size)]
        size: (u32, u32),
    },
    /// Serve every page in DIR as Prometheus metrics (OpenMetrics text) at http://LISTEN/metrics:
    /// status (a state set), offset, frequency, error bound, update age, updates, events by kind,
    /// PTP port state (with --page: that page only). Only reads the pages: run it as any user.
    /// Runs until stopped.
    Metrics {
        /// Address and port to listen on (default loopback only; 0.0.0.0:9469 for every interface).
        #[arg(long, default_value = "127.0.0.1:9469", value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
    },
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let err = || format!("{s:?} is not a size WIDTHxHEIGHT in pixels, 200..=8000 each (e.g. 1000x900)");
    let (w, h) = s.split_once('x').ok_or_else(err)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| err())?, h.parse().map_err(|_| err())?);
    if !(200..=8000).contains(&w) || !(200..=8000).contains(&h) {
        return Err(err());
    }
    Ok((w, h))
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

/// An error bound with its unit, in ns (fractions of a ns round down).
fn parse_max_error(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| c.is_alphabetic() || c == 'µ').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "" => return Err(format!("{s:?} needs a unit: ns, us, ms or s (e.g. 1us)")),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ns, us, ms or s, e.g. 1us)")),
    };
    let v: f64 =
        number.trim().parse().map_err(|_| format!("{s:?} is not a number with a unit (e.g. 1us)"))?;
    let ns = v * scale;
    if !(0.0..=MAX_SECONDS * 1e9).contains(&ns) {
        return Err(format!("{s} is out of range: the bound must lie in 0ns..{MAX_SECONDS:e}s"));
    }
    Ok(ns as u64)
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
  error_bound_ns      its error bound, ns (null likewise): the maximum error
  estimated_error_ns  the estimated (statistical) error, ns, <= the maximum (null: none published)
  est_rate_error_ppb  the rate's estimated error, ppb (null: none published)
  epoch               disruption epoch: bumped at every step, restart, reference or device change (0: older writer)
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
  mean_delay_ns, mean_delay_all_ns                 mean delay after lock / over all samples
 from a stats CSV only:
  max_error_bound_ns, max_error_bound_after_lock_ns   largest published error bound
  locked_status_time_s  seconds from the first row to the first with status LOCKED
  steps, step_times_s   rows on which the servo stepped the clock (servo_state 1), and their times
  status_changes      [{\"time_s\", \"from\", \"to\"}] every change of the page's status";

fn main() -> ExitCode {
    if let Some(code) = nicclock_clidoc::from_env(<Cli as clap::CommandFactory>::command, "1") {
        return code; // the packaging's man pages and completions
    }
    let cli = Cli::parse(); // usage errors: clap prints them and exits 2
    if let Command::Wait { status: Some(status), max_error: Some(_), .. } = &cli.command {
        if *status != nicclock::Status::Locked {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--max-error waits for LOCKED within a bound; it cannot be combined with --status {} \
                         (drop --status, or --max-error)",
                        status.name()
                    ),
                )
                .exit(); // exit 2
        }
    }
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

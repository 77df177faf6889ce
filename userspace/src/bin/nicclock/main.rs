//! `nicclock`: read nicclockd's time pages from the command line (list, now, status, watch, events).
//! Exit codes: 0 success, 1 runtime error (no page, stale, …), 2 usage error.

mod commands;
mod format;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Read disciplined NIC PTP-clock time that nicclockd publishes in shared memory.
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
    #[arg(long, global = true, value_name = "SECONDS", value_parser = parse_seconds)]
    pub max_age: Option<std::time::Duration>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the time pages in DIR with their status.
    List,
    /// Print the current time, its error bound and the clock status.
    Now {
        /// UTC instead of TAI.
        #[arg(long)]
        utc: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TimeFormat::Ns)]
        format: TimeFormat,
    },
    /// Print the page's identity, status and servo figures.
    Status {
        /// Machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
    /// One line a second: state, offset, frequency, error bound.
    Watch {
        /// Stop after this many lines (default: run until interrupted).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Seconds between lines.
        #[arg(long, default_value = "1", value_name = "SECONDS", value_parser = parse_seconds)]
        interval: std::time::Duration,
    },
    /// Compare the page's time with the system clock for a while; exit 1 if any reading fell
    /// outside the published error bound.
    Compare {
        /// How long to compare.
        #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = parse_seconds)]
        seconds: std::time::Duration,
        /// Readings per second.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
        rate: u32,
    },
    /// Follow clock events (steps, state changes, device lost) as they happen.
    Events {
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Give up (exit 1) when no event arrives for this many seconds.
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
        timeout: Option<std::time::Duration>,
        /// Start with the events still in the page's ring.
        #[arg(long)]
        history: bool,
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

fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v < 1e9) {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors: clap prints them and exits 2
    match commands::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nicclock: {e:#}");
            ExitCode::from(1)
        }
    }
}

//! `nicclock convert --monotonic SEC.NSEC` (or --monotonic-raw, --realtime, --tsc): a timestamp
//! taken earlier, in TAI or UTC by the mapping in force then, with both errors and its epoch.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use nicclock::{CounterKind, Past};

use crate::output::outln;
use crate::{format, Cli, TimeFormat};

/// `SEC` or `SEC.FRACTION` (up to 9 digits: 1.5 is 1 s 500 ms) as ns.
pub fn parse_timespec(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a timestamp SEC.NSEC (e.g. 12345.000678901)");
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    if sec.is_empty() || !sec.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(format!("{s:?} has more than 9 digits after the point (nanoseconds are the finest)"));
    }
    let sec: u64 = sec.parse().map_err(|_| bad())?;
    let nsec: u64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    sec.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nsec))
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub fn convert(cli: &Cli, when: Past, utc: bool, fmt: TimeFormat) -> Result<ExitCode> {
    let clock = crate::commands::open(cli)?;
    if let Past::Counter(_) = when {
        let kind = clock.snapshot()?.counter_kind;
        if kind != CounterKind::Tsc {
            bail!(
                "{} maps the {} counter, not the TSC: --tsc values mean nothing to it (use --monotonic-raw)",
                clock.path().display(),
                kind.name()
            );
        }
    }
    let got = if utc { clock.convert_utc(when) } else { clock.convert(when) }
        .with_context(|| format!("converting with {}", clock.path().display()))?;
    let time = match fmt {
        TimeFormat::Ns => got.time_ns.to_string(),
        TimeFormat::Rfc3339 => format::rfc3339(got.time_ns, utc),
    };
    outln!(
        "{time} {} {} est {} epoch {}",
        format::bound(got.error_bound_ns()),
        got.status.name(),
        format::bound(got.estimated_error_ns()),
        got.epoch
    );
    Ok(ExitCode::SUCCESS)
}

//! `nicclock compare --against PAGE`: the offset between two time pages, each reading of the other
//! page taken between two readings of ours (one bracket), so neither servo needs to be trusted.
//!
//! Per reading: the offset (AGAINST − PAGE at the same instant: AGAINST's time minus the middle of
//! the bracket), the combined bound (both pages' bounds plus half the bracket: two honest pages
//! never differ by more), and whether AGAINST's reading lies within PAGE's own bound (plus half the
//! bracket). Exit 1 when a reading lies outside the combined bound (one page's bound is wrong) or
//! a page gave no time.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use nicclock::{Clock, Now};
use serde::Serialize;

use crate::commands::open;
use crate::output::{self, outln};
use crate::Cli;

/// One reading of both pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reading {
    /// AGAINST's time minus PAGE's at the same instant, ns.
    pub offset_ns: i64,
    /// PAGE's and AGAINST's error bounds, ns.
    pub page_bound_ns: u64,
    pub against_bound_ns: u64,
    /// PAGE's two readings around AGAINST's, ns apart.
    pub bracket_ns: u64,
    /// Both bounds plus half the bracket.
    pub combined_bound_ns: u64,
    /// |offset| within the combined bound: the two pages agree.
    pub within_combined: bool,
    /// |offset| within PAGE's own bound (plus half the bracket): PAGE's bound covers AGAINST.
    pub within_page_bound: bool,
}

/// Reads AGAINST between two readings of PAGE; the tightest bracket of three tries.
pub fn read_pair(page: &Clock, against: &Clock) -> Result<Reading, nicclock::Error> {
    let mut best: Option<(Now, Now, Now)> = None;
    for _ in 0..3 {
        let a1 = page.now()?;
        let b = against.now()?;
        let a2 = page.now()?;
        if best.is_none_or(|(p1, _, p2)| a2.time_ns.saturating_sub(a1.time_ns) < p2.time_ns - p1.time_ns) {
            best = Some((a1, b, a2));
        }
    }
    let (a1, b, a2) = best.expect("three tries");
    let bracket = a2.time_ns.saturating_sub(a1.time_ns);
    let mid = i128::from(a1.time_ns) + i128::from(bracket / 2);
    let offset = (i128::from(b.time_ns) - mid).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    let page_bound = a1.error_bound_ns().max(a2.error_bound_ns());
    let combined = page_bound.saturating_add(b.error_bound_ns()).saturating_add(bracket.div_ceil(2));
    Ok(Reading {
        offset_ns: offset,
        page_bound_ns: page_bound,
        against_bound_ns: b.error_bound_ns(),
        bracket_ns: bracket,
        combined_bound_ns: combined,
        within_combined: offset.unsigned_abs() <= combined,
        within_page_bound: offset.unsigned_abs() <= page_bound.saturating_add(bracket.div_ceil(2)),
    })
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    readings: u64,
    errors: u64,
    outside_combined: u64,
    outside_page_bound: u64,
    mean_offset_ns: Option<f64>,
    rms_offset_ns: Option<f64>,
    max_abs_offset_ns: Option<u64>,
    max_combined_bound_ns: Option<u64>,
    max_bracket_ns: Option<u64>,
}

/// Runs the comparison: `count` readings `interval` apart.
pub fn against(cli: &Cli, against: &str, count: u64, interval: Duration, json: bool) -> Result<ExitCode> {
    let page = open(cli)?;
    let mut other = Clock::open_in(&cli.dir, against)
        .with_context(|| format!("--against {against}: cannot open page {}", page_path(&cli.dir, against)))?;
    if let Some(max_age) = cli.max_age {
        other.set_max_age(max_age);
    }
    let (mut s, mut sum, mut sum2) = (Summary::default(), 0f64, 0f64);
    for n in 0..count {
        if n > 0 {
            std::thread::sleep(interval);
        }
        match read_pair(&page, &other) {
            Ok(r) => {
                s.readings += 1;
                s.outside_combined += u64::from(!r.within_combined);
                s.outside_page_bound += u64::from(!r.within_page_bound);
                sum += r.offset_ns as f64;
                sum2 += (r.offset_ns as f64).powi(2);
                s.max_abs_offset_ns = s.max_abs_offset_ns.max(Some(r.offset_ns.unsigned_abs()));
                s.max_combined_bound_ns = s.max_combined_bound_ns.max(Some(r.combined_bound_ns));
                s.max_bracket_ns = s.max_bracket_ns.max(Some(r.bracket_ns));
                if json {
                    outln!("{}", serde_json::to_string(&r).context("encoding a reading as JSON")?);
                } else {
                    outln!(
                        "offset {} ns bound {} ns (page {} against {}) bracket {} ns {}{}",
                        r.offset_ns,
                        r.combined_bound_ns,
                        r.page_bound_ns,
                        r.against_bound_ns,
                        r.bracket_ns,
                        if r.within_combined { "within" } else { "OUTSIDE" },
                        if r.within_page_bound { "" } else { " (outside the page's own bound)" }
                    );
                }
            }
            Err(e) => {
                s.errors += 1;
                output::warn(format_args!("reading {}: {e}", n + 1));
            }
        }
    }
    if s.readings > 0 {
        let k = s.readings as f64;
        s.mean_offset_ns = Some(sum / k);
        s.rms_offset_ns = Some((sum2 / k).sqrt());
    }
    if json {
        outln!("{}", serde_json::to_string(&SummaryJson { summary: &s }).context("encoding the summary")?);
    } else {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        let u = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        outln!(
            "compare_pages readings {} outside_combined {} outside_page_bound {} errors {} mean_offset_ns {} \
             rms_offset_ns {} max_abs_offset_ns {} max_combined_bound_ns {} max_bracket_ns {}",
            s.readings,
            s.outside_combined,
            s.outside_page_bound,
            s.errors,
            f(s.mean_offset_ns),
            f(s.rms_offset_ns),
            u(s.max_abs_offset_ns),
            u(s.max_combined_bound_ns),
            u(s.max_bracket_ns)
        );
    }
    let ok = s.readings > 0 && s.errors == 0 && s.outside_combined == 0;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    summary: &'a Summary,
}

fn page_path(dir: &Path, name: &str) -> String {
    dir.join(format!("{}{name}", nicclock::abi::FILE_PREFIX)).display().to_string()
}

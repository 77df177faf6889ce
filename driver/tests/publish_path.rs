//! The figures nicclockd publishes, read back the way readers get them (discipline → Writer →
//! page → Clock), in the units and signs the ABI documents: FREQUENCY_JUMP in ppt (the change of
//! servo_freq_ppt, with a STEP carrying the clock's jump in ns), servo_freq_ppt in linuxptp's sign.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::PageDir;
use nicclock::{EventKind, EventWait, Status};
use support::{daemon, sigterm, stderr, wait_exit, wait_for_status};

const LIMIT: Duration = Duration::from_secs(30);

/// The freq_ppb column of a stats file, as ppt.
fn stats_freq_ppt(path: &std::path::Path) -> Vec<i64> {
    let csv = std::fs::read_to_string(path).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| (l.split(',').nth(3).unwrap().parse::<f64>().unwrap() * 1e3).round() as i64)
        .collect()
}

#[test]
fn a_frequency_jump_reaches_readers_in_ppt_followed_by_the_step_in_ns() {
    let dir = PageDir::new("publish-jump");
    let stats = dir.path.join("stats.csv");
    // QEMU's igb steered in hardware: every TIMINCA write moves its clock (by ~2^41 ns here).
    let child = daemon(&dir, "sim:qemu=1", "jump")
        .args(["--steer", "hw", &format!("--stats-file={}", stats.display())])
        .spawn()
        .unwrap();
    let mut clock = wait_for_status(&dir.path, "jump", Status::Locking, LIMIT);
    clock.rewind_events();
    let mut events = Vec::new();
    let start = Instant::now();
    while !events
        .windows(2)
        .any(|w: &[nicclock::Event]| w[0].kind == EventKind::FrequencyJump && w[1].kind == EventKind::Step)
    {
        assert!(start.elapsed() < LIMIT, "no FREQUENCY_JUMP then STEP within {LIMIT:?}: {events:?}");
        if let EventWait::Event(e) = clock.wait_event(Some(Duration::from_secs(1))).unwrap() {
            events.push(e);
        }
    }
    sigterm(&child);
    let out = wait_exit(child, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let freq = stats_freq_ppt(&stats);
    let changes: Vec<i64> = freq.windows(2).map(|w| w[1] - w[0]).collect();
    for w in events.windows(2).filter(|w| w[0].kind == EventKind::FrequencyJump) {
        let (jump, step) = (w[0], w[1]);
        assert!(
            changes.iter().any(|c| (c - jump.magnitude).abs() <= 1),
            "FREQUENCY_JUMP magnitude {} is not a change of servo_freq_ppt between two updates {changes:?}",
            jump.magnitude
        );
        assert_eq!(step.kind, EventKind::Step, "the clock's jump follows: {events:?}");
        assert!(step.magnitude.abs() > 10_000, "a step in ns beyond the detection threshold: {step:?}");
        assert_eq!(step.tai_ns, jump.tai_ns, "one update");
    }
    assert!(
        stderr(&out).contains("a TIMINCA write moved the clock by"),
        "the log says what happened: {}",
        stderr(&out)
    );
}

#[test]
fn servo_freq_ppt_is_the_nics_frequency_error_in_ppt_positive_when_fast() {
    let dir = PageDir::new("publish-sign");
    let stats = dir.path.join("stats.csv");
    // The simulated oscillator runs 100 ppm fast.
    let child = daemon(&dir, "sim:ppm=100,wander=0", "sign")
        .arg(format!("--stats-file={}", stats.display()))
        .spawn()
        .unwrap();
    let clock = wait_for_status(&dir.path, "sign", Status::Locked, LIMIT);
    let page = clock.snapshot().unwrap().servo.freq_ppt;
    sigterm(&child);
    let out = wait_exit(child, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!((99_000_000..=101_000_000).contains(&page), "+100 ppm is +1e8 ppt, got {page}");
    assert!(stats_freq_ppt(&stats).contains(&page), "the page holds what the log and stats call freq");
}

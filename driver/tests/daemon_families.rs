//! nicclockd end to end on the simulated NIC of every family: each model locks and publishes a
//! page naming it; on the i210 and i350 the same with a PPS output and a PPS input as reference.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use common::PageDir;
use nicclock::{ReferenceKind, Status};
use support::{daemon, sigterm, stderr, wait_exit, wait_for_status};

/// Runs nicclockd on `device` with `args`, waits for the page to say LOCKED (failing after
/// `within`), reads the time from it, stops the daemon and returns its log.
fn locks_and_publishes(tag: &str, device: &str, args: &[&str], model: &str, within: Duration) -> String {
    let dir = PageDir::new(&format!("nicclockd-family-{tag}"));
    let child = daemon(&dir, device, tag).args(args).spawn().unwrap();
    // Whatever happens below, the child is stopped and reaped (wait_exit kills it if it hangs).
    let result = std::panic::catch_unwind(|| {
        let clock = wait_for_status(&dir.path, tag, Status::Locked, within);
        let now = clock.now().expect("a LOCKED page gives the time");
        assert!(now.error_bound_ns() < 1_000_000, "{tag}: bound {} ns", now.error_bound_ns());
        (clock.identity().model, clock.snapshot().expect("a consistent clock block").reference.kind)
    });
    sigterm(&child);
    let out = wait_exit(child, Duration::from_secs(10));
    let log = stderr(&out);
    let (page_model, reference) = match result {
        Ok(m) => m,
        Err(_) => panic!("{tag} did not lock; its log:\n{log}"),
    };
    assert_eq!(out.status.code(), Some(0), "{tag}: {log}");
    assert_eq!(page_model, model, "{tag}: the page names the model");
    let want = if args.iter().any(|a| a.starts_with("pps:")) {
        ReferenceKind::Pps
    } else {
        ReferenceKind::SystemClock
    };
    assert_eq!(reference, want, "{tag}: the page names its reference");
    assert!(log.contains("status LOCKING -> LOCKED"), "{tag}: {log}");
    log
}

#[test]
fn every_family_locks_and_publishes_on_the_simulator() {
    let models = [
        ("82574", "82574"),
        ("82576", "82576"),
        ("82580", "82580"),
        ("i350", "i350"),
        ("i354", "i354"),
        ("i210", "i210"),
        ("i211", "i211"),
    ];
    let threads: Vec<_> = models
        .iter()
        .map(|&(key, model)| {
            std::thread::spawn(move || {
                let device = format!("sim:model={key},ppm=100,jitter=50");
                locks_and_publishes(key, &device, &["--rate", "20"], model, Duration::from_secs(60))
            })
        })
        .collect();
    for (t, (key, _)) in threads.into_iter().zip(models) {
        let log = t.join().unwrap_or_else(|_| panic!("{key} failed"));
        assert!(log.contains(" s2 freq "), "{key}: {log}");
    }
}

#[test]
fn pps_out_and_a_pps_reference_on_the_i210_and_i350() {
    let threads: Vec<_> = [("i210", "i210"), ("i350", "i350")]
        .into_iter()
        .map(|(key, model)| {
            std::thread::spawn(move || {
                let device = format!("sim:model={key},ppm=50,pps-in=SDP1,pps-jitter=20");
                let args = ["--pps-out", "SDP0", "--reference", "pps:SDP1", "--log-level", "debug"];
                let log = locks_and_publishes(
                    &format!("pps-{key}"),
                    &device,
                    &args,
                    model,
                    Duration::from_secs(90),
                );
                (key, log)
            })
        })
        .collect();
    for t in threads {
        let (key, log) = t.join().expect("a PPS daemon failed");
        assert!(log.contains("PPS output on SDP0") && log.contains("PPS input on SDP1"), "{key}: {log}");
        assert!(log.contains("PPS output: rising edge at"), "{key}: the output's target fired: {log}");
        // The first step (free-running NIC time to TAI) jumps over the armed edge; once the
        // servo tracks (s2), every edge fires.
        let tracking = &log[log.find(" s2 freq").expect("the servo tracked")..];
        assert!(!tracking.contains("passed before its target fired"), "{key}: no edge missed: {log}");
        assert!(tracking.contains("PPS output: rising edge at"), "{key}: edges while tracking: {log}");
        assert!(!log.contains("pulse(s) missed"), "{key}: no pulse missed: {log}");
    }
}

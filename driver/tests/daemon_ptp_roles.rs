//! nicclockd --ptp-role as a process: the role and priority options checked (usage errors exit 2
//! naming what was wrong); on the simulator a master (and an auto port alone on its link) serves
//! the clock the discipline locks to the system clock: the page says MASTER, LOCKING then LOCKED,
//! the role change is a STATUS_CHANGED event on the page and a log line.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::PageDir;
use nicclock::{Clock, EventKind, EventWait, ReferenceKind, Status};
use support::{daemon, run, stderr, stop_after};

fn usage_error(args: &[&str], want: &str) {
    let out = run(&[&["--device", "sim"][..], args].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn role_and_priority_options_are_checked() {
    usage_error(&["--reference", "ptp", "--ptp-role", "master"], "use --reference realtime or tai");
    usage_error(&["--reference", "ptp", "--ptp-role", "auto"], "use --reference realtime or tai");
    usage_error(&["--ptp-role", "slave"], "use --reference ptp");
    usage_error(&["--reference", "tai", "--ptp-role", "slave"], "use --reference ptp");
    usage_error(&["--reference", "ptp", "--ptp-priority1", "10"], "needs --ptp-role master or auto");
    usage_error(&["--ptp-priority2", "10"], "it needs --reference ptp, or --ptp-role master|auto");
    usage_error(&["--ptp-role", "boss"], "boss");
    usage_error(&["--ptp-role", "master", "--ptp-priority1", "256"], "256");
    usage_error(&["--ptp-role", "master", "--reference", "pps:SDP0"], "not supported yet");
    usage_error(&["--ptp-role", "auto", "--pps-out", "SDP0"], "not supported yet");
    usage_error(&["--ptp-role", "master", "--ptp-transport", "udp4"], "--ptp-transport udp4 needs --ptp-ip");
    usage_error(&["--ptp-wake", "exchange"], "it needs --reference ptp");
    usage_error(&["--ptp-role", "auto", "--ptp-wake", "exchange"], "drop --ptp-wake or use --reference ptp");
    usage_error(&["--reference", "ptp", "--ptp-wake", "sometimes"], "sometimes");
}

/// Runs nicclockd on the simulator with `args`, waits until its page says MASTER and LOCKED with
/// the role change among its events, then stops it; returns its log.
fn serves(tag: &str, args: &[&str]) -> String {
    let dir = PageDir::new(tag);
    let child = daemon(&dir, "sim", "gm")
        .args(["--rate", "20", "--ptp-log-announce-interval", "-2"])
        .args(args)
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let start = Instant::now();
        let mut clock = loop {
            if let Ok(c) = Clock::open_in(&dir.path, "gm") {
                break c;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no page");
            std::thread::sleep(Duration::from_millis(20));
        };
        clock.rewind_events();
        // The role change: STATUS_CHANGED with the new port state (6, MASTER) and the role flag.
        let role_event = loop {
            match clock.wait_event(Some(Duration::from_secs(20))).unwrap() {
                EventWait::Event(e) if e.kind == EventKind::StatusChanged && e.detail & 0x8000_0000 != 0 => {
                    break e
                }
                EventWait::TimedOut => panic!("no role change on the page within 20 s"),
                _ => {}
            }
        };
        assert_eq!(role_event.magnitude, 6, "MASTER: {role_event:?}");
        assert_eq!(role_event.detail & 0xff, 4, "from LISTENING: {role_event:?}");
        // Posted once the page describes the new role: a reader woken by it reads MASTER there.
        let now = clock.snapshot().unwrap();
        assert_eq!(now.reference.port_state, 6, "the page behind its own role event: {now:?}");
        // The discipline keeps the served clock on the system clock: LOCKED, and the page says
        // the port is MASTER of its own clock.
        let snap = loop {
            let s = clock.snapshot().unwrap();
            if s.status == Status::Locked && s.reference.port_state == 6 {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(40), "not LOCKED and MASTER: {s:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(snap.reference.kind, ReferenceKind::SystemClock, "disciplined to the system clock");
        assert_ne!(snap.reference.gm_identity, [0; 8], "we are the grandmaster");
        assert!(snap.error_bound_ns < 1_000_000, "{snap:?}");
    });
    stop_after(child, result)
}

#[test]
fn a_master_serves_the_clock_the_discipline_locks_to_the_system_clock() {
    let log = serves("nicclockd-ptp-master", &["--ptp-role", "master", "--ptp-priority1", "10"]);
    assert!(log.contains("role master (priority1 10 priority2 128)"), "{log}");
    assert!(log.contains("ptp: role Listening -> Master"), "the role change is logged:\n{log}");
    assert!(log.contains("the discipline steers the clock now"), "{log}");
    assert!(log.contains("ptp: final counters: rx 0") && log.contains("req_limited 0"), "{log}");
}

#[test]
fn an_auto_port_alone_on_its_link_becomes_master() {
    let log =
        serves("nicclockd-ptp-auto", &["--ptp-role", "auto", "--reference", "tai", "--tai-offset", "37"]);
    assert!(log.contains("role auto (priority1 128 priority2 128)"), "{log}");
    assert!(log.contains("ptp: role Listening -> Master"), "{log}");
}

//! `nicclock status` of a page whose clock a PTP port serves (nicclockd --ptp-role master|auto):
//! the reference is the system clock, and the port's state and grandmaster are named beside it.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{identity, system_snapshot, PageDir};
use nicclock::{Status, Writer};

/// `nicclock --dir DIR status`, killed (and the test failed) after 30 s.
fn status(dir: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nicclock"))
        .args(["--dir", dir, "status"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("nicclock status still ran after 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn status_names_the_serving_port_beside_the_system_clock() {
    let dir = PageDir::new("cli-serving");
    let mut w = Writer::create(&dir.options("gm"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Locked, 300);
    snap.reference.port_state = 6;
    snap.reference.gm_identity = [0x52, 0x54, 0x00, 0xff, 0xfe, 0x01, 0x00, 0x00];
    w.publish(&snap);
    let d = dir.path.to_str().unwrap();
    let out = status(d);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("reference   system clock; ptp port MASTER, grandmaster 525400.fffe.010000"),
        "{text}"
    );
    // Without a port, the line stays as it was.
    snap.reference.port_state = 0;
    w.publish(&snap);
    let out = status(d);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reference   system clock\n"), "{text}");
}

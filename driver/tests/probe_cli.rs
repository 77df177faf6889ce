//! `nicclockd probe --json` (the documented fields, on the simulated NIC) and numeric options given
//! negative values (the range error, not "unexpected argument"); each run under a timeout.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_nicclockd");

/// Runs nicclockd with `args` and `stdout`; kills it and fails if it runs over 30 s.
fn run_with(args: &[&str], stdout: Stdio) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let hung = finished.recv_timeout(Duration::from_secs(30)).is_err();
        if hung {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        hung
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    assert!(!watchdog.join().unwrap(), "nicclockd {args:?} still ran after 30 s");
    out
}

#[test]
fn probe_json_has_the_documented_fields() {
    let o = run_with(&["probe", "--json", "sim:model=82574,qemu=1"], Stdio::piped());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((j["device"].as_str(), j["backend"].as_str()), (Some("sim"), Some("sim")));
    assert_eq!((j["vendor_id"].as_str(), j["device_id"].as_str()), (Some("8086"), Some("10d3")));
    assert_eq!(j["model"], "82574");
    assert_eq!(j["family"], "82574");
    assert_eq!(j["latch"], "SYSTIML (unreliable: re-read and sanitized)");
    assert!(j["counter_format"].as_str().is_some_and(|f| f.contains("2^-18 ns")), "{j}");
    assert_eq!(j["ns_per_lsb"], 1.0 / 262_144.0);
    assert!((j["rate_lsb_ppb"].as_f64().unwrap() - 95.367).abs() < 1e-3, "{j}");
    assert_eq!(j["max_adjustment_ppb"], 599_999_900.0);
    assert!((j["counter_wrap_s"].as_f64().unwrap() - 70_368.744).abs() < 1e-3, "2^46 ns: {j}");
    assert_eq!(j["hardware_step"], "timecounter");
    assert_eq!(j["pins"]["sdps"], 0);
    assert_eq!(j["pins"]["pps_out"].as_array().map(Vec::len), Some(0), "no pins on an 82574: {j}");
    assert_eq!(j["steering_auto"], "sw", "the QEMU quirk picks software steering: {j}");
    assert!(j["quirks"].as_array().unwrap().iter().any(|q| q == "TIMINCA_DISCONTINUOUS"), "{j}");
    assert!(j["quirk_source"].as_str().is_some_and(|s| s.contains("QEMU")), "{j}");
    assert_eq!(j["clock_running"], false);
    assert_eq!(j["clock_units_in_10ms"], serde_json::Value::Null);
    assert!(j["registers"]["TIMINCA"].is_u64() && j["registers"]["STATUS"].is_u64(), "{j}");
    let t = &j["timing"];
    assert_eq!(t["reads"], 2000);
    for k in ["clock_read_min_ns", "clock_read_median_ns", "bracketed_min_ns", "bracketed_median_ns"] {
        assert!(t[k].is_u64(), "{k}: {j}");
    }
    assert!(t["clock_read_min_ns"].as_u64() <= t["clock_read_median_ns"].as_u64());
    let help = run_with(&["probe", "--help"], Stdio::piped());
    let help = String::from_utf8_lossy(&help.stdout);
    let keys = j
        .as_object()
        .unwrap()
        .keys()
        .chain(j["timing"].as_object().unwrap().keys())
        .chain(j["pins"].as_object().unwrap().keys());
    for k in keys {
        assert!(help.contains(k.as_str()), "probe --help does not document {k}:\n{help}");
    }
}

#[test]
fn probe_output_errors_are_reported_not_panics() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = run_with(&["probe", "sim"], Stdio::from(full));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write to standard output") && !err.contains("panicked"), "{err}");
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let o = run_with(&["probe", "--json", "sim"], Stdio::from(write_end));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn negative_numbers_get_the_range_error() {
    for (args, want) in [
        (vec!["--device", "sim", "--rate", "-1"], "-1 must be greater than 0"),
        (vec!["--device", "sim", "--kp", "-0.5"], "-0.5 is negative"),
        (vec!["--device", "sim", "--tai-offset", "-3"], "-3 is not in 0..=100"),
        (vec!["--device", "sim", "--duration", "-2"], "-2 must be greater than 0"),
    ] {
        let o = run_with(&args, Stdio::piped());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want) && !err.contains("unexpected argument"), "{args:?}: {err}");
    }
}

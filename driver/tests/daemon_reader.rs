//! End to end in real time: `nicclockd --device sim` disciplines the simulated NIC to
//! CLOCK_REALTIME (+37 s TAI) and publishes it; a reader running as `nobody` checks for 30 s
//! (NICCLOCK_E2E_SECONDS overrides) that every `now()` lies within the published error bound of
//! the reference the simulator's clock is being steered to.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_child_ok, env_var, realtime_ns, run_child, PageDir, NOBODY};
use nicclock::{Clock, Status};

const BIN: &str = env!("CARGO_BIN_EXE_nicclockd");

#[test]
#[ignore = "entry point of the unprivileged reader the end-to-end test starts"]
fn child_entry() {
    assert_ne!(nix::unistd::getuid().as_raw(), 0, "the reader must run unprivileged");
    let dir = PathBuf::from(env_var("PAGE_DIR"));
    let seconds: f64 = env_var("SECONDS").parse().unwrap();
    let clock = Clock::open_in(&dir, "e2e").expect("open the page as nobody");
    let (mut reads, mut violations, mut max_diff, mut max_bound, mut not_locked) =
        (0u64, 0u64, 0i64, 0u64, 0u64);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let r1 = realtime_ns();
        let now = clock.now().expect("time from the page");
        let r2 = realtime_ns();
        let truth = (r1 + (r2 - r1) / 2) as i128 + 37_000_000_000;
        let diff = (now.time_ns as i128 - truth) as i64;
        let allowed = now.error_bound_ns() + (r2 - r1) / 2;
        if diff.unsigned_abs() > allowed {
            violations += 1;
            eprintln!(
                "outside the bound: diff {diff} ns, bound {} ns, bracket {} ns",
                now.error_bound_ns(),
                r2 - r1
            );
        }
        if now.status != Status::Locked {
            not_locked += 1;
        }
        // The largest difference among reads whose own bracket was tight (not preempted).
        if r2 - r1 < 5_000 {
            max_diff = max_diff.max(diff.abs());
        }
        max_bound = max_bound.max(now.error_bound_ns());
        reads += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("reader reads {reads} violations {violations} max_diff_tight_ns {max_diff} max_bound_ns {max_bound} not_locked {not_locked}");
}

#[test]
fn an_unprivileged_reader_gets_daemon_time_inside_its_error_bound() {
    let seconds: f64 = std::env::var("NICCLOCK_E2E_SECONDS").map_or(30.0, |s| s.parse().unwrap());
    let dir = PageDir::new("e2e");
    let log = dir.path.join("nicclockd.log");
    let mut daemon = Command::new(BIN)
        .args([
            "--device",
            "sim",
            "--page-name",
            "e2e",
            "--tai-offset",
            "37",
            &format!("--page-dir={}", dir.path.display()),
            &format!("--lock-dir={}", dir.lock_dir().display()),
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start nicclockd");
    let start = Instant::now();
    while !Clock::open_in(&dir.path, "e2e").is_ok_and(|c| c.status().ok() == Some(Status::Locked)) {
        assert!(start.elapsed() < Duration::from_secs(20), "nicclockd did not lock within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = vec![("PAGE_DIR", dir.path.display().to_string()), ("SECONDS", seconds.to_string())];
    let out = run_child("e2e-reader", &env, Some(NOBODY));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status = daemon.wait().unwrap();
    let stdout = assert_child_ok("e2e reader", &out);
    let line = stdout.lines().find(|l| l.starts_with("reader ")).expect("reader summary");
    common::report(&format!("daemon e2e ({seconds} s as nobody): {line}"));
    let num = |key: &str| -> u64 {
        let w: Vec<&str> = line.split_whitespace().collect();
        w[w.iter().position(|x| *x == key).unwrap() + 1].parse().unwrap()
    };
    let daemon_log = std::fs::read_to_string(&log).unwrap_or_default();
    let notable: Vec<&str> = daemon_log
        .lines()
        .filter(|l| {
            !l.contains("phc offset")
                || l.split_whitespace()
                    .nth(3)
                    .and_then(|o| o.parse::<i64>().ok())
                    .is_none_or(|o| o.abs() > 2_000)
        })
        .collect();
    assert_eq!(
        num("violations"),
        0,
        "page time left its error bound: {line}\nnicclockd said:\n{}",
        notable.join("\n")
    );
    assert!(num("reads") as f64 > seconds * 100.0, "too few reads: {line}");
    assert_eq!(num("not_locked"), 0, "the clock left LOCKED: {line}");
    assert_eq!(status.code(), Some(0), "nicclockd stopped cleanly");
}

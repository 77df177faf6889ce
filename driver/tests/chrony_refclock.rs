//! chronyd uses nicclockd's NTP SHM segment as a reference clock: nicclockd (simulated NIC) exports
//! unit N, chronyd (-x: never touches the host clock; its own config, socket and pid file) is told
//! `refclock SHM N`, and `chronyc sources` must show the source selected, reachable, with an offset
//! as small as ours.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::PageDir;

const BIN: &str = env!("CARGO_BIN_EXE_nicclockd");

fn kill(child: &std::process::Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

#[test]
fn chronyd_selects_the_ntp_shm_refclock() {
    let chronyd =
        ["/usr/sbin/chronyd", "/sbin/chronyd"].into_iter().find(|p| std::path::Path::new(p).exists());
    let chronyd = chronyd.expect("chronyd is not installed: tests/setup.sh installs the chrony package");
    let dir = PageDir::new("chrony");
    // chronyd wants its socket directory private to the user it runs as.
    let run = dir.path.join("chrony");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let unit = 10 + std::process::id() % 200;
    let conf = run.join("chrony.conf");
    std::fs::write(
        &conf,
        format!(
            "refclock SHM {unit} refid NICC poll 0 dpoll 0 precision 1e-6\npidfile {0}/chronyd.pid\n\
             bindcmdaddress {0}/chronyd.sock\ndriftfile {0}/drift\ncmdport 0\n",
            run.display()
        ),
    )
    .unwrap();
    let daemon = Command::new(BIN)
        .args(["--device", "sim", "--page-name", "chrony", "--ntpshm", &unit.to_string()])
        .arg(format!("--page-dir={}", dir.path.display()))
        .arg(format!("--lock-dir={}", dir.lock_dir().display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let chrony = Command::new(chronyd)
        .args(["-x", "-d", "-u", "root", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = run.join("chronyd.sock");
    let start = Instant::now();
    let mut line = String::new();
    while start.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_secs(1));
        let out = Command::new("chronyc").arg("-h").arg(&sock).arg("sources").output();
        let Ok(out) = out else { continue };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(l) = text.lines().find(|l| l.contains("NICC")) {
            line = l.to_string();
            // "#* NICC   0   0   377   2   -48ns[  -64ns] +/- 1000ns": selected once reach is full.
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.first() == Some(&"#*") && w.get(4) == Some(&"377") {
                break;
            }
        }
    }
    kill(&chrony);
    kill(&daemon);
    let _ = (chrony.wait_with_output(), daemon.wait_with_output());
    common::report(&format!("chronyc sources: {line}"));
    let _ = std::fs::remove_file(&sock);
    // SAFETY: test cleanup, removing the segment nicclockd created (both programs have stopped).
    unsafe {
        let id = libc::shmget(nicclock_driver::ntpshm::KEY_BASE + unit as i32, 0, 0);
        libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
    }
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w.first(), Some(&"#*"), "chronyd did not select NICC: {line:?}");
    assert_eq!(w.get(4), Some(&"377"), "not reachable for 8 polls: {line:?}");
    // The last sample's offset, e.g. "-48ns[" — within 10 µs, as our own offsets are.
    let last = w.get(6).copied().unwrap_or_default();
    let value = last.split('[').next().unwrap_or_default();
    let ns = if let Some(v) = value.strip_suffix("ns") {
        v.parse::<f64>().unwrap()
    } else if let Some(v) = value.strip_suffix("us") {
        v.parse::<f64>().unwrap() * 1e3
    } else {
        panic!("offset {value:?} is not in ns or us: {line:?}")
    };
    assert!(ns.abs() < 10_000.0, "chrony sees {ns} ns: {line:?}");
}

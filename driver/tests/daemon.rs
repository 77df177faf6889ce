//! nicclockd as a process: bad invocations (exit 2 usage, 1 runtime, never a panic), probe, clean
//! stop on SIGTERM/--duration (page STOPPED), surprise removal (page DEVICE_LOST, a waiting
//! reader woken, exit 69), stats file.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::PageDir;
use nicclock::{Clock, EventKind, EventWait, Status};
use support::{daemon, run, sigterm, stderr, wait_for_status, FakeSys, BIN, IGB_QEMU};

#[test]
fn bad_invocations_say_what_was_wrong_with_the_right_exit_code() {
    let dir = PageDir::new("nicclockd-bad");
    let d = format!("--page-dir={}", dir.path.display());
    let igb_kernel = FakeSys::new("kernel", IGB_QEMU, Some("igb"), Some(3));
    let igb_vfio = FakeSys::new("vfio", IGB_QEMU, Some("vfio-pci"), Some(4));
    let realtek = FakeSys::new("realtek", [0x10EC, 0x8168, 0x10EC, 0x8168], None, None);
    let i82575 = FakeSys::new("i82575", [0x8086, 0x10A7, 0x8086, 0x0001], None, None);
    let empty = FakeSys::new("empty", IGB_QEMU, None, None);
    std::fs::remove_dir_all(empty.root.join("bus/pci/devices/0000:00:03.0")).unwrap();
    let unwritable = dir.path.join("no-such-dir");
    let no_vfio = format!("--vfio-container={}", dir.path.join("vfio/vfio").display());
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec![], 2, "--device is required"),
        (vec!["--device".into(), "vfio:zz:00.0".into()], 2, "invalid PCI address"),
        (vec!["--device".into(), "pci:0000:00:03.0".into()], 2, "unknown backend"),
        (vec!["--device".into(), "uio:/tmp/uio0".into()], 2, "/dev/uioN"),
        (vec!["--device".into(), "sim:ppm=fast".into()], 2, "ppm=\"fast\""),
        (vec!["--device".into(), "sim:colour=red".into()], 2, "unknown simulator key"),
        (vec!["--device".into(), "sim:model=i225".into()], 2, "i210 or i211"),
        (vec!["--device".into(), "sim".into(), "--servo".into(), "kalman".into()], 2, "unknown servo"),
        (vec!["--device".into(), "sim".into(), "--steer".into(), "up".into()], 2, "unknown steering"),
        (vec!["--device".into(), "sim".into(), "--rate".into(), "0".into()], 2, "greater than 0"),
        (vec!["--device".into(), "sim".into(), "--rate=-5".into()], 2, "greater than 0"),
        (vec!["--device".into(), "sim".into(), "--rate".into(), "fast".into()], 2, "not a number"),
        (vec!["--device".into(), "sim".into(), "--kp=-1".into()], 2, "negative"),
        (vec!["--device".into(), "sim".into(), "--readings".into(), "0".into()], 2, "readings"),
        (vec!["--device".into(), "sim".into(), "--page-name".into(), "a/b".into()], 2, "contains '/'"),
        (vec!["--device".into(), "sim".into(), "--page-mode".into(), "999".into()], 2, "octal file mode"),
        (
            vec!["--device".into(), "sim".into(), d.clone(), "--page-group".into(), "no-such-group-x".into()],
            2,
            "no such group",
        ),
        (vec!["--device".into(), "sim".into(), "--tai-offset=-3".into()], 2, "tai-offset"),
        (vec!["--device".into(), "sim".into(), "--log-level".into(), "loud".into()], 2, "log-level"),
        (vec!["--bogus".into()], 2, "unexpected argument"),
        (
            vec!["--device".into(), "sim".into(), d.clone(), "--user".into(), "no-such-user-x".into()],
            2,
            "no such user",
        ),
        (vec!["--device".into(), "sim".into(), d.clone(), "--group".into(), "root".into()], 2, "--user"),
        (vec!["probe".into()], 2, "DEVICE"),
        (
            vec!["--device".into(), "sim".into(), format!("--page-dir={}", unwritable.display())],
            1,
            "no-such-dir",
        ),
        (
            vec![
                "--device".into(),
                "sim".into(),
                d.clone(),
                format!("--stats-file={}", unwritable.join("s.csv").display()),
            ],
            1,
            "--stats-file",
        ),
        (vec!["--device".into(), "vfio:0000:00:03.0".into(), empty.arg()], 1, "no PCI device 0000:00:03.0"),
        (vec!["--device".into(), "vfio:0000:00:03.0".into(), igb_kernel.arg()], 1, "kernel driver igb"),
        (
            vec!["--device".into(), "vfio:0000:00:03.0".into(), igb_vfio.arg(), no_vfio.clone()],
            1,
            "modprobe vfio-pci",
        ),
        (vec!["--device".into(), "sysfs:0000:00:03.0".into(), igb_kernel.arg()], 1, "driver_override"),
        (
            vec!["--device".into(), "sysfs:0000:00:03.0".into(), realtek.arg(), d.clone()],
            1,
            "not a NIC this driver knows",
        ),
        (
            vec!["--device".into(), "sysfs:0000:00:03.0".into(), i82575.arg(), d.clone()],
            1,
            "has no IEEE 1588 clock",
        ),
    ];
    assert!(cases.len() >= 20);
    for (args, code, words) in &cases {
        let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(*code), "{args:?}: exit {:?}\n{err}", o.status.code());
        assert!(err.contains(words), "{args:?}: stderr lacks {words:?}:\n{err}");
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    }
}

#[test]
fn not_root_is_a_clear_runtime_error() {
    assert!(nix::unistd::geteuid().is_root(), "this test runs nicclockd as nobody and must run as root");
    let sys = FakeSys::new("notroot", IGB_QEMU, None, None);
    std::fs::set_permissions(&sys.root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exe = common::world_executable(Path::new(BIN));
    use std::os::unix::process::CommandExt;
    let o = common::retry_busy(|| {
        Command::new(&exe)
            .args(["--device", "sysfs:0000:00:03.0", &sys.arg()])
            .uid(common::NOBODY)
            .gid(common::NOBODY)
            .output()
    });
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("run nicclockd as root"), "{}", stderr(&o));
}

#[test]
fn probe_describes_a_device_without_touching_it() {
    // Every simulated SYSTIML read takes 200 µs of real time (and no more than 1 ms, the sim's cap).
    let o = run(&["probe", "sim:qemu=1,latency=200000,jitter=0"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    for line in [
        "ids         8086:10c9 subsystem 1af4:1100",
        "model       82576",
        "QEMU emulated 82576 (igb)",
        "steering    auto -> sw",
        "TIMINCA     0x0b608  0x00000000",
        "clock       stopped",
    ] {
        assert!(out.contains(line), "probe output lacks {line:?}:\n{out}");
    }
    // The timing line: a bracket around a SYSTIML read holds the simulated read's whole latency.
    let timing = out.lines().find(|l| l.starts_with("timing ")).expect("a timing line");
    let mins: Vec<u64> =
        timing.split("min ").skip(1).map(|rest| rest.split(' ').next().unwrap().parse().unwrap()).collect();
    assert_eq!(mins.len(), 2, "{timing}");
    assert!(mins[1] >= 200_000, "a bracketed SYSTIML read holds its 200 µs bus time: {timing}");
    let sys = FakeSys::new("probe", IGB_QEMU, None, None);
    let o = run(&["probe", "sysfs:0000:00:03.0", &sys.arg()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && out.contains("device      0000:00:03.0 via sysfs")
            && out.contains("steering    auto -> sw"),
        "{out}{}",
        stderr(&o)
    );
    // Nothing was written: the fake BAR is still all zeros.
    assert!(std::fs::read(sys.root.join("bus/pci/devices/0000:00:03.0/resource0"))
        .unwrap()
        .iter()
        .all(|b| *b == 0));
    // An i210 (refused before issue 9) is described with its family, format and pins, untouched.
    let sys = FakeSys::new("probe-i210", [0x8086, 0x1533, 0x8086, 0x0001], None, None);
    let o = run(&["probe", "sysfs:0000:00:03.0", &sys.arg()]);
    let out = String::from_utf8_lossy(&o.stdout);
    for line in [
        "model       i210 (family i210/i211)",
        "latched by SYSTIMR",
        "hardware steps: read-add-write SYSTIML/H",
        "PPS out: SDP0 SDP1 SDP2 SDP3; external timestamps: SDP0 SDP1 SDP2 SDP3; FREQOUT",
    ] {
        assert!(
            o.status.success() && out.contains(line),
            "probe output lacks {line:?}:\n{out}{}",
            stderr(&o)
        );
    }
    assert!(std::fs::read(sys.root.join("bus/pci/devices/0000:00:03.0/resource0"))
        .unwrap()
        .iter()
        .all(|b| *b == 0));
}

#[test]
fn sigterm_stops_cleanly_and_marks_the_page_stopped() {
    let dir = PageDir::new("nicclockd-term");
    let stats = dir.path.join("stats.csv");
    let child = daemon(&dir, "sim", "t").arg(format!("--stats-file={}", stats.display())).spawn().unwrap();
    let mut clock = wait_for_status(&dir.path, "t", Status::Locked, Duration::from_secs(20));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(clock.status().unwrap(), Status::Stopped);
    let mut saw_stopped = false;
    while let Ok(EventWait::Event(e)) = clock.wait_event(Some(Duration::from_millis(200))) {
        saw_stopped |= e.kind == EventKind::Stopped;
    }
    assert!(saw_stopped, "a STOPPED event");
    let log = stderr(&out);
    assert!(
        log.contains("phc offset") && log.contains(" s2 freq ") && log.contains("status LOCKING -> LOCKED"),
        "{log}"
    );
    let csv = std::fs::read_to_string(&stats).unwrap();
    assert!(
        csv.starts_with("time_s,offset_ns,servo_state,freq_ppb,delay_ns,status,error_bound_ns\n"),
        "{csv}"
    );
    assert!(csv.lines().count() > 5 && csv.contains(",LOCKED,"), "{csv}");
}

#[test]
fn surprise_removal_marks_the_page_device_lost_and_wakes_readers() {
    let dir = PageDir::new("nicclockd-lost");
    let child = daemon(&dir, "sim:remove-after=2", "lost").spawn().unwrap();
    let mut clock = wait_for_status(&dir.path, "lost", Status::Locked, Duration::from_secs(10));
    let mut lost_event = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        match clock.wait_event(Some(Duration::from_secs(10))).unwrap() {
            EventWait::Event(e) if e.kind == EventKind::DeviceLost => {
                lost_event = Some(e);
                break;
            }
            _ => {}
        }
    }
    let e = lost_event.expect("a waiting reader sees DEVICE_LOST");
    assert_eq!((e.urgency, e.detail), (nicclock::Urgency::Urgent, u32::MAX));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(69), "device gone: {}", stderr(&out));
    assert!(
        stderr(&out).contains("the NIC is gone")
            && stderr(&out).contains("config space no longer answers")
            && stderr(&out).contains("DEVICE_LOST"),
        "{}",
        stderr(&out)
    );
    assert!(matches!(clock.now(), Err(nicclock::Error::Unavailable(Status::DeviceLost))));
}

#[test]
fn a_nic_that_stops_answering_ends_the_daemon_with_what_config_space_says() {
    for (device, page, code, says) in [
        // QEMU answers a removed device's BAR with 0, not all ones: the clock freezes, config
        // space confirms the removal.
        (
            "sim:qemu=1,remove-after=2",
            "lostq",
            69,
            "read 0x00000000 and its PCI config space no longer answers",
        ),
        // Config space still shows the NIC: not "gone", so the unit's Restart=on-failure may retry.
        ("sim:bar-off-after=2", "baroff", 1, "config space still shows it"),
    ] {
        let dir = PageDir::new(&format!("nicclockd-{page}"));
        let child = daemon(&dir, device, page).spawn().unwrap();
        wait_for_status(&dir.path, page, Status::Locked, Duration::from_secs(10));
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{device}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{device}: {}", stderr(&out));
        let clock = Clock::open_in(&dir.path, page).unwrap();
        assert!(matches!(clock.now(), Err(nicclock::Error::Unavailable(Status::DeviceLost))), "{device}");
    }
}

#[test]
fn locked_updates_are_exported_as_ntp_shm() {
    let dir = PageDir::new("nicclockd-shm");
    let unit = 50 + std::process::id() % 200;
    let mut child = daemon(&dir, "sim", "shm")
        .args(["--ntpshm", &unit.to_string(), "--tai-offset", "37"])
        .spawn()
        .unwrap();
    wait_for_status(&dir.path, "shm", Status::Locked, Duration::from_secs(20));
    // The LOCKED update's sample follows its page update by microseconds: wait for it.
    let shm = nicclock_driver::ntpshm::NtpShm::open(unit, 0o600).unwrap();
    let start = Instant::now();
    let sample = loop {
        if let Some(sample) = shm.read() {
            break sample;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no valid sample in the segment");
        std::thread::sleep(Duration::from_millis(10));
    };
    sigterm(&child);
    child.wait().unwrap();
    let now_utc = common::realtime_ns() as i128;
    assert!(
        (sample.receive_utc_ns - now_utc).abs() < 2_000_000_000,
        "receive time is the system clock's UTC: {sample:?}"
    );
    assert!(
        (sample.clock_utc_ns - sample.receive_utc_ns).abs() < 100_000,
        "the NIC's UTC agrees with it: {sample:?}"
    );
    assert!((-30..=-10).contains(&sample.precision), "{sample:?}");
    // SAFETY: test cleanup, removing the segment the (stopped) daemon created.
    unsafe {
        let id = libc::shmget(nicclock_driver::ntpshm::KEY_BASE + unit as i32, 0, 0);
        libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
    }
}

#[test]
fn after_start_up_it_runs_unprivileged_with_no_capabilities() {
    assert!(nix::unistd::geteuid().is_root(), "this test starts nicclockd as root and must run as root");
    let dir = PageDir::new("nicclockd-drop");
    let child = daemon(&dir, "sim", "drop").args(["--user", "nobody"]).spawn().unwrap();
    let clock = wait_for_status(&dir.path, "drop", Status::Locked, Duration::from_secs(20));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| -> String {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), "65534 65534 65534 65534", "{status}");
    for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(caps), "0000000000000000", "{caps} in {status}");
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Groups:"), "", "no supplementary groups");
    // Still publishing (the mapping stays writable) and still able to stop cleanly.
    assert!(clock.now().is_ok());
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("running as uid 65534"), "{}", stderr(&out));
    assert_eq!(clock.status().unwrap(), Status::Stopped);
}

/// Reads notify-socket messages until one contains `want`, failing after `within`.
fn recv_until(
    sock: &std::os::unix::net::UnixDatagram,
    messages: &mut Vec<String>,
    want: &str,
    within: Duration,
) {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    while !messages.last().is_some_and(|m| m.contains(want)) {
        assert!(start.elapsed() < within, "no {want} within {within:?}: {messages:?}");
        if let Ok(n) = sock.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn systemd_hears_ready_watchdog_between_slow_updates_and_stopping() {
    let dir = PageDir::new("nicclockd-notify");
    let sock_path = dir.path.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // One update every 100 s, a watchdog of 0.4 s: the pings must come between updates.
    let child = daemon(&dir, "sim", "notify")
        .args(["--rate", "0.01"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .spawn()
        .unwrap();
    let mut messages = Vec::new();
    recv_until(&sock, &mut messages, "READY=1", Duration::from_secs(20));
    for _ in 0..3 {
        recv_until(&sock, &mut messages, "WATCHDOG=1", Duration::from_secs(20));
        messages.push(String::new()); // wait for the next one
    }
    let clock = Clock::open_in(&dir.path, "notify").unwrap();
    assert_eq!(clock.snapshot().unwrap().update_count, 1, "three pings, still one update: {messages:?}");
    sigterm(&child);
    recv_until(&sock, &mut messages, "STOPPING=1", Duration::from_secs(20));
    let out = support::wait_exit(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

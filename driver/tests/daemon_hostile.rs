//! nicclockd against what users and other processes may do to it: a reader's flock on the page,
//! a second daemon on the same page or NIC, the page unlinked under it, a world-writable page
//! mode, absurd rates and simulator values, and stop signals at the slowest rate. Every case
//! runs under a timeout.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::PageDir;
use nicclock::{Clock, Status};
use nix::sys::signal::Signal;
use support::{daemon, sigterm, stderr, wait_exit, wait_for_status, FakeSys, BIN, IGB_QEMU};

const LIMIT: Duration = Duration::from_secs(30);

/// Waits until page `name` exists and names `pid` as its writer.
fn wait_for_writer(dir: &PageDir, name: &str, pid: u32) -> Clock {
    let start = Instant::now();
    loop {
        if let Ok(c) = Clock::open_in(&dir.path, name) {
            if c.writer_pid() == pid {
                return c;
            }
        }
        assert!(start.elapsed() < LIMIT, "page {name} has no writer {pid} after {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child leading its own process group, killed with the group (and reaped) when dropped.
struct KillGroup(std::process::Child);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

#[test]
fn a_readers_shared_flock_on_the_page_does_not_stop_nicclockd() {
    let dir = PageDir::new("hostile-flock");
    let first = daemon(&dir, "sim", "f").spawn().unwrap();
    wait_for_writer(&dir, "f", first.id());
    sigterm(&first);
    assert_eq!(wait_exit(first, LIMIT).status.code(), Some(0));
    // The reproduction, as nobody: `flock -s PAGE -c 'sleep 1000'` made nicclockd exit 1
    // with "another writer (pid 0)". The reader says when it holds the lock.
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let flock = ["/usr/bin/flock", "/bin/flock"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("flock (util-linux) is needed: tests/setup.sh installs it");
    let mut reader = KillGroup(
        Command::new(flock)
            .arg("-s")
            .arg(dir.page("f"))
            .args(["-c", "echo held; exec sleep 1000"])
            .uid(common::NOBODY)
            .gid(common::NOBODY)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // (flock and its sleeping child are killed together whatever happens below.)
    let mut line = String::new();
    std::io::BufReader::new(reader.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "held\n", "nobody holds a shared flock on the page");
    let second = daemon(&dir, "sim", "f").spawn().unwrap();
    wait_for_status(&dir.path, "f", Status::Locked, LIMIT);
    sigterm(&second);
    let out = wait_exit(second, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_second_daemon_on_the_same_page_exits_1_naming_the_first() {
    let dir = PageDir::new("hostile-page");
    let first = daemon(&dir, "sim", "p").spawn().unwrap();
    wait_for_writer(&dir, "p", first.id());
    let second = wait_exit(daemon(&dir, "sim:seed=2", "p").spawn().unwrap(), LIMIT);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    let holder = format!("another writer (pid {}, nicclockd)", first.id());
    assert!(err.contains(&holder) && err.contains("stop it first"), "lacks {holder:?}: {err}");
    let clock = Clock::open_in(&dir.path, "p").unwrap();
    assert_eq!(clock.writer_pid(), first.id(), "the first keeps its page");
    sigterm(&first);
    assert_eq!(wait_exit(first, LIMIT).status.code(), Some(0));
}

#[test]
fn a_second_daemon_on_the_same_nic_exits_1_naming_the_first() {
    let dir = PageDir::new("hostile-nic");
    let sys = FakeSys::new("hostile-nic", IGB_QEMU, None, None);
    let first = daemon(&dir, "sysfs:0000:00:03.0", "a").arg(sys.arg()).spawn().unwrap();
    wait_for_writer(&dir, "a", first.id());
    // Another page name, the same NIC: two servos would fight over one clock.
    let second = wait_exit(daemon(&dir, "sysfs:0000:00:03.0", "b").arg(sys.arg()).spawn().unwrap(), LIMIT);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    let holder = format!("pid {}, nicclockd", first.id());
    assert!(
        err.contains(&holder)
            && err.contains("PCI device 0000:00:03.0 is already driven by another nicclockd"),
        "lacks {holder:?}: {err}"
    );
    assert!(!dir.page("b").exists(), "the second touched nothing");
    // The same NIC through uio_pci_generic (/dev/uio7 whose sysfs parent is 0000:00:03.0): refused
    // before the node is even opened.
    let uio = sys.root.join("class/uio/uio7");
    std::fs::create_dir_all(uio.join("maps/map0")).unwrap();
    std::fs::write(uio.join("maps/map0/addr"), "0xfebc0000\n").unwrap();
    std::fs::write(uio.join("maps/map0/size"), "0x20000\n").unwrap();
    std::os::unix::fs::symlink(sys.root.join("bus/pci/devices/0000:00:03.0"), uio.join("device")).unwrap();
    let third = wait_exit(daemon(&dir, "uio:/dev/uio7", "c").arg(sys.arg()).spawn().unwrap(), LIMIT);
    let err = stderr(&third);
    assert_eq!(third.status.code(), Some(1), "{err}");
    assert!(err.contains(&holder) && err.contains("already driven by another nicclockd"), "uio: {err}");
    sigterm(&first);
    assert_eq!(wait_exit(first, LIMIT).status.code(), Some(0));
}

#[test]
fn a_page_unlinked_under_the_daemon_ends_it_and_its_readers_see_stopped() {
    let dir = PageDir::new("hostile-unlink");
    let child = daemon(&dir, "sim", "u").spawn().unwrap();
    let clock = wait_for_status(&dir.path, "u", Status::Locked, LIMIT);
    std::fs::remove_file(dir.page("u")).unwrap();
    let out = wait_exit(child, LIMIT);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nicclock-u was removed while this writer published it"), "{err}");
    assert_eq!(clock.status().unwrap(), Status::Stopped, "the orphan says STOPPED");
    // A restart (systemd's Restart=on-failure) publishes a new page under the name.
    let again = daemon(&dir, "sim", "u").spawn().unwrap();
    wait_for_status(&dir.path, "u", Status::Locked, LIMIT);
    sigterm(&again);
    assert_eq!(wait_exit(again, LIMIT).status.code(), Some(0));
}

/// nicclockd with `args`, which must end by itself (under the timeout).
fn run_bounded(dir: &PageDir, args: &[&str]) -> std::process::Output {
    let child = Command::new(BIN)
        .args(args)
        .arg(format!("--page-dir={}", dir.path.display()))
        .arg(format!("--lock-dir={}", dir.lock_dir().display()))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(child, LIMIT)
}

#[test]
fn open_page_modes_absurd_rates_and_absurd_simulators_are_usage_errors() {
    let dir = PageDir::new("hostile-usage");
    for (args, words) in [
        (&["--device", "sim", "--page-mode", "666"][..], "lets its group and everyone write"),
        (&["--device", "sim", "--page-mode", "777"], "forge the time"),
        (&["--device", "sim", "--page-mode", "664"], "lets its group write"),
        (&["--device", "sim", "--page-mode", "602"], "lets everyone write"),
        (&["--device", "sim", "--rate", "0.001"], "less than 0.01 updates per second"),
        (&["--device", "sim", "--rate", "1e-5"], "less than 0.01 updates per second"),
        (&["--device", "sim", "--rate", "1001"], "more than 1000 updates per second"),
        (&["--device", "sim", "--rate", "-1"], "greater than 0"),
        // A read that takes up to 11 days spun at 100 % CPU, publishing and logging nothing.
        (&["--device", "sim:jitter=1e15"], "jitter=1e15: more than 1000000 ns"),
        (&["--device", "sim:latency=2e6"], "latency=2e6: more than 1000000 ns"),
        (&["--device", "sim:ppm=1e9"], "ppm=1e9: more than 10000 ppm"),
        (&["--device", "sim:remove-after=1e300"], "remove-after=1e300"),
        // Instant + 1e300 s panicked after the page was made.
        (&["--device", "sim", "--duration", "1e300"], "leave --duration out"),
        (&["--device", "sim", "--duration", "0"], "greater than 0"),
    ] {
        let out = run_bounded(&dir, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: stderr lacks {words:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0, "no page for a bad command line");
}

#[test]
fn sigterm_and_sigint_at_the_slowest_rate_stop_it_at_once() {
    for (sig, name) in [(Signal::SIGTERM, "t"), (Signal::SIGINT, "i")] {
        let dir = PageDir::new("hostile-slow");
        let child = daemon(&dir, "sim", name).args(["--rate", "0.01"]).spawn().unwrap();
        let clock = wait_for_writer(&dir, name, child.id());
        let start = Instant::now();
        while clock.snapshot().map_or(0, |s| s.update_count) == 0 {
            assert!(start.elapsed() < LIMIT, "no first update");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Now asleep until the next update, 100 s away.
        let sent = Instant::now();
        support::signal(&child, sig);
        let out = wait_exit(child, LIMIT);
        let took = sent.elapsed();
        eprintln!("{sig} at --rate 0.01: stopped in {:.1} ms", took.as_secs_f64() * 1e3);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!("{sig} received")), "{}", stderr(&out));
        assert!(took < Duration::from_secs(2), "{sig} took {took:?}: it waited for the next update");
        assert_eq!(clock.status().unwrap(), Status::Stopped);
    }
}

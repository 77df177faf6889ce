//! Helpers for the tests that run nicclockd as a process: invocations with private page and lock
//! directories, a fake sysfs with one QEMU igb, signals, waiting on the page's status.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nicclock::{Clock, Status};

use crate::common::PageDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_nicclockd");

/// Runs nicclockd to completion with a private lock directory (probe takes none).
pub fn run(args: &[&str]) -> Output {
    let locks = PageDir::new("nicclockd-run");
    let mut cmd = Command::new(BIN);
    if args.first() != Some(&"probe") {
        cmd.arg(format!("--lock-dir={}", locks.lock_dir().display()));
    }
    cmd.args(args).stdin(Stdio::null()).output().expect("run nicclockd")
}

/// nicclockd on `device` publishing page `name` in `dir` (locks next to it), stderr captured; add
/// args before spawn().
pub fn daemon(dir: &PageDir, device: &str, name: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["--device", device, "--page-name", name])
        .arg(format!("--page-dir={}", dir.path.display()))
        .arg(format!("--lock-dir={}", dir.lock_dir().display()))
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

pub fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
}

pub fn sigterm(child: &Child) {
    signal(child, nix::sys::signal::Signal::SIGTERM);
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits for the child's exit, killing it and failing the test after `within`.
/// Ends a daemon whose checks ran in `result` (a `catch_unwind`): SIGTERM, its exit awaited; a
/// failed check is raised again with the daemon's log, and the daemon must have exited 0. Returns
/// the log.
pub fn stop_after(child: Child, result: std::thread::Result<()>) -> String {
    sigterm(&child);
    let out = wait_exit(child, Duration::from_secs(10));
    let log = stderr(&out);
    if let Err(e) = result {
        panic!("{e:?}\n{log}");
    }
    assert_eq!(out.status.code(), Some(0), "{log}");
    log
}

pub fn wait_exit(mut child: Child, within: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("nicclockd still running after {within:?}; killed it:\n{}", stderr(&out));
        }
        // Polls a child that is expected to exit; the deadline, not this pause, decides.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A fake sysfs tree with one QEMU igb at 0000:00:03.0 bound to `driver`.
pub struct FakeSys {
    pub root: PathBuf,
}

impl FakeSys {
    pub fn new(tag: &str, ids: [u16; 4], driver: Option<&str>, group: Option<u32>) -> Self {
        let root = std::env::temp_dir().join(format!("nicclockd-sys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dev = root.join("bus/pci/devices/0000:00:03.0");
        std::fs::create_dir_all(&dev).unwrap();
        for (name, v) in ["vendor", "device", "subsystem_vendor", "subsystem_device"].iter().zip(ids) {
            std::fs::write(dev.join(name), format!("0x{v:04x}\n")).unwrap();
        }
        std::fs::write(dev.join("resource"), "0x00000000febc0000 0x00000000febdffff 0x0000000000040200\n")
            .unwrap();
        std::fs::write(dev.join("resource0"), vec![0u8; 0x20000]).unwrap();
        if let Some(d) = driver {
            std::fs::create_dir_all(root.join("bus/pci/drivers").join(d)).unwrap();
            symlink(root.join("bus/pci/drivers").join(d), dev.join("driver")).unwrap();
        }
        if let Some(g) = group {
            let gdir = root.join("kernel/iommu_groups").join(g.to_string());
            std::fs::create_dir_all(gdir.join("devices")).unwrap();
            symlink(&dev, gdir.join("devices/0000:00:03.0")).unwrap();
            symlink(&gdir, dev.join("iommu_group")).unwrap();
        }
        Self { root }
    }

    pub fn arg(&self) -> String {
        format!("--sysfs-root={}", self.root.display())
    }
}

impl Drop for FakeSys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub const IGB_QEMU: [u16; 4] = [0x8086, 0x10C9, 0x1AF4, 0x1100];

/// Waits until page `name` says `want` (the daemon publishes at its own pace; polled).
pub fn wait_for_status(dir: &Path, name: &str, want: Status, within: Duration) -> Clock {
    let start = Instant::now();
    loop {
        if let Ok(c) = Clock::open_in(dir, name) {
            if c.status().ok() == Some(want) {
                return c;
            }
        }
        assert!(start.elapsed() < within, "page {name} not {want:?} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! `nicclockd netcheck` as a process: usage errors exit 2 naming what was wrong; on a fake sysfs
//! igb (a register file that never receives a frame) it lays the rings out in pagemap DMA memory,
//! brings the queues up, polls (no interrupt on sysfs, said so), and exits 1 saying no stamped
//! Sync was heard, with the queues down and bus mastering off again; each run under a timeout.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::PageDir;
use support::{stderr, FakeSys, BIN, IGB_QEMU};

/// Runs `nicclockd netcheck ARGS`; kills it and fails if it runs over 30 s.
fn netcheck(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .arg("netcheck")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
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
    assert!(!watchdog.join().unwrap(), "nicclockd netcheck {args:?} still ran after 30 s");
    out
}

fn bar_u32(bar: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bar[offset..offset + 4].try_into().unwrap())
}

#[test]
fn usage_errors_exit_2_and_say_what_to_give() {
    for (args, want) in [
        (&["sim"][..], "netcheck drives a real NIC's datapath"),
        (&["sysfs:0000:00:03.0", "--seconds", "0"], "not a number of seconds"),
        (&["sysfs:0000:00:03.0", "--seconds", "nan"], "not a number of seconds"),
        (&["eth0"], "no backend prefix"),
    ] {
        let out = netcheck(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn on_a_silent_fake_igb_it_brings_the_datapath_up_and_down_and_says_nothing_was_heard() {
    assert!(nix::unistd::geteuid().is_root(), "pagemap's frame numbers need root");
    let sys = FakeSys::new("netcheck", IGB_QEMU, None, None);
    let dev = sys.root.join("bus/pci/devices/0000:00:03.0");
    let mut config = vec![0u8; 256];
    config[..4].copy_from_slice(&[0x86, 0x80, 0xc9, 0x10]);
    std::fs::write(dev.join("config"), &config).unwrap();
    // STATUS.LU: the link is up already (a register file cannot run autonegotiation).
    let mut bar = std::fs::read(dev.join("resource0")).unwrap();
    bar[8] = 0x02;
    std::fs::write(dev.join("resource0"), &bar).unwrap();
    let locks = PageDir::new("netcheck-locks");
    let lock_arg = format!("--lock-dir={}", locks.lock_dir().display());
    let out = netcheck(&["sysfs:0000:00:03.0", "--seconds", "0.3", "--json", &sys.arg(), &lock_arg]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no interrupt delivery on a sysfs mapping: polling"), "{err}");
    assert!(err.contains("no stamped Sync"), "{err}");
    assert!(err.contains("queues down"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((j["backend"].as_str(), j["model"].as_str()), (Some("sysfs"), Some("82576")), "{j}");
    assert_eq!(j["wakeup"], "polling");
    assert_eq!(j["rx_frames"], 0);
    assert_eq!(j["delay_req_sent"], 0, "no Delay_Req before a Sync: {j}");
    assert_eq!(j["tx_stamp_ns"], serde_json::Value::Null);
    assert!(j["wakeups"].as_u64().unwrap() > 10, "polled every ms: {j}");
    let bar = std::fs::read(dev.join("resource0")).unwrap();
    let rx_ring = u64::from(bar_u32(&bar, 0xC004)) << 32 | u64::from(bar_u32(&bar, 0xC000));
    assert!(rx_ring != 0 && rx_ring % 4096 == 0, "RDBAL/H: a physical page address, {rx_ring:#x}");
    assert_eq!(bar_u32(&bar, 0xC008), 32 * 16, "RDLEN: 32 descriptors");
    assert_eq!(bar_u32(&bar, 0x100) & 0x2, 0, "RCTL.EN off again");
    assert_eq!(bar_u32(&bar, 0xC028) & 0x0200_0000, 0, "RX queue disabled again");
    assert_eq!(bar_u32(&bar, 0xB620) & 0x10, 0, "TSYNCRXCTL off");
    let command = std::fs::read(dev.join("config")).unwrap()[4];
    assert_eq!(command & 0x04, 0, "bus mastering off once the rings are freed");
}

#[test]
fn a_nic_a_nicclockd_drives_is_refused() {
    let sys = FakeSys::new("netcheck-locked", IGB_QEMU, None, None);
    let locks = PageDir::new("netcheck-locked");
    let held = nicclock::lockfile::LockDir::open(&locks.lock_dir()).unwrap();
    let _lock = held.try_lock("pci-0000:00:03.0.lock").unwrap();
    let lock_arg = format!("--lock-dir={}", locks.lock_dir().display());
    let out = netcheck(&["sysfs:0000:00:03.0", &sys.arg(), &lock_arg]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("already driven by another nicclockd"), "{err}");
    let bar = std::fs::read(sys.root.join("bus/pci/devices/0000:00:03.0/resource0")).unwrap();
    assert!(bar.iter().all(|&b| b == 0), "nothing written to the NIC");
}

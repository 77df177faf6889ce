//! The files that put nicclockd into a system: the systemd unit passes `systemd-analyze verify`;
//! the udev helpers opt NICs in only when listed and hand them to the right driver; nicclockd
//! writes its man pages and completions.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nicclock-sysfiles-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_systemd_unit_verifies() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("systemd-analyze is needed to check the unit (Debian package systemd)");
    // Point ExecStart at the binary this build made, so verify can check it is executable.
    let unit = std::fs::read_to_string(repo().join("udev/nicclockd@.service")).unwrap();
    let dir = temp("unit");
    let local = dir.join("nicclockd@.service");
    std::fs::write(&local, unit.replace("/usr/local/sbin/nicclockd", env!("CARGO_BIN_EXE_nicclockd")))
        .unwrap();
    let out = Command::new(analyze).arg("verify").arg(&local).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    for must in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=69",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "RuntimeDirectory=nicclock",
        "RuntimeDirectoryPreserve=yes",
        "DeviceAllow=char-vfio rw",
        "--user nicclock",
    ] {
        assert!(unit.contains(must), "the unit lacks {must}");
    }
}

#[test]
fn only_listed_nics_are_opted_in() {
    let dir = temp("optin");
    let conf = dir.join("devices");
    std::fs::write(&conf, "# comment\n0000:01:00.0 vfio\n0000:02:00.0 uio\n0000:03:00.0 bogus\n").unwrap();
    let optin = |addr: &str| {
        let out = Command::new(repo().join("udev/nicclock-optin"))
            .arg(addr)
            .env("NICCLOCK_DEVICES", &conf)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(optin("0000:01:00.0"), "vfio");
    assert_eq!(optin("0000:02:00.0"), "uio");
    assert_eq!(optin("0000:03:00.0"), "", "unknown backends are ignored");
    assert_eq!(optin("0000:00:1f.6"), "", "an unlisted NIC (the management port) is left alone");
    let rules = std::fs::read_to_string(repo().join("udev/70-nicclock.rules")).unwrap();
    assert!(rules.contains("ENV{SYSTEMD_WANTS}+=\"nicclockd@%k.service\""));
    assert!(
        rules.contains("ENV{NICCLOCK_BACKEND}==\"\", GOTO=\"nicclock_end\""),
        "unlisted devices skip every action"
    );
}

#[test]
fn bind_hands_the_nic_from_its_kernel_driver_to_vfio() {
    let sys = temp("bind");
    let dev = sys.join("bus/pci/devices/0000:01:00.0");
    let igb = sys.join("bus/pci/drivers/igb");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::create_dir_all(&igb).unwrap();
    std::os::unix::fs::symlink(&igb, dev.join("driver")).unwrap();
    let out = Command::new(repo().join("udev/nicclock-bind"))
        .args(["0000:01:00.0", "vfio"])
        .env("NICCLOCK_SYSFS", &sys)
        .env("NICCLOCK_MODPROBE", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(dev.join("driver_override")), "vfio-pci\n");
    assert_eq!(read(igb.join("unbind")), "0000:01:00.0\n", "unbound from igb");
    assert_eq!(read(sys.join("bus/pci/drivers_probe")), "0000:01:00.0\n");
    let bad = Command::new(repo().join("udev/nicclock-bind"))
        .args(["0000:01:00.0", "dpdk"])
        .env("NICCLOCK_SYSFS", &sys)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn nicclockd_writes_its_man_pages_and_completions() {
    let dir = temp("docs");
    let out =
        Command::new(env!("CARGO_BIN_EXE_nicclockd")).env("NICCLOCK_GENERATE_DOCS", &dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(dir.join("man/nicclockd.8")).unwrap();
    assert!(page.contains(".TH nicclockd 8") && page.contains("stats\\-file"), "{page}");
    let probe = std::fs::read_to_string(dir.join("man/nicclockd-probe.8")).unwrap();
    assert!(probe.contains(".TH nicclockd-probe 8") && probe.contains("json"), "{probe}");
    for (file, must) in
        [("nicclockd.bash", "--device"), ("_nicclockd", "--device"), ("nicclockd.fish", "-l device")]
    {
        let text = std::fs::read_to_string(dir.join("completions").join(file)).unwrap();
        assert!(text.contains(must), "{file} lacks {must}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

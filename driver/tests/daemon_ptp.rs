//! nicclockd --reference ptp as a process: its options checked (usage errors exit 2 naming what
//! was wrong); on the simulator (no datapath yet: the rings' stand-in) a page that names PTP as
//! its reference, says LISTENING and UNSYNCHRONIZED with no bound, and a stats CSV with the
//! datapath's counters; on a fake sysfs device the rings in pagemap DMA memory, bus mastering and
//! the queues on while it runs and off after SIGTERM.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::PageDir;
use nicclock::{Clock, ReferenceKind, Status, SyncCondition, SyncWait, UtcOffsetSource};
use support::{daemon, run, stderr, stop_after, wait_exit, FakeSys, IGB_QEMU};

fn usage_error(args: &[&str], want: &str) {
    let out = run(&[&["--device", "sim"][..], args].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn ptp_options_are_checked_and_refused_with_a_clear_message() {
    usage_error(&["--reference", "ptp", "--ptp-transport", "udp4"], "--ptp-transport udp4 needs --ptp-ip");
    usage_error(
        &["--reference", "ptp", "--ptp-ip", "192.168.7.2"],
        "PTP over l2 (Ethernet) has no IP address",
    );
    usage_error(
        &["--reference", "ptp", "--ptp-transport", "l2", "--ptp-ip", "192.168.7.2"],
        "add --ptp-transport udp4",
    );
    usage_error(
        &["--reference", "ptp", "--ptp-transport", "udp4", "--ptp-ip", "224.0.1.129"],
        "not a unicast host address",
    );
    usage_error(&["--ptp-domain", "3"], "--ptp-domain is a PTP option: it needs --reference ptp");
    usage_error(&["--reference", "ptp", "--pps-out", "SDP0"], "not supported yet");
    usage_error(&["--reference", "ptp", "--ptp-transport", "udp6"], "udp6");
    usage_error(&["--reference", "ptp", "--ptp-domain", "128"], "128");
    usage_error(&["--reference", "ptp", "--ptp-log-sync-interval", "9"], "9");
    usage_error(
        &["--ptp-delay-asymmetry", "-40"],
        "--ptp-delay-asymmetry is a PTP option: it needs --reference ptp",
    );
    usage_error(&["--reference", "ptp", "--ptp-delay-asymmetry", "2000000000"], "2000000000");
    usage_error(&["--reference", "ptp", "--ptp-delay-asymmetry", "40ns"], "40ns");
    usage_error(&["--ptp-max-asymmetry", "100"], "--ptp-max-asymmetry is a PTP option");
    usage_error(&["--reference", "ptp", "--ptp-max-asymmetry", "-1"], "-1");
    usage_error(
        &["--ptp-step-threshold", "1000000"],
        "--ptp-step-threshold is a PTP option: it needs --reference ptp",
    );
    usage_error(&["--reference", "ptp", "--ptp-step-threshold", "0"], "0");
    usage_error(&["--reference", "ptp", "--ptp-first-step-threshold", "50us"], "50us");
    usage_error(&["--reference", "ptpv1"], "use realtime, tai or pps:SDP0..SDP3, or ptp");
    let out = run(&["--device", "sim:ptp-master=8"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("only a PTP port hears: add --reference ptp"), "{}", stderr(&out));
}

#[test]
fn on_the_simulator_the_page_names_ptp_and_stays_unsynchronized_without_a_master() {
    let dir = PageDir::new("nicclockd-ptp-sim");
    let stats = dir.path.join("stats.csv");
    let child = daemon(&dir, "sim", "ptp")
        .args(["--reference", "ptp", "--ptp-domain", "4", "--rate", "20"])
        .args(["--ptp-first-step-threshold", "20000", "--ptp-step-threshold", "2000000"])
        .arg(format!("--stats-file={}", stats.display()))
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        // The page exists from the start; wait for the first PTP update in it.
        let start = Instant::now();
        let snapshot = loop {
            if let Some(s) = Clock::open_in(&dir.path, "ptp").ok().and_then(|c| c.snapshot().ok()) {
                if s.reference.kind == ReferenceKind::Ptp && s.update_count >= 2 {
                    break s;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no PTP update in the page");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(snapshot.status, Status::Unsynchronized, "no master: nothing to follow");
        assert_eq!(snapshot.error_bound_ns, u64::MAX, "no bound without a master");
        assert_eq!(snapshot.reference.port_state, 4, "LISTENING");
        assert_eq!(snapshot.reference.gm_identity, [0; 8], "no grandmaster yet");
        assert_eq!(snapshot.reference.utc_offset_source, UtcOffsetSource::Host);
        let clock = Clock::open_in(&dir.path, "ptp").unwrap();
        let now = clock.now().expect("a live page");
        assert_eq!(
            (now.status, now.error_bound_ns()),
            (Status::Unsynchronized, u64::MAX),
            "no plausible time"
        );
    });
    let log = stop_after(child, result);
    assert!(log.contains("is on no wire"), "why nothing arrives is said plainly:\n{log}");
    assert!(log.contains("domain 4"), "{log}");
    assert!(
        log.contains("ptp offset") && log.contains("tx_lost 0"),
        "linuxptp-style lines with counters:\n{log}"
    );
    let csv = std::fs::read_to_string(&stats).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in
        ["port_state", "rx_dropped", "tx_stamps_lost", "drop_looped", "drop_not_ptp", "mapping_miss_ns"]
    {
        assert!(header.contains(&col), "{col} in {header:?}");
    }
    let row: Vec<&str> = lines.next().expect("a stats line").split(',').collect();
    assert_eq!(row.len(), header.len(), "{row:?}");
    assert_eq!(row[header.iter().position(|c| *c == "port_state").unwrap()], "4");
}

/// CLOCK_REALTIME now as TAI by the simulated master's offset (37 s), ns.
fn realtime_tai_ns() -> u64 {
    let utc = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    utc.as_nanos() as u64 + 37_000_000_000
}

#[test]
fn on_the_simulator_with_a_master_on_its_wire_the_slave_locks_and_the_page_holds_its_time() {
    let dir = PageDir::new("nicclockd-ptp-live");
    let child = daemon(&dir, "sim:ptp-master=8", "live").args(["--reference", "ptp"]).spawn().unwrap();
    let result = std::panic::catch_unwind(|| {
        let start = Instant::now();
        let clock = loop {
            if let Ok(c) = Clock::open_in(&dir.path, "live") {
                break c;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no page");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Asleep on the page's futex until LOCKED within 100 µs (the sim's stamps are exact to the
        // host's clock reads; the bound holds the mapping's brackets and the servo's offsets).
        match clock.wait_until(SyncCondition::locked_within(100_000), Some(Duration::from_secs(90))).unwrap()
        {
            SyncWait::Reached(_) => {}
            SyncWait::TimedOut(standing) => panic!("not LOCKED within 90 s: {standing:?}"),
        }
        let s = clock.snapshot().unwrap();
        assert_eq!(s.reference.kind, ReferenceKind::Ptp);
        assert_eq!(s.reference.port_state, 9, "SLAVE");
        assert_eq!(
            s.reference.gm_identity,
            [0x02, 0x6e, 0x63, 0xff, 0xfe, 0x00, 0x00, 0x01],
            "the sim's master"
        );
        assert_eq!(s.reference.utc_offset_source, UtcOffsetSource::Reference, "TAI−UTC from the Announce");
        assert_eq!(s.tai_utc_offset_s, 37);
        // The master's clock is CLOCK_REALTIME (+37 s): every reading holds it within its bound.
        let mut outside = Vec::new();
        for _ in 0..200 {
            let before = realtime_tai_ns();
            let now = clock.now().unwrap();
            let after = realtime_tai_ns();
            if now.latest_ns() < before || now.earliest_ns() > after {
                outside.push((now.time_ns as i128 - before as i128, now.error_bound_ns()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(outside.is_empty(), "readings outside their bound (offset, bound): {outside:?}");
    });
    let log = stop_after(child, result);
    assert!(log.contains("grandmaster 026e63.fffe.000001 on the simulated wire"), "{log}");
    assert!(
        log.contains("woken by the NIC's interrupt"),
        "the simulated NIC's interrupt wakes the slave:\n{log}"
    );
    assert!(log.contains("tx_lost 0"), "{log}");
}

fn bar_u32(bar: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bar[offset..offset + 4].try_into().unwrap())
}

#[test]
fn on_a_sysfs_device_the_rings_get_dma_memory_and_the_port_goes_up_then_down() {
    assert!(nix::unistd::geteuid().is_root(), "pagemap's frame numbers need root");
    let sys = FakeSys::new("ptp-dma", IGB_QEMU, None, None);
    let dev = sys.root.join("bus/pci/devices/0000:00:03.0");
    // Config space: vendor/device, Command register 0 (bus mastering off).
    let mut config = vec![0u8; 256];
    config[..4].copy_from_slice(&[0x86, 0x80, 0xc9, 0x10]);
    std::fs::write(dev.join("config"), &config).unwrap();
    let dir = PageDir::new("nicclockd-ptp-dma");
    let child =
        daemon(&dir, "sysfs:0000:00:03.0", "hw").args(["--reference", "ptp", &sys.arg()]).spawn().unwrap();
    let result = std::panic::catch_unwind(|| {
        let start = Instant::now();
        loop {
            let ptp = Clock::open_in(&dir.path, "hw")
                .ok()
                .and_then(|c| c.snapshot().ok())
                .is_some_and(|s| s.reference.kind == ReferenceKind::Ptp);
            if ptp {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no PTP update in the page");
            std::thread::sleep(Duration::from_millis(20));
        }
        let command = std::fs::read(dev.join("config")).unwrap()[4];
        assert_ne!(command & 0x04, 0, "bus mastering on while the rings live");
        let bar = std::fs::read(dev.join("resource0")).unwrap();
        let rx_ring = u64::from(bar_u32(&bar, 0xC004)) << 32 | u64::from(bar_u32(&bar, 0xC000));
        assert!(rx_ring != 0 && rx_ring % 4096 == 0, "RDBAL/H: a physical page address, {rx_ring:#x}");
        assert_eq!(bar_u32(&bar, 0xC008), 32 * 16, "RDLEN: 32 descriptors");
        assert_ne!(bar_u32(&bar, 0x100) & 0x2, 0, "RCTL.EN");
        assert_eq!(bar_u32(&bar, 0x5CBC), 0x4400_88F7, "ETQF(3): 0x88F7, 1588 stamping");
    });
    stop_after(child, result);
    let bar = std::fs::read(dev.join("resource0")).unwrap();
    assert_eq!(bar_u32(&bar, 0x100) & 0x2, 0, "RCTL.EN off after the port went down");
    assert_eq!(bar_u32(&bar, 0xB620) & 0x10, 0, "TSYNCRXCTL off");
    assert_eq!(bar_u32(&bar, 0x5CBC), 0, "ETQF(3) cleared");
    let command = std::fs::read(dev.join("config")).unwrap()[4];
    assert_eq!(command & 0x04, 0, "bus mastering off again once the rings are freed");
}

#[test]
fn a_ptp_page_unlinked_under_the_daemon_ends_it_and_its_readers_see_stopped() {
    // The PTP loop checks the page's link once a second, not at every update: it still ends.
    let dir = PageDir::new("nicclockd-ptp-unlink");
    let child = daemon(&dir, "sim", "pu").args(["--reference", "ptp", "--rate", "20"]).spawn().unwrap();
    let start = Instant::now();
    let clock = loop {
        let opened = Clock::open_in(&dir.path, "pu").ok();
        if let Some(c) = opened.filter(|c| c.snapshot().is_ok_and(|s| s.reference.kind == ReferenceKind::Ptp))
        {
            break c;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no PTP update in the page");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::remove_file(dir.page("pu")).unwrap();
    let out = wait_exit(child, Duration::from_secs(10));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nicclock-pu was removed while this writer published it"), "{err}");
    assert_eq!(clock.status().unwrap(), Status::Stopped, "the orphan says STOPPED");
}

//! `nicclockd probe`: what a device is and what its registers say, without changing anything.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use nicclock_driver::device::{self, DeviceArg};
use nicclock_driver::model::SystimFormat;
use nicclock_driver::phc::SteerChoice;
use nicclock_driver::regs;
use nicclock_uio::{RegisterAccess, Sysfs};
use nix::time::{clock_gettime, ClockId};

pub fn probe(arg: &DeviceArg, sysfs_root: &Path, vfio_container: &Path) -> Result<ExitCode> {
    let opened = device::open(arg, &Sysfs::new(sysfs_root), vfio_container)?;
    let [vendor, dev, sv, sd] = opened.ids;
    println!("device      {} via {}", opened.address, opened.backend);
    println!("ids         {vendor:04x}:{dev:04x} subsystem {sv:04x}:{sd:04x}");
    let format = match opened.model.systim {
        SystimFormat::Fractional { shift } => format!("SYSTIM in 2^-{shift} ns"),
        SystimFormat::Ns40 => "SYSTIM 40-bit ns".into(),
        SystimFormat::SecondsNs => "SYSTIM seconds + ns".into(),
    };
    println!("model       {} ({format}, max adjustment {} ppb)", opened.model.name, opened.model.max_adj_ppb);
    match opened.quirk_source {
        Some(source) => println!("quirks      {:?} ({source})", opened.quirks),
        None => println!("quirks      none"),
    }
    println!("steering    auto -> {}", SteerChoice::Auto.resolve(opened.quirks));
    let mac = opened.mac();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
    println!("mac         {} (clock id {})", hex(&mac), hex(&nicclock::Identity::eui64_from_mac(mac)));
    println!("registers");
    for (name, offset) in regs::DUMP {
        println!("  {name:<11} {offset:#07x}  {:#010x}", opened.regs.read32(offset));
    }
    let timinca = opened.regs.read32(regs::TIMINCA);
    if timinca == 0 {
        println!("clock       stopped (TIMINCA is 0; nicclockd starts it)");
    } else {
        let read = || {
            let lo = opened.regs.read32(regs::SYSTIML) as u64; // latches SYSTIMH
            ((opened.regs.read32(regs::SYSTIMH) as u64) << 32) | lo
        };
        let (a, t0) = (read(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(10));
        let (b, dt) = (read(), t0.elapsed());
        println!("clock       counting: {} units in {:.1} ms", b.wrapping_sub(a), dt.as_secs_f64() * 1e3);
    }
    timing(&*opened.regs);
    Ok(ExitCode::SUCCESS)
}

/// How tightly this machine can measure the NIC clock against CLOCK_REALTIME: the cost of a clock
/// read alone and of a clock-bracketed SYSTIML read (the floor of nicclockd's and phc2sys' "delay").
fn timing(regs: &dyn RegisterAccess) {
    const READS: usize = 2000;
    let now = || {
        let t = clock_gettime(ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME exists");
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    };
    let (mut alone, mut bracketed) = (Vec::with_capacity(READS), Vec::with_capacity(READS));
    for _ in 0..READS {
        let (a, b) = (now(), now());
        alone.push(b.saturating_sub(a));
        let a = now();
        regs.read32(regs::SYSTIML); // latches SYSTIMH
        let b = now();
        regs.read32(regs::SYSTIMH);
        bracketed.push(b.saturating_sub(a));
    }
    alone.sort_unstable();
    bracketed.sort_unstable();
    println!(
        "timing      CLOCK_REALTIME read: min {} ns, median {} ns; SYSTIML read bracketed by two: min {} ns, median {} ns ({READS} reads)",
        alone[0],
        alone[READS / 2],
        bracketed[0],
        bracketed[READS / 2]
    );
}

//! `nicclockd probe`: what a device is and what its registers say, without changing anything;
//! as aligned text for people or, with `--json`, one JSON object on one line for scripts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use nicclock_driver::device::{self, DeviceArg};
use nicclock_driver::model::SystimFormat;
use nicclock_driver::phc::{SteerChoice, Steering};
use nicclock_driver::regs;
use nicclock_uio::{RegisterAccess, Sysfs};
use nix::time::{clock_gettime, ClockId};
use serde::Serialize;

/// The `--json` fields (documented in `nicclockd probe --help`).
pub const JSON_HELP: &str = "\
--json fields (one object, one line):
  device              PCI address (\"sim\" for the simulator)
  backend             vfio | uio | sysfs | sim
  vendor_id, device_id, subsystem_vendor_id, subsystem_device_id   PCI ids, \"8086\"-style hex
  model               \"82576\", \"82574\", ...
  systim_format       how SYSTIM counts (\"SYSTIM in 2^-19 ns\", ...)
  max_adjustment_ppb  largest frequency adjustment of the model
  quirks              quirk flag names (empty: none); quirk_source: the matching table row or null
  steering_auto       hw | sw: what --steer auto picks for this device
  mac, clock_id       MAC address and EUI-64 clock identity, colon-separated hex
  registers           {name: value} of the PTP registers read
  clock_running       false when TIMINCA is 0 (nicclockd starts the clock)
  clock_units_in_10ms SYSTIM units counted over ~10 ms (null when stopped); clock_interval_ms: the interval
  timing              {reads, clock_read_min_ns, clock_read_median_ns, bracketed_min_ns, bracketed_median_ns}:
                      a CLOCK_REALTIME read alone and a SYSTIML read bracketed by two (the floor of any delay)";

#[derive(Serialize)]
struct Report {
    device: String,
    backend: &'static str,
    vendor_id: String,
    device_id: String,
    subsystem_vendor_id: String,
    subsystem_device_id: String,
    model: &'static str,
    systim_format: String,
    max_adjustment_ppb: f64,
    quirks: Vec<String>,
    quirk_source: Option<&'static str>,
    steering_auto: &'static str,
    mac: String,
    clock_id: String,
    registers: BTreeMap<&'static str, u32>,
    clock_running: bool,
    clock_units_in_10ms: Option<u64>,
    clock_interval_ms: Option<f64>,
    timing: Timing,
}

#[derive(Serialize)]
struct Timing {
    reads: usize,
    clock_read_min_ns: u64,
    clock_read_median_ns: u64,
    bracketed_min_ns: u64,
    bracketed_median_ns: u64,
}

pub fn probe(arg: &DeviceArg, sysfs_root: &Path, vfio_container: &Path, json: bool) -> Result<ExitCode> {
    let opened = device::open(arg, &Sysfs::new(sysfs_root), vfio_container)?;
    let [vendor, dev, sv, sd] = opened.ids;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
    let mac = opened.mac();
    let registers: Vec<(&'static str, usize, u32)> =
        regs::DUMP.iter().map(|(name, offset)| (*name, *offset, opened.regs.read32(*offset))).collect();
    let running = opened.regs.read32(regs::TIMINCA) != 0;
    let counted = running.then(|| {
        let read = || {
            let lo = opened.regs.read32(regs::SYSTIML) as u64; // latches SYSTIMH
            ((opened.regs.read32(regs::SYSTIMH) as u64) << 32) | lo
        };
        let (a, t0) = (read(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(10));
        let (b, dt) = (read(), t0.elapsed());
        (b.wrapping_sub(a), dt.as_secs_f64() * 1e3)
    });
    let report = Report {
        device: opened.address.clone(),
        backend: opened.backend,
        vendor_id: format!("{vendor:04x}"),
        device_id: format!("{dev:04x}"),
        subsystem_vendor_id: format!("{sv:04x}"),
        subsystem_device_id: format!("{sd:04x}"),
        model: opened.model.name,
        systim_format: match opened.model.systim {
            SystimFormat::Fractional { shift } => format!("SYSTIM in 2^-{shift} ns"),
            SystimFormat::Ns40 => "SYSTIM 40-bit ns".into(),
            SystimFormat::SecondsNs => "SYSTIM seconds + ns".into(),
        },
        max_adjustment_ppb: opened.model.max_adj_ppb,
        quirks: opened.quirks.iter_names().map(|(name, _)| name.to_string()).collect(),
        quirk_source: opened.quirk_source,
        steering_auto: match SteerChoice::Auto.resolve(opened.quirks) {
            Steering::Hardware => "hw",
            Steering::Software => "sw",
        },
        mac: hex(&mac),
        clock_id: hex(&nicclock::Identity::eui64_from_mac(mac)),
        registers: registers.iter().map(|(name, _, value)| (*name, *value)).collect(),
        clock_running: running,
        clock_units_in_10ms: counted.map(|(units, _)| units),
        clock_interval_ms: counted.map(|(_, ms)| ms),
        timing: timing(&*opened.regs),
    };
    if json {
        write_stdout(&serde_json::to_string(&report).context("encoding the probe as JSON")?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let r = &report;
    let mut text = format!("device      {} via {}\n", r.device, r.backend);
    text += &format!(
        "ids         {}:{} subsystem {}:{}\n",
        r.vendor_id, r.device_id, r.subsystem_vendor_id, r.subsystem_device_id
    );
    text += &format!(
        "model       {} ({}, max adjustment {} ppb)\n",
        r.model, r.systim_format, r.max_adjustment_ppb
    );
    text += &match r.quirk_source {
        Some(source) => format!("quirks      {:?} ({source})\n", opened.quirks),
        None => "quirks      none\n".into(),
    };
    text += &format!("steering    auto -> {}\n", SteerChoice::Auto.resolve(opened.quirks));
    text += &format!("mac         {} (clock id {})\n", r.mac, r.clock_id);
    text += "registers\n";
    for (name, offset, value) in &registers {
        text += &format!("  {name:<11} {offset:#07x}  {value:#010x}\n");
    }
    text += &match counted {
        None => "clock       stopped (TIMINCA is 0; nicclockd starts it)\n".into(),
        Some((units, ms)) => format!("clock       counting: {units} units in {ms:.1} ms\n"),
    };
    let t = &r.timing;
    text += &format!(
        "timing      CLOCK_REALTIME read: min {} ns, median {} ns; SYSTIML read bracketed by two: min {} ns, median {} ns ({} reads)",
        t.clock_read_min_ns, t.clock_read_median_ns, t.bracketed_min_ns, t.bracketed_median_ns, t.reads
    );
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` and a newline to standard output: a closed pipe ends quietly, any other failure
/// (a full disk, /dev/full) is a runtime error naming it, never a panic.
fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// How tightly this machine can measure the NIC clock against CLOCK_REALTIME: the cost of a clock
/// read alone and of a clock-bracketed SYSTIML read (the floor of nicclockd's and phc2sys' "delay").
fn timing(regs: &dyn RegisterAccess) -> Timing {
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
    Timing {
        reads: READS,
        clock_read_min_ns: alone[0],
        clock_read_median_ns: alone[READS / 2],
        bracketed_min_ns: bracketed[0],
        bracketed_median_ns: bracketed[READS / 2],
    }
}

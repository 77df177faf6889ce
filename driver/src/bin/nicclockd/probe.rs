//! `nicclockd probe`: what a device is and what its registers say, without changing anything;
//! as aligned text for people or, with `--json`, one JSON object on one line for scripts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use nicclock_driver::clock::{self, ClockOps, Edge, SteerChoice, Steering};
use nicclock_driver::device::{self, DeviceArg};
use nicclock_driver::model::{Family, Pins};
use nicclock_driver::regs;
use nicclock_driver::vdso::SystemClock;
use nicclock_uio::{RegisterAccess, Sysfs};
use serde::Serialize;

/// The `--json` fields (documented in `nicclockd probe --help`).
pub const JSON_HELP: &str = "\
--json fields (one object, one line):
  device              PCI address (\"sim\" for the simulator)
  backend             vfio | uio | sysfs | sim
  vendor_id, device_id, subsystem_vendor_id, subsystem_device_id   PCI ids, \"8086\"-style hex
  model               \"82576\", \"82574\", \"i350\", \"i210\", ...
  family              clock family: \"82574\", \"82576\", \"82580/i350/i354\", \"i210/i211\"
  counter_format      how SYSTIM counts (\"64-bit SYSTIMH:SYSTIML in 2^-19 ns (45 ns bits)\", ...)
  latch               the register whose read latches SYSTIM (\"SYSTIML\", \"SYSTIMR\", ...)
  ns_per_lsb          resolution of the counter, ns; counter_wrap_s: seconds until it wraps
  rate_lsb_ppb        frequency resolution (one TIMINCA LSB), ppb
  max_adjustment_ppb  largest frequency adjustment of the model
  hardware_step       how phase steps reach the NIC with hardware steering: TIMADJ, read-add-write SYSTIML/H, timecounter
  pins                {sdps, pps_out, extts, perout_channels, extts_channels, freqout}: pps_out and extts
                      list the SDPn names that can output a PPS / timestamp an input edge (empty: none)
  quirks              quirk flag names (empty: none); quirk_source: the matching table row or null
  steering_auto       hw | sw: what --steer auto picks for this device
  mac, clock_id       MAC address and EUI-64 clock identity, colon-separated hex
  registers           {name: value} of the PTP registers read
  clock_running       false when the counter is stopped (TIMINCA 0 on 82574/82576, TSAUXC bit 31 on 82580+)
  clock_units_in_10ms SYSTIM units counted over ~10 ms (null when stopped); clock_interval_ms: the interval
  timing              {reads, clock_read_min_ns, clock_read_median_ns, bracketed_min_ns, bracketed_median_ns}:
                      a CLOCK_REALTIME read alone and the latching SYSTIM read bracketed by two (the floor of any delay)";

#[derive(Serialize)]
struct Report {
    device: String,
    backend: &'static str,
    vendor_id: String,
    device_id: String,
    subsystem_vendor_id: String,
    subsystem_device_id: String,
    model: &'static str,
    family: String,
    counter_format: &'static str,
    latch: &'static str,
    ns_per_lsb: f64,
    counter_wrap_s: f64,
    rate_lsb_ppb: f64,
    max_adjustment_ppb: f64,
    hardware_step: String,
    pins: PinsReport,
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
struct PinsReport {
    sdps: u8,
    pps_out: Vec<String>,
    extts: Vec<String>,
    perout_channels: u8,
    extts_channels: u8,
    freqout: bool,
}

impl From<Pins> for PinsReport {
    fn from(p: Pins) -> Self {
        let names = |mask| Pins::list(mask).iter().map(|n| format!("SDP{n}")).collect();
        Self {
            sdps: p.sdps,
            pps_out: names(p.pps_out),
            extts: names(p.extts),
            perout_channels: p.perout_channels,
            extts_channels: p.extts_channels,
            freqout: p.freqout,
        }
    }
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
    // SYSTIMR exists on 82580 and later only.
    let has_systimr = matches!(opened.model.family, Family::E82580 | Family::I210);
    let registers: Vec<(&'static str, usize, u32)> = regs::DUMP
        .iter()
        .filter(|(_, offset)| *offset != regs::SYSTIMR || has_systimr)
        .map(|(name, offset)| (*name, *offset, opened.regs.read32(*offset)))
        .collect();
    // The family's ops only read here: probe changes nothing.
    let ops = clock::ops(opened.model, opened.quirks);
    let spec = opened.model.spec();
    let running = ops.running(&*opened.regs);
    let counted = running.then(|| {
        let read = || {
            let (lo, hi) = ops.read(&*opened.regs, &mut |_| {});
            ops.raw_from_regs(lo, hi)
        };
        let (a, t0) = (read(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(10));
        let (b, dt) = (read(), t0.elapsed());
        (ops.ticks_between(a, b).0.max(0) as u64, dt.as_secs_f64() * 1e3)
    });
    let report = Report {
        device: opened.address.clone(),
        backend: opened.backend,
        vendor_id: format!("{vendor:04x}"),
        device_id: format!("{dev:04x}"),
        subsystem_vendor_id: format!("{sv:04x}"),
        subsystem_device_id: format!("{sd:04x}"),
        model: opened.model.name,
        family: opened.model.family.to_string(),
        counter_format: spec.counter,
        latch: spec.latch,
        ns_per_lsb: spec.ns_per_lsb(),
        counter_wrap_s: spec.wrap_ns as f64 / 1e9,
        rate_lsb_ppb: spec.rate_lsb_ppb,
        max_adjustment_ppb: spec.max_adj_ppb,
        hardware_step: ops.step_method().to_string(),
        pins: spec.pins.into(),
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
        timing: timing(&*opened.regs, &*ops),
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
    text += &format!("model       {} (family {})\n", r.model, r.family);
    let lsb = match spec.tick_shift {
        0 => "1 ns".to_string(),
        shift => format!("2^-{shift} ns"),
    };
    let wrap = match r.counter_wrap_s {
        w if w < 3600.0 => format!("{:.1} min", w / 60.0),
        w if w < 1e6 => format!("{:.2} h", w / 3600.0),
        w => format!("{:.0} years", w / 3.15576e7),
    };
    text += &format!(
        "counter     {}, latched by {}; {lsb} per LSB, wraps after {wrap}\n",
        r.counter_format, r.latch
    );
    text += &format!(
        "rate        {:.4} ppb per TIMINCA LSB, max adjustment {} ppb; hardware steps: {}\n",
        r.rate_lsb_ppb, r.max_adjustment_ppb, r.hardware_step
    );
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(" ") };
    text += &format!(
        "pins        PPS out: {}; external timestamps: {}{}\n",
        list(&r.pins.pps_out),
        list(&r.pins.extts),
        if r.pins.freqout { "; FREQOUT" } else { "" }
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
        None => "clock       stopped (nicclockd starts it)\n".into(),
        Some((units, ms)) => format!("clock       counting: {units} units in {ms:.1} ms\n"),
    };
    let t = &r.timing;
    text += &format!(
        "timing      CLOCK_REALTIME read: min {} ns, median {} ns; latching SYSTIM read bracketed by two: min {} ns, median {} ns ({} reads)",
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
/// read alone and of a clock-bracketed latching SYSTIM read (SYSTIML, or SYSTIMR on 82580+): the
/// floor of nicclockd's and phc2sys' "delay".
fn timing(regs: &dyn RegisterAccess, ops: &dyn ClockOps) -> Timing {
    const READS: usize = 2000;
    // Read as nicclockd's measurement reads it (the vDSO's clock_gettime, called directly).
    let realtime = SystemClock::new(libc::CLOCK_REALTIME);
    let now = || realtime.now_ns();
    let (mut alone, mut bracketed) = (Vec::with_capacity(READS), Vec::with_capacity(READS));
    for _ in 0..READS {
        let (a, b) = (now(), now());
        alone.push(b.saturating_sub(a));
        let (mut a, mut b) = (0, 0);
        ops.read(regs, &mut |edge| match edge {
            Edge::Before => a = now(),
            Edge::After => b = now(),
        });
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

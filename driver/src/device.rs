//! `--device`: a hardware NIC (`vfio:`, `uio:`, `sysfs:`) or the simulator (`sim[:key=val,...]`),
//! opened into a register window with its model, quirks and identity.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use nicclock_uio::{DeviceSpec, IrqDoor, RegisterAccess, Sysfs};

use crate::model::{self, Model, Quirks};
use crate::ptp::live_master::{LiveMaster, LiveMasterSpec};
use crate::regs::{self, MIN_BAR_LEN};
use crate::sim::{PpsInput, SimConfig, SimModel, SimNic};
use crate::timesource::{RealTime, TimeSource};

/// A device as named on the command line.
#[derive(Debug, Clone)]
pub enum DeviceArg {
    Hardware(DeviceSpec),
    /// The simulator, with its settings (and fault schedule) from `sim:key=val,...`.
    Sim(SimConfig),
}

/// Why a `--device` value is not understood (a usage error).
#[derive(Debug, thiserror::Error)]
#[error("invalid --device {input:?}: {reason}")]
pub struct DeviceArgError {
    pub input: String,
    pub reason: String,
}

impl FromStr for DeviceArg {
    type Err = DeviceArgError;

    fn from_str(s: &str) -> Result<Self, DeviceArgError> {
        let bad = |reason: String| DeviceArgError { input: s.into(), reason };
        if s == "sim" || s.starts_with("sim:") {
            return parse_sim(s.strip_prefix("sim").unwrap_or("").trim_start_matches(':'))
                .map(DeviceArg::Sim)
                .map_err(bad);
        }
        s.parse::<DeviceSpec>().map(DeviceArg::Hardware).map_err(|e| bad(e.to_string()))
    }
}

const SIM_KEYS: &str = "model=82574|82576|82580|i350|i354|i210|i211, ppm=<freq error, ±10000>, wander=<ppb/√s, ≤ 10000>, latency=<ns, ≤ 1000000>, jitter=<ns, ≤ 1000000>, qemu=0|1, seed=<n>, remove-after=<s>, bar-off-after=<s>, bad-reads=<fraction of SYSTIM reads, 82574>, pps-in=SDP0..SDP3 (82580 and later), pps-jitter=<ns, ≤ 1000000>, pps-missing=<fraction of pulses>, ptp-master=<Syncs a second: 1, 2, 4 ... 128>";

/// Largest simulated read latency and jitter, ns: a register read that takes longer is no NIC.
const MAX_READ_NS: f64 = 1_000_000.0;

fn parse_sim(args: &str) -> Result<SimConfig, String> {
    let mut c = SimConfig::default();
    for kv in args.split(',').filter(|kv| !kv.is_empty()) {
        let (key, value) =
            kv.split_once('=').ok_or_else(|| format!("{kv:?} is not key=value (keys: {SIM_KEYS})"))?;
        let num = |what: &str| -> Result<f64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{key}={value:?}: {what}"))
        };
        let within = |v: f64, max: f64, unit: &str| {
            if v.abs() <= max {
                Ok(v)
            } else {
                Err(format!("{key}={value}: more than {max} {unit}, beyond what the simulator imitates (keys: {SIM_KEYS})"))
            }
        };
        let after = |what: &str| -> Result<Option<u64>, String> {
            let s = num(what).and_then(positive).and_then(|s| within(s, 1e9, "s"))?;
            Ok(Some((s * 1e9) as u64))
        };
        match key {
            "model" => {
                c.model = SimModel::from_name(value).ok_or_else(|| {
                    format!(
                    "model={value:?}: the simulator imitates 82574, 82576, 82580, i350, i354, i210 or i211"
                )
                })?
            }
            "ppm" => {
                c.freq_error_ppm = num("a frequency error in ppm").and_then(|v| within(v, 10_000.0, "ppm"))?
            }
            "wander" => {
                c.wander_ppb_per_sqrt_s = num("ppb per √s, ≥ 0")
                    .and_then(non_negative)
                    .and_then(|v| within(v, 10_000.0, "ppb/√s"))?
            }
            "latency" => {
                c.read_latency_ns =
                    num("ns, ≥ 0").and_then(non_negative).and_then(|v| within(v, MAX_READ_NS, "ns"))? as u64
            }
            "jitter" => {
                c.read_jitter_ns =
                    num("ns, ≥ 0").and_then(non_negative).and_then(|v| within(v, MAX_READ_NS, "ns"))? as u64
            }
            "qemu" => c.qemu = matches!(value, "1" | "true" | "yes"),
            "seed" => c.seed = value.parse().map_err(|_| format!("seed={value:?}: a whole number"))?,
            "remove-after" => c.remove_at_ns = after("seconds, > 0")?,
            "bar-off-after" => c.decoding_off_at_ns = after("seconds, > 0")?,
            "bad-reads" => c.bad_read_fraction = num("a fraction, 0 to 1").and_then(fraction)?,
            "pps-in" => {
                let sdp = value
                    .strip_prefix("SDP")
                    .or_else(|| value.strip_prefix("sdp"))
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| *n < 4)
                    .ok_or_else(|| format!("pps-in={value:?}: a pin, SDP0 to SDP3"))?;
                pps(&mut c).sdp = sdp;
            }
            "pps-jitter" => {
                pps(&mut c).jitter_ns =
                    num("ns, ≥ 0").and_then(non_negative).and_then(|v| within(v, MAX_READ_NS, "ns"))?
            }
            "pps-missing" => pps(&mut c).missing_fraction = num("a fraction, 0 to 1").and_then(fraction)?,
            "ptp-master" => {
                // Syncs a second as a power of two, as PTP's log intervals go (ptp4l's -3 is 8).
                let log = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| n.is_power_of_two() && *n <= 128)
                    .map(|n| -(n.trailing_zeros() as i8))
                    .ok_or_else(|| {
                        format!("ptp-master={value:?}: Syncs a second, a power of two from 1 to 128 (8: ptp4l's logSyncInterval -3)")
                    })?;
                c.ptp_master = Some(LiveMasterSpec { log_sync_interval: log, ..LiveMasterSpec::default() });
            }
            _ => return Err(format!("unknown simulator key {key:?} (keys: {SIM_KEYS})")),
        }
    }
    let model = c.model;
    if c.qemu && !model.in_qemu() {
        return Err(format!("qemu=1 with model={model}: QEMU emulates only the 82574 and the 82576"));
    }
    if c.bad_read_fraction > 0.0 && model != SimModel::I82574 {
        return Err(format!("bad-reads with model={model}: the SYSTIM read erratum is the 82574's"));
    }
    if c.bad_read_fraction > 0.0 && c.qemu {
        return Err("bad-reads with qemu=1: QEMU's SYSTIM reads are never bad".into());
    }
    if c.pps_in.is_some() && !model.has_pins() {
        return Err(format!(
            "pps-in with model={model}: it has no time-sync pins (82580, i350, i354, i210 and i211 do)"
        ));
    }
    Ok(c)
}

/// The PPS input being configured (pps-in=SDP0 with 20 ns jitter unless said otherwise).
fn pps(c: &mut SimConfig) -> &mut PpsInput {
    c.pps_in.get_or_insert_with(PpsInput::default)
}

fn fraction(v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

fn non_negative(v: f64) -> Result<f64, String> {
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is negative"))
    }
}

fn positive(v: f64) -> Result<f64, String> {
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not positive"))
    }
}

/// The subsystem ids the simulator shows when it imitates real silicon (an Intel-made board).
const SIM_BOARD_SUBSYSTEM: (u16, u16) = (model::INTEL, 0xA01F);

/// An opened clock device.
pub struct OpenedClock {
    pub regs: Arc<dyn RegisterAccess + Send + Sync>,
    pub model: &'static Model,
    pub quirks: Quirks,
    /// The quirk-table row that matched, if any.
    pub quirk_source: Option<&'static str>,
    /// PCI address (or "sim").
    pub address: String,
    /// How it was reached ("vfio", "uio", "sysfs", "sim").
    pub backend: &'static str,
    /// PCI ids (vendor, device, subsystem vendor, subsystem device).
    pub ids: [u16; 4],
    /// VFIO's hot-unplug request.
    pub removal: Option<nicclock_uio::vfio::RemovalRequest>,
    /// Where DMA memory for the PTP datapath comes from (VFIO container or pagemap); None for the
    /// simulator and a UIO node whose PCI parent is unknown. Nothing is allocated until asked.
    pub dma: Option<nicclock_uio::Dma>,
    /// Where the NIC's interrupt can be routed to a descriptor (VFIO, UIO; the simulator's
    /// eventfd); None for sysfs `resource0`. Nothing is enabled until asked.
    pub irq: Option<nicclock_uio::IrqDoor>,
    /// The simulated NIC behind `regs` (its datapath reaches host memory attached to it).
    pub sim: Option<Arc<SimNic>>,
    /// The simulated grandmaster on the simulated NIC's wire (`sim:ptp-master=N`), running until
    /// this is dropped.
    pub sim_master: Option<LiveMaster>,
}

/// Why a device could not be opened (runtime errors, exit 1).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Access(#[from] nicclock_uio::Error),
    #[error("the simulator cannot {what}: {err}")]
    Sim { what: &'static str, err: std::io::Error },
    #[error(
        "{address} is {vendor:04x}:{device:04x}, not a NIC this driver knows (supported: Intel \
         82574/82583, 82576, 82580, i350, i354, i210, i211; `nicclockd probe` lists what a device is)"
    )]
    UnknownDevice { address: String, vendor: u16, device: u16 },
    #[error("{address} is an Intel {model}: {reason}")]
    NoClock { address: String, model: &'static str, reason: &'static str },
    #[error("cannot tell which PCI device {node} is (no sysfs device link)")]
    UnknownUioParent { node: PathBuf },
}

/// The PCI address `arg` drives, found without opening it (None for the simulator, or a UIO node
/// whose PCI parent sysfs does not show; opening that fails anyway).
pub fn pci_address(arg: &DeviceArg, sysfs: &Sysfs) -> Option<nicclock_uio::PciAddress> {
    match arg {
        DeviceArg::Sim(_) => None,
        DeviceArg::Hardware(DeviceSpec::Vfio(a) | DeviceSpec::Sysfs(a)) => Some(*a),
        DeviceArg::Hardware(DeviceSpec::Uio(node)) => {
            let name = node.file_name()?.to_str()?;
            sysfs.uio_map0(name).ok()?.0
        }
    }
}

const NS_PER_S: i64 = 1_000_000_000;

/// Opens `arg` (hardware through `sysfs`, or a real-time simulator).
pub fn open(arg: &DeviceArg, sysfs: &Sysfs, vfio_container: &Path) -> Result<OpenedClock, OpenError> {
    match arg {
        DeviceArg::Sim(config) => {
            let time = RealTime::new();
            let mut config = config.clone();
            if let Some(pps) = config.pps_in.as_mut() {
                // A GPS PPS marks the true second, and the system clock is the truth's stand-in
                // here: put the simulated pulses on CLOCK_REALTIME's whole seconds (its phase
                // when the simulation's time started), as `--reference pps:` expects of them.
                let realtime = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos() as i64 - time.now_ns() as i64);
                pps.offset_ns += (NS_PER_S - realtime.rem_euclid(NS_PER_S)) % NS_PER_S;
            }
            let config = &config;
            let nic = Arc::new(SimNic::new(config.clone(), time.clone()));
            // The NIC's interrupt (single vector) into an eventfd, as VFIO's MSI would be.
            let (irq, raiser) = IrqDoor::simulated()
                .map_err(|err| OpenError::Sim { what: "create its interrupt's eventfd", err })?;
            nic.attach_irq(Arc::new(move || raiser.raise()));
            let sim_master = match config.ptp_master {
                Some(spec) => Some(
                    LiveMaster::start(nic.clone(), time, spec)
                        .map_err(|err| OpenError::Sim { what: "start its PTP master's thread", err })?,
                ),
                None => None,
            };
            let device = config.model.device_id();
            let model = model::model(model::INTEL, device).expect("simulated models are in the table");
            let (subsys, subdev) = if config.qemu {
                model::qemu_subsystem(device)
                    .expect("the quirk table has QEMU's ids for each simulated model")
            } else {
                SIM_BOARD_SUBSYSTEM
            };
            let (quirks, quirk_source) = model::quirks(device, subsys, subdev, config.qemu);
            Ok(OpenedClock {
                regs: nic.clone(),
                sim: Some(nic),
                model,
                quirks,
                quirk_source,
                address: "sim".into(),
                backend: "sim",
                ids: [model::INTEL, device, subsys, subdev],
                removal: None,
                dma: None,
                irq: Some(irq),
                sim_master,
            })
        }
        DeviceArg::Hardware(spec) => {
            if let DeviceSpec::Vfio(address) = spec {
                // Binding, group and container first, so the message names what is missing.
                nicclock_uio::vfio::check(sysfs, &sysfs.device(*address)?)?;
                nicclock_uio::vfio::require_container(vfio_container)?;
            }
            let opened = nicclock_uio::open(sysfs, spec, MIN_BAR_LEN)?;
            let pci = opened.pci.ok_or_else(|| OpenError::UnknownUioParent {
                node: match spec {
                    DeviceSpec::Uio(p) => p.clone(),
                    _ => PathBuf::new(),
                },
            })?;
            let address = pci.address.to_string();
            if let Some((model, reason)) = model::refused(pci.vendor, pci.device) {
                return Err(OpenError::NoClock { address, model, reason });
            }
            let model = model::model(pci.vendor, pci.device).ok_or(OpenError::UnknownDevice {
                address: address.clone(),
                vendor: pci.vendor,
                device: pci.device,
            })?;
            let (quirks, quirk_source) =
                model::quirks(pci.device, pci.subsystem_vendor, pci.subsystem_device, model::running_in_vm());
            Ok(OpenedClock {
                regs: Arc::new(opened.regs),
                model,
                quirks,
                quirk_source,
                address,
                backend: match opened.backend {
                    nicclock_uio::Backend::Vfio => "vfio",
                    nicclock_uio::Backend::Uio => "uio",
                    nicclock_uio::Backend::Sysfs => "sysfs",
                },
                ids: [pci.vendor, pci.device, pci.subsystem_vendor, pci.subsystem_device],
                removal: opened.removal,
                dma: opened.dma,
                irq: opened.irq,
                sim: None,
                sim_master: None,
            })
        }
    }
}

impl OpenedClock {
    /// The MAC address from receive-address register 0 (RAL0/RAH0).
    pub fn mac(&self) -> [u8; 6] {
        let lo = self.regs.read32(regs::RAL0).to_le_bytes();
        let hi = self.regs.read32(regs::RAH0).to_le_bytes();
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]]
    }
}

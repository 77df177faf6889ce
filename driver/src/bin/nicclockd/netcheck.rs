//! `nicclockd netcheck`: an operator diagnostic of the userspace PTP datapath on an igb NIC: DMA
//! rings, PHY link-up, queue bring-up, RX stamps of PTP event frames, one TX-stamped Delay_Req.
//!
//! It listens for `--seconds`, printing every PTP frame (message type, sequenceId, the hardware RX
//! stamp raw and in ns), sends one Delay_Req (IEEE 802.3 transport) asking for a TX stamp after
//! the first Sync and prints that stamp, then prints drop counters, wake-ups and CPU time and
//! tears the datapath down (queues off, bus mastering off). It sleeps on the NIC's interrupt
//! (VFIO eventfd or UIO node) and polls every millisecond only where there is none.
//! Exit: 0 when stamped Syncs and the TX stamp were seen, 1 otherwise or on a runtime error,
//! 2 for usage errors.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nicclock::lockfile::LockDir;
use nicclock_driver::clock::{self, ClockOps, RawTime};
use nicclock_driver::device::DeviceArg;
use nicclock_driver::model::{self, Family};
use nicclock_driver::net::bringup::{self, RingPlace};
use nicclock_driver::net::desc::reg;
use nicclock_driver::net::irq as nic_irq;
use nicclock_driver::net::phy::{self, LinkUp};
use nicclock_driver::net::ring::{bytes_needed, RxRing, TxRing};
use nicclock_driver::net::{DropCounters, FrameFilter, FrameSpec, Transport};
use nicclock_driver::ptp::ClockIdentity;
use nicclock_driver::regs::{self, MIN_BAR_LEN};
use nicclock_uio::{DmaRegion, Irq, RegisterAccess, Sysfs};
use nix::sys::resource::{getrusage, UsageWho};
use serde::Serialize;

use crate::args::UsageError;
use crate::wake::{Wake, Waker};

/// `nicclockd netcheck` arguments.
#[derive(Args, Debug)]
pub struct NetcheckArgs {
    /// vfio:<pci address> | uio:/dev/uioN | sysfs:<pci address> (an igb: 82576, 82580/i350, i210)
    pub device: DeviceArg,
    /// How long to listen, seconds.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub seconds: f64,
    /// PTP domain of the Delay_Req sent.
    #[arg(long, default_value_t = 0)]
    pub domain: u8,
    /// Poll the rings every millisecond instead of sleeping on the interrupt (for comparison).
    #[arg(long)]
    pub poll: bool,
    /// Also print a summary as one JSON object on one line on stdout (fields: see --help).
    #[arg(long)]
    pub json: bool,
    #[arg(long, hide = true, default_value = "/sys")]
    pub sysfs_root: PathBuf,
    #[arg(long, hide = true, default_value = nicclock_uio::vfio::CONTAINER)]
    pub vfio_container: PathBuf,
    /// Directory of the device lock files (tests use their own).
    #[arg(long, hide = true, default_value = nicclock::lockfile::DEFAULT_LOCK_DIR)]
    pub lock_dir: PathBuf,
}

/// The `--json` fields (documented in `nicclockd netcheck --help`).
pub const JSON_HELP: &str = "\
--json summary fields (one object, one line, on stdout):
  device, backend, model     the NIC; wakeup: the interrupt used, or \"polling\"
  link_up_ms                 time from the PHY autonegotiation restart to STATUS.LU (0: already up)
  seconds                    time listened
  rx_frames, ptp_frames      frames received, of which PTP for us; rx_discarded: descriptors dropped
  messages                   {Sync: n, Follow_Up: n, ...} PTP messages received by type
  sync_stamped               Syncs whose descriptor had the timestamp bit and a latched stamp
  event_unstamped            event messages received without a stamp
  sync_interval_error_max_us largest |RX stamp interval - master's origin interval| over Sync pairs
  delay_req_sent, tx_stamp_raw, tx_stamp_ns   the Delay_Req and its TX stamp (null: none)
  delay_resp_for_us          Delay_Resp messages answering our Delay_Req
  wakeups, irqs              loop wake-ups, and interrupts counted by the interrupt descriptor
  cpu_user_ms, cpu_sys_ms    CPU time of the process (getrusage)
  dropped                    {reason: n} frames dropped by the PTP frame filter";

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 86400")),
    }
}

const RX_DESCS: usize = 32;
const TX_DESCS: usize = 8;
/// Device control: set link up (the MAC follows the PHY's link).
const CTRL_SLU: u32 = 1 << 6;
const STATUS: usize = 0x0008;
/// How long autonegotiation may take (QEMU: 0.5 s; copper silicon: up to ~3 s).
const LINK_TIMEOUT: Duration = Duration::from_secs(6);
/// Receive-address registers of the last RX stamp: reading RXSATRH releases QEMU's latch.
const RXSATRL: usize = 0xB62C;
const RXSATRH: usize = 0xB630;
const TSYNC_VALID: u32 = 1;
/// How long a sent frame may take to be reported done and stamped.
const TX_TIMEOUT: Duration = Duration::from_millis(200);
/// The polling period where no interrupt exists.
const POLL_PERIOD: Duration = Duration::from_millis(1);

/// Brings the link up: CTRL.SLU (the MAC follows the PHY's link, as Linux sets it for copper),
/// then the PHY's autonegotiation through MDIC (`net::phy`), bounded. Returns how long it took.
fn link_up(regs: &dyn RegisterAccess) -> Result<Duration> {
    let ctrl = regs.read32(regs::CTRL);
    regs.write32(regs::CTRL, ctrl | CTRL_SLU);
    match phy::link_up(regs, LINK_TIMEOUT).context("bringing the link up through the PHY")? {
        LinkUp::AlreadyUp => Ok(Duration::ZERO),
        LinkUp::Negotiated { after } => Ok(after),
    }
}

fn message_name(t: u8) -> &'static str {
    match t {
        0x0 => "Sync",
        0x1 => "Delay_Req",
        0x2 => "Pdelay_Req",
        0x3 => "Pdelay_Resp",
        0x8 => "Follow_Up",
        0x9 => "Delay_Resp",
        0xA => "Pdelay_Resp_Follow_Up",
        0xB => "Announce",
        0xC => "Signaling",
        0xD => "Management",
        _ => "reserved",
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A PTP Timestamp (48-bit seconds, 32-bit ns) at `at`, in ns.
fn ptp_timestamp_ns(b: &[u8], at: usize) -> Option<i128> {
    let t = b.get(at..at + 10)?;
    let secs = t[..6].iter().fold(0i128, |acc, &x| acc << 8 | i128::from(x));
    let ns = u32::from_be_bytes([t[6], t[7], t[8], t[9]]);
    Some(secs * 1_000_000_000 + i128::from(ns))
}

/// ptp4l's way of writing a port identity: `001122.fffe.334455-1`.
fn port_identity(b: &[u8]) -> String {
    let hex = |s: &[u8]| s.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{}.{}.{}-{}", hex(&b[0..3]), hex(&b[3..5]), hex(&b[5..8]), be16(b, 8))
}

/// A Delay_Req from `identity` port 1 (44 bytes, two-step, origin timestamp 0).
fn delay_req(identity: [u8; 8], domain: u8, seq: u16) -> [u8; 44] {
    let mut m = [0u8; 44];
    m[0] = 0x01;
    m[1] = 0x02;
    m[2..4].copy_from_slice(&44u16.to_be_bytes());
    m[4] = domain;
    m[20..28].copy_from_slice(&identity);
    m[28..30].copy_from_slice(&1u16.to_be_bytes());
    m[30..32].copy_from_slice(&seq.to_be_bytes());
    m[32] = 1; // control: Delay_Req
    m[33] = 0x7F;
    m
}

#[derive(Serialize, Default)]
struct Summary {
    device: String,
    backend: &'static str,
    model: &'static str,
    wakeup: String,
    link_up_ms: f64,
    seconds: f64,
    rx_frames: u64,
    ptp_frames: u64,
    rx_discarded: u64,
    messages: BTreeMap<&'static str, u64>,
    sync_stamped: u64,
    event_unstamped: u64,
    sync_interval_error_max_us: Option<f64>,
    delay_req_sent: u64,
    tx_stamp_raw: Option<String>,
    tx_stamp_ns: Option<i128>,
    delay_resp_for_us: u64,
    wakeups: u64,
    irqs: u64,
    cpu_user_ms: f64,
    cpu_sys_ms: f64,
    dropped: BTreeMap<&'static str, u64>,
}

/// The datapath while it runs: rings, filters and what was seen.
struct Datapath<'a> {
    regs: &'a dyn RegisterAccess,
    ops: Box<dyn ClockOps>,
    rx: RxRing<DmaRegion>,
    tx: TxRing<DmaRegion>,
    filter: FrameFilter,
    spec: FrameSpec,
    identity: [u8; 8],
    domain: u8,
    drops: DropCounters,
    summary: Summary,
    /// The last Sync's sequenceId and RX stamp, and the one before with its Follow_Up's origin.
    last_sync: Option<(u16, i128)>,
    last_pair: Option<(i128, i128)>,
    delay_req_seq: u16,
}

impl Datapath<'_> {
    fn stamp_ns(&self, lo: u32, hi: u32) -> (RawTime, i128) {
        let raw = self.ops.raw_from_regs(lo, hi);
        (raw, self.ops.ns_of(raw).0)
    }

    /// Drains the RX ring; returns whether a Sync was seen.
    fn drain_rx(&mut self) -> bool {
        let mut sync_seen = false;
        while let Some(outcome) = self.rx.receive(self.regs, |f| (f.bytes.to_vec(), f.latched_timestamp)) {
            self.summary.rx_frames += 1;
            let Ok((bytes, latched)) = outcome else {
                self.summary.rx_discarded += 1;
                continue;
            };
            // A latched stamp is read (and released) whatever the frame turns out to be.
            let stamp = latched.then(|| {
                let valid = self.regs.read32(regs::TSYNCRXCTL) & TSYNC_VALID != 0;
                let lo = self.regs.read32(regs::RXSTMPL);
                let hi = self.regs.read32(regs::RXSTMPH);
                self.regs.read32(RXSATRL);
                self.regs.read32(RXSATRH);
                (valid, self.stamp_ns(lo, hi))
            });
            let parsed = self.filter.parse(&bytes);
            self.drops.record(&parsed);
            let Ok(frame) = parsed else { continue };
            self.summary.ptp_frames += 1;
            let p = frame.payload;
            let name = message_name(frame.message_type);
            *self.summary.messages.entry(name).or_default() += 1;
            let seq = be16(p, 30);
            let from = port_identity(&p[20..30]);
            match (frame.message_type, stamp) {
                (0x0..=0x3, Some((valid, (raw, ns)))) => {
                    log::info!(
                        "rx {name} seq {seq} from {from}: stamp raw {:#018x} = {}.{:09} s{}",
                        raw.0,
                        ns.div_euclid(1_000_000_000),
                        ns.rem_euclid(1_000_000_000),
                        if valid { "" } else { " (TSYNCRXCTL.VALID was clear)" }
                    );
                    if frame.message_type == 0 {
                        self.summary.sync_stamped += 1;
                        self.last_sync = Some((seq, ns));
                        sync_seen = true;
                    }
                }
                (0x0..=0x3, None) => {
                    self.summary.event_unstamped += 1;
                    log::warn!("rx {name} seq {seq} from {from}: no timestamp (descriptor bit clear)");
                }
                (0x8, _) => {
                    let origin = ptp_timestamp_ns(p, 34).unwrap_or(0);
                    log::info!("rx {name} seq {seq} from {from}: preciseOriginTimestamp {origin} ns");
                    if let Some((_, rx)) = self.last_sync.filter(|(s, _)| *s == seq) {
                        if let Some((prev_rx, prev_origin)) = self.last_pair {
                            let err = ((rx - prev_rx) - (origin - prev_origin)).abs() as f64 / 1e3;
                            let max = self.summary.sync_interval_error_max_us.get_or_insert(0.0);
                            *max = max.max(err);
                        }
                        self.last_pair = Some((rx, origin));
                    }
                }
                (0x9, _) => {
                    let t4 = ptp_timestamp_ns(p, 34).unwrap_or(0);
                    let ours = p.len() >= 54 && p[44..52] == self.identity;
                    if ours {
                        self.summary.delay_resp_for_us += 1;
                    }
                    log::info!(
                        "rx {name} seq {seq} from {from}: receiveTimestamp {t4} ns, for {}{}",
                        if p.len() >= 54 { port_identity(&p[44..54]) } else { "?".into() },
                        if ours { " (our Delay_Req)" } else { "" }
                    );
                }
                _ => log::info!("rx {name} seq {seq} from {from}"),
            }
        }
        sync_seen
    }

    /// Sends one Delay_Req asking for a TX stamp, waits (bounded) for the descriptor to be done
    /// and the stamp to latch, and reads it.
    fn send_delay_req(&mut self) -> Result<()> {
        let seq = self.delay_req_seq;
        self.delay_req_seq = self.delay_req_seq.wrapping_add(1);
        let payload = delay_req(self.identity, self.domain, seq);
        let spec = self.spec;
        self.tx
            .send(self.regs, true, |buf| spec.build_into(&payload, buf).unwrap_or(0))
            .context("queueing the Delay_Req")?;
        self.summary.delay_req_sent += 1;
        let start = Instant::now();
        let done = loop {
            if let Some(done) = self.tx.reap() {
                break Some(done);
            }
            if start.elapsed() > TX_TIMEOUT {
                break None;
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        if done.is_none() {
            log::warn!("tx Delay_Req seq {seq}: not reported done within {} ms", TX_TIMEOUT.as_millis());
            return Ok(());
        }
        while self.regs.read32(regs::TSYNCTXCTL) & TSYNC_VALID == 0 {
            if start.elapsed() > TX_TIMEOUT {
                log::warn!("tx Delay_Req seq {seq}: sent, but no TX stamp latched (TSYNCTXCTL.VALID clear)");
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let lo = self.regs.read32(regs::TXSTMPL);
        let hi = self.regs.read32(regs::TXSTMPH);
        let (raw, ns) = self.stamp_ns(lo, hi);
        log::info!(
            "tx Delay_Req seq {seq}: TX stamp raw {:#018x} = {}.{:09} s",
            raw.0,
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000)
        );
        self.summary.tx_stamp_raw = Some(format!("{:#018x}", raw.0));
        self.summary.tx_stamp_ns = Some(ns);
        Ok(())
    }
}

pub fn netcheck(args: &NetcheckArgs) -> Result<ExitCode> {
    let DeviceArg::Hardware(spec) = &args.device else {
        return Err(UsageError(
            "netcheck drives a real NIC's datapath: give vfio:<pci address>, uio:/dev/uioN or \
             sysfs:<pci address> (the simulator has no datapath here)"
                .into(),
        )
        .into());
    };
    let waker = Waker::new()?;
    let sysfs = Sysfs::new(&args.sysfs_root);
    // The NIC must be nobody else's: a running nicclockd holds its lock (VFIO would refuse a second
    // user anyway, UIO and sysfs would not).
    let locks = LockDir::open(&args.lock_dir).with_context(|| {
        format!("cannot open the lock directory {} (run as root)", args.lock_dir.display())
    })?;
    let _device_lock = crate::run::lock_device(&locks, &args.device, &sysfs)?;
    if let nicclock_uio::DeviceSpec::Vfio(address) = spec {
        nicclock_uio::vfio::check(&sysfs, &sysfs.device(*address)?)?;
        nicclock_uio::vfio::require_container(&args.vfio_container)?;
    }
    let opened = nicclock_uio::open(&sysfs, spec, MIN_BAR_LEN)?;
    let pci = opened.pci.as_ref().context("cannot tell which PCI device this UIO node is")?;
    let model = model::model(pci.vendor, pci.device).with_context(|| {
        format!("{} is {:04x}:{:04x}, not a NIC this driver knows", pci.address, pci.vendor, pci.device)
    })?;
    if model.family == Family::E82574 {
        bail!("{} is an {} (e1000e): the userspace PTP datapath is for igb NICs", pci.address, model.name);
    }
    let (quirks, _) =
        model::quirks(pci.device, pci.subsystem_vendor, pci.subsystem_device, model::running_in_vm());
    let regs: &dyn RegisterAccess = &opened.regs;
    let ops = clock::ops(model, quirks);
    if !ops.running(regs) {
        ops.start(regs);
        log::info!("SYSTIM was stopped: started at the nominal rate");
    }
    let dma = opened.dma.as_ref().context("no DMA memory for this device (its PCI device is unknown)")?;
    let rx_mem = dma.alloc(bytes_needed(RX_DESCS)).context("allocating the RX ring")?;
    let tx_mem = dma.alloc(bytes_needed(TX_DESCS)).context("allocating the TX ring")?;
    log::info!(
        "DMA: {:?}, RX ring at device address {:#x}, TX ring at {:#x}; bus mastering on",
        dma,
        rx_mem.page_addresses()[0],
        tx_mem.page_addresses()[0]
    );
    let rx = RxRing::new(rx_mem, 0, RX_DESCS).context("laying out the RX ring")?;
    let tx = TxRing::new(tx_mem, 0, TX_DESCS).context("laying out the TX ring")?;
    let mac = {
        let lo = regs.read32(regs::RAL0).to_le_bytes();
        let hi = regs.read32(regs::RAH0).to_le_bytes();
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]]
    };
    let identity = ClockIdentity::from_mac(mac).0;
    let backend = match opened.backend {
        nicclock_uio::Backend::Vfio => "vfio",
        nicclock_uio::Backend::Uio => "uio",
        nicclock_uio::Backend::Sysfs => "sysfs",
    };
    let mut dp = Datapath {
        regs,
        ops,
        filter: FrameFilter { transport: Transport::L2, own_mac: mac, vlan: None },
        spec: FrameSpec {
            transport: Transport::L2,
            src_mac: mac,
            src_ip: std::net::Ipv4Addr::UNSPECIFIED,
            vlan_tci: None,
            udp_checksum: false,
            ip_id: 0,
        },
        rx,
        tx,
        identity,
        domain: args.domain,
        drops: DropCounters::default(),
        summary: Summary {
            device: pci.address.to_string(),
            backend,
            model: model.name,
            ..Summary::default()
        },
        last_sync: None,
        last_pair: None,
        delay_req_seq: 0,
    };

    let link = link_up(regs)?;
    dp.summary.link_up_ms = link.as_secs_f64() * 1e3;
    log::info!("link up ({:.0} ms), STATUS {:#010x}", dp.summary.link_up_ms, regs.read32(STATUS));
    // Interrupts before the queues: a Sync arriving between the two would set its cause unseen and
    // hold the single RX stamp latch until the next frame's interrupt, which then finds it taken.
    let irq = if args.poll {
        log::info!("wake-ups: polling every {} ms (--poll)", POLL_PERIOD.as_millis());
        None
    } else {
        match opened.irq.as_ref().map(|door| door.open()) {
            Some(Ok(irq)) => {
                nic_irq::enable(regs);
                log::info!("wake-ups: {}", irq.kind());
                Some(irq)
            }
            Some(Err(e)) => {
                log::warn!("no interrupt ({e}): polling every {} ms instead", POLL_PERIOD.as_millis());
                None
            }
            None => {
                log::info!(
                    "no interrupt delivery on a {backend} mapping: polling every {} ms",
                    POLL_PERIOD.as_millis()
                );
                None
            }
        }
    };
    let rx_place = RingPlace { desc_addr: dp.rx.desc_addr(), descs: RX_DESCS };
    let tx_place = RingPlace { desc_addr: dp.tx.desc_addr(), descs: TX_DESCS };
    bringup::bring_up(regs, model.family, rx_place, tx_place).context("bringing the queues up")?;
    log::info!(
        "queues up: RX {RX_DESCS} descriptors, TX {TX_DESCS}; own port {}; listening {} s",
        port_identity(&[&identity[..], &[0, 1]].concat()),
        args.seconds
    );

    dp.summary.wakeup = irq.as_ref().map_or("polling".into(), |i| i.kind().to_string());

    let result = listen(&mut dp, irq.as_ref(), &waker, args.seconds);
    if irq.is_some() {
        nic_irq::disable(regs);
    }
    drop(irq);
    let down = bringup::tear_down(regs, model.family);
    let reg_rdh = regs.read32(reg::RDH0);
    let Datapath { rx, tx, drops, mut summary, .. } = dp;
    if down.is_ok() {
        drop(rx);
        drop(tx);
        log::info!("queues down (RDH was {reg_rdh}); DMA memory freed, bus mastering off");
    } else {
        // Never free memory a device may still write: keep it until the process ends.
        std::mem::forget(rx);
        std::mem::forget(tx);
    }
    result?;
    down.context("taking the queues down")?;

    let usage = getrusage(UsageWho::RUSAGE_SELF).context("getrusage")?;
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e3 + t.tv_usec() as f64 / 1e3;
    summary.cpu_user_ms = ms(usage.user_time());
    summary.cpu_sys_ms = ms(usage.system_time());
    summary.dropped = drops.iter().filter(|(_, n)| *n > 0).collect();
    log::info!(
        "summary: {} frames, {} PTP, {} Sync stamped, {} event unstamped, TX stamp {}, {} Delay_Resp for us, \
         {} wake-ups ({} interrupts, {}), CPU {:.1} ms user + {:.1} ms sys in {:.1} s",
        summary.rx_frames,
        summary.ptp_frames,
        summary.sync_stamped,
        summary.event_unstamped,
        summary.tx_stamp_raw.as_deref().unwrap_or("none"),
        summary.delay_resp_for_us,
        summary.wakeups,
        summary.irqs,
        summary.wakeup,
        summary.cpu_user_ms,
        summary.cpu_sys_ms,
        summary.seconds
    );
    for (reason, n) in &summary.dropped {
        log::info!("dropped {n} frames: {reason}");
    }
    if summary.rx_discarded > 0 {
        log::info!("discarded {} RX descriptors (errors, multi-buffer frames)", summary.rx_discarded);
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    let mut ok = true;
    if summary.sync_stamped == 0 {
        log::error!(
            "no stamped Sync in {:.1} s: is a PTP master (ptp4l -2) sending on this link?",
            summary.seconds
        );
        ok = false;
    }
    if summary.tx_stamp_ns.is_none() {
        log::error!("no TX stamp for the Delay_Req");
        ok = false;
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Listens until `seconds` pass or a stop signal, sleeping on the interrupt (or polling).
fn listen(dp: &mut Datapath<'_>, irq: Option<&Irq>, waker: &Waker, seconds: f64) -> Result<()> {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut sent = false;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let deadline = match irq {
            Some(_) => end,
            None => (now + POLL_PERIOD).min(end),
        };
        match waker.wait_until(deadline, irq.map(|i| i.as_fd()))? {
            Wake::Stop(signal) => {
                log::info!("{signal} received: stopping");
                break;
            }
            Wake::Extra | Wake::Ready(_) | Wake::Deadline => {}
        }
        dp.summary.wakeups += 1;
        if let Some(irq) = irq {
            let mut causes = nic_irq::Causes::default();
            dp.summary.irqs +=
                irq.ack(|| causes = nic_irq::ack(dp.regs)).context("acknowledging the interrupt")?;
            if causes.link() {
                log::info!("link change: STATUS {:#010x}", dp.regs.read32(STATUS));
            }
        }
        if dp.drain_rx() && !sent {
            sent = true;
            dp.send_delay_req()?;
        }
    }
    dp.summary.seconds = start.elapsed().as_secs_f64();
    Ok(())
}

//! nicclockd's command line (clap): the device, reference, steering, servo and page options.
//! Values are checked here, so a bad one is a usage error (exit 2) naming what was wrong.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nicclock_driver::device::DeviceArg;
use nicclock_driver::phc::SteerChoice;
use nicclock_driver::pins::Sdp;
use nicclock_driver::servo::ServoKind;

/// Drive an Intel NIC's PTP clock from userspace and publish it to unprivileged readers.
#[derive(Parser, Debug)]
#[command(name = "nicclockd", version, args_conflicts_with_subcommands = true, allow_negative_numbers = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a device's identity, model, quirks and registers, without changing anything.
    #[command(after_long_help = crate::probe::JSON_HELP)]
    Probe {
        /// vfio:<pci address> | uio:/dev/uioN | sysfs:<pci address> | sim[:key=val,...]
        device: DeviceArg,
        /// Machine-readable: one JSON object on one line (fields: see --help).
        #[arg(long)]
        json: bool,
        #[arg(long, hide = true, default_value = "/sys")]
        sysfs_root: PathBuf,
        #[arg(long, hide = true, default_value = nicclock_uio::vfio::CONTAINER)]
        vfio_container: PathBuf,
    },
    /// Lab diagnostic of the userspace PTP datapath (igb): link, rings, RX/TX stamps, wake-ups.
    #[command(after_long_help = crate::netcheck::JSON_HELP)]
    Netcheck(crate::netcheck::NetcheckArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// CLOCK_REALTIME plus the TAI−UTC offset.
    Realtime,
    /// CLOCK_TAI (needs the kernel's TAI offset set, e.g. by chronyd or ptp4l).
    Tai,
}

/// `--reference`: a system clock, a PPS input whose seconds the system clock (realtime) numbers,
/// or a PTP master on the NIC's own port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceArg {
    Clock(Reference),
    Pps(Sdp),
    Ptp,
}

impl ReferenceArg {
    /// The system clock read: the reference itself, or the one that numbers the PPS's seconds.
    /// Under PTP the system clock is only measured against, for the log.
    pub fn clock(self) -> Reference {
        match self {
            Self::Clock(c) => c,
            Self::Pps(_) | Self::Ptp => Reference::Realtime,
        }
    }

    /// The PPS input pin, if the reference is one.
    pub fn pps(self) -> Option<Sdp> {
        match self {
            Self::Clock(_) | Self::Ptp => None,
            Self::Pps(sdp) => Some(sdp),
        }
    }
}

impl std::fmt::Display for ReferenceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Clock(Reference::Realtime) => f.write_str("realtime"),
            Self::Clock(Reference::Tai) => f.write_str("tai"),
            Self::Pps(sdp) => write!(f, "pps:{sdp}"),
            Self::Ptp => f.write_str("ptp"),
        }
    }
}

fn reference(s: &str) -> Result<ReferenceArg, String> {
    match s {
        "realtime" => Ok(ReferenceArg::Clock(Reference::Realtime)),
        "tai" => Ok(ReferenceArg::Clock(Reference::Tai)),
        "ptp" => Ok(ReferenceArg::Ptp),
        _ => match s.strip_prefix("pps:") {
            Some(pin) => pin.parse().map(ReferenceArg::Pps),
            None => Err(format!("unknown reference {s:?}: use realtime, tai or pps:SDP0..SDP3, or ptp")),
        },
    }
}

/// `--ptp-wake`: what wakes a PTP slave for its ring.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtpWakeArg {
    /// Every frame's interrupt.
    Frame,
    /// Once per Sync exchange, at its learnt time, the frame interrupts masked between.
    Exchange,
}

/// `--ptp-role`: which roles the PTP port may take (ptp4l's slaveOnly / masterOnly / neither).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtpRoleArg {
    Auto,
    Slave,
    Master,
}

/// `--ptp-transport`: how PTP messages travel (ptp4l's -2 / -4).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtpTransport {
    /// IEEE 802.3 / Ethernet, EtherType 0x88F7 to 01-1B-19-00-00-00 (ptp4l -2).
    L2,
    /// UDP over IPv4 to 224.0.1.129, ports 319/320, from --ptp-ip (ptp4l -4).
    Udp4,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The clock: vfio:<pci address> | uio:/dev/uioN | sysfs:<pci address> | sim[:key=val,...]
    /// (sim keys: model=82576|82574, ppm, wander, latency, jitter, qemu=0|1, seed, remove-after, bar-off-after)
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<DeviceArg>,
    /// Reference the NIC is disciplined to: realtime (CLOCK_REALTIME + TAI offset), tai
    /// (CLOCK_TAI), pps:SDPn (a PPS input on that pin, e.g. a GPS receiver's, its seconds
    /// numbered by CLOCK_REALTIME; i210/i211, 82580/i350/i354), or ptp (a PTP master on this
    /// NIC's own port, hardware stamps, slave only; 82576, 82580/i350/i354, i210/i211).
    #[arg(long, default_value = "realtime", value_name = "REFERENCE", value_parser = reference)]
    pub reference: ReferenceArg,
    /// PTP (--reference ptp): transport, l2 (Ethernet, ptp4l -2) or udp4 (UDP/IPv4, ptp4l -4).
    #[arg(long, value_enum, value_name = "TRANSPORT")]
    pub ptp_transport: Option<PtpTransport>,
    /// PTP: the domain number, 0 to 127 (ptp4l's domainNumber; default 0).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=127))]
    pub ptp_domain: Option<u8>,
    /// PTP over udp4: our source IPv4 address (required there: the NIC has no kernel IP stack,
    /// no DHCP, no ARP; messages go to the multicast group only).
    #[arg(long, value_name = "A.B.C.D")]
    pub ptp_ip: Option<std::net::Ipv4Addr>,
    /// PTP: log2 of the Delay_Req interval, s (ptp4l's logMinDelayReqInterval; default 0).
    #[arg(long, value_name = "LOG2", value_parser = clap::value_parser!(i8).range(-7..=7))]
    pub ptp_log_min_delay_req_interval: Option<i8>,
    /// PTP: log2 of the master's Sync interval, s (ptp4l's logSyncInterval; default 0).
    #[arg(long, value_name = "LOG2", value_parser = clap::value_parser!(i8).range(-7..=7))]
    pub ptp_log_sync_interval: Option<i8>,
    /// PTP: log2 of the Announce interval, s (ptp4l's logAnnounceInterval; default 1).
    #[arg(long, value_name = "LOG2", value_parser = clap::value_parser!(i8).range(-3..=7))]
    pub ptp_log_announce_interval: Option<i8>,
    /// PTP: the known path asymmetry, ns (ptp4l's delayAsymmetry, IEEE 1588 delayAsymmetry: how
    /// much longer the master-to-slave direction is than the mean path delay; default 0).
    #[arg(long, value_name = "NS", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1_000_000_000..=1_000_000_000))]
    pub ptp_delay_asymmetry: Option<i64>,
    /// PTP: the most an asymmetry not given by --ptp-delay-asymmetry can shift the offset, ns (half
    /// the difference between the two directions), for the page's error bound. Default: the
    /// measured mean path delay, which is provable (neither direction is negative) but loose on a
    /// long path; give less only for a path you know to be symmetric (hardware stamps both ends).
    #[arg(long, value_name = "NS", value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub ptp_max_asymmetry: Option<u64>,
    /// PTP: until the first correction (start-up, a new master) an offset beyond this many ns is
    /// stepped, not slewed, 1 to 1000000000 (ptp4l's first_step_threshold; default 50000).
    #[arg(long, value_name = "NS", value_parser = clap::value_parser!(i64).range(1..=1_000_000_000))]
    pub ptp_first_step_threshold: Option<i64>,
    /// PTP: after the first correction an offset beyond this many ns, lasting 3 measurements, is
    /// stepped, 1 to 1000000000 (ptp4l's step_threshold; default 1000000, statime's).
    #[arg(long, value_name = "NS", value_parser = clap::value_parser!(i64).range(1..=1_000_000_000))]
    pub ptp_step_threshold: Option<i64>,
    /// PTP: the port's role: slave (follow the best master; what --reference ptp does), master
    /// (serve this NIC's clock, disciplined to --reference realtime|tai) or auto (the BMCA decides;
    /// disciplined to --reference realtime|tai while not a slave).
    #[arg(long, value_enum, value_name = "ROLE")]
    pub ptp_role: Option<PtpRoleArg>,
    /// PTP slave: what wakes the daemon for its ring: frame (each frame's interrupt, the default)
    /// or exchange (once per Sync exchange at its learnt time, the frame interrupts masked between:
    /// fewer wake-ups; only where nothing but the Sync can take the RX stamp meanwhile: 82580 and
    /// later, QEMU's igb).
    #[arg(long, value_enum, value_name = "WHEN")]
    pub ptp_wake: Option<PtpWakeArg>,
    /// PTP: priority1 for the BMCA, 0 to 255, lower wins (ptp4l's priority1; default 128).
    #[arg(long, value_name = "N")]
    pub ptp_priority1: Option<u8>,
    /// PTP: priority2, the BMCA's tie-breaker, 0 to 255 (ptp4l's priority2; default 128).
    #[arg(long, value_name = "N")]
    pub ptp_priority2: Option<u8>,
    /// Drive a 1 PPS output on this pin (SDP0..SDP3), rising on each disciplined second
    /// (i210/i211, 82580/i350/i354).
    #[arg(long, value_name = "PIN", value_parser = |s: &str| s.parse::<Sdp>())]
    pub pps_out: Option<Sdp>,
    /// TAI − UTC in seconds (default: the kernel's, else 37).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i32).range(0..=100))]
    pub tai_offset: Option<i32>,
    /// Frequency steering: hw (TIMINCA), sw (in software), auto (sw where a quirk requires it).
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<SteerChoice>())]
    pub steer: SteerChoice,
    /// Servo: pi (linuxptp's PI) or linreg (linear regression).
    #[arg(long, default_value = "pi", value_parser = |s: &str| s.parse::<ServoKind>())]
    pub servo: ServoKind,
    /// PI proportional constant.
    #[arg(long, default_value_t = 0.7, value_parser = non_negative)]
    pub kp: f64,
    /// PI integral constant.
    #[arg(long, default_value_t = 0.3, value_parser = non_negative)]
    pub ki: f64,
    /// Step the clock on the first update when |offset| exceeds this, seconds (0: never).
    #[arg(long, default_value_t = 0.00002, value_name = "SECONDS", value_parser = non_negative)]
    pub first_step_threshold: f64,
    /// Step whenever |offset| exceeds this, seconds (0: never).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS", value_parser = non_negative)]
    pub step_threshold: f64,
    /// Largest frequency correction, ppb.
    #[arg(long, default_value_t = 900_000_000.0, value_name = "PPB", value_parser = positive)]
    pub max_frequency: f64,
    /// Updates per second (0.01 to 1000).
    #[arg(long, default_value_t = 10.0, value_name = "HZ", value_parser = rate, allow_negative_numbers = true)]
    pub rate: f64,
    /// Bracketed reads per measurement, the best of them taken (with --reference ptp, the page
    /// stops at the first read that is good enough: near the recent best, or narrow beside the
    /// published bound).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub readings: u32,
    /// |offset| below which the clock is LOCKED, ns.
    #[arg(long, default_value_t = 1000, value_name = "NS", value_parser = clap::value_parser!(u64).range(1..))]
    pub lock_threshold: u64,
    /// Page name (file nicclock-<name>); default: the PCI address, or "sim".
    #[arg(long, value_name = "NAME", value_parser = page_name)]
    pub page_name: Option<String>,
    /// Directory of the page.
    #[arg(long, default_value = nicclock::abi::DEFAULT_DIR, value_name = "DIR")]
    pub page_dir: PathBuf,
    /// Page file mode, octal (644: everyone may read; 640 with --page-group; never group/other write).
    #[arg(long, default_value = "644", value_name = "OCTAL", value_parser = page_mode)]
    pub page_mode: u32,
    /// Group owning the page (name or gid).
    #[arg(long, value_name = "GROUP")]
    pub page_group: Option<String>,
    /// Also publish each LOCKED update as NTP SHM segment UNIT (key 0x4e545030 + UNIT) for chronyd's
    /// or ntpd's `refclock SHM UNIT`.
    #[arg(long, value_name = "UNIT", value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ntpshm: Option<u32>,
    /// Permissions of the NTP SHM segment, octal (chrony's default 600).
    #[arg(long, default_value = "600", value_name = "OCTAL", value_parser = mode)]
    pub ntpshm_mode: u32,
    /// Append one CSV line per update (time, offset, state, frequency, delay, status, bound).
    #[arg(long, value_name = "FILE")]
    pub stats_file: Option<PathBuf>,
    /// After opening the device and the page, run as this user (name or uid) with no capabilities.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// ... and this group (name or gid; default: the user's primary group).
    #[arg(long, value_name = "GROUP", requires = "user")]
    pub group: Option<String>,
    /// Log level.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Stop cleanly after this many seconds (at most 1e9, about 31 years).
    #[arg(long, value_name = "SECONDS", value_parser = duration)]
    pub duration: Option<f64>,
    #[arg(long, hide = true, default_value = "/sys")]
    pub sysfs_root: PathBuf,
    #[arg(long, hide = true, default_value = nicclock_uio::vfio::CONTAINER)]
    pub vfio_container: PathBuf,
    /// Directory of the page and device lock files (tests use their own).
    #[arg(long, hide = true, default_value = nicclock::lockfile::DEFAULT_LOCK_DIR)]
    pub lock_dir: PathBuf,
}

/// A usage error found after parsing (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn number(s: &str) -> Result<f64, String> {
    s.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| format!("{s:?} is not a number"))
}

fn non_negative(s: &str) -> Result<f64, String> {
    number(s).and_then(|v| if v >= 0.0 { Ok(v) } else { Err(format!("{v} is negative")) })
}

fn positive(s: &str) -> Result<f64, String> {
    number(s).and_then(|v| if v > 0.0 { Ok(v) } else { Err(format!("{v} must be greater than 0")) })
}

/// Longest --duration, s: beyond it a run is "forever" in all but name, and Instant arithmetic
/// would overflow.
pub const MAX_DURATION_S: f64 = 1e9;

fn duration(s: &str) -> Result<f64, String> {
    positive(s).and_then(|v| {
        if v <= MAX_DURATION_S {
            Ok(v)
        } else {
            Err(format!("{v} s is more than {MAX_DURATION_S:e} s; leave --duration out to run until stopped"))
        }
    })
}

/// Slowest and fastest update rates, Hz.
pub const RATE_RANGE: std::ops::RangeInclusive<f64> = 0.01..=1000.0;

fn rate(s: &str) -> Result<f64, String> {
    positive(s).and_then(|v| {
        if v > *RATE_RANGE.end() {
            Err(format!("{v} Hz is more than {} updates per second", RATE_RANGE.end()))
        } else if v < *RATE_RANGE.start() {
            Err(format!("{v} Hz is less than {} updates per second (one every 100 s)", RATE_RANGE.start()))
        } else {
            Ok(v)
        }
    })
}

fn page_name(s: &str) -> Result<String, String> {
    nicclock::validate_name(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

fn page_mode(s: &str) -> Result<u32, String> {
    mode(s).and_then(|m| nicclock::check_mode(m).map(|()| m).map_err(|e| e.to_string()))
}

fn mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777 && m & 0o400 != 0)
        .ok_or_else(|| format!("{s:?} is not an octal file mode the owner can read (like 644 or 640)"))
}

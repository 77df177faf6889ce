//! The time page ABI: the one 4096-byte page nicclockd publishes and readers map read-only.
//! Every shared type lives here, `#[repr(C)]`, with layout asserts; `include/nicclock.h` mirrors it.
//!
//! Layout (byte offsets):
//!
//! | offset | size | block | written |
//! |---|---|---|---|
//! | 0 | 256 | [`Header`]: magic, ABI version, clock identity, boot id | before the page appears (boot id, minor and writer pid also when a writer takes over) |
//! | 256 | 256 | [`ClockData`]: seqlock-protected counter→time mapping, status and (minor ≥ 3) reference identity | every update |
//! | 512 | 64 | [`EventControl`]: futex word and event count | every event |
//! | 576 | 192 | reserved (zero) | never |
//! | 768 | 256 | (minor ≥ 4) [`Page::event_epochs`]: the disruption epoch of each event slot | with its event, under the slot's `seq` |
//! | 1024 | 2048 | [`EventSlot`] × [`EVENT_RING_LEN`] | every event |
//! | 3072 | 1024 | (minor ≥ 4) [`HistoryEntry`] × [`HISTORY_LEN`]: past mappings | every update, before the clock block |
//!
//! Rules: no pointers, fixed-width little-endian fields, every field a reader may see while the writer
//! runs is an atomic (so Rust readers never race on plain memory). Minor versions only add fields in
//! reserved space; a new major means readers must refuse the page.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8};

/// `b"NICCLOCK"` as a little-endian `u64`: the first eight bytes of every page.
pub const MAGIC: u64 = u64::from_le_bytes(*b"NICCLOCK");
/// Incompatible layout changes bump this; readers refuse any other major.
pub const ABI_MAJOR: u16 = 1;
/// Compatible additions (fields taken from reserved space) bump this.
/// 1: [`Header::boot_id`] (a page records the boot it belongs to).
/// 2: [`EventKind::PulseMissed`] (a PPS reference's pulses stopped).
/// 3: the reference identity in [`ClockData`] (`reference_kind` … `gm_accuracy_ns`): which reference
///    disciplines the clock and, under PTP, the grandmaster, steps removed, port state, the
///    Announce's UTC/leap flags and accuracy. Read with the mapping under the same seqlock.
/// 4: the disruption epoch ([`ClockData::disruption_epoch`], [`Page::event_epochs`]), the
///    estimated error beside the maximum one ([`ClockData::est_error_ns`],
///    [`ClockData::est_error_growth_ppt`]) and the history of past mappings ([`HistoryEntry`],
///    [`ClockData::history_head`]). A page whose header says a minor below 4, or whose
///    `disruption_epoch` is 0, was written by an older writer: none of these are live there (an
///    older writer taking over a newer one's page leaves that one's values behind).
pub const ABI_MINOR: u16 = 4;
/// Size of the page file and of every mapping of it.
pub const PAGE_SIZE: usize = 4096;
/// Number of slots in the event ring.
pub const EVENT_RING_LEN: usize = 64;
/// Fixed-point shift of [`ClockData::counter_period`]: nanoseconds per counter tick × 2^48.
pub const PERIOD_SHIFT: u32 = 48;
/// Number of [`HistoryEntry`] slots (minor ≥ 4).
pub const HISTORY_LEN: usize = 16;
/// A history entry covers at least this much time (TAI ns) before the writer opens the next one
/// (sooner only at a disruption): the history reaches back at least
/// ([`HISTORY_LEN`] − 1) × this, whatever the update rate ([`HISTORY_DEPTH_NS`]).
pub const HISTORY_SPAN_NS: u64 = 1_000_000_000;
/// How far back a past timestamp is always convertible on a page with no disruption since:
/// 15 s (150 updates at the default 10 Hz).
pub const HISTORY_DEPTH_NS: u64 = (HISTORY_LEN as u64 - 1) * HISTORY_SPAN_NS;
/// The rate difference a reader allows between a system clock (CLOCK_MONOTONIC, CLOCK_REALTIME,
/// CLOCK_MONOTONIC_RAW against a TSC page) and the page's clock when it carries a past timestamp
/// of that clock back to the counter, ppm: the kernel's NTP frequency (±500 ppm) plus its
/// adjtime slew (500 ppm). A timestamp `age` ns old gets `age × 1000 ppm` added to its bound.
pub const CLOCK_RATE_TOLERANCE_PPM: u64 = 1_000;
/// File name prefix of pages in the page directory: `nicclock-<name>`.
pub const FILE_PREFIX: &str = "nicclock-";
/// Default page directory.
pub const DEFAULT_DIR: &str = "/dev/shm";

/// Highest event ring head a reader believes: 2^48 events is 8900 years at 1000 events a second.
/// A page claiming more is corrupt (readers refuse it rather than report absurd "missed" counts).
pub const MAX_EVENT_HEAD: u64 = 1 << 48;

/// Plausible [`ClockData::counter_period`] range of a TSC page, as ns per tick × 2^48: a counter
/// between 100 MHz (10 ns per tick) and 20 GHz (0.05 ns). Readers refuse a mapping outside it.
pub const TSC_PERIOD_MIN: u64 = (1 << PERIOD_SHIFT) / 20;
pub const TSC_PERIOD_MAX: u64 = 10 << PERIOD_SHIFT;
/// Plausible period range of a CLOCK_MONOTONIC_RAW page: 1 ns per tick ± 10 % (a disciplined clock
/// runs within a few hundred ppm of the kernel's raw clock).
pub const MONOTONIC_RAW_PERIOD_MIN: u64 = (1 << PERIOD_SHIFT) / 10 * 9;
pub const MONOTONIC_RAW_PERIOD_MAX: u64 = (1 << PERIOD_SHIFT) / 10 * 11;

/// How far before the page's anchor a counter reading may lie and still be believed, ns. A reader
/// re-reads its counter after the page, so a correct writer leaves only cross-CPU counter skew
/// (nanoseconds); anything earlier is a mapping from another boot or a broken writer.
pub const MAX_COUNTER_BEFORE_ANCHOR_NS: u64 = 100_000;

/// A page is stale (its writer stuck or dead) when no update was made for `STALE_INTERVALS` ×
/// `update_interval_ns`, and never sooner than `STALE_MIN_NS` (readers may set their own limit).
pub const STALE_INTERVALS: u64 = 3;
pub const STALE_MIN_NS: u64 = 1_000_000_000;
/// How long a reader waits for a writer that is mid-update (odd clock sequence, or an event slot
/// at 0) before it reports the writer stuck: a preempted writer resumes within milliseconds.
pub const WRITER_STUCK_MS: u64 = 1_000;

/// The plausible `counter_period` range (inclusive) of a counter kind.
pub fn period_range(kind: CounterKind) -> (u64, u64) {
    match kind {
        CounterKind::Tsc => (TSC_PERIOD_MIN, TSC_PERIOD_MAX),
        CounterKind::MonotonicRaw => (MONOTONIC_RAW_PERIOD_MIN, MONOTONIC_RAW_PERIOD_MAX),
    }
}

/// Offsets of the blocks inside the page.
pub const HEADER_OFFSET: usize = 0;
pub const CLOCK_OFFSET: usize = 256;
pub const EVENT_CONTROL_OFFSET: usize = 512;
pub const EVENT_RING_OFFSET: usize = 1024;
/// Minor ≥ 4: the event slots' disruption epochs and the history ring.
pub const EVENT_EPOCH_OFFSET: usize = 768;
pub const HISTORY_OFFSET: usize = 3072;

/// Which reference disciplines the clock ([`ClockData::reference_kind`], minor ≥ 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ReferenceKind {
    /// Not published (a page written before minor 3 reads as 0).
    Unknown = 0,
    /// The host's system clock (CLOCK_REALTIME/CLOCK_TAI), as phc2sys does.
    SystemClock = 1,
    /// A PPS input on an SDP pin, numbered by the system clock.
    Pps = 2,
    /// A PTP master on the wire (the `ptp_*`/`gm_*` fields are set).
    Ptp = 3,
}

impl ReferenceKind {
    pub const ALL: [ReferenceKind; 4] = [Self::Unknown, Self::SystemClock, Self::Pps, Self::Ptp];

    pub fn from_raw(raw: u32) -> Option<Self> {
        Self::ALL.get(raw as usize).copied()
    }

    /// Lower-case name as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::SystemClock => "system_clock",
            Self::Pps => "pps",
            Self::Ptp => "ptp",
        }
    }
}

/// PTP port state ([`ClockData::ptp_port_state`]), IEEE 1588 / linuxptp numbering; 0 when the
/// reference is not PTP. linuxptp's `PS_GRAND_MASTER` (10) is accepted as is.
pub const PTP_PORT_STATE_NAMES: [&str; 11] = [
    "NONE",
    "INITIALIZING",
    "FAULTY",
    "DISABLED",
    "LISTENING",
    "PRE_MASTER",
    "MASTER",
    "PASSIVE",
    "UNCALIBRATED",
    "SLAVE",
    "GRAND_MASTER",
];
pub const PTP_PORT_STATE_SLAVE: u32 = 9;

/// Name of a PTP port state number (`"UNKNOWN"` outside the table).
pub fn ptp_port_state_name(state: u32) -> &'static str {
    PTP_PORT_STATE_NAMES.get(state as usize).copied().unwrap_or("UNKNOWN")
}

/// Bits of [`ClockData::ptp_flags`]: the Announce's flagField octet 1 as the master sent it.
pub const PTP_FLAG_LEAP61: u32 = 1 << 0;
pub const PTP_FLAG_LEAP59: u32 = 1 << 1;
pub const PTP_FLAG_UTC_OFFSET_VALID: u32 = 1 << 2;
pub const PTP_FLAG_PTP_TIMESCALE: u32 = 1 << 3;
pub const PTP_FLAG_TIME_TRACEABLE: u32 = 1 << 4;
pub const PTP_FLAG_FREQUENCY_TRACEABLE: u32 = 1 << 5;

/// Where [`ClockData::tai_utc_offset_s`] comes from ([`ClockData::utc_offset_source`], minor ≥ 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum UtcOffsetSource {
    /// Not published (pages before minor 3).
    Unknown = 0,
    /// The host (kernel TAI offset or configuration).
    Host = 1,
    /// The reference: a PTP master's Announce with currentUtcOffsetValid set.
    Reference = 2,
}

impl UtcOffsetSource {
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Unknown),
            1 => Some(Self::Host),
            2 => Some(Self::Reference),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Host => "host",
            Self::Reference => "reference",
        }
    }
}

/// Which free-running counter the page's mapping is expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CounterKind {
    /// x86 invariant TSC (`rdtsc`), used when the CPU has constant and nonstop TSC and the kernel uses it.
    Tsc = 1,
    /// `CLOCK_MONOTONIC_RAW` in nanoseconds (vDSO on most systems).
    MonotonicRaw = 2,
}

impl CounterKind {
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Tsc),
            2 => Some(Self::MonotonicRaw),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tsc => "tsc",
            Self::MonotonicRaw => "monotonic_raw",
        }
    }
}

/// State of the published clock, as the daemon sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// Free-running: time published, but not disciplined against any reference yet.
    Unsynchronized = 0,
    /// The servo is converging; the error bound is honest but large.
    Locking = 1,
    /// Disciplined and inside the servo's lock threshold.
    Locked = 2,
    /// The reference is gone; the clock runs on its last frequency and the error bound grows.
    Holdover = 3,
    /// The NIC disappeared (surprise removal, all-ones reads). The mapping is no longer trustworthy.
    DeviceLost = 4,
    /// The daemon shut down cleanly. Nothing updates this page until it starts again.
    Stopped = 5,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Unsynchronized,
        Status::Locking,
        Status::Locked,
        Status::Holdover,
        Status::DeviceLost,
        Status::Stopped,
    ];

    pub fn from_raw(raw: u32) -> Option<Self> {
        Self::ALL.get(raw as usize).copied()
    }

    /// Upper-case name as the C header and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unsynchronized => "UNSYNCHRONIZED",
            Self::Locking => "LOCKING",
            Self::Locked => "LOCKED",
            Self::Holdover => "HOLDOVER",
            Self::DeviceLost => "DEVICE_LOST",
            Self::Stopped => "STOPPED",
        }
    }

    /// Whether the page's time may be used at all (the writer is alive and the device present).
    pub fn is_usable(self) -> bool {
        !matches!(self, Self::DeviceLost | Self::Stopped)
    }
}

/// Pending leap second, announced ahead of time as NTP does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Leap {
    None = 0,
    /// A second is inserted: TAI−UTC grows by one at `leap_tai_s`.
    Insert = 1,
    /// A second is deleted: TAI−UTC shrinks by one at `leap_tai_s`.
    Delete = 2,
}

impl Leap {
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::None),
            1 => Some(Self::Insert),
            2 => Some(Self::Delete),
            _ => None,
        }
    }
}

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum EventKind {
    /// A writer (re)started publishing this page. `detail` = writer pid.
    Started = 1,
    /// The status changed. `detail` = old status, `magnitude` = new status.
    StatusChanged = 2,
    /// The clock was stepped. `magnitude` = step in ns (signed).
    Step = 3,
    /// The frequency was changed abruptly (a rate write that also moved the clock; a STEP event
    /// carries that jump). `magnitude` = the change of `servo_freq_ppt`, ppt, with its sign.
    FrequencyJump = 4,
    /// The device disappeared. `detail` = last register value read.
    DeviceLost = 5,
    /// The writer stopped cleanly.
    Stopped = 6,
    /// A leap second was scheduled or cancelled. `detail` = [`Leap`], `magnitude` = TAI second it takes effect.
    LeapChanged = 7,
    /// The reference's pulses (a PPS input) are overdue; the status goes to HOLDOVER.
    /// `magnitude` = pulses missed in a row (posted when that is 1, 2, 4, 8, …).
    PulseMissed = 8,
    /// Read side only: a kind added by a newer minor than this reader's (never written; its
    /// number is in [`crate::Event::raw_kind`]). Handle it by its urgency.
    Unknown = 0,
}

impl EventKind {
    pub fn from_raw(raw: u16) -> Option<Self> {
        Some(match raw {
            1 => Self::Started,
            2 => Self::StatusChanged,
            3 => Self::Step,
            4 => Self::FrequencyJump,
            5 => Self::DeviceLost,
            6 => Self::Stopped,
            7 => Self::LeapChanged,
            8 => Self::PulseMissed,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::StatusChanged => "STATUS_CHANGED",
            Self::Step => "STEP",
            Self::FrequencyJump => "FREQUENCY_JUMP",
            Self::DeviceLost => "DEVICE_LOST",
            Self::Stopped => "STOPPED",
            Self::LeapChanged => "LEAP_CHANGED",
            Self::PulseMissed => "PULSE_MISSED",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// How much an event matters to a time consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u16)]
pub enum Urgency {
    /// Bookkeeping (start, leap announced).
    Info = 0,
    /// Time consumers should take note (step, state change).
    Notice = 1,
    /// Time from this page is no longer usable (device lost).
    Urgent = 2,
}

impl Urgency {
    pub fn from_raw(raw: u16) -> Option<Self> {
        match raw {
            0 => Some(Self::Info),
            1 => Some(Self::Notice),
            2 => Some(Self::Urgent),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Urgent => "urgent",
        }
    }
}

/// Written once before the page becomes visible; immutable afterwards but for `writer_pid`, and
/// `boot_id` then `abi_minor` which a writer taking over an existing page rewrites.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u64,
    pub abi_major: u16,
    /// The writer's [`ABI_MINOR`] (a page made by minor 0 has no `boot_id`).
    pub abi_minor: AtomicU16,
    /// [`PAGE_SIZE`].
    pub page_size: u32,
    pub clock_offset: u32,
    pub event_control_offset: u32,
    pub event_ring_offset: u32,
    /// [`EVENT_RING_LEN`].
    pub event_ring_len: u32,
    /// Pid of the process currently publishing (0 when none). Informational: readers judge a
    /// writer's liveness by the page's age, never by this pid (reused, namespaced).
    pub writer_pid: AtomicU32,
    pub _reserved0: u32,
    /// IEEE EUI-64 of the clock, derived from the NIC's MAC (FF:FE inserted), big-endian byte order.
    pub clock_id: [u8; 8],
    /// NIC model, NUL-padded ASCII (e.g. `82576`).
    pub model: [u8; 32],
    /// PCI address, NUL-padded ASCII (e.g. `0000:01:00.0`).
    pub pci_address: [u8; 16],
    /// Page name (the part after `nicclock-`), NUL-padded ASCII.
    pub name: [u8; 64],
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`, the UUID's 16 bytes in text order)
    /// of the boot the writer published in: readers refuse another boot's page. Minor ≥ 1.
    pub boot_id: [AtomicU8; 16],
    pub _reserved: [u8; 80],
}

/// The seqlock-protected counter→time mapping. A reader computes
/// `tai_ns = anchor_tai_ns + (counter_now − counter_value) × counter_period / 2^48`.
/// Everything `now()` needs sits in the first 64 bytes (one cache line); the rest is for displays.
#[repr(C)]
pub struct ClockData {
    /// Sequence word: odd while the writer is updating this block. The writer FUTEX_WAKEs it
    /// after every update and status change (readers waiting for a bound or a time sleep on it;
    /// writers before this wake did not, so a waiter bounds its sleep by the page's max age).
    pub seq: AtomicU32,
    /// [`CounterKind`].
    pub counter_kind: AtomicU32,
    /// Counter value at the anchor.
    pub counter_value: AtomicU64,
    /// Disciplined clock's nanoseconds per counter tick, × 2^[`PERIOD_SHIFT`] (rate resolution ≪ 0.01 ppb).
    pub counter_period: AtomicU64,
    /// Clock time (TAI, ns since 1970-01-01 00:00:00 TAI) at the anchor.
    pub anchor_tai_ns: AtomicU64,
    /// Error bound at the anchor, ns. `u64::MAX` means unknown.
    pub error_bound_ns: AtomicU64,
    /// Growth of the error bound away from the anchor, in ps per s (ppt; at most ~4290 ppm).
    pub error_growth_ppt: AtomicU32,
    /// [`Status`].
    pub status: AtomicU32,
    /// Clock time (TAI ns) when this block was last written; 0 before the writer's first update.
    pub updated_tai_ns: AtomicU64,
    /// Nominal interval between updates, ns (readers call a page stale after 3 of them, ≥ 1 s).
    pub update_interval_ns: AtomicU64,
    /// Number of updates published by the current writer.
    pub update_count: AtomicU64,
    /// TAI − UTC in seconds (37 since 2017).
    pub tai_utc_offset_s: AtomicI32,
    /// [`Leap`].
    pub leap: AtomicU32,
    /// TAI second at which a pending leap takes effect (0 when none).
    pub leap_tai_s: AtomicU64,
    /// Last measured offset of the clock from its reference, ns.
    pub servo_offset_ns: AtomicI64,
    /// The servo's frequency figure, ppt (0.001 ppb), in linuxptp's sign (phc2sys's `freq`): the
    /// NIC oscillator's estimated error, positive when it runs fast. The correction applied to
    /// the NIC is its negation.
    pub servo_freq_ppt: AtomicI64,
    /// Last measurement window ("delay" in linuxptp), ns.
    pub servo_delay_ns: AtomicU64,
    /// Daemon servo state (linuxptp numbering: 0 unlocked, 1 jump, 2 locked, 3 locked stable).
    pub servo_state: AtomicU32,
    /// [`ReferenceKind`] (minor ≥ 3; 0 = unknown on older pages). The fields below up to
    /// `gm_accuracy_ns` are the reference identity: written with the mapping, read under `seq`.
    pub reference_kind: AtomicU32,
    /// PTP grandmaster clock identity (EUI-64, wire byte order); zero unless the reference is PTP.
    pub gm_identity: [AtomicU8; 8],
    /// PTP stepsRemoved from the grandmaster's Announce (0 unless PTP).
    pub ptp_steps_removed: AtomicU32,
    /// PTP port state, IEEE 1588 / linuxptp numbering (9 = SLAVE; 0 unless PTP).
    pub ptp_port_state: AtomicU32,
    /// `PTP_FLAG_*`: the Announce's leap and UTC-offset flags as announced (0 unless PTP).
    pub ptp_flags: AtomicU32,
    /// [`UtcOffsetSource`] of `tai_utc_offset_s`.
    pub utc_offset_source: AtomicU32,
    /// The grandmaster's announced clockAccuracy (IEEE 1588 code, 0x20 = 25 ns … 0xFE unknown; 0 unless PTP).
    pub gm_clock_accuracy: AtomicU32,
    pub _reserved1: u32,
    /// The error bound contribution the announced accuracy implies, ns (0 when none was announced
    /// or the reference is not PTP; `u64::MAX` when the master announced "unknown"). Included in
    /// `error_bound_ns` when known; when unknown (ptp4l's default) the bound is relative to the
    /// grandmaster's clock: how far that is from true time is not counted.
    pub gm_accuracy_ns: AtomicU64,
    /// Disruption epoch (minor ≥ 4; 0 on pages of older writers): bumped at every step, writer
    /// (re)start, reference or grandmaster change and counter change. Two readings with the same
    /// epoch lie on one timeline; anything derived from a reading of an older epoch is void.
    pub disruption_epoch: AtomicU32,
    /// Growth of the estimated error away from the anchor, ppt: the rate's own estimated error
    /// (1σ-like, where `error_growth_ppt` is the provable maximum). Minor ≥ 4.
    pub est_error_growth_ppt: AtomicU32,
    /// Estimated (statistical, what the servo believes: RMS of the recent offsets and the
    /// mapping's jitter) error at the anchor, ns; never above `error_bound_ns`; `u64::MAX`
    /// unknown. Minor ≥ 4 (meaningless when `disruption_epoch` is 0).
    pub est_error_ns: AtomicU64,
    /// Number of history entries ever opened (entry `n` sits in `history[(n − 1) % HISTORY_LEN]`);
    /// written after the entries it counts. Minor ≥ 4.
    pub history_head: AtomicU64,
    pub _reserved: [AtomicU64; 9],
}

/// Futex word and event count.
#[repr(C)]
pub struct EventControl {
    /// Bumped (and FUTEX_WAKEd) after every event.
    pub futex: AtomicU32,
    pub _reserved0: u32,
    /// Number of events ever written; event `n` (1-based) sits in slot `(n − 1) % EVENT_RING_LEN`.
    pub head: AtomicU64,
    pub _reserved: [u64; 6],
}

/// One event. `seq` is the event's number (1-based), 0 while the slot is being written.
#[repr(C)]
pub struct EventSlot {
    pub seq: AtomicU64,
    /// Clock time (TAI ns) of the event; 0 when the writer had no time yet (before its first update).
    pub tai_ns: AtomicU64,
    /// Kind-specific signed value (step size, new status, …).
    pub magnitude: AtomicI64,
    /// [`EventKind`].
    pub kind: AtomicU16,
    /// [`Urgency`].
    pub urgency: AtomicU16,
    /// Kind-specific unsigned value (old status, pid, …).
    pub detail: AtomicU32,
}

/// One past mapping (minor ≥ 4): the counter→TAI mapping that was in force for counter values
/// in `[counter_start, counter_end)`, as the page published it then. Guarded by its own `seq`
/// (odd while the writer writes it; the open entry is rewritten as updates extend it).
///
/// An entry covers one or more consecutive updates of one epoch, at least [`HISTORY_SPAN_NS`]
/// unless a disruption closed it early. Its mapping is the first of those updates; the bounds
/// cover every update it stands for: `max_error_ns` ≥ each update's own bound (grown to the end
/// of its interval) plus how far this entry's line strays from that update's line there.
#[repr(C)]
pub struct HistoryEntry {
    pub seq: AtomicU32,
    /// Disruption epoch of every update in the entry.
    pub epoch: AtomicU32,
    /// Entry number, 1-based (0: never written).
    pub number: AtomicU64,
    /// First counter value the entry covers (its anchor).
    pub counter_start: AtomicU64,
    /// First counter value it no longer covers (the next update's anchor).
    pub counter_end: AtomicU64,
    /// TAI ns at `counter_start`.
    pub anchor_tai_ns: AtomicU64,
    /// ns per counter tick × 2^[`PERIOD_SHIFT`].
    pub counter_period: AtomicU64,
    /// Maximum error anywhere in the entry, ns (`u64::MAX`: unknown).
    pub max_error_ns: AtomicU64,
    /// Estimated error anywhere in the entry, ns (`u64::MAX`: unknown).
    pub est_error_ns: AtomicU64,
}

/// The whole page.
#[repr(C, align(64))]
pub struct Page {
    pub header: Header,
    pub clock: ClockData,
    pub events: EventControl,
    pub _reserved0: [u8; EVENT_EPOCH_OFFSET - EVENT_CONTROL_OFFSET - size_of::<EventControl>()],
    /// Minor ≥ 4: the disruption epoch in force when the event in `ring[i]` was posted, written
    /// with it (under the slot's `seq`).
    pub event_epochs: [AtomicU32; EVENT_RING_LEN],
    pub ring: [EventSlot; EVENT_RING_LEN],
    pub history: [HistoryEntry; HISTORY_LEN],
}

// Layout asserts: these are the ABI; the C header asserts the same numbers.
const _: () = {
    use std::mem::offset_of;
    assert!(size_of::<Page>() == PAGE_SIZE);
    assert!(size_of::<Header>() == 256);
    assert!(size_of::<ClockData>() == 256);
    assert!(size_of::<EventControl>() == 64);
    assert!(size_of::<EventSlot>() == 32);
    assert!(size_of::<HistoryEntry>() == 64);
    assert!(offset_of!(Page, event_epochs) == EVENT_EPOCH_OFFSET);
    assert!(offset_of!(Page, history) == HISTORY_OFFSET);
    assert!(HISTORY_OFFSET + HISTORY_LEN * size_of::<HistoryEntry>() == PAGE_SIZE);
    assert!(offset_of!(Page, header) == HEADER_OFFSET);
    assert!(offset_of!(Page, clock) == CLOCK_OFFSET);
    assert!(offset_of!(Page, events) == EVENT_CONTROL_OFFSET);
    assert!(offset_of!(Page, ring) == EVENT_RING_OFFSET);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, abi_major) == 8);
    assert!(offset_of!(Header, abi_minor) == 10);
    assert!(offset_of!(Header, page_size) == 12);
    assert!(offset_of!(Header, clock_offset) == 16);
    assert!(offset_of!(Header, event_control_offset) == 20);
    assert!(offset_of!(Header, event_ring_offset) == 24);
    assert!(offset_of!(Header, event_ring_len) == 28);
    assert!(offset_of!(Header, writer_pid) == 32);
    assert!(offset_of!(Header, clock_id) == 40);
    assert!(offset_of!(Header, model) == 48);
    assert!(offset_of!(Header, pci_address) == 80);
    assert!(offset_of!(Header, name) == 96);
    assert!(offset_of!(Header, boot_id) == 160);
    assert!(offset_of!(ClockData, seq) == 0);
    assert!(offset_of!(ClockData, counter_kind) == 4);
    assert!(offset_of!(ClockData, counter_value) == 8);
    assert!(offset_of!(ClockData, counter_period) == 16);
    assert!(offset_of!(ClockData, anchor_tai_ns) == 24);
    assert!(offset_of!(ClockData, error_bound_ns) == 32);
    assert!(offset_of!(ClockData, error_growth_ppt) == 40);
    assert!(offset_of!(ClockData, status) == 44);
    assert!(offset_of!(ClockData, updated_tai_ns) == 48);
    assert!(offset_of!(ClockData, update_interval_ns) == 56);
    assert!(offset_of!(ClockData, update_count) == 64);
    assert!(offset_of!(ClockData, tai_utc_offset_s) == 72);
    assert!(offset_of!(ClockData, leap) == 76);
    assert!(offset_of!(ClockData, leap_tai_s) == 80);
    assert!(offset_of!(ClockData, servo_offset_ns) == 88);
    assert!(offset_of!(ClockData, servo_freq_ppt) == 96);
    assert!(offset_of!(ClockData, servo_delay_ns) == 104);
    assert!(offset_of!(ClockData, servo_state) == 112);
    assert!(offset_of!(ClockData, reference_kind) == 116);
    assert!(offset_of!(ClockData, gm_identity) == 120);
    assert!(offset_of!(ClockData, ptp_steps_removed) == 128);
    assert!(offset_of!(ClockData, ptp_port_state) == 132);
    assert!(offset_of!(ClockData, ptp_flags) == 136);
    assert!(offset_of!(ClockData, utc_offset_source) == 140);
    assert!(offset_of!(ClockData, gm_clock_accuracy) == 144);
    assert!(offset_of!(ClockData, gm_accuracy_ns) == 152);
    assert!(offset_of!(ClockData, disruption_epoch) == 160);
    assert!(offset_of!(ClockData, est_error_growth_ppt) == 164);
    assert!(offset_of!(ClockData, est_error_ns) == 168);
    assert!(offset_of!(ClockData, history_head) == 176);
    assert!(offset_of!(HistoryEntry, seq) == 0);
    assert!(offset_of!(HistoryEntry, epoch) == 4);
    assert!(offset_of!(HistoryEntry, number) == 8);
    assert!(offset_of!(HistoryEntry, counter_start) == 16);
    assert!(offset_of!(HistoryEntry, counter_end) == 24);
    assert!(offset_of!(HistoryEntry, anchor_tai_ns) == 32);
    assert!(offset_of!(HistoryEntry, counter_period) == 40);
    assert!(offset_of!(HistoryEntry, max_error_ns) == 48);
    assert!(offset_of!(HistoryEntry, est_error_ns) == 56);
    assert!(offset_of!(EventControl, futex) == 0);
    assert!(offset_of!(EventControl, head) == 8);
    assert!(offset_of!(EventSlot, seq) == 0);
    assert!(offset_of!(EventSlot, tai_ns) == 8);
    assert!(offset_of!(EventSlot, magnitude) == 16);
    assert!(offset_of!(EventSlot, kind) == 24);
    assert!(offset_of!(EventSlot, urgency) == 26);
    assert!(offset_of!(EventSlot, detail) == 28);
};

/// Every (struct, field, offset, size) of the ABI, for the test that checks the C header against it.
pub fn layout_table() -> Vec<(&'static str, &'static str, usize, usize)> {
    use std::mem::offset_of;
    macro_rules! rows {
        ($($ty:ident . $field:ident : $fty:ty),* $(,)?) => {
            vec![$((stringify!($ty), stringify!($field), offset_of!($ty, $field), size_of::<$fty>())),*]
        };
    }
    rows![
        Header.magic: u64, Header.abi_major: u16, Header.abi_minor: u16, Header.page_size: u32,
        Header.clock_offset: u32, Header.event_control_offset: u32, Header.event_ring_offset: u32,
        Header.event_ring_len: u32, Header.writer_pid: u32, Header.clock_id: [u8; 8],
        Header.model: [u8; 32], Header.pci_address: [u8; 16], Header.name: [u8; 64],
        Header.boot_id: [u8; 16],
        ClockData.seq: u32, ClockData.counter_kind: u32, ClockData.counter_value: u64,
        ClockData.counter_period: u64, ClockData.anchor_tai_ns: u64, ClockData.error_bound_ns: u64,
        ClockData.error_growth_ppt: u32, ClockData.status: u32, ClockData.updated_tai_ns: u64,
        ClockData.update_interval_ns: u64, ClockData.update_count: u64, ClockData.tai_utc_offset_s: i32,
        ClockData.leap: u32, ClockData.leap_tai_s: u64, ClockData.servo_offset_ns: i64,
        ClockData.servo_freq_ppt: i64, ClockData.servo_delay_ns: u64, ClockData.servo_state: u32,
        ClockData.reference_kind: u32, ClockData.gm_identity: [u8; 8], ClockData.ptp_steps_removed: u32,
        ClockData.ptp_port_state: u32, ClockData.ptp_flags: u32, ClockData.utc_offset_source: u32,
        ClockData.gm_clock_accuracy: u32, ClockData.gm_accuracy_ns: u64,
        ClockData.disruption_epoch: u32, ClockData.est_error_growth_ppt: u32, ClockData.est_error_ns: u64,
        ClockData.history_head: u64,
        HistoryEntry.seq: u32, HistoryEntry.epoch: u32, HistoryEntry.number: u64,
        HistoryEntry.counter_start: u64, HistoryEntry.counter_end: u64, HistoryEntry.anchor_tai_ns: u64,
        HistoryEntry.counter_period: u64, HistoryEntry.max_error_ns: u64, HistoryEntry.est_error_ns: u64,
        EventControl.futex: u32, EventControl.head: u64,
        EventSlot.seq: u64, EventSlot.tai_ns: u64, EventSlot.magnitude: i64, EventSlot.kind: u16,
        EventSlot.urgency: u16, EventSlot.detail: u32,
        Page.header: Header, Page.clock: ClockData, Page.events: EventControl,
        Page.event_epochs: [u32; EVENT_RING_LEN], Page.ring: [EventSlot; EVENT_RING_LEN],
        Page.history: [HistoryEntry; HISTORY_LEN],
    ]
}

/// Every named constant of the ABI, for the C header check.
pub fn constant_table() -> Vec<(&'static str, i128)> {
    let mut rows: Vec<(&'static str, i128)> = vec![
        ("NICCLOCK_MAGIC", MAGIC as i128),
        ("NICCLOCK_ABI_MAJOR", ABI_MAJOR as i128),
        ("NICCLOCK_ABI_MINOR", ABI_MINOR as i128),
        ("NICCLOCK_PAGE_SIZE", PAGE_SIZE as i128),
        ("NICCLOCK_EVENT_RING_LEN", EVENT_RING_LEN as i128),
        ("NICCLOCK_HISTORY_LEN", HISTORY_LEN as i128),
        ("NICCLOCK_HISTORY_SPAN_NS", HISTORY_SPAN_NS as i128),
        ("NICCLOCK_HISTORY_DEPTH_NS", HISTORY_DEPTH_NS as i128),
        ("NICCLOCK_CLOCK_RATE_TOLERANCE_PPM", CLOCK_RATE_TOLERANCE_PPM as i128),
        ("NICCLOCK_PERIOD_SHIFT", PERIOD_SHIFT as i128),
        ("NICCLOCK_MAX_EVENT_HEAD", MAX_EVENT_HEAD as i128),
        ("NICCLOCK_TSC_PERIOD_MIN", TSC_PERIOD_MIN as i128),
        ("NICCLOCK_TSC_PERIOD_MAX", TSC_PERIOD_MAX as i128),
        ("NICCLOCK_MONOTONIC_RAW_PERIOD_MIN", MONOTONIC_RAW_PERIOD_MIN as i128),
        ("NICCLOCK_MONOTONIC_RAW_PERIOD_MAX", MONOTONIC_RAW_PERIOD_MAX as i128),
        ("NICCLOCK_MAX_COUNTER_BEFORE_ANCHOR_NS", MAX_COUNTER_BEFORE_ANCHOR_NS as i128),
        ("NICCLOCK_STALE_INTERVALS", STALE_INTERVALS as i128),
        ("NICCLOCK_STALE_MIN_NS", STALE_MIN_NS as i128),
        ("NICCLOCK_WRITER_STUCK_MS", WRITER_STUCK_MS as i128),
        ("NICCLOCK_COUNTER_TSC", CounterKind::Tsc as i128),
        ("NICCLOCK_COUNTER_MONOTONIC_RAW", CounterKind::MonotonicRaw as i128),
        ("NICCLOCK_LEAP_NONE", Leap::None as i128),
        ("NICCLOCK_LEAP_INSERT", Leap::Insert as i128),
        ("NICCLOCK_LEAP_DELETE", Leap::Delete as i128),
        ("NICCLOCK_URGENCY_INFO", Urgency::Info as i128),
        ("NICCLOCK_URGENCY_NOTICE", Urgency::Notice as i128),
        ("NICCLOCK_URGENCY_URGENT", Urgency::Urgent as i128),
        ("NICCLOCK_REFERENCE_UNKNOWN", ReferenceKind::Unknown as i128),
        ("NICCLOCK_REFERENCE_SYSTEM_CLOCK", ReferenceKind::SystemClock as i128),
        ("NICCLOCK_REFERENCE_PPS", ReferenceKind::Pps as i128),
        ("NICCLOCK_REFERENCE_PTP", ReferenceKind::Ptp as i128),
        ("NICCLOCK_PTP_PORT_STATE_SLAVE", PTP_PORT_STATE_SLAVE as i128),
        ("NICCLOCK_PTP_FLAG_LEAP61", PTP_FLAG_LEAP61 as i128),
        ("NICCLOCK_PTP_FLAG_LEAP59", PTP_FLAG_LEAP59 as i128),
        ("NICCLOCK_PTP_FLAG_UTC_OFFSET_VALID", PTP_FLAG_UTC_OFFSET_VALID as i128),
        ("NICCLOCK_PTP_FLAG_PTP_TIMESCALE", PTP_FLAG_PTP_TIMESCALE as i128),
        ("NICCLOCK_PTP_FLAG_TIME_TRACEABLE", PTP_FLAG_TIME_TRACEABLE as i128),
        ("NICCLOCK_PTP_FLAG_FREQUENCY_TRACEABLE", PTP_FLAG_FREQUENCY_TRACEABLE as i128),
        ("NICCLOCK_UTC_OFFSET_SOURCE_UNKNOWN", UtcOffsetSource::Unknown as i128),
        ("NICCLOCK_UTC_OFFSET_SOURCE_HOST", UtcOffsetSource::Host as i128),
        ("NICCLOCK_UTC_OFFSET_SOURCE_REFERENCE", UtcOffsetSource::Reference as i128),
    ];
    for s in Status::ALL {
        rows.push((status_c_name(s), s as i128));
    }
    for raw in 1..=8 {
        let k = EventKind::from_raw(raw).expect("contiguous kinds");
        rows.push((event_c_name(k), k as i128));
    }
    rows.push((event_c_name(EventKind::Unknown), EventKind::Unknown as i128));
    rows
}

fn status_c_name(s: Status) -> &'static str {
    match s {
        Status::Unsynchronized => "NICCLOCK_STATUS_UNSYNCHRONIZED",
        Status::Locking => "NICCLOCK_STATUS_LOCKING",
        Status::Locked => "NICCLOCK_STATUS_LOCKED",
        Status::Holdover => "NICCLOCK_STATUS_HOLDOVER",
        Status::DeviceLost => "NICCLOCK_STATUS_DEVICE_LOST",
        Status::Stopped => "NICCLOCK_STATUS_STOPPED",
    }
}

fn event_c_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Started => "NICCLOCK_EVENT_STARTED",
        EventKind::StatusChanged => "NICCLOCK_EVENT_STATUS_CHANGED",
        EventKind::Step => "NICCLOCK_EVENT_STEP",
        EventKind::FrequencyJump => "NICCLOCK_EVENT_FREQUENCY_JUMP",
        EventKind::DeviceLost => "NICCLOCK_EVENT_DEVICE_LOST",
        EventKind::Stopped => "NICCLOCK_EVENT_STOPPED",
        EventKind::LeapChanged => "NICCLOCK_EVENT_LEAP_CHANGED",
        EventKind::PulseMissed => "NICCLOCK_EVENT_PULSE_MISSED",
        EventKind::Unknown => "NICCLOCK_EVENT_UNKNOWN",
    }
}

/// Reads a NUL-padded ASCII field.
pub fn c_str(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Fills a NUL-padded ASCII field; the text must be shorter than the field (checked by callers).
pub fn set_c_str(field: &mut [u8], text: &str) {
    field.fill(0);
    let n = text.len().min(field.len().saturating_sub(1));
    field[..n].copy_from_slice(&text.as_bytes()[..n]);
}

//! The PTP register block of Intel 82574/82576/82580/i350/i210 NICs: the offsets the driver
//! reads, writes or dumps, and the TIMINCA/TSAUXC fields (igb-family.md §1, from the Linux headers).

/// System time, low word. Reading it latches SYSTIMH (82576/82574); on 82580+ SYSTIMR latches.
pub const SYSTIML: usize = 0xB600;
/// System time, high word (latched by the SYSTIML read).
pub const SYSTIMH: usize = 0xB604;
/// Increment attributes. 82576/82574: [31:24] period (16 ns ticks), [23:0] value added per
/// period. 82580/i350/i210: [30:0] 2^-32 ns added to (ISGN: taken from) each 8 ns tick.
pub const TIMINCA: usize = 0xB608;
/// Time adjustment, low word (applied with TIMADJH).
pub const TIMADJL: usize = 0xB60C;
/// Time adjustment, high word: writing it applies TIMADJL|TIMADJH once.
pub const TIMADJH: usize = 0xB610;
pub const TSYNCTXCTL: usize = 0xB614;
pub const TXSTMPL: usize = 0xB618;
pub const TXSTMPH: usize = 0xB61C;
pub const TSYNCRXCTL: usize = 0xB620;
pub const RXSTMPL: usize = 0xB624;
pub const RXSTMPH: usize = 0xB628;
/// Auxiliary control (igb 82580 and later); bit 31 disables SYSTIM counting.
pub const TSAUXC: usize = 0xB640;
/// TSAUXC bit 31: SYSTIM does not count (set at reset on 82580+; the driver clears it).
pub const TSAUXC_DISABLE: u32 = 0x8000_0000;
/// Target times 0/1 (82580+), in the SYSTIM format of the family.
pub const TRGTTIML0: usize = 0xB644;
pub const TRGTTIMH0: usize = 0xB648;
pub const TRGTTIML1: usize = 0xB64C;
pub const TRGTTIMH1: usize = 0xB650;
/// Frequency-out half periods, ns (i210).
pub const FREQOUT0: usize = 0xB654;
pub const FREQOUT1: usize = 0xB658;
/// Auxiliary (external) timestamps 0/1: read L then H (H releases the latch).
pub const AUXSTMPL0: usize = 0xB65C;
pub const AUXSTMPH0: usize = 0xB660;
pub const AUXSTMPL1: usize = 0xB664;
pub const AUXSTMPH1: usize = 0xB668;
/// Time-sync interrupt cause (read to clear) and mask.
pub const TSICR: usize = 0xB66C;
pub const TSIM: usize = 0xB674;
/// Time-sync SDP configuration (82580+).
pub const TSSDP: usize = 0x003C;
/// Sub-nanosecond residue, read before SYSTIML on 82580/i350/i210.
pub const SYSTIMR: usize = 0xB6F8;
/// PTP first-byte match for RX stamps (igb).
pub const TSYNCRXCFG: usize = 0x5F50;
/// Device status; reads all ones when the device is gone.
pub const STATUS: usize = 0x0008;
/// Receive address 0, low and high words: the MAC address.
pub const RAL0: usize = 0x5400;
pub const RAH0: usize = 0x5404;

/// The highest register offset the driver touches, plus 4: the smallest BAR0 it can work with.
pub const MIN_BAR_LEN: u64 = (SYSTIMR + 4) as u64;

/// TIMINCA fields (82576/82574).
pub const TIMINCA_PERIOD_SHIFT: u32 = 24;
pub const TIMINCA_VALUE_MASK: u32 = 0x00FF_FFFF;
/// TIMINCA fields (82580/i350/i210): the rate magnitude and its sign (set: subtract).
pub const TIMINCA_ISGN: u32 = 0x8000_0000;
pub const TIMINCA_INCVALUE_MASK: u32 = 0x7FFF_FFFF;

/// Builds TIMINCA from an increment period (16 ns ticks) and value.
pub const fn timinca(period: u32, value: u32) -> u32 {
    (period << TIMINCA_PERIOD_SHIFT) | (value & TIMINCA_VALUE_MASK)
}

/// Named registers for dumps (`nicclockd probe`).
pub const DUMP: [(&str, usize); 15] = [
    ("STATUS", STATUS),
    ("SYSTIML", SYSTIML),
    ("SYSTIMH", SYSTIMH),
    ("TIMINCA", TIMINCA),
    ("TIMADJL", TIMADJL),
    ("TIMADJH", TIMADJH),
    ("TSYNCTXCTL", TSYNCTXCTL),
    ("TXSTMPL", TXSTMPL),
    ("TXSTMPH", TXSTMPH),
    ("TSYNCRXCTL", TSYNCRXCTL),
    ("RXSTMPL", RXSTMPL),
    ("RXSTMPH", RXSTMPH),
    ("TSAUXC", TSAUXC),
    ("TSYNCRXCFG", TSYNCRXCFG),
    ("SYSTIMR", SYSTIMR),
];

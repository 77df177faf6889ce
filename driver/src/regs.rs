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
/// Target time 0, low and high words (82580+): i210 ns and seconds, 82580/i350 40-bit raw.
pub const TRGTTIML0: usize = 0xB644;
pub const TRGTTIMH0: usize = 0xB648;
/// Target time 1, low and high words.
pub const TRGTTIML1: usize = 0xB64C;
pub const TRGTTIMH1: usize = 0xB650;
/// Frequency-clock half periods, ns (i210).
pub const FREQOUT0: usize = 0xB654;
pub const FREQOUT1: usize = 0xB658;
/// Auxiliary (external) timestamp 0: read L, then H (the H read re-arms the capture).
pub const AUXSTMPL0: usize = 0xB65C;
pub const AUXSTMPH0: usize = 0xB660;
/// Auxiliary timestamp 1.
pub const AUXSTMPL1: usize = 0xB664;
pub const AUXSTMPH1: usize = 0xB668;
/// Time-sync interrupt cause: read to clear (the 82580 also needs a write-1-to-clear).
pub const TSICR: usize = 0xB66C;
/// Time-sync interrupt mask.
pub const TSIM: usize = 0xB674;
/// Sub-nanosecond residue, read before SYSTIML on 82580/i350/i210.
pub const SYSTIMR: usize = 0xB6F8;
/// Device control: SDP0/1 data and direction.
pub const CTRL: usize = 0x0000;
/// Extended device control: SDP2/3 data and direction.
pub const CTRL_EXT: usize = 0x0018;
/// Time-sync SDP configuration (82580+): which SDP is an aux-stamp input or a timed output.
pub const TSSDP: usize = 0x003C;

/// TSAUXC bits.
pub const TSAUXC_EN_TT0: u32 = 1 << 0;
pub const TSAUXC_EN_TT1: u32 = 1 << 1;
pub const TSAUXC_EN_CLK0: u32 = 1 << 2;
pub const TSAUXC_ST0: u32 = 1 << 4;
pub const TSAUXC_EN_CLK1: u32 = 1 << 5;
pub const TSAUXC_ST1: u32 = 1 << 7;
pub const TSAUXC_EN_TS0: u32 = 1 << 8;
pub const TSAUXC_AUTT0: u32 = 1 << 9;
pub const TSAUXC_EN_TS1: u32 = 1 << 10;
pub const TSAUXC_AUTT1: u32 = 1 << 11;
pub const TSAUXC_DISABLE: u32 = 1 << 31;

/// TSICR / TSIM bits.
pub const TSINTR_SYS_WRAP: u32 = 1 << 0;
pub const TSINTR_TXTS: u32 = 1 << 1;
pub const TSINTR_TT0: u32 = 1 << 3;
pub const TSINTR_TT1: u32 = 1 << 4;
pub const TSINTR_AUTT0: u32 = 1 << 5;
pub const TSINTR_AUTT1: u32 = 1 << 6;

/// TSSDP fields: AUX0/AUX1 input select (SDP number) and enable; per-SDP output select
/// (0 TT0, 1 TT1, 2 FREQOUT0, 3 FREQOUT1) and enable.
pub const TSSDP_AUX0_SEL_SHIFT: u32 = 0;
pub const TSSDP_AUX0_TS_SDP_EN: u32 = 1 << 2;
pub const TSSDP_AUX1_SEL_SHIFT: u32 = 3;
pub const TSSDP_AUX1_TS_SDP_EN: u32 = 1 << 5;
/// Shift of SDPn's 2-bit output select; its enable bit is the one above the field.
pub const fn tssdp_sdp_sel_shift(sdp: u32) -> u32 {
    6 + 3 * sdp
}
pub const fn tssdp_sdp_en(sdp: u32) -> u32 {
    1 << (8 + 3 * sdp)
}

/// SDP data and direction bits (direction set: output): SDP0/1 in CTRL, SDP2/3 in CTRL_EXT.
pub const CTRL_SDP0_DATA: u32 = 0x0004_0000;
pub const CTRL_SDP1_DATA: u32 = 0x0008_0000;
pub const CTRL_SDP0_DIR: u32 = 0x0040_0000;
pub const CTRL_SDP1_DIR: u32 = 0x0080_0000;
pub const CTRL_EXT_SDP2_DATA: u32 = 0x40;
pub const CTRL_EXT_SDP3_DATA: u32 = 0x80;
pub const CTRL_EXT_SDP2_DIR: u32 = 0x400;
pub const CTRL_EXT_SDP3_DIR: u32 = 0x800;
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

//! The igb timing pins (i210/i211, 82580/i350/i354): SDP direction and TSSDP routing, a PPS output
//! by target time 0 re-armed each half second, and aux timestamp 0 of a PPS input (igb-family.md §5).
//!
//! Target time rather than the i210's FREQOUT: a frequency clock toggles every half period of the
//! NIC's raw time from its start, so under software steering (raw rate ≠ disciplined rate) its
//! edges drift off the disciplined second; a target re-armed per edge from the current mapping
//! does not, and the 82580/i350 have only target times anyway.

use std::fmt;
use std::str::FromStr;

use nicclock_uio::RegisterAccess;

use crate::clock::{Nanos, Phc, RawTime};
use crate::model::{Family, Pins, FAMILIES};
use crate::regs;

const HALF_S: i128 = 500_000_000;

/// The models that have timing pins (from the family table), for error messages.
pub fn models_with_pins() -> String {
    let names: Vec<&str> = FAMILIES.iter().filter(|f| f.pins.sdps > 0).map(|f| f.name).collect();
    names.join(" and ")
}

/// What the pins need from the clock: its conversions between disciplined time and the family's
/// raw register words (one implementation, the clock's: [`Phc`] through its timecounter and ops).
pub trait PinClock {
    /// Disciplined time of a stamp's (low, high) registers (AUXSTMPLn/AUXSTMPHn).
    fn stamp_to_ns(&self, lo: u32, hi: u32) -> Nanos;
    /// Disciplined time at a raw reading near the last one.
    fn raw_to_ns(&self, raw: RawTime) -> Nanos;
    /// The raw reading at which the disciplined time is `ns`.
    fn ns_to_raw(&self, ns: Nanos) -> RawTime;
    /// The (low, high) register words of `raw` (TRGTTIMLn/TRGTTIMHn).
    fn raw_to_regs(&self, raw: RawTime) -> (u32, u32);
}

impl<R: RegisterAccess> PinClock for Phc<R> {
    fn stamp_to_ns(&self, lo: u32, hi: u32) -> Nanos {
        Phc::stamp_to_ns(self, lo, hi)
    }
    fn raw_to_ns(&self, raw: RawTime) -> Nanos {
        Phc::raw_to_ns(self, raw)
    }
    fn ns_to_raw(&self, ns: Nanos) -> RawTime {
        Phc::ns_to_raw(self, ns)
    }
    fn raw_to_regs(&self, raw: RawTime) -> (u32, u32) {
        self.ops().raw_to_regs(raw)
    }
}

/// Why a pin cannot do what was asked on a family (from the family table's [`Pins`]).
pub fn check_pin(pins: &Pins, sdp: Sdp, output: bool) -> Result<(), String> {
    let mask = if output { pins.pps_out } else { pins.extts };
    if mask & (1 << sdp.0) != 0 {
        return Ok(());
    }
    let what = if output { "a PPS output" } else { "a timestamped input" };
    match Pins::list(mask) {
        l if l.is_empty() => Err(format!("no pin of this NIC can be {what}")),
        l => Err(format!(
            "{sdp} cannot be {what} on this NIC; these can: {}",
            l.iter().map(|n| format!("SDP{n}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// A software-definable pin, SDP0..SDP3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sdp(u8);

impl Sdp {
    pub fn new(n: u8) -> Option<Self> {
        (n < 4).then_some(Self(n))
    }

    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// (register, data bit, direction bit) of this pin.
    fn control(self) -> (usize, u32, u32) {
        match self.0 {
            0 => (regs::CTRL, regs::CTRL_SDP0_DATA, regs::CTRL_SDP0_DIR),
            1 => (regs::CTRL, regs::CTRL_SDP1_DATA, regs::CTRL_SDP1_DIR),
            2 => (regs::CTRL_EXT, regs::CTRL_EXT_SDP2_DATA, regs::CTRL_EXT_SDP2_DIR),
            _ => (regs::CTRL_EXT, regs::CTRL_EXT_SDP3_DATA, regs::CTRL_EXT_SDP3_DIR),
        }
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SDP{}", self.0)
    }
}

impl FromStr for Sdp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let n = s.strip_prefix("SDP").or_else(|| s.strip_prefix("sdp"));
        n.and_then(|n| n.parse::<u8>().ok())
            .and_then(Self::new)
            .ok_or_else(|| format!("unknown pin {s:?}: use SDP0, SDP1, SDP2 or SDP3"))
    }
}

fn modify<R: RegisterAccess + ?Sized>(regs: &R, offset: usize, clear: u32, set: u32) {
    let v = regs.read32(offset);
    regs.write32(offset, (v & !clear) | set);
}

/// Makes `sdp` the output of target time 0, driven low until the first target: SDP direction
/// out, TSSDP routes TT0 to it (and no aux input reads it), channel 0's old function cleared.
pub fn configure_output<R: RegisterAccess + ?Sized>(regs: &R, sdp: Sdp) {
    modify(regs, regs::TSAUXC, regs::TSAUXC_EN_TT0 | regs::TSAUXC_EN_CLK0 | regs::TSAUXC_ST0, 0);
    modify(regs, regs::TSIM, regs::TSINTR_TT0, 0);
    let (ctrl, data, dir) = sdp.control();
    modify(regs, ctrl, data, dir);
    let mut tssdp = regs.read32(regs::TSSDP);
    let n = sdp.index();
    if tssdp & 0x3 == n {
        tssdp &= !regs::TSSDP_AUX0_TS_SDP_EN;
    }
    if (tssdp >> regs::TSSDP_AUX1_SEL_SHIFT) & 0x3 == n {
        tssdp &= !regs::TSSDP_AUX1_TS_SDP_EN;
    }
    // Select 0 = TT0.
    tssdp &= !(0x3 << regs::tssdp_sdp_sel_shift(n));
    regs.write32(regs::TSSDP, tssdp | regs::tssdp_sdp_en(n));
    modify(regs, regs::TSIM, 0, regs::TSINTR_TT0);
}

/// Makes `sdp` the input of aux timestamp 0: SDP direction in, TSSDP AUX0 selects it, TSAUXC
/// EN_TS0 and TSIM AUTT0 set; a stamp latched before is read away (reading H re-arms).
pub fn configure_input<R: RegisterAccess + ?Sized>(regs: &R, sdp: Sdp) {
    let (ctrl, _, dir) = sdp.control();
    modify(regs, ctrl, dir, 0);
    let n = sdp.index();
    let tssdp = regs.read32(regs::TSSDP) & !regs::tssdp_sdp_en(n) & !(0x3 << regs::TSSDP_AUX0_SEL_SHIFT);
    regs.write32(regs::TSSDP, tssdp | (n << regs::TSSDP_AUX0_SEL_SHIFT) | regs::TSSDP_AUX0_TS_SDP_EN);
    modify(regs, regs::TSAUXC, 0, regs::TSAUXC_EN_TS0);
    modify(regs, regs::TSIM, 0, regs::TSINTR_AUTT0);
    regs.read32(regs::AUXSTMPL0);
    regs.read32(regs::AUXSTMPH0);
}

/// Arms target time 0 at raw NIC time `raw`: TRGTTIML0, TRGTTIMH0, then TSAUXC EN_TT0 (which
/// the hardware clears when the target fires).
pub fn arm_target<R: RegisterAccess + ?Sized>(regs: &R, clock: &dyn PinClock, raw: RawTime) {
    let (lo, hi) = clock.raw_to_regs(raw);
    regs.write32(regs::TRGTTIML0, lo);
    regs.write32(regs::TRGTTIMH0, hi);
    modify(regs, regs::TSAUXC, 0, regs::TSAUXC_EN_TT0);
}

/// What the time-sync causes said since the last poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PinEvents {
    /// Target time 0 fired (the output toggled).
    pub target_fired: bool,
    /// Aux stamp 0 (low, high), read L then H (which re-arms the capture).
    pub aux_stamp: Option<(u32, u32)>,
}

/// Reads (and clears) TSICR once; the 82580 family also needs its causes written back to clear.
/// A stamp is read when TSICR.AUTT0 or TSAUXC.AUTT0 says one was taken.
pub fn poll<R: RegisterAccess + ?Sized>(regs: &R, family: Family) -> PinEvents {
    let tsicr = regs.read32(regs::TSICR);
    if family == Family::E82580 && tsicr != 0 {
        regs.write32(regs::TSICR, tsicr & (regs::TSINTR_TT0 | regs::TSINTR_AUTT0));
    }
    let taken = tsicr & regs::TSINTR_AUTT0 != 0 || regs.read32(regs::TSAUXC) & regs::TSAUXC_AUTT0 != 0;
    let aux_stamp = taken.then(|| {
        let lo = regs.read32(regs::AUXSTMPL0);
        (lo, regs.read32(regs::AUXSTMPH0))
    });
    PinEvents { target_fired: tsicr & regs::TSINTR_TT0 != 0, aux_stamp }
}

/// One scheduled output edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Disciplined time of the edge: a whole second (rising) or half past (falling).
    pub disc_ns: Nanos,
    /// Where it is in the NIC's raw time (what TRGTTIM holds).
    pub raw: RawTime,
    pub rising: bool,
}

/// The next edge of a 1 PPS square wave (rising on the disciplined second, falling at half past)
/// at least `margin_ns` after `now_disc`: the next whole second when the pin is low, the next half
/// past when it is high (a target toggles the pin, so the level decides which edge comes next).
pub fn next_edge(clock: &dyn PinClock, now_disc: Nanos, level_high: bool, margin_ns: i128) -> Edge {
    let mut k = (now_disc.0 + margin_ns).div_euclid(HALF_S) + 1;
    // Even k: a whole second.
    if (k.rem_euclid(2) == 0) == level_high {
        k += 1;
    }
    let disc_ns = Nanos(k * HALF_S);
    Edge { disc_ns, raw: clock.ns_to_raw(disc_ns), rising: !level_high }
}

/// Least time ahead of now an edge is armed (or re-armed), ns: register writes take µs; an edge
/// this close keeps its target.
pub const ARM_MARGIN_NS: i128 = 2_000_000;

/// `--pps-out`: a PPS on an SDP from target time 0, re-armed after each edge from the clock's
/// current raw↔disciplined conversion (call [`PpsOut::service`] at least every 200 ms).
#[derive(Debug)]
pub struct PpsOut {
    sdp: Sdp,
    level_high: bool,
    armed: Option<Edge>,
}

/// What [`PpsOut::service`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutService {
    /// The edge that fired since the last call.
    pub fired: Option<Edge>,
    /// An armed edge whose time passed without the target firing (armed too late, or the clock
    /// was stepped over it).
    pub missed: Option<Edge>,
    /// The edge now armed, if this call (re)wrote the target.
    pub armed: Option<Edge>,
}

impl PpsOut {
    /// Routes target time 0 to `sdp`, driven low until the first edge.
    pub fn start<R: RegisterAccess + ?Sized>(regs: &R, sdp: Sdp) -> Self {
        configure_output(regs, sdp);
        Self { sdp, level_high: false, armed: None }
    }

    pub fn sdp(&self) -> Sdp {
        self.sdp
    }

    /// The armed edge, if any.
    pub fn armed(&self) -> Option<Edge> {
        self.armed
    }

    /// Handles a fired target (`target_fired`, from [`poll`]) and arms the next edge through
    /// `clock` (fresh: read at `now_disc`); an edge still pending is moved when the clock's
    /// conversion moved it (software steering).
    pub fn service<R: RegisterAccess + ?Sized>(
        &mut self,
        regs: &R,
        clock: &dyn PinClock,
        target_fired: bool,
        now_disc: Nanos,
    ) -> OutService {
        let mut out = OutService::default();
        if let Some(edge) = self.armed {
            if target_fired {
                self.level_high = edge.rising;
                out.fired = Some(edge);
                self.armed = None;
            } else if clock.raw_to_ns(edge.raw) <= now_disc {
                out.missed = Some(edge);
                self.armed = None;
            }
        }
        match self.armed {
            None => {
                let edge = next_edge(clock, now_disc, self.level_high, ARM_MARGIN_NS);
                arm_target(regs, clock, edge.raw);
                self.armed = Some(edge);
                out.armed = Some(edge);
            }
            Some(edge) if (edge.disc_ns - now_disc).0 > ARM_MARGIN_NS => {
                let raw = clock.ns_to_raw(edge.disc_ns);
                if raw != edge.raw {
                    let moved = Edge { raw, ..edge };
                    arm_target(regs, clock, raw);
                    self.armed = Some(moved);
                    out.armed = Some(moved);
                }
            }
            Some(_) => {}
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A register file that remembers writes and lets a test say what reads return.
    use std::cell::RefCell;
    use std::collections::HashMap;

    use nicclock_uio::RegisterAccess;

    #[derive(Default)]
    pub struct Fake {
        pub values: RefCell<HashMap<usize, u32>>,
        pub writes: RefCell<Vec<(usize, u32)>>,
        pub reads: RefCell<Vec<usize>>,
        /// Registers cleared by a read (TSICR).
        pub read_to_clear: Vec<usize>,
    }

    impl Fake {
        pub fn new() -> Self {
            Self { read_to_clear: vec![crate::regs::TSICR], ..Self::default() }
        }
        pub fn set(&self, offset: usize, value: u32) {
            self.values.borrow_mut().insert(offset, value);
        }
        pub fn get(&self, offset: usize) -> u32 {
            self.values.borrow().get(&offset).copied().unwrap_or(0)
        }
    }

    impl RegisterAccess for Fake {
        fn len(&self) -> usize {
            0x20000
        }
        fn read32(&self, offset: usize) -> u32 {
            self.reads.borrow_mut().push(offset);
            let v = self.get(offset);
            if self.read_to_clear.contains(&offset) {
                self.values.borrow_mut().insert(offset, 0);
            }
            v
        }
        fn write32(&self, offset: usize, value: u32) {
            self.writes.borrow_mut().push((offset, value));
            self.values.borrow_mut().insert(offset, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Fake;
    use super::*;
    use crate::clock::{ClockI210, ClockOps, Timecounter};

    /// The clock's own conversion (an i210's timecounter) at a fixed reading: disciplined =
    /// `disc_ns` + (raw − `raw_ns`) × `rate`.
    struct TestClock {
        tc: Timecounter,
        rate: f64,
    }

    fn clock(raw_ns: i128, disc_ns: i128, rate: f64) -> TestClock {
        let mut tc = Timecounter::new(&ClockI210, ClockI210::raw_of(raw_ns));
        tc.shift(Nanos(disc_ns - raw_ns));
        TestClock { tc, rate }
    }

    impl PinClock for TestClock {
        fn stamp_to_ns(&self, lo: u32, hi: u32) -> Nanos {
            self.raw_to_ns(ClockI210.raw_from_regs(lo, hi))
        }
        fn raw_to_ns(&self, raw: RawTime) -> Nanos {
            self.tc.at(&ClockI210, raw, self.rate)
        }
        fn ns_to_raw(&self, ns: Nanos) -> RawTime {
            self.tc.raw_at(&ClockI210, ns, self.rate)
        }
        fn raw_to_regs(&self, raw: RawTime) -> (u32, u32) {
            ClockI210.raw_to_regs(raw)
        }
    }

    #[test]
    fn pin_capabilities_come_from_the_family_table() {
        use crate::model::{model, INTEL};
        let pins = |id| model(INTEL, id).unwrap().spec().pins;
        for id in [0x1533, 0x1539, 0x1521, 0x150E] {
            assert_eq!(check_pin(&pins(id), Sdp(3), true), Ok(()), "{id:04x} out");
            assert_eq!(check_pin(&pins(id), Sdp(0), false), Ok(()), "{id:04x} in");
        }
        for id in [0x10C9, 0x10D3] {
            let e = check_pin(&pins(id), Sdp(0), true).unwrap_err();
            assert!(e.contains("no pin of this NIC can be a PPS output"), "{e}");
        }
        assert_eq!(models_with_pins(), "82580/i350/i354 and i210/i211");
    }

    #[test]
    fn sdp_names() {
        assert_eq!("SDP2".parse::<Sdp>(), Ok(Sdp(2)));
        assert_eq!("sdp0".parse::<Sdp>(), Ok(Sdp(0)));
        assert!("SDP4".parse::<Sdp>().unwrap_err().contains("SDP0, SDP1, SDP2 or SDP3"));
        assert!("GPIO1".parse::<Sdp>().is_err());
        assert_eq!(Sdp(3).to_string(), "SDP3");
    }

    #[test]
    fn output_routing_by_hand() {
        let f = Fake::new();
        // SDP1 was aux input 0 and driven high; TT0 and the clock output were on.
        f.set(regs::TSSDP, 1 | regs::TSSDP_AUX0_TS_SDP_EN);
        f.set(regs::CTRL, regs::CTRL_SDP1_DATA);
        f.set(regs::TSAUXC, regs::TSAUXC_EN_TT0 | regs::TSAUXC_EN_CLK0 | regs::TSAUXC_EN_TS1);
        configure_output(&f, Sdp(1));
        // Aux 0 no longer reads SDP1; SDP1 select (bits 10:9) = TT0, enable bit 11.
        assert_eq!(f.get(regs::TSSDP), 1 | 0x800);
        assert_eq!(f.get(regs::CTRL), regs::CTRL_SDP1_DIR, "output, driven low");
        assert_eq!(f.get(regs::TSAUXC), regs::TSAUXC_EN_TS1, "channel 0 cleared, the rest kept");
        assert_eq!(f.get(regs::TSIM), regs::TSINTR_TT0);
        // SDP3 lives in CTRL_EXT; select bits 16:15, enable bit 17.
        let f = Fake::new();
        f.set(regs::TSSDP, 0x3 << 15);
        configure_output(&f, Sdp(3));
        assert_eq!(f.get(regs::TSSDP), 0x2_0000);
        assert_eq!(f.get(regs::CTRL_EXT), 0x800);
    }

    #[test]
    fn input_routing_by_hand() {
        let f = Fake::new();
        // SDP2 was a TT1 output (select 1 at bits 13:12, enable bit 14) and an output pin.
        f.set(regs::TSSDP, (1 << 12) | (1 << 14));
        f.set(regs::CTRL_EXT, regs::CTRL_EXT_SDP2_DIR | regs::CTRL_EXT_SDP3_DIR);
        configure_input(&f, Sdp(2));
        assert_eq!(f.get(regs::TSSDP), (1 << 12) | 2 | regs::TSSDP_AUX0_TS_SDP_EN);
        assert_eq!(f.get(regs::CTRL_EXT), regs::CTRL_EXT_SDP3_DIR, "SDP2 an input, SDP3 untouched");
        assert_eq!(f.get(regs::TSAUXC), regs::TSAUXC_EN_TS0);
        assert_eq!(f.get(regs::TSIM), regs::TSINTR_AUTT0);
        let reads = f.reads.borrow();
        let l = reads.iter().position(|&r| r == regs::AUXSTMPL0).unwrap();
        let h = reads.iter().position(|&r| r == regs::AUXSTMPH0).unwrap();
        assert!(l < h, "a stale stamp is read away, L then H");
    }

    #[test]
    fn poll_reads_the_stamp_low_then_high_and_acks_only_on_82580() {
        let f = Fake::new();
        f.set(regs::TSICR, regs::TSINTR_AUTT0 | regs::TSINTR_TT0);
        f.set(regs::AUXSTMPL0, 250);
        f.set(regs::AUXSTMPH0, 7);
        let e = poll(&f, Family::I210);
        assert_eq!(e, PinEvents { target_fired: true, aux_stamp: Some((250, 7)) });
        assert!(!f.writes.borrow().iter().any(|w| w.0 == regs::TSICR), "i210: the read clears");
        assert_eq!(poll(&f, Family::I210), PinEvents::default(), "cleared by the read");
        f.set(regs::TSICR, regs::TSINTR_AUTT0);
        poll(&f, Family::E82580);
        assert_eq!(f.writes.borrow().last(), Some(&(regs::TSICR, regs::TSINTR_AUTT0)), "82580: W1C");
    }

    #[test]
    fn the_next_edge_is_the_second_when_low_and_half_past_when_high() {
        let m = clock(1_000, 5_000_000_000, 1.0);
        let now = Nanos(5_300_000_000);
        let e = next_edge(&m, now, false, ARM_MARGIN_NS);
        assert_eq!(
            e,
            Edge { disc_ns: Nanos(6_000_000_000), raw: ClockI210::raw_of(1_000_001_000), rising: true }
        );
        let e = next_edge(&m, now, true, ARM_MARGIN_NS);
        assert_eq!(
            e,
            Edge { disc_ns: Nanos(5_500_000_000), raw: ClockI210::raw_of(500_001_000), rising: false }
        );
        // Within the margin of half past: the falling edge a second later.
        let e = next_edge(&m, Nanos(5_499_000_000), true, ARM_MARGIN_NS);
        assert_eq!(e.disc_ns, Nanos(6_500_000_000));
    }

    #[test]
    fn software_steering_converts_the_target_through_the_clock() {
        // The disciplined clock runs 100 ppm fast of the raw one and is 2 s + 7 ns ahead of it.
        let m = clock(10_000_000_000, 12_000_000_007, 1.0001);
        let e = next_edge(&m, Nanos(12_400_000_000), false, ARM_MARGIN_NS);
        assert_eq!(e.disc_ns, Nanos(13_000_000_000));
        // 999,999,993 disciplined ns after the reading = 999,900,002.9997 raw ns.
        assert_eq!(e.raw, ClockI210::raw_of(10_999_900_003));
        assert_eq!(m.raw_to_ns(e.raw), Nanos(13_000_000_000));
        assert_eq!(m.raw_to_regs(e.raw), (999_900_003, 10));
    }

    #[test]
    fn pps_out_arms_rearms_and_moves_a_pending_edge() {
        let f = Fake::new();
        let mut out = PpsOut::start(&f, Sdp(0));
        let m = clock(0, 0, 1.0);
        let s = out.service(&f, &m, false, Nanos(100_000_000));
        assert_eq!(s.armed.map(|e| (e.disc_ns, e.rising)), Some((Nanos(1_000_000_000), true)));
        assert_eq!((f.get(regs::TRGTTIML0), f.get(regs::TRGTTIMH0)), (0, 1));
        assert_ne!(f.get(regs::TSAUXC) & regs::TSAUXC_EN_TT0, 0);
        // Nothing fired, nothing moved: no writes.
        let n = f.writes.borrow().len();
        assert_eq!(out.service(&f, &m, false, Nanos(200_000_000)), OutService::default());
        assert_eq!(f.writes.borrow().len(), n);
        // The servo slowed the disciplined clock by 1 ppm: the pending edge moves 900 raw ns later.
        let m2 = clock(100_000_000, 100_000_000, 1.0 - 1e-6);
        let s = out.service(&f, &m2, false, Nanos(100_000_000));
        assert_eq!(s.armed.map(|e| e.raw), Some(ClockI210::raw_of(1_000_000_900)));
        assert_eq!((f.get(regs::TRGTTIML0), f.get(regs::TRGTTIMH0)), (900, 1));
        // It fires: the falling edge at 1.5 s is next.
        f.set(regs::TSAUXC, 0);
        let s = out.service(&f, &m, true, Nanos(1_000_100_000));
        assert_eq!(s.fired.map(|e| e.disc_ns), Some(Nanos(1_000_000_000)));
        assert_eq!(s.armed.map(|e| (e.disc_ns, e.rising)), Some((Nanos(1_500_000_000), false)));
        assert_eq!(f.get(regs::TRGTTIML0), 500_000_000);
        // Its time passes without the target firing (the clock was stepped over it): a new one.
        let s = out.service(&f, &m, false, Nanos(1_600_000_000));
        assert_eq!(s.missed.map(|e| e.disc_ns), Some(Nanos(1_500_000_000)));
        assert_eq!(
            s.armed.map(|e| (e.disc_ns, e.rising)),
            Some((Nanos(2_500_000_000), false)),
            "level still high"
        );
    }
}

//! The time-sync pins of the 82580/i350/i354 and i210/i211 (igb-family.md §1.1, §5), simulated,
//! with every SDP edge recorded at its true time and a GPS PPS that can drive an input pin.
//!
//! Target times toggle an SDP when SYSTIM reaches them, the i210's FREQOUT clocks toggle every
//! half period, aux timestamps latch SYSTIM on an input edge; TSSDP/CTRL/CTRL_EXT route the pins,
//! TSICR/TSIM report. Everything is computed when the simulation advances, so it works the same on
//! virtual and on real time.
//!
//! Behaviour the sources leave open, chosen here **[inference]**: a target time fires when the
//! counter passes it (never for an i210 time already past), toggles its source, sets TSICR.TTx and
//! clears TSAUXC.EN_TTx; with EN_CLKx|STx (i210) the clock starts at TRGTTIMx with an edge and
//! toggles every FREQOUTx ns of SYSTIM; every input edge, rising and falling, is stamped (as igb's
//! "both edges are timestamped"), and one arriving while AUXSTMPx is still held is lost; TSICR
//! clears on read except on the 82580 (which needs the write, as Linux works around).

use std::collections::VecDeque;

use super::counter::{Format, Run, NS_PER_S};
use super::{SimConfig, SimModel, SimNic, State};
use crate::regs;

// TSAUXC bits.
const EN_TT: [u32; 2] = [1 << 0, 1 << 1];
const EN_CLK: [u32; 2] = [1 << 2, 1 << 5];
const SAMP_AUT: [u32; 2] = [1 << 3, 1 << 6];
const ST: [u32; 2] = [1 << 4, 1 << 7];
const EN_TS: [u32; 2] = [1 << 8, 1 << 10];
const AUTT_HELD: [u32; 2] = [1 << 9, 1 << 11];
/// TSAUXC bit 31: SYSTIM stops counting.
pub(super) const DISABLE: u32 = 1 << 31;
// TSICR bits.
const TSICR_SYS_WRAP: u32 = 1 << 0;
const TSICR_TT: [u32; 2] = [1 << 3, 1 << 4];
const TSICR_AUTT: [u32; 2] = [1 << 5, 1 << 6];
pub(super) const TSICR_TADJ: u32 = 1 << 7;

const TRGTTIM: [(usize, usize); 2] = [(regs::TRGTTIML0, regs::TRGTTIMH0), (regs::TRGTTIML1, regs::TRGTTIMH1)];
const FREQOUT: [usize; 2] = [regs::FREQOUT0, regs::FREQOUT1];
const AUXSTMP: [(usize, usize); 2] = [(regs::AUXSTMPL0, regs::AUXSTMPH0), (regs::AUXSTMPL1, regs::AUXSTMPH1)];

/// SDP data and direction (set: output) bits: (register, data, dir) per pin.
const SDP: [(usize, u32, u32); 4] = [
    (regs::CTRL, 0x0004_0000, 0x0040_0000),
    (regs::CTRL, 0x0008_0000, 0x0080_0000),
    (regs::CTRL_EXT, 0x40, 0x400),
    (regs::CTRL_EXT, 0x80, 0x800),
];

/// Edges kept per pin.
const EDGE_CAP: usize = 1 << 16;

/// One level change on an SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// True time, ns since the simulation started.
    pub true_ns: u64,
    pub rising: bool,
}

/// A pulse-per-second signal on an SDP (a GPS receiver's PPS): a rising edge near every true
/// second from 1 s on, high for `width_ns`.
#[derive(Debug, Clone, PartialEq)]
pub struct PpsInput {
    pub sdp: u8,
    /// Standard deviation of each edge around its true second, ns (Gaussian, seeded per second).
    pub jitter_ns: f64,
    /// Constant offset of the edges from the true second (cable delay, receiver bias), ns.
    pub offset_ns: i64,
    /// High time, ns.
    pub width_ns: u64,
    /// Fraction of seconds without a pulse (seeded per second).
    pub missing_fraction: f64,
    /// Seconds without a pulse, for sure.
    pub missing: Vec<u64>,
}

impl Default for PpsInput {
    fn default() -> Self {
        Self {
            sdp: 0,
            jitter_ns: 20.0,
            offset_ns: 0,
            width_ns: 100_000_000,
            missing_fraction: 0.0,
            missing: vec![],
        }
    }
}

/// What drives an output pin through TSSDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Target(usize),
    Clock(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    Off,
    /// Starts when SYSTIM reaches TRGTTIMx.
    Armed,
    /// Started at SYSTIM `start_ns`; next toggle at `next_ns`.
    Running {
        start_ns: u128,
        next_ns: u128,
    },
}

pub(super) struct Pins {
    target_level: [bool; 2],
    clock_level: [bool; 2],
    clock: [Clock; 2],
    aux: [(u32, u32); 2],
    pub aux_lost: [u64; 2],
    edges: [VecDeque<Edge>; 4],
    /// Input edges up to this true time have been delivered.
    input_done: f64,
    input_level: bool,
}

impl Pins {
    pub fn new(now: u64) -> Self {
        Self {
            target_level: [false; 2],
            clock_level: [false; 2],
            clock: [Clock::Off; 2],
            aux: [(0, 0); 2],
            aux_lost: [0; 2],
            edges: Default::default(),
            input_done: now as f64,
            input_level: false,
        }
    }

    pub fn edges(&self, pin: u8) -> Vec<Edge> {
        self.edges.get(pin as usize).map(|e| e.iter().copied().collect()).unwrap_or_default()
    }

    fn record(&mut self, pin: usize, true_ns: f64, rising: bool) {
        let edges = &mut self.edges[pin];
        if edges.len() == EDGE_CAP {
            edges.pop_front();
        }
        edges.push_back(Edge { true_ns: true_ns.round().max(0.0) as u64, rising });
    }
}

fn reg(s: &State, offset: usize) -> u32 {
    s.regs.get(&offset).copied().unwrap_or(0)
}

fn is_output(s: &State, pin: usize) -> bool {
    let (r, _, dir) = SDP[pin];
    reg(s, r) & dir != 0
}

/// What TSSDP routes to output pin `pin`, if anything.
fn source(s: &State, pin: usize) -> Option<Source> {
    let tssdp = reg(s, regs::TSSDP);
    let shift = 6 + 3 * pin as u32;
    (tssdp & (1 << (shift + 2)) != 0).then(|| match (tssdp >> shift) & 3 {
        0 => Source::Target(0),
        1 => Source::Target(1),
        2 => Source::Clock(0),
        _ => Source::Clock(1),
    })
}

/// The pin aux timestamp `chan` listens to, if enabled (TSSDP and TSAUXC.EN_TSx).
fn aux_pin(s: &State, chan: usize) -> Option<usize> {
    let tssdp = reg(s, regs::TSSDP);
    let shift = 3 * chan as u32;
    let enabled = tssdp & (1 << (shift + 2)) != 0 && reg(s, regs::TSAUXC) & EN_TS[chan] != 0;
    enabled.then_some(((tssdp >> shift) & 3) as usize)
}

fn levels(nic: &SimNic, s: &State) -> [bool; 4] {
    let pps = nic.config.pps_in.as_ref().map(|p| p.sdp as usize);
    std::array::from_fn(|pin| {
        let (r, data, _) = SDP[pin];
        if is_output(s, pin) {
            match source(s, pin) {
                Some(Source::Target(x)) => s.pins.target_level[x],
                Some(Source::Clock(x)) => s.pins.clock_level[x],
                None => reg(s, r) & data != 0,
            }
        } else if pps == Some(pin) {
            s.pins.input_level
        } else {
            reg(s, r) & data != 0
        }
    })
}

fn record_changes(s: &mut State, before: [bool; 4], after: [bool; 4], true_ns: f64) {
    for pin in 0..4 {
        if before[pin] != after[pin] {
            s.pins.record(pin, true_ns, after[pin]);
        }
    }
}

/// The PPS input's edge for `second` (rising, or the falling one after it), true ns.
pub(super) fn input_edge(config: &SimConfig, second: u64, rising: bool) -> Option<f64> {
    let p = config.pps_in.as_ref()?;
    // No pulse before the simulation starts (second 0's only if the offset puts it well after).
    if (second == 0 && p.offset_ns < 1_000_000) || p.missing.contains(&second) {
        return None;
    }
    let h = mix(config.seed ^ 0x5050_5349_4E00_0000, second);
    let uniform = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    if uniform(h) < p.missing_fraction {
        return None;
    }
    let (u1, u2) = (uniform(mix(h, 1)).max(1e-300), uniform(mix(h, 2)));
    let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    // A receiver's edge wanders ns, never a good part of a second: keep the edges in order.
    let jitter = (normal * p.jitter_ns).clamp(-1e8, 1e8);
    let edge = (second * NS_PER_S as u64) as f64 + p.offset_ns as f64 + jitter;
    Some(if rising { edge } else { edge + p.width_ns as f64 })
}

/// SplitMix64 of `seed` and `k`: per-second randomness independent of when it is asked for.
fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The first PPS input edge after true time `after` and not after `end`.
fn next_input(config: &SimConfig, after: f64, end: f64) -> Option<(f64, bool)> {
    config.pps_in.as_ref()?;
    let first = ((after / 1e9).floor() as u64).saturating_sub(1);
    let mut second = first;
    while (second as f64 - 1.0) * 1e9 <= end {
        let edge = [true, false]
            .into_iter()
            .filter_map(|rising| input_edge(config, second, rising).map(|t| (t, rising)))
            .filter(|(t, _)| *t > after && *t <= end)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if edge.is_some() {
            return edge;
        }
        second += 1;
    }
    None
}

enum Event {
    Target(usize),
    Toggle(usize),
    Input(bool),
}

/// The next pin event after the counter's state (at `s.last_t`) and not after `end`.
fn next_event(nic: &SimNic, s: &State, run: &Run, end: f64) -> Option<(f64, Event)> {
    let t0 = s.last_t as f64;
    let format = run.format;
    let at = |target_ns: u128| {
        format
            .units_until(s.counter.units, target_ns)
            .and_then(|need| s.counter.time_until(need, run))
            .map(|dt| t0 + dt)
            .filter(|t| *t <= end)
    };
    let mut best: Option<(f64, Event)> = None;
    let mut consider = |t: Option<f64>, event: Event| {
        if let Some(t) = t.filter(|t| best.as_ref().is_none_or(|(b, _)| t < b)) {
            best = Some((t, event));
        }
    };
    let tsauxc = reg(s, regs::TSAUXC);
    for x in 0..2 {
        if tsauxc & EN_TT[x] != 0 || s.pins.clock[x] == Clock::Armed {
            let (lo, hi) = TRGTTIM[x];
            consider(at(format.pair_ns(reg(s, lo), reg(s, hi))), Event::Target(x));
        }
        if let Clock::Running { next_ns, .. } = s.pins.clock[x] {
            consider(at(next_ns), Event::Toggle(x));
        }
    }
    if let Some((t, rising)) = next_input(&nic.config, s.pins.input_done, end) {
        consider(Some(t), Event::Input(rising));
    }
    best
}

/// A FREQOUT clock with more toggles before `end` than edges are kept skips the older ones.
fn skip_ahead(s: &mut State, run: &Run, end: f64) {
    let end_ns = run.format.ns(s.counter.value_after(end - s.last_t as f64, run));
    for (x, &freqout) in FREQOUT.iter().enumerate() {
        let half = reg(s, freqout) as u128;
        if let Clock::Running { start_ns, next_ns } = s.pins.clock[x] {
            let toggles = end_ns.saturating_sub(next_ns) / half.max(1);
            if toggles > EDGE_CAP as u128 {
                let skip = toggles - EDGE_CAP as u128;
                s.pins.clock[x] = Clock::Running { start_ns, next_ns: next_ns + skip * half };
                s.pins.clock_level[x] ^= skip % 2 == 1;
            }
        }
    }
}

/// A running FREQOUT clock whose next toggle is no longer within half a period ahead of SYSTIM
/// (software set or stepped the time) carries on in step with its start: toggles stay on
/// `start + k·FREQOUT` of SYSTIM, the level is that of the last one passed **[inference]**.
fn resync_clocks(nic: &SimNic, s: &mut State, format: Format) {
    let now = format.ns(s.counter.units);
    let before = levels(nic, s);
    for (x, &freqout) in FREQOUT.iter().enumerate() {
        let half = reg(s, freqout).max(1) as u128;
        if let Clock::Running { start_ns, next_ns } = s.pins.clock[x] {
            if now < start_ns || (next_ns > now && next_ns <= now + half) {
                continue;
            }
            let passed = (now - start_ns) / half + 1; // toggles at start, start + half, …
            s.pins.clock[x] = Clock::Running { start_ns, next_ns: start_ns + passed * half };
            s.pins.clock_level[x] = passed % 2 == 1;
        }
    }
    let after = levels(nic, s);
    record_changes(s, before, after, s.last_t as f64);
}

/// Delivers the pin events between the last advance and true time `t` (the counter runs as
/// `run` over the whole stretch, so each event's SYSTIM and true time follow from it).
pub(super) fn run_events(nic: &SimNic, s: &mut State, t: u64, run: &Run) {
    let end = t as f64;
    resync_clocks(nic, s, run.format);
    skip_ahead(s, run, end);
    while let Some((at, event)) = next_event(nic, s, run, end) {
        let before = levels(nic, s);
        match event {
            Event::Target(x) => {
                target_reached(nic, s, x);
                // A clock that just started may toggle more often than edges are kept.
                skip_ahead(s, run, end);
            }
            Event::Toggle(x) => {
                s.pins.clock_level[x] ^= true;
                if let Clock::Running { start_ns, next_ns } = s.pins.clock[x] {
                    let half = reg(s, FREQOUT[x]).max(1) as u128;
                    s.pins.clock[x] = Clock::Running { start_ns, next_ns: next_ns + half };
                }
            }
            Event::Input(rising) => {
                s.pins.input_done = at;
                let pin = nic.config.pps_in.as_ref().map_or(0, |p| p.sdp as usize);
                if !is_output(s, pin) {
                    s.pins.input_level = rising;
                    let stamp = s.counter.value_after(at - s.last_t as f64, run);
                    for chan in 0..2 {
                        if aux_pin(s, chan) == Some(pin) {
                            latch(s, run.format, chan, stamp);
                        }
                    }
                }
            }
        }
        let after = levels(nic, s);
        record_changes(s, before, after, at);
    }
}

fn target_reached(nic: &SimNic, s: &mut State, x: usize) {
    let tsauxc = reg(s, regs::TSAUXC);
    if tsauxc & EN_TT[x] != 0 {
        s.pins.target_level[x] ^= true;
        s.regs.insert(regs::TSAUXC, tsauxc & !EN_TT[x]);
        *s.regs.entry(regs::TSICR).or_default() |= TSICR_TT[x];
    }
    if s.pins.clock[x] == Clock::Armed {
        let half = reg(s, FREQOUT[x]) as u128;
        let (lo, hi) = TRGTTIM[x];
        let start = nic.format().pair_ns(reg(s, lo), reg(s, hi));
        s.pins.clock_level[x] ^= true;
        s.pins.clock[x] =
            if half == 0 { Clock::Off } else { Clock::Running { start_ns: start, next_ns: start + half } };
    }
}

/// Latches `units` into AUXSTMPx, unless the previous stamp has not been read (then it is lost).
fn latch(s: &mut State, format: Format, chan: usize, units: u128) {
    let tsauxc = reg(s, regs::TSAUXC);
    if tsauxc & AUTT_HELD[chan] != 0 {
        s.pins.aux_lost[chan] += 1;
        return;
    }
    let (_, lo, hi) = format.words(units);
    s.pins.aux[chan] = (lo, hi);
    s.regs.insert(regs::TSAUXC, tsauxc | AUTT_HELD[chan]);
    *s.regs.entry(regs::TSICR).or_default() |= TSICR_AUTT[chan];
}

/// SYS_WRAP: the i210's seconds ticked (its once-a-second rollover), the 82580's 40 bits wrapped.
pub(super) fn note_wrap(s: &mut State, format: Format, before: u128) {
    let after = s.counter.units;
    let wrapped = match format {
        Format::SecondsNs => format.words(before).2 != format.words(after).2,
        _ => after < before,
    };
    if wrapped {
        *s.regs.entry(regs::TSICR).or_default() |= TSICR_SYS_WRAP;
    }
}

/// Pin register reads (the simulation is already advanced to now).
pub(super) fn read(nic: &SimNic, s: &mut State, offset: usize) -> Option<u32> {
    for chan in 0..2 {
        let (lo, hi) = AUXSTMP[chan];
        if offset == lo {
            return Some(s.pins.aux[chan].0);
        }
        if offset == hi {
            // Reading the high word releases the latch for the next event.
            let tsauxc = reg(s, regs::TSAUXC);
            s.regs.insert(regs::TSAUXC, tsauxc & !AUTT_HELD[chan]);
            return Some(s.pins.aux[chan].1);
        }
    }
    match offset {
        regs::TSICR => {
            let value = reg(s, regs::TSICR);
            if nic.config.model != SimModel::I82580 {
                s.regs.insert(regs::TSICR, 0);
            }
            Some(value)
        }
        regs::CTRL | regs::CTRL_EXT => {
            let levels = levels(nic, s);
            let mut value = reg(s, offset);
            for (pin, &(r, data, _)) in SDP.iter().enumerate() {
                if r == offset {
                    value = if levels[pin] { value | data } else { value & !data };
                }
            }
            Some(value)
        }
        _ => None,
    }
}

/// Pin register writes (the simulation is already advanced to now).
pub(super) fn write(nic: &SimNic, s: &mut State, offset: usize, value: u32) -> bool {
    let now = s.last_t.max(nic.time.now_ns()) as f64;
    match offset {
        regs::TSICR => {
            let old = reg(s, regs::TSICR);
            s.regs.insert(regs::TSICR, old & !value);
        }
        regs::TSAUXC => {
            let old = reg(s, regs::TSAUXC);
            // The "taken" bits are the hardware's; sample requests act once.
            let mut new = (value & !(AUTT_HELD[0] | AUTT_HELD[1])) | (old & (AUTT_HELD[0] | AUTT_HELD[1]));
            for x in 0..2 {
                if value & SAMP_AUT[x] != 0 {
                    let (_, lo, hi) = nic.format().words(s.counter.units);
                    s.pins.aux[x] = (lo, hi);
                    new &= !SAMP_AUT[x];
                }
                let both = EN_CLK[x] | ST[x];
                if !nic.config.model.has_freqout() || new & EN_CLK[x] == 0 {
                    s.pins.clock[x] = Clock::Off;
                } else if new & both == both && (old & both != both || s.pins.clock[x] == Clock::Off) {
                    s.pins.clock[x] = Clock::Armed;
                }
            }
            let before = levels(nic, s);
            s.regs.insert(regs::TSAUXC, new);
            let after = levels(nic, s);
            record_changes(s, before, after, now);
        }
        regs::CTRL | regs::CTRL_EXT | regs::TSSDP => {
            let before = levels(nic, s);
            s.regs.insert(offset, value);
            let after = levels(nic, s);
            record_changes(s, before, after, now);
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::counter::Counter;
    use super::*;

    #[test]
    fn pps_input_edges_are_seeded_per_second_and_missing_ones_are_absent() {
        let config = SimConfig {
            pps_in: Some(PpsInput { jitter_ns: 20.0, missing: vec![3], ..PpsInput::default() }),
            ..SimConfig::ideal()
        };
        let e1 = input_edge(&config, 1, true).unwrap();
        assert!((e1 - 1e9).abs() < 200.0, "{e1}");
        assert_eq!(input_edge(&config, 1, true), Some(e1), "the same whenever asked");
        assert_eq!(input_edge(&config, 1, false), Some(e1 + 1e8));
        assert_eq!(input_edge(&config, 3, true), None);
        assert_eq!(
            next_input(&config, 2.5e9, 10e9).map(|(t, r)| ((t / 1e9).round() as i64, r)),
            Some((4, true))
        );
    }

    #[test]
    fn counter_reaches_a_target_at_the_right_tick() {
        let run = Run { format: Format::SecondsNs, period_true_ns: 8.0, increment: 8 << 32 };
        let c = Counter { units: 0, phase: 0.0 };
        let need = Format::SecondsNs.units_until(0, 1_000).unwrap();
        assert_eq!(c.time_until(need, &run), Some(1_000.0));
    }
}

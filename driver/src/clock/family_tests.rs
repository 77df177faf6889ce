//! The disciplined clock on the 82580/i350 and i210 families, against the register fakes: latch
//! order and bracket, counting enabled at start, the 40-bit wrap, ISGN rate writes, the i210's
//! read-add-write step with its lost interval, and stamps/targets converted both ways.

use std::sync::Arc;

use super::fake::FakeNic;
use super::*;
use crate::model::{model, INTEL};
use crate::regs;
use crate::timesource::{TimeSource, VirtualTime};

fn clock(device: u16, access_ns: u64) -> (Arc<VirtualTime>, Arc<FakeNic>, Phc<Arc<FakeNic>>) {
    let time = VirtualTime::new();
    let m = model(INTEL, device).unwrap();
    let nic = FakeNic::new(m.family, time.clone(), access_ns);
    let phc = Phc::init(nic.clone(), m, Quirks::empty(), Steering::Hardware, time.clone()).unwrap();
    (time, nic, phc)
}

#[test]
fn igb_families_start_counting_and_latch_on_systimr_inside_the_bracket() {
    for device in [0x1521, 0x1533] {
        let (_time, nic, phc) = clock(device, 100);
        assert_eq!(nic.read32(regs::TSAUXC) & regs::TSAUXC_DISABLE, 0, "TSAUXC bit 31 cleared");
        assert_eq!(nic.read32(regs::TIMINCA), 0, "nominal rate");
        let before = nic.log().len();
        let mut order = vec![];
        let log = nic.clone();
        phc.read_raw_bracketed(|edge| order.push((edge, log.log().len()))).unwrap();
        let reads: Vec<usize> = nic.log()[before..].iter().map(|(_, offset)| *offset).collect();
        assert_eq!(&reads[..3], &[regs::SYSTIMR, regs::SYSTIML, regs::SYSTIMH], "{device:#x}");
        // The bracket holds exactly the SYSTIMR read.
        assert_eq!(order, vec![(Edge::Before, before), (Edge::After, before + 1)]);
    }
}

#[test]
fn e82580_forty_bit_wrap_is_crossed_without_a_step() {
    let (time, nic, mut phc) = clock(0x1521, 0);
    nic.set_counter_ns((1 << 40) - 1_000_000);
    let t0 = phc.now().unwrap();
    for _ in 0..4 {
        time.advance(1_000_000);
        let t = phc.now().unwrap();
        assert!(t > t0);
    }
    assert!(nic.counter_ns() >= 1 << 40, "the hardware counter went past 2^40 (its register wrapped)");
    assert_eq!(phc.now().unwrap() - t0, Nanos(4_000_000), "4 ms across the wrap, no step");
}

#[test]
fn isgn_rate_writes_reach_timinca() {
    let (_time, nic, mut phc) = clock(0x1521, 0);
    assert_eq!(phc.set_frequency(Ppb(-1000.0)).unwrap(), None);
    assert_eq!(nic.read32(regs::TIMINCA), 0x8000_8637);
    // Clamped to the family's maximum (a fresh clock: no sub-LSB remainder carried).
    let (_time, nic, mut phc) = clock(0x1521, 0);
    phc.set_frequency(Ppb(1e9)).unwrap();
    assert_eq!(nic.read32(regs::TIMINCA), 0x7FFF_FFDD);
}

#[test]
fn i210_steps_by_read_add_write_and_learns_the_lost_interval() {
    // Every register access takes 300 ns: the read-add-write loses the time between its latching
    // read and its SYSTIMH write.
    let (time, nic, mut phc) = clock(0x1533, 300);
    assert!(phc.steps_in_hardware() && phc.capabilities().direct_set);
    nic.set_counter_ns(5 * 1_000_000_000 + 999_999_000);
    time.advance(1_000);
    // (disciplined − host, counter − host) at the instant SYSTIMR latches (the fake counts
    // before it answers, so the After stamp is that instant).
    let offsets = |phc: &mut Phc<Arc<FakeNic>>| {
        let (_, raw, at) = phc.read_raw_bracketed(|_| time.now_ns() as i128).unwrap();
        (phc.time_at(raw).0 - at, phc.ops().ns_of(raw).0 - at)
    };
    let mut errors = vec![];
    for _ in 0..3 {
        let (d0, c0) = offsets(&mut phc);
        assert_eq!(phc.step(Nanos(250_000)).unwrap(), None);
        let (d1, c1) = offsets(&mut phc);
        // The disciplined time moved by the step exactly, whatever the hardware did.
        assert!((d1 - d0 - 250_000).abs() <= 1, "disciplined moved {}", d1 - d0);
        errors.push(c1 - c0 - 250_000);
    }
    assert!(errors[0] < -300, "the first step loses its read-to-write interval: {errors:?}");
    assert_eq!(errors[1], 0, "later steps add the measured interval: {errors:?}");
    assert_eq!(errors[2], 0, "{errors:?}");
    assert!(phc.step_lost_ns() > 0);
    // SYSTIML is written before SYSTIMH.
    let writes: Vec<usize> = nic
        .log()
        .iter()
        .filter(|(op, o)| *op == 'w' && [regs::SYSTIML, regs::SYSTIMH].contains(o))
        .map(|x| x.1)
        .collect();
    assert_eq!(&writes[..2], &[regs::SYSTIML, regs::SYSTIMH]);
}

#[test]
fn i210_set_puts_tai_in_the_registers() {
    let (_time, nic, mut phc) = clock(0x1533, 0);
    let tai = Nanos(1_767_225_637_000_000_123);
    phc.set(tai).unwrap();
    let counter = nic.counter_ns() as i128;
    assert!((counter - tai.0).abs() <= 1, "the NIC itself holds TAI: {counter}");
    assert!((phc.now().unwrap() - tai).0.abs() <= 1);
}

fn round_trip<R: RegisterAccess>(phc: &mut Phc<R>, label: &str) {
    let now = phc.now().unwrap();
    // A target 1 s ahead (on the 82580 set up here: across the 40-bit wrap) converts back to itself.
    for ahead in [1, 1_000, 1_000_000_000] {
        let target = now + Nanos(ahead);
        let raw = phc.ns_to_raw(target);
        let back = phc.raw_to_ns(raw);
        assert!((back - target).0.abs() <= 1, "{label}: {target:?} -> {raw} -> {back:?}");
        let (lo, hi) = phc.target_regs(target);
        assert_eq!(phc.stamp_to_ns(lo, hi), back, "{label}: through the register words");
    }
}

#[test]
fn stamps_and_targets_convert_both_ways() {
    for device in [0x1521, 0x1533] {
        let (_time, nic, mut phc) = clock(device, 0);
        nic.set_counter_ns((1 << 40) - 500);
        round_trip(&mut phc, &format!("{device:#x}"));
    }
    // 82576 in software steering: the timecounter's rate and carry take part.
    let time = VirtualTime::new();
    let nic = Arc::new(crate::sim::SimNic::new(crate::sim::SimConfig::ideal(), time.clone()));
    let m = model(INTEL, 0x10C9).unwrap();
    let mut phc = Phc::init(nic, m, Quirks::empty(), Steering::Software, time.clone()).unwrap();
    phc.set_frequency(Ppb(1000.0)).unwrap();
    phc.step(Nanos(1_000_000_000)).unwrap();
    time.advance(10_000_000);
    round_trip(&mut phc, "82576");
}

/// An 82574 whose SYSTIMH reads come back with a bad bit now and then (the erratum), seeded.
struct BadBits {
    nic: Arc<crate::sim::SimNic>,
    reads: std::cell::Cell<u32>,
    served_bad: std::cell::Cell<u32>,
}

impl RegisterAccess for BadBits {
    fn len(&self) -> usize {
        self.nic.len()
    }
    fn presence(&self) -> Option<nicclock_uio::Presence> {
        self.nic.presence()
    }
    fn read32(&self, offset: usize) -> u32 {
        let value = self.nic.read32(offset);
        if offset != regs::SYSTIMH {
            return value;
        }
        let n = self.reads.get() + 1;
        self.reads.set(n);
        // Every 7th SYSTIMH read: one of bits 3..10 flipped (2^35..2^42 ticks: 131 µs..4.6 h).
        if n % 7 == 0 {
            self.served_bad.set(self.served_bad.get() + 1);
            value ^ 1 << (3 + n % 8)
        } else {
            value
        }
    }
    fn write32(&self, offset: usize, value: u32) {
        self.nic.write32(offset, value)
    }
}

#[test]
fn e82574_bad_bits_never_reach_the_timecounter() {
    let time = VirtualTime::new();
    let config = crate::sim::SimConfig {
        model: crate::sim::SimModel::I82574,
        read_latency_ns: 300,
        ..crate::sim::SimConfig::ideal()
    };
    let nic = Arc::new(crate::sim::SimNic::new(config, time.clone()));
    let bad = BadBits { nic: nic.clone(), reads: 0.into(), served_bad: 0.into() };
    let m = model(INTEL, 0x10D3).unwrap();
    let mut phc = Phc::init(bad, m, Quirks::empty(), Steering::Hardware, time.clone()).unwrap();
    let t0 = phc.now().unwrap();
    let n0 = nic.truth().nic_ns as i128;
    for k in 1..=500u64 {
        time.advance(1_000_000 + k * 37);
        let t = phc.now().unwrap();
        let truth = nic.truth().nic_ns as i128;
        assert!(
            ((t - t0).0 - (truth - n0)).abs() < 5_000,
            "read {k}: clock {:?} vs truth {}",
            t - t0,
            truth - n0
        );
    }
    assert!(phc.regs().served_bad.get() > 100, "bad reads were served: {}", phc.regs().served_bad.get());
}

#[test]
fn the_discipline_loop_locks_the_igb_families_unchanged() {
    use crate::discipline::{Discipline, DisciplineConfig, Step};
    use crate::scenario::{VirtualHost, EPOCH_TAI_NS};
    use crate::servo::{Servo, ServoConfig, ServoKind};
    for device in [0x1521, 0x1533] {
        let (time, nic, phc) = clock(device, 200);
        nic.set_freq_error_ppm(50.0);
        if device == 0x1521 {
            // The 40-bit counter wraps 20 s into the run, long after the first step.
            nic.set_counter_ns((1 << 40) - 20_000_000_000);
        }
        let mut late_steps = 0;
        let config = DisciplineConfig::default();
        let mut d = Discipline::new(phc, Servo::new(ServoKind::Pi, ServoConfig::default()), config);
        let host = VirtualHost { time: time.clone() };
        let mut last = None;
        for k in 1..=300u64 {
            if let Step::Updated(u) = d.update(&host).unwrap() {
                if k > 100 {
                    late_steps += u.events.iter().filter(|e| e.0 == nicclock::EventKind::Step).count();
                }
                last = Some(u);
            }
            time.wait_until(time.now_ns().max(k * config.interval_ns));
        }
        let u = last.unwrap();
        assert_eq!(u.status, nicclock::Status::Locked, "{device:#x}: {}", u.log_line());
        assert!(u.measurement.offset_ns.abs() < 1_000, "{device:#x}: {}", u.log_line());
        assert_eq!(late_steps, 0, "{device:#x}: no step once locked (82580: across the wrap)");
        if device == 0x1521 {
            assert!(nic.counter_ns() > 1 << 40, "the 40-bit counter wrapped during the run");
        }
        if device == 0x1533 {
            // The i210 holds TAI in its own registers (the first step was a read-add-write).
            let off = nic.counter_ns() as i128 - (EPOCH_TAI_NS + time.now_ns()) as i128;
            assert!(off.abs() < 10_000, "i210 registers {off} ns from TAI");
        }
    }
}

/// A read that calls its argument at each bracket edge.
type StampedRead<'a> = dyn FnMut(&mut dyn FnMut(Edge)) + 'a;

/// The bracketed read a PHC takes inline for a family with a [`Latch`] is that family's own read:
/// the same registers in the same order, the stamps around the same one (and a family without
/// one, the 82574 with its re-reads, goes through its ops).
#[test]
fn an_inline_latched_read_is_the_familys_own_read() {
    for device in [0x10C9u16, 0x1521, 0x1533, 0x10D3] {
        let (_time, nic, phc) = clock(device, 100);
        let family_ops = ops(model(INTEL, device).unwrap(), Quirks::empty());
        let trace = |read: &mut StampedRead| {
            let start = nic.log().len();
            let mut stamps = vec![];
            read(&mut |edge| stamps.push((edge, nic.log().len() - start)));
            let reads: Vec<usize> = nic.log()[start..].iter().map(|(_, offset)| *offset).collect();
            (reads, stamps)
        };
        let own = trace(&mut |edge| {
            family_ops.read(&*nic, edge);
        });
        let inline = trace(&mut |edge| {
            phc.read_raw_bracketed(&mut *edge).unwrap();
        });
        assert_eq!(inline, own, "device {device:#x} (latch {:?})", family_ops.latch());
        assert_eq!(family_ops.latch().is_some(), device != 0x10D3, "{device:#x}");
    }
}

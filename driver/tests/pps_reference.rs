//! `--reference pps:SDPn` on virtual time: a simulated NIC whose aux stamp 0 latches SYSTIM at
//! each true second (with jitter), a system clock 30 ms wrong. The clock locks to the pulses, not
//! the system clock; missing pulses are HOLDOVER with PULSE_MISSED events and no step; pulses
//! coming back bring LOCKING/LOCKED again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use nicclock::{CounterKind, EventKind, ReferenceKind, Status};
use nicclock_driver::discipline::{Discipline, DisciplineConfig, Step};
use nicclock_driver::measure::Host;
use nicclock_driver::model::Family;
use nicclock_driver::model::{model, Quirks, INTEL};
use nicclock_driver::phc::{Nanos, Phc, RawTime, Steering};
use nicclock_driver::pins::Sdp;
use nicclock_driver::pps::PpsConfig;
use nicclock_driver::reference::{drive, Pins, PinsReport, PpsStep};
use nicclock_driver::regs;
use nicclock_driver::scenario::EPOCH_TAI_NS;
use nicclock_driver::servo::{Servo, ServoConfig, ServoKind};
use nicclock_driver::sim::{SimConfig, SimNic};
use nicclock_driver::timesource::{TimeSource, VirtualTime};
use nicclock_uio::RegisterAccess;

/// The simulated 82576 clock plus a register-level aux stamp 0 and TSICR (the pins' registers
/// are stored; stamps use SYSTIM's own format, as on every family).
struct PulsedNic {
    nic: Arc<SimNic>,
    aux: Mutex<Option<(u32, u32)>>,
    tsicr: AtomicU32,
    pins: Mutex<HashMap<usize, u32>>,
}

impl PulsedNic {
    /// A PPS edge now, stamped `jitter_ns` off (lost if the last stamp was not read yet).
    fn pulse(&self, jitter_ns: i64) {
        let mut aux = self.aux.lock().unwrap();
        if aux.is_none() {
            let raw = self.nic.truth().raw.wrapping_add_signed(jitter_ns << 19);
            *aux = Some((raw as u32, (raw >> 32) as u32));
            self.tsicr.fetch_or(regs::TSINTR_AUTT0, Ordering::SeqCst);
        }
    }
}

impl RegisterAccess for PulsedNic {
    fn len(&self) -> usize {
        self.nic.len()
    }
    fn read32(&self, offset: usize) -> u32 {
        match offset {
            regs::TSICR => self.tsicr.swap(0, Ordering::SeqCst),
            regs::AUXSTMPL0 => self.aux.lock().unwrap().map_or(0, |a| a.0),
            // Reading the high word re-arms the capture.
            regs::AUXSTMPH0 => self.aux.lock().unwrap().take().map_or(0, |a| a.1),
            regs::CTRL | regs::CTRL_EXT | regs::TSSDP | regs::TSAUXC | regs::TSIM => {
                self.pins.lock().unwrap().get(&offset).copied().unwrap_or(0)
            }
            _ => self.nic.read32(offset),
        }
    }
    fn write32(&self, offset: usize, value: u32) {
        match offset {
            regs::CTRL | regs::CTRL_EXT | regs::TSSDP | regs::TSAUXC | regs::TSIM | regs::TSICR => {
                self.pins.lock().unwrap().insert(offset, value);
            }
            _ => self.nic.write32(offset, value),
        }
    }
}

/// Virtual time whose system clock is 30 ms ahead of the truth.
struct WrongSystemClock {
    time: Arc<VirtualTime>,
}

const SYSTEM_CLOCK_ERROR_NS: u64 = 30_000_000;

impl Host for WrongSystemClock {
    fn counter_kind(&self) -> CounterKind {
        CounterKind::MonotonicRaw
    }
    fn counter(&self) -> u64 {
        self.time.now_ns()
    }
    fn reference_ns(&self) -> u64 {
        EPOCH_TAI_NS + self.time.now_ns() + SYSTEM_CLOCK_ERROR_NS
    }
    fn ns_per_tick(&self) -> (f64, f64) {
        (1.0, 0.0)
    }
}

/// A simulated NIC with pulses on its pins and the discipline loop on it, updating once a second.
fn pulsed_setup() -> (Arc<VirtualTime>, Arc<SimNic>, Arc<PulsedNic>, Discipline<Arc<PulsedNic>>) {
    let time = VirtualTime::new();
    let nic = Arc::new(SimNic::new(SimConfig::default(), time.clone()));
    let regs = Arc::new(PulsedNic {
        nic: nic.clone(),
        aux: Mutex::new(None),
        tsicr: AtomicU32::new(0),
        pins: Mutex::new(HashMap::new()),
    });
    let m = model(INTEL, 0x10C9).unwrap();
    let phc = Phc::init(regs.clone(), m, Quirks::empty(), Steering::Hardware, time.clone()).unwrap();
    let config = DisciplineConfig { interval_ns: 1_000_000_000, ..DisciplineConfig::default() };
    let discipline = Discipline::new(phc, Servo::new(ServoKind::Pi, ServoConfig::default()), config);
    (time, nic, regs, discipline)
}

#[test]
fn the_clock_follows_the_pulses_holds_over_without_them_and_relocks() {
    let (time, nic, regs, mut discipline) = pulsed_setup();
    let host = WrongSystemClock { time: time.clone() };
    let sdp = "SDP1".parse::<Sdp>().unwrap();
    let mut pins =
        Pins::start(&*regs, Family::I210, None, Some((sdp, PpsConfig::default())), host.reference_ns());
    assert_eq!(regs.read32(regs::TSSDP), 1 | regs::TSSDP_AUX0_TS_SDP_EN, "aux 0 reads SDP1");
    assert!(pins.is_reference());

    // Pulses at every true second but 61, 62 and 63; ±20 ns of jitter.
    let missing = 61..=63u64;
    let mut seed = 12345u64;
    let mut inject = |t: u64| {
        let second = t / 1_000_000_000;
        // The igb stamps both edges: the leading one on the second, the trailing one 100 ms later
        // (each read at the poll right after it).
        let phase = t % 1_000_000_000;
        if phase < 200_000_000 && second > 0 && !missing.contains(&second) {
            time.wait_until(second * 1_000_000_000 + phase / 100_000_000 * 100_000_000);
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            regs.pulse((seed >> 33) as i64 % 41 - 20);
        }
    };
    let mut log: Vec<(u64, PinsReport)> = Vec::new();
    type Loop = Discipline<Arc<PulsedNic>>;
    let mut run_until =
        |until_s: u64, d: &mut Loop, log: &mut Vec<(u64, PinsReport)>, inject: &mut dyn FnMut(u64)| {
            drive(&mut pins, d, &host, &*time, until_s * 1_000_000_000, inject, |t, r, system| {
                assert!(system.is_none(), "the PPS input is the reference: no system-clock updates");
                log.push((t, r.clone()))
            })
            .unwrap();
        };
    let status_of = |r: &PinsReport| match r.pps.as_ref() {
        Some(PpsStep::Used { step: Step::Updated(u), .. }) => Some(u.status),
        Some(PpsStep::Missed { update: u, .. }) => Some(u.status),
        _ => None,
    };
    let steps = |log: &[(u64, PinsReport)]| {
        log.iter()
            .filter(|(_, r)| {
                matches!(r.pps.as_ref(), Some(PpsStep::Used { step: Step::Updated(u), .. })
                    if u.events.iter().any(|e| e.0 == EventKind::Step))
            })
            .count()
    };

    // One minute of pulses: locked to them.
    run_until(60, &mut discipline, &mut log, &mut inject);
    assert!(log.iter().all(|(_, r)| r.out.is_none()), "no output configured");
    let statuses: Vec<Status> = log.iter().filter_map(|(_, r)| status_of(r)).collect();
    assert!(statuses.len() >= 55, "one update per pulse: {}", statuses.len());
    assert_eq!(statuses.last(), Some(&Status::Locked), "{statuses:?}");
    assert_eq!(steps(&log), 1, "one step, at the first pulse (the NIC started at 0)");
    assert!(!log.iter().any(|(_, r)| matches!(r.pps, Some(PpsStep::Missed { .. }))), "no pulse missed");
    let count = |log: &[(u64, PinsReport)], f: fn(&PpsStep) -> bool| {
        log.iter().filter(|(_, r)| r.pps.as_ref().is_some_and(f)).count()
    };
    // Each used pulse says what the system clock read at the NIC read (an NTP SHM's receive time),
    // and the page's time is inside its error bound of the true time.
    let mut locked_errors = Vec::new();
    for (_, r) in &log {
        if let Some(PpsStep::Used { step: Step::Updated(u), system_ns }) = &r.pps {
            let system_error = *system_ns as i128 - (EPOCH_TAI_NS + u.measurement.counter) as i128;
            assert!((system_error - SYSTEM_CLOCK_ERROR_NS as i128).abs() < 10_000, "{system_error}");
            let s = &u.snapshot;
            assert_eq!(s.reference.kind, ReferenceKind::Pps, "the page names its reference");
            let page_error = s.anchor_tai_ns as i128 - (EPOCH_TAI_NS + s.counter_value) as i128;
            if s.status != Status::Unsynchronized {
                assert!(
                    page_error.unsigned_abs() as u64 <= s.error_bound_ns,
                    "{page_error} ns outside {s:?}"
                );
            }
            if s.status == Status::Locked {
                locked_errors.push(page_error as f64);
            }
        }
    }
    let rms = |e: &[f64]| (e.iter().map(|e| e * e).sum::<f64>() / e.len() as f64).sqrt();
    let tail = &locked_errors[locked_errors.len().saturating_sub(30)..];
    eprintln!(
        "page vs true time while LOCKED: RMS {:.1} ns over {} updates, {:.1} ns over the last 30",
        rms(&locked_errors),
        locked_errors.len(),
        rms(tail)
    );
    assert_eq!(count(&log, |p| matches!(p, PpsStep::FirstEdge)), 1, "the edge at 1 s");
    assert_eq!(count(&log, |p| matches!(p, PpsStep::TrailingEdge)), 59, "1.1 s to 59.1 s");
    assert_eq!(count(&log, |p| matches!(p, PpsStep::Outlier { .. } | PpsStep::Duplicate)), 0);
    let true_offset = |discipline: &mut Loop| {
        let truth = nic.truth();
        (discipline.phc_mut().time_at(RawTime(truth.raw)) - Nanos((EPOCH_TAI_NS + truth.true_ns) as i128))
            .as_i64()
    };
    let offset = true_offset(&mut discipline);
    assert!(offset.abs() < 1_000, "the NIC follows the pulses, not the system clock 30 ms off: {offset} ns");

    // Pulses 61..63 missing: HOLDOVER with one PULSE_MISSED event per missed pulse, no step.
    log.clear();
    run_until(64, &mut discipline, &mut log, &mut inject);
    let mut bounds = Vec::new();
    let missed: Vec<(u64, u64)> = log
        .iter()
        .filter_map(|(t, r)| match &r.pps {
            Some(PpsStep::Missed { in_a_row, update: u }) => {
                assert_eq!(u.status, Status::Holdover);
                assert_eq!(u.snapshot.status, Status::Holdover);
                assert_eq!(u.snapshot.reference.kind, ReferenceKind::Pps);
                let want =
                    if *in_a_row == 3 { vec![] } else { vec![(EventKind::PulseMissed, *in_a_row as i64)] };
                assert_eq!(u.events, want, "an event for the 1st, 2nd, 4th… missed pulse");
                // Re-anchored now (the page stays fresh), the truth inside the grown bound.
                let s = &u.snapshot;
                assert!(
                    (*t..*t + 1_000_000).contains(&s.counter_value),
                    "anchored at the poll (reads take µs)"
                );
                let error = s.tai_at(s.counter_value) - (EPOCH_TAI_NS + s.counter_value) as i128;
                assert!(error.unsigned_abs() as u64 <= s.error_bound_ns, "{error} ns outside {s:?}");
                bounds.push(s.error_bound_ns);
                Some((*t / 100_000_000, *in_a_row))
            }
            _ => None,
        })
        .collect();
    // A pulse is missed half a second after its second by the system clock (30 ms ahead): at the
    // polls at 61.5, 62.5 and 63.5 s of true time.
    assert_eq!(missed, vec![(615, 1), (625, 2), (635, 3)]);
    assert!(bounds.windows(2).all(|w| w[0] < w[1]), "the bound grows in holdover: {bounds:?}");
    eprintln!("true offset at 60 s {offset} ns; holdover bounds {bounds:?} ns");
    assert_eq!(steps(&log), 0);

    // Pulses again from 64 s: LOCKING or LOCKED at once, LOCKED soon, still no step.
    log.clear();
    run_until(80, &mut discipline, &mut log, &mut inject);
    let statuses: Vec<Status> = log.iter().filter_map(|(_, r)| status_of(r)).collect();
    assert!(matches!(statuses[0], Status::Locking | Status::Locked), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&Status::Locked), "{statuses:?}");
    assert_eq!(steps(&log), 0);
    let offset = true_offset(&mut discipline);
    assert!(offset.abs() < 1_000, "back on the pulses: {offset} ns");
}

#[test]
fn without_a_pps_reference_drive_updates_from_the_system_clock_at_the_configured_interval() {
    let time = VirtualTime::new();
    let nic = Arc::new(SimNic::new(SimConfig::default(), time.clone()));
    let m = model(INTEL, 0x10C9).unwrap();
    let phc = Phc::init(nic.clone(), m, Quirks::empty(), Steering::Hardware, time.clone()).unwrap();
    let config = DisciplineConfig { interval_ns: 500_000_000, ..DisciplineConfig::default() };
    let mut discipline = Discipline::new(phc, Servo::new(ServoKind::Pi, ServoConfig::default()), config);
    let host = WrongSystemClock { time: time.clone() };
    let mut pins = Pins::start(&*nic, Family::I210, None, None, host.reference_ns());
    assert!(!pins.is_reference());
    let mut updates = Vec::new();
    drive(
        &mut pins,
        &mut discipline,
        &host,
        &*time,
        30_000_000_000,
        |_| {},
        |t, r, system| {
            assert!(r.out.is_none() && r.pps.is_none());
            if let Some(Step::Updated(u)) = system {
                assert_eq!(u.snapshot.reference.kind, ReferenceKind::SystemClock);
                updates.push((t, u.status));
            }
        },
    )
    .unwrap();
    assert_eq!(updates.len(), 60, "every 500 ms for 30 s");
    assert_eq!(updates[0].0, 500_000_000);
    assert_eq!(updates.last().map(|u| u.1), Some(Status::Locked));
    // Locked to the system clock this time, 30 ms off the truth.
    let truth = nic.truth();
    let offset =
        (discipline.phc_mut().time_at(RawTime(truth.raw)) - Nanos((EPOCH_TAI_NS + truth.true_ns) as i128)).0;
    assert!((offset - SYSTEM_CLOCK_ERROR_NS as i128).abs() < 1_000, "{offset}");
}

#[test]
fn without_any_pulse_the_page_is_unsynchronized_with_pulse_missed_events() {
    let (time, _nic, regs, mut discipline) = pulsed_setup();
    let host = WrongSystemClock { time: time.clone() };
    let sdp = Sdp::new(0).unwrap();
    let mut pins =
        Pins::start(&*regs, Family::E82580, None, Some((sdp, PpsConfig::default())), host.reference_ns());
    let mut missed = Vec::new();
    drive(
        &mut pins,
        &mut discipline,
        &host,
        &*time,
        5_000_000_000,
        |_| {},
        |t, r, _| match r.pps.as_ref() {
            Some(PpsStep::Missed { in_a_row, update }) => {
                assert_eq!(update.status, Status::Unsynchronized);
                assert_eq!(update.snapshot.error_bound_ns, u64::MAX, "no bound before any pulse");
                assert_eq!(update.snapshot.reference.kind, ReferenceKind::Pps);
                let want =
                    if *in_a_row == 3 { vec![] } else { vec![(EventKind::PulseMissed, *in_a_row as i64)] };
                assert_eq!(update.events, want);
                assert!((t..t + 1_000_000).contains(&update.snapshot.counter_value));
                missed.push(*in_a_row);
            }
            Some(PpsStep::Waiting) => {}
            other => panic!("at {t}: {other:?}"),
        },
    )
    .unwrap();
    // Started at 0 (system clock 30 ms ahead): the pulses of 1..4 s are each missed once.
    assert_eq!(missed, vec![1, 2, 3, 4]);
    assert_eq!(discipline.status(), Status::Unsynchronized, "the servo never ran");
}

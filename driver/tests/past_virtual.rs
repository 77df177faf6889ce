//! Past timestamps with the truth known: the discipline on a simulated 82576 in virtual time
//! publishes through the real Writer (driver/src/publish.rs) into a page; frames are stamped with
//! the counter (virtual CLOCK_MONOTONIC_RAW ns, whose true TAI is EPOCH_TAI_NS + counter); a jump
//! of the oscillator's frequency makes the servo step the clock and change its frequency. Frames
//! converted later by the reader (`Clock::convert`, through the page's history) are each within
//! their bound of the truth; frames stamped before the step are refused (BeforeDisruption), never
//! converted with the mapping of either side.

#[path = "../../userspace/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{identity, PageDir};
use nicclock::{Clock, Error, Past, Writer};
use nicclock_driver::discipline::{Discipline, DisciplineConfig, Step};
use nicclock_driver::model::{model, Quirks, INTEL};
use nicclock_driver::phc::{Phc, Steering};
use nicclock_driver::publish::publish;
use nicclock_driver::scenario::{VirtualHost, EPOCH_TAI_NS};
use nicclock_driver::servo::{Servo, ServoConfig, ServoKind};
use nicclock_driver::sim::{SimConfig, SimNic};
use nicclock_driver::timesource::{TimeSource, VirtualTime};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;
/// The oscillator jumps from +100 ppm to +400 ppm here: 30 µs off per 100 ms update, beyond the
/// servo's 10 µs step threshold.
const JUMP_AT: u64 = 40 * SEC;

struct Tally {
    converted: usize,
    refused_before_step: usize,
    worst_share: f64,
    within_estimate: usize,
}

#[test]
fn frames_convert_within_their_bound_of_the_truth_and_those_before_a_step_are_refused() {
    let time = VirtualTime::new();
    let sim = SimConfig { freq_steps: vec![(JUMP_AT, 400.0)], ..SimConfig::default() };
    let nic = Arc::new(SimNic::new(sim.clone(), time.clone()));
    let m = model(INTEL, sim.model.device_id()).unwrap();
    let phc = Phc::init(nic, m, Quirks::empty(), Steering::Hardware, time.clone()).unwrap();
    let servo =
        Servo::new(ServoKind::Pi, ServoConfig { step_threshold_ns: 10_000.0, ..ServoConfig::default() });
    let config = DisciplineConfig::default();
    let mut discipline = Discipline::new(phc, servo, config);
    let host = VirtualHost { time: time.clone() };
    let dir = PageDir::new("past-virtual");
    let mut w = Writer::create(&dir.options("sim"), &identity()).unwrap();
    let mut clock: Option<Clock> = None;

    let interval = config.interval_ns;
    let mut frames: Vec<u64> = Vec::new();
    let mut steps_at = Vec::new();
    let mut t = Tally { converted: 0, refused_before_step: 0, worst_share: 0.0, within_estimate: 0 };
    for k in 1..=(60 * SEC / interval) {
        if let Step::Updated(u) = discipline.update(&host).unwrap() {
            if u.events.iter().any(|(kind, _)| *kind == nicclock::EventKind::Step) {
                steps_at.push(time.now_ns());
            }
            publish(&mut w, &u);
        }
        let clock = clock.get_or_insert_with(|| Clock::open_in(&dir.path, "sim").unwrap());
        // A frame every 50 ms from 20 s on (captured between updates, converted later).
        let frame_at = (k - 1) * interval + interval / 2;
        time.wait_until(frame_at);
        if frame_at >= 20 * SEC {
            frames.push(time.now_ns());
        }
        time.wait_until(k * interval);
        // Every second, convert each frame the page's history holds (older than the newest
        // update's anchor, at most 12 s old).
        if k % 10 != 0 {
            continue;
        }
        let anchor = w.page().clock.counter_value.load(std::sync::atomic::Ordering::Relaxed);
        let step = steps_at.last().copied().filter(|&s| s > 20 * SEC);
        for &f in frames.iter().filter(|&&f| f < anchor && f + 12 * SEC > time.now_ns()) {
            let truth = EPOCH_TAI_NS + f;
            match clock.convert(Past::Counter(f)) {
                Ok(r) => {
                    assert!(
                        step.is_none_or(|s| f >= s),
                        "frame at {f} before the step at {step:?} converted: {r:?}"
                    );
                    let miss = r.time_ns.abs_diff(truth);
                    assert!(
                        miss <= r.error_bound_ns(),
                        "frame at {} s: {miss} ns from the truth, bound {} ns ({r:?})",
                        f as f64 / 1e9,
                        r.error_bound_ns()
                    );
                    assert!(r.estimated_error_ns() <= r.error_bound_ns());
                    t.converted += 1;
                    t.within_estimate += usize::from(miss <= r.estimated_error_ns());
                    t.worst_share = t.worst_share.max(miss as f64 / r.error_bound_ns() as f64);
                }
                Err(Error::BeforeDisruption { .. }) => {
                    // Refused: stamped before the step, or in the update interval it happened in.
                    let s = step.expect("refused with no step since 20 s");
                    assert!(f < s, "frame at {f} after the step at {s} refused");
                    t.refused_before_step += 1;
                }
                Err(e) => panic!("frame at {} s (now {} s): {e}", f as f64 / 1e9, time.now_ns() as f64 / 1e9),
            }
        }
    }
    eprintln!(
        "steps at {:?} s; {} conversions ({} within the estimated error), {} refused before the step, \
         worst |error| / bound {:.2}",
        steps_at.iter().map(|s| *s as f64 / 1e9).collect::<Vec<_>>(),
        t.converted,
        t.within_estimate,
        t.refused_before_step,
        t.worst_share
    );
    let late_steps: Vec<_> = steps_at.iter().filter(|&&s| s > JUMP_AT).collect();
    assert!(!late_steps.is_empty(), "the frequency jump made the servo step: {steps_at:?}");
    assert!(t.refused_before_step > 100, "frames before the step were offered and refused");
    assert!(t.converted > 1_000, "frames on both sides of the jump converted: {}", t.converted);
}

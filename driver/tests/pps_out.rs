//! `--pps-out` through the registers on virtual time: a register-level i210 whose SYSTIM runs
//! 80 ppm fast and 3.2 s off, target time 0 toggling the SDP (the fake records each edge's true
//! time), and the driver's software-steered i210 clock running at the true time. Every rising edge lands
//! on the true second and every falling one half past: the targets were converted to raw time.

use std::sync::{Arc, Mutex};

use nicclock_driver::clock::{Nanos, Phc, Ppb, Steering};
use nicclock_driver::model::{model, Family, Quirks, INTEL};
use nicclock_driver::pins::{self, PpsOut, Sdp};
use nicclock_driver::reference::PIN_POLL_NS;
use nicclock_driver::regs;
use nicclock_driver::timesource::VirtualTime;
use nicclock_uio::RegisterAccess;

const PPM: f64 = 80.0;
const RAW_AT_0: f64 = 3_200_000_123.0;

/// SYSTIM as a function of true time, TSAUXC/TRGTTIM/TSSDP/CTRL/TSICR as registers.
#[derive(Default)]
struct FakeI210 {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    now: u64,
    regs: std::collections::HashMap<usize, u32>,
    level: bool,
    /// (true ns, rising) of each output edge.
    edges: Vec<(f64, bool)>,
}

fn raw_at(t: f64) -> f64 {
    RAW_AT_0 + t * (1.0 + PPM * 1e-6)
}

impl FakeI210 {
    /// Moves true time to `t`, firing an armed target on the way.
    fn advance(&self, t: u64) {
        let mut s = self.state.lock().unwrap();
        let get = |s: &State, r| s.regs.get(&r).copied().unwrap_or(0);
        if get(&s, regs::TSAUXC) & regs::TSAUXC_EN_TT0 != 0 {
            let target = get(&s, regs::TRGTTIMH0) as f64 * 1e9 + get(&s, regs::TRGTTIML0) as f64;
            if raw_at(t as f64) >= target {
                let routed = get(&s, regs::TSSDP) & regs::tssdp_sdp_en(2) != 0;
                assert!(
                    routed && get(&s, regs::CTRL_EXT) & regs::CTRL_EXT_SDP2_DIR != 0,
                    "SDP2 is a TT0 output"
                );
                // Exactly when SYSTIM reached the target.
                let when = (target - RAW_AT_0) / (1.0 + PPM * 1e-6);
                s.level = !s.level;
                let rising = s.level;
                s.edges.push((when, rising));
                let tsauxc = get(&s, regs::TSAUXC) & !regs::TSAUXC_EN_TT0;
                s.regs.insert(regs::TSAUXC, tsauxc);
                let tsicr = get(&s, regs::TSICR) | regs::TSINTR_TT0;
                s.regs.insert(regs::TSICR, tsicr);
            }
        }
        s.now = t;
    }
}

impl RegisterAccess for FakeI210 {
    fn len(&self) -> usize {
        0x20000
    }
    fn read32(&self, offset: usize) -> u32 {
        let mut s = self.state.lock().unwrap();
        let raw = raw_at(s.now as f64) as u64;
        match offset {
            // SYSTIMR latches (the fake's SYSTIM only moves with `advance`).
            regs::SYSTIML => (raw % 1_000_000_000) as u32,
            regs::SYSTIMH => (raw / 1_000_000_000) as u32,
            regs::TSICR => s.regs.insert(regs::TSICR, 0).unwrap_or(0),
            _ => s.regs.get(&offset).copied().unwrap_or(0),
        }
    }
    fn write32(&self, offset: usize, value: u32) {
        self.state.lock().unwrap().regs.insert(offset, value);
    }
}

#[test]
fn edges_land_on_the_disciplined_second_through_the_clocks_conversion() {
    let nic = Arc::new(FakeI210::default());
    // The driver's own i210 clock over the fake, software-steered to run at true time: the
    // targets are converted by its timecounter, as nicclockd's are.
    let mut phc = Phc::init(
        nic.clone(),
        model(INTEL, 0x1533).unwrap(),
        Quirks::empty(),
        Steering::Software,
        VirtualTime::new(),
    )
    .unwrap();
    phc.set_frequency(Ppb((1.0 / (1.0 + PPM * 1e-6) - 1.0) * 1e9)).unwrap();
    phc.set(Nanos(0)).unwrap();
    let sdp: Sdp = "SDP2".parse().unwrap();
    let mut out = PpsOut::start(&*nic, sdp);
    assert_eq!(out.sdp(), sdp);
    let mut t = 0;
    let mut missed = 0;
    while t < 20_000_000_000 {
        t += PIN_POLL_NS;
        nic.advance(t);
        let events = pins::poll(&*nic, Family::I210);
        assert_eq!(events.aux_stamp, None);
        let now = phc.now().unwrap();
        assert!((now.0 - t as i128).abs() <= 1, "the disciplined clock is the true time: {now} at {t}");
        let s = out.service(&*nic, &phc, events.target_fired, now);
        missed += s.missed.is_some() as usize;
    }
    assert_eq!(missed, 0);
    let edges = nic.state.lock().unwrap().edges.clone();
    assert_eq!(
        edges.len(),
        39,
        "a rising edge each second 1..=20 s, a falling one each half past 1.5..=19.5 s"
    );
    for (k, &(when, rising)) in edges.iter().enumerate() {
        let want = 1e9 + k as f64 * 5e8;
        assert_eq!(rising, k % 2 == 0, "edge {k}");
        // Raw targets are whole ns of a clock 80 ppm fast: within 1 ns of the true edge (plus the
        // disciplined clock's own ns).
        assert!((when - want).abs() <= 2.0, "edge {k} at {when} ns, want {want}");
    }
}

//! The simulated time-sync pins (i210 first, 82580/i350 where the registers allow): a target time
//! toggles its SDP at the programmed SYSTIM, FREQOUT toggles every half period from its start, a
//! PPS input is latched in AUXSTMP at the (jittered) true edge, L then H re-arms, missing pulses
//! are missing; edges are recorded with their true time, on virtual and on real time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nicclock_driver::regs;
use nicclock_driver::sim::{Edge, PpsInput, SimConfig, SimModel, SimNic};
use nicclock_driver::timesource::{RealTime, TimeSource, VirtualTime};
use nicclock_uio::RegisterAccess;

// Bits from igb-family.md §1.1 / §5.4.
const EN_TT0: u32 = 1 << 0;
const EN_CLK0: u32 = 1 << 2;
const ST0: u32 = 1 << 4;
const EN_TS0: u32 = 1 << 8;
const EN_TS1: u32 = 1 << 10;
const TSICR_TT0: u32 = 1 << 3;
const TSICR_AUTT0: u32 = 1 << 5;
const TSICR_AUTT1: u32 = 1 << 6;
const SDP0_DIR: u32 = 0x0040_0000;
const SDP1_DIR: u32 = 0x0080_0000;
const SDP0_DATA: u32 = 0x0004_0000;
const SDP2_DATA: u32 = 0x40;
/// TSSDP: output pin n enabled, driven by source `sel` (0 TT0, 1 TT1, 2 FC0, 3 FC1).
fn tssdp_out(pin: u32, sel: u32) -> u32 {
    (sel << (6 + 3 * pin)) | (1 << (8 + 3 * pin))
}
/// TSSDP: aux timestamp `chan` from pin `pin`.
fn tssdp_aux(chan: u32, pin: u32) -> u32 {
    (pin << (3 * chan)) | (1 << (2 + 3 * chan))
}

fn sim(config: SimConfig) -> (Arc<VirtualTime>, SimNic) {
    let time = VirtualTime::new();
    (time.clone(), SimNic::new(config, time))
}

fn ideal(model: SimModel) -> SimConfig {
    SimConfig { model, ..SimConfig::ideal() }
}

#[test]
fn an_i210_target_time_toggles_its_pin_at_the_programmed_time() {
    // 100 ppm fast: SYSTIM reaches 2.5 s at true 2.5 s / 1.0001.
    let (time, nic) = sim(SimConfig { freq_error_ppm: 100.0, ..ideal(SimModel::I210) });
    nic.write32(regs::CTRL, SDP0_DIR);
    nic.write32(regs::TSSDP, tssdp_out(0, 0));
    nic.write32(regs::TRGTTIML0, 500_000_000);
    nic.write32(regs::TRGTTIMH0, 2);
    nic.write32(regs::TSAUXC, EN_TT0);
    time.wait_until(3_000_000_000);
    let edges = nic.sdp_edges(0);
    assert_eq!(edges.len(), 1, "{edges:?}");
    let expected = 2.5e9 / 1.0001;
    assert!(edges[0].rising && (edges[0].true_ns as f64 - expected).abs() <= 8.0, "{edges:?} vs {expected}");
    assert_ne!(nic.read32(regs::CTRL) & SDP0_DATA, 0, "the pin reads high");
    assert_eq!(nic.read32(regs::TSAUXC) & EN_TT0, 0, "EN_TT0 cleared by the match");
    assert_ne!(nic.read32(regs::TSICR) & TSICR_TT0, 0);
    assert_eq!(nic.read32(regs::TSICR) & TSICR_TT0, 0, "read to clear");
    // Re-armed for 3.5 s: the pin toggles back (Linux's PEROUT by target time).
    nic.write32(regs::TRGTTIML0, 500_000_000);
    nic.write32(regs::TRGTTIMH0, 3);
    nic.write32(regs::TSAUXC, EN_TT0);
    time.wait_until(4_000_000_000);
    let edges = nic.sdp_edges(0);
    assert_eq!(edges.len(), 2);
    assert!(!edges[1].rising && (edges[1].true_ns as f64 - 3.5e9 / 1.0001).abs() <= 8.0, "{edges:?}");
}

#[test]
fn an_i210_target_time_in_the_past_never_fires() {
    let (time, nic) = sim(ideal(SimModel::I210));
    time.wait_until(2_000_000_000);
    nic.write32(regs::CTRL, SDP0_DIR);
    nic.write32(regs::TSSDP, tssdp_out(0, 0));
    nic.write32(regs::TRGTTIML0, 0);
    nic.write32(regs::TRGTTIMH0, 1);
    nic.write32(regs::TSAUXC, EN_TT0);
    time.wait_until(10_000_000_000);
    assert!(nic.sdp_edges(0).is_empty());
    assert_eq!(nic.read32(regs::TSICR) & TSICR_TT0, 0);
}

#[test]
fn an_82580_target_time_is_in_40_bit_ns_across_the_wrap_and_tsicr_needs_a_write() {
    let (time, nic) = sim(ideal(SimModel::I82580));
    nic.write32(regs::CTRL, SDP1_DIR);
    nic.write32(regs::TSSDP, tssdp_out(1, 0));
    // 1 s after the first 2^40 ns wrap: raw 40-bit 1e9, reached at true 2^40 + 1e9.
    nic.write32(regs::TRGTTIML0, 1_000_000_000);
    nic.write32(regs::TRGTTIMH0, 0);
    time.wait_until(1_500_000_000);
    nic.write32(regs::TSAUXC, EN_TT0);
    time.wait_until((1 << 40) + 2_000_000_000);
    assert_eq!(nic.sdp_edges(1), vec![Edge { true_ns: (1 << 40) + 1_000_000_000, rising: true }]);
    assert_ne!(nic.read32(regs::TSICR) & TSICR_TT0, 0);
    assert_ne!(nic.read32(regs::TSICR) & TSICR_TT0, 0, "82580: a read does not clear TSICR");
    nic.write32(regs::TSICR, TSICR_TT0);
    assert_eq!(nic.read32(regs::TSICR) & TSICR_TT0, 0, "writing 1 clears it");
}

#[test]
fn i210_freqout_toggles_every_half_period_from_its_start() {
    let (time, nic) = sim(ideal(SimModel::I210));
    nic.write32(regs::CTRL, SDP1_DIR);
    nic.write32(regs::TSSDP, tssdp_out(1, 2));
    nic.write32(regs::TRGTTIML0, 0);
    nic.write32(regs::TRGTTIMH0, 1);
    nic.write32(regs::FREQOUT0, 500_000_000);
    nic.write32(regs::TSAUXC, EN_CLK0 | ST0);
    time.wait_until(10_200_000_000);
    let edges = nic.sdp_edges(1);
    assert_eq!(edges.len(), 19, "1.0, 1.5, … 10.0 s");
    for (k, e) in edges.iter().enumerate() {
        assert_eq!(*e, Edge { true_ns: 1_000_000_000 + 500_000_000 * k as u64, rising: k % 2 == 0 });
    }
    // Stopping the clock stops the edges.
    nic.write32(regs::TSAUXC, 0);
    time.wait_until(20_000_000_000);
    assert_eq!(nic.sdp_edges(1).len(), 19);
}

#[test]
fn a_fast_freqout_over_a_long_stretch_keeps_the_latest_edges() {
    let (time, nic) = sim(ideal(SimModel::I210));
    nic.write32(regs::CTRL, SDP0_DIR);
    nic.write32(regs::TSSDP, tssdp_out(0, 2));
    nic.write32(regs::TRGTTIMH0, 1);
    nic.write32(regs::FREQOUT0, 1_000);
    nic.write32(regs::TSAUXC, EN_CLK0 | ST0);
    time.wait_until(60_000_000_000);
    let edges = nic.sdp_edges(0);
    assert_eq!(edges.len(), 1 << 16);
    let last = edges.last().unwrap();
    assert!(60_000_000_000 - last.true_ns <= 1_000, "the newest edge is the latest toggle: {last:?}");
    assert!(edges.windows(2).all(|w| w[1].true_ns - w[0].true_ns == 1_000 && w[0].rising != w[1].rising));
}

fn pps_config(model: SimModel, pps: PpsInput) -> SimConfig {
    SimConfig { pps_in: Some(pps), ..ideal(model) }
}

/// Routes SDP `pin` (an input) to aux timestamp 0 and enables it.
fn enable_extts(nic: &SimNic, pin: u32) {
    nic.write32(regs::TSSDP, tssdp_aux(0, pin));
    nic.write32(regs::TSAUXC, EN_TS0);
}

#[test]
fn a_pps_input_is_latched_in_auxstmp_at_its_jittered_edge() {
    let pps = PpsInput { sdp: 2, jitter_ns: 20.0, ..PpsInput::default() };
    let (time, nic) = sim(pps_config(SimModel::I210, pps));
    enable_extts(&nic, 2);
    let mut errors = vec![];
    let mut falling = 0;
    // Poll at 20 Hz as a driver would: each stamp is read L then H before the next edge.
    for k in 1..=810u64 {
        time.wait_until(k * 50_000_000);
        if nic.read32(regs::TSICR) & TSICR_AUTT0 == 0 {
            continue;
        }
        let ns = nic.read32(regs::AUXSTMPL0) as u64;
        let s = nic.read32(regs::AUXSTMPH0) as u64;
        let stamp = s * 1_000_000_000 + ns;
        let second = (stamp + 500_000_000) / 1_000_000_000;
        if stamp % 1_000_000_000 > 50_000_000 && stamp % 1_000_000_000 < 500_000_000 {
            falling += 1; // the falling edge 100 ms later is stamped too
            continue;
        }
        let truth = nic.pps_in_edge_ns(second).expect("every pulse is there");
        assert!((stamp as f64 - truth).abs() <= 8.0, "second {second}: stamp {stamp}, edge {truth}");
        errors.push(stamp as f64 - second as f64 * 1e9);
    }
    assert_eq!(errors.len(), 40, "one stamp per second");
    assert_eq!(falling, 40);
    let rms = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    assert!((8.0..40.0).contains(&rms), "20 ns jitter, 8 ns ticks: rms {rms}");
    assert_eq!(nic.aux_events_lost(0), 0);
    assert_eq!(nic.read32(regs::CTRL_EXT) & SDP2_DATA, 0, "the input pin reads low between pulses");
    time.wait_until(41_050_000_000);
    assert_ne!(nic.read32(regs::CTRL_EXT) & SDP2_DATA, 0, "and high during one");
}

#[test]
fn an_unread_aux_stamp_holds_and_the_next_edges_are_lost() {
    let pps = PpsInput { sdp: 0, jitter_ns: 0.0, ..PpsInput::default() };
    let (time, nic) = sim(pps_config(SimModel::I350, pps));
    enable_extts(&nic, 0);
    time.wait_until(3_500_000_000);
    // 82580/i350 stamps are 40-bit ns.
    let lo = nic.read32(regs::AUXSTMPL0);
    time.wait_until(5_500_000_000);
    let hi = nic.read32(regs::AUXSTMPH0);
    assert_eq!((hi as u64) << 32 | lo as u64, 1_000_000_000, "the first edge, held");
    assert_eq!(nic.aux_events_lost(0), 9, "1.1, 2, 2.1, … 5.1 s: reading L alone does not re-arm");
    // The H read re-armed it: 6 s is stamped.
    time.wait_until(6_050_000_000);
    let lo = nic.read32(regs::AUXSTMPL0);
    assert_eq!(nic.read32(regs::AUXSTMPH0), 1);
    assert_eq!(lo as u64 + (1 << 32), 6_000_000_000, "the edge after the re-arm");
}

#[test]
fn missing_pulses_are_not_stamped_and_a_pin_routed_elsewhere_is_not_either() {
    let pps = PpsInput { sdp: 1, jitter_ns: 0.0, missing: vec![2], ..PpsInput::default() };
    let (time, nic) = sim(pps_config(SimModel::I210, pps));
    nic.write32(regs::TSSDP, tssdp_aux(0, 1) | tssdp_aux(1, 3));
    nic.write32(regs::TSAUXC, EN_TS0 | EN_TS1);
    let mut seconds = vec![];
    for k in 1..=80u64 {
        time.wait_until(k * 50_000_000);
        let tsicr = nic.read32(regs::TSICR);
        assert_eq!(tsicr & TSICR_AUTT1, 0, "nothing on SDP3");
        if tsicr & TSICR_AUTT0 != 0 {
            let ns = nic.read32(regs::AUXSTMPL0);
            let s = nic.read32(regs::AUXSTMPH0);
            if ns == 0 {
                seconds.push(s);
            }
        }
    }
    assert_eq!(seconds, vec![1, 3, 4], "second 2 is missing");
    assert_eq!(nic.pps_in_edge_ns(2), None);
}

#[test]
fn pins_work_on_real_time() {
    let time = RealTime::new();
    let nic = SimNic::new(ideal(SimModel::I210), time.clone());
    nic.write32(regs::CTRL, SDP0_DIR);
    nic.write32(regs::TSSDP, tssdp_out(0, 0));
    nic.read32(regs::SYSTIMR);
    let now_ns = nic.read32(regs::SYSTIML) as u64 + nic.read32(regs::SYSTIMH) as u64 * 1_000_000_000;
    let target = now_ns + 20_000_000;
    nic.write32(regs::TRGTTIML0, (target % 1_000_000_000) as u32);
    nic.write32(regs::TRGTTIMH0, (target / 1_000_000_000) as u32);
    nic.write32(regs::TSAUXC, EN_TT0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let edges = loop {
        let edges = nic.sdp_edges(0);
        if !edges.is_empty() {
            break edges;
        }
        assert!(Instant::now() < deadline, "no edge 10 s after a target 20 ms ahead");
        std::thread::yield_now();
    };
    assert_eq!(edges.len(), 1);
    // The NIC started counting from 0 when it was made, a little after the time source.
    let truth = nic.truth();
    let start = truth.true_ns - truth.nic_ns as u64;
    let expected = target + start;
    assert!(edges[0].true_ns.abs_diff(expected) <= 8, "edge at {} for {expected}", edges[0].true_ns);
}

#[test]
fn a_freqout_clock_stays_in_step_with_systim_when_the_time_is_set() {
    let (time, nic) = sim(ideal(SimModel::I210));
    nic.write32(regs::CTRL, SDP0_DIR);
    nic.write32(regs::TSSDP, tssdp_out(0, 2));
    nic.write32(regs::TRGTTIMH0, 1);
    nic.write32(regs::FREQOUT0, 500_000_000);
    nic.write32(regs::TSAUXC, EN_CLK0 | ST0);
    time.wait_until(2_200_000_000);
    // Set the time forward to 1000.3 s: rising edges go on at whole seconds of SYSTIM.
    nic.write32(regs::SYSTIML, 300_000_000);
    nic.write32(regs::SYSTIMH, 1000);
    time.wait_until(4_000_000_000);
    let edges = nic.sdp_edges(0);
    let after_set: Vec<_> = edges.iter().filter(|e| e.true_ns > 2_200_000_000).collect();
    // SYSTIM 1000.5 s (true 2.4 s) falling, 1001 s (2.9 s) rising, 1001.5 (3.4 s) falling, 1002 (3.9 s) rising.
    let expected =
        [(2_400_000_000, false), (2_900_000_000, true), (3_400_000_000, false), (3_900_000_000, true)];
    let got: Vec<_> = after_set.iter().map(|e| (e.true_ns, e.rising)).collect();
    assert_eq!(got, expected, "all edges: {edges:?}");
}

#[test]
fn samp_aut_latches_systim_on_request_and_the_i350_clears_tsicr_on_read() {
    const SAMP_AUT0: u32 = 1 << 3;
    let (time, nic) = sim(ideal(SimModel::I350));
    time.wait_until(7_000_000_000);
    nic.write32(regs::TSAUXC, SAMP_AUT0);
    time.wait_until(8_000_000_000);
    let lo = nic.read32(regs::AUXSTMPL0);
    assert_eq!((nic.read32(regs::AUXSTMPH0) as u64) << 32 | lo as u64, 7_000_000_000, "sampled at the write");
    assert_eq!(nic.read32(regs::TSAUXC) & SAMP_AUT0, 0, "the request acts once");
    // A target on the i350 (not an 82580): TSICR clears on read.
    nic.write32(regs::TRGTTIML0, (9_000_000_000u64 & 0xFFFF_FFFF) as u32);
    nic.write32(regs::TRGTTIMH0, 2);
    nic.write32(regs::TSAUXC, EN_TT0);
    time.wait_until(10_000_000_000);
    assert_ne!(nic.read32(regs::TSICR) & TSICR_TT0, 0);
    assert_eq!(nic.read32(regs::TSICR) & TSICR_TT0, 0);
}

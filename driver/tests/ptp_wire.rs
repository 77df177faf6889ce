//! The PTP slave (statime behind driver/src/ptp) on the simulated wire at message level: it reaches
//! SLAVE behind the best master and converges on the master's clock (the simulator's truth),
//! shows half an unseen asymmetry as bias, reports a vanished master, ignores other domains.

use nicclock_driver::ptp::simwire::{run, MasterSpec, WireOutcome, WireScenario};
use nicclock_driver::ptp::PortState;

fn scenario(duration_s: f64) -> WireScenario {
    WireScenario { duration_s, ..WireScenario::standard() }
}

/// The largest |true offset| over the run's last `s` seconds, ns.
fn worst_over_last(o: &WireOutcome, s: f64) -> i64 {
    let end = o.offsets.last().expect("samples").0;
    o.offsets.iter().filter(|(t, _)| *t >= end - s).map(|(_, off)| off.abs()).max().expect("samples")
}

#[test]
fn slave_follows_the_master_and_converges() {
    let mut sc = scenario(60.0);
    sc.masters[0].utc_offset_s = 36;
    sc.masters[0].leap61 = true;
    let o = run(&sc).unwrap();
    let slave_at = o.first(PortState::Slave).expect("the port reaches SLAVE");
    assert!(slave_at < 10.0, "SLAVE only at {slave_at} s");
    let s = o.final_status;
    assert_eq!(s.state, PortState::Slave);
    assert_eq!(s.grandmaster, sc.masters[0].identity);
    assert_eq!(s.steps_removed, 1, "one hop from the grandmaster");
    // TAI−UTC and the leap flag come from the master's Announce, not from the host.
    assert_eq!(s.utc_offset_s, Some(36));
    assert!(s.leap61 && !s.leap59 && s.ptp_timescale);
    assert!(s.offset_ns.is_some() && s.mean_delay_ns.is_some(), "{s:?}");
    assert!(o.lock_time_s.is_some(), "never within 100 ns of the master");
    let worst = worst_over_last(&o, 20.0);
    assert!(worst < 500, "the slave wanders {worst} ns from the master's clock");
    assert!(o.frames_lost > 0, "the link loses frames (1 %)");
    // Stepped onto the master's time once SLAVE (the clock starts at 0, the master at TAI), and
    // never after lock; each step reported.
    let (first_at, first) = o.steps[0];
    assert!(first_at >= slave_at && first > 1_700_000_000_000_000_000, "{:?}", o.steps);
    let lock = o.lock_time_s.unwrap();
    assert!(o.steps.iter().all(|(t, _)| *t < lock), "a step after lock: {:?}", o.steps);
}

#[test]
fn unseen_asymmetry_shows_as_half_its_size_in_the_truth() {
    let mut sc = scenario(60.0);
    sc.link.asymmetry_ns = 100;
    let o = run(&sc).unwrap();
    let mean = o.summary.mean_offset_ns.expect("locked");
    // Master→slave 50 ns longer than back: the slave believes the path symmetric and ends 50 ns
    // behind the master.
    assert!((-65.0..=-35.0).contains(&mean), "mean true offset {mean} ns, expected about -50");
    let sym = run(&scenario(60.0)).unwrap().summary.mean_offset_ns.expect("locked");
    assert!(sym.abs() < 15.0, "symmetric path: mean {sym} ns");
}

#[test]
fn a_vanished_master_is_reported() {
    let mut sc = scenario(40.0);
    sc.masters[0].stop_s = Some(20.0);
    let o = run(&sc).unwrap();
    assert!(o.first(PortState::Slave).is_some());
    let lost = *o.master_lost_s.first().expect("the announce receipt timeout reports the master lost");
    // 3 announce intervals (1 s) times statime's random factor in [1, 2), plus one interval.
    assert!((20.0..=27.0).contains(&lost), "master lost reported at {lost} s");
    assert_eq!(o.master_lost_s.len(), 1, "reported once: {:?}", o.master_lost_s);
    assert_eq!(o.lost_masters, vec![sc.masters[0].identity], "the report names the lost master");
    assert_eq!(o.final_status.state, PortState::Listening);
}

#[test]
fn bmca_picks_the_best_master_and_fails_over() {
    let mut sc = scenario(60.0);
    let mut better = MasterSpec::new(2);
    better.priority1 = 100;
    better.stop_s = Some(25.0);
    sc.masters.push(better.clone());
    let o = run(&sc).unwrap();
    let gm_at = |t: f64| {
        o.status_changes.iter().rev().find(|(at, _)| *at <= t).map(|(_, s)| (s.state, s.grandmaster))
    };
    assert_eq!(gm_at(24.0), Some((PortState::Slave, better.identity)), "{:?}", o.status_changes);
    assert_eq!(o.final_status.state, PortState::Slave);
    assert_eq!(o.final_status.grandmaster, sc.masters[0].identity, "{:?}", o.status_changes);
    let worst = worst_over_last(&o, 10.0);
    assert!(worst < 500, "after failing over the slave is {worst} ns off");
}

#[test]
fn other_domains_are_ignored() {
    let mut sc = scenario(20.0);
    sc.master_domain = 1;
    let o = run(&sc).unwrap();
    assert!(o.status_changes.is_empty(), "{:?}", o.status_changes);
    assert_eq!(o.final_status.state, PortState::Listening);
    assert_eq!(o.delay_resps, 0, "no Delay_Req sent");
    assert!(o.steps.is_empty(), "{:?}", o.steps);
    // Never stepped: still counting from 0 while the master is at TAI.
    let last = o.offsets.last().unwrap().1;
    assert!(last < -1_000_000_000_000_000_000, "clock moved to {last}");
    // The same domain configured on our side: followed.
    sc.domain = 1;
    assert!(run(&sc).unwrap().first(PortState::Slave).is_some());
}

#[test]
fn software_steering_where_rate_writes_jump() {
    // QEMU's 82576 is in the quirk table (TIMINCA writes jump): --steer auto resolves to the
    // software timecounter, and statime steers that.
    let mut sc = scenario(60.0);
    sc.sim.qemu = true;
    let o = run(&sc).unwrap();
    assert_eq!(o.final_status.state, PortState::Slave);
    let worst = worst_over_last(&o, 20.0);
    assert!(worst < 500, "software-steered slave {worst} ns off");
}

#[test]
fn a_slave_only_port_follows_a_master_with_ptp4l_s_default_dataset() {
    // ptp4l's defaults announce a clock no better than ours on quality (class 248, accuracy
    // unknown, variance 0xFFFF, priority1 128): a slave-only port must still take it as master
    // (in the QEMU lab it stayed LISTENING when the slave announced priority 128 itself).
    let mut sc = scenario(30.0);
    sc.masters = vec![MasterSpec::ptp4l_default(0xfe)];
    let o = run(&sc).unwrap();
    let at = o.first(PortState::Slave).expect("the port follows ptp4l's default master");
    assert!(at < 10.0, "SLAVE only at {at} s");
    assert_eq!(o.final_status.grandmaster, sc.masters[0].identity);
    assert_eq!(o.final_status.clock_accuracy, 0xfe);
}

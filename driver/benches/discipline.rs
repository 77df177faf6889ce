//! Discipline figures on the simulator, `figure <name> <value>` lines. The issue-3 scenario
//! (100 ppm initial error, 1 ppb/√s wander, 50 ns read jitter, 10 min of virtual clock at 10
//! updates/s) on the 82576 for each servo and steering mode (plain names: hardware-steered), then
//! per family (82574, 82576, i350, i210; PI, hardware steering): lock time and RMS true offset.
//! Then the i210's pins: a PPS output's edges against the true second (the simulator records them)
//! and a PPS input with 20 ns jitter as the reference. The statistics are nicclock::stats', the
//! same code as `nicclock stats` and the QEMU lab use.

use nicclock_driver::discipline::DisciplineConfig;
use nicclock_driver::phc::SteerChoice;
use nicclock_driver::pin_scenario::{run_pins, PinScenario};
use nicclock_driver::scenario::{run, Scenario};
use nicclock_driver::servo::{Servo, ServoConfig, ServoKind};
use nicclock_driver::sim::{PpsInput, SimConfig, SimModel};

fn main() {
    for (servo, servo_name) in [(ServoKind::Pi, "pi"), (ServoKind::Linreg, "linreg")] {
        for (steer, suffix) in [(SteerChoice::Hardware, ""), (SteerChoice::Software, "_sw")] {
            let o = run(&Scenario::standard(servo, steer), 100).expect("the simulated NIC stays present");
            let name = format!("{servo_name}{suffix}");
            match o.lock_time_s {
                Some(t) => println!("figure lock_time_s_{name} {t:.2}"),
                None => println!("figure lock_time_s_{name} never"),
            }
            println!("figure rms_offset_ns_{name} {:.1}", o.rms_offset_ns);
            println!("figure max_offset_ns_{name} {}", o.max_offset_ns);
            if let Some(p99) = o.summary.abs_offset_p99_ns {
                println!("figure p99_abs_offset_ns_{name} {p99:.0}");
            }
            println!("figure max_page_error_ns_{name} {}", o.max_page_error_ns);
        }
    }
    for (model, family) in [
        (SimModel::I82574, "82574"),
        (SimModel::I82576, "82576"),
        (SimModel::I350, "i350"),
        (SimModel::I210, "i210"),
    ] {
        let mut scenario = Scenario::standard(ServoKind::Pi, SteerChoice::Hardware);
        scenario.sim.model = model;
        scenario.duration_s = 300.0;
        let o = run(&scenario, 100).expect("the simulated NIC stays present");
        match o.lock_time_s {
            Some(t) => println!("figure lock_time_s_{family} {t:.2}"),
            None => println!("figure lock_time_s_{family} never"),
        }
        println!("figure rms_offset_ns_{family} {:.1}", o.rms_offset_ns);
    }
    let i210 = SimConfig { model: SimModel::I210, ..SimConfig::default() };
    let out = run_pins(&PinScenario {
        sim: i210.clone(),
        steer: SteerChoice::Hardware,
        pps_out: Some("SDP0".parse().unwrap()),
        pps_in: None,
        servo: || Servo::new(ServoKind::Pi, ServoConfig::default()),
        discipline: DisciplineConfig::default(),
        duration_s: 120,
    })
    .expect("the simulated NIC stays present");
    match out.edge_rms_ns() {
        Some(rms) => println!("figure pps_out_rms_ns_i210 {rms:.1}"),
        None => println!("figure pps_out_rms_ns_i210 never"),
    }
    println!("figure pps_out_edges_i210 {}", out.edges_after_lock.len());
    let pps = SimConfig { pps_in: Some(PpsInput { sdp: 1, jitter_ns: 20.0, ..PpsInput::default() }), ..i210 };
    let reference = run_pins(&PinScenario {
        sim: pps,
        steer: SteerChoice::Hardware,
        pps_out: None,
        pps_in: Some("SDP1".parse().unwrap()),
        servo: || Servo::new(ServoKind::Pi, ServoConfig::default()),
        discipline: DisciplineConfig { interval_ns: 1_000_000_000, ..DisciplineConfig::default() },
        duration_s: 600,
    })
    .expect("the simulated NIC stays present");
    match reference.summary.lock_time_s {
        Some(t) => println!("figure pps_ref_lock_time_s_i210 {t:.0}"),
        None => println!("figure pps_ref_lock_time_s_i210 never"),
    }
    match reference.summary.rms_offset_ns {
        Some(rms) => println!("figure pps_ref_rms_offset_ns_i210 {rms:.1}"),
        None => println!("figure pps_ref_rms_offset_ns_i210 never"),
    }
}

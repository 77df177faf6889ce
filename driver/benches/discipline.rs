//! Discipline figures on the issue-3 scenario (simulated 82576, 100 ppm initial error, 1 ppb/√s
//! wander, 50 ns read jitter, 10 min of virtual clock at 10 updates/s), for each servo and
//! steering mode: `figure <name> <value>` lines (plain names are the hardware-steered runs). The
//! statistics are nicclock::stats', the same code as `nicclock stats` and the QEMU lab use.

use nicclock_driver::phc::SteerChoice;
use nicclock_driver::scenario::{run, Scenario};
use nicclock_driver::servo::ServoKind;

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
}

//! PTP slave figures on the simulated wire (message level: frames as PTP payloads, no rings or
//! descriptors yet): issue 10's scenario — 8 Sync/s, 100 ppm, 1 ppb/√s wander, 5 µs symmetric
//! path, 20 ns stamp jitter, 1 % loss — lock time and RMS true offset from the master's clock.

use nicclock_driver::ptp::simwire::{run, WireScenario};

fn main() {
    let o = run(&WireScenario::standard()).expect("the simulated NIC stays present");
    match o.lock_time_s {
        Some(t) => println!("figure ptp_lock_time_s {t:.2}"),
        None => println!("figure ptp_lock_time_s never"),
    }
    match o.summary.rms_offset_ns {
        Some(rms) => println!("figure ptp_rms_offset_ns {rms:.1}"),
        None => println!("figure ptp_rms_offset_ns never"),
    }
    let mut asym = WireScenario::standard();
    asym.link.asymmetry_ns = 100;
    let a = run(&asym).expect("the simulated NIC stays present");
    match a.summary.mean_offset_ns {
        Some(mean) => println!("figure ptp_asymmetry_100ns_mean_offset_ns {mean:.1}"),
        None => println!("figure ptp_asymmetry_100ns_mean_offset_ns never"),
    }
}

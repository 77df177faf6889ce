//! Publishes the system clock (CLOCK_REALTIME as TAI) in a time page, as nicclockd publishes a NIC
//! clock: a demo and test writer. `cargo run -p nicclock --example publish_system_clock -- NAME [DIR] [SECONDS]`
//!
//! The counter→time rate is fitted over a growing baseline of (counter, CLOCK_REALTIME) sandwich
//! samples; the error bound is half the sampling window plus the drift allowed since the anchor.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nicclock::{
    counter, period_from_ns_per_tick, Identity, Leap, PageOptions, ServoFigures, Snapshot, Status, Writer,
};

const INTERVAL: Duration = Duration::from_millis(100);
/// TAI − UTC since 2017-01-01, used when the kernel's TAI offset is not set.
const TAI_UTC_DEFAULT: i32 = 37;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "system".into());
    let dir = args.next().map(PathBuf::from).unwrap_or_else(|| nicclock::abi::DEFAULT_DIR.into());
    let seconds: Option<f64> =
        args.next().map(|s| s.parse()).transpose().context("SECONDS must be a number")?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }

    let opts = PageOptions { dir, ..PageOptions::new(&name) };
    let identity = Identity { model: "system-clock".into(), pci_address: "none".into(), clock_id: [0; 8] };
    let mut writer = Writer::create(&opts, &identity)?;
    eprintln!("publishing CLOCK_REALTIME in {} every {:?}", writer.path().display(), INTERVAL);

    let kind = counter::best_available();
    let tai_offset = tai_utc_offset();
    let first = counter::sample_clock(kind, libc::CLOCK_REALTIME, 5);
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && seconds.is_none_or(|s| start.elapsed().as_secs_f64() < s) {
        std::thread::sleep(INTERVAL);
        let s = counter::sample_clock(kind, libc::CLOCK_REALTIME, 5);
        let ns_per_tick = (s.clock_ns - first.clock_ns) as f64 / (s.counter - first.counter) as f64;
        let tai = s.clock_ns + tai_offset as u64 * 1_000_000_000;
        let window_ns = (s.window as f64 * ns_per_tick).ceil() as u64;
        writer.publish(&Snapshot {
            counter_kind: kind,
            counter_value: s.counter,
            counter_period: period_from_ns_per_tick(ns_per_tick),
            anchor_tai_ns: tai,
            error_bound_ns: window_ns / 2 + 1,
            error_growth_ppt: 10_000_000, // 10 ppm: NTP may slew the system clock under us
            status: Status::Locked,
            leap: Leap::None,
            leap_tai_s: 0,
            tai_utc_offset_s: tai_offset,
            updated_tai_ns: tai,
            update_interval_ns: INTERVAL.as_nanos() as u64,
            update_count: 0,
            servo: ServoFigures { offset_ns: 0, freq_ppt: 0, delay_ns: window_ns, state: 2 },
            reference: Default::default(),
            estimate: nicclock::Estimate::UNKNOWN,
            epoch: 0,
        });
    }
    eprintln!("stopping; page marked STOPPED");
    Ok(())
}

/// The kernel's TAI offset (CLOCK_TAI − CLOCK_REALTIME), or 37 s when it was never set.
fn tai_utc_offset() -> i32 {
    let tai = counter::sample_clock(nicclock::CounterKind::MonotonicRaw, libc::CLOCK_TAI, 1).clock_ns;
    let utc = counter::sample_clock(nicclock::CounterKind::MonotonicRaw, libc::CLOCK_REALTIME, 1).clock_ns;
    match ((tai as i128 - utc as i128) as f64 / 1e9).round() as i32 {
        0 => TAI_UTC_DEFAULT,
        n => n,
    }
}

//! A PTP page update allocates nothing once warmed up: it runs 10 times a second for the life of
//! the daemon (the rate regression walked where its points are, the delay filter's median on the
//! stack). Counted by this test binary's own global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nicclock::CounterKind;
use nicclock_driver::clock::Steering;
use nicclock_driver::measure::Host;
use nicclock_driver::model::{model, Quirks, INTEL};
use nicclock_driver::phc::Phc;
use nicclock_driver::ptp::page::{PtpPage, PtpPageConfig};
use nicclock_driver::ptp::spread::RawSpread;
use nicclock_driver::ptp::{ClockIdentity, PortState, PtpStatus};
use nicclock_driver::sim::{SimConfig, SimNic};
use nicclock_driver::timesource::{TimeSource, VirtualTime};

/// Counts the allocations of the thread that set `COUNTING` (the harness's own threads may
/// allocate meanwhile: a loaded machine's run saw 2).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn counting() -> bool {
    COUNTING.with(Cell::get)
}

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as `alloc` and `dealloc` above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct VirtualHost(Arc<VirtualTime>);

impl Host for VirtualHost {
    fn counter_kind(&self) -> CounterKind {
        CounterKind::MonotonicRaw
    }
    fn counter(&self) -> u64 {
        self.0.now_ns()
    }
    fn reference_ns(&self) -> u64 {
        self.0.now_ns()
    }
    fn ns_per_tick(&self) -> (f64, f64) {
        (1.0, 1e-6)
    }
}

fn slave() -> PtpStatus {
    PtpStatus {
        state: PortState::Slave,
        grandmaster: ClockIdentity([0, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1]),
        steps_removed: 1,
        utc_offset_s: Some(37),
        leap61: false,
        leap59: false,
        ptp_timescale: true,
        time_traceable: false,
        frequency_traceable: false,
        clock_accuracy: 0x21,
        offset_ns: Some(40),
        mean_delay_ns: Some(5_000),
        raw_offsets: Some(RawSpread { count: 16, max_abs_ns: 300, sigma_ns: 100, ..RawSpread::default() }),
    }
}

#[test]
fn a_warm_page_update_allocates_nothing() {
    let time = VirtualTime::new();
    let config = SimConfig { read_latency_ns: 1_000, read_jitter_ns: 200, ..SimConfig::ideal() };
    let nic = Arc::new(SimNic::new(config, time.clone()));
    let mut phc =
        Phc::init(nic, model(INTEL, 0x10C9).unwrap(), Quirks::empty(), Steering::Software, time.clone())
            .unwrap();
    let host = VirtualHost(time.clone());
    let own = ClockIdentity([2, 0, 0, 0xff, 0xfe, 0, 0, 0x10]);
    let mut page = PtpPage::new(PtpPageConfig::default(), own, slave());
    // Warm-up: the rate window (64 points) and every recent-figures queue full.
    for _ in 0..100 {
        page.update(&mut phc, &host, slave()).unwrap();
        time.advance(100_000_000);
    }
    COUNTING.with(|c| c.set(true));
    for _ in 0..100 {
        let u = page.update(&mut phc, &host, slave()).unwrap();
        std::hint::black_box(&u);
        drop(u);
        time.advance(100_000_000);
    }
    COUNTING.with(|c| c.set(false));
    let status = page.status();
    let n = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(n, 0, "{n} allocations in 100 warm page updates (status {status:?})");
}

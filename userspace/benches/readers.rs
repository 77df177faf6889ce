//! Reader cost, measured side by side in one run: nicclock `now()` against its floor (one ordered
//! read of the page's counter alone: `lfence; rdtsc` on a TSC page, the vDSO's CLOCK_MONOTONIC_RAW
//! on a MONOTONIC_RAW one), `now()` with its lazy error bounds asked for too, `now_interval()`, a past counter value's conversion
//! (`convert(Past::Counter)`, 1.5 s old: through the history) and the vDSO's
//! clock_gettime(CLOCK_REALTIME), against the classic semaphore-guarded segment with 4 contending
//! readers, and with 8 threads against 1. Prints ns per call and `ratio <name> <x>` lines; the
//! single-thread ratios are the median of each round's own ratio (both sides measured
//! back to back in that round), so a slow stretch of the machine moves both sides of a ratio.
//!
//! The single-thread figures and all multi-threaded ones are "busy" ns per call: each thread's wall time minus the time it sat
//! runnable waiting for a CPU (/proc/thread-self/schedstat), so running more readers than this
//! machine has cores does not count as reader cost, while time blocked on a lock still does.

mod classic;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use nicclock::{
    counter, period_from_ns_per_tick, Clock, Identity, Leap, PageOptions, ServoFigures, Snapshot, Status,
    Writer,
};
use nix::time::{clock_gettime, ClockId};

const ROUNDS: usize = 11;
const CALLS: u64 = 1_000_000;
/// Slices a single-thread round is cut into, the readers interleaved slice by slice.
const SLICES: usize = 20;
const UPDATE_INTERVAL: Duration = Duration::from_millis(10);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.into_iter().collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// What a caller of `now()` does with a reading: uses its time, status and epoch. The error
/// bounds are lazy (computed when asked for, one multiply each): [`use_reading_with_bounds`]
/// asks for them as well. Each field is kept (black_box) on its own; moving the whole `Result`
/// into one black_box instead makes the compiler copy it with 16-byte loads from the 8-byte
/// stores that built it, a store-forwarding stall (~10 ns on this kind of machine) that measures
/// that copy, not the reader. The vDSO's timespec is used the same way.
#[inline(always)]
fn use_reading(n: nicclock::Now) {
    black_box(n.time_ns);
    black_box(n.status);
    black_box(n.epoch);
}

/// A reading used in full: time, status, epoch and both error bounds.
#[inline(always)]
fn use_reading_with_bounds(n: nicclock::Now) {
    use_reading(n);
    black_box(n.error_bound_ns());
    black_box(n.estimated_error_ns());
}

/// Wall ns per call of `f` over `calls` calls.
fn wall_per_call(calls: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

/// ns this thread has spent runnable but waiting for a CPU (schedstat's second field).
fn runqueue_wait_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat (CONFIG_SCHED_INFO)");
    s.split_whitespace().nth(1).and_then(|w| w.parse().ok()).expect("schedstat format")
}

/// (busy, wall) ns per call of `f` on this thread; busy = wall − run-queue wait.
fn busy_and_wall(calls: u64, mut f: impl FnMut()) -> (f64, f64) {
    let (wait0, start) = (runqueue_wait_ns(), Instant::now());
    for _ in 0..calls {
        f();
    }
    let wall = start.elapsed().as_nanos() as u64;
    let busy = wall.saturating_sub(runqueue_wait_ns() - wait0);
    (busy as f64 / calls as f64, wall as f64 / calls as f64)
}

/// Runs `per_thread` on `threads` threads started together; returns each thread's (busy, wall).
fn in_threads(threads: usize, per_thread: impl Fn() -> (f64, f64) + Sync) -> (f64, f64) {
    let barrier = Barrier::new(threads);
    let figures: Vec<(f64, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    per_thread()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (mean(figures.iter().map(|f| f.0)), mean(figures.iter().map(|f| f.1)))
}

/// A page kept fresh by a writer thread publishing the system clock every 10 ms, as nicclockd would.
struct Publisher {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    fn start(classic: Arc<classic::Classic>) -> Self {
        let dir = PathBuf::from(format!("/dev/shm/nicclock-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = PageOptions { dir: dir.clone(), ..PageOptions::new("bench") };
        let identity = Identity { model: "bench".into(), pci_address: "none".into(), clock_id: [0; 8] };
        let mut w = Writer::create(&opts, &identity).unwrap();
        let kind = counter::best_available();
        let first = counter::sample_clock(kind, libc::CLOCK_REALTIME, 5);
        std::thread::sleep(Duration::from_millis(50));
        let stop = Arc::new(AtomicBool::new(false));
        let mut publish = move || {
            let s = counter::sample_clock(kind, libc::CLOCK_REALTIME, 5);
            let rate = (s.clock_ns - first.clock_ns) as f64 / (s.counter - first.counter) as f64;
            let tai = s.clock_ns + 37_000_000_000;
            w.publish(&Snapshot {
                counter_kind: kind,
                counter_value: s.counter,
                counter_period: period_from_ns_per_tick(rate),
                anchor_tai_ns: tai,
                error_bound_ns: 100,
                error_growth_ppt: 1_000_000,
                status: Status::Locked,
                leap: Leap::None,
                leap_tai_s: 0,
                tai_utc_offset_s: 37,
                updated_tai_ns: tai,
                update_interval_ns: UPDATE_INTERVAL.as_nanos() as u64,
                update_count: 0,
                servo: ServoFigures::default(),
                reference: Default::default(),
                estimate: nicclock::Estimate { error_ns: 40, growth_ppt: 1_000_000 },
                epoch: 0,
            });
            classic.publish(tai, 0);
        };
        publish();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(UPDATE_INTERVAL);
                    publish();
                }
            }
        });
        Self { dir, stop, thread: Some(thread) }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().unwrap().join();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() {
    // `cargo bench` passes --bench (and maybe a filter); there is nothing to choose here.
    let dir = PathBuf::from(format!("/dev/shm/nicclock-bench-classic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let classic_path = classic::Classic::create(&dir);
    let classic = Arc::new(classic::Classic::open(&classic_path));
    let publisher = Publisher::start(classic.clone());
    let clock = Clock::open_in(&publisher.dir, "bench").unwrap();
    let kind = clock.snapshot().unwrap().counter_kind;
    println!("readers: counter {}, writer every {UPDATE_INTERVAL:?}, {ROUNDS} rounds, medians", kind.name());
    println!(
        "readers: now = now() with its time, status and epoch used; its error bounds are lazy (worked \
         out on access): now_with_bounds asks for both"
    );
    assert!(clock.now().is_ok(), "the bench page must be readable");
    // Past counter values: each round converts one from the middle of the history's second
    // entry (1–2 s old: the newest entry holds the last second), through the history, not the
    // page's current mapping. The writer has published ~250 updates before the first round.
    std::thread::sleep(Duration::from_millis(2_500));
    let past_value = || {
        let h = clock.history().unwrap();
        assert!(h.len() >= 2, "the bench page has a history: {h:?}");
        let past = nicclock::Past::Counter(h[1].counter_start / 2 + h[1].counter_end / 2);
        assert!(clock.convert(past).is_ok(), "the past counter converts: {:?}", clock.convert(past));
        past
    };
    let now = || match clock.now() {
        Ok(n) => use_reading(n),
        Err(e) => panic!("{e}"),
    };
    let now_with_bounds = || match clock.now() {
        Ok(n) => use_reading_with_bounds(n),
        Err(e) => panic!("{e}"),
    };
    let clock_ref = &clock;
    let past_tsc = |past: nicclock::Past| {
        move || match clock_ref.convert(black_box(past)) {
            Ok(n) => use_reading_with_bounds(n),
            Err(e) => panic!("{e}"),
        }
    };
    let now_interval = || match clock.now_interval() {
        Ok(i) => {
            black_box(i.earliest_ns);
            black_box(i.latest_ns);
        }
        Err(e) => panic!("{e}"),
    };
    let sem = || {
        black_box(classic.now());
    };
    let vdso = || match clock_gettime(ClockId::CLOCK_REALTIME) {
        Ok(ts) => {
            black_box(ts.tv_sec());
            black_box(ts.tv_nsec());
        }
        Err(e) => panic!("{e}"),
    };
    // The floor: what now() cannot avoid, the ordered read of the page's own counter.
    let floor = move || match kind {
        nicclock::CounterKind::Tsc => {
            black_box(counter::tsc());
        }
        nicclock::CounterKind::MonotonicRaw => {
            black_box(counter::monotonic_raw_ns());
        }
    };

    // 1. One thread: now() vs its counter floor vs now_interval() vs clock_gettime(CLOCK_REALTIME)
    // (vDSO), measured slice by slice in alternating order.
    let (mut now_1, mut floor_1, mut interval_1, mut vdso_1, mut sem_1, mut past_1, mut bounds_1) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in 0..ROUNDS {
        let past = past_value();
        // Each round interleaves the six in SLICES slices (order alternating per slice), so a
        // busy stretch of this machine (others building, a VM) lands on all of them alike; each
        // slice counts its busy time (time spent waiting for a CPU taken out).
        let mut t = [0.0f64; 6];
        for slice in 0..SLICES {
            let mut run = |i: usize| {
                let calls = CALLS / SLICES as u64;
                t[i] += match i {
                    0 => busy_and_wall(calls, now),
                    1 => busy_and_wall(calls, floor),
                    2 => busy_and_wall(calls, past_tsc(past)),
                    3 => busy_and_wall(calls, now_interval),
                    4 => busy_and_wall(calls, now_with_bounds),
                    _ => busy_and_wall(calls, vdso),
                }
                .0 / SLICES as f64;
            };
            if (r * SLICES + slice) % 2 == 0 {
                (0..6).for_each(&mut run);
            } else {
                (0..6).rev().for_each(&mut run);
            }
        }
        now_1.push(t[0]);
        floor_1.push(t[1]);
        past_1.push(t[2]);
        interval_1.push(t[3]);
        bounds_1.push(t[4]);
        vdso_1.push(t[5]);
        sem_1.push(wall_per_call(CALLS, sem));
    }
    let per_round = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(a, b)| a / b).collect());
    let (now_vs_floor, now_vs_vdso) = (per_round(&now_1, &floor_1), per_round(&now_1, &vdso_1));
    let (bounds_vs_floor, bounds_vs_vdso) = (per_round(&bounds_1, &floor_1), per_round(&bounds_1, &vdso_1));
    let (now_1, floor_1, interval_1, vdso_1, sem_1, past_1, bounds_1) = (
        median(now_1),
        median(floor_1),
        median(interval_1),
        median(vdso_1),
        median(sem_1),
        median(past_1),
        median(bounds_1),
    );
    println!("ns_per_call now_1thread {now_1:.2}");
    println!("ns_per_call now_with_bounds_1thread {bounds_1:.2} (both lazy error bounds asked for)");
    println!("ns_per_call counter_floor_1thread {floor_1:.2} ({} read alone)", kind.name());
    println!("ns_per_call now_interval_1thread {interval_1:.2}");
    println!("ns_per_call past_tsc_1thread {past_1:.2}");
    println!("ns_per_call clock_gettime_realtime_1thread {vdso_1:.2}");
    println!("ns_per_call seed_semaphore_1thread {sem_1:.2}");

    // 2. Four contending readers: the semaphore segment vs now().
    let (mut sem_4, mut now_4) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        sem_4.push(in_threads(4, || busy_and_wall(CALLS / 4, sem)));
        now_4.push(in_threads(4, || busy_and_wall(CALLS, now)));
    }
    let busy = |v: &[(f64, f64)]| median(v.iter().map(|f| f.0).collect());
    let wall = |v: &[(f64, f64)]| median(v.iter().map(|f| f.1).collect());
    println!("busy_ns_per_call seed_semaphore_4readers {:.2}", busy(&sem_4));
    println!("busy_ns_per_call now_4readers {:.2}", busy(&now_4));
    println!("wall_ns_per_call seed_semaphore_4readers {:.2}", wall(&sem_4));
    println!("wall_ns_per_call now_4readers {:.2}", wall(&now_4));

    // 3. now() on 8 threads vs 1.
    let (mut t1, mut t8) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        t1.push(in_threads(1, || busy_and_wall(CALLS, now)));
        t8.push(in_threads(8, || busy_and_wall(CALLS, now)));
    }
    println!("busy_ns_per_call now_1thread {:.2}", busy(&t1));
    println!("busy_ns_per_call now_8threads {:.2}", busy(&t8));

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("ratio now_vs_counter_floor {now_vs_floor:.3}");
    println!("ratio now_vs_vdso_realtime {now_vs_vdso:.3}");
    println!("info ratio now_with_bounds_vs_counter_floor {bounds_vs_floor:.3}");
    println!("info ratio now_with_bounds_vs_vdso_realtime {bounds_vs_vdso:.3}");
    println!("ratio now_interval_vs_now {:.3}", interval_1 / now_1);
    println!("ratio past_tsc_vs_now {:.3}", past_1 / now_1);
    println!("ratio seed_semaphore_vs_now_4readers {:.1}", busy(&sem_4) / busy(&now_4));
    println!(
        "info wall_ratio seed_semaphore_vs_now_4readers {:.1} (wall time, includes waiting for one of {cpus} CPUs)",
        wall(&sem_4) / wall(&now_4)
    );
    println!("ratio now_8threads_vs_1thread {:.3}", busy(&t8) / busy(&t1));
    drop(publisher);
    let _ = std::fs::remove_dir_all(&dir);
}

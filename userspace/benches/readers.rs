//! Reader cost, measured side by side in one run: nicclock `now()` against `now_interval()`, a past
//! counter value's conversion (`convert(Past::Counter)`, 1.5 s old: through the history) and the
//! vDSO's clock_gettime(CLOCK_REALTIME), against the classic semaphore-guarded segment with 4 contending
//! readers, and with 8 threads against 1. Prints ns per call and `ratio <name> <x>` lines.
//!
//! Multi-threaded figures are "busy" ns per call: each thread's wall time minus the time it sat
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
const UPDATE_INTERVAL: Duration = Duration::from_millis(10);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.into_iter().collect();
    v.iter().sum::<f64>() / v.len() as f64
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
    let now = || {
        black_box(clock.now().unwrap());
    };
    let clock_ref = &clock;
    let past_tsc = |past: nicclock::Past| {
        move || {
            black_box(clock_ref.convert(black_box(past)).unwrap());
        }
    };
    let now_interval = || {
        black_box(clock.now_interval().unwrap());
    };
    let sem = || {
        black_box(classic.now());
    };
    let vdso = || {
        black_box(clock_gettime(ClockId::CLOCK_REALTIME).unwrap());
    };

    // 1. One thread: now() vs now_interval() vs clock_gettime(CLOCK_REALTIME) (vDSO), alternating
    // order each round.
    let (mut now_1, mut interval_1, mut vdso_1, mut sem_1, mut past_1) =
        (vec![], vec![], vec![], vec![], vec![]);
    for r in 0..ROUNDS {
        let past = past_value();
        if r % 2 == 0 {
            now_1.push(wall_per_call(CALLS, now));
            past_1.push(wall_per_call(CALLS, past_tsc(past)));
            interval_1.push(wall_per_call(CALLS, now_interval));
            vdso_1.push(wall_per_call(CALLS, vdso));
        } else {
            vdso_1.push(wall_per_call(CALLS, vdso));
            interval_1.push(wall_per_call(CALLS, now_interval));
            past_1.push(wall_per_call(CALLS, past_tsc(past)));
            now_1.push(wall_per_call(CALLS, now));
        }
        sem_1.push(wall_per_call(CALLS, sem));
    }
    let (now_1, interval_1, vdso_1, sem_1, past_1) =
        (median(now_1), median(interval_1), median(vdso_1), median(sem_1), median(past_1));
    println!("ns_per_call now_1thread {now_1:.2}");
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
    println!("ratio now_vs_vdso_realtime {:.3}", now_1 / vdso_1);
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

//! Torn-read stress: one writer publishes self-checking snapshots at ≥ 10 kHz while 4 reader
//! processes read for 10 s, then while 8 threads read through one shared `Clock` for 3 s
//! (NICCLOCK_STRESS_SECONDS overrides both); every read must be whole.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{assert_child_ok, env_var, identity, spawn_child, PageDir};
use nicclock::{
    counter, period_from_ns_per_tick, Clock, CounterKind, Error, Leap, Reference, ReferenceKind,
    ServoFigures, Snapshot, Status, UtcOffsetSource, Writer,
};

const READERS: usize = 4;
const RATE_HZ: u64 = 20_000;
/// 1000 s of clock time per generation: `now()` (anchor + a few ms) names its generation.
const TIME_STEP: u64 = 1_000_000_000_000;

fn kind(g: u64) -> CounterKind {
    if g % 2 == 0 {
        CounterKind::Tsc
    } else {
        CounterKind::MonotonicRaw
    }
}

/// The counter value generation `g` is published with: the counter now (readers refuse a mapping
/// ahead of their counter), 64 Ki–128 Ki ticks back, with g's low 16 bits as its own.
fn counter_for(g: u64) -> u64 {
    (counter::read(kind(g)).unwrap() - 0x20000) & !0xFFFF | (g & 0xFFFF)
}

/// Every field is a function of the generation `g` (the counter value's low 16 bits too), so any
/// mix of two updates shows. The bound is g × 1000 + 13 ns, which growth over a few seconds
/// raises by less than 1000: `now()`'s bound names its generation as well as its time does.
fn expected(g: u64, counter_value: u64) -> Snapshot {
    Snapshot {
        counter_kind: kind(g),
        counter_value,
        // A plausible rate for each kind (its exact value does not matter here).
        counter_period: period_from_ns_per_tick(if g % 2 == 0 { 0.4 } else { 1.0 }),
        // Mid-step: a reading a little before the anchor (counter read before the page) is still g's.
        anchor_tai_ns: g * TIME_STEP + TIME_STEP / 2,
        error_bound_ns: g * 1000 + 13,
        error_growth_ppt: (g ^ 0x5555) as u32,
        status: [Status::Unsynchronized, Status::Locking, Status::Locked, Status::Holdover]
            [(g / 256 % 4) as usize],
        leap: [Leap::None, Leap::Insert, Leap::Delete][(g / 256 % 3) as usize],
        leap_tai_s: g * 3,
        tai_utc_offset_s: (g % 1000) as i32,
        updated_tai_ns: g * TIME_STEP + TIME_STEP / 2,
        update_interval_ns: 1_000_000_000 + g,
        update_count: g,
        servo: ServoFigures {
            offset_ns: -(g as i64),
            freq_ppt: (g * 11) as i64,
            delay_ns: g * 13,
            state: (g % 4) as u32,
        },
        // The reference identity is read under the same seqlock: every field tied to g.
        reference: Reference {
            kind: ReferenceKind::ALL[(g % 4) as usize],
            gm_identity: g.to_be_bytes(),
            steps_removed: (g % 7) as u32,
            port_state: (g % 11) as u32,
            flags: (g % 64) as u32,
            utc_offset_source: [UtcOffsetSource::Host, UtcOffsetSource::Reference][(g % 2) as usize],
            gm_clock_accuracy: (g % 256) as u32,
            gm_accuracy_ns: g * 17,
        },
        // Tied to g too (the writer clamps it under the bound, which g × 1000 + 13 stays above).
        estimate: nicclock::Estimate { error_ns: g * 1000 + 7, growth_ppt: (g ^ 0x5555) as u32 / 2 },
        epoch: 0,
    }
}

/// What one reader counted.
#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    torn: u64,
    stuck: u64,
    generations: u64,
}

/// Reads `clock` (snapshot and now(), alternately) for `seconds`, checking every read is whole.
fn check_reads(clock: &Clock, seconds: f64) -> Tally {
    let mut t = Tally::default();
    let mut last = 0;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..64 {
            match clock.snapshot() {
                Ok(s) => {
                    let g = s.update_count;
                    // Every generation changes the counter and reference kind: a new epoch each,
                    // so the epoch is the generation too (the page's first is 1).
                    let same = Snapshot { epoch: 0, ..s.clone() } == expected(g, s.counter_value);
                    if !same || s.epoch as u64 != g || s.counter_value & 0xFFFF != g & 0xFFFF {
                        t.torn += 1;
                        eprintln!("torn snapshot: {s:?}");
                    }
                    if s.update_count < last {
                        t.torn += 1;
                        eprintln!("generation went back from {last} to {}", s.update_count);
                    }
                    if s.update_count != last {
                        t.generations += 1;
                        last = s.update_count;
                    }
                }
                Err(Error::WriterStuck) => t.stuck += 1,
                Err(e) => panic!("snapshot: {e}"),
            }
            match clock.now() {
                Ok(now) => {
                    let g = now.time_ns / TIME_STEP;
                    let bound_g = now.error_bound_ns() / 1000;
                    let est_g = now.estimated_error_ns() / 1000;
                    if bound_g != g
                        || now.error_bound_ns() % 1000 < 13
                        || now.status != expected(g, 0).status
                        || now.epoch as u64 != g
                        || est_g != g
                    {
                        t.torn += 1;
                        eprintln!("torn now(): {now:?}");
                    }
                }
                Err(Error::WriterStuck) => t.stuck += 1,
                Err(e) => panic!("now: {e}"),
            }
            t.reads += 2;
        }
    }
    t
}

#[test]
#[ignore = "entry point of the reader processes the stress test starts"]
fn child_entry() {
    let dir = std::path::PathBuf::from(env_var("PAGE_DIR"));
    let seconds: f64 = env_var("SECONDS").parse().unwrap();
    let clock = Clock::open_in(&dir, "stress").unwrap();
    let t = check_reads(&clock, seconds);
    println!("reader reads {} generations {} torn {} stuck {}", t.reads, t.generations, t.torn, t.stuck);
}

/// A writer thread publishing generation after generation at RATE_HZ on average until `stop`;
/// it returns the number of updates and the time it ran.
fn start_writer(dir: &PageDir, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, std::time::Duration)> {
    let mut w = Writer::create(&dir.options("stress"), &identity()).unwrap();
    w.publish(&expected(1, counter_for(1)));
    std::thread::spawn(move || {
        // Paced at RATE_HZ on average: a writer descheduled for a while catches up in a burst.
        let start = Instant::now();
        let mut g = 1;
        while !stop.load(Ordering::Relaxed) {
            let due = start.elapsed().as_nanos() as u64 * RATE_HZ / 1_000_000_000 + 1;
            while g < due {
                g += 1;
                w.publish(&expected(g, counter_for(g)));
            }
            std::thread::yield_now();
        }
        (g - 1, start.elapsed())
    })
}

/// History entries (ABI minor 4) read while the writer extends and replaces them: every entry
/// whole. Generation g maps CLOCK_MONOTONIC_RAW counter g ms to TAI BASE + g ms, one line, so an
/// entry (1 s of anchors: 1000 generations) strays from no update and its bounds are the last
/// closed generation's (plus 1 ns of rounding once it holds two); its bound g' × 1000 + 13, estimate g' × 1000 + 7, end counter
/// (g' + 1) ms, start counter, anchor and number all name their generations.
fn history_writer(dir: &PageDir, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    const MS: u64 = 1_000_000;
    const BASE: u64 = 1_700_000_000 * 1_000_000_000;
    let mut w = Writer::create(&dir.options("history"), &identity()).unwrap();
    let snap = move |g: u64| Snapshot {
        counter_kind: CounterKind::MonotonicRaw,
        counter_value: g * MS,
        counter_period: period_from_ns_per_tick(1.0),
        anchor_tai_ns: BASE + g * MS,
        error_bound_ns: g * 1000 + 13,
        error_growth_ppt: 0,
        updated_tai_ns: BASE + g * MS,
        estimate: nicclock::Estimate { error_ns: g * 1000 + 7, growth_ppt: 0 },
        reference: Reference::default(),
        ..expected(g, 0)
    };
    w.publish(&snap(1));
    std::thread::spawn(move || {
        let mut g = 1;
        while !stop.load(Ordering::Relaxed) {
            g += 1;
            w.publish(&snap(g));
            if g % 64 == 0 {
                std::thread::yield_now();
            }
        }
        g
    })
}

fn check_history(clock: &Clock, seconds: f64) -> (u64, u64, u64) {
    const MS: u64 = 1_000_000;
    const BASE: u64 = 1_700_000_000 * 1_000_000_000;
    let (mut entries, mut torn, mut stuck) = (0, 0, 0);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let list = match clock.history() {
            Ok(l) => l,
            Err(Error::WriterStuck) => {
                stuck += 1;
                continue;
            }
            Err(e) => panic!("history: {e}"),
        };
        for e in &list {
            entries += 1;
            let first = e.counter_start / MS;
            let last = e.counter_end / MS - 1;
            // An entry of one interval has that interval's bounds; a longer one adds 1 ns of rounding.
            let stray = u64::from(last > first);
            let whole = e.counter_start % MS == 0
                && e.counter_end % MS == 0
                && last >= first
                && e.anchor_tai_ns == BASE + first * MS
                && e.counter_period == period_from_ns_per_tick(1.0)
                && e.max_error_ns == last * 1000 + 13 + stray
                && e.est_error_ns == last * 1000 + 7 + stray
                && e.number == (first - 1) / 1000 + 1
                && e.epoch == 1;
            if !whole {
                torn += 1;
                eprintln!("torn history entry: {e:?}");
            }
        }
    }
    (entries, torn, stuck)
}

#[test]
fn history_entries_are_never_torn() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let seconds: f64 = std::env::var("NICCLOCK_STRESS_SECONDS").map_or(3.0, |s| s.parse().unwrap());
    let dir = PageDir::new("history");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = history_writer(&dir, stop.clone());
    let clock = Clock::open_in(&dir.path, "history").unwrap();
    let tallies: Vec<_> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2).map(|_| s.spawn(|| check_history(&clock, seconds))).collect();
        threads.into_iter().map(|t| t.join().expect("a reader thread panicked")).collect()
    });
    stop.store(true, Ordering::Relaxed);
    let updates = writer.join().unwrap();
    common::report(&format!(
        "history: writer {updates} updates; readers (entries, torn, stuck): {tallies:?}"
    ));
    assert!(updates > 2_000, "the writer made only {updates} updates: entries were never replaced");
    for (entries, torn, stuck) in tallies {
        assert_eq!((torn, stuck), (0, 0));
        assert!(entries > 100, "only {entries} entries read");
    }
}

/// The two stress tests take every CPU: run one at a time (the writer's rate is asserted).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn one_clock_shared_by_8_threads_never_sees_a_torn_read() {
    const THREADS: usize = 8;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let seconds: f64 = std::env::var("NICCLOCK_STRESS_SECONDS").map_or(3.0, |s| s.parse().unwrap());
    let dir = PageDir::new("threads");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&dir, stop.clone());
    // One handle, borrowed by every thread: `Clock` is Sync, its readings lock-free.
    let clock = Clock::open_in(&dir.path, "stress").unwrap();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS).map(|_| s.spawn(|| check_reads(&clock, seconds))).collect();
        threads.into_iter().map(|t| t.join().expect("a reader thread panicked")).collect()
    });
    stop.store(true, Ordering::Relaxed);
    let (updates, elapsed) = writer.join().unwrap();
    common::report(&format!(
        "threads: writer {updates} updates in {:.1} s; {THREADS} threads on one Clock: {tallies:?}",
        elapsed.as_secs_f64()
    ));
    // Every thread saw the page change under it while it read (on 2 CPUs, a thread that shares
    // its CPU with the writer sees fewer: they take turns).
    for (i, t) in tallies.iter().enumerate() {
        assert_eq!((t.torn, t.stuck), (0, 0), "thread {i}: {t:?}");
        assert!(t.generations >= 10, "thread {i} saw only {} updates", t.generations);
    }
    let seen: u64 = tallies.iter().map(|t| t.generations).sum();
    assert!(seen >= 1000, "the threads saw only {seen} updates in all: no concurrency to speak of");
}

#[test]
fn no_reader_process_ever_sees_a_torn_snapshot() {
    let seconds: f64 = std::env::var("NICCLOCK_STRESS_SECONDS").map_or(10.0, |s| s.parse().unwrap());
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PageDir::new("stress");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&dir, stop.clone());
    let env = vec![("PAGE_DIR", dir.path.display().to_string()), ("SECONDS", seconds.to_string())];
    let readers: Vec<_> = (0..READERS).map(|_| spawn_child("stress", &env, None)).collect();
    let outputs: Vec<_> = readers.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let (updates, elapsed) = writer.join().unwrap();
    let rate = updates as f64 / elapsed.as_secs_f64();
    common::report(&format!(
        "stress writer: {updates} updates in {:.1} s = {rate:.0} Hz",
        elapsed.as_secs_f64()
    ));
    assert!(rate >= 10_000.0, "writer published at {rate:.0} Hz, below 10 kHz");

    let (mut total_reads, mut total_torn, mut total_stuck) = (0, 0, 0);
    for (i, out) in outputs.iter().enumerate() {
        let stdout = assert_child_ok("stress reader", out);
        let line = stdout.lines().find(|l| l.starts_with("reader ")).expect("reader summary");
        let num = |key: &str| -> u64 {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| *w == key).unwrap();
            words[at + 1].parse().unwrap()
        };
        common::report(&format!(
            "stress reader {i}: reads {} generations {} torn {} stuck {}",
            num("reads"),
            num("generations"),
            num("torn"),
            num("stuck")
        ));
        assert!(num("generations") >= 1000, "reader {i} saw only {} updates", num("generations"));
        total_reads += num("reads");
        total_torn += num("torn");
        total_stuck += num("stuck");
    }
    common::report(&format!(
        "stress total: {READERS} reader processes, {total_reads} reads, {total_torn} torn, {total_stuck} stuck, {seconds} s"
    ));
    assert_eq!(total_torn, 0, "torn reads");
    assert_eq!(total_stuck, 0, "reads that gave up on the writer");
    assert!(total_reads > 1_000_000, "too few reads to mean anything: {total_reads}");
}

//! Waiting on the page: `wait_until` (LOCKED within an error bound) and `wait_until_after`
//! (commit-wait) against a test writer — reached at the update that makes it true, asleep on the
//! futex meanwhile, timeouts naming where the clock stands, and a writer that stops, loses its
//! device or dies during the wait ending it with that error, never a hang.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{identity, system_snapshot, PageDir};
use nicclock::{AfterWait, Clock, Error, Interval, Standing, Status, SyncCondition, SyncWait, Writer};

/// Every background wait must end within this, or the test fails (it never hangs).
const BOUND: Duration = Duration::from_secs(20);

fn open(dir: &PageDir, max_age: Duration) -> Arc<Clock> {
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    clock.set_max_age(max_age);
    Arc::new(clock)
}

/// Runs `wait` on its own thread; returns once that thread sleeps in the kernel on a futex
/// (its wait channel says so), with the receiver of its result.
fn waiting<T: Send + 'static>(
    clock: &Arc<Clock>,
    wait: impl FnOnce(&Clock) -> T + Send + 'static,
) -> mpsc::Receiver<T> {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    let clock = clock.clone();
    std::thread::spawn(move || {
        tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
        let _ = tx.send(wait(&clock));
    });
    let tid = tid_rx.recv().unwrap();
    let wchan = format!("/proc/self/task/{tid}/wchan");
    let start = Instant::now();
    loop {
        match std::fs::read_to_string(&wchan) {
            Ok(now) if now.contains("futex") => break,
            Ok(_) => {}
            Err(_) => break, // the thread has ended: its result is in
        }
        assert!(start.elapsed() < BOUND, "the waiter never went to sleep on a futex");
        std::thread::yield_now();
    }
    rx
}

fn result<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(BOUND).expect("the wait did not end: it hangs")
}

#[test]
fn wait_until_sleeps_until_the_update_that_reaches_the_condition() {
    let dir = PageDir::new("until-reach");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locking, 100));
    let clock = open(&dir, Duration::from_secs(60));
    let rx = waiting(&clock, |c| c.wait_until(SyncCondition::locked_within(1_000), Some(BOUND)));
    // LOCKED but too wide, then within: only the last one reaches it.
    w.publish(&system_snapshot(Status::Locked, 5_000));
    w.publish(&system_snapshot(Status::Locked, 200));
    match result(&rx).unwrap() {
        SyncWait::Reached(r) => {
            assert_eq!(r.now.status, Status::Locked);
            assert!((200..=1_000).contains(&r.now.error_bound_ns()), "{r:?}");
            // 10 ppm growth: the bound passes 1000 ns within 80 ms of the update.
            let holds = r.holds_for.expect("the bound grows");
            assert!(holds <= Duration::from_millis(80), "{r:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wait_until_reached_at_once_says_how_long_it_holds() {
    let dir = PageDir::new("until-now");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 100));
    let clock = open(&dir, Duration::from_secs(60));
    // 10 ppm growth from 100 ns: 100 µs is passed 9.99 s after the anchor.
    match clock.wait_until(SyncCondition::locked_within(100_000), Some(Duration::ZERO)).unwrap() {
        SyncWait::Reached(r) => {
            let holds = r.holds_for.unwrap();
            assert!(holds <= Duration::from_millis(9_990) && holds >= Duration::from_secs(1), "{r:?}");
        }
        other => panic!("{other:?}"),
    }
    // A bound that does not grow holds until the next update.
    w.publish(&nicclock::Snapshot { error_growth_ppt: 0, ..system_snapshot(Status::Locked, 100) });
    match clock.wait_until(SyncCondition::locked_within(100), None).unwrap() {
        SyncWait::Reached(r) => assert_eq!((r.now.error_bound_ns(), r.holds_for), (100, None)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wait_until_times_out_naming_where_the_clock_stands() {
    let dir = PageDir::new("until-timeout");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let clock = open(&dir, Duration::from_secs(60));
    let cond = SyncCondition::locked_within(1_000);
    let timeout = Some(Duration::from_millis(200));
    assert_eq!(clock.wait_until(cond, timeout).unwrap(), SyncWait::TimedOut(Standing::NoTimeYet));
    for (status, bound) in [(Status::Locked, 5_000), (Status::Holdover, 10), (Status::Locked, u64::MAX)] {
        w.publish(&system_snapshot(status, bound));
        match clock.wait_until(cond, timeout).unwrap() {
            SyncWait::TimedOut(Standing::Reading(now)) => {
                assert_eq!(now.status, status);
                assert!(now.error_bound_ns() >= bound, "{now:?}");
            }
            other => panic!("{status:?} ± {bound}: {other:?}"),
        }
    }
}

#[test]
fn a_writer_that_stops_or_loses_its_device_ends_the_wait_with_that_error() {
    for lost in [false, true] {
        let dir = PageDir::new("until-stop");
        let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
        w.publish(&system_snapshot(Status::Locked, 5_000));
        let clock = open(&dir, Duration::from_secs(60));
        let until = waiting(&clock, |c| c.wait_until(SyncCondition::locked_within(1_000), Some(BOUND)));
        let after = waiting(&clock, |c| c.wait_until_after(u64::MAX - 1, Some(BOUND)));
        if lost {
            w.device_lost(0xffff_ffff);
        } else {
            drop(w);
        }
        let want = if lost { Status::DeviceLost } else { Status::Stopped };
        for r in [result(&until).map(|_| ()), result(&after).map(|_| ())] {
            match r {
                Err(Error::Unavailable(s)) if s == want => {}
                other => panic!("wanted Unavailable({want:?}), got {other:?}"),
            }
        }
    }
}

#[test]
fn a_writer_that_dies_during_the_wait_ends_it_as_stale() {
    let dir = PageDir::new("until-dead");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 5_000));
    // The writer publishes no more (as if killed): the page goes stale after its max age.
    let clock = open(&dir, Duration::from_millis(300));
    let until = waiting(&clock, |c| c.wait_until(SyncCondition::locked_within(1_000), Some(BOUND)));
    let after = waiting(&clock, |c| c.wait_until_after(u64::MAX - 1, None));
    for r in [result(&until).map(|_| ()), result(&after).map(|_| ())] {
        assert!(matches!(r, Err(Error::Stale { .. })), "{r:?}");
    }
    drop(w);
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

#[test]
fn commit_wait_returns_once_earliest_is_past_t_and_sleeps_meanwhile() {
    let dir = PageDir::new("after");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 1_000));
    let clock = open(&dir, Duration::from_secs(60));
    for ahead_ms in [0, 1, 30] {
        let t = clock.now_interval().unwrap().latest_ns + ahead_ms * 1_000_000;
        let (cpu, start) = (thread_cpu(), Instant::now());
        let passed = clock.wait_until_after(t, Some(BOUND)).unwrap();
        let (cpu, wall) = (thread_cpu() - cpu, start.elapsed());
        match passed {
            AfterWait::Passed(i) => assert!(i.earliest_ns > t, "{i:?} vs {t}"),
            other => panic!("{other:?}"),
        }
        // Any reading from now on is certainly after t.
        let later = clock.now_interval().unwrap();
        assert!(later.definitely_after(&Interval::point(t)), "{later:?} vs {t}");
        if ahead_ms == 30 {
            assert!(cpu < wall / 2, "commit-wait spun: {cpu:?} of CPU in {wall:?}");
        }
    }
}

#[test]
fn commit_wait_ends_early_when_an_update_narrows_the_bound() {
    let dir = PageDir::new("after-narrow");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 3_600_000_000_000)); // ± 1 h
    let clock = open(&dir, Duration::from_secs(60));
    let t = clock.now().unwrap().time_ns;
    let rx = waiting(&clock, move |c| c.wait_until_after(t, Some(BOUND)));
    w.publish(&system_snapshot(Status::Locked, 100));
    match result(&rx).unwrap() {
        AfterWait::Passed(i) => assert!(i.earliest_ns > t && i.width_ns() < 1_000_000, "{i:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn commit_wait_times_out_and_an_unknown_bound_never_passes() {
    let dir = PageDir::new("after-timeout");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let clock = open(&dir, Duration::from_secs(60));
    let timeout = Some(Duration::from_millis(100));
    assert_eq!(clock.wait_until_after(0, timeout).unwrap(), AfterWait::TimedOut(None), "no time yet");
    w.publish(&system_snapshot(Status::Locked, 1_000));
    let now = clock.now_interval().unwrap();
    let t = now.latest_ns + 3_600_000_000_000;
    match clock.wait_until_after(t, timeout).unwrap() {
        AfterWait::TimedOut(Some(i)) => assert!(i.earliest_ns <= t),
        other => panic!("{other:?}"),
    }
    // The end of time, with an unknown bound: no overflow, just a timeout.
    w.publish(&system_snapshot(Status::Locked, u64::MAX));
    assert!(matches!(clock.wait_until_after(u64::MAX, timeout).unwrap(), AfterWait::TimedOut(Some(_))));
    match clock.wait_until_after(now.earliest_ns - 1_000_000_000, timeout).unwrap() {
        AfterWait::TimedOut(Some(i)) => assert_eq!((i.earliest_ns, i.latest_ns), (0, u64::MAX)),
        other => panic!("{other:?}"),
    }
}

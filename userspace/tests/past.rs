//! Past timestamps (ABI minor 4): a counter value or a system-clock timestamp taken earlier
//! converts with the mapping in force then, carries its epoch, and is refused — never guessed —
//! from before a disruption, from before the history, from the future; the estimated error.

mod common;

use std::sync::atomic::Ordering::{Relaxed, Release};

use common::{identity, system_snapshot, PageDir, TAI_UTC};
use nicclock::{counter, Clock, Error, EventKind, EventWait, Past, Snapshot, Status, Urgency, Writer};

const SEC: u64 = 1_000_000_000;

fn clock_ns(id: libc::clockid_t) -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::from_raw(id)).unwrap();
    t.tv_sec() as u64 * SEC + t.tv_nsec() as u64
}

/// `a` re-anchored at the counter now, `offset_ns` off a's line and `ppm` faster.
fn later(a: &Snapshot, offset_ns: i64, ppm: i64) -> Snapshot {
    let c = counter::read(a.counter_kind).unwrap();
    let tai = (a.tai_at(c) + offset_ns as i128) as u64;
    let period = (a.counter_period as i128 + a.counter_period as i128 * ppm as i128 / 1_000_000) as u64;
    Snapshot {
        counter_value: c,
        anchor_tai_ns: tai,
        updated_tai_ns: tai,
        counter_period: period,
        ..a.clone()
    }
}

#[test]
fn a_past_counter_converts_with_the_mapping_in_force_then_not_todays() {
    let dir = PageDir::new("past-mapping");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let a = system_snapshot(Status::Locked, 1_000);
    w.publish(&a);
    let then = counter::read(a.counter_kind).unwrap();
    // The next update moves the line 5 µs and the rate 10 ppm: `then` must not see either.
    let b = later(&a, 5_000, 10);
    w.publish(&b);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let got = clock.convert(Past::Counter(then)).unwrap();
    assert_eq!(got.time_ns as i128, a.tai_at(then), "a's mapping, not b's");
    // The entry's bound: a's, grown to the end of its interval (b's anchor).
    assert_eq!(got.error_bound_ns(), a.error_at(a.tai_at(b.counter_value)));
    assert!(got.estimated_error_ns() < got.error_bound_ns(), "{got:?}");
    assert_eq!((got.epoch, got.status), (w.epoch(), Status::Locked));
    // A counter after b's anchor: b's mapping, as now() would.
    let c = counter::read(a.counter_kind).unwrap();
    let now = clock.convert(Past::Counter(c)).unwrap();
    assert_eq!(now.time_ns as i128, b.tai_at(c));
    assert_eq!(now.epoch, w.epoch());
    // UTC is TAI less the page's offset.
    let utc = clock.convert_utc(Past::Counter(then)).unwrap();
    assert_eq!(got.time_ns - utc.time_ns, TAI_UTC as u64 * SEC);
    // The history lists the one closed interval.
    let history = clock.history().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!((history[0].counter_start, history[0].counter_end), (a.counter_value, b.counter_value));
}

#[test]
fn a_timestamp_from_before_a_step_or_the_history_or_in_the_future_is_refused() {
    let dir = PageDir::new("past-refused");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let kind = counter::best_available();
    let before_any = counter::read(kind).unwrap();
    let a = system_snapshot(Status::Locked, 1_000);
    w.publish(&a);
    let before_step = counter::read(kind).unwrap();
    let first = w.epoch();
    // A step: the publisher marks it before publishing the stepped mapping, then posts the STEP.
    w.mark_disruption();
    w.publish(&later(&a, 1_000_000, 0));
    w.post(EventKind::Step, Urgency::Notice, 1_000_000, 0, 0);
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    assert_eq!(w.epoch(), first + 1);
    match clock.convert(Past::Counter(before_step)) {
        Err(Error::BeforeDisruption { then, now }) => assert_eq!((then, now), (first, first + 1)),
        other => panic!("a timestamp from before the step converted: {other:?}"),
    }
    let err = clock.convert(Past::Counter(before_any)).unwrap_err();
    assert!(matches!(err, Error::OlderThanHistory { .. }), "{err:?}");
    assert!(err.to_string().contains("older than the page's history"), "{err}");
    let future = counter::read(kind).unwrap() + 10 * SEC;
    let err = clock.convert(Past::Counter(future)).unwrap_err();
    assert!(matches!(err, Error::InTheFuture { .. }), "{err:?}");
    let err = clock.convert(Past::Monotonic(clock_ns(libc::CLOCK_MONOTONIC) + 10 * SEC)).unwrap_err();
    assert!(matches!(err, Error::InTheFuture { .. }), "{err:?}");
    // The STEP event carries the epoch that begins with it; the start's the first one.
    clock.rewind_events();
    let mut epochs = Vec::new();
    while let Ok(EventWait::Event(e)) = clock.wait_event(Some(std::time::Duration::ZERO)) {
        epochs.push((e.kind, e.epoch));
    }
    assert_eq!(epochs.first(), Some(&(EventKind::Started, first)), "{epochs:?}");
    assert_eq!(epochs.last(), Some(&(EventKind::Step, first + 1)), "{epochs:?}");
    // A new writer on the page is a disruption too.
    drop(w);
    let w2 = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    assert_eq!(w2.epoch(), first + 2);
}

#[test]
fn system_clock_timestamps_convert_within_their_bound() {
    let dir = PageDir::new("past-clocks");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    // The page maps the system clock (TAI = REALTIME + 37 s): the truth of a CLOCK_MONOTONIC
    // timestamp is the realtime read right beside it.
    let a = system_snapshot(Status::Locked, 1_000);
    w.publish(&a);
    let mono = clock_ns(libc::CLOCK_MONOTONIC);
    let rt = clock_ns(libc::CLOCK_REALTIME);
    let raw = clock_ns(libc::CLOCK_MONOTONIC_RAW);
    std::thread::sleep(std::time::Duration::from_millis(20)); // a frame's age
    w.publish(&later(&a, 0, 0));
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let truth = rt + TAI_UTC as u64 * SEC;
    // The three reads above lie within a few µs of each other.
    let slack = 20_000;
    for (what, past) in [
        ("monotonic", Past::Monotonic(mono)),
        ("raw", Past::MonotonicRaw(raw)),
        ("realtime", Past::Realtime(rt)),
    ] {
        let got = clock.convert(past).unwrap();
        let miss = (got.time_ns as i128 - truth as i128).unsigned_abs() as u64;
        assert!(miss <= got.error_bound_ns() + slack, "{what}: {got:?} is {miss} ns from the truth");
        // 20 ms old: at least 20 µs of rate allowance, far less than a second's.
        assert!(got.error_bound_ns() >= 20_000 && got.error_bound_ns() < 1_000_000, "{what}: {got:?}");
    }
}

#[test]
fn a_page_of_an_older_writer_has_no_estimate_no_epoch_and_no_history() {
    let dir = PageDir::new("past-old");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let a = system_snapshot(Status::Locked, 1_000);
    w.publish(&a);
    let then = counter::read(a.counter_kind).unwrap();
    w.publish(&later(&a, 0, 0));
    // What a minor-3 writer leaves there: reserved zeros.
    let c = &w.page().clock;
    let seq = c.seq.load(Relaxed);
    c.seq.store(seq + 1, Release);
    c.disruption_epoch.store(0, Relaxed);
    c.est_error_ns.store(0, Relaxed);
    c.history_head.store(0, Relaxed);
    c.seq.store(seq + 2, Release);
    w.page().header.abi_minor.store(3, Release);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let now = clock.now().unwrap();
    assert_eq!((now.epoch, now.estimated_error_ns()), (0, now.error_bound_ns()), "{now:?}");
    assert_eq!(clock.snapshot().unwrap().estimate, nicclock::Estimate::UNKNOWN);
    let err = clock.convert(Past::Counter(then)).unwrap_err();
    assert!(matches!(err, Error::NoHistory { minor: 3 }), "{err:?}");
}

#[test]
fn a_history_entry_with_a_rate_no_counter_has_is_corrupt_not_a_time() {
    let dir = PageDir::new("past-hostile");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let a = system_snapshot(Status::Locked, 1_000);
    w.publish(&a);
    let then = counter::read(a.counter_kind).unwrap();
    w.publish(&later(&a, 0, 0));
    let e = &w.page().history[0];
    let seq = e.seq.load(Relaxed);
    e.seq.store(seq + 1, Release);
    e.counter_period.store(u64::MAX, Relaxed);
    e.seq.store(seq + 2, Release);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let err = clock.convert(Past::Counter(then)).unwrap_err();
    assert!(matches!(err, Error::ImplausiblePeriod { .. }), "{err:?}");
}

#[test]
fn an_older_writer_taking_over_a_newer_ones_page_leaves_no_live_epoch_or_history() {
    let dir = PageDir::new("past-downgrade");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let a = system_snapshot(Status::Locked, 1_000);
    w.publish(&a);
    let then = counter::read(a.counter_kind).unwrap();
    w.publish(&later(&a, 0, 0));
    // A minor-3 writer writes its minor into the header and knows nothing of the epoch, the
    // estimate or the history this one left in the clock block.
    w.page().header.abi_minor.store(3, Release);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let now = clock.now().unwrap();
    assert_eq!((now.epoch, now.estimated_error_ns()), (0, now.error_bound_ns()), "{now:?}");
    let snap = clock.snapshot().unwrap();
    assert_eq!((snap.epoch, snap.estimate), (0, nicclock::Estimate::UNKNOWN));
    let err = clock.convert(Past::Counter(then)).unwrap_err();
    assert!(matches!(err, Error::NoHistory { minor: 3 }), "{err:?}");
}

#[test]
fn a_reference_or_grandmaster_change_begins_a_new_epoch_by_itself() {
    let dir = PageDir::new("past-reference");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let start = w.epoch();
    w.publish(&system_snapshot(Status::Locked, 1_000));
    w.publish(&system_snapshot(Status::Locked, 1_000));
    assert_eq!(w.epoch(), start, "updates alone are one timeline");
    w.publish(&common::ptp_snapshot(Status::Locked, 1_000));
    assert_eq!(w.epoch(), start + 1, "system clock -> PTP");
    let mut other_gm = common::ptp_snapshot(Status::Locked, 1_000);
    other_gm.reference.gm_identity[7] ^= 1;
    w.publish(&other_gm);
    assert_eq!(w.epoch(), start + 2, "another grandmaster");
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    assert_eq!(clock.now().unwrap().epoch, start + 2);
}

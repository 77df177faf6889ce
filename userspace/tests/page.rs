//! Writer → page → reader, in one process: time and error bound, UTC and leap seconds, staleness,
//! status, identity, events (order, wake-up, overflow, timeout) and reuse of a page by a new writer.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{identity, ptp_snapshot, realtime_ns, system_snapshot, PageDir, TAI_UTC};
use nicclock::{counter, Clock, Error, EventKind, EventWait, Leap, Status, Urgency, Writer};

const SEC: u64 = 1_000_000_000;

fn next_event(clock: &mut Clock) -> nicclock::Event {
    match clock.wait_event(Some(Duration::from_secs(5))).expect("wait_event") {
        EventWait::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn now_is_the_published_clock_within_its_error_bound() {
    let dir = PageDir::new("now");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let snap = system_snapshot(Status::Locked, 2_000);
    w.publish(&snap);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    for _ in 0..1000 {
        let utc_before = clock.now_utc().unwrap();
        let before = realtime_ns() + TAI_UTC as u64 * SEC;
        let now = clock.now().unwrap();
        let after = realtime_ns() + TAI_UTC as u64 * SEC;
        let utc_after = clock.now_utc().unwrap();
        assert_eq!(now.status, Status::Locked);
        assert!(now.error_bound_ns() >= 2_000, "bound {} below the anchor's", now.error_bound_ns());
        assert!(
            now.latest_ns() + 1_000 >= before && now.earliest_ns() <= after + 1_000,
            "TAI {} ± {} not within the system clock's [{before}, {after}]",
            now.time_ns,
            now.error_bound_ns()
        );
        // The same mapping and a monotonic counter: UTC read before and after brackets TAI − 37 s
        // exactly, however long this thread was preempted in between.
        let tai_utc = TAI_UTC as u64 * SEC;
        assert!(
            utc_before.time_ns + tai_utc <= now.time_ns && now.time_ns <= utc_after.time_ns + tai_utc,
            "TAI − UTC is not {TAI_UTC} s: UTC {} then TAI {} then UTC {}",
            utc_before.time_ns,
            now.time_ns,
            utc_after.time_ns
        );
    }
    let (earliest, latest) = clock.bounds().unwrap();
    assert!(earliest < latest && latest - earliest >= 4_000);
    assert_eq!(clock.status().unwrap(), Status::Locked);
}

#[test]
fn the_ptp_reference_identity_round_trips_with_the_mapping() {
    let dir = PageDir::new("ptp-ref");
    let mut w = Writer::create(&dir.options("ptp0"), &identity()).unwrap();
    let snap = ptp_snapshot(Status::Locked, 300);
    w.publish(&snap);
    let clock = Clock::open_in(&dir.path, "ptp0").unwrap();
    let read = clock.snapshot().unwrap();
    assert_eq!(read.reference, snap.reference);
    assert_eq!(read, nicclock::Snapshot { update_count: 1, epoch: w.epoch(), ..snap });
    assert_eq!(read.reference.gm_identity_text(), "001b21.fffe.123456");
    assert_eq!(w.page().header.abi_minor.load(Ordering::Relaxed), 4);
}

#[test]
fn a_default_snapshot_publishes_the_system_clock_and_an_old_page_reads_as_unknown() {
    let dir = PageDir::new("old-ref");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 500));
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let r = clock.snapshot().unwrap().reference;
    assert_eq!(
        (r.kind, r.utc_offset_source),
        (nicclock::ReferenceKind::SystemClock, nicclock::UtcOffsetSource::Host)
    );
    // A minor-2 writer left the reference fields in reserved space, zero.
    let c = &w.page().clock;
    c.reference_kind.store(0, Ordering::Relaxed);
    c.utc_offset_source.store(0, Ordering::Relaxed);
    w.page().header.abi_minor.store(2, Ordering::Release);
    let r = clock.snapshot().unwrap().reference;
    assert_eq!(
        r,
        nicclock::Reference {
            kind: nicclock::ReferenceKind::Unknown,
            utc_offset_source: nicclock::UtcOffsetSource::Unknown,
            ..Default::default()
        }
    );
    assert_eq!(clock.now().unwrap().status, Status::Locked, "an old page still gives time");
    // A value no writer publishes is refused, naming the field.
    c.reference_kind.store(99, Ordering::Relaxed);
    let e = clock.snapshot().unwrap_err();
    assert!(e.to_string().contains("reference kind (99)"), "{e}");
}

#[test]
fn snapshot_and_identity_round_trip() {
    let dir = PageDir::new("roundtrip");
    let mut w = Writer::create(&dir.options("nic.0"), &identity()).unwrap();
    let snap = system_snapshot(Status::Holdover, 123);
    w.publish(&snap);
    w.publish(&snap);
    let clock = Clock::open_in(&dir.path, "nic.0").unwrap();
    let read = clock.snapshot().unwrap();
    assert_eq!(read, nicclock::Snapshot { update_count: 2, epoch: w.epoch(), ..snap });
    assert_eq!(clock.identity(), identity());
    assert_eq!(clock.writer_pid(), std::process::id());
    assert_eq!(clock.identity().clock_id, [0x52, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56]);
}

#[test]
fn no_time_before_the_first_update() {
    let dir = PageDir::new("notime");
    let _w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    assert!(matches!(clock.now(), Err(Error::NoTimeYet)), "{:?}", clock.now());
    assert_eq!(clock.status().unwrap(), Status::Unsynchronized);
}

#[test]
fn a_page_older_than_its_max_age_is_stale() {
    let dir = PageDir::new("stale");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Locked, 100);
    snap.updated_tai_ns -= 2 * SEC; // last update 2 s ago, interval 100 ms: max age 1 s
    w.publish(&snap);
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    match clock.now() {
        Err(Error::Stale { age_ms, max_age_ms }) => {
            assert!((2000..3000).contains(&age_ms), "age {age_ms}");
            assert_eq!(max_age_ms, 1000);
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    assert!(matches!(clock.status(), Err(Error::Stale { .. })));
    clock.set_max_age(Duration::from_secs(10));
    assert_eq!(clock.now().unwrap().status, Status::Locked);

    // A long update interval raises the default max age to 3 intervals.
    snap.update_interval_ns = 2 * SEC;
    w.publish(&snap);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    assert!(clock.now().is_ok(), "2 s old with a 2 s interval is fresh: {:?}", clock.now());
}

#[test]
fn error_bound_grows_with_distance_from_the_anchor() {
    let dir = PageDir::new("growth");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Holdover, 100);
    // Move the anchor 0.5 s into the past; 1 ppm growth adds ~500 ns by now.
    let ticks = (0.5e9 / common::ns_per_tick(snap.counter_kind)) as u64;
    snap.counter_value -= ticks;
    snap.anchor_tai_ns -= SEC / 2;
    snap.error_growth_ppt = 1_000_000;
    w.publish(&snap);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let e = clock.now().unwrap().error_bound_ns();
    assert!((100 + 450..100 + 700).contains(&e), "error bound {e}");
    snap.error_bound_ns = u64::MAX;
    w.publish(&snap);
    assert_eq!(clock.now().unwrap().error_bound_ns(), u64::MAX, "unknown stays unknown");
    // Bounds and estimates at or above 2^63 (grown on access, saturating): they still grow,
    // saturate at unknown, and the estimate stays at or below the bound.
    for (bound, est) in [(u64::MAX - 10, 40), (1 << 63, 40), (1_000, u64::MAX - 10), (1 << 63, 1 << 63)] {
        snap.error_bound_ns = bound;
        snap.estimate = nicclock::Estimate { error_ns: est, growth_ppt: 1_000_000 };
        w.publish(&snap);
        let now = clock.now().unwrap();
        let grown = |b: u64| b.saturating_add(450);
        assert!(now.error_bound_ns() >= grown(bound), "bound {bound}: {}", now.error_bound_ns());
        assert!(
            now.error_bound_ns() - bound <= 700 || now.error_bound_ns() == u64::MAX,
            "bound {bound}: {now:?}"
        );
        assert!(now.estimated_error_ns() <= now.error_bound_ns(), "{now:?}");
        assert!(now.estimated_error_ns() >= grown(est).min(now.error_bound_ns()), "estimate {est}: {now:?}");
    }
}

#[test]
fn lazy_bounds_belong_to_the_readings_mapping_not_the_page_at_access() {
    let dir = PageDir::new("lazy");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Locked, 100);
    snap.error_growth_ppt = 1_000_000;
    snap.estimate = nicclock::Estimate { error_ns: 40, growth_ppt: 1_000_000 };
    w.publish(&snap);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let reading = clock.now().unwrap();
    let (bound, est) = (reading.error_bound_ns(), reading.estimated_error_ns());
    assert!((100..100 + 1_000).contains(&bound) && (40..=bound).contains(&est), "{reading:?}");
    // The writer publishes very different bounds: the reading taken before keeps its own, each
    // time it is asked, and a copy of it says the same.
    snap.error_bound_ns = 1_000_000;
    snap.estimate = nicclock::Estimate { error_ns: 500_000, growth_ppt: 1_000_000 };
    w.publish(&snap);
    let copy = reading;
    for r in [reading, copy] {
        assert_eq!((r.error_bound_ns(), r.estimated_error_ns()), (bound, est), "{r:?}");
    }
    let fresh = clock.now().unwrap();
    assert!(fresh.error_bound_ns() >= 1_000_000 && fresh.estimated_error_ns() >= 500_000, "{fresh:?}");
    // A reading with its bounds given compares by what it says.
    let given = nicclock::Now::new(reading.time_ns, bound, est, reading.status, reading.epoch);
    assert_eq!(given, reading);
    assert_ne!(nicclock::Now::new(reading.time_ns, bound + 1, est, reading.status, reading.epoch), reading);
}

#[test]
fn default_max_age_is_three_intervals_at_least_a_second() {
    assert_eq!(nicclock::default_max_age_ns(10_000_000), SEC);
    assert_eq!(nicclock::default_max_age_ns(2 * SEC), 6 * SEC);
    // An interval no writer has (beyond 2^62 ns, 146 years) gives a limit no page reaches.
    assert_eq!(nicclock::default_max_age_ns(u64::MAX), 3 << 62);
}

#[test]
fn utc_applies_a_leap_second_when_due() {
    let dir = PageDir::new("leap");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Locked, 100);
    let tai_s = snap.anchor_tai_ns / SEC;
    snap.leap = Leap::Insert;
    snap.leap_tai_s = tai_s + 3600; // announced, not due
    w.publish(&snap);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let gap = |c: &Clock| {
        (c.now().unwrap().time_ns as i128 - c.now_utc().unwrap().time_ns as i128 + SEC as i128 / 2)
            / SEC as i128
    };
    assert_eq!(gap(&clock), 37);
    snap.leap_tai_s = tai_s - 1; // due
    w.publish(&snap);
    assert_eq!(gap(&clock), 38);
    snap.leap = Leap::Delete;
    w.publish(&snap);
    assert_eq!(gap(&clock), 36);
}

#[test]
fn stopped_and_lost_clocks_refuse_to_give_time() {
    let dir = PageDir::new("stop");
    let mut w = Writer::create(&dir.options("a"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 100));
    let clock = Clock::open_in(&dir.path, "a").unwrap();
    assert!(clock.now().is_ok());
    drop(w);
    assert!(matches!(clock.now(), Err(Error::Unavailable(Status::Stopped))), "{:?}", clock.now());
    assert_eq!(clock.status().unwrap(), Status::Stopped);
    assert_eq!(clock.writer_pid(), 0);

    let mut w = Writer::create(&dir.options("b"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 100));
    let mut clock = Clock::open_in(&dir.path, "b").unwrap();
    w.device_lost(0xffff_ffff);
    assert!(matches!(clock.now(), Err(Error::Unavailable(Status::DeviceLost))));
    let changed = next_event(&mut clock);
    assert_eq!((changed.kind, changed.urgency), (EventKind::StatusChanged, Urgency::Urgent));
    assert_eq!((changed.detail, changed.magnitude), (Status::Locked as u32, Status::DeviceLost as i64));
    let lost = next_event(&mut clock);
    assert_eq!((lost.kind, lost.urgency, lost.detail), (EventKind::DeviceLost, Urgency::Urgent, 0xffff_ffff));
    drop(w);
    assert_eq!(clock.status().unwrap(), Status::DeviceLost, "a lost device stays lost after shutdown");
    assert_eq!(next_event(&mut clock).kind, EventKind::Stopped);
}

#[test]
fn events_arrive_in_order_and_wake_a_sleeping_reader() {
    let dir = PageDir::new("events");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locking, 100));
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        let mut got = vec![];
        while got.len() < 3 {
            match clock.wait_event(None).unwrap() {
                EventWait::Event(e) => got.push((e, start.elapsed())),
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    });
    std::thread::sleep(Duration::from_millis(200)); // the reader is asleep in FUTEX_WAIT now
    w.post(EventKind::Step, Urgency::Notice, 1_500, 0, 0);
    w.publish(&system_snapshot(Status::Locked, 100));
    w.post(EventKind::FrequencyJump, Urgency::Notice, -42_000, 0, 0);
    let got = waiter.join().unwrap();
    let kinds: Vec<_> = got.iter().map(|(e, _)| e.kind).collect();
    assert_eq!(kinds, [EventKind::Step, EventKind::StatusChanged, EventKind::FrequencyJump]);
    assert_eq!(got[0].0.magnitude, 1_500);
    assert_eq!((got[1].0.detail, got[1].0.magnitude), (Status::Locking as u32, Status::Locked as i64));
    assert!(got.windows(2).all(|p| p[1].0.seq == p[0].0.seq + 1), "numbers are consecutive");
    assert!(got[0].1 >= Duration::from_millis(150), "the reader slept until the event");
    let now = realtime_ns() + TAI_UTC as u64 * SEC;
    assert!(got[0].0.tai_ns.abs_diff(now) < SEC, "event time is clock time");
}

#[test]
fn ring_overflow_is_reported_then_every_remaining_event_delivered() {
    let dir = PageDir::new("overflow");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let start = w.page().events.head.load(Ordering::Relaxed);
    for i in 0..100 {
        w.post(EventKind::Step, Urgency::Notice, i, 0, 1);
    }
    assert_eq!(clock.wait_event(Some(Duration::ZERO)).unwrap(), EventWait::Missed(36));
    for i in 36..100 {
        let e = next_event(&mut clock);
        assert_eq!((e.seq, e.magnitude), (start + 1 + i as u64, i));
    }
    assert_eq!(clock.wait_event(Some(Duration::from_millis(50))).unwrap(), EventWait::TimedOut);
}

#[test]
fn wait_event_times_out_when_nothing_happens() {
    let dir = PageDir::new("timeout");
    let _w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let start = Instant::now();
    assert_eq!(clock.wait_event(Some(Duration::from_millis(200))).unwrap(), EventWait::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[test]
fn history_replays_the_ring() {
    let dir = PageDir::new("history");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 100));
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    clock.rewind_events();
    let kinds: Vec<_> = (0..2).map(|_| next_event(&mut clock).kind).collect();
    assert_eq!(kinds, [EventKind::Started, EventKind::StatusChanged]);
}

#[test]
fn a_restarted_writer_reuses_the_page_and_readers_keep_working() {
    let dir = PageDir::new("reuse");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 100));
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let inode = std::fs::metadata(dir.page("eth0")).unwrap();
    drop(w);
    let kinds: Vec<_> = (0..2).map(|_| next_event(&mut clock).kind).collect();
    assert_eq!(kinds, [EventKind::StatusChanged, EventKind::Stopped]);

    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(dir.page("eth0")).unwrap().ino(), inode.ino(), "same file, reused in place");
    assert!(matches!(clock.now(), Err(Error::NoTimeYet)), "the old run's mapping is not served");
    let e = next_event(&mut clock);
    assert_eq!((e.kind, e.detail), (EventKind::Started, std::process::id()));
    w.publish(&system_snapshot(Status::Locked, 100));
    assert_eq!(clock.now().unwrap().status, Status::Locked, "the old mapping sees the new writer");
    assert_eq!(clock.snapshot().unwrap().update_count, 1);
}

#[test]
fn a_monotonic_raw_page_reads_as_well_as_a_tsc_page() {
    let dir = PageDir::new("monoraw");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let s = counter::sample_clock(nicclock::CounterKind::MonotonicRaw, libc::CLOCK_REALTIME, 5);
    let tai = s.clock_ns + TAI_UTC as u64 * SEC;
    w.publish(&nicclock::Snapshot {
        counter_kind: nicclock::CounterKind::MonotonicRaw,
        counter_value: s.counter,
        counter_period: nicclock::period_from_ns_per_tick(1.0),
        anchor_tai_ns: tai,
        updated_tai_ns: tai,
        ..system_snapshot(Status::Locked, 1_000)
    });
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let before = realtime_ns() + TAI_UTC as u64 * SEC;
    let now = clock.now().unwrap();
    let after = realtime_ns() + TAI_UTC as u64 * SEC;
    assert!(
        now.latest_ns() + 1_000 >= before && now.earliest_ns() <= after + 1_000,
        "{now:?} vs [{before}, {after}]"
    );
}

#[test]
fn a_name_that_could_leave_the_page_directory_is_an_invalid_name() {
    let dir = PageDir::new("badname");
    for name in ["../x", "", ".hidden", "a/b"] {
        match Clock::open_in(&dir.path, name) {
            Err(Error::InvalidName { reason, .. }) => assert!(!reason.is_empty()),
            Err(other) => panic!("{name:?}: expected InvalidName, got {other}"),
            Ok(_) => panic!("{name:?} opened"),
        }
    }
}

#[test]
fn a_counter_a_hair_before_the_anchor_is_believed_and_far_before_it_refused() {
    let dir = PageDir::new("before");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let ticks_per_us = 1_000.0 / common::ns_per_tick(counter::best_available());
    // 50 µs ahead of the counter: inside the tolerance (another CPU's counter, a reading racing an
    // update), read as a time up to 50 µs before the anchor.
    let mut snap = system_snapshot(Status::Locked, 100);
    snap.counter_value += (50.0 * ticks_per_us) as u64;
    w.publish(&snap);
    let now = clock.now().expect("within the tolerance");
    assert!(now.time_ns <= snap.anchor_tai_ns + 1_000_000, "{now:?}");
    // A second ahead: a mapping from another boot or a broken writer.
    snap.counter_value += (1e6 * ticks_per_us) as u64;
    w.publish(&snap);
    match clock.now() {
        Err(Error::AheadOfCounter { ahead_ns }) => assert!((900_000_000..1_100_000_000).contains(&ahead_ns)),
        other => panic!("expected AheadOfCounter, got {other:?}"),
    }
    assert_eq!(nicclock::abi::MAX_COUNTER_BEFORE_ANCHOR_NS, 100_000, "the documented tolerance");
}

/// now()'s fast path checks only the age's upper limit after its multiply, leaving pages published
/// more than the tolerance after their anchor to the general path: such a page still reads, and a
/// reading before its publication time (minus the tolerance) is still refused.
#[test]
fn a_page_published_after_its_anchor_reads_and_a_time_before_its_publication_is_refused() {
    let dir = PageDir::new("after-anchor");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    let ticks_per_ms = 1e6 / common::ns_per_tick(counter::best_available());
    // Anchored 20 ms ago, published 5 ms after the anchor (beyond the 100 µs tolerance): now is
    // ~15 ms after publication, a fresh page.
    let mut snap = system_snapshot(Status::Locked, 100);
    snap.counter_value -= (20.0 * ticks_per_ms) as u64;
    snap.anchor_tai_ns -= 20_000_000;
    snap.updated_tai_ns = snap.anchor_tai_ns + 5_000_000;
    w.publish(&snap);
    let published = clock.snapshot().unwrap();
    let c1 = counter::read(published.counter_kind).unwrap();
    let now = clock.now().expect("a page published after its anchor reads");
    let c2 = counter::read(published.counter_kind).unwrap();
    let time = now.time_ns as i128;
    assert!(published.tai_at(c1) <= time && time <= published.tai_at(c2), "{now:?}");
    // Published 1 s after its anchor, read 20 ms after the anchor: ~980 ms before its own
    // publication, far beyond the tolerance.
    snap.updated_tai_ns = snap.anchor_tai_ns + 1_000_000_000;
    w.publish(&snap);
    match clock.now() {
        Err(Error::AheadOfCounter { ahead_ns }) => assert!((900_000_000..1_000_000_000).contains(&ahead_ns)),
        other => panic!("expected AheadOfCounter, got {other:?}"),
    }
}

#[test]
fn a_newer_minor_s_unknown_kinds_read_as_unknown_and_the_same_values_on_our_minor_as_corrupt() {
    let dir = PageDir::new("newer-minor");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&ptp_snapshot(Status::Locked, 300));
    let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
    w.post(EventKind::Step, Urgency::Notice, 1_500, 7, 0);
    w.post(EventKind::Step, Urgency::Notice, 2_500, 8, 0);
    let page = w.page();
    // What a writer of a later minor might publish: a reference kind, a UTC offset source, an
    // event kind and an urgency this reader has never heard of.
    let head = page.events.head.load(Ordering::Acquire) as usize;
    let slots = [&page.ring[(head - 2) % 64], &page.ring[(head - 1) % 64]];
    for slot in slots {
        slot.kind.store(42, Ordering::Relaxed);
        slot.urgency.store(9, Ordering::Relaxed);
    }

    // Our own minor: no writer we know publishes these, so they are corruption, named.
    let e = clock.wait_event(Some(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(e, Error::Corrupt { field: "event kind/urgency", .. }), "{e:?}");
    page.clock.reference_kind.store(99, Ordering::Relaxed);
    page.clock.utc_offset_source.store(17, Ordering::Relaxed);
    let e = clock.snapshot().unwrap_err();
    assert!(e.to_string().contains("reference kind (99)"), "{e}");

    // A newer minor: a compatible addition this reader maps to "unknown", keeping the rest.
    page.header.abi_minor.store(nicclock::abi::ABI_MINOR + 1, Ordering::Release);
    let snap = clock.snapshot().unwrap();
    assert_eq!(snap.reference.kind, nicclock::ReferenceKind::Unknown);
    assert_eq!(snap.reference.utc_offset_source, nicclock::UtcOffsetSource::Unknown);
    assert_eq!(snap.reference.gm_identity_text(), "001b21.fffe.123456", "the rest of the reference kept");
    assert_eq!(snap.status, Status::Locked);
    let e = next_event(&mut clock);
    assert_eq!(
        (e.kind, e.raw_kind, e.urgency, e.magnitude, e.detail),
        (EventKind::Unknown, 42, Urgency::Urgent, 2_500, 8),
        "an unknown urgency is taken as urgent"
    );
    assert_eq!(clock.now().unwrap().status, Status::Locked);
}

/// The reader's fast path (counter ≥ 1 GHz, near its anchor) and its general path (a slower
/// counter, a reading hours from its anchor under a reader's own long max age, a UTC reading)
/// give the page's own mapping: the time between the mapping at counter reads taken just before
/// and after, the bound and estimate grown as [`Snapshot::error_at`] grows them (rounded up by
/// at most 1 ns), never the estimate above the bound.
#[test]
fn every_reading_path_gives_the_published_mapping() {
    let dir = PageDir::new("paths");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let base = system_snapshot(Status::Locked, 2_000);
    let kind = base.counter_kind;
    let ns_per_tick = common::ns_per_tick(kind);
    let hours_ticks = |h: f64| (h * 3600e9 / ns_per_tick) as u64;
    let cases = [
        ("fast", 0, 1.0, 1_000_000, 1_000),
        ("large growth", 0, 1.0, 4_000_000_000, 3_000_000_000),
        ("period 1.5× (slower counter)", 0, 1.5, 10_000_000, 1_000_000),
        ("10 h from its anchor", hours_ticks(10.0), 1.0, 1_000_000, 1_000),
    ];
    for (what, back_ticks, scale, growth_ppt, est_growth_ppt) in cases {
        let mut snap = base.clone();
        // A mapping `scale` times the counter's rate, anchored `back_ticks` ago at the time the
        // system clock's mapping gives there (the page is then that far from its anchor).
        snap.counter_period = nicclock::period_from_ns_per_tick(ns_per_tick * scale);
        snap.counter_value = snap.counter_value.wrapping_sub(back_ticks);
        snap.anchor_tai_ns -= (back_ticks as f64 * ns_per_tick * scale) as u64;
        snap.updated_tai_ns = snap.anchor_tai_ns;
        snap.error_growth_ppt = growth_ppt;
        snap.estimate = nicclock::Estimate { error_ns: 500, growth_ppt: est_growth_ppt };
        w.publish(&snap);
        let mut clock = Clock::open_in(&dir.path, "eth0").unwrap();
        clock.set_max_age(Duration::from_secs(24 * 3600));
        let published = clock.snapshot().unwrap();
        for utc in [false, true] {
            let c1 = counter::read(kind).unwrap();
            let now =
                if utc { clock.now_utc() } else { clock.now() }.unwrap_or_else(|e| panic!("{what}: {e}"));
            let c2 = counter::read(kind).unwrap();
            let shift = if utc { TAI_UTC as u64 * SEC } else { 0 };
            let (t1, t2) = (published.tai_at(c1), published.tai_at(c2));
            let time = now.time_ns as i128 + shift as i128;
            assert!(t1 <= time && time <= t2, "{what} (utc {utc}): {time} outside [{t1}, {t2}]");
            let (b1, b2) = (published.error_at(t1), published.error_at(t2));
            assert!(
                b1 <= now.error_bound_ns() && now.error_bound_ns() <= b2 + 1,
                "{what}: bound {} outside [{b1}, {b2} + 1]",
                now.error_bound_ns()
            );
            let since = |t: i128| (t - published.anchor_tai_ns as i128).unsigned_abs() as u64;
            let (e1, e2) = (published.estimate.grown(since(t1)), published.estimate.grown(since(t2)));
            assert!(
                e1.min(b1) <= now.estimated_error_ns()
                    && now.estimated_error_ns() <= (e2 + 1).min(now.error_bound_ns()),
                "{what}: estimate {} outside [{e1}, {e2} + 1] or above the bound {}",
                now.estimated_error_ns(),
                now.error_bound_ns()
            );
            assert_eq!((now.status, now.epoch), (Status::Locked, published.epoch), "{what}");
        }
    }
}

//! PtpRunner on the fake igb datapath in virtual time, against a minimal two-step master written
//! here (its clock is the simulation's truth, zero path delay): the slave steps, reaches SLAVE and
//! follows the master to within a few ns, reports the master lost when its Announces stop, and
//! keeps running when a TX stamp never comes; the page under PTP on top; and the same runner on
//! the simulated QEMU igb's own datapath (simnet's SimNic).

mod fakeport;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use fakeport::{from_master, ptp_message, FakeNic, SharedMem, OUR_MAC};
use nicclock::{CounterKind, Status, UtcOffsetSource};
use nicclock_driver::clock::{Nanos, Phc, RawTime, SteerChoice, Steering};
use nicclock_driver::measure::Host;
use nicclock_driver::model::{model, qemu_subsystem, Family, Quirks, INTEL};
use nicclock_driver::net::frame::{self, FrameFilter};
use nicclock_driver::net::port::{NetPort, PortConfig, StampUnlock, Transport, RX_MEM_BYTES, TX_MEM_BYTES};
use nicclock_driver::ptp::page::{PtpPage, PtpPageConfig};
use nicclock_driver::ptp::{ClockIdentity, PortState, PtpConfig, PtpRunner, RunnerEvent};
use nicclock_driver::scenario::EPOCH_TAI_NS;
use nicclock_driver::sim::{FrameSink, HostMemory, SimConfig, SimModel, SimNic};
use nicclock_driver::timesource::{TimeSource, VirtualTime};

const SYNC: u8 = 0;
const DELAY_REQ: u8 = 1;
const FOLLOW_UP: u8 = 8;
const DELAY_RESP: u8 = 9;
const ANNOUNCE: u8 = 0xb;
const MASTER_ID: [u8; 8] = [0x00, 0x1b, 0x21, 0xff, 0xfe, 0xaa, 0xbb, 0xcc];

type Runner = PtpRunner<Arc<FakeNic>, SharedMem>;

fn put_timestamp(b: &mut [u8], ns: u64) {
    b[0..6].copy_from_slice(&(ns / 1_000_000_000).to_be_bytes()[2..8]);
    b[6..10].copy_from_slice(&((ns % 1_000_000_000) as u32).to_be_bytes());
}

/// The master's clock: the truth (virtual time on the PTP epoch).
fn master_now(nic: &FakeNic) -> u64 {
    EPOCH_TAI_NS + nic.time.now_ns()
}

/// Where the master's frames go and the slave's come from, and the master's clock (the truth).
trait Wire {
    fn now_tai(&self) -> u64;
    fn to_slave(&self, frame: &[u8]);
    fn take_from_slave(&self) -> Vec<Vec<u8>>;
}

impl Wire for FakeNic {
    fn now_tai(&self) -> u64 {
        master_now(self)
    }
    fn to_slave(&self, frame: &[u8]) {
        self.deliver(frame);
    }
    fn take_from_slave(&self) -> Vec<Vec<u8>> {
        self.take_sent().into_iter().map(|(f, _)| f).collect()
    }
}

struct Master {
    seq: u16,
    announce_seq: u16,
    alive: bool,
    /// Path delays: frames arrive when delivered, so the master's stamps say it sent them this
    /// much earlier (t1) and received ours this much later (t4).
    to_slave_ns: u64,
    to_master_ns: u64,
}

impl Master {
    fn send(&self, w: &dyn Wire, payload: &[u8]) {
        w.to_slave(&from_master(frame::Transport::L2, payload));
    }

    fn sync(&mut self, w: &dyn Wire) {
        let t1 = w.now_tai() - self.to_slave_ns;
        let mut sync = ptp_message(SYNC, 44, 0, self.seq);
        sync[6] |= 0x02; // two-step
        sync[33] = (-3i8) as u8;
        self.send(w, &sync);
        let mut fu = ptp_message(FOLLOW_UP, 44, 0, self.seq);
        fu[32] = 2;
        fu[33] = (-3i8) as u8;
        put_timestamp(&mut fu[34..44], t1);
        self.send(w, &fu);
        self.seq = self.seq.wrapping_add(1);
    }

    fn announce(&mut self, w: &dyn Wire) {
        let a = fakeport::master_announce(MASTER_ID, self.announce_seq);
        self.send(w, &a);
        self.announce_seq = self.announce_seq.wrapping_add(1);
    }

    /// Answers the Delay_Reqs the slave sent (they reach the master at once: t4 = now).
    fn answer(&mut self, w: &dyn Wire) {
        let filter = FrameFilter {
            transport: frame::Transport::L2,
            own_mac: [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc],
            vlan: None,
        };
        for bytes in w.take_from_slave() {
            let Ok(f) = filter.parse(&bytes) else { continue };
            if f.message_type != DELAY_REQ || !self.alive {
                continue;
            }
            let req = f.payload;
            let mut r = ptp_message(DELAY_RESP, 54, 0, u16::from_be_bytes([req[30], req[31]]));
            r[32] = 3;
            put_timestamp(&mut r[34..44], w.now_tai() + self.to_master_ns);
            r[44..54].copy_from_slice(&req[20..30]);
            self.send(w, &r);
        }
    }
}

fn runner(nic: &Arc<FakeNic>) -> Runner {
    let cfg = PortConfig {
        family: Family::E82576,
        transport: Transport::L2,
        mac: OUR_MAC,
        domain: 0,
        stamp_unlock: StampUnlock::RxstmphRead,
    };
    let mut port = NetPort::new(nic.rx_mem.clone(), nic.tx_mem.clone(), cfg).unwrap();
    port.bring_up(&**nic).unwrap();
    let m = model(INTEL, SimModel::I82576.device_id()).unwrap();
    let phc = Phc::init(nic.clone(), m, Quirks::empty(), Steering::Hardware, nic.time.clone()).unwrap();
    let mut config = PtpConfig::new(ClockIdentity::from_mac(OUR_MAC));
    config.log_announce_interval = 0;
    config.log_sync_interval = -3;
    config.log_min_delay_req_interval = -3;
    PtpRunner::new(port, config, Rc::new(RefCell::new(phc)), nic.time.now_ns())
}

/// Runs `seconds` of virtual time in 1 ms steps (the master: Announce every second, Sync every
/// 125 ms while alive), collecting the runner's events with their times.
fn run(
    nic: &Arc<FakeNic>,
    r: &mut Runner,
    master: &mut Master,
    seconds: u64,
    events: &mut Vec<(u64, RunnerEvent)>,
) {
    let end = nic.time.now_ns() + seconds * 1_000_000_000;
    while nic.time.now_ns() < end {
        nic.time.advance(1_000_000);
        let now = nic.time.now_ns();
        if master.alive && now % 1_000_000_000 == 3_000_000 {
            master.announce(&**nic);
        }
        if master.alive && now % 125_000_000 == 5_000_000 {
            master.sync(&**nic);
        }
        events.extend(r.poll(now).into_iter().map(|e| (now, e)));
        master.answer(&**nic);
        if let Some(d) = r.next_deadline() {
            assert!(d > now, "a due timer was left unhandled ({d} <= {now})");
        }
    }
}

fn true_offset(nic: &FakeNic, r: &Runner) -> i64 {
    let ns = r.phc().borrow().raw_to_ns(RawTime(nic.raw_now()));
    (ns - Nanos(master_now(nic) as i128)).as_i64()
}

#[test]
fn the_slave_steps_locks_to_the_master_and_reports_it_lost() {
    let nic = FakeNic::new(Family::E82576, false, RX_MEM_BYTES, TX_MEM_BYTES);
    let mut r = runner(&nic);
    assert_eq!(r.status().state, PortState::Listening);
    assert!(r.next_deadline().is_some(), "the slave's first timers are armed");
    let mut master = Master { seq: 0, announce_seq: 0, alive: true, to_slave_ns: 0, to_master_ns: 0 };
    let mut events = Vec::new();
    run(&nic, &mut r, &mut master, 20, &mut events);

    assert!(
        events.iter().any(|(_, e)| matches!(e, RunnerEvent::Stepped { .. })),
        "the clock starts far off: stepped"
    );
    let slave_at = events.iter().find_map(|(t, e)| match e {
        RunnerEvent::StatusChanged(s) if s.state == PortState::Slave => Some((*t, *s)),
        _ => None,
    });
    let (_, s) = slave_at.unwrap_or_else(|| panic!("never SLAVE: {events:?}"));
    assert_eq!(s.grandmaster, ClockIdentity(MASTER_ID));
    let status = r.status();
    assert_eq!(status.state, PortState::Slave);
    assert_eq!(status.utc_offset_s, Some(37), "TAI-UTC from the master's Announce");
    assert_eq!(status.clock_accuracy, 0x21);
    let off = true_offset(&nic, &r);
    assert!(off.abs() < 100, "following the master to within 100 ns, got {off} ns");
    assert_eq!(r.port_counters().tx_stamps_lost, 0);
    assert!(r.port_counters().tx_stamps > 100, "{:?}", r.port_counters());
    assert_eq!(r.port_counters().event_unstamped, 0);

    // The master stops: the slave says so within 3 announce intervals (and a BMCA run).
    master.alive = false;
    let stopped = nic.time.now_ns();
    events.clear();
    run(&nic, &mut r, &mut master, 6, &mut events);
    let lost = events.iter().find_map(|(t, e)| match e {
        RunnerEvent::MasterLost { last } => Some((*t, *last)),
        _ => None,
    });
    let (t, last) = lost.unwrap_or_else(|| panic!("master never reported lost: {events:?}"));
    assert!(t - stopped <= 5_000_000_000, "lost after {} ms", (t - stopped) / 1_000_000);
    assert_eq!(last.grandmaster, ClockIdentity(MASTER_ID));
    assert_eq!(last.utc_offset_s, Some(37));
}

#[test]
fn lost_tx_stamps_are_counted_and_the_slave_carries_on() {
    let nic = FakeNic::new(Family::E82576, false, RX_MEM_BYTES, TX_MEM_BYTES);
    let mut r = runner(&nic);
    let mut master = Master { seq: 0, announce_seq: 0, alive: true, to_slave_ns: 0, to_master_ns: 0 };
    let mut events = Vec::new();
    nic.break_tx_stamping(true);
    run(&nic, &mut r, &mut master, 8, &mut events);
    let lost = events.iter().filter(|(_, e)| *e == RunnerEvent::TxStampLost).count() as u64;
    assert!(lost > 0, "{events:?}");
    assert_eq!(lost, r.port_counters().tx_stamps_lost);
    nic.break_tx_stamping(false);
    events.clear();
    run(&nic, &mut r, &mut master, 12, &mut events);
    assert_eq!(r.status().state, PortState::Slave, "{events:?}");
    let off = true_offset(&nic, &r);
    assert!(off.abs() < 100, "stamps back: following the master again, got {off} ns");
}

/// The machine on virtual time: the counter is virtual ns, the system clock the truth.
struct VirtualHost(Arc<FakeNic>);

impl Host for VirtualHost {
    fn counter_kind(&self) -> CounterKind {
        CounterKind::MonotonicRaw
    }
    fn counter(&self) -> u64 {
        self.0.time.now_ns()
    }
    fn reference_ns(&self) -> u64 {
        master_now(&self.0)
    }
    fn ns_per_tick(&self) -> (f64, f64) {
        (1.0, 1e-6)
    }
}

#[test]
fn the_page_under_ptp_locks_with_an_honest_bound_then_holds_over() {
    let nic = FakeNic::new(Family::E82576, false, RX_MEM_BYTES, TX_MEM_BYTES);
    let mut r = runner(&nic);
    // 5 µs each way but 200 ns longer towards us: the slave is 100 ns late and cannot see it.
    let mut master = Master { seq: 0, announce_seq: 0, alive: true, to_slave_ns: 0, to_master_ns: 0 };
    master_delays(&mut master, 5_100, 4_900);
    let host = VirtualHost(nic.clone());
    let mut page = PtpPage::new(PtpPageConfig::default(), ClockIdentity::from_mac(OUR_MAC), r.status());
    let mut locked_updates = 0;
    let mut worst_margin = i128::MAX;
    let mut last = None;
    for step in 0..30_000u64 {
        nic.time.advance(1_000_000);
        let now = nic.time.now_ns();
        if master.alive && now % 1_000_000_000 == 3_000_000 {
            master.announce(&*nic);
        }
        if master.alive && now % 125_000_000 == 5_000_000 {
            master.sync(&*nic);
        }
        for e in r.poll(now) {
            page.on_event(&e);
        }
        master.answer(&*nic);
        if step % 100 != 99 {
            continue;
        }
        let ptp = r.status();
        let u = page.update(&mut r.phc().borrow_mut(), &host, ptp).unwrap();
        let s = &u.snapshot;
        if s.status == Status::Locked {
            locked_updates += 1;
            let truth = i128::from(master_now(&nic));
            let error = (s.anchor_tai_ns as i128 - truth).abs();
            worst_margin = worst_margin.min(s.error_bound_ns as i128 - error);
            assert!(
                error <= s.error_bound_ns as i128,
                "step {step}: {error} ns off, bound {} ns, {:?}",
                s.error_bound_ns,
                r.status()
            );
            assert_eq!(s.tai_utc_offset_s, 37);
            assert_eq!(s.reference.utc_offset_source, UtcOffsetSource::Reference);
            assert_eq!(s.reference.gm_identity, MASTER_ID);
            assert_eq!(s.reference.port_state, 9);
        }
        if step == 20_000 - 1 {
            assert!(locked_updates > 50, "LOCKED within 20 s ({locked_updates} updates)");
            master.alive = false;
        }
        last = Some(u);
        if step > 25_000 {
            let u = last.as_ref().unwrap();
            assert_ne!(u.status, Status::Locked, "the master gone for 5 s (announce timeout 3 s)");
        }
    }
    let u = last.unwrap();
    assert_eq!(u.status, Status::Holdover, "10 s after the master left");
    assert_eq!(u.snapshot.tai_utc_offset_s, 37, "the master's TAI-UTC kept");
    assert!(u.snapshot.error_growth_ppt > 0);
    assert!(worst_margin > 0, "the bound covered the 100 ns the asymmetry hides");
}

fn master_delays(master: &mut Master, to_slave_ns: u64, to_master_ns: u64) {
    master.to_slave_ns = to_slave_ns;
    master.to_master_ns = to_master_ns;
}

/// The simulator's own NIC (issue 10's datapath: descriptors in host memory, stamps as the model
/// says), fed by the master here: the runner is the same one the daemon drives.
struct SimWire {
    nic: Arc<SimNic>,
    time: Arc<VirtualTime>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

impl FrameSink for Sink {
    fn transmit(&self, _t_ns: u64, frame: Vec<u8>) {
        self.0.lock().unwrap().push(frame);
    }
}

impl Wire for SimWire {
    fn now_tai(&self) -> u64 {
        EPOCH_TAI_NS + self.time.now_ns()
    }
    fn to_slave(&self, frame: &[u8]) {
        let _ = self.nic.deliver(frame);
    }
    fn take_from_slave(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

#[test]
fn the_runner_follows_a_master_through_the_simulated_qemu_igb_datapath() {
    let time = VirtualTime::new();
    let config = SimConfig { model: SimModel::I82576, qemu: true, ..SimConfig::ideal() };
    let nic = Arc::new(SimNic::new(config, time.clone()));
    let device = SimModel::I82576.device_id();
    let (vendor, subsystem) = qemu_subsystem(device).unwrap();
    let (quirks, _) = nicclock_driver::model::quirks(device, vendor, subsystem, true);
    let sent = Arc::new(Mutex::new(Vec::new()));
    nic.attach_wire(Arc::new(Sink(sent.clone())));
    let rx = HostMemory::new(RX_MEM_BYTES, 0x1000_0000);
    let tx = HostMemory::new(TX_MEM_BYTES, 0x2000_0000);
    nic.attach_memory(rx.clone());
    nic.attach_memory(tx.clone());
    let cfg = PortConfig {
        family: Family::E82576,
        transport: Transport::L2,
        mac: OUR_MAC,
        domain: 0,
        stamp_unlock: StampUnlock::for_quirks(quirks),
    };
    assert_eq!(cfg.stamp_unlock, StampUnlock::RxsatrhRead, "QEMU's igb, from the quirk table");
    let mut port = NetPort::new(rx, tx, cfg).unwrap();
    port.bring_up(&*nic).unwrap();
    let m = model(INTEL, device).unwrap();
    let steering = SteerChoice::Auto.resolve(quirks);
    assert_eq!(steering, Steering::Software, "QEMU: rate in the timecounter");
    let phc = Phc::init(nic.clone(), m, quirks, steering, time.clone()).unwrap();
    let mut ptp = PtpConfig::new(ClockIdentity::from_mac(OUR_MAC));
    ptp.log_announce_interval = 0;
    ptp.log_sync_interval = -3;
    ptp.log_min_delay_req_interval = -3;
    let mut r = PtpRunner::new(port, ptp, Rc::new(RefCell::new(phc)), time.now_ns());
    let wire = SimWire { nic: nic.clone(), time: time.clone(), sent };
    let mut master = Master { seq: 0, announce_seq: 0, alive: true, to_slave_ns: 0, to_master_ns: 0 };
    let mut slave_seen = false;
    for _ in 0..20_000 {
        time.advance(1_000_000);
        let now = time.now_ns();
        if now % 1_000_000_000 == 3_000_000 {
            master.announce(&wire);
        }
        if now % 125_000_000 == 5_000_000 {
            master.sync(&wire);
        }
        for e in r.poll(now) {
            slave_seen |= matches!(e, RunnerEvent::StatusChanged(s) if s.state == PortState::Slave);
        }
        master.answer(&wire);
    }
    assert!(slave_seen && r.status().state == PortState::Slave, "{:?}", r.status());
    let truth = r.phc().borrow().raw_to_ns(RawTime(nic.truth().raw));
    let off = (truth - Nanos(wire.now_tai() as i128)).as_i64();
    assert!(off.abs() < 100, "following the master through the datapath to within 100 ns, got {off} ns");
    let c = r.port_counters();
    assert_eq!((c.event_unstamped, c.tx_stamps_lost, c.stamp_missing), (0, 0, 0), "{c:?}");
    assert!(c.tx_stamps > 100, "{c:?}");
    assert_eq!(r.drops().total_dropped(), 0);
}

#[test]
fn the_runner_clears_a_stuck_rx_latch_though_it_checks_it_only_every_250_ms() {
    use nicclock_driver::net::port::{RX_DESCS, STUCK_RX_LATCH_NS};
    use nicclock_driver::ptp::runner::LATCH_CHECK_NS;
    let nic = FakeNic::new(Family::E82576, false, RX_MEM_BYTES, TX_MEM_BYTES);
    let mut r = runner(&nic);
    let announce = from_master(frame::Transport::L2, &ptp_message(ANNOUNCE, 64, 0, 1));
    let sync = from_master(frame::Transport::L2, &ptp_message(SYNC, 44, 0, 1));
    // The ring full, then a Sync the ring drops: its stamp holds the latch with no frame to claim it.
    for _ in 0..RX_DESCS - 1 {
        assert!(nic.deliver(&announce));
    }
    assert!(!nic.deliver(&sync));
    assert!(nic.rx_latch_valid());
    let t0 = nic.time.now_ns();
    let mut cleared_at = None;
    while nic.time.now_ns() < t0 + STUCK_RX_LATCH_NS + 2 * LATCH_CHECK_NS {
        nic.time.advance(1_000_000);
        r.poll(nic.time.now_ns());
        if cleared_at.is_none() && r.port_counters().rx_latch_cleared == 1 {
            cleared_at = Some(nic.time.now_ns() - t0);
        }
    }
    let at = cleared_at.expect("the stuck latch was cleared");
    assert!(
        (STUCK_RX_LATCH_NS..=STUCK_RX_LATCH_NS + LATCH_CHECK_NS + 1_000_000).contains(&at),
        "cleared {at} ns after it stuck"
    );
    assert!(!nic.rx_latch_valid());
    assert_eq!(r.port_counters().rx_latch_cleared, 1, "once");
}

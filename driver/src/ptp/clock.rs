//! statime's `Clock` trait on our NIC clock: time, steps and rate go through [`Phc`]'s methods,
//! so PTP steering obeys the same `--steer` rule as the discipline loop.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use nicclock_uio::RegisterAccess;
use statime::config::TimePropertiesDS;
use statime::time::{Duration, Time};

use crate::clock::{DeviceLost, Nanos, Phc, Ppb, Steering};

/// Our [`Nanos`] (TAI ns) as statime's [`Time`]; times before the epoch become 0.
pub fn to_time(ns: Nanos) -> Time {
    Time::from_nanos(u64::try_from(ns.0.max(0)).unwrap_or(u64::MAX))
}

/// statime's [`Time`] as our [`Nanos`] (rounded down to the ns).
pub fn from_time(t: Time) -> Nanos {
    Nanos(t.secs() as i128 * 1_000_000_000 + t.subsec_nanos() as i128)
}

/// statime's [`Duration`] as ns.
pub fn duration_ns(d: Duration) -> i128 {
    d.nanos_rounded()
}

/// The PHC shared between statime's port (which steers it) and the datapath (which converts raw
/// RX/TX stamps with it): single-threaded, so `Rc<RefCell<_>>`.
pub type SharedPhc<R> = Rc<RefCell<Phc<R>>>;

/// statime's view of our clock.
pub struct PtpClock<R> {
    phc: SharedPhc<R>,
    /// The last time read, returned by `now` once the device is gone (statime's `now` cannot fail).
    last: Cell<Nanos>,
    lost: Cell<bool>,
    /// Steps made since the owner last took them, ns (the page posts a STEP event for each).
    steps: Rc<RefCell<Vec<i64>>>,
    /// Whether statime owns the clock now: while false its steps and rate writes are refused
    /// (logged), the caller's discipline steers (see [`super::port`]).
    steering: Rc<Cell<bool>>,
}

impl<R: RegisterAccess> PtpClock<R> {
    pub fn new(phc: SharedPhc<R>) -> Self {
        Self {
            phc,
            last: Cell::new(Nanos(0)),
            lost: Cell::new(false),
            steps: Rc::default(),
            steering: Rc::new(Cell::new(true)),
        }
    }

    /// The switch that lets statime steer this clock (on by default; the port turns it off outside
    /// SLAVE so that exactly one steerer owns the clock).
    pub fn steering(&self) -> Rc<Cell<bool>> {
        self.steering.clone()
    }

    /// The clock's time, when statime may not steer it.
    fn refuse(&self, what: &str) -> Result<Time, DeviceLost> {
        log::warn!("ptp: {what} refused: the port is not SLAVE, the discipline steers the clock");
        Ok(to_time(self.read().inspect_err(|_| self.lost.set(true))?))
    }

    /// Where the steps this clock makes are recorded (shared with whoever reports them).
    pub fn steps(&self) -> Rc<RefCell<Vec<i64>>> {
        self.steps.clone()
    }

    /// Whether a read failed because the NIC went away (the daemon's device-lost path decides).
    pub fn lost(&self) -> bool {
        self.lost.get()
    }

    fn read(&self) -> Result<Nanos, DeviceLost> {
        let phc = self.phc.borrow();
        let ns = phc.raw_to_ns(phc.read_raw()?);
        self.last.set(ns);
        Ok(ns)
    }

    fn checked<T>(&self, r: Result<T, DeviceLost>) -> Result<T, DeviceLost> {
        if r.is_err() {
            self.lost.set(true);
        }
        r
    }
}

impl<R: RegisterAccess> statime::Clock for PtpClock<R> {
    type Error = DeviceLost;

    fn now(&self) -> Time {
        match self.read() {
            Ok(ns) => to_time(ns),
            Err(_) => {
                self.lost.set(true);
                to_time(self.last.get())
            }
        }
    }

    fn step_clock(&mut self, offset: Duration) -> Result<Time, DeviceLost> {
        if !self.steering.get() {
            return self.refuse("a step");
        }
        let delta = Nanos(duration_ns(offset));
        log::info!("ptp: stepping the clock by {delta}");
        let r = self.phc.borrow_mut().step(delta);
        if let Ok(Some(m)) = &r {
            log::warn!("ptp: step asked {} ns, the hardware moved {} ns", m.asked_ns, m.moved_ns);
        }
        self.checked(r)?;
        self.steps.borrow_mut().push(delta.as_i64());
        let now = self.checked(self.phc.borrow_mut().now())?;
        self.last.set(now);
        Ok(to_time(now))
    }

    fn set_frequency(&mut self, ppm: f64) -> Result<Time, DeviceLost> {
        if !self.steering.get() {
            return self.refuse("a rate change");
        }
        let r = self.phc.borrow_mut().set_frequency(Ppb(ppm * 1000.0));
        if let Ok(Some(d)) = &r {
            log::warn!("ptp: rate write moved the clock by {} ns", d.jump_ns);
        }
        self.checked(r)?;
        // Software steering re-anchored the timecounter with a read just now: its time is the
        // change's (one SYSTIM read less per Sync and Delay_Resp, each an exit under QEMU TCG).
        let now = if self.phc.borrow().steering() == Steering::Software {
            self.phc.borrow().last_read_ns()
        } else {
            self.checked(self.phc.borrow_mut().now())?
        };
        self.last.set(now);
        Ok(to_time(now))
    }

    fn set_properties(&mut self, _: &TimePropertiesDS) -> Result<(), DeviceLost> {
        // UTC offset and leap flags reach the page through `PtpPort::status`, not the clock.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use statime::Clock as _;

    use super::*;
    use crate::model::{model, Quirks, INTEL};
    use crate::regs;
    use crate::sim::{SimConfig, SimModel, SimNic};
    use crate::timesource::{TimeSource, VirtualTime};

    fn clock(steering: Steering) -> (PtpClock<Arc<SimNic>>, Arc<SimNic>, Arc<VirtualTime>) {
        let time = VirtualTime::new();
        let nic = Arc::new(SimNic::new(SimConfig::ideal(), time.clone()));
        let m = model(INTEL, SimModel::I82576.device_id()).unwrap();
        let phc = Phc::init(nic.clone(), m, Quirks::empty(), steering, time.clone()).unwrap();
        (PtpClock::new(Rc::new(RefCell::new(phc))), nic, time)
    }

    #[test]
    fn nanos_and_statime_time_round_trip() {
        for ns in [0i128, 1, 999_999_999, 1_767_225_637_123_456_789] {
            assert_eq!(from_time(to_time(Nanos(ns))), Nanos(ns));
        }
        assert_eq!(from_time(to_time(Nanos(-5))), Nanos(0), "before the epoch: 0");
        assert_eq!(duration_ns(Duration::from_nanos(-1234)), -1234);
    }

    #[test]
    fn rate_reaches_timinca_only_when_hardware_steered() {
        let (mut hw, nic, _) = clock(Steering::Hardware);
        let before = nic.read32(regs::TIMINCA);
        hw.set_frequency(10.0).unwrap();
        assert_ne!(nic.read32(regs::TIMINCA), before, "hardware steering writes TIMINCA");
        let (mut sw, nic, time) = clock(Steering::Software);
        let before = nic.read32(regs::TIMINCA);
        let t0 = from_time(sw.now());
        sw.set_frequency(100.0).unwrap();
        assert_eq!(nic.read32(regs::TIMINCA), before, "software steering leaves TIMINCA alone");
        time.wait_until(time.now_ns() + 1_000_000_000);
        let elapsed = (from_time(sw.now()) - t0).as_i64();
        // 1 s at +100 ppm on an ideal oscillator (to the tick), plus the reads' latency.
        assert!((1_000_099_000..1_000_110_000).contains(&elapsed), "{elapsed}");
    }

    #[test]
    fn steps_move_the_clock_by_the_offset() {
        let (mut c, _, _) = clock(Steering::Hardware);
        let before = from_time(c.now());
        let after = from_time(c.step_clock(Duration::from_nanos(1_000_000)).unwrap());
        let moved = (after - before).as_i64();
        assert!((1_000_000..1_010_000).contains(&moved), "{moved}");
        assert_eq!(*c.steps().borrow(), vec![1_000_000]);
        assert!(!c.lost());
    }
}

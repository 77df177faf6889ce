//! Test-only register fakes for the families the simulator does not imitate yet (82580/i350,
//! i210): a HashMap of registers plus just the SYSTIM latch, format, set and ISGN rate rules a test
//! needs, on virtual time; every register access takes `access_ns`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nicclock_uio::RegisterAccess;

use crate::model::Family;
use crate::regs;
use crate::timesource::{TimeSource, VirtualTime};

pub(crate) struct FakeNic {
    pub family: Family,
    pub time: Arc<VirtualTime>,
    pub access_ns: u64,
    state: Mutex<FakeState>,
}

struct FakeState {
    /// Counter ns at virtual time `at`.
    base_ns: u128,
    at: u64,
    latched: (u32, u32),
    pending_lo: u32,
    regs: HashMap<usize, u32>,
    /// Every register access, in order.
    log: Vec<(char, usize)>,
    /// Oscillator error, relative.
    freq_error: f64,
}

impl FakeNic {
    pub fn new(family: Family, time: Arc<VirtualTime>, access_ns: u64) -> Arc<Self> {
        let state = FakeState {
            base_ns: 0,
            at: time.now_ns(),
            latched: (0, 0),
            pending_lo: 0,
            regs: HashMap::from([(regs::TSAUXC, regs::TSAUXC_DISABLE), (regs::STATUS, 0x80783)]),
            log: vec![],
            freq_error: 0.0,
        };
        Arc::new(Self { family, time, access_ns, state: Mutex::new(state) })
    }

    /// The counter's ns now (the truth).
    pub fn counter_ns(&self) -> u128 {
        let s = self.state.lock().unwrap();
        self.counter(&s)
    }

    /// Sets the counter's ns now.
    pub fn set_counter_ns(&self, ns: u128) {
        let mut s = self.state.lock().unwrap();
        s.base_ns = ns;
        s.at = self.time.now_ns();
    }

    /// Gives the oscillator a frequency error (ppm, positive: fast); TIMINCA corrects it.
    pub fn set_freq_error_ppm(&self, ppm: f64) {
        let mut s = self.state.lock().unwrap();
        s.base_ns = self.counter(&s);
        s.at = self.time.now_ns();
        s.freq_error = ppm * 1e-6;
    }

    /// Register accesses so far: ('r' | 'w', offset).
    pub fn log(&self) -> Vec<(char, usize)> {
        self.state.lock().unwrap().log.clone()
    }

    fn counter(&self, s: &FakeState) -> u128 {
        if s.regs.get(&regs::TSAUXC).is_some_and(|v| v & regs::TSAUXC_DISABLE != 0) {
            return s.base_ns;
        }
        // 8 ns per 8 ns tick ± TIMINCA·2^-32 ns (ISGN: minus), on an oscillator with an error.
        let timinca = s.regs.get(&regs::TIMINCA).copied().unwrap_or(0);
        let rate = crate::clock::isgn_rate_of(timinca).0 * 1e-9;
        let elapsed = (self.time.now_ns() - s.at) as f64 * (1.0 + s.freq_error) * (1.0 + rate);
        s.base_ns + elapsed as u128
    }

    fn words(&self, ns: u128) -> (u32, u32) {
        match self.family {
            // Reserved SYSTIMH bits read as garbage: the driver must mask them.
            Family::E82580 => (ns as u32, ((ns >> 32) as u32 & 0xFF) | 0xAB00),
            Family::I210 => ((ns % 1_000_000_000) as u32, (ns / 1_000_000_000) as u32),
            _ => unreachable!("the fake imitates 82580/i350 and i210 only"),
        }
    }
}

impl RegisterAccess for FakeNic {
    fn len(&self) -> usize {
        0x20000
    }

    fn read32(&self, offset: usize) -> u32 {
        self.time.advance(self.access_ns);
        let mut s = self.state.lock().unwrap();
        s.log.push(('r', offset));
        match offset {
            regs::SYSTIMR => {
                s.latched = self.words(self.counter(&s));
                0x1234
            }
            regs::SYSTIML => s.latched.0,
            regs::SYSTIMH => s.latched.1,
            _ => s.regs.get(&offset).copied().unwrap_or(0),
        }
    }

    fn write32(&self, offset: usize, value: u32) {
        self.time.advance(self.access_ns);
        let mut s = self.state.lock().unwrap();
        s.log.push(('w', offset));
        match (self.family, offset) {
            (Family::I210, regs::SYSTIML) => s.pending_lo = value,
            (Family::I210, regs::SYSTIMH) => {
                s.base_ns = value as u128 * 1_000_000_000 + s.pending_lo as u128;
                s.at = self.time.now_ns();
            }
            (_, regs::TSAUXC | regs::TIMINCA) => {
                s.base_ns = self.counter(&s);
                s.at = self.time.now_ns();
                s.regs.insert(offset, value);
            }
            _ => {
                s.regs.insert(offset, value);
            }
        }
    }
}

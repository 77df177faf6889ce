//! A small fake igb datapath for the port and runner tests: the clock registers are a simulated
//! NIC's, the rest a register file with just enough device behaviour (TX on TDT writes, RX into
//! the ring, the 82576 RX/TX stamp latches and their release, the 82580+ in-buffer header).
//! Stand-in until the simulator's full datapath (sim/datapath.rs) is there.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use nicclock_driver::model::Family;
use nicclock_driver::net::desc::{self, reg, rx_status, RxWriteback, TxData, DESC_LEN};
use nicclock_driver::net::frame::{FrameSpec, Transport};
use nicclock_driver::net::port::preg;
use nicclock_driver::net::DescMemory;
use nicclock_driver::regs::{RXSTMPH, RXSTMPL, TSYNCRXCTL, TSYNCTXCTL, TXSTMPH, TXSTMPL};
use nicclock_driver::sim::{SimConfig, SimModel, SimNic};
use nicclock_driver::timesource::VirtualTime;
use nicclock_uio::RegisterAccess;

pub const RX_BASE: u64 = 0x10_0000_0000;
pub const TX_BASE: u64 = 0x20_0000_0000;
pub const MASTER_MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc];
pub const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x10];

/// Ring memory the fake device and the port share (what `sim::HostMemory` will be).
#[derive(Clone)]
pub struct SharedMem {
    data: Rc<RefCell<Vec<u8>>>,
    base: u64,
}

impl SharedMem {
    pub fn new(len: usize, base: u64) -> Self {
        Self { data: Rc::new(RefCell::new(vec![0; len])), base }
    }

    fn offset(&self, addr: u64) -> usize {
        (addr - self.base) as usize
    }
}

impl DescMemory for SharedMem {
    fn len(&self) -> usize {
        self.data.borrow().len()
    }
    fn read_u64(&self, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.data.borrow()[offset..offset + 8]);
        u64::from_le_bytes(b)
    }
    fn write_u64(&mut self, offset: usize, value: u64) {
        self.data.borrow_mut()[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.data.borrow()[offset..offset + out.len()]);
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.data.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn device_addr(&self, offset: usize, _len: usize) -> Option<u64> {
        Some(self.base + offset as u64)
    }
}

#[derive(Default)]
struct DevState {
    rdh: usize,
    tdh: usize,
    rx_valid: bool,
    rx_stamp: u64,
    tx_valid: bool,
    tx_stamp: u64,
    sent: Vec<(Vec<u8>, bool)>,
    rx_dropped: u64,
    /// TX frames that asked for a stamp get none (a broken latch).
    tx_stamping_broken: bool,
    /// Register offsets read (for the tests' checks of latch releases).
    reads: Vec<usize>,
    /// STATUS, when a test set it (else link up at 1000 Mb/s).
    status: Option<u32>,
}

/// The fake device.
pub struct FakeNic {
    pub sim: SimNic,
    pub time: Arc<VirtualTime>,
    family: Family,
    /// QEMU's igb: the RX latch is released by reading RXSATRH, not RXSTMPH.
    qemu_unlock: bool,
    regs: RefCell<HashMap<usize, u32>>,
    pub rx_mem: SharedMem,
    pub tx_mem: SharedMem,
    st: RefCell<DevState>,
}

const STATUS_LU_1000: u32 = 0x2 | 0x80;

fn clock_register(off: usize) -> bool {
    (0xB600..0xB614).contains(&off) || (0xB640..0xB800).contains(&off)
}

impl FakeNic {
    /// A fake of `family` (82576, 82580 or i210 stamping), ideal oscillator, on virtual time.
    // Arc because the register seam is implemented for it; single-threaded here.
    #[allow(clippy::arc_with_non_send_sync)]
    pub fn new(family: Family, qemu_unlock: bool, rx_len: usize, tx_len: usize) -> Arc<Self> {
        let time = VirtualTime::new();
        let model = match family {
            Family::E82580 => SimModel::I350,
            Family::I210 => SimModel::I210,
            _ => SimModel::I82576,
        };
        let sim = SimNic::new(SimConfig { model, ..SimConfig::ideal() }, time.clone());
        Arc::new(Self {
            sim,
            time,
            family,
            qemu_unlock,
            regs: RefCell::default(),
            rx_mem: SharedMem::new(rx_len, RX_BASE),
            tx_mem: SharedMem::new(tx_len, TX_BASE),
            st: RefCell::default(),
        })
    }

    fn get(&self, off: usize) -> u32 {
        self.regs.borrow().get(&off).copied().unwrap_or(0)
    }

    fn ring_len(&self, len_reg: usize) -> usize {
        (self.get(len_reg) as usize / DESC_LEN).max(1)
    }

    fn rx_desc_addr(&self, i: usize) -> u64 {
        (u64::from(self.get(reg::RDBAH0)) << 32 | u64::from(self.get(reg::RDBAL0))) + (i * DESC_LEN) as u64
    }

    fn tx_desc_addr(&self, i: usize) -> u64 {
        (u64::from(self.get(reg::TDBAH0)) << 32 | u64::from(self.get(reg::TDBAL0))) + (i * DESC_LEN) as u64
    }

    /// Frames the port sent: (frame, asked for a stamp).
    pub fn sent(&self) -> Vec<(Vec<u8>, bool)> {
        self.st.borrow().sent.clone()
    }

    /// Takes the frames sent so far.
    pub fn take_sent(&self) -> Vec<(Vec<u8>, bool)> {
        std::mem::take(&mut self.st.borrow_mut().sent)
    }

    pub fn rx_dropped(&self) -> u64 {
        self.st.borrow().rx_dropped
    }

    pub fn break_tx_stamping(&self, broken: bool) {
        self.st.borrow_mut().tx_stamping_broken = broken;
    }

    /// Sets STATUS (link up/down, speed).
    pub fn set_status(&self, status: u32) {
        self.st.borrow_mut().status = Some(status);
    }

    pub fn rx_latch_valid(&self) -> bool {
        self.st.borrow().rx_valid
    }

    pub fn tx_latch_valid(&self) -> bool {
        self.st.borrow().tx_valid
    }

    /// Register offsets read so far (cleared by the call).
    pub fn take_reads(&self) -> Vec<usize> {
        std::mem::take(&mut self.st.borrow_mut().reads)
    }

    /// The NIC's raw counter now (what a stamp taken now holds).
    pub fn raw_now(&self) -> u64 {
        self.sim.truth().raw
    }

    /// A frame arrives from the wire now: stamped as the family does, into the next free
    /// descriptor. False when the ring had none (dropped; on the 82576 a stamp may still latch).
    pub fn deliver(&self, frame: &[u8]) -> bool {
        let rx_on = self.get(TSYNCRXCTL) & 0x10 != 0;
        let event = is_event(frame);
        let raw = self.raw_now();
        let mut st = self.st.borrow_mut();
        let mut latched = false;
        if self.family == Family::E82576 && rx_on && event && !st.rx_valid {
            st.rx_valid = true;
            st.rx_stamp = raw;
            latched = true;
        }
        let n = self.ring_len(reg::RDLEN0);
        if self.get(reg::RXDCTL0) & desc::ctl::QUEUE_ENABLE == 0 || st.rdh == self.get(reg::RDT0) as usize {
            st.rx_dropped += 1;
            return false;
        }
        let at = self.rx_desc_addr(st.rdh);
        let mut rx = self.rx_mem.clone();
        let off = rx.offset(at);
        let buf_addr = rx.read_u64(off);
        let mut status = rx_status::DD | rx_status::EOP;
        let mut bytes = Vec::new();
        if self.family != Family::E82576 && rx_on {
            bytes.extend_from_slice(&[0; 8]);
            bytes.extend_from_slice(&raw.to_le_bytes());
            status |= rx_status::TSIP;
        }
        if latched {
            status |= rx_status::TS;
        }
        bytes.extend_from_slice(frame);
        let boff = rx.offset(buf_addr);
        rx.write_bytes(boff, &bytes);
        let wb =
            RxWriteback { pkt_info: 0, rss: 0, status_error: status, length: bytes.len() as u16, vlan: 0 };
        let d = wb.encode();
        rx.write_u64(off, d[0]);
        rx.write_u64(off + 8, d[1]);
        st.rdh = (st.rdh + 1) % n;
        true
    }

    fn process_tx(&self) {
        let n = self.ring_len(reg::TDLEN0);
        let tdt = self.get(reg::TDT0) as usize;
        let tx_on = self.get(TSYNCTXCTL) & 0x10 != 0;
        let raw = self.raw_now();
        let mut st = self.st.borrow_mut();
        let mut tx = self.tx_mem.clone();
        while st.tdh != tdt {
            let off = tx.offset(self.tx_desc_addr(st.tdh));
            let d = [tx.read_u64(off), tx.read_u64(off + 8)];
            if let Some(data) = TxData::decode(d) {
                let mut frame = vec![0; usize::from(data.len)];
                tx.read_bytes(tx.offset(data.addr), &mut frame);
                if data.timestamp && tx_on && !st.tx_valid && !st.tx_stamping_broken {
                    st.tx_valid = true;
                    st.tx_stamp = raw;
                }
                st.sent.push((frame, data.timestamp));
            }
            tx.write_u64(off + 8, desc::tx_writeback_done());
            st.tdh = (st.tdh + 1) % n;
        }
    }
}

/// Whether the 82576 would stamp this frame: a PTP event message over L2 or UDP port 319.
fn is_event(frame: &[u8]) -> bool {
    let ethertype = frame.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match ethertype {
        Some(0x88F7) => frame.get(14).is_some_and(|t| t & 0x0F < 4),
        Some(0x0800) => {
            frame.get(23) == Some(&17)
                && frame.get(36..38) == Some(&319u16.to_be_bytes()[..])
                && frame.get(42).is_some_and(|t| t & 0x0F < 4)
        }
        _ => false,
    }
}

impl RegisterAccess for FakeNic {
    fn len(&self) -> usize {
        0x20000
    }

    fn read32(&self, offset: usize) -> u32 {
        if clock_register(offset) {
            return self.sim.read32(offset);
        }
        self.st.borrow_mut().reads.push(offset);
        let mut st = self.st.borrow_mut();
        match offset {
            preg::STATUS => st.status.unwrap_or(STATUS_LU_1000),
            TSYNCRXCTL => self.get(offset) | u32::from(st.rx_valid),
            RXSTMPL => st.rx_stamp as u32,
            RXSTMPH => {
                if !self.qemu_unlock {
                    st.rx_valid = false;
                }
                (st.rx_stamp >> 32) as u32
            }
            preg::RXSATRH => {
                if self.qemu_unlock {
                    st.rx_valid = false;
                }
                0
            }
            TSYNCTXCTL => self.get(offset) | u32::from(st.tx_valid),
            TXSTMPL => st.tx_stamp as u32,
            TXSTMPH => {
                st.tx_valid = false;
                (st.tx_stamp >> 32) as u32
            }
            _ => self.get(offset),
        }
    }

    fn write32(&self, offset: usize, value: u32) {
        if clock_register(offset) {
            return self.sim.write32(offset, value);
        }
        let value = if matches!(offset, TSYNCRXCTL | TSYNCTXCTL) { value & !1 } else { value };
        self.regs.borrow_mut().insert(offset, value);
        match offset {
            reg::TDT0 => self.process_tx(),
            reg::RDH0 => self.st.borrow_mut().rdh = value as usize,
            reg::TDH0 => self.st.borrow_mut().tdh = value as usize,
            _ => {}
        }
    }
}

/// A PTP message: `kind` (messageType), `len` bytes, `domain`, sequence `seq`, from the master.
/// The minimal master's Announce (domain 0): grandmaster `master_id`, class 6, accuracy 0x21
/// (100 ns), GNSS, TAI−UTC 37 valid, PTP timescale.
pub fn master_announce(master_id: [u8; 8], seq: u16) -> Vec<u8> {
    let mut a = ptp_message(0xB, 64, 0, seq);
    a[7] = 0x04 | 0x08; // currentUtcOffsetValid, ptpTimescale
    a[32] = 5;
    a[44..46].copy_from_slice(&37i16.to_be_bytes());
    a[47] = 128;
    a[48] = 6;
    a[49] = 0x21;
    a[50..52].copy_from_slice(&0x4e5du16.to_be_bytes());
    a[52] = 128;
    a[53..61].copy_from_slice(&master_id);
    a[63] = 0x20;
    a
}

pub fn ptp_message(kind: u8, len: usize, domain: u8, seq: u16) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0] = kind;
    b[1] = 0x12;
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    b[4] = domain;
    b[20..28].copy_from_slice(&[0x00, 0x1b, 0x21, 0xff, 0xfe, 0xaa, 0xbb, 0xcc]);
    b[28..30].copy_from_slice(&1u16.to_be_bytes());
    b[30..32].copy_from_slice(&seq.to_be_bytes());
    b
}

/// `payload` framed as the master sends it on `transport`.
pub fn from_master(transport: Transport, payload: &[u8]) -> Vec<u8> {
    FrameSpec {
        transport,
        src_mac: MASTER_MAC,
        src_ip: std::net::Ipv4Addr::new(192, 168, 7, 1),
        vlan_tci: None,
        udp_checksum: true,
        ip_id: 1,
    }
    .build(payload)
    .expect("a well-formed PTP message frames")
}

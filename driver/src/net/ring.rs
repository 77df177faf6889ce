//! One RX and one TX descriptor ring over DMA-able memory: head/tail bookkeeping, refill and reap.
//! The memory is a [`DescMemory`] (the DMA region in the daemon, a plain vector in tests).

use std::sync::atomic::{fence, Ordering};

use nicclock_uio::RegisterAccess;

use super::desc::{
    self, reg, split_timestamp_header, RxWriteback, TxData, BUF_LEN, DESC_LEN, RING_ALIGN_DESCS,
};

/// Memory shared with the device: descriptors and packet buffers live in it.
///
/// Offsets are bytes from the start of the memory. DMA implementations make the u64 accesses
/// volatile (the device writes descriptors back behind our back); packet bytes are copied in and
/// out, only of buffers the device is done with (DD seen) or does not own yet (before the tail
/// write), so no slice into device memory is ever held. The
/// ring puts a fence between descriptor accesses and the RDT/TDT writes; with volatile accesses
/// on both sides that is the ordering x86 needs (weaker CPUs would need device barriers).
pub trait DescMemory {
    /// Size in bytes.
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads the little-endian u64 at `offset` (8-byte aligned).
    fn read_u64(&self, offset: usize) -> u64;
    /// Writes the little-endian u64 at `offset` (8-byte aligned).
    fn write_u64(&mut self, offset: usize, value: u64);
    /// Copies the bytes at `offset..offset + out.len()` into `out` (a packet buffer the device
    /// has finished with).
    fn read_bytes(&self, offset: usize, out: &mut [u8]);
    /// Copies `data` to `offset` (a packet buffer the device does not own).
    fn write_bytes(&mut self, offset: usize, data: &[u8]);
    /// The device (bus/IO virtual) address of the `len` bytes at `offset`, or `None` when the
    /// device does not see them as one contiguous span (they straddle scattered pages).
    fn device_addr(&self, offset: usize, len: usize) -> Option<u64>;
}

/// A plain-memory [`DescMemory`] (tests and the simulated wire): device addresses are `base` +
/// offset.
#[derive(Debug, Clone)]
pub struct VecMemory {
    /// The bytes.
    pub data: Vec<u8>,
    /// The device address of byte 0.
    pub base: u64,
}

impl VecMemory {
    /// `len` zero bytes at device address `base`.
    pub fn new(len: usize, base: u64) -> Self {
        VecMemory { data: vec![0; len], base }
    }

    /// The offset of device address `addr`, if it is inside.
    pub fn offset_of(&self, addr: u64) -> Option<usize> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        (off < self.data.len()).then_some(off)
    }
}

impl DescMemory for VecMemory {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn read_u64(&self, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.data[offset..offset + 8]);
        u64::from_le_bytes(b)
    }
    fn write_u64(&mut self, offset: usize, value: u64) {
        self.data[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.data[offset..offset + out.len()]);
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.data[offset..offset + data.len()].copy_from_slice(data);
    }
    fn device_addr(&self, offset: usize, _len: usize) -> Option<u64> {
        Some(self.base + offset as u64)
    }
}

/// Why a ring cannot be laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The descriptor count is not a non-zero multiple of 8 (RDLEN/TDLEN are multiples of 128
    /// bytes) or is above 4096.
    #[error("ring of {0} descriptors: must be a multiple of 8 between 8 and 4096")]
    BadSize(usize),
    /// The memory is smaller than the ring and its buffers need.
    #[error("ring needs {needed} bytes of DMA memory from offset {base}, the region has {len}")]
    TooSmall {
        /// Offset of the ring in the memory.
        base: usize,
        /// Bytes needed from there.
        needed: usize,
        /// Size of the memory.
        len: usize,
    },
    /// The ring's descriptors are not 128-byte aligned in device memory.
    #[error("ring base device address {0:#x} is not 128-byte aligned")]
    Misaligned(u64),
    /// Descriptors or a buffer straddle pages the device sees apart: place the ring at a
    /// page-aligned offset, or use a region whose pages are contiguous (VFIO).
    #[error(
        "{len} bytes at offset {offset:#x} straddle pages that are not contiguous for the device; \
         start the ring on a page boundary or use VFIO"
    )]
    NotContiguous {
        /// Offset of the span in the memory.
        offset: usize,
        /// Its length.
        len: usize,
    },
}

/// Where a ring's descriptors and buffers are in its memory, and their device addresses (each
/// checked contiguous for the device once, at layout).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    size: usize,
    descs: usize,
    bufs: usize,
    desc_addr: u64,
    buf_addrs: Vec<u64>,
}

impl Layout {
    fn new<M: DescMemory>(mem: &M, base: usize, size: usize) -> Result<Self, RingError> {
        if size == 0 || size % RING_ALIGN_DESCS != 0 || size > 4096 {
            return Err(RingError::BadSize(size));
        }
        let needed = bytes_needed(size);
        if base.checked_add(needed).is_none_or(|end| end > mem.len()) {
            return Err(RingError::TooSmall { base, needed, len: mem.len() });
        }
        let span = |offset: usize, len: usize| {
            mem.device_addr(offset, len).ok_or(RingError::NotContiguous { offset, len })
        };
        let desc_addr = span(base, size * DESC_LEN)?;
        if desc_addr % 128 != 0 {
            return Err(RingError::Misaligned(desc_addr));
        }
        let bufs = base + descs_bytes(size);
        let buf_addrs = (0..size).map(|i| span(bufs + i * BUF_LEN, BUF_LEN)).collect::<Result<_, _>>()?;
        Ok(Layout { size, descs: base, bufs, desc_addr, buf_addrs })
    }

    fn desc(&self, i: usize) -> usize {
        self.descs + i * DESC_LEN
    }

    fn buf(&self, i: usize) -> usize {
        self.bufs + i * BUF_LEN
    }
}

/// Bytes of memory a ring of `size` descriptors needs: the descriptors rounded up to a buffer,
/// then one 2 KiB buffer per descriptor (so from a page-aligned base no buffer straddles pages).
pub fn bytes_needed(size: usize) -> usize {
    descs_bytes(size) + size * BUF_LEN
}

fn descs_bytes(size: usize) -> usize {
    (size * DESC_LEN).div_ceil(BUF_LEN) * BUF_LEN
}

fn read_desc<M: DescMemory>(mem: &M, at: usize) -> [u64; 2] {
    [mem.read_u64(at), mem.read_u64(at + 8)]
}

fn write_desc<M: DescMemory>(mem: &mut M, at: usize, d: [u64; 2]) {
    mem.write_u64(at, d[0]);
    mem.write_u64(at + 8, d[1]);
}

fn program_base(regs: &dyn RegisterAccess, bal: usize, addr: u64, len: usize) {
    regs.write32(bal, addr as u32);
    regs.write32(bal + 4, (addr >> 32) as u32);
    regs.write32(bal + 8, len as u32);
}

/// What the RX ring hands over for one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxFrame<'a> {
    /// The descriptor index it came in (stamps are matched by order and the TS bit).
    pub index: usize,
    /// The frame (after the 16-byte timestamp header, when there was one).
    pub bytes: &'a [u8],
    /// RXSTMPL/H latched this frame's timestamp (82576): read them now, in ring order.
    pub latched_timestamp: bool,
    /// The raw SYSTIM from the in-buffer header (82580+).
    pub packet_timestamp: Option<u64>,
}

/// Why the RX ring discarded a descriptor instead of handing over a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RxDiscard {
    /// The frame spans several buffers (larger than 2 KiB): not PTP, dropped whole.
    #[error("frame larger than one buffer")]
    MultiBuffer,
    /// Hardware reported a CRC/symbol/sequence/data error.
    #[error("frame error {0:#010x}")]
    FrameError(u32),
    /// Written-back length beyond the buffer.
    #[error("written-back length {0} beyond the buffer")]
    BadLength(u16),
    /// TSIP set but the timestamp header is malformed.
    #[error("malformed in-buffer timestamp header")]
    BadTimestampHeader,
}

/// The receive ring of queue 0: every descriptor owns one 2 KiB buffer for good.
///
/// Invariant: hardware owns descriptors `[RDH, RDT)`; `next` is the next one to reap; all but one
/// descriptor are armed with the hardware, the one held back being `RDT` itself, less the
/// `unreturned` ones re-armed but not yet handed back (see [`RxRing::set_return_batch`]).
pub struct RxRing<M: DescMemory> {
    mem: M,
    layout: Layout,
    next: usize,
    in_frame: bool,
    /// Re-armed descriptors whose RDT write is still to come.
    unreturned: usize,
    /// RDT is written once this many are re-armed (1: at each descriptor).
    return_batch: usize,
    // A received frame is copied here before it is handed over (allocated once).
    scratch: Vec<u8>,
}

impl<M: DescMemory> RxRing<M> {
    /// Lays out a ring of `size` descriptors at `base` in `mem` and arms every descriptor.
    pub fn new(mut mem: M, base: usize, size: usize) -> Result<Self, RingError> {
        let layout = Layout::new(&mem, base, size)?;
        for i in 0..size {
            write_desc(&mut mem, layout.desc(i), desc::rx_read(layout.buf_addrs[i], 0));
        }
        Ok(RxRing {
            mem,
            layout,
            next: 0,
            in_frame: false,
            unreturned: 0,
            return_batch: 1,
            scratch: vec![0; BUF_LEN],
        })
    }

    /// Descriptors in the ring.
    pub fn size(&self) -> usize {
        self.layout.size
    }

    /// The next descriptor to reap.
    pub fn next_to_clean(&self) -> usize {
        self.next
    }

    /// The tail value the ring has given the hardware (the descriptor held back).
    pub fn tail(&self) -> usize {
        (self.next + 2 * self.layout.size - 1 - self.unreturned) % self.layout.size
    }

    /// Hands re-armed descriptors back to the hardware (one RDT write) once `batch` of them are
    /// waiting, not at each one (clamped to 1..=size − 1, so a ring the hardware filled is always
    /// handed back; Linux's igb refills in batches of 16). Each RDT write is a device access (an
    /// exit under emulation); the hardware keeps at least size − batch descriptors.
    pub fn set_return_batch(&mut self, batch: usize) {
        self.return_batch = batch.clamp(1, self.layout.size - 1);
    }

    /// The memory (the simulated device writes through it in tests).
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The memory, mutably.
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Device address of the descriptors (RDBAL/H).
    pub fn desc_addr(&self) -> u64 {
        self.layout.desc_addr
    }

    /// Programs RDBAL/RDBAH/RDLEN, RDH = 0 and RDT = size − 1 (all descriptors but one given),
    /// without enabling anything. [`super::bringup::bring_up`] writes the same values in the
    /// datasheet order around the queue enable; this is for a fake device or a re-arm.
    pub fn program(&self, regs: &dyn RegisterAccess) {
        program_base(regs, reg::RDBAL0, self.desc_addr(), self.layout.size * DESC_LEN);
        regs.write32(reg::RDH0, 0);
        fence(Ordering::Release);
        regs.write32(reg::RDT0, self.tail() as u32);
    }

    /// Re-arms descriptor `i` and gives it back to the hardware as the new tail.
    fn recycle(&mut self, regs: &dyn RegisterAccess, i: usize) {
        let pkt = self.layout.buf_addrs[i];
        write_desc(&mut self.mem, self.layout.desc(i), desc::rx_read(pkt, 0));
        self.next = (i + 1) % self.layout.size;
        self.unreturned += 1;
        if self.unreturned < self.return_batch {
            return;
        }
        self.unreturned = 0;
        // Descriptor memory before the tail write that hands it over.
        fence(Ordering::Release);
        regs.write32(reg::RDT0, i as u32);
    }

    /// Reaps the next descriptor if the hardware is done with it: hands the frame to `f`, then
    /// re-arms the descriptor and moves RDT. `None` when nothing was received; `Some(Err)` when
    /// the descriptor was discarded (multi-buffer, errors) and recycled.
    pub fn receive<R>(
        &mut self,
        regs: &dyn RegisterAccess,
        f: impl FnOnce(RxFrame<'_>) -> R,
    ) -> Option<Result<R, RxDiscard>> {
        let i = self.next;
        let wb = RxWriteback::decode(read_desc(&self.mem, self.layout.desc(i)));
        if !wb.done() {
            return None;
        }
        // DD before the rest of the write-back and the buffer.
        fence(Ordering::Acquire);
        let wb = RxWriteback::decode(read_desc(&self.mem, self.layout.desc(i)));
        let outcome = self.take(i, &wb, f);
        self.recycle(regs, i);
        Some(outcome)
    }

    fn take<R>(
        &mut self,
        i: usize,
        wb: &RxWriteback,
        f: impl FnOnce(RxFrame<'_>) -> R,
    ) -> Result<R, RxDiscard> {
        // A frame over several buffers: drop every piece up to and including its EOP.
        if self.in_frame || !wb.end_of_packet() {
            self.in_frame = !wb.end_of_packet();
            return Err(RxDiscard::MultiBuffer);
        }
        if wb.frame_errors() != 0 {
            return Err(RxDiscard::FrameError(wb.frame_errors()));
        }
        let len = usize::from(wb.length);
        if len > BUF_LEN {
            return Err(RxDiscard::BadLength(wb.length));
        }
        let buf = &mut self.scratch[..len];
        self.mem.read_bytes(self.layout.buf(i), buf);
        let buf = &*buf;
        let (bytes, packet_timestamp) = if wb.timestamp_in_packet() {
            let (ts, rest) = split_timestamp_header(buf).ok_or(RxDiscard::BadTimestampHeader)?;
            (rest, Some(ts))
        } else {
            (buf, None)
        };
        Ok(f(RxFrame { index: i, bytes, latched_timestamp: wb.timestamp_latched(), packet_timestamp }))
    }
}

/// Why a frame could not be queued for transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Every descriptor is in flight: reap first.
    #[error("transmit ring full")]
    Full,
    /// A timestamped frame is still in flight: the NIC latches one TX stamp at a time.
    #[error("a timestamped frame is already in flight")]
    StampInFlight,
    /// The frame is empty or longer than a buffer.
    #[error("frame of {0} bytes does not fit a {BUF_LEN}-byte buffer")]
    BadLength(usize),
}

/// A transmitted frame the hardware reported done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDone {
    /// Its descriptor index.
    pub index: usize,
    /// It asked for a hardware timestamp: TXSTMPL/H hold it now (one in flight at a time).
    pub timestamped: bool,
}

/// The transmit ring of queue 0: every descriptor owns one 2 KiB buffer.
///
/// Invariant: descriptors `[clean, tail)` are in flight; at most size − 1 of them (a full ring
/// would read as empty, TDH == TDT).
pub struct TxRing<M: DescMemory> {
    mem: M,
    layout: Layout,
    clean: usize,
    tail: usize,
    // Whether each descriptor asked for a stamp: write-back overwrites the command dword.
    stamped: Vec<bool>,
    // A frame is built here, then copied into its buffer (allocated once).
    scratch: Vec<u8>,
}

impl<M: DescMemory> TxRing<M> {
    /// Lays out a ring of `size` descriptors at `base` in `mem`, all free (zeroed).
    pub fn new(mut mem: M, base: usize, size: usize) -> Result<Self, RingError> {
        let layout = Layout::new(&mem, base, size)?;
        for i in 0..size {
            write_desc(&mut mem, layout.desc(i), [0, 0]);
        }
        Ok(TxRing { mem, layout, clean: 0, tail: 0, stamped: vec![false; size], scratch: vec![0; BUF_LEN] })
    }

    /// Descriptors in the ring.
    pub fn size(&self) -> usize {
        self.layout.size
    }

    /// Descriptors in flight.
    pub fn in_flight(&self) -> usize {
        (self.tail + self.layout.size - self.clean) % self.layout.size
    }

    /// The tail value given to the hardware.
    pub fn tail(&self) -> usize {
        self.tail
    }

    /// The memory (the simulated device reads and writes back through it in tests).
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The memory, mutably.
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Device address of the descriptors (TDBAL/H).
    pub fn desc_addr(&self) -> u64 {
        self.layout.desc_addr
    }

    /// Programs TDBAL/TDBAH/TDLEN and TDH = TDT = 0 without enabling anything;
    /// [`super::bringup::bring_up`] writes the same values around the queue enable.
    pub fn program(&self, regs: &dyn RegisterAccess) {
        program_base(regs, reg::TDBAL0, self.desc_addr(), self.layout.size * DESC_LEN);
        regs.write32(reg::TDH0, 0);
        regs.write32(reg::TDT0, self.tail as u32);
    }

    /// Whether a frame that asked for a timestamp is still in flight.
    pub fn stamp_in_flight(&self) -> bool {
        (0..self.in_flight()).any(|k| self.stamped[(self.clean + k) % self.layout.size])
    }

    /// Queues one frame, written by `fill` into the next buffer (it returns the length written),
    /// with a hardware timestamp request if `timestamp` (refused while another stamped frame is
    /// in flight); moves TDT. Returns the descriptor index.
    pub fn send(
        &mut self,
        regs: &dyn RegisterAccess,
        timestamp: bool,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, TxError> {
        if self.in_flight() == self.layout.size - 1 {
            return Err(TxError::Full);
        }
        if timestamp && self.stamp_in_flight() {
            return Err(TxError::StampInFlight);
        }
        let i = self.tail;
        let len = fill(&mut self.scratch);
        if len == 0 || len > BUF_LEN {
            return Err(TxError::BadLength(len));
        }
        self.mem.write_bytes(self.layout.buf(i), &self.scratch[..len]);
        let d = TxData { addr: self.layout.buf_addrs[i], len: len as u16, timestamp };
        write_desc(&mut self.mem, self.layout.desc(i), d.encode());
        self.stamped[i] = timestamp;
        self.tail = (i + 1) % self.layout.size;
        // Buffer and descriptor before the tail write that hands them over.
        fence(Ordering::Release);
        regs.write32(reg::TDT0, self.tail as u32);
        Ok(i)
    }

    /// Reaps the oldest in-flight descriptor if the hardware wrote it back done.
    pub fn reap(&mut self) -> Option<TxDone> {
        if self.clean == self.tail {
            return None;
        }
        let i = self.clean;
        let d = read_desc(&self.mem, self.layout.desc(i));
        if !desc::tx_done(d) {
            return None;
        }
        fence(Ordering::Acquire);
        let timestamped = self.stamped[i];
        write_desc(&mut self.mem, self.layout.desc(i), [0, 0]);
        self.clean = (i + 1) % self.layout.size;
        Some(TxDone { index: i, timestamped })
    }
}

//! The RX and TX rings over real locked DMA memory (`DmaRegion`): frames in and out through the
//! volatile copies, device addresses from the page table, and rings refused where a descriptor
//! block or buffer would straddle pages the device sees apart.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use nicclock_driver::net::desc::{self, reg, rx_status, RxWriteback, TxData, BUF_LEN, DESC_LEN};
use nicclock_driver::net::ring::{bytes_needed, DescMemory, RingError, RxRing, TxRing};
use nicclock_uio::dma::PAGE_SIZE;
use nicclock_uio::pagemap::{PageTable, Pagemap, PAGEMAP};
use nicclock_uio::{Dma, DmaError, DmaRegion, RegisterAccess};

/// A register file that remembers writes.
#[derive(Default)]
struct Regs(RefCell<HashMap<usize, u32>>);

impl RegisterAccess for Regs {
    fn len(&self) -> usize {
        0x20000
    }
    fn read32(&self, offset: usize) -> u32 {
        self.0.borrow().get(&offset).copied().unwrap_or(0)
    }
    fn write32(&self, offset: usize, value: u32) {
        self.0.borrow_mut().insert(offset, value);
    }
}

/// A fake sysfs device directory holding only `config` (bus mastering is switched in it).
struct FakeConfig(PathBuf);

impl FakeConfig {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nicclock-netdma-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0x86, 0x80, 0xc9, 0x10, 0x02, 0x00];
        bytes.resize(64, 0);
        std::fs::write(dir.join("config"), bytes).unwrap();
        FakeConfig(dir)
    }
}

impl Drop for FakeConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A page table answering the given frame numbers, wherever the pages are.
struct Frames(Vec<u64>);

impl PageTable for Frames {
    fn entries(&self, _first_page: u64, out: &mut [u64]) -> io::Result<()> {
        for (e, pfn) in out.iter_mut().zip(&self.0) {
            *e = (1 << 63) | pfn;
        }
        Ok(())
    }
    fn name(&self) -> &Path {
        Path::new("fake-pagemap")
    }
}

fn region(config: &FakeConfig, frames: &[u64]) -> DmaRegion {
    let dma = Dma::physical("0000:00:05.0", Box::new(Frames(frames.to_vec())), config.0.clone(), 0x8086);
    dma.alloc(frames.len() * PAGE_SIZE).unwrap()
}

fn offset_of(mem: &DmaRegion, addr: u64) -> usize {
    let pages = mem.page_addresses();
    let page =
        pages.iter().position(|&p| addr & !(PAGE_SIZE as u64 - 1) == p).expect("address in the region");
    page * PAGE_SIZE + (addr as usize % PAGE_SIZE)
}

/// Sends one stamped frame and receives one, playing the device by hand through the region.
fn round_trip(rx_mem: DmaRegion, tx_mem: DmaRegion, base: usize) {
    let regs = Regs::default();
    let mut tx = TxRing::new(tx_mem, base, 8).unwrap();
    assert_eq!(tx.desc_addr(), tx.memory().device_address(base, 8 * DESC_LEN).unwrap());
    let frame: Vec<u8> = (0..90u8).collect();
    let i = tx.send(&regs, true, |buf| {
        buf[..frame.len()].copy_from_slice(&frame);
        frame.len()
    });
    assert_eq!(i, Ok(0));
    let mem = tx.memory();
    let d = TxData::decode([mem.read_u64(base), mem.read_u64(base + 8)]).expect("data descriptor");
    assert_eq!((usize::from(d.len), d.timestamp), (frame.len(), true));
    let mut sent = vec![0; frame.len()];
    DescMemory::read_bytes(mem, offset_of(mem, d.addr), &mut sent);
    assert_eq!(sent, frame, "the device reads the frame at the address in the descriptor");
    let mem = tx.memory_mut();
    mem.write_u64(base, 0);
    mem.write_u64(base + 8, desc::tx_writeback_done());
    assert_eq!(tx.reap().map(|d| (d.index, d.timestamped)), Some((0, true)));

    let mut rx = RxRing::new(rx_mem, base, 8).unwrap();
    rx.program(&regs);
    assert_eq!(regs.read32(reg::RDBAL0), rx.desc_addr() as u32);
    assert_eq!(regs.read32(reg::RDT0), 7);
    let mem = rx.memory_mut();
    let pkt = mem.read_u64(base);
    let at = offset_of(mem, pkt);
    DescMemory::write_bytes(mem, at, &frame);
    let wb = RxWriteback {
        pkt_info: 0,
        rss: 0,
        status_error: rx_status::DD | rx_status::EOP | rx_status::TS,
        length: frame.len() as u16,
        vlan: 0,
    }
    .encode();
    mem.write_u64(base, wb[0]);
    mem.write_u64(base + 8, wb[1]);
    let got = rx.receive(&regs, |f| (f.index, f.bytes.to_vec(), f.latched_timestamp));
    assert_eq!(got, Some(Ok((0, frame.clone(), true))));
    assert_eq!(rx.receive(&regs, |_| ()), None, "nothing more");
    assert_eq!(regs.read32(reg::RDT0), 0, "descriptor 0 re-armed and handed back");
    let mem = rx.memory();
    assert_eq!(mem.read_u64(base), pkt, "re-armed with the same buffer");
}

#[test]
fn rings_run_over_dma_memory_with_device_addresses_from_the_page_table() {
    let config = FakeConfig::new("contig");
    let frames: Vec<u64> = (0x100..0x100 + 5).collect();
    assert!(bytes_needed(8) <= frames.len() * PAGE_SIZE);
    round_trip(region(&config, &frames), region(&config, &frames), 0);
    // Scattered pages are fine from a page boundary: no buffer straddles.
    let scattered = [0x900, 0x300, 0x700, 0x100, 0x500];
    round_trip(region(&config, &scattered), region(&config, &scattered), 0);
}

#[test]
fn a_buffer_across_scattered_pages_refuses_the_ring() {
    let config = FakeConfig::new("scatter");
    // From offset 3072 the descriptors sit in page 0, buffer 0 at 5120 in page 1, buffer 1 at
    // 7168..9216 across pages 1 and 2.
    let err = RxRing::new(region(&config, &[0x900, 0x300, 0x700, 0x100, 0x500, 0x200]), 3072, 8).err();
    assert_eq!(err, Some(RingError::NotContiguous { offset: 7168, len: BUF_LEN }));
    let msg = err.unwrap().to_string();
    assert!(msg.contains("page boundary") && msg.contains("0x1c00"), "{msg}");
    let err = TxRing::new(region(&config, &[0x900, 0x300, 0x700, 0x100, 0x500, 0x200]), 3072, 8).err();
    assert_eq!(err, Some(RingError::NotContiguous { offset: 7168, len: BUF_LEN }));
    // The same layout on contiguous pages is fine.
    assert!(RxRing::new(region(&config, &[0x10, 0x11, 0x12, 0x13, 0x14, 0x15]), 3072, 8).is_ok());
}

/// Whether this process holds CAP_SYS_ADMIN (the kernel then shows page frame numbers).
fn has_cap_sys_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:")).expect("CapEff line");
    u64::from_str_radix(caps.trim(), 16).unwrap() & (1 << 21) != 0
}

#[test]
fn rings_run_over_a_real_locked_allocation_or_the_reason_why_not() {
    let config = FakeConfig::new("real");
    let alloc = || {
        Dma::physical("0000:00:05.0", Box::new(Pagemap::new(PAGEMAP)), config.0.clone(), 0x8086)
            .alloc(bytes_needed(8))
    };
    match (alloc(), alloc()) {
        (Ok(rx), Ok(tx)) => {
            assert!(has_cap_sys_admin(), "frame numbers are shown only to CAP_SYS_ADMIN");
            round_trip(rx, tx, 0);
        }
        (Err(e), _) | (_, Err(e)) => {
            assert!(!has_cap_sys_admin(), "refused although we may see frame numbers: {e}");
            assert!(matches!(e, DmaError::PhysicalHidden { .. }), "{e}");
        }
    }
}

//! DMA memory: physical addresses from the real pagemap (or its refusal), bus mastering on a fake
//! config space, the VFIO map/unmap calls on a fake container, and the accessors' bounds.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nicclock_uio::dma::PAGE_SIZE;
use nicclock_uio::pagemap::{PageTable, Pagemap, PAGEMAP};
use nicclock_uio::{ConfigSpace, Dma, DmaError};

const PRESENT: u64 = 1 << 63;

/// A fake sysfs device directory holding only `config`, Command register = `command`.
struct FakeConfig {
    dir: PathBuf,
}

impl FakeConfig {
    fn new(tag: &str, command: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("nicclock-dma-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0x86, 0x80, 0xc9, 0x10];
        bytes.extend_from_slice(&command.to_le_bytes());
        bytes.resize(64, 0);
        std::fs::write(dir.join("config"), bytes).unwrap();
        Self { dir }
    }

    fn command(&self) -> u16 {
        let bytes = std::fs::read(self.dir.join("config")).unwrap();
        u16::from_le_bytes([bytes[4], bytes[5]])
    }
}

impl Drop for FakeConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A page table that answers the given raw entries in turn, wherever the pages are.
struct Frames(Vec<u64>);

impl PageTable for Frames {
    fn entries(&self, _first_page: u64, out: &mut [u64]) -> io::Result<()> {
        out.copy_from_slice(&self.0[..out.len()]);
        Ok(())
    }
    fn name(&self) -> &Path {
        Path::new("fake-pagemap")
    }
}

fn physical(config: &FakeConfig, frames: &[u64]) -> Dma {
    let entries = frames.iter().map(|pfn| PRESENT | pfn).collect();
    Dma::physical("0000:00:05.0", Box::new(Frames(entries)), config.dir.clone(), 0x8086)
}

/// Whether this process holds CAP_SYS_ADMIN (the kernel then shows page frame numbers).
fn has_cap_sys_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:")).expect("CapEff line");
    u64::from_str_radix(caps.trim(), 16).unwrap() & (1 << 21) != 0
}

#[test]
fn a_real_allocation_gets_distinct_physical_pages_or_the_reason_why_not() {
    let config = FakeConfig::new("real", 0x0002);
    let dma = Dma::physical("0000:00:05.0", Box::new(Pagemap::new(PAGEMAP)), config.dir.clone(), 0x8086);
    match dma.alloc(8 * PAGE_SIZE) {
        Ok(region) => {
            assert!(has_cap_sys_admin(), "frame numbers are shown only to CAP_SYS_ADMIN");
            let pages = region.page_addresses();
            assert_eq!(pages.len(), 8);
            let mut sorted = pages.to_vec();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 8, "each page its own frame: {pages:x?}");
            assert!(pages.iter().all(|&p| p != 0 && p % PAGE_SIZE as u64 == 0), "{pages:x?}");
            assert_eq!(region.device_address(0x10, 64).unwrap(), pages[0] + 0x10);
            assert!(region.moved_pages().unwrap().is_empty(), "locked pages stay put");
            assert_eq!(config.command(), 0x0006, "bus mastering on while the region lives");
            drop(region);
            assert_eq!(config.command(), 0x0002, "and off again after");
        }
        Err(e) => {
            assert!(!has_cap_sys_admin(), "refused although we may see frame numbers: {e}");
            assert!(matches!(e, DmaError::PhysicalHidden { .. }), "{e}");
            assert_eq!(config.command(), 0x0002, "no bus mastering without DMA memory");
        }
    }
}

#[test]
fn hidden_frame_numbers_are_refused_with_what_to_do() {
    let config = FakeConfig::new("hidden", 0x0002);
    // What an unprivileged process reads: present, frame number 0.
    let dma = physical(&config, &[0, 0]);
    let e = dma.alloc(2 * PAGE_SIZE).err().expect("refused");
    assert!(matches!(e, DmaError::PhysicalHidden { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("CAP_SYS_ADMIN") && msg.contains("run nicclockd as root") && msg.contains("vfio:"),
        "{msg}"
    );
    assert_eq!(config.command(), 0x0002, "bus mastering stays off when the memory is refused");
    assert_eq!(dma.bus_master_users(), 0);
}

#[test]
fn bus_mastering_is_on_exactly_while_dma_memory_lives() {
    let config = FakeConfig::new("busmaster", 0x0403);
    let dma = physical(&config, &[0x100, 0x200, 0x300]);
    assert_eq!(config.command(), 0x0403, "nothing touched before DMA is used");
    let a = dma.alloc(100).unwrap();
    assert_eq!(config.command(), 0x0407, "bit 2 set, the others kept");
    let b = dma.clone().alloc(PAGE_SIZE).unwrap();
    assert_eq!(dma.bus_master_users(), 2);
    drop(a);
    assert_eq!(config.command(), 0x0407, "still one region");
    drop(b);
    assert_eq!(config.command(), 0x0403, "bit 2 cleared with the last region, the others kept");
    assert_eq!(dma.bus_master_users(), 0);
}

#[test]
fn a_config_space_we_cannot_write_refuses_the_memory() {
    let config = FakeConfig::new("noconfig", 0);
    std::fs::remove_file(config.dir.join("config")).unwrap();
    let dma = physical(&config, &[0x100]);
    let e = dma.alloc(64).err().expect("refused");
    assert!(matches!(e, DmaError::BusMaster { action: "open", .. }), "{e}");
    assert!(e.to_string().contains("0000:00:05.0") && e.to_string().contains("bus mastering"), "{e}");
    assert_eq!(dma.bus_master_users(), 0);
}

#[test]
fn rings_may_not_straddle_pages_the_device_sees_apart() {
    let config = FakeConfig::new("straddle", 0);
    let dma = physical(&config, &[0x10000, 0x10001, 0x50000]);
    let region = dma.alloc(3 * PAGE_SIZE).unwrap();
    assert_eq!(region.page_addresses(), &[0x1000_0000, 0x1000_1000, 0x5000_0000]);
    assert_eq!(region.device_address(0x80, 0x100).unwrap(), 0x1000_0080);
    // Pages 0 and 1 are neighbours for the device: a ring may cross from one to the other.
    assert_eq!(region.device_address(0xf00, 0x200).unwrap(), 0x1000_0f00);
    // Pages 1 and 2 are not.
    let e = region.device_address(0x1f00, 0x200).unwrap_err();
    assert!(matches!(e, DmaError::Straddles { offset: 0x1f00, len: 0x200 }), "{e}");
    assert!(e.to_string().contains("inside one page"), "{e}");
    assert_eq!(region.device_address(0x2000, PAGE_SIZE).unwrap(), 0x5000_0000);
}

#[test]
fn accessors_are_little_endian_and_round_trip() {
    let config = FakeConfig::new("access", 0);
    let dma = physical(&config, &[1, 2]);
    let region = dma.alloc(PAGE_SIZE + 1).unwrap();
    assert_eq!(region.len(), 2 * PAGE_SIZE, "whole pages");
    assert_eq!(region.read64(0x1ff8), 0, "fresh memory is zeroed");
    region.write32(0x10, 0x1122_3344);
    let mut bytes = [0u8; 4];
    region.read_bytes(0x10, &mut bytes);
    assert_eq!(bytes, [0x44, 0x33, 0x22, 0x11]);
    region.write64(0xff8, 0x0102_0304_0506_0708);
    assert_eq!(region.read64(0xff8), 0x0102_0304_0506_0708);
    assert_eq!(region.read32(0xffc), 0x0102_0304);
    let frame: Vec<u8> = (0..=255).collect();
    region.write_bytes(PAGE_SIZE - 100, &frame);
    let mut back = vec![0u8; 256];
    region.read_bytes(PAGE_SIZE - 100, &mut back);
    assert_eq!(back, frame);
    region.write_bytes(2 * PAGE_SIZE, &[]);
    assert!(matches!(dma.alloc(0), Err(DmaError::Empty)));
}

fn out_of_bounds(access: impl FnOnce(&nicclock_uio::DmaRegion)) {
    let config = FakeConfig::new(&format!("oob-{:?}", std::thread::current().id()), 0);
    let dma = physical(&config, &[1]);
    let region = dma.alloc(PAGE_SIZE).unwrap();
    access(&region);
}

#[test]
#[should_panic(expected = "outside the 0x1000-byte region")]
fn a_read_past_the_end_panics() {
    out_of_bounds(|r| {
        r.read32(PAGE_SIZE);
    });
}

#[test]
#[should_panic(expected = "misaligned")]
fn a_misaligned_u64_panics() {
    out_of_bounds(|r| r.write64(4, 0));
}

#[test]
#[should_panic(expected = "outside")]
fn a_copy_past_the_end_panics() {
    out_of_bounds(|r| r.write_bytes(PAGE_SIZE - 2, &[0; 3]));
}

#[test]
#[should_panic(expected = "outside")]
fn an_overflowing_offset_panics() {
    out_of_bounds(|r| r.read_bytes(usize::MAX, &mut [0; 2]));
}

/// A VFIO container that records the DMA map calls instead of making them.
#[derive(Default)]
struct FakeContainer {
    calls: Mutex<Vec<(&'static str, u64, usize)>>,
}

impl vfio_ioctls::VfioOps for FakeContainer {
    unsafe fn vfio_dma_map(&self, iova: u64, size: usize, user_addr: *mut u8) -> vfio_ioctls::Result<()> {
        assert_eq!(iova, user_addr as u64, "IOVA = our virtual address");
        self.calls.lock().unwrap().push(("map", iova, size));
        Ok(())
    }
    fn vfio_dma_unmap(&self, iova: u64, size: usize) -> vfio_ioctls::Result<()> {
        self.calls.lock().unwrap().push(("unmap", iova, size));
        Ok(())
    }
}

#[test]
fn under_vfio_the_region_is_mapped_at_its_address_and_unmapped_on_drop() {
    let config = FakeConfig::new("vfio", 0x0002);
    let container = Arc::new(FakeContainer::default());
    let file = std::fs::OpenOptions::new().read(true).write(true).open(config.dir.join("config")).unwrap();
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dma = Dma::vfio("0000:00:03.0", container.clone(), ConfigSpace::vfio(file, 0, 0x8086, gone));
    let region = dma.alloc(3 * PAGE_SIZE).unwrap();
    let pages = region.page_addresses().to_vec();
    assert_eq!(container.calls.lock().unwrap().as_slice(), &[("map", pages[0], 3 * PAGE_SIZE)]);
    assert_eq!(pages[1], pages[0] + PAGE_SIZE as u64);
    assert_eq!(region.device_address(0xff0, 0x20).unwrap(), pages[0] + 0xff0, "contiguous through the IOMMU");
    assert_eq!(config.command(), 0x0006);
    assert!(region.moved_pages().unwrap().is_empty(), "the VFIO map pins the pages");
    // The kernel's view of the mapping: locked, never a huge page, not inherited by a fork.
    let flags = vm_flags(pages[0]);
    for flag in ["lo", "nh", "dc"] {
        assert!(flags.split_whitespace().any(|f| f == flag), "VmFlags {flags:?} lack {flag}");
    }
    drop(region);
    assert_eq!(config.command(), 0x0002);
    assert_eq!(
        container.calls.lock().unwrap().as_slice(),
        &[("map", pages[0], 3 * PAGE_SIZE), ("unmap", pages[0], 3 * PAGE_SIZE)]
    );
}

/// The VmFlags line of the mapping that holds `addr` (/proc/self/smaps). Not the one that starts
/// there: the kernel merges a region with a neighbour of the same flags (another test's region,
/// mapped by a thread running beside this one), and the merged mapping starts before it.
fn vm_flags(addr: u64) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut holds = false;
    for line in smaps.lines() {
        if let Some((lo, hi)) = line.split_whitespace().next().and_then(|r| r.split_once('-')) {
            if let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) {
                holds = (lo..hi).contains(&addr);
                continue;
            }
        }
        if holds {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.trim().to_string();
            }
        }
    }
    panic!("no mapping in /proc/self/smaps holds {addr:#x}")
}

/// A page table whose answers the test changes, as the kernel's do when it migrates a page.
struct Movable(Arc<Mutex<Vec<u64>>>);

impl PageTable for Movable {
    fn entries(&self, _first_page: u64, out: &mut [u64]) -> io::Result<()> {
        out.copy_from_slice(&self.0.lock().unwrap()[..out.len()]);
        Ok(())
    }
    fn name(&self) -> &Path {
        Path::new("fake-pagemap")
    }
}

#[test]
fn a_page_the_kernel_moved_is_found() {
    let config = FakeConfig::new("moved", 0);
    let frames = Arc::new(Mutex::new(vec![PRESENT | 0x100, PRESENT | 0x101, PRESENT | 0x102]));
    let dma = Dma::physical("0000:00:05.0", Box::new(Movable(frames.clone())), config.dir.clone(), 0x8086);
    let region = dma.alloc(3 * PAGE_SIZE).unwrap();
    assert!(region.moved_pages().unwrap().is_empty());
    frames.lock().unwrap()[1] = PRESENT | 0x900;
    assert_eq!(region.moved_pages().unwrap(), vec![1]);
    assert_eq!(region.page_addresses()[1], 0x10_1000, "the device's address is still the one given");
    frames.lock().unwrap()[2] = PRESENT;
    assert!(matches!(region.moved_pages(), Err(DmaError::PhysicalHidden { .. })));
}

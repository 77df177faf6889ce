//! DMA memory for the userspace datapath: locked pages with a device address each, through the VFIO
//! container (IOVA = virtual address) or `/proc/self/pagemap`; bus mastering on while any exists.
//!
//! Nothing in nicclockd uses it yet: it is the foundation of the PTP datapath (rings, packet
//! buffers) that comes next. The device reads and writes this memory behind the compiler's back, so
//! no Rust reference into it is ever made: every access is volatile through a raw pointer.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::{Advice, MmapOptions, MmapRaw};
use vfio_ioctls::VfioOps;

use crate::config::{ConfigSpace, BUS_MASTER};
use crate::pagemap::{physical_pages, PageTable};

/// The page size DMA addresses are given per (x86-64 and the NICs' descriptor pages).
pub const PAGE_SIZE: usize = 4096;

/// Why DMA memory could not be set up, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DmaError {
    #[error("cannot read {path}: {err} (physical addresses for DMA without an IOMMU need it; run as root)")]
    Pagemap { path: PathBuf, err: io::Error },
    #[error(
        "{path} hides physical addresses (every frame number reads 0): the kernel shows them only to \
         a process with CAP_SYS_ADMIN; run nicclockd as root, or use vfio:<pci address> (the IOMMU then \
         gives DMA addresses without pagemap)"
    )]
    PhysicalHidden { path: PathBuf },
    #[error(
        "the locked DMA page at {vaddr:#x} is not in RAM (pagemap entry {raw:#x}): the kernel \
         did not keep it resident; check that mlock works here (RLIMIT_MEMLOCK, `ulimit -l`)"
    )]
    NotResident { vaddr: usize, raw: u64 },
    #[error("cannot allocate {len} bytes of DMA memory: {err}")]
    Alloc { len: usize, err: io::Error },
    #[error(
        "cannot lock {len} bytes of DMA memory in RAM: {err} (run as root, or raise RLIMIT_MEMLOCK: \
         `ulimit -l`, LimitMEMLOCK= in a systemd unit)"
    )]
    Lock { len: usize, err: io::Error },
    #[error("a DMA region needs at least one byte")]
    Empty,
    #[error(
        "VFIO refused to map {len} bytes at IOVA {iova:#x} for DMA by {device}: {reason} (the IOVA is \
         our virtual address: an IOMMU narrower than 48 bits, e.g. QEMU's intel-iommu with aw-bits=39, \
         cannot take it)"
    )]
    VfioMap { device: String, iova: u64, len: usize, reason: String },
    #[error(
        "cannot {action} the PCI Command register of {device} (bus mastering, which DMA needs): {err}; \
         run as root"
    )]
    BusMaster { device: String, action: &'static str, err: io::Error },
    #[error(
        "bytes {offset:#x}..{end:#x} of the DMA region straddle pages that are not contiguous for the \
         device: place each ring and buffer inside one page",
        end = offset + len
    )]
    Straddles { offset: usize, len: usize },
}

/// How device addresses are found for one device's DMA memory.
enum Translate {
    /// VFIO: mapped through the container's IOMMU, IOVA = virtual address.
    Vfio(Arc<dyn VfioOps>),
    /// No IOMMU: the physical address of each page, from the page table.
    Physical(Box<dyn PageTable>),
}

/// Where the device's Command register is reached, and how many regions need bus mastering.
struct BusState {
    users: usize,
    config: Option<ConfigSpace>,
    /// sysfs device directory, to open `config` read-write when first needed (UIO, sysfs).
    sysfs_path: Option<PathBuf>,
    vendor: u16,
}

struct Shared {
    device: String,
    /// The page-migration warning was given.
    warned: AtomicBool,
    translate: Translate,
    bus: Mutex<BusState>,
}

/// One device's door to DMA memory: allocates [`DmaRegion`]s it can reach, and keeps bus mastering
/// enabled exactly while at least one of them lives. Cheap to clone.
#[derive(Clone)]
pub struct Dma {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Dma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.shared.translate {
            Translate::Vfio(_) => "vfio",
            Translate::Physical(_) => "pagemap",
        };
        f.debug_struct("Dma").field("device", &self.shared.device).field("kind", &kind).finish()
    }
}

impl Dma {
    /// DMA through a VFIO container the device is attached to; `config` is the device's config
    /// space through its VFIO fd (writable).
    pub fn vfio(device: impl Into<String>, container: Arc<dyn VfioOps>, config: ConfigSpace) -> Self {
        Self::new(device.into(), Translate::Vfio(container), Some(config), None, 0)
    }

    /// DMA by physical address (no IOMMU): pages from `table` (normally
    /// [`crate::pagemap::Pagemap`]); the Command register through `<sysfs_path>/config`, opened
    /// read-write when the first region is allocated.
    pub fn physical(
        device: impl Into<String>,
        table: Box<dyn PageTable>,
        sysfs_path: PathBuf,
        vendor: u16,
    ) -> Self {
        Self::new(device.into(), Translate::Physical(table), None, Some(sysfs_path), vendor)
    }

    fn new(
        device: String,
        translate: Translate,
        config: Option<ConfigSpace>,
        sysfs_path: Option<PathBuf>,
        vendor: u16,
    ) -> Self {
        let bus = Mutex::new(BusState { users: 0, config, sysfs_path, vendor });
        Self { shared: Arc::new(Shared { device, translate, bus, warned: AtomicBool::new(false) }) }
    }

    /// Allocates at least `len` bytes (rounded up to whole pages), zeroed, locked in RAM and
    /// reachable by the device; enables bus mastering if this is the first live region.
    pub fn alloc(&self, len: usize) -> Result<DmaRegion, DmaError> {
        if len == 0 {
            return Err(DmaError::Empty);
        }
        let len = len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let map: MmapRaw =
            MmapOptions::new().len(len).map_anon().map_err(|err| DmaError::Alloc { len, err })?.into();
        // Before any page exists: no transparent huge page (khugepaged's collapse or split would move
        // our pages), and no copy-on-write sharing with a forked child (a write would move the page
        // away from the device). Both are advice: a kernel without them is still usable.
        let _ = map.advise(Advice::NoHugePage);
        let _ = map.advise(Advice::DontFork);
        map.lock().map_err(|err| DmaError::Lock { len, err })?;
        let base = map.as_mut_ptr();
        for page in 0..len / PAGE_SIZE {
            // SAFETY: the page lies inside our own fresh anonymous mapping (read-write, page-aligned,
            // no device can see it yet); writing one byte makes the page private and resident.
            unsafe { base.add(page * PAGE_SIZE).write_volatile(0) };
        }
        let vaddr = base as usize;
        let mut region = DmaRegion {
            map,
            pages: Vec::new(),
            shared: self.shared.clone(),
            vfio_mapped: false,
            counted: false,
        };
        match &self.shared.translate {
            Translate::Vfio(ops) => {
                // SAFETY: the range is our own anonymous mapping, which lives (in `region.map`) until
                // DmaRegion::drop unmaps it from the IOMMU first; no Rust reference into it is ever
                // created (all access is volatile through raw pointers).
                unsafe { ops.vfio_dma_map(vaddr as u64, len, base) }.map_err(|e| DmaError::VfioMap {
                    device: self.shared.device.clone(),
                    iova: vaddr as u64,
                    len,
                    reason: e.to_string(),
                })?;
                region.vfio_mapped = true;
                region.pages = (0..len / PAGE_SIZE).map(|p| (vaddr + p * PAGE_SIZE) as u64).collect();
            }
            Translate::Physical(table) => {
                region.pages = physical_pages(table.as_ref(), vaddr, len / PAGE_SIZE)?;
                self.shared.warn_if_pages_may_move();
            }
        }
        self.shared.acquire()?;
        region.counted = true;
        Ok(region)
    }

    /// How many live regions keep bus mastering on.
    pub fn bus_master_users(&self) -> usize {
        self.shared.bus.lock().unwrap_or_else(|e| e.into_inner()).users
    }
}

/// Whether the kernel may migrate locked pages (compaction), which a device without an IOMMU would
/// not follow.
const COMPACT_UNEVICTABLE: &str = "/proc/sys/vm/compact_unevictable_allowed";

impl Shared {
    fn warn_if_pages_may_move(&self) {
        let allowed = std::fs::read_to_string(COMPACT_UNEVICTABLE).is_ok_and(|v| v.trim() == "1");
        if allowed && !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "nicclock-uio: {}: vm.compact_unevictable_allowed=1 lets the kernel move locked pages, \
                 which the NIC (no IOMMU) would not follow: set `sysctl vm.compact_unevictable_allowed=0`, \
                 or use vfio:",
                self.device
            );
        }
    }

    fn set_bus_master(&self, bus: &mut BusState, on: bool) -> Result<(), DmaError> {
        let err = |action, err| DmaError::BusMaster { device: self.device.clone(), action, err };
        if bus.config.is_none() {
            let path = bus.sysfs_path.as_deref().unwrap_or(Path::new(""));
            bus.config = Some(ConfigSpace::sysfs_rw(path, bus.vendor).map_err(|e| err("open", e))?);
        }
        let config = bus.config.as_ref().expect("opened above");
        let command = config.command().map_err(|e| err("read", e))?;
        let wanted = if on { command | BUS_MASTER } else { command & !BUS_MASTER };
        if wanted != command {
            config.set_command(wanted).map_err(|e| err("write", e))?;
        }
        Ok(())
    }

    fn acquire(&self) -> Result<(), DmaError> {
        let mut bus = self.bus.lock().unwrap_or_else(|e| e.into_inner());
        if bus.users == 0 {
            self.set_bus_master(&mut bus, true)?;
        }
        bus.users += 1;
        Ok(())
    }

    fn release(&self) {
        let mut bus = self.bus.lock().unwrap_or_else(|e| e.into_inner());
        bus.users -= 1;
        if bus.users == 0 {
            if let Err(e) = self.set_bus_master(&mut bus, false) {
                eprintln!("nicclock-uio: {e}");
            }
        }
    }
}

/// Locked DMA memory with a device address per page. Accessors are volatile and bounds-checked:
/// an offset outside the region, or misaligned for its width, is a driver bug and panics.
///
/// Dropping the region turns bus mastering off if it was the last one, then takes the memory away
/// from the device (VFIO unmap) and frees it. The driver must stop the queues that point into a
/// region before dropping it: without an IOMMU a device still writing would hit freed pages.
pub struct DmaRegion {
    map: MmapRaw,
    /// Device address of each page.
    pages: Vec<u64>,
    shared: Arc<Shared>,
    vfio_mapped: bool,
    counted: bool,
}

impl DmaRegion {
    /// Size in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Never empty (allocation refuses zero bytes).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The device address of each page, in order.
    pub fn page_addresses(&self) -> &[u64] {
        &self.pages
    }

    /// The pages whose physical address is no longer the one the device was given (without an
    /// IOMMU the kernel may still migrate a locked page; see `vm.compact_unevictable_allowed`).
    /// Always empty under VFIO, whose map pins the pages.
    pub fn moved_pages(&self) -> Result<Vec<usize>, DmaError> {
        let Translate::Physical(table) = &self.shared.translate else {
            return Ok(Vec::new());
        };
        let now = physical_pages(table.as_ref(), self.map.as_ptr() as usize, self.pages.len())?;
        Ok((0..now.len()).filter(|&p| now[p] != self.pages[p]).collect())
    }

    /// The device address of `offset`, for a ring or buffer of `len` bytes starting there: refused
    /// if the bytes straddle pages that are not contiguous for the device. Panics outside the region.
    #[track_caller]
    pub fn device_address(&self, offset: usize, len: usize) -> Result<u64, DmaError> {
        self.check(offset, len.max(1), 1);
        let (first, last) = (offset / PAGE_SIZE, (offset + len.max(1) - 1) / PAGE_SIZE);
        let contiguous = (first..last).all(|p| self.pages[p + 1] == self.pages[p] + PAGE_SIZE as u64);
        if !contiguous {
            return Err(DmaError::Straddles { offset, len });
        }
        Ok(self.pages[first] + (offset % PAGE_SIZE) as u64)
    }

    #[track_caller]
    fn check(&self, offset: usize, len: usize, align: usize) {
        assert!(
            offset % align == 0 && offset.checked_add(len).is_some_and(|end| end <= self.len()),
            "DMA access of {len} bytes at {offset:#x} outside the {:#x}-byte region or misaligned",
            self.len()
        );
    }

    fn ptr(&self, offset: usize) -> *mut u8 {
        // SAFETY: callers checked `offset` lies inside the mapping, so the result stays in bounds.
        unsafe { self.map.as_mut_ptr().add(offset) }
    }

    /// Reads the little-endian u32 at `offset` (4-aligned).
    #[track_caller]
    pub fn read32(&self, offset: usize) -> u32 {
        self.check(offset, 4, 4);
        // SAFETY: in bounds and 4-aligned (checked; the mapping is page-aligned); volatile because
        // the device writes this memory.
        u32::from_le(unsafe { self.ptr(offset).cast::<u32>().read_volatile() })
    }

    /// Writes `value` little-endian at `offset` (4-aligned).
    #[track_caller]
    pub fn write32(&self, offset: usize, value: u32) {
        self.check(offset, 4, 4);
        // SAFETY: as in read32; the mapping is writable.
        unsafe { self.ptr(offset).cast::<u32>().write_volatile(value.to_le()) }
    }

    /// Reads the little-endian u64 at `offset` (8-aligned).
    #[track_caller]
    pub fn read64(&self, offset: usize) -> u64 {
        self.check(offset, 8, 8);
        // SAFETY: in bounds and 8-aligned (checked; the mapping is page-aligned); volatile.
        u64::from_le(unsafe { self.ptr(offset).cast::<u64>().read_volatile() })
    }

    /// Writes `value` little-endian at `offset` (8-aligned).
    #[track_caller]
    pub fn write64(&self, offset: usize, value: u64) {
        self.check(offset, 8, 8);
        // SAFETY: as in read64; the mapping is writable.
        unsafe { self.ptr(offset).cast::<u64>().write_volatile(value.to_le()) }
    }

    /// Copies `out.len()` bytes from `offset` into `out`.
    #[track_caller]
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        self.check(offset, out.len(), 1);
        let src = self.ptr(offset);
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: offset + i is inside the region (the whole range was checked); volatile.
            *byte = unsafe { src.add(i).read_volatile() };
        }
    }

    /// Copies `data` into the region at `offset`.
    #[track_caller]
    pub fn write_bytes(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len(), 1);
        let dst = self.ptr(offset);
        for (i, &byte) in data.iter().enumerate() {
            // SAFETY: offset + i is inside the region (the whole range was checked); volatile.
            unsafe { dst.add(i).write_volatile(byte) };
        }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        if self.counted {
            self.shared.release();
        }
        if self.vfio_mapped {
            if let Translate::Vfio(ops) = &self.shared.translate {
                let iova = self.map.as_ptr() as u64;
                if let Err(e) = ops.vfio_dma_unmap(iova, self.map.len()) {
                    // The container may already have lost the device (removal): its mappings went with it.
                    eprintln!("nicclock-uio: {}: VFIO DMA unmap of {iova:#x}: {e}", self.shared.device);
                }
            }
        }
        // `map` is unmapped (and unlocked) when the fields drop, after the device lost access.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_doors_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<DmaRegion>();
        send_sync::<Dma>();
    }
}

//! Physical addresses of our own pages from `/proc/self/pagemap`, for DMA without an IOMMU
//! (UIO, sysfs `resource0`): one 64-bit entry per virtual page, decoded and checked here.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::dma::{DmaError, PAGE_SIZE};

/// Bit 63: the page is present in RAM.
const PRESENT: u64 = 1 << 63;
/// Bit 62: the page is swapped out (then bits 0-54 are swap type and offset, not a PFN).
const SWAPPED: u64 = 1 << 62;
/// Bits 0-54: the page frame number, when present.
const PFN_MASK: u64 = (1 << 55) - 1;

/// Where `/proc/self/pagemap` lives.
pub const PAGEMAP: &str = "/proc/self/pagemap";

/// One decoded pagemap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEntry {
    /// In RAM at this page frame number.
    Present { pfn: u64 },
    /// In RAM, but the kernel hid its frame number (reads 0 without CAP_SYS_ADMIN).
    Hidden,
    /// Swapped out.
    Swapped,
    /// Not backed by RAM (never touched, or unmapped).
    Absent,
}

impl PageEntry {
    /// Decodes a raw 64-bit entry.
    pub fn decode(raw: u64) -> Self {
        if raw & SWAPPED != 0 {
            Self::Swapped
        } else if raw & PRESENT == 0 {
            Self::Absent
        } else {
            match raw & PFN_MASK {
                0 => Self::Hidden,
                pfn => Self::Present { pfn },
            }
        }
    }
}

/// A source of raw pagemap entries: the kernel's file, or a fake one in tests.
pub trait PageTable: Send + Sync {
    /// Fills `out` with the raw entries of the pages from virtual page number `first_page` on.
    fn entries(&self, first_page: u64, out: &mut [u64]) -> io::Result<()>;

    /// What to name in messages.
    fn name(&self) -> &Path;
}

/// The kernel's pagemap of this process, opened afresh for each lookup (allocations are rare, and
/// a device that never uses DMA never opens it).
pub struct Pagemap {
    path: PathBuf,
}

impl Pagemap {
    /// The pagemap at `path` (normally [`PAGEMAP`]).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl PageTable for Pagemap {
    fn entries(&self, first_page: u64, out: &mut [u64]) -> io::Result<()> {
        let file = File::open(&self.path)?;
        let mut bytes = vec![0u8; out.len() * 8];
        file.read_exact_at(&mut bytes, first_page * 8)?;
        for (entry, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *entry = u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        Ok(())
    }

    fn name(&self) -> &Path {
        &self.path
    }
}

/// The physical address of each of the `pages` pages from `vaddr` (page-aligned) on, refusing any
/// page that is not in RAM or whose address the kernel hides.
pub fn physical_pages(table: &dyn PageTable, vaddr: usize, pages: usize) -> Result<Vec<u64>, DmaError> {
    assert!(vaddr % PAGE_SIZE == 0, "pagemap lookups take page-aligned addresses");
    let mut raw = vec![0u64; pages];
    table
        .entries((vaddr / PAGE_SIZE) as u64, &mut raw)
        .map_err(|err| DmaError::Pagemap { path: table.name().into(), err })?;
    raw.iter()
        .enumerate()
        .map(|(i, &r)| {
            let page = vaddr + i * PAGE_SIZE;
            match PageEntry::decode(r) {
                PageEntry::Present { pfn } => Ok(pfn * PAGE_SIZE as u64),
                PageEntry::Hidden => Err(DmaError::PhysicalHidden { path: table.name().into() }),
                PageEntry::Swapped | PageEntry::Absent => Err(DmaError::NotResident { vaddr: page, raw: r }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_present_pfn_and_swapped() {
        assert_eq!(PageEntry::decode(PRESENT | 0x12345), PageEntry::Present { pfn: 0x12345 });
        // Bits 55-61 are flags (soft-dirty, exclusive, file/shared), not part of the PFN.
        assert_eq!(PageEntry::decode(PRESENT | (1 << 55) | (1 << 61) | 7), PageEntry::Present { pfn: 7 });
        assert_eq!(PageEntry::decode(PRESENT | PFN_MASK), PageEntry::Present { pfn: PFN_MASK });
        assert_eq!(PageEntry::decode(PRESENT), PageEntry::Hidden);
        assert_eq!(PageEntry::decode(SWAPPED | 0x42), PageEntry::Swapped);
        assert_eq!(PageEntry::decode(PRESENT | SWAPPED | 0x42), PageEntry::Swapped);
        assert_eq!(PageEntry::decode(0), PageEntry::Absent);
        assert_eq!(PageEntry::decode(0x42), PageEntry::Absent);
    }

    struct Fake(Vec<u64>);

    impl PageTable for Fake {
        fn entries(&self, first_page: u64, out: &mut [u64]) -> io::Result<()> {
            assert_eq!(first_page, 0x10, "the virtual page number of the address asked for");
            out.copy_from_slice(&self.0[..out.len()]);
            Ok(())
        }
        fn name(&self) -> &Path {
            Path::new("fake-pagemap")
        }
    }

    #[test]
    fn pages_map_to_frame_addresses_or_are_refused() {
        let vaddr = 0x10 * PAGE_SIZE;
        let ok = Fake(vec![PRESENT | 0x100, PRESENT | 0x7]);
        assert_eq!(physical_pages(&ok, vaddr, 2).unwrap(), vec![0x100_000, 0x7000]);

        let hidden = Fake(vec![PRESENT | 0x100, PRESENT]);
        let e = physical_pages(&hidden, vaddr, 2).unwrap_err();
        assert!(matches!(e, DmaError::PhysicalHidden { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("CAP_SYS_ADMIN") && msg.contains("root") && msg.contains("vfio:"), "{msg}");

        let swapped = Fake(vec![SWAPPED | 3]);
        let e = physical_pages(&swapped, vaddr, 1).unwrap_err();
        assert!(matches!(e, DmaError::NotResident { vaddr: v, .. } if v == vaddr), "{e}");
    }
}

//! A mapped BAR: volatile, bounds-checked 32-bit access through a raw pointer (as ixy.rs does).
//! The file descriptors that back the mapping live exactly as long as it does.

use std::any::Any;
use std::fs::File;
use std::io;

use memmap2::{MmapOptions, MmapRaw};

use crate::access::{check_offset, RegisterAccess};
use crate::config::{ConfigSpace, Presence};

/// A device register window mapped into this process.
pub struct MmioRegion {
    map: MmapRaw,
    /// The device's config space, to confirm a removal.
    config: Option<ConfigSpace>,
    /// What the mapping depends on (VFIO container and device, UIO node, resource file).
    _keep: Vec<Box<dyn Any + Send>>,
}

impl MmioRegion {
    /// Maps `len` bytes of `file` at `offset` read-write and shared. `keep` holds every descriptor
    /// that must stay open while the mapping lives (VFIO: container and group as well as device).
    pub fn map(file: &File, offset: u64, len: usize, keep: Vec<Box<dyn Any + Send>>) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot map an empty BAR"));
        }
        // Device files report size 0, so offset and length are given explicitly. map_raw creates
        // no Rust reference to the memory: all access goes through read/write_volatile below.
        let map = MmapOptions::new().offset(offset).len(len).map_raw(file)?;
        Ok(Self { map, config: None, _keep: keep })
    }

    /// Attaches the device's config space, which [`RegisterAccess::presence`] then reads.
    pub fn with_config(mut self, config: ConfigSpace) -> Self {
        self.config = Some(config);
        self
    }
}

// SAFETY: the region is plain device memory accessed only with volatile 32-bit operations; the
// hardware (not Rust) arbitrates concurrent access, as it does across processes.
unsafe impl Send for MmioRegion {}
// SAFETY: as above; no Rust reference into the mapping is ever created.
unsafe impl Sync for MmioRegion {}

impl RegisterAccess for MmioRegion {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn presence(&self) -> Option<Presence> {
        self.config.as_ref().map(ConfigSpace::presence)
    }

    #[inline]
    fn read32(&self, offset: usize) -> u32 {
        check_offset(offset, self.map.len());
        // SAFETY: offset is 4-aligned and inside the mapping (checked above); the mapping is
        // page-aligned, so the address is 4-aligned; MMIO must be read with one volatile access.
        u32::from_le(unsafe { self.map.as_ptr().add(offset).cast::<u32>().read_volatile() })
    }

    fn register(&self, offset: usize) -> Option<Register<'_>> {
        check_offset(offset, self.map.len());
        // SAFETY: offset checked inside the mapping and 4-aligned (the mapping is page-aligned).
        let ptr = unsafe { self.map.as_ptr().add(offset).cast::<u32>() };
        Some(Register { ptr, _region: std::marker::PhantomData })
    }

    #[inline]
    fn write32(&self, offset: usize, value: u32) {
        check_offset(offset, self.map.len());
        // SAFETY: as in read32; the mapping is writable (map_raw maps PROT_READ | PROT_WRITE).
        unsafe { self.map.as_mut_ptr().add(offset).cast::<u32>().write_volatile(value.to_le()) }
    }
}

/// One register of a mapped region, resolved once ([`RegisterAccess::register`]): reads it with
/// one inline volatile load, for reads that must sit alone between two clock reads.
#[derive(Clone, Copy)]
pub struct Register<'a> {
    ptr: *const u32,
    _region: std::marker::PhantomData<&'a MmioRegion>,
}

impl Register<'_> {
    /// Reads the register (little-endian).
    #[inline(always)]
    pub fn read(&self) -> u32 {
        // SAFETY: `ptr` points at a 4-aligned register inside a mapping that outlives this handle
        // (it borrows the region); MMIO must be read with one volatile access.
        u32::from_le(unsafe { self.ptr.read_volatile() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zero-filled file of `len` bytes under the temp dir, to map as a BAR.
    fn scratch_file(name: &str, len: u64) -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(len).unwrap();
        (path, file)
    }

    #[test]
    fn reads_and_writes_a_mapped_file_as_registers() {
        let (path, file) = scratch_file("nicclock-mmio", 8192);
        let region = MmioRegion::map(&file, 4096, 4096, vec![]).unwrap();
        region.write32(0x10, 0xdead_beef);
        assert_eq!(region.read32(0x10), 0xdead_beef);
        assert_eq!(region.len(), 4096);
        drop(region);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            &bytes[4096 + 0x10..4096 + 0x14],
            &0xdead_beefu32.to_le_bytes(),
            "little endian at the offset"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_resolved_register_reads_the_word_at_each_call() {
        let (path, file) = scratch_file("nicclock-mmio-reg", 4096);
        // Through a shared trait object, as the driver holds its registers.
        let shared: std::sync::Arc<dyn RegisterAccess> =
            std::sync::Arc::new(MmioRegion::map(&file, 0, 4096, vec![]).unwrap());
        let register = shared.register(0x10).expect("a mapped region resolves its registers");
        shared.write32(0x10, 0xdead_beef);
        assert_eq!(register.read(), 0xdead_beef);
        shared.write32(0x10, 0x1234_5678);
        assert_eq!(register.read(), 0x1234_5678, "read at each call, not copied");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_window_offsets_panic() {
        check_offset(4096, 4096);
    }

    #[test]
    #[should_panic(expected = "unaligned")]
    fn unaligned_offsets_panic() {
        check_offset(2, 4096);
    }
}

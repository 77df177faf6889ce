//! Host memory the simulated NIC reaches by DMA: one cloneable handle shared by the driver's rings
//! (as their [`DescMemory`]) and the device; device address = the region's base + offset.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::net::ring::DescMemory;

/// A region of host memory the simulated device sees at `base`; clones share the bytes.
#[derive(Debug, Clone)]
pub struct HostMemory {
    bytes: Arc<Mutex<Vec<u8>>>,
    base: u64,
}

impl HostMemory {
    /// `len` zero bytes the device sees at bus address `base`.
    pub fn new(len: usize, base: u64) -> Self {
        Self { bytes: Arc::new(Mutex::new(vec![0; len])), base }
    }

    /// The bus address of byte 0.
    pub fn base(&self) -> u64 {
        self.base
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The offset of the `len` bytes at bus address `addr`, if they are all inside.
    fn span(&self, addr: u64, len: usize, total: usize) -> Option<usize> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        (off.checked_add(len)? <= total).then_some(off)
    }

    /// Device read of `out.len()` bytes at bus address `addr`; false (nothing read) when the span
    /// is not inside this region.
    pub fn dma_read(&self, addr: u64, out: &mut [u8]) -> bool {
        let bytes = self.lock();
        let Some(off) = self.span(addr, out.len(), bytes.len()) else { return false };
        out.copy_from_slice(&bytes[off..off + out.len()]);
        true
    }

    /// Device write of `data` at bus address `addr`; false (nothing written) when the span is not
    /// inside this region.
    pub fn dma_write(&self, addr: u64, data: &[u8]) -> bool {
        let mut bytes = self.lock();
        let Some(off) = self.span(addr, data.len(), bytes.len()) else { return false };
        bytes[off..off + data.len()].copy_from_slice(data);
        true
    }
}

impl DescMemory for HostMemory {
    fn len(&self) -> usize {
        self.lock().len()
    }
    fn read_u64(&self, offset: usize) -> u64 {
        let bytes = self.lock();
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[offset..offset + 8]);
        u64::from_le_bytes(b)
    }
    fn write_u64(&mut self, offset: usize, value: u64) {
        self.lock()[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.lock()[offset..offset + out.len()]);
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.lock()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn device_addr(&self, offset: usize, _len: usize) -> Option<u64> {
        Some(self.base + offset as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_bytes_and_the_device_sees_base_plus_offset() {
        let mut driver = HostMemory::new(4096, 0x1_0000_0000);
        let device = driver.clone();
        driver.write_u64(16, 0x1122_3344_5566_7788);
        let mut b = [0u8; 8];
        assert!(device.dma_read(0x1_0000_0010, &mut b));
        assert_eq!(u64::from_le_bytes(b), 0x1122_3344_5566_7788);
        assert!(device.dma_write(0x1_0000_0ffc, &[1, 2, 3, 4]));
        assert_eq!(driver.read_u64(0xff8) >> 32, 0x0403_0201);
        assert!(!device.dma_write(0x1_0000_0ffe, &[1, 2, 3, 4]), "crosses the end");
        assert!(!device.dma_read(0xffff_fff0, &mut b), "below the base");
        assert_eq!(driver.device_addr(0x80, 16), Some(0x1_0000_0080));
    }
}

//! The rings' memory in the daemon: [`DescMemory`] over a locked [`DmaRegion`], every access
//! volatile, device addresses from its page table (none for a span across scattered pages).

use nicclock_uio::DmaRegion;

use super::ring::DescMemory;

impl DescMemory for DmaRegion {
    fn len(&self) -> usize {
        DmaRegion::len(self)
    }
    fn read_u64(&self, offset: usize) -> u64 {
        self.read64(offset)
    }
    fn write_u64(&mut self, offset: usize, value: u64) {
        self.write64(offset, value);
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        DmaRegion::read_bytes(self, offset, out);
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        DmaRegion::write_bytes(self, offset, data);
    }
    fn device_addr(&self, offset: usize, len: usize) -> Option<u64> {
        self.device_address(offset, len).ok()
    }
}

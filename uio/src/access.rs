//! The register seam: 32-bit reads and writes at byte offsets of a BAR.
//! Implemented by [`crate::MmioRegion`] (real hardware) and by the driver's simulated NIC.

/// 32-bit little-endian register access at byte offsets into a device's register window.
///
/// Offsets must be 4-byte aligned and inside [`RegisterAccess::len`]; an offset outside is a
/// driver bug and panics (the driver checks the BAR size once, at open).
pub trait RegisterAccess {
    /// Size of the register window in bytes.
    fn len(&self) -> usize;

    /// Reads the register at `offset`.
    fn read32(&self, offset: usize) -> u32;

    /// Writes `value` to the register at `offset`.
    fn write32(&self, offset: usize, value: u32);

    /// Whether the window is empty (never, for a mapped BAR).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What PCI config space says about the device, asked when its registers read all ones;
    /// `None` when this access has no config space to ask.
    fn presence(&self) -> Option<crate::Presence> {
        None
    }

    /// The register at `offset` as a handle that reads it inline (one volatile load, no call
    /// through this trait): for a read that must stay tight, such as the latching SYSTIM read
    /// between two clock reads. `None` when this access has no memory to point at (a simulation).
    fn register(&self, offset: usize) -> Option<crate::mmio::Register<'_>> {
        let _ = offset;
        None
    }
}

impl<T: RegisterAccess + ?Sized> RegisterAccess for Box<T> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn register(&self, offset: usize) -> Option<crate::mmio::Register<'_>> {
        (**self).register(offset)
    }
    fn presence(&self) -> Option<crate::Presence> {
        (**self).presence()
    }
    fn read32(&self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
}

impl<T: RegisterAccess + ?Sized> RegisterAccess for std::sync::Arc<T> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn register(&self, offset: usize) -> Option<crate::mmio::Register<'_>> {
        (**self).register(offset)
    }
    fn presence(&self) -> Option<crate::Presence> {
        (**self).presence()
    }
    fn read32(&self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
}

/// Panics unless `offset` is a 4-byte aligned register inside a window of `len` bytes.
#[inline]
#[track_caller]
pub fn check_offset(offset: usize, len: usize) {
    assert!(
        offset % 4 == 0 && offset.checked_add(4).is_some_and(|end| end <= len),
        "register offset {offset:#x} outside the {len:#x}-byte window or unaligned"
    );
}

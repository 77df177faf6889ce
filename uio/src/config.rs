//! A device's PCI configuration space, kept open beside its BAR mapping: when every BAR read
//! returns all ones, the vendor ID here tells a removed device from one that stopped decoding.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Offset of the Command register.
const COMMAND: u64 = 4;
/// Command register bit 2: the device may master the bus (DMA).
pub const BUS_MASTER: u16 = 1 << 2;

/// What config space says about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The vendor ID is still the device's own.
    Present,
    /// The vendor ID reads all ones, or config space cannot be read at all: the device is gone.
    Gone,
}

/// Read access to the first bytes of a device's config space.
pub struct ConfigSpace {
    file: File,
    /// Where config space starts in `file` (0 for sysfs `config`, the region offset for VFIO).
    offset: u64,
    vendor: u16,
    /// Set once the device is seen gone (VFIO: its handles must then not be closed normally).
    gone: Option<Arc<AtomicBool>>,
}

impl ConfigSpace {
    /// Opens sysfs `<device>/config` read-only (unprivileged reads give the first 64 bytes,
    /// which hold the vendor ID).
    pub fn sysfs(device_path: &Path, vendor: u16) -> io::Result<Self> {
        Ok(Self { file: File::open(device_path.join("config"))?, offset: 0, vendor, gone: None })
    }

    /// Config space through an fd of the VFIO device, at the config region's offset; `gone` is
    /// set when a read finds the device gone.
    pub fn vfio(device_fd: File, region_offset: u64, vendor: u16, gone: Arc<AtomicBool>) -> Self {
        Self { file: device_fd, offset: region_offset, vendor, gone: Some(gone) }
    }

    /// Opens sysfs `<device>/config` read-write (root), to set the Command register.
    pub fn sysfs_rw(device_path: &Path, vendor: u16) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(device_path.join("config"))?;
        Ok(Self { file, offset: 0, vendor, gone: None })
    }

    /// Reads the 16-bit Command register (offset 4).
    pub fn command(&self) -> io::Result<u16> {
        let mut bytes = [0u8; 2];
        self.file.read_exact_at(&mut bytes, self.offset + COMMAND)?;
        Ok(u16::from_le_bytes(bytes))
    }

    /// Writes the 16-bit Command register (offset 4).
    pub fn set_command(&self, value: u16) -> io::Result<()> {
        self.file.write_all_at(&value.to_le_bytes(), self.offset + COMMAND)
    }

    /// Reads the vendor ID now.
    pub fn presence(&self) -> Presence {
        let mut id = [0u8; 2];
        match self.file.read_exact_at(&mut id, self.offset) {
            Ok(()) if u16::from_le_bytes(id) == self.vendor => Presence::Present,
            _ => {
                if let Some(gone) = &self.gone {
                    gone.store(true, Ordering::Relaxed);
                }
                Presence::Gone
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_file(dir: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config"), bytes).unwrap();
    }

    #[test]
    fn the_vendor_id_decides() {
        let dir = std::env::temp_dir().join(format!("nicclock-config-{}", std::process::id()));
        config_file(&dir, &[0x86, 0x80, 0xc9, 0x10]);
        let config = ConfigSpace::sysfs(&dir, 0x8086).unwrap();
        assert_eq!(config.presence(), Presence::Present);
        // A removed device answers config reads with all ones.
        std::fs::write(dir.join("config"), [0xff; 4]).unwrap();
        assert_eq!(config.presence(), Presence::Gone);
        // ... or the read fails (the file is empty: nothing to read).
        std::fs::write(dir.join("config"), []).unwrap();
        assert_eq!(config.presence(), Presence::Gone);
        // At an offset, as in a VFIO device fd.
        std::fs::write(dir.join("config"), [0, 0, 0, 0, 0x86, 0x80]).unwrap();
        let gone = Arc::new(AtomicBool::new(false));
        let vfio = ConfigSpace::vfio(File::open(dir.join("config")).unwrap(), 4, 0x8086, gone.clone());
        assert_eq!(vfio.presence(), Presence::Present);
        assert!(!gone.load(Ordering::Relaxed));
        std::fs::write(dir.join("config"), [0, 0, 0, 0, 0xff, 0xff]).unwrap();
        assert_eq!(vfio.presence(), Presence::Gone);
        assert!(gone.load(Ordering::Relaxed), "a device seen gone is flagged for its VFIO handles");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

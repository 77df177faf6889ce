//! The sysfs `resource0` backend: maps BAR0 through `/sys/bus/pci/devices/<addr>/resource0`.
//! Needs root; refuses a device a kernel network driver still drives.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;

use crate::error::Error;
use crate::mmio::MmioRegion;
use crate::pci::{PciDevice, Sysfs};

/// Drivers that leave the registers to us: none, or the generic UIO stub.
pub const FREE_DRIVERS: [&str; 1] = ["uio_pci_generic"];

/// Maps BAR0 of `device` (already looked up in `sysfs`) through its resource0 file, O_SYNC.
pub fn map(sysfs: &Sysfs, device: &PciDevice, min_len: u64) -> Result<MmioRegion, Error> {
    if let Some(driver) = &device.driver {
        if !FREE_DRIVERS.contains(&driver.as_str()) {
            return Err(Error::BoundToDriver {
                address: device.address,
                driver: driver.clone(),
                wanted: "uio_pci_generic",
            });
        }
    }
    let bar = device.bar0.filter(|b| b.is_memory()).ok_or(Error::NoBar { address: device.address })?;
    if bar.size < min_len {
        return Err(Error::BarTooSmall { address: device.address, size: bar.size, needed: min_len });
    }
    let path = sysfs.device_path(device.address).join("resource0");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_SYNC | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    MmioRegion::map(
        &file,
        0,
        bar.size as usize,
        vec![Box::new(file.try_clone().map_err(|e| Error::io("dup", &path, e))?)],
    )
    .map_err(|e| Error::io("map", &path, e))
}

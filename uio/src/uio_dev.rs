//! The UIO backend: maps BAR0 as map0 of `/dev/uioN` (uio_pci_generic), sized by sysfs.
//! The map index is chosen by the mmap offset: map N lives at N × page size.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::Error;
use crate::mmio::MmioRegion;
use crate::pci::{PciAddress, Sysfs};

/// Maps map0 of the UIO node `node` (`/dev/uioN`); returns the region and the PCI device behind it.
pub fn map(sysfs: &Sysfs, node: &Path, min_len: u64) -> Result<(MmioRegion, Option<PciAddress>), Error> {
    let name = node
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.starts_with("uio") && n[3..].parse::<u32>().is_ok())
        .ok_or_else(|| Error::InvalidSpec {
            input: node.display().to_string(),
            reason: "a UIO device is /dev/uioN".into(),
        })?;
    let (address, map_addr, size) = sysfs.uio_map0(name)?;
    // uio_pci_generic numbers the BARs it exports compactly: make sure map0 really is BAR0.
    if let Some(bar0) = address.map(|a| sysfs.device(a)).transpose()?.and_then(|d| d.bar0) {
        if bar0.start != map_addr {
            return Err(Error::InvalidSpec {
                input: node.display().to_string(),
                reason: format!(
                    "its map0 is at {map_addr:#x}, not BAR0 at {:#x}: use sysfs:<pci address>",
                    bar0.start
                ),
            });
        }
    }
    if size < min_len {
        let address = address.unwrap_or(PciAddress { domain: 0, bus: 0, device: 0, function: 0 });
        return Err(Error::BarTooSmall { address, size, needed: min_len });
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(node)
        .map_err(|e| Error::io("open", node, e))?;
    let keep = file.try_clone().map_err(|e| Error::io("dup", node, e))?;
    let region = MmioRegion::map(&file, 0, size as usize, vec![Box::new(keep)])
        .map_err(|e| Error::io("map", node, e))?;
    Ok((region, address))
}

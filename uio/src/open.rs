//! Device specifications (`vfio:<addr>`, `uio:/dev/uioN`, `sysfs:<addr>`) and opening them.
//! The result is a mapped BAR0 plus what sysfs knows about the device (ids for the model table).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::config::ConfigSpace;
use crate::dma::Dma;
use crate::error::Error;
use crate::irq::IrqDoor;
use crate::mmio::MmioRegion;
use crate::pagemap::{Pagemap, PAGEMAP};
use crate::pci::{PciAddress, PciDevice, Sysfs};
use crate::{resource, uio_dev, vfio};

/// How BAR0 is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Vfio,
    Uio,
    Sysfs,
}

/// A hardware device as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `vfio:<pci address>`: the device bound to vfio-pci.
    Vfio(PciAddress),
    /// `uio:/dev/uioN`: the device bound to uio_pci_generic.
    Uio(PathBuf),
    /// `sysfs:<pci address>`: BAR0 through sysfs `resource0` (no driver, or uio_pci_generic).
    Sysfs(PciAddress),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidSpec {
            input: s.into(),
            reason: format!("{reason} (use vfio:<pci address>, uio:/dev/uioN or sysfs:<pci address>)"),
        };
        let (kind, rest) = s.split_once(':').ok_or_else(|| bad("no backend prefix"))?;
        match kind {
            "vfio" => Ok(Self::Vfio(rest.parse()?)),
            "sysfs" => Ok(Self::Sysfs(rest.parse()?)),
            "uio" if rest.starts_with("/dev/uio") => Ok(Self::Uio(rest.into())),
            "uio" => Err(bad("a UIO device is /dev/uioN")),
            _ => Err(bad(&format!("unknown backend {kind:?}"))),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vfio(a) => write!(f, "vfio:{a}"),
            Self::Uio(p) => write!(f, "uio:{}", p.display()),
            Self::Sysfs(a) => write!(f, "sysfs:{a}"),
        }
    }
}

/// A device with BAR0 mapped.
pub struct OpenedDevice {
    pub regs: MmioRegion,
    /// VFIO: the kernel's hot-unplug request (release the device when it fires).
    pub removal: Option<vfio::RemovalRequest>,
    /// What sysfs says about it (None only for a UIO node whose PCI parent is unknown).
    pub pci: Option<PciDevice>,
    pub backend: Backend,
    /// Where DMA memory for this device comes from (the VFIO container, or physical pages from
    /// pagemap); None only for a UIO node whose PCI parent is unknown. Unused until asked.
    pub dma: Option<Dma>,
    /// Where the device's interrupt can be routed to a descriptor (VFIO, UIO); None for sysfs
    /// `resource0` (no interrupt delivery: poll). Nothing is enabled until asked.
    pub irq: Option<IrqDoor>,
}

/// Opens `spec`, checking the device is in a state we may drive, and maps at least `min_len`
/// bytes of BAR0.
pub fn open(sysfs: &Sysfs, spec: &DeviceSpec, min_len: u64) -> Result<OpenedDevice, Error> {
    match spec {
        DeviceSpec::Vfio(address) => {
            let device = sysfs.device(*address)?;
            let (regs, removal, dma, irq) = vfio::map(sysfs, &device, min_len)?;
            let (pci, backend, dma, irq) = (Some(device), Backend::Vfio, Some(dma), Some(irq));
            Ok(OpenedDevice { regs, removal, pci, backend, dma, irq })
        }
        DeviceSpec::Sysfs(address) => {
            let device = sysfs.device(*address)?;
            let regs = with_sysfs_config(resource::map(sysfs, &device, min_len)?, Some(&device));
            let dma = Some(physical_dma(&device));
            Ok(OpenedDevice {
                regs,
                removal: None,
                pci: Some(device),
                backend: Backend::Sysfs,
                dma,
                irq: None,
            })
        }
        DeviceSpec::Uio(node) => {
            let (regs, address) = uio_dev::map(sysfs, node, min_len)?;
            let pci = address.map(|a| sysfs.device(a)).transpose()?;
            let regs = with_sysfs_config(regs, pci.as_ref());
            let dma = pci.as_ref().map(physical_dma);
            let irq = pci.as_ref().map(|d| IrqDoor::uio(node, &d.path, d.vendor));
            Ok(OpenedDevice { regs, removal: None, pci, backend: Backend::Uio, dma, irq })
        }
    }
}

/// DMA without an IOMMU: physical pages from this process's pagemap, bus mastering through sysfs.
fn physical_dma(device: &PciDevice) -> Dma {
    Dma::physical(
        device.address.to_string(),
        Box::new(Pagemap::new(PAGEMAP)),
        device.path.clone(),
        device.vendor,
    )
}

/// Attaches sysfs `config` to a UIO or resource0 mapping. Without it (no PCI parent, or the file
/// cannot be opened) a removal is still seen in the registers, just not confirmed.
fn with_sysfs_config(regs: MmioRegion, device: Option<&PciDevice>) -> MmioRegion {
    match device.map(|d| ConfigSpace::sysfs(&d.path, d.vendor)) {
        Some(Ok(config)) => regs.with_config(config),
        _ => regs,
    }
}

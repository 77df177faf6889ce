//! Why a device could not be opened, and what to do about it.
//! Every message names the device and the command or setting that fixes it.

use std::io;
use std::path::PathBuf;

use crate::pci::PciAddress;

fn members(list: &[(PciAddress, Option<String>)]) -> String {
    list.iter()
        .map(|(a, d)| format!("{a} ({})", d.as_deref().unwrap_or("no driver")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rebind(address: &PciAddress, driver: &str) -> String {
    format!(
        "echo {driver} > /sys/bus/pci/devices/{address}/driver_override; \
         echo {address} > /sys/bus/pci/devices/{address}/driver/unbind; \
         echo {address} > /sys/bus/pci/drivers_probe"
    )
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid PCI address {input:?}: {reason} (write it like 0000:01:00.0; `lspci -D` lists them)")]
    InvalidAddress { input: String, reason: &'static str },
    #[error("invalid device {input:?}: {reason}")]
    InvalidSpec { input: String, reason: String },
    #[error("no PCI device {address} (is the NIC present? `lspci -D` lists the devices there are)")]
    DeviceAbsent { address: PciAddress },
    #[error(
        "{address} is bound to the kernel driver {driver}, which owns its registers; hand it to \
         {wanted} first: {}",
        rebind(address, wanted)
    )]
    BoundToDriver { address: PciAddress, driver: String, wanted: &'static str },
    #[error(
        "{address} is not bound to {wanted} (no driver): bind it with \
         `echo {wanted} > /sys/bus/pci/devices/{address}/driver_override; echo {address} > /sys/bus/pci/drivers_probe`"
    )]
    NotBound { address: PciAddress, wanted: &'static str },
    #[error(
        "{address} has no IOMMU group: VFIO needs an IOMMU (boot with intel_iommu=on or amd_iommu=on; \
         in QEMU add -device intel-iommu), or use uio: instead"
    )]
    NoIommuGroup { address: PciAddress },
    #[error(
        "IOMMU group {group} is not viable: every device in it must be bound to vfio-pci or to no \
         driver; the others are {}",
        members(others)
    )]
    GroupNotViable { group: u32, others: Vec<(PciAddress, Option<String>)> },
    #[error(
        "{path} does not exist: load VFIO with `modprobe vfio-pci` (it brings vfio and vfio_iommu_type1)"
    )]
    VfioMissing { path: PathBuf },
    #[error("no UIO device {name} (bind the NIC to uio_pci_generic: `modprobe uio_pci_generic`, then driver_override)")]
    UioAbsent { name: String },
    #[error("permission denied opening {path}: run nicclockd as root (or grant this user the device node)")]
    NotRoot { path: PathBuf },
    #[error("{address} BAR0 is {size:#x} bytes, but the PTP registers need {needed:#x}: wrong device?")]
    BarTooSmall { address: PciAddress, size: u64, needed: u64 },
    #[error("{address} has no memory BAR0 to map")]
    NoBar { address: PciAddress },
    #[error("VFIO refused {address}: {reason}")]
    Vfio { address: PciAddress, reason: String },
    #[error("cannot {action} {path}: {err}")]
    Io { action: &'static str, path: PathBuf, err: io::Error },
    #[error(transparent)]
    Dma(#[from] crate::dma::DmaError),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, err: io::Error) -> Self {
        let path = path.into();
        if err.kind() == io::ErrorKind::PermissionDenied {
            return Error::NotRoot { path };
        }
        Error::Io { action, path, err }
    }

    /// Whether the cause is how it was asked for (exit code 2) rather than the machine's state (1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::InvalidAddress { .. } | Error::InvalidSpec { .. })
    }
}

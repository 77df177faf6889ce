//! BAR access for nicclock: finds a PCI device in sysfs and maps its BAR0 through the kernel's
//! character devices (VFIO, UIO, sysfs `resource0`) behind one [`RegisterAccess`] trait.
//!
//! The trait is the driver's only door to hardware; the simulated NIC implements it too, so every
//! layer above it is tested without a NIC. `unsafe` lives in the mapping modules alone: [`mmio`]
//! (volatile access to the mapped BAR), [`vfio`] (borrowing VFIO's descriptors and keeping its
//! handles alive as long as the mapping), [`dma`] (DMA memory: volatile access, the VFIO DMA map)
//! and [`irq`] (borrowing the interrupt eventfd).

pub mod access;
pub mod config;
pub mod dma;
pub mod error;
pub mod irq;
pub mod mmio;
pub mod open;
pub mod pagemap;
pub mod pci;
pub mod resource;
pub mod uio_dev;
pub mod vfio;

pub use access::RegisterAccess;
pub use config::{ConfigSpace, Presence};
pub use dma::{Dma, DmaError, DmaRegion};
pub use error::Error;
pub use irq::{Irq, IrqDoor, IrqError, IrqKind, IrqRaiser};
pub use mmio::MmioRegion;
pub use open::{open, Backend, DeviceSpec, OpenedDevice};
pub use pci::{PciAddress, PciDevice, Sysfs};

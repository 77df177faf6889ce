//! The VFIO backend: opens the device through its IOMMU group (vfio-ioctls, no KVM) and maps
//! BAR0 (region 0) from the device fd; config space is region 7.

use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};
use vmm_sys_util::eventfd::EventFd;

use crate::config::ConfigSpace;
use crate::dma::Dma;
use crate::error::Error;
use crate::irq::IrqDoor;
use crate::mmio::MmioRegion;
use crate::pci::{PciDevice, Sysfs};

const BAR0_REGION: u32 = 0;
/// VFIO_PCI_REQ_IRQ_INDEX: the kernel's "please release this device" (hot-unplug) notification.
const REQ_IRQ: u32 = 4;
const CONFIG_REGION: u32 = 7;
const REGION_FLAG_MMAP: u32 = 1 << 2;
/// Drivers that leave a group viable for VFIO.
const VIABLE_DRIVERS: [&str; 2] = ["vfio-pci", "pci-stub"];
pub const CONTAINER: &str = "/dev/vfio/vfio";

/// Checks the device is ready for VFIO and says precisely what is missing if not.
pub fn check(sysfs: &Sysfs, device: &PciDevice) -> Result<u32, Error> {
    match device.driver.as_deref() {
        Some("vfio-pci") => {}
        Some(other) => {
            return Err(Error::BoundToDriver {
                address: device.address,
                driver: other.into(),
                wanted: "vfio-pci",
            })
        }
        None => return Err(Error::NotBound { address: device.address, wanted: "vfio-pci" }),
    }
    let group = device.iommu_group.ok_or(Error::NoIommuGroup { address: device.address })?;
    let blocking: Vec<_> = sysfs
        .iommu_group_members(group)?
        .into_iter()
        .filter(|(a, d)| *a != device.address && d.as_deref().is_some_and(|d| !VIABLE_DRIVERS.contains(&d)))
        .collect();
    if !blocking.is_empty() {
        return Err(Error::GroupNotViable { group, others: blocking });
    }
    Ok(group)
}

/// Fails with the modprobe hint when the VFIO container node is missing.
pub fn require_container(path: &Path) -> Result<(), Error> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::VfioMissing { path: path.into() })
    }
}

/// The kernel's request to give the device back (it is being unplugged): vfio-pci cannot finish
/// removing a device while its fds are open, so it signals this eventfd and waits.
pub struct RemovalRequest {
    event: EventFd,
    /// Shared with the mapping's VFIO handles (and its config space): a device being removed must
    /// not be closed the normal way (see [`VfioShared`]).
    removing: Arc<AtomicBool>,
}

impl RemovalRequest {
    /// Whether the kernel has asked for the device (never blocks).
    pub fn requested(&self) -> bool {
        let asked = self.event.read().is_ok();
        if asked {
            self.removing.store(true, Ordering::Relaxed);
        }
        asked
    }
}

impl AsFd for RemovalRequest {
    /// The eventfd the kernel signals: readable once a release is requested (poll it to sleep
    /// until then; [`RemovalRequest::requested`] consumes it).
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the eventfd is owned by `self.event` and stays open as long as `self`, which the
        // returned borrow cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.event.as_raw_fd()) }
    }
}

/// Maps BAR0 of `device` (bound to vfio-pci) through VFIO, with the removal-request notification
/// when the device offers it, the door to DMA memory through the same container and the door to
/// its interrupts.
pub fn map(
    sysfs: &Sysfs,
    device: &PciDevice,
    min_len: u64,
) -> Result<(MmioRegion, Option<RemovalRequest>, Dma, IrqDoor), Error> {
    check(sysfs, device)?;
    require_container(Path::new(CONTAINER))?;
    let address = device.address;
    let vfio_err = |e: vfio_ioctls::VfioError| Error::Vfio { address, reason: e.to_string() };
    let container = Arc::new(VfioContainer::new(None).map_err(vfio_err)?);
    let ops: Arc<dyn VfioOps> = container.clone();
    let vfio = VfioDevice::new(&device.path, ops, false).map_err(vfio_err)?;

    // Cross-check the ids through config space: VFIO must have handed us the device we meant.
    let mut ids = [0u8; 4];
    vfio.region_read(CONFIG_REGION, &mut ids, 0);
    let (vendor, id) = (u16::from_le_bytes([ids[0], ids[1]]), u16::from_le_bytes([ids[2], ids[3]]));
    if (vendor, id) != (device.vendor, device.device) {
        return Err(Error::Vfio {
            address,
            reason: format!(
                "config space says {vendor:04x}:{id:04x}, sysfs {:04x}:{:04x}",
                device.vendor, device.device
            ),
        });
    }
    let size = vfio.get_region_size(BAR0_REGION);
    if vfio.get_region_flags(BAR0_REGION) & REGION_FLAG_MMAP == 0 {
        return Err(Error::Vfio { address, reason: "BAR0 cannot be mmapped through VFIO".into() });
    }
    if size < min_len {
        return Err(Error::BarTooSmall { address, size, needed: min_len });
    }
    let offset = vfio.get_region_offset(BAR0_REGION);
    let removing = Arc::new(AtomicBool::new(false));
    let removal = match EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) {
        Ok(event) => match vfio.enable_irq(REQ_IRQ, vec![&event]) {
            Ok(()) => Some(RemovalRequest { event, removing: removing.clone() }),
            Err(e) => {
                eprintln!("nicclock-uio: {address}: no VFIO release-request notification: {e}");
                None
            }
        },
        Err(_) => None,
    };
    // SAFETY: the raw fd belongs to `vfio`, which is alive for this whole statement; we only
    // borrow it long enough to duplicate it into a descriptor of our own.
    let borrowed = unsafe { BorrowedFd::borrow_raw(vfio.as_raw_fd()) };
    let file = File::from(
        borrowed.try_clone_to_owned().map_err(|e| Error::io("dup the VFIO fd of", &device.path, e))?,
    );
    let config = ConfigSpace::vfio(
        file.try_clone().map_err(|e| Error::io("dup the VFIO fd of", &device.path, e))?,
        vfio.get_region_offset(CONFIG_REGION),
        device.vendor,
        removing.clone(),
    );
    // DMA memory is mapped through the container; bus mastering goes through config space.
    let dma_config = ConfigSpace::vfio(
        file.try_clone().map_err(|e| Error::io("dup the VFIO fd of", &device.path, e))?,
        vfio.get_region_offset(CONFIG_REGION),
        device.vendor,
        removing.clone(),
    );
    let dma = Dma::vfio(address.to_string(), container.clone(), dma_config);
    // The device (and through it the group's place in the container) must outlive the mapping
    // and any interrupt routed from it.
    let shared = Arc::new(VfioShared {
        device: ManuallyDrop::new(vfio),
        container: ManuallyDrop::new(container),
        sysfs_path: device.path.clone(),
        removing,
    });
    let irq = IrqDoor::vfio(address.to_string(), shared.clone());
    let region = MmioRegion::map(&file, offset, size as usize, vec![Box::new(shared)])
        .map_err(|e| Error::io("map BAR0 of", &device.path, e))?
        .with_config(config);
    Ok((region, removal, dma, irq))
}

/// Keeps the VFIO objects alive as long as the mapping and any interrupt routed through them.
///
/// vfio-ioctls' `VfioDevice::drop` closes the device fd and then reads the device's sysfs
/// `iommu_group` link, unwrapping the result. Closing the fd is what lets the kernel finish a
/// pending removal, which deletes that link: the drop then panics. A device being removed (its
/// release was requested, config space found it gone, or the link is already gone) is therefore
/// left for the kernel to close at exit; only a device that is staying is closed the library's way.
pub(crate) struct VfioShared {
    device: ManuallyDrop<VfioDevice>,
    container: ManuallyDrop<Arc<VfioContainer>>,
    sysfs_path: PathBuf,
    removing: Arc<AtomicBool>,
}

impl VfioShared {
    /// The VFIO device (interrupt routing).
    pub(crate) fn device(&self) -> &VfioDevice {
        &self.device
    }

    /// Whether the device is known to be going away (its fds must not be used for teardown).
    pub(crate) fn removing(&self) -> bool {
        self.removing.load(Ordering::Relaxed) || !self.sysfs_path.join("iommu_group").exists()
    }
}

impl Drop for VfioShared {
    fn drop(&mut self) {
        if self.removing() {
            return; // leaked on purpose: the process is about to exit
        }
        // SAFETY: each field is dropped exactly once, here, and never used again.
        unsafe {
            ManuallyDrop::drop(&mut self.device);
            ManuallyDrop::drop(&mut self.container);
        }
    }
}

// SAFETY: VfioDevice and VfioContainer are file descriptors plus tables filled at open. After open
// they are only kept alive and used through `&self` methods that issue ioctls on the device fd
// (interrupt routing) and read those immutable tables; the kernel serialises the ioctls.
unsafe impl Send for VfioShared {}
// SAFETY: as above: no interior mutability is reached through `&VfioShared`.
unsafe impl Sync for VfioShared {}

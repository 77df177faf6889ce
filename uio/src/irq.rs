//! Interrupt wake-ups for the userspace datapath: the device's interrupt as a descriptor to poll
//! (VFIO: MSI, MSI-X or INTx into an eventfd; UIO: `/dev/uioN`; the simulator: an eventfd its model
//! writes) and the acknowledgement re-arming it.
//!
//! The device side (which causes interrupt, reading the cause register to clear it) is the driver's:
//! wake on [`Irq`]'s descriptor, then [`Irq::ack`] it, clearing the device's cause inside the call.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::config::ConfigSpace;
use crate::vfio::VfioShared;

/// VFIO's interrupt indexes (vfio.h: VFIO_PCI_INTX/MSI/MSIX_IRQ_INDEX).
const VFIO_INTX: u32 = 0;
const VFIO_MSI: u32 = 1;
const VFIO_MSIX: u32 = 2;
/// PCI Command register bit 10: INTx emulation disabled.
pub const INTX_DISABLE: u16 = 1 << 10;

/// How the interrupt reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqKind {
    /// VFIO, one MSI vector into an eventfd (edge: nothing to re-arm).
    Msi,
    /// VFIO, MSI-X vector 0 into an eventfd.
    Msix,
    /// VFIO, the INTx line into an eventfd; VFIO masks it on each interrupt, `ack` unmasks it.
    Intx,
    /// uio_pci_generic: `/dev/uioN` counts interrupts; the kernel masks INTx through the Command
    /// register on each one, `ack` clears the mask bit again.
    UioIntx,
    /// A simulated device's vector: an eventfd its model writes (edge: nothing to re-arm).
    Simulated,
}

impl fmt::Display for IrqKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Msi => "MSI (VFIO eventfd)",
            Self::Msix => "MSI-X vector 0 (VFIO eventfd)",
            Self::Intx => "INTx (VFIO eventfd)",
            Self::UioIntx => "INTx (UIO)",
            Self::Simulated => "the simulated NIC's vector (eventfd)",
        })
    }
}

/// Why the interrupt could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IrqError {
    #[error("{device} offers VFIO no interrupt to route (no MSI, MSI-X or INTx vector)")]
    NoVector { device: String },
    #[error("VFIO refused to route {kind} of {device} to an eventfd: {reason}")]
    Vfio { device: String, kind: IrqKind, reason: String },
    #[error("cannot {action} {path}: {err} (run as root; the device must be bound to uio_pci_generic)")]
    Io { action: &'static str, path: PathBuf, err: io::Error },
}

/// Where a device's interrupt can be had (nothing is enabled until [`IrqDoor::open`]).
pub struct IrqDoor {
    source: DoorSource,
}

enum DoorSource {
    Vfio { device: String, shared: Arc<VfioShared> },
    Uio { node: PathBuf, sysfs_path: PathBuf, vendor: u16 },
    Event { event: EventFd },
}

impl fmt::Debug for IrqDoor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            DoorSource::Vfio { device, .. } => write!(f, "IrqDoor(vfio {device})"),
            DoorSource::Uio { node, .. } => write!(f, "IrqDoor(uio {})", node.display()),
            DoorSource::Event { event } => write!(f, "IrqDoor(eventfd {})", event.as_raw_fd()),
        }
    }
}

impl IrqDoor {
    pub(crate) fn vfio(device: String, shared: Arc<VfioShared>) -> Self {
        Self { source: DoorSource::Vfio { device, shared } }
    }

    /// The interrupt of the PCI device at `sysfs_path`, bound to uio_pci_generic as `node`.
    pub fn uio(node: impl Into<PathBuf>, sysfs_path: impl Into<PathBuf>, vendor: u16) -> Self {
        Self { source: DoorSource::Uio { node: node.into(), sysfs_path: sysfs_path.into(), vendor } }
    }

    /// A simulated device's interrupt: the door, and the model's side that raises it (an
    /// eventfd; each [`IrqDoor::open`] waits on a duplicate of it).
    pub fn simulated() -> io::Result<(Self, IrqRaiser)> {
        let event = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
        let raiser = IrqRaiser { event: event.try_clone()? };
        Ok((Self { source: DoorSource::Event { event } }, raiser))
    }

    /// Routes the interrupt to a descriptor and arms it. VFIO: MSI if the device has it, else
    /// MSI-X vector 0, else INTx. UIO: the node, with INTx unmasked in the Command register.
    pub fn open(&self) -> Result<Irq, IrqError> {
        match &self.source {
            DoorSource::Vfio { device, shared } => open_vfio(device, shared),
            DoorSource::Uio { node, sysfs_path, vendor } => open_uio(node, sysfs_path, *vendor),
            DoorSource::Event { event } => {
                let event = event.try_clone().map_err(|err| IrqError::Io {
                    action: "duplicate",
                    path: PathBuf::from("the simulated NIC's eventfd"),
                    err,
                })?;
                Ok(Irq { kind: IrqKind::Simulated, source: Source::Event { event } })
            }
        }
    }
}

fn open_vfio(device: &str, shared: &Arc<VfioShared>) -> Result<Irq, IrqError> {
    let vfio = shared.device();
    let count = |index| vfio.get_irq_info(index).map_or(0, |i| i.count);
    let (index, kind) = if count(VFIO_MSI) > 0 {
        (VFIO_MSI, IrqKind::Msi)
    } else if count(VFIO_MSIX) > 0 {
        (VFIO_MSIX, IrqKind::Msix)
    } else if count(VFIO_INTX) > 0 {
        (VFIO_INTX, IrqKind::Intx)
    } else {
        return Err(IrqError::NoVector { device: device.into() });
    };
    let err = |reason: String| IrqError::Vfio { device: device.into(), kind, reason };
    let event = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(|e| err(e.to_string()))?;
    vfio.enable_irq(index, vec![&event]).map_err(|e| err(e.to_string()))?;
    Ok(Irq { kind, source: Source::Vfio { event, shared: shared.clone(), index } })
}

fn open_uio(node: &Path, sysfs_path: &Path, vendor: u16) -> Result<Irq, IrqError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(node)
        .map_err(|err| IrqError::Io { action: "open", path: node.into(), err })?;
    let config_path = sysfs_path.join("config");
    let config = ConfigSpace::sysfs_rw(sysfs_path, vendor).map_err(|err| IrqError::Io {
        action: "open read-write",
        path: config_path.clone(),
        err,
    })?;
    let irq = Irq { kind: IrqKind::UioIntx, source: Source::Uio { file, config, seen: AtomicU32::new(0) } };
    // Whatever count the node holds now is history; then unmask the line.
    irq.ack(|| {}).map_err(|err| IrqError::Io { action: "arm the interrupt of", path: config_path, err })?;
    Ok(irq)
}

/// A simulated device's side of its interrupt ([`IrqDoor::simulated`]).
pub struct IrqRaiser {
    event: EventFd,
}

impl IrqRaiser {
    /// Signals the interrupt: the opened [`Irq`]'s descriptor becomes readable. Never blocks; a
    /// counter already at its limit (2^64 − 2 unread) still wakes the reader, so nothing is lost.
    pub fn raise(&self) {
        let _ = self.event.write(1);
    }
}

impl fmt::Debug for IrqRaiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IrqRaiser(eventfd {})", self.event.as_raw_fd())
    }
}

/// An armed interrupt: poll [`AsFd::as_fd`] for readability, then [`Irq::ack`] it, clearing the
/// device's causes inside. Dropping it routes the interrupt away again (VFIO) or masks it (UIO).
pub struct Irq {
    kind: IrqKind,
    source: Source,
}

enum Source {
    Vfio { event: EventFd, shared: Arc<VfioShared>, index: u32 },
    Uio { file: File, config: ConfigSpace, seen: AtomicU32 },
    Event { event: EventFd },
}

impl fmt::Debug for Irq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Irq({})", self.kind)
    }
}

impl Irq {
    /// How the interrupt reaches us.
    pub fn kind(&self) -> IrqKind {
        self.kind
    }

    /// Acknowledges a wake-up: consumes the interrupts pending on the descriptor (never blocks),
    /// runs `clear_device` (the driver reads the device's cause register there), then re-arms the
    /// line. Returns how many interrupts arrived since the last call (0: a spurious wake).
    ///
    /// The order matters both ways. An edge (MSI) that the device sends after its causes were read
    /// must stay pending on the descriptor, or the device, whose cause bit is then still set,
    /// never signals again: so the descriptor is read before. A level line (INTx) unmasked while
    /// the device still asserts it fires again at once: so it is unmasked after.
    pub fn ack(&self, clear_device: impl FnOnce()) -> io::Result<u64> {
        let n = self.take()?;
        clear_device();
        self.rearm()?;
        Ok(n)
    }

    fn take(&self) -> io::Result<u64> {
        match &self.source {
            Source::Vfio { event, .. } | Source::Event { event } => match event.read() {
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(e) => Err(e),
            },
            Source::Uio { file, seen, .. } => {
                let mut count = [0u8; 4];
                match (&*file).read(&mut count) {
                    Ok(4) => {
                        let total = u32::from_ne_bytes(count);
                        Ok(u64::from(total.wrapping_sub(seen.swap(total, Ordering::Relaxed))))
                    }
                    Ok(_) => Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn rearm(&self) -> io::Result<()> {
        match &self.source {
            Source::Vfio { shared, index, .. } => {
                if *index == VFIO_INTX {
                    shared.device().unmask_irq(VFIO_INTX).map_err(|e| io::Error::other(e.to_string()))?;
                }
            }
            Source::Uio { config, .. } => {
                let command = config.command()?;
                if command & INTX_DISABLE != 0 {
                    config.set_command(command & !INTX_DISABLE)?;
                }
            }
            Source::Event { .. } => {}
        }
        Ok(())
    }
}

impl AsFd for Irq {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            // SAFETY: the eventfd is owned by `self` and stays open as long as `self`, which the
            // returned borrow cannot outlive.
            Source::Vfio { event, .. } | Source::Event { event } => unsafe {
                BorrowedFd::borrow_raw(event.as_raw_fd())
            },
            Source::Uio { file, .. } => file.as_fd(),
        }
    }
}

impl Drop for Irq {
    fn drop(&mut self) {
        match &self.source {
            Source::Vfio { shared, index, .. } => {
                if !shared.removing() {
                    let _ = shared.device().disable_irq(*index);
                }
            }
            Source::Uio { config, .. } => {
                if let Ok(command) = config.command() {
                    let _ = config.set_command(command | INTX_DISABLE);
                }
            }
            Source::Event { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_dir(tag: &str, command: u16) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nicclock-irq-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0x86, 0x80, 0xc9, 0x10];
        bytes.extend_from_slice(&command.to_le_bytes());
        bytes.extend_from_slice(&[0; 58]);
        std::fs::write(dir.join("config"), bytes).unwrap();
        dir
    }

    fn command(dir: &Path) -> u16 {
        let bytes = std::fs::read(dir.join("config")).unwrap();
        u16::from_le_bytes([bytes[4], bytes[5]])
    }

    #[test]
    fn uio_counts_interrupts_and_unmasks_intx() {
        // A stand-in for /dev/uioN: a pipe whose reads give the kernel's 4-byte counts.
        let dir = config_dir("uio", 0x0006 | INTX_DISABLE);
        let fifo = dir.join("uio0");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Open the read side first (non-blocking), then the writer.
        let door = IrqDoor::uio(&fifo, &dir, 0x8086);
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || OpenOptions::new().write(true).open(fifo).unwrap()
        });
        let irq = door.open().unwrap();
        let mut writer = writer.join().unwrap();
        assert_eq!(irq.kind(), IrqKind::UioIntx);
        assert_eq!(command(&dir) & INTX_DISABLE, 0, "open arms the line");
        use std::io::Write;
        // The kernel counted 5 interrupts and masked the line at the last one.
        writer.write_all(&5u32.to_ne_bytes()).unwrap();
        std::fs::write(dir.join("config"), {
            let mut b = std::fs::read(dir.join("config")).unwrap();
            b[5] |= (INTX_DISABLE >> 8) as u8;
            b
        })
        .unwrap();
        // The device's causes are cleared while the line is still masked, then it is unmasked.
        let masked_while_clearing = std::cell::Cell::new(false);
        let n = irq.ack(|| masked_while_clearing.set(command(&dir) & INTX_DISABLE != 0)).unwrap();
        assert_eq!(n, 5);
        assert!(masked_while_clearing.get(), "unmasked only after the device was cleared");
        assert_eq!(command(&dir) & INTX_DISABLE, 0, "ack unmasks");
        assert_eq!(irq.ack(|| {}).unwrap(), 0, "nothing new: a spurious wake counts 0");
        writer.write_all(&8u32.to_ne_bytes()).unwrap();
        // A count arriving while the device is cleared is not lost: it is the next wake's.
        let n = irq.ack(|| writer.write_all(&9u32.to_ne_bytes()).unwrap()).unwrap();
        assert_eq!(n, 3);
        assert_eq!(irq.ack(|| {}).unwrap(), 1, "the interrupt during the clearing wakes again");
        drop(irq);
        assert_ne!(command(&dir) & INTX_DISABLE, 0, "drop masks the line again");
        assert_eq!(command(&dir) & 0x0006, 0x0006, "other Command bits untouched");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uio_open_names_what_is_missing() {
        let dir = config_dir("missing", 0);
        let err = IrqDoor::uio(dir.join("no-such-uio"), &dir, 0x8086).open().unwrap_err();
        assert!(err.to_string().contains("no-such-uio"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_simulated_device_wakes_through_the_eventfd_its_model_writes() {
        let (door, model_side) = IrqDoor::simulated().unwrap();
        let irq = door.open().unwrap();
        assert_eq!(irq.kind(), IrqKind::Simulated);
        assert_eq!(irq.ack(|| {}).unwrap(), 0, "nothing raised yet");
        model_side.raise();
        model_side.raise();
        let mut fds = [nix::poll::PollFd::new(irq.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap();
        assert_eq!(ready, 1, "the descriptor is readable once the model wrote it");
        // A cause raised while the device is cleared stays pending for the next wake.
        assert_eq!(irq.ack(|| model_side.raise()).unwrap(), 2);
        assert_eq!(irq.ack(|| {}).unwrap(), 1);
    }
}

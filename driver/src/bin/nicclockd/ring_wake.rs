//! How the PTP loops learn that the NIC's ring has work: its interrupt (VFIO eventfd, UIO node, the
//! simulator's eventfd), acknowledged in the order QEMU's igb and a level INTx line need; else a
//! 10 ms poll.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use log::{info, warn};
use nicclock_driver::device::OpenedClock;
use nicclock_driver::net::irq as net_irq;
use nicclock_uio::irq::Irq;
use nicclock_uio::RegisterAccess;

/// How often the RX ring and the TX stamp are polled while no interrupt wakes us. Stamps are the
/// hardware's, so a frame read late loses no accuracy; the bound is the 82576's single RX latch: a
/// stamped Sync must be read before the next event frame arrives (125 ms apart at 8 Sync/s), and
/// the ring (32 descriptors) must not fill. 10 ms: ~0.8 % of a core in a debug build on the sim
/// with 10 page updates/s (1 ms cost 3.6 %).
/// Only where the device gives no interrupt (sysfs `resource0`) or routing it failed: otherwise
/// the NIC's interrupt (VFIO eventfd, UIO node, the simulator's eventfd) wakes the loop.
pub const RING_POLL: Duration = Duration::from_millis(10);

/// The ring's wake-up source of one PTP loop.
pub struct RingWake {
    irq: Option<Irq>,
}

impl RingWake {
    /// Routes the NIC's interrupt where the device has one. Call it before privileges are dropped
    /// (routing needs the device's fds and config space) and before the queues come up (a Sync
    /// arriving in between would raise its cause unseen, and its stamp would hold the 82576's
    /// single latch until the next frame).
    pub fn open(opened: &OpenedClock, regs: &dyn RegisterAccess) -> Self {
        let irq = match opened.irq.as_ref().map(|door| door.open()) {
            Some(Ok(irq)) => {
                net_irq::enable(regs);
                info!("ptp: woken by the NIC's interrupt: {}", irq.kind());
                Some(irq)
            }
            Some(Err(e)) => {
                warn!("ptp: no interrupt ({e}): polling the ring every {} ms", RING_POLL.as_millis());
                None
            }
            None => {
                info!(
                    "ptp: no interrupt on a {} device: polling the ring every {} ms",
                    opened.backend,
                    RING_POLL.as_millis()
                );
                None
            }
        };
        RingWake { irq }
    }

    /// When to look at the ring next without an interrupt (`None`: the interrupt says).
    pub fn poll_at(&self) -> Option<Instant> {
        self.irq.is_none().then(|| Instant::now() + RING_POLL)
    }

    /// The descriptor to wait on, if any.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.irq.as_ref().map(|i| i.as_fd())
    }

    /// The descriptor was readable: consume it before the NIC's causes, re-arm after. A failed
    /// acknowledgement falls back to polling (said once).
    pub fn on_ready(&mut self, regs: &dyn RegisterAccess) {
        let acked = self.irq.as_ref().map(|i| {
            i.ack(|| {
                net_irq::ack(regs);
            })
        });
        if let Some(Err(e)) = acked {
            warn!(
                "ptp: cannot acknowledge the interrupt ({e}): polling the ring every {} ms",
                RING_POLL.as_millis()
            );
            net_irq::disable(regs);
            self.irq = None;
        }
    }

    /// Whether an interrupt wakes the loop (else it polls every [`RING_POLL`]).
    pub fn has_interrupt(&self) -> bool {
        self.irq.is_some()
    }

    /// The loop reads the ring at times of its own (`ptp::pair_wake`): frames stop interrupting.
    pub fn mask_frames(&self, regs: &dyn RegisterAccess) {
        if self.irq.is_some() {
            net_irq::mask_frames(regs);
        }
    }

    /// Frames interrupt again (call it after the ring was read: what they raised meanwhile is
    /// cleared).
    pub fn unmask_frames(&self, regs: &dyn RegisterAccess) {
        if self.irq.is_some() {
            net_irq::unmask_frames(regs);
        }
    }

    /// Masks the NIC's causes and releases the interrupt (before the queues go down).
    pub fn close(&mut self, regs: &dyn RegisterAccess) {
        if self.irq.take().is_some() {
            net_irq::disable(regs);
        }
    }
}

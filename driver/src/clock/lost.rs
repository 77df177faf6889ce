//! A NIC that stopped answering: its registers read all ones (or freeze), and config space tells
//! a removed device from one that only stopped decoding its BAR.

use nicclock_uio::Presence;

/// The device stopped answering: SYSTIM and STATUS read all ones. Config space, when the access
/// has it, tells a removed device (vendor ID all ones, or unreadable) from one that only stopped
/// decoding its BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct DeviceLost {
    pub last_read: u32,
    /// What config space said; `None` when there was none to ask.
    pub config: Option<Presence>,
}

impl DeviceLost {
    /// Whether the device is gone (removed), as opposed to present but not answering on its BAR.
    pub fn gone(&self) -> bool {
        self.config != Some(Presence::Present)
    }

    fn describe(&self) -> String {
        let read = self.last_read;
        match self.config {
            Some(Presence::Gone) => format!(
                "the NIC is gone: its registers read {read:#010x} and its PCI config space no longer answers (surprise removal)"
            ),
            None => format!("the NIC is gone: SYSTIM and STATUS read {read:#010x} (surprise removal?)"),
            Some(Presence::Present) => format!(
                "the NIC stopped answering: its registers read {read:#010x} but its PCI config space still \
                 shows it (memory decoding turned off, or reset by something else?)"
            ),
        }
    }
}

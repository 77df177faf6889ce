//! Who a page describes (NIC model, PCI address, EUI-64 clock id), as read from its header by
//! readers and checked against an existing page by the writer before it reuses it.

use crate::abi;
use crate::error::WriterError;

/// Who the page describes. Must match when an existing page is reused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// NIC model, e.g. `82576` (≤ 31 bytes).
    pub model: String,
    /// PCI address, e.g. `0000:01:00.0` (≤ 15 bytes).
    pub pci_address: String,
    /// EUI-64 clock identity derived from the MAC.
    pub clock_id: [u8; 8],
}

impl Identity {
    /// The identity recorded in a page header.
    pub fn from_header(h: &abi::Header) -> Self {
        Self { model: abi::c_str(&h.model), pci_address: abi::c_str(&h.pci_address), clock_id: h.clock_id }
    }

    /// EUI-64 from a 48-bit MAC: FF:FE inserted in the middle (IEEE 1588 clockIdentity).
    pub fn eui64_from_mac(mac: [u8; 6]) -> [u8; 8] {
        [mac[0], mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]]
    }

    pub(crate) fn describe(&self) -> String {
        let id: Vec<String> = self.clock_id.iter().map(|b| format!("{b:02x}")).collect();
        format!("{} at {} ({})", self.model, self.pci_address, id.join(":"))
    }

    pub(crate) fn check_lengths(&self) -> Result<(), WriterError> {
        for (field, value, max) in [("model", &self.model, 31), ("pci_address", &self.pci_address, 15)] {
            if value.len() > max {
                return Err(WriterError::IdentityTooLong { field, value: value.clone(), max });
            }
        }
        Ok(())
    }
}

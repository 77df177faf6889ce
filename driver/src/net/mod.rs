//! Foundations of the userspace igb datapath for PTP: frames (IEEE 802.3 and UDP/IPv4 PTP
//! framing, drop reasons and their counters), advanced descriptors and one RX / one TX ring over
//! DMA memory.
//!
//! [`port`] puts them together as one PTP port with its hardware stamps (what `nicclockd
//! --reference ptp` runs, through `ptp::runner`). Nothing here panics on what the wire sends.

pub mod bringup;
pub mod counters;
pub mod desc;
pub mod dma_mem;
pub mod frame;
pub mod irq;
pub mod phy;
pub mod port;
pub mod ring;

pub use counters::DropCounters;
pub use frame::{FrameFilter, FrameSpec, MessageClass, PtpFrame, Reject, Transport};
pub use ring::{DescMemory, RxRing, TxRing, VecMemory};

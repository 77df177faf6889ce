//! Foundations of the userspace igb datapath for PTP: frames (IEEE 802.3 and UDP/IPv4 PTP
//! framing, drop reasons and their counters), advanced descriptors and one RX / one TX ring over
//! DMA memory.
//!
//! Not yet wired into nicclockd: the bring-up register sequence is here, the timestamp reads and
//! the PTP engine come next (issue 10). Nothing here allocates per received frame or panics on
//! what the wire sends.

pub mod bringup;
pub mod counters;
pub mod desc;
pub mod dma_mem;
pub mod frame;
pub mod irq;
pub mod ring;

pub use counters::DropCounters;
pub use frame::{FrameFilter, FrameSpec, MessageClass, PtpFrame, Reject, Transport};
pub use ring::{DescMemory, RxRing, TxRing, VecMemory};

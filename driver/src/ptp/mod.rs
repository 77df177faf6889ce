//! PTP (IEEE 1588) slave foundations for `--reference ptp`: statime's sans-IO engine behind a small
//! adapter, so the rest of nicclockd never sees statime's types. Not yet wired into nicclockd.
//!
//! - [`clock`]: statime's `Clock` on our [`Phc`](crate::clock::Phc) (the `--steer` rule holds:
//!   TIMINCA on silicon, the software timecounter where rate writes jump).
//! - [`slave`]: a slave-only ordinary-clock port (E2E, two-step, BMCA among several masters):
//!   payloads, stamps and timer expiries in; payloads to send, timers to arm and state out.
//! - [`page`]: the page under PTP: measured against the counter, not steered; status, reference
//!   identity, TAI−UTC and the bound from the port.
//! - [`runner`]: the slave on the wire: a [`crate::net::port::NetPort`] feeding it frames and
//!   hardware stamps, its timers in a table; the caller drives it (real or virtual time).
//! - [`simwire`]: minimal masters and the runner on simulated NICs joined by a simulated link
//!   (delay, asymmetry, loss) in virtual time, every message a frame through rings and stamps.
//!
//! Servo: statime's Kalman filter (statime-linux's default), not its basic filter and not our PI:
//! it estimates offset, frequency and the path delay together and weighs Sync and Delay_Req
//! measurements by their noise, which a PI fed statime's per-Sync offsets cannot. [`gate`] keeps
//! single bad packets from it (statime would step the clock on one mangled timestamp).

pub mod clock;
pub mod gate;
pub mod page;
pub mod runner;
pub mod simwire;
pub mod slave;

pub use clock::PtpClock;
pub use runner::{PtpRunner, RunnerEvent};
pub use slave::{ClockIdentity, PortState, PtpConfig, PtpSlave, PtpStatus, SlaveOutput, Timer, TxToken};

//! PTP (IEEE 1588) for `--reference ptp`: statime's sans-IO engine behind a small adapter, so the
//! rest of nicclockd never sees statime's types; an ordinary clock as slave, master or by BMCA.
//!
//! - [`clock`]: statime's `Clock` on our [`Phc`](crate::clock::Phc) (the `--steer` rule holds:
//!   TIMINCA on silicon, the software timecounter where rate writes jump).
//! - [`port`]: an ordinary-clock port (E2E, two-step) in the slave, master or auto (BMCA) role:
//!   payloads, stamps and timer expiries in; payloads to send, timers to arm and state out.
//!   [`slave`] keeps issue 10's slave-only names for it; [`limit`] rate-limits Delay_Reqs;
//!   [`owner`] hands the clock between the Discipline (serving) and statime (slave); [`quality`]
//!   says what our Announce carries (clockQuality from our lock, time properties from the host).
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
//! single bad packets from it (statime would step the clock on one mangled timestamp); [`spread`]
//! keeps the raw offsets it admits, whose spread the page's bound rests on.

pub mod clock;
pub mod filter_latency;
pub mod gate;
pub mod limit;
pub mod live_master;
pub mod owner;
pub mod page;
pub mod pair_wake;
pub mod port;
pub mod quality;
pub mod runner;
pub mod simwire;
pub mod slave;
pub mod spread;

pub use clock::PtpClock;
pub use port::{
    announced_quality, ActiveRole, ClockIdentity, LocalClock, PortOutput, PortState, PtpConfig, PtpPort,
    PtpRole, PtpStatus, Timer, TxToken,
};
pub use runner::{PtpRunner, RunnerEvent};
pub use slave::{PtpSlave, SlaveOutput};

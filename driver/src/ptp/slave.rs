//! The slave-only names of issue 10, kept for their callers: a [`PtpSlave`] is a [`PtpPort`] in
//! [`PtpRole::Slave`] (the default of [`PtpConfig::new`]).

pub use super::port::{
    ClockIdentity, PortOutput as SlaveOutput, PortState, PtpConfig, PtpPort as PtpSlave, PtpRole, PtpStatus,
    Timer, TxToken,
};

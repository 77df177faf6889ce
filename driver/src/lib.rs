//! nicclockd's library: the NIC register map and model/quirk tables, clock operations over the
//! register seam, a simulated NIC faithful to real silicon, servos, and the discipline loop.
//!
//! Everything here is pure or behind `nicclock_uio::RegisterAccess`, so it runs against the
//! simulated NIC in tests exactly as against a mapped BAR. `unsafe` lives in the modules that
//! touch memory mapped outside Rust: [`ntpshm`] (the System V segment chronyd reads) and [`vdso`]
//! (the kernel's vDSO image, for its clock_gettime); BAR mappings are `nicclock_uio`'s.

pub mod clock;
pub mod device;
pub mod discipline;
pub mod measure;
pub mod model;
pub mod net;
pub mod ntpshm;
pub mod pin_scenario;
pub mod pins;
pub mod pps;
pub mod ptp;
pub mod publish;
pub mod reference;
pub mod regs;
pub mod scenario;
pub mod schedule;
pub mod servo;
pub mod sim;
pub mod timesource;
pub mod vdso;

/// The clock's module under its former name (`phc`), for code written before the families.
pub use clock as phc;

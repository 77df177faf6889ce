//! nicclock: disciplined NIC PTP-clock time for unprivileged processes, without a syscall.
//!
//! `nicclockd` (root) disciplines a NIC's hardware clock and publishes a counter→TAI mapping in a
//! read-only shared page (`/dev/shm/nicclock-<name>`). This crate reads it:
//!
//! ```no_run
//! let clock = nicclock::Clock::open("eth0")?;
//! let now = clock.now()?; // TAI ns, ± error bound, status
//! println!("{} ± {} ns ({})", now.time_ns, now.error_bound_ns(), now.status.name());
//! # Ok::<(), nicclock::Error>(())
//! ```
//!
//! One [`Clock`] may be shared by any number of threads (it is `Send + Sync`; readings are
//! lock-free). Waiting for sync: [`Clock::wait_until`]; TrueTime-style intervals and commit-wait:
//! [`Clock::now_interval`], [`Interval`], [`Clock::wait_until_after`].
//!
//! The page ABI is [`abi`]; the writer side (used by nicclockd and tests) is [`Writer`]; the C ABI
//! is in `include/nicclock.h`.
//!
//! `unsafe` is denied crate-wide and allowed in two modules only: [`page`] (mmap, futex, rdtsc)
//! and [`ffi`] (the C ABI's raw pointers and exported symbols).

#![deny(unsafe_code)]

pub mod seqlock;

#[cfg(not(loom))]
pub mod abi;
#[cfg(not(loom))]
pub mod boot;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
#[allow(unsafe_code)]
pub mod ffi;
#[cfg(not(loom))]
mod history;
#[cfg(not(loom))]
mod identity;
#[cfg(not(loom))]
mod interval;
#[cfg(not(loom))]
pub mod lockfile;
#[cfg(not(loom))]
mod name;
#[cfg(not(loom))]
#[allow(unsafe_code)]
pub mod page;
#[cfg(not(loom))]
mod past;
#[cfg(not(loom))]
mod reader;
#[cfg(not(loom))]
mod snapshot;
#[cfg(not(loom))]
pub mod stats;
#[cfg(not(loom))]
mod wait;
#[cfg(not(loom))]
mod writer;

#[cfg(not(loom))]
pub use crate::{
    abi::{CounterKind, EventKind, Leap, ReferenceKind, Status, Urgency, UtcOffsetSource},
    error::{Error, WriterError},
    history::PastMapping,
    identity::Identity,
    interval::Interval,
    name::{name_problem, page_path, validate_name, MAX_NAME_LEN, NAME_RULES},
    page::counter,
    past::Past,
    reader::{default_max_age_ns, list_pages, Clock, EventWait, Now},
    snapshot::{
        period_from_ns_per_tick, period_to_ns_per_tick, Estimate, Event, Reference, ServoFigures, Snapshot,
    },
    wait::{AfterWait, Reached, Standing, SyncCondition, SyncWait},
    writer::{check_mode, PageOptions, Writer},
};

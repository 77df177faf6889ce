//! Errors of the reader and the writer: each says what was found and what to do about it.
//! The C ABI maps [`Error`] to negative `NICCLOCK_E*` codes.

use std::io;
use std::path::PathBuf;

use crate::abi::{CounterKind, Status};

/// What can go wrong opening or reading a time page.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no time page at {path}: nicclockd is probably not running (start it, or pick another page \
         with --page; `nicclock list` shows the pages there are)"
    )]
    NotFound { path: PathBuf },
    #[error(
        "cannot open {path}: permission denied (nicclockd's --page-mode/--page-group decide who may \
         read it; ask the admin to add you to that group)"
    )]
    PermissionDenied { path: PathBuf },
    #[error("invalid page name {name:?}: {reason} ({})", crate::name::NAME_RULES)]
    InvalidName { name: String, reason: &'static str },
    #[error("{path} is not a nicclock time page: {reason}")]
    NotAPage { path: PathBuf, reason: String },
    #[error(
        "{path} uses page ABI {found}.x but this reader speaks {supported}.x: install matching \
         versions of nicclock and nicclockd"
    )]
    IncompatibleAbi { path: PathBuf, found: u16, supported: u16 },
    #[error("cannot {action} {path}: {err}")]
    Io { action: &'static str, path: PathBuf, err: io::Error },
    #[error(
        "time page is stale: last update {age_ms} ms ago, more than the allowed {max_age_ms} ms \
         (nicclockd is stuck or was killed; check its log)"
    )]
    Stale { age_ms: u64, max_age_ms: u64 },
    #[error("clock unavailable: the page says {}", .0.name())]
    Unavailable(Status),
    #[error("no time published yet: nicclockd has not finished its first update")]
    NoTimeYet,
    #[error("the page's writer has stayed mid-update for over a second (it died or was stopped while writing); restart nicclockd")]
    WriterStuck,
    #[error("the page's mapping uses the {} counter, which this machine cannot read", .0.name())]
    CounterUnavailable(CounterKind),
    #[error("the page holds an invalid {field} ({value}); it is corrupt or from a newer writer")]
    Corrupt { field: &'static str, value: u64 },
    #[error(
        "{path} belongs to another boot (boot id {page}, this boot is {ours}): nicclockd has not \
         published in it since the machine restarted; start nicclockd"
    )]
    // Box<str>, not String: keeps Error (and every Result<Now, Error>) at 56 bytes.
    OtherBoot { path: PathBuf, page: Box<str>, ours: Box<str> },
    #[error(
        "{path} has no boot id although its ABI minor ({minor}) requires one: the page is corrupt; \
         restart nicclockd"
    )]
    NoBootId { path: PathBuf, minor: u16 },
    #[error(
        "the page's time lies {} ms ahead of this machine's counter (more than the {} µs allowed): \
         it was written on another boot or by a broken writer; restart nicclockd",
        .ahead_ns / 1_000_000, crate::abi::MAX_COUNTER_BEFORE_ANCHOR_NS / 1_000
    )]
    AheadOfCounter { ahead_ns: u64 },
    #[error(
        "the page's mapping says {ns_per_tick} ns per {} tick, a rate no real counter has \
         (plausible: {min}..{max}): the page is corrupt or its writer broken; restart nicclockd",
        .kind.name()
    )]
    ImplausiblePeriod { kind: CounterKind, ns_per_tick: f64, min: f64, max: f64 },
    #[error(
        "event {number}'s ring slot has held {found} instead for over a second: the writer died \
         while posting an event, or the page is corrupt; restart nicclockd"
    )]
    EventSlotStuck { number: u64, found: u64 },
    #[error(
        "the reading's interval is {width_ns} ns wide, more than the {max_width_ns} ns the caller \
         accepts: the clock is not that certain now (wait for it: `nicclock wait --max-error`)"
    )]
    WindowTooWide { width_ns: u64, max_width_ns: u64 },
    #[error(
        "the timestamp was taken before a disruption of the clock's timeline (epoch {then}, now {now}: \
         a step, a restart of nicclockd, a reference or device change): the mapping then does not \
         carry over; it is refused rather than guessed (take a new timestamp)"
    )]
    BeforeDisruption { then: u32, now: u32 },
    #[error(
        "the timestamp is older than the page's history of mappings (it reaches back {} ms; \
         at least {} s without a disruption): it cannot be converted",
        .history_ms, crate::abi::HISTORY_DEPTH_NS / 1_000_000_000
    )]
    OlderThanHistory { history_ms: u64 },
    #[error("the timestamp lies {} µs in the future of its clock: it cannot have been taken yet", .ahead_ns / 1_000)]
    InTheFuture { ahead_ns: u64 },
    #[error(
        "the page was written by an older nicclockd (ABI minor {minor}) that keeps no history of \
         mappings: past timestamps need nicclockd of ABI minor 4 or later"
    )]
    NoHistory { minor: u16 },
}

// Every reading returns a Result<Now, Error>: a larger Error measurably slowed now() (72 bytes
// instead of 56 cost ~6 ns a call in `cargo bench --bench readers`). Box what is rare and large.
const _: () = assert!(std::mem::size_of::<Error>() <= 56);

/// What can go wrong creating or reusing a page as its writer.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("invalid page name {name:?}: {reason} ({})", crate::name::NAME_RULES)]
    InvalidName { name: String, reason: &'static str },
    #[error("{path} is a symbolic link; refusing to follow it (remove it: `rm {path}`)")]
    Symlink { path: PathBuf },
    #[error("{path} is a {found}, not a regular file; remove it or pick another page name")]
    NotRegularFile { path: PathBuf, found: &'static str },
    #[error(
        "{path} is owned by uid {owner}, not by this writer (uid {expected}); refusing to reuse \
         it: remove it or pick another page name"
    )]
    ForeignOwner { path: PathBuf, owner: u32, expected: u32 },
    #[error("{path} is {size} bytes, a time page is {expected}; remove it or pick another page name")]
    WrongSize { path: PathBuf, size: u64, expected: usize },
    #[error("{path} is not a nicclock page ({reason}); remove it or pick another page name")]
    NotOurPage { path: PathBuf, reason: String },
    #[error(
        "{path} was written with page ABI {found}.x (this writer uses {ours}.x); stop its readers, \
         remove it and start again"
    )]
    AbiMismatch { path: PathBuf, found: u16, ours: u16 },
    #[error("{path} belongs to clock {found}, not {expected}; pick another page name")]
    IdentityMismatch { path: PathBuf, found: String, expected: String },
    #[error("{path} is being published by another writer ({}); stop it first", crate::lockfile::holder(*.pid))]
    Busy { path: PathBuf, pid: u32 },
    #[error(
        "lock directory {path} {reason}; refusing to use it (it must be a directory only this \
         writer's user may write: remove it, or fix its owner and mode)"
    )]
    LockDir { path: PathBuf, reason: String },
    #[error(
        "page mode {mode:o} lets {who} write the page, so anyone could forge the time; use 644, \
         640 (with a page group) or 600"
    )]
    UnsafeMode { mode: u32, who: &'static str },
    #[error(
        "{path} was removed while this writer published it; its readers now see STOPPED (restart \
         the writer to publish a new page)"
    )]
    Unlinked { path: PathBuf },
    #[error("page directory {path}: {err}; create it, or choose another (--page-dir)")]
    PageDir { path: PathBuf, err: io::Error },
    #[error("identity field {field} too long: {value:?} (at most {max} bytes)")]
    IdentityTooLong { field: &'static str, value: String, max: usize },
    #[error("cannot {action} {path}: {err}")]
    Io { action: &'static str, path: PathBuf, err: io::Error },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::NotFound => Error::NotFound { path },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied { path },
            _ => Error::Io { action, path, err: source },
        }
    }
}

impl WriterError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WriterError::Io { action, path: path.into(), err: source }
    }
}

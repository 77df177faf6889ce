//! The C ABI (`include/nicclock.h`) over the Rust reader; results ≥ 0 success, < 0 `NICCLOCK_E*`.
//! Its `unsafe` is the C contract's raw pointers only (the mapping itself is `page`'s).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::abi::{Status, DEFAULT_DIR};
use crate::error::Error;
use crate::interval::Interval;
use crate::reader::{Clock, EventWait};
use crate::wait::{AfterWait, SyncCondition, SyncWait};

pub const NICCLOCK_ENOENT: c_int = -1;
pub const NICCLOCK_EACCES: c_int = -2;
pub const NICCLOCK_EBADPAGE: c_int = -3;
pub const NICCLOCK_EABI: c_int = -4;
pub const NICCLOCK_ESTALE: c_int = -5;
pub const NICCLOCK_EDEVLOST: c_int = -6;
pub const NICCLOCK_ESTOPPED: c_int = -7;
pub const NICCLOCK_ENOTIME: c_int = -8;
pub const NICCLOCK_EBUSY: c_int = -9;
pub const NICCLOCK_ECOUNTER: c_int = -10;
pub const NICCLOCK_EIO: c_int = -11;
pub const NICCLOCK_EINVAL: c_int = -12;
pub const NICCLOCK_EWIDE: c_int = -13;
pub const NICCLOCK_EDISRUPTED: c_int = -14;
pub const NICCLOCK_ETOOOLD: c_int = -15;

/// Every error code with its header name, for the test that checks the C header.
pub fn error_code_table() -> Vec<(&'static str, i128)> {
    [
        ("NICCLOCK_ENOENT", NICCLOCK_ENOENT),
        ("NICCLOCK_EACCES", NICCLOCK_EACCES),
        ("NICCLOCK_EBADPAGE", NICCLOCK_EBADPAGE),
        ("NICCLOCK_EABI", NICCLOCK_EABI),
        ("NICCLOCK_ESTALE", NICCLOCK_ESTALE),
        ("NICCLOCK_EDEVLOST", NICCLOCK_EDEVLOST),
        ("NICCLOCK_ESTOPPED", NICCLOCK_ESTOPPED),
        ("NICCLOCK_ENOTIME", NICCLOCK_ENOTIME),
        ("NICCLOCK_EBUSY", NICCLOCK_EBUSY),
        ("NICCLOCK_ECOUNTER", NICCLOCK_ECOUNTER),
        ("NICCLOCK_EIO", NICCLOCK_EIO),
        ("NICCLOCK_EINVAL", NICCLOCK_EINVAL),
        ("NICCLOCK_EWIDE", NICCLOCK_EWIDE),
        ("NICCLOCK_EDISRUPTED", NICCLOCK_EDISRUPTED),
        ("NICCLOCK_ETOOOLD", NICCLOCK_ETOOOLD),
    ]
    .into_iter()
    .map(|(n, v)| (n, v as i128))
    .collect()
}

fn code(e: &Error) -> c_int {
    match e {
        Error::InvalidName { .. } => NICCLOCK_EINVAL,
        Error::NotFound { .. } => NICCLOCK_ENOENT,
        Error::PermissionDenied { .. } => NICCLOCK_EACCES,
        Error::NotAPage { .. }
        | Error::Corrupt { .. }
        | Error::NoBootId { .. }
        | Error::AheadOfCounter { .. }
        | Error::ImplausiblePeriod { .. } => NICCLOCK_EBADPAGE,
        Error::OtherBoot { .. } => NICCLOCK_ESTALE,
        Error::EventSlotStuck { .. } => NICCLOCK_EBUSY,
        Error::IncompatibleAbi { .. } => NICCLOCK_EABI,
        Error::Stale { .. } => NICCLOCK_ESTALE,
        Error::Unavailable(Status::DeviceLost) => NICCLOCK_EDEVLOST,
        Error::Unavailable(_) => NICCLOCK_ESTOPPED,
        Error::NoTimeYet => NICCLOCK_ENOTIME,
        Error::WriterStuck => NICCLOCK_EBUSY,
        Error::CounterUnavailable(_) => NICCLOCK_ECOUNTER,
        Error::Io { .. } => NICCLOCK_EIO,
        Error::WindowTooWide { .. } => NICCLOCK_EWIDE,
        Error::BeforeDisruption { .. } => NICCLOCK_EDISRUPTED,
        Error::OlderThanHistory { .. } | Error::NoHistory { .. } => NICCLOCK_ETOOOLD,
        Error::InTheFuture { .. } => NICCLOCK_EINVAL,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the full message for `nicclock_last_error` and returns the code.
fn fail(e: Error) -> c_int {
    set_last_error(&e.to_string());
    code(&e)
}

fn set_last_error(msg: &str) {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = msg);
}

fn invalid(msg: &str) -> c_int {
    set_last_error(msg);
    NICCLOCK_EINVAL
}

/// The C-visible event.
#[repr(C)]
pub struct CEvent {
    pub seq: u64,
    pub kind: u32,
    pub urgency: u32,
    pub time: libc::timespec,
    pub magnitude: i64,
    pub detail: u32,
    /// The disruption epoch in force when it was posted (0 from an older writer). Was padding
    /// before ABI minor 4 (same layout).
    pub epoch: u32,
    /// Events overwritten (never delivered) just before this one.
    pub missed: u64,
}

fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// Reads a C string argument; `None` for NULL or non-UTF-8.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string valid for reads.
unsafe fn arg_str<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        return None;
    }
    // SAFETY: non-null, and the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(s) }.to_str().ok()
}

/// Opens `dir/nicclock-<name>` (`dir` NULL: /dev/shm).
///
/// # Safety
/// `dir` is NULL or a C string; `name` a C string; `out` a valid pointer to store the handle in.
#[no_mangle]
pub unsafe extern "C" fn nicclock_open_in(
    dir: *const c_char,
    name: *const c_char,
    out: *mut *mut Clock,
) -> c_int {
    if out.is_null() {
        return invalid("nicclock_open: out is NULL");
    }
    // SAFETY: the caller passes C strings or NULL.
    let (dir, name) = unsafe { (arg_str(dir), arg_str(name)) };
    let Some(name) = name else {
        return invalid("nicclock_open: name is NULL or not UTF-8");
    };
    let dir = dir.unwrap_or(DEFAULT_DIR);
    match Clock::open_in(Path::new(dir), name) {
        Ok(clock) => {
            // SAFETY: `out` is non-null and, per the contract, valid for a write.
            unsafe { *out = Box::into_raw(Box::new(clock)) };
            0
        }
        Err(e) => fail(e),
    }
}

/// Opens `/dev/shm/nicclock-<name>`.
///
/// # Safety
/// As [`nicclock_open_in`].
#[no_mangle]
pub unsafe extern "C" fn nicclock_open(name: *const c_char, out: *mut *mut Clock) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { nicclock_open_in(std::ptr::null(), name, out) }
}

/// # Safety
/// `c` is NULL or a handle from `nicclock_open*` not yet closed.
unsafe fn clock<'a>(c: *const Clock) -> Option<&'a Clock> {
    // SAFETY: per the contract, a live handle or NULL.
    unsafe { c.as_ref() }
}

fn time_common(now: Result<crate::reader::Now, Error>, ts: *mut libc::timespec, error_ns: *mut u64) -> c_int {
    match now {
        Ok(now) => {
            if !ts.is_null() {
                // SAFETY: non-null; the caller passes a writable timespec or NULL.
                unsafe { *ts = timespec(now.time_ns) };
            }
            if !error_ns.is_null() {
                // SAFETY: as above.
                unsafe { *error_ns = now.error_bound_ns() };
            }
            now.status as c_int
        }
        Err(e) => fail(e),
    }
}

/// TAI now into `*tai` and its error bound (ns) into `*error_ns` (either may be NULL).
/// Returns the status (≥ 0) or a negative error.
///
/// # Safety
/// `c` a live handle; `tai`, `error_ns` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_gettime(
    c: *const Clock,
    tai: *mut libc::timespec,
    error_ns: *mut u64,
) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { clock(c) } {
        Some(clock) => time_common(clock.now(), tai, error_ns),
        None => invalid("nicclock_gettime: handle is NULL"),
    }
}

/// As `nicclock_gettime`, in UTC.
///
/// # Safety
/// As [`nicclock_gettime`].
#[no_mangle]
pub unsafe extern "C" fn nicclock_gettime_utc(
    c: *const Clock,
    utc: *mut libc::timespec,
    error_ns: *mut u64,
) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { clock(c) } {
        Some(clock) => time_common(clock.now_utc(), utc, error_ns),
        None => invalid("nicclock_gettime_utc: handle is NULL"),
    }
}

/// A reading with both errors and its epoch (`struct nicclock_reading`).
#[repr(C)]
pub struct CReading {
    /// TAI or UTC, as asked.
    pub time: libc::timespec,
    /// Maximum error, ns (`UINT64_MAX`: unknown).
    pub max_error_ns: u64,
    /// Estimated error, ns (never above the maximum; equal to it on an older writer's page).
    pub est_error_ns: u64,
    pub status: u32,
    /// Disruption epoch (0: an older writer's page).
    pub epoch: u32,
}

fn reading_common(r: Result<crate::reader::Now, Error>, out: *mut CReading) -> c_int {
    match r {
        Ok(now) => {
            if !out.is_null() {
                let reading = CReading {
                    time: timespec(now.time_ns),
                    max_error_ns: now.error_bound_ns(),
                    est_error_ns: now.estimated_error_ns(),
                    status: now.status as u32,
                    epoch: now.epoch,
                };
                // SAFETY: non-null; the caller passes a writable struct or NULL.
                unsafe { *out = reading };
            }
            now.status as c_int
        }
        Err(e) => fail(e),
    }
}

/// Now (TAI, or UTC when `utc` is non-zero) with both errors and the epoch into `*out` (may be
/// NULL). Returns the status or a negative error.
///
/// # Safety
/// `c` a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_read(c: *const Clock, utc: c_int, out: *mut CReading) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { clock(c) } {
        Some(clock) => reading_common(if utc != 0 { clock.now_utc() } else { clock.now() }, out),
        None => invalid("nicclock_read: handle is NULL"),
    }
}

fn convert(clock: &Clock, past: crate::Past, utc: c_int, out: *mut CReading) -> c_int {
    reading_common(if utc != 0 { clock.convert_utc(past) } else { clock.convert(past) }, out)
}

/// A counter value read earlier, converted by the mapping in force then (see the header).
///
/// # Safety
/// `c` a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_convert_counter(
    c: *const Clock,
    counter: u64,
    utc: c_int,
    out: *mut CReading,
) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { clock(c) } {
        Some(clock) => convert(clock, crate::Past::Counter(counter), utc, out),
        None => invalid("nicclock_convert_counter: handle is NULL"),
    }
}

/// A CLOCK_MONOTONIC / CLOCK_MONOTONIC_RAW / CLOCK_REALTIME timestamp taken earlier, converted
/// by the mapping in force then (see the header).
///
/// # Safety
/// `c` a live handle; `ts` a readable timespec; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_convert_timespec(
    c: *const Clock,
    clock_id: c_int,
    ts: *const libc::timespec,
    utc: c_int,
    out: *mut CReading,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(clock) = (unsafe { clock(c) }) else {
        return invalid("nicclock_convert_timespec: handle is NULL");
    };
    // SAFETY: NULL or readable per the contract.
    let Some(ts) = (unsafe { ts.as_ref() }) else {
        return invalid("nicclock_convert_timespec: ts is NULL");
    };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return invalid(
            "nicclock_convert_timespec: ts is not a valid timespec (tv_sec >= 0, 0 <= tv_nsec < 1e9)",
        );
    }
    let ns = (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64);
    let past = match clock_id {
        libc::CLOCK_MONOTONIC => crate::Past::Monotonic(ns),
        libc::CLOCK_MONOTONIC_RAW => crate::Past::MonotonicRaw(ns),
        libc::CLOCK_REALTIME => crate::Past::Realtime(ns),
        other => {
            return invalid(&format!(
                "nicclock_convert_timespec: clock {other} is not CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW \
                 or CLOCK_REALTIME"
            ))
        }
    };
    convert(clock, past, utc, out)
}

/// The interval (TAI) the true time lies in. Returns the status or a negative error.
///
/// # Safety
/// `c` a live handle; `earliest`, `latest` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_bounds(
    c: *const Clock,
    earliest: *mut libc::timespec,
    latest: *mut libc::timespec,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(clock) = (unsafe { clock(c) }) else {
        return invalid("nicclock_bounds: handle is NULL");
    };
    match clock.now() {
        Ok(now) => {
            for (ptr, ns) in [(earliest, now.earliest_ns()), (latest, now.latest_ns())] {
                if !ptr.is_null() {
                    // SAFETY: non-null and writable per the contract.
                    unsafe { *ptr = timespec(ns) };
                }
            }
            now.status as c_int
        }
        Err(e) => fail(e),
    }
}

/// The page status (≥ 0), or a negative error (`NICCLOCK_ESTALE` for a stale page).
///
/// # Safety
/// `c` a live handle.
#[no_mangle]
pub unsafe extern "C" fn nicclock_status(c: *const Clock) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { clock(c) } {
        Some(clock) => clock.status().map_or_else(fail, |s| s as c_int),
        None => invalid("nicclock_status: handle is NULL"),
    }
}

/// Waits for the next event, at most `timeout_ms` (< 0: forever). Returns 1 with `*ev` filled, 0 on
/// timeout, or a negative error. `ev->missed` counts events lost to ring overflow before this one.
///
/// # Safety
/// `c` a live handle not used by another thread during the call; `ev` writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_wait_event(c: *mut Clock, timeout_ms: c_int, ev: *mut CEvent) -> c_int {
    // SAFETY: per the contract, a live handle used by this thread alone.
    let Some(clock) = (unsafe { c.as_mut() }) else {
        return invalid("nicclock_wait_event: handle is NULL");
    };
    if ev.is_null() {
        return invalid("nicclock_wait_event: ev is NULL");
    }
    // One deadline for the whole call: skipping missed events does not restart the timeout.
    let deadline = u64::try_from(timeout_ms).ok().map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut missed = 0;
    loop {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match clock.wait_event(timeout) {
            Ok(EventWait::Missed(n)) => missed += n,
            Ok(EventWait::TimedOut) => return 0,
            Ok(EventWait::Event(e)) => {
                let out = CEvent {
                    seq: e.seq,
                    kind: e.raw_kind.into(),
                    urgency: e.urgency as u32,
                    time: timespec(e.tai_ns),
                    magnitude: e.magnitude,
                    detail: e.detail,
                    epoch: e.epoch,
                    missed,
                };
                // SAFETY: `ev` is non-null and writable per the contract.
                unsafe { *ev = out };
                return 1;
            }
            Err(e) => return fail(e),
        }
    }
}

/// `timeout_ms` < 0: no limit.
fn timeout_of(timeout_ms: c_int) -> Option<Duration> {
    u64::try_from(timeout_ms).ok().map(Duration::from_millis)
}

/// Writes `value` through `ptr` unless it is NULL.
///
/// # Safety
/// `ptr` is NULL or valid for a write of `T`.
unsafe fn put<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-null, and the caller promises it is writable.
        unsafe { *ptr = value };
    }
}

/// The C-visible interval: TAI ns since 1970.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CInterval {
    pub earliest_ns: u64,
    pub latest_ns: u64,
}

impl From<Interval> for CInterval {
    fn from(i: Interval) -> Self {
        Self { earliest_ns: i.earliest_ns, latest_ns: i.latest_ns }
    }
}

impl From<CInterval> for Interval {
    fn from(i: CInterval) -> Self {
        Self { earliest_ns: i.earliest_ns, latest_ns: i.latest_ns }
    }
}

/// TAI now as `[earliest, latest]` into `*out` (may be NULL). Returns the status or a negative error.
///
/// # Safety
/// `c` a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_now_interval(c: *const Clock, out: *mut CInterval) -> c_int {
    // SAFETY: forwarded contract.
    let Some(clock) = (unsafe { clock(c) }) else {
        return invalid("nicclock_now_interval: handle is NULL");
    };
    match clock.now() {
        Ok(now) => {
            // SAFETY: NULL or writable per the contract.
            unsafe { put(out, now.interval().into()) };
            now.status as c_int
        }
        Err(e) => fail(e),
    }
}

/// Reads two intervals for a comparison.
///
/// # Safety
/// `a`, `b` NULL or readable.
unsafe fn two(a: *const CInterval, b: *const CInterval) -> Option<(Interval, Interval)> {
    // SAFETY: NULL or readable per the contract.
    let (a, b) = unsafe { (a.as_ref()?, b.as_ref()?) };
    Some(((*a).into(), (*b).into()))
}

/// 1 when every instant of `*a` lies before every instant of `*b`, else 0; NICCLOCK_EINVAL for NULL.
///
/// # Safety
/// `a`, `b` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_definitely_before(a: *const CInterval, b: *const CInterval) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { two(a, b) } {
        Some((a, b)) => a.definitely_before(&b).into(),
        None => invalid("nicclock_definitely_before: an interval is NULL"),
    }
}

/// 1 when every instant of `*a` lies after every instant of `*b`, else 0; NICCLOCK_EINVAL for NULL.
///
/// # Safety
/// `a`, `b` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_definitely_after(a: *const CInterval, b: *const CInterval) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { two(a, b) } {
        Some((a, b)) => a.definitely_after(&b).into(),
        None => invalid("nicclock_definitely_after: an interval is NULL"),
    }
}

/// The middle of `*i` into `*mid_ns` if `*i` is at most `max_width_ns` wide: 0, or NICCLOCK_EWIDE.
///
/// # Safety
/// `i` NULL or readable; `mid_ns` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_interval_midpoint(
    i: *const CInterval,
    max_width_ns: u64,
    mid_ns: *mut u64,
) -> c_int {
    // SAFETY: NULL or readable per the contract.
    let Some(i) = (unsafe { i.as_ref() }) else {
        return invalid("nicclock_interval_midpoint: interval is NULL");
    };
    match Interval::from(*i).midpoint(max_width_ns) {
        Ok(mid) => {
            // SAFETY: NULL or writable per the contract.
            unsafe { put(mid_ns, mid) };
            0
        }
        Err(e) => fail(e),
    }
}

/// Waits until LOCKED with an error bound ≤ `max_error_ns`: 1 reached (`*error_ns` gets the bound
/// then), 0 on timeout (`*error_ns` gets the last bound, UINT64_MAX without one), or a negative error.
///
/// # Safety
/// `c` a live handle; `error_ns` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_wait_until(
    c: *const Clock,
    max_error_ns: u64,
    timeout_ms: c_int,
    error_ns: *mut u64,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(clock) = (unsafe { clock(c) }) else {
        return invalid("nicclock_wait_until: handle is NULL");
    };
    let (rc, bound) =
        match clock.wait_until(SyncCondition::locked_within(max_error_ns), timeout_of(timeout_ms)) {
            Ok(SyncWait::Reached(r)) => (1, r.now.error_bound_ns()),
            Ok(SyncWait::TimedOut(crate::wait::Standing::Reading(now))) => (0, now.error_bound_ns()),
            Ok(SyncWait::TimedOut(crate::wait::Standing::NoTimeYet)) => (0, u64::MAX),
            Err(e) => return fail(e),
        };
    // SAFETY: NULL or writable per the contract.
    unsafe { put(error_ns, bound) };
    rc
}

/// Commit-wait: blocks until the earliest possible TAI is after `t_ns`. 1 passed (`*out` gets that
/// reading's interval), 0 on timeout (`*out` gets the last one, or is left alone without a time),
/// or a negative error.
///
/// # Safety
/// `c` a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nicclock_wait_until_after(
    c: *const Clock,
    t_ns: u64,
    timeout_ms: c_int,
    out: *mut CInterval,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(clock) = (unsafe { clock(c) }) else {
        return invalid("nicclock_wait_until_after: handle is NULL");
    };
    let (rc, interval) = match clock.wait_until_after(t_ns, timeout_of(timeout_ms)) {
        Ok(AfterWait::Passed(i)) => (1, Some(i)),
        Ok(AfterWait::TimedOut(last)) => (0, last),
        Err(e) => return fail(e),
    };
    if let Some(i) = interval {
        // SAFETY: NULL or writable per the contract.
        unsafe { put(out, i.into()) };
    }
    rc
}

/// Closes a handle (NULL is ignored).
///
/// # Safety
/// `c` NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn nicclock_close(c: *mut Clock) {
    if !c.is_null() {
        // SAFETY: the handle came from Box::into_raw in nicclock_open_in and is closed once.
        drop(unsafe { Box::from_raw(c) });
    }
}

/// A short fixed description of an error code.
#[no_mangle]
pub extern "C" fn nicclock_strerror(code: c_int) -> *const c_char {
    let s: &'static CStr = match code {
        0 => c"success",
        NICCLOCK_ENOENT => c"no time page (is nicclockd running?)",
        NICCLOCK_EACCES => c"permission denied",
        NICCLOCK_EBADPAGE => c"not a valid nicclock time page",
        NICCLOCK_EABI => c"incompatible page ABI version",
        NICCLOCK_ESTALE => c"time page is stale",
        NICCLOCK_EDEVLOST => c"the NIC was lost",
        NICCLOCK_ESTOPPED => c"nicclockd stopped",
        NICCLOCK_ENOTIME => c"no time published yet",
        NICCLOCK_EBUSY => c"writer stuck mid-update",
        NICCLOCK_ECOUNTER => c"counter unavailable on this machine",
        NICCLOCK_EIO => c"I/O error",
        NICCLOCK_EINVAL => c"invalid argument",
        NICCLOCK_EWIDE => c"interval wider than the caller accepts",
        NICCLOCK_EDISRUPTED => c"timestamp from before a disruption (step, restart, reference change)",
        NICCLOCK_ETOOOLD => c"timestamp older than the page's history of mappings",
        _ => c"unknown error",
    };
    s.as_ptr()
}

/// The full message of this thread's last error (what was wrong and what to do).
#[no_mangle]
pub extern "C" fn nicclock_last_error() -> *const c_char {
    // The CString lives in thread-local storage until this thread's next error.
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// Name of a status value ("LOCKED", …), or "UNKNOWN".
#[no_mangle]
pub extern "C" fn nicclock_status_name(status: c_int) -> *const c_char {
    let s: &'static CStr = match u32::try_from(status).ok().and_then(Status::from_raw) {
        Some(Status::Unsynchronized) => c"UNSYNCHRONIZED",
        Some(Status::Locking) => c"LOCKING",
        Some(Status::Locked) => c"LOCKED",
        Some(Status::Holdover) => c"HOLDOVER",
        Some(Status::DeviceLost) => c"DEVICE_LOST",
        Some(Status::Stopped) => c"STOPPED",
        None => c"UNKNOWN",
    };
    s.as_ptr()
}

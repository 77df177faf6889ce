//! Shared (cross-process) futex wait and wake on the page's event word.
//! Readers sleep in the kernel until the writer publishes an event; the writer never waits.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout` (forever when `None`).
/// Returns normally on wake-up, value change (EAGAIN), timeout or signal: the caller re-checks.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<()> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-byte aligned atomic (in a mapping that outlives this call); the
    // kernel only reads it. FUTEX_WAIT without FUTEX_PRIVATE_FLAG keys on the backing file page, so
    // it pairs with the writer's wake in another process. `ts_ptr` is null or points to `ts`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) | Some(libc::EINTR) => Ok(()),
        _ => Err(err),
    }
}

/// Wakes every waiter on `word`. Never blocks.
pub fn wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live aligned atomic in a shared mapping; FUTEX_WAKE only reads its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

//! The two kernel calls nicclockd needs that nix does not wrap: a read-only adjtimex (the kernel's
//! TAI offset and leap state) and SCHED_FIFO for the measuring thread. The daemon's only `unsafe`.

/// The kernel's time state (`adjtimex` with modes 0: a read, it changes nothing); `None` if the
/// call fails.
pub fn adjtimex_read() -> Option<libc::timex> {
    // SAFETY: `timex` is plain integers, for which all-zero is a valid value; modes 0 makes
    // adjtimex a read: the kernel only writes into the struct we own for the call's duration.
    let (rc, t) = unsafe {
        let mut t: libc::timex = std::mem::zeroed();
        (libc::adjtimex(&mut t), t)
    };
    (rc >= 0).then_some(t)
}

/// Makes the calling thread SCHED_FIFO at `priority`.
pub fn set_fifo(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is the calling thread
    // (Linux applies the policy per thread).
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn adjtimex_reads_the_kernel_state() {
        let t = super::adjtimex_read().expect("a read-only adjtimex succeeds for any user");
        assert_eq!(t.modes, 0, "nothing was asked to change");
        assert!((0..=100).contains(&t.tai), "TAI offset {} s is a kernel's", t.tai);
    }
}

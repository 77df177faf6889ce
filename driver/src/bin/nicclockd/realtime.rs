//! The measuring thread's setup: its memory locked, pinned to one CPU and SCHED_FIFO, so nothing
//! but an interrupt lands between a bracket's reads (the kernel's PTP_SYS_OFFSET masks those too).
//! Each step that the system refuses is logged and skipped, never fatal.

use log::{info, warn};
use nicclock_driver::vdso::{Source, SystemClock};
use nix::sched::{sched_getcpu, sched_setaffinity, CpuSet};
use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::unistd::Pid;

use crate::sys::set_fifo;

/// SCHED_FIFO priority of the measuring thread: above every SCHED_OTHER task (a reader, a
/// build, phc2sys without chrt), below the kernel's threaded interrupt handlers (50).
pub const FIFO_PRIORITY: i32 = 1;

/// Locks the process's current memory (a page fault inside a bracket costs microseconds), pins the
/// calling thread to the CPU it runs on (no migration between a bracket's counter reads) and makes
/// it SCHED_FIFO at [`FIFO_PRIORITY`] (no SCHED_OTHER task preempts it mid-bracket; it sleeps
/// between updates, so it starves nothing). Call on the measuring thread before dropping
/// privileges: the privileges drop keeps all three.
pub fn prepare() {
    // MCL_CURRENT only: with MCL_FUTURE every later mapping would have to fit RLIMIT_MEMLOCK once
    // the privileges are dropped, and fail if not.
    let locked = match mlockall(MlockAllFlags::MCL_CURRENT) {
        Ok(()) => true,
        Err(e) => {
            warn!("measuring thread: cannot lock memory ({e}); page faults may widen a measurement");
            false
        }
    };
    let cpu = match pin_to_current_cpu() {
        Ok(cpu) => Some(cpu),
        Err(e) => {
            warn!("measuring thread: cannot pin to a CPU ({e}); it may migrate between measurements");
            None
        }
    };
    let fifo = match set_fifo(FIFO_PRIORITY) {
        Ok(()) => true,
        Err(e) => {
            warn!(
                "measuring thread: cannot switch to SCHED_FIFO ({e}; needs CAP_SYS_NICE or RLIMIT_RTPRIO): \
                 running SCHED_OTHER, other tasks may preempt it between a bracket's reads"
            );
            false
        }
    };
    // Resolved now, not in the first measurement (a refusal is logged by the lookup itself).
    let clock = match SystemClock::new(libc::CLOCK_REALTIME).source() {
        Source::Vdso => "the vDSO's clock_gettime",
        Source::Libc => "libc's clock_gettime",
    };
    info!(
        "measuring thread: {}, {}, memory {}, clock reads through {clock}",
        if fifo { format!("SCHED_FIFO priority {FIFO_PRIORITY}") } else { "SCHED_OTHER".into() },
        cpu.map_or("not pinned".into(), |c| format!("pinned to CPU {c}")),
        if locked { "locked" } else { "not locked" }
    );
}

/// Pins the calling thread to the CPU it is running on; returns that CPU.
fn pin_to_current_cpu() -> nix::Result<usize> {
    let cpu = sched_getcpu()?;
    let mut set = CpuSet::new();
    set.set(cpu)?;
    // Pid 0: the calling thread (Linux applies affinity per thread).
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(cpu)
}

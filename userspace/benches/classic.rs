//! The classic design nicclock replaces, faithfully: the daemon writes "time, offset, status" into a
//! /dev/shm segment and every reader takes a process-shared POSIX semaphore around its read, then
//! extrapolates with CLOCK_MONOTONIC_RAW. Benchmark code only.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};
use nix::time::{clock_gettime, ClockId};

#[repr(C)]
struct Segment {
    sem: libc::sem_t,
    phc_ns: u64,
    sys_ns: u64,
    offset_ns: i64,
    status: u32,
}

/// One mapping of the segment (writer and readers each map it).
pub struct Classic {
    map: MmapMut,
}

// SAFETY: all access to the segment's data goes through the process-shared semaphore.
unsafe impl Send for Classic {}
// SAFETY: as above; sem_wait/sem_post are thread-safe on a shared semaphore.
unsafe impl Sync for Classic {}

fn mono_raw_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC_RAW).unwrap();
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

impl Classic {
    /// Creates the segment file and initialises its semaphore (pshared = 1).
    pub fn create(dir: &Path) -> PathBuf {
        let path = dir.join("classic-shm");
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(size_of::<Segment>() as u64).unwrap();
        let c = Self::open(&path);
        // SAFETY: the segment is mapped, aligned and large enough; nobody uses the semaphore yet.
        let rc = unsafe { libc::sem_init(c.sem(), 1, 1) };
        assert_eq!(rc, 0, "sem_init");
        path
    }

    pub fn open(path: &Path) -> Self {
        let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
        // SAFETY: a shared mapping of the segment file, sized by create(); never truncated.
        let map = unsafe { MmapOptions::new().len(size_of::<Segment>()).map_mut(&file) }.unwrap();
        Self { map }
    }

    fn seg(&self) -> *mut Segment {
        self.map.as_ptr() as *mut Segment
    }

    fn sem(&self) -> *mut libc::sem_t {
        // SAFETY: field projection inside the live mapping.
        unsafe { &raw mut (*self.seg()).sem }
    }

    /// The daemon's update: lock, write, unlock.
    pub fn publish(&self, phc_ns: u64, offset_ns: i64) {
        let sys = mono_raw_ns();
        // SAFETY: the semaphore guards the data fields; the mapping outlives the call.
        unsafe {
            while libc::sem_wait(self.sem()) != 0 {}
            let s = self.seg();
            (*s).phc_ns = phc_ns;
            (*s).sys_ns = sys;
            (*s).offset_ns = offset_ns;
            (*s).status = 2;
            libc::sem_post(self.sem());
        }
    }

    /// A reader's call: lock, copy, unlock, extrapolate. Returns (time, status).
    #[inline]
    pub fn now(&self) -> (u64, u32) {
        // SAFETY: as in publish.
        let (phc, sys, status) = unsafe {
            while libc::sem_wait(self.sem()) != 0 {}
            let s = self.seg();
            let copy = ((*s).phc_ns, (*s).sys_ns, (*s).status);
            libc::sem_post(self.sem());
            copy
        };
        (phc + (mono_raw_ns() - sys), status)
    }
}

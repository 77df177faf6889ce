//! NTP SHM export: each update published as ntpd/chrony's `struct shmTime` (SysV key
//! 0x4e545030 + unit, mode 1 count/valid protocol, nanosecond fields), for `refclock SHM <unit>`.
//! The segment is a mapping shared with another program, hence the volatile access below.

use std::io;
use std::ptr;

/// `struct shmTime` as ntpd, chrony, gpsd and linuxptp lay it out (x86_64: time_t is 64-bit).
#[repr(C)]
struct ShmTime {
    mode: i32,
    count: i32,
    clock_sec: libc::time_t,
    clock_usec: i32,
    receive_sec: libc::time_t,
    receive_usec: i32,
    leap: i32,
    precision: i32,
    nsamples: i32,
    valid: i32,
    clock_nsec: u32,
    receive_nsec: u32,
    dummy: [i32; 8],
}

/// Base of the SysV keys: "NTP0".
pub const KEY_BASE: i32 = 0x4e54_5030;

/// An attached NTP SHM segment.
pub struct NtpShm {
    shm: *mut ShmTime,
    pub unit: u32,
}

// SAFETY: the segment is process-shared memory accessed only through volatile writes by this one
// writer; moving the handle between threads changes nothing about that.
unsafe impl Send for NtpShm {}

/// One sample: the reference clock's (our clock's) UTC time and the system clock's UTC time at
/// the same instant, both in ns since 1970.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub clock_utc_ns: i128,
    pub receive_utc_ns: i128,
    /// NTP leap indicator: 0 none, 1 insert, 2 delete, 3 not synchronised.
    pub leap: i32,
    /// log2 of the precision in seconds (e.g. -20 for ~1 µs).
    pub precision: i32,
}

impl NtpShm {
    /// Creates (or attaches to) segment `unit` with permissions `mode` (chrony's default is 0600).
    pub fn open(unit: u32, mode: u32) -> io::Result<Self> {
        let key = KEY_BASE.wrapping_add(unit as i32);
        // SAFETY: plain syscall; no memory is touched.
        let id = unsafe { libc::shmget(key, size_of::<ShmTime>(), libc::IPC_CREAT | (mode & 0o777) as i32) };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: attaching a segment of at least size_of::<ShmTime>() bytes (shmget checked the
        // size of an existing one); the kernel picks the address.
        let addr = unsafe { libc::shmat(id, ptr::null(), 0) };
        if addr as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { shm: addr.cast(), unit })
    }

    /// Publishes `sample` with the mode 1 protocol: valid off, count++, fields, count++, valid on.
    pub fn publish(&mut self, sample: &Sample) {
        let split =
            |ns: i128| ((ns.div_euclid(1_000_000_000)) as libc::time_t, ns.rem_euclid(1_000_000_000) as u32);
        let (clock_sec, clock_nsec) = split(sample.clock_utc_ns);
        let (receive_sec, receive_nsec) = split(sample.receive_utc_ns);
        let s = self.shm;
        // SAFETY: `s` points to the attached segment, valid until Drop detaches it. Every access is
        // a volatile write of a naturally aligned field, since readers in other processes poll it;
        // the compiler fences keep the count/valid protocol's order.
        unsafe {
            use std::sync::atomic::{compiler_fence, Ordering::SeqCst};
            ptr::addr_of_mut!((*s).mode).write_volatile(1);
            ptr::addr_of_mut!((*s).valid).write_volatile(0);
            let count = ptr::addr_of!((*s).count).read_volatile();
            ptr::addr_of_mut!((*s).count).write_volatile(count.wrapping_add(1));
            compiler_fence(SeqCst);
            ptr::addr_of_mut!((*s).clock_sec).write_volatile(clock_sec);
            ptr::addr_of_mut!((*s).clock_usec).write_volatile((clock_nsec / 1000) as i32);
            ptr::addr_of_mut!((*s).clock_nsec).write_volatile(clock_nsec);
            ptr::addr_of_mut!((*s).receive_sec).write_volatile(receive_sec);
            ptr::addr_of_mut!((*s).receive_usec).write_volatile((receive_nsec / 1000) as i32);
            ptr::addr_of_mut!((*s).receive_nsec).write_volatile(receive_nsec);
            ptr::addr_of_mut!((*s).leap).write_volatile(sample.leap);
            ptr::addr_of_mut!((*s).precision).write_volatile(sample.precision);
            ptr::addr_of_mut!((*s).nsamples).write_volatile(3);
            compiler_fence(SeqCst);
            ptr::addr_of_mut!((*s).count).write_volatile(count.wrapping_add(2));
            compiler_fence(SeqCst);
            ptr::addr_of_mut!((*s).valid).write_volatile(1);
        }
    }

    /// Reads the segment back as a consumer would (mode 1): `None` unless valid and consistent.
    pub fn read(&self) -> Option<Sample> {
        let s = self.shm;
        // SAFETY: as in publish; volatile reads of aligned fields of the attached segment.
        unsafe {
            if ptr::addr_of!((*s).valid).read_volatile() == 0 {
                return None;
            }
            let before = ptr::addr_of!((*s).count).read_volatile();
            let clock = ptr::addr_of!((*s).clock_sec).read_volatile() as i128 * 1_000_000_000
                + ptr::addr_of!((*s).clock_nsec).read_volatile() as i128;
            let receive = ptr::addr_of!((*s).receive_sec).read_volatile() as i128 * 1_000_000_000
                + ptr::addr_of!((*s).receive_nsec).read_volatile() as i128;
            let leap = ptr::addr_of!((*s).leap).read_volatile();
            let precision = ptr::addr_of!((*s).precision).read_volatile();
            (ptr::addr_of!((*s).count).read_volatile() == before).then_some(Sample {
                clock_utc_ns: clock,
                receive_utc_ns: receive,
                leap,
                precision,
            })
        }
    }
}

impl Drop for NtpShm {
    fn drop(&mut self) {
        // SAFETY: detaching the address shmat returned; nothing uses it afterwards. The segment
        // itself stays (consumers keep their attachment), as ntpd's drivers leave theirs.
        unsafe {
            libc::shmdt(self.shm.cast());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_ntpds() {
        // gcc on x86_64 for ntpd's struct shmTime: size 96; clockTimeStampSec 8,
        // receiveTimeStampSec 24, valid 48, clockTimeStampNSec 52, receiveTimeStampNSec 56.
        use std::mem::offset_of;
        assert_eq!(size_of::<ShmTime>(), 96);
        assert_eq!(offset_of!(ShmTime, clock_sec), 8);
        assert_eq!(offset_of!(ShmTime, receive_sec), 24);
        assert_eq!(offset_of!(ShmTime, valid), 48);
        assert_eq!(offset_of!(ShmTime, clock_nsec), 52);
        assert_eq!(offset_of!(ShmTime, receive_nsec), 56);
    }

    #[test]
    fn a_published_sample_reads_back_with_the_count_protocol() {
        let unit = 100 + std::process::id() % 1000;
        let mut shm = NtpShm::open(unit, 0o600).unwrap();
        let sample = Sample {
            clock_utc_ns: 1_795_338_000_123_456_789,
            receive_utc_ns: 1_795_338_000_123_457_000,
            leap: 0,
            precision: -20,
        };
        shm.publish(&sample);
        assert_eq!(shm.read(), Some(sample));
        // A second handle (another process would do the same) sees the same sample.
        let other = NtpShm::open(unit, 0o600).unwrap();
        assert_eq!(other.read(), Some(sample));
        // SAFETY: test cleanup, removing the segment this test created; nothing is attached to it.
        unsafe {
            let id = libc::shmget(KEY_BASE + unit as i32, 0, 0);
            libc::shmctl(id, libc::IPC_RMID, ptr::null_mut());
        }
    }
}

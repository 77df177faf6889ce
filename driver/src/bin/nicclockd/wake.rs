//! What the update loop sleeps on: its next deadline, SIGTERM/SIGINT (through a signalfd) and,
//! on VFIO, the kernel's release request (an eventfd), and under PTP the NIC's interrupt once it
//! has one; whichever comes first wakes it at once.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The most descriptors [`Waker::wait_until_any`] waits on besides the signals'.
const MAX_FDS: usize = 4;

/// Why [`Waker::wait_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Deadline,
    /// SIGTERM or SIGINT arrived.
    Stop(Signal),
    /// The extra descriptor became readable (VFIO's release request).
    Extra,
    /// Descriptor `n` of [`Waker::wait_until_any`]'s list became readable.
    Ready(usize),
}

/// The stop signals, delivered through a descriptor instead of a handler.
pub struct Waker {
    signals: SignalFd,
}

impl Waker {
    /// Blocks SIGTERM and SIGINT (call it before any thread starts: they inherit the mask) and
    /// opens a signalfd for them. One sent before the first wait is kept pending, not lost.
    pub fn new() -> Result<Self> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        set.thread_block().context("blocking SIGTERM/SIGINT")?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("creating a signalfd for SIGTERM/SIGINT")?;
        Ok(Self { signals })
    }

    /// A stop signal already pending, without waiting.
    pub fn pending(&self) -> Result<Option<Signal>> {
        let info = self.signals.read_signal().context("reading the signalfd")?;
        Ok(info.and_then(|i| Signal::try_from(i.ssi_signo as i32).ok()))
    }

    /// Sleeps until `deadline`, a stop signal, or `extra` becoming readable.
    pub fn wait_until(&self, deadline: Instant, extra: Option<BorrowedFd<'_>>) -> Result<Wake> {
        Ok(match self.wait_until_any(deadline, &[extra])? {
            Wake::Ready(_) => Wake::Extra,
            other => other,
        })
    }

    /// Sleeps until `deadline`, a stop signal, or one of `fds` becoming readable
    /// ([`Wake::Ready`] with its index; `None` entries are skipped, their index kept).
    pub fn wait_until_any(&self, deadline: Instant, fds: &[Option<BorrowedFd<'_>>]) -> Result<Wake> {
        // The signalfd is read only when it is readable (or the deadline has passed without a
        // ppoll): one read less per wake-up, each a syscall that costs under QEMU TCG.
        loop {
            let now = Instant::now();
            if now >= deadline {
                if let Some(signal) = self.pending()? {
                    return Ok(Wake::Stop(signal));
                }
                return Ok(Wake::Deadline);
            }
            // On the stack: no allocation per wait (each one a wake-up's cost under QEMU TCG).
            let signals = PollFd::new(self.signals_fd(), PollFlags::POLLIN);
            let mut polled: [PollFd<'_>; MAX_FDS + 1] = std::array::from_fn(|_| signals.clone());
            let mut index = [0usize; MAX_FDS];
            let mut n = 0;
            for (i, fd) in fds.iter().enumerate() {
                if let Some(fd) = fd {
                    assert!(n < MAX_FDS, "at most {MAX_FDS} descriptors to wait on");
                    polled[n + 1] = PollFd::new(*fd, PollFlags::POLLIN);
                    index[n] = i;
                    n += 1;
                }
            }
            let polled = &mut polled[..n + 1];
            match ppoll(polled, Some((deadline - now).into()), None) {
                // Nothing readable and the deadline reached: no signalfd read needed (ppoll just
                // said it is not readable; one syscall less per timer wake-up under QEMU TCG).
                Ok(0) if Instant::now() >= deadline => return Ok(Wake::Deadline),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("waiting for the next update"),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            if ready(&polled[0]) {
                if let Some(signal) = self.pending()? {
                    return Ok(Wake::Stop(signal));
                }
            }
            if let Some(k) = polled[1..].iter().position(ready) {
                return Ok(Wake::Ready(index[k]));
            }
        }
    }

    fn signals_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.signals.as_fd()
    }
}

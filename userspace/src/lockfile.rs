//! Writer exclusivity that no reader can interfere with: lock files in a directory only the
//! writer's user may write (default `/run/nicclock`), one per page and one per PCI device.
//!
//! A lock is an exclusive `flock` on a file of that directory, taken without waiting; the file
//! holds the holder's pid (for the refusal message) and is never removed, so two writers can
//! never lock two different files of the same name.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::unistd::{geteuid, mkdir};

use crate::error::WriterError;

/// Where nicclockd keeps its lock files unless told otherwise.
pub const DEFAULT_LOCK_DIR: &str = "/run/nicclock";

/// "pid 1234, nicclockd": who holds a lock, as far as /proc tells.
pub fn holder(pid: u32) -> String {
    if pid == 0 {
        return "pid unknown".into();
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!("pid {pid}, {}", comm.trim()),
        Err(_) => format!("pid {pid}"),
    }
}

/// An opened, checked lock directory.
#[derive(Debug)]
pub struct LockDir {
    dir: File,
    path: PathBuf,
}

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct LockFile {
    _lock: Flock<File>,
}

impl LockDir {
    /// Opens `path`, creating it (mode 0755) if absent. Refuses a symbolic link, something other
    /// than a directory, a directory owned by another user or one that group or others may write.
    pub fn open(path: &Path) -> Result<Self, WriterError> {
        let unsafe_dir = |reason: String| WriterError::LockDir { path: path.into(), reason };
        match mkdir(path, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(WriterError::io("create lock directory", path, e.into())),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            // O_DIRECTORY with O_NOFOLLOW says ENOTDIR for a symbolic link.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                return Err(unsafe_dir(
                    if link { "is a symbolic link" } else { "is not a directory" }.into(),
                ));
            }
            Err(e) => return Err(WriterError::io("open lock directory", path, e.into())),
        };
        let st = fstat(&fd).map_err(|e| WriterError::io("stat lock directory", path, e.into()))?;
        let euid = geteuid().as_raw();
        if st.st_uid != euid {
            return Err(unsafe_dir(format!(
                "is owned by uid {}, not by this writer (uid {euid})",
                st.st_uid
            )));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(unsafe_dir(format!(
                "may be written by its group or by others (mode {:o})",
                st.st_mode & 0o7777
            )));
        }
        Ok(Self { dir: File::from(fd), path: path.into() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes lock `name` without waiting. Held by another: [`WriterError::Busy`] with the lock
    /// file's path and the holder's pid.
    pub fn try_lock(&self, name: &str) -> Result<LockFile, WriterError> {
        let path = self.path.join(name);
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(WriterError::io("lock", &path, std::io::ErrorKind::InvalidInput.into()));
        }
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd =
            openat(self.dir.as_fd(), name, flags, Mode::from_bits_truncate(0o600)).map_err(|e| match e {
                Errno::ELOOP => WriterError::LockDir {
                    path: self.path.clone(),
                    reason: format!("holds a symbolic link {name}"),
                },
                e => WriterError::io("open lock file", &path, e.into()),
            })?;
        let st = fstat(&fd).map_err(|e| WriterError::io("stat lock file", &path, e.into()))?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG
            || st.st_uid != geteuid().as_raw()
        {
            return Err(WriterError::LockDir {
                path: self.path.clone(),
                reason: format!("holds {name}, which is not a regular file of this writer's user"),
            });
        }
        match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                // The holder's pid, for whoever is refused next.
                let pid = format!("{}\n", std::process::id());
                lock.set_len(0)
                    .and_then(|()| lock.write_all_at(pid.as_bytes(), 0))
                    .map_err(|e| WriterError::io("write", &path, e))?;
                Ok(LockFile { _lock: lock })
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Err(WriterError::Busy { path, pid: text.trim().parse().unwrap_or(0) })
            }
            Err((_, e)) => Err(WriterError::io("lock", &path, e.into())),
        }
    }
}

//! The page's single writer (nicclockd, tests): creates or safely reuses the page file, publishes
//! updates without ever waiting for readers, posts events and marks the page STOPPED on shutdown.
//! Exclusivity is a lock file in a root-only directory ([`crate::lockfile`]), never a lock on the
//! page itself, which every reader may open.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Relaxed, Release};

use nix::sys::stat::{fchmod, Mode};
use nix::unistd::{fchown, geteuid, Gid};

use crate::abi::{
    self, EventKind, Page, Status, Urgency, ABI_MAJOR, ABI_MINOR, CLOCK_OFFSET, DEFAULT_DIR,
    EVENT_CONTROL_OFFSET, EVENT_RING_LEN, EVENT_RING_OFFSET, MAGIC, PAGE_SIZE,
};
use crate::boot;
use crate::error::WriterError;
use crate::history::HistoryWriter;
use crate::identity::Identity;
use crate::lockfile::{LockDir, LockFile, DEFAULT_LOCK_DIR};
use crate::name::{page_path, validate_name};
use crate::page::{counter, file_kind, futex, WritablePage, OPEN_FLAGS};
use crate::seqlock;
use crate::snapshot::{Event, Snapshot};

/// Where and how the page file is made.
#[derive(Debug, Clone)]
pub struct PageOptions {
    /// Directory of the page (default `/dev/shm`).
    pub dir: PathBuf,
    /// Page name; the file is `nicclock-<name>`.
    pub name: String,
    /// File mode (default 0644: every local user may read the time). Group or other write is
    /// refused: whoever may write the page may forge the time.
    pub mode: u32,
    /// Group owning the file (with mode 0640: only that group may read).
    pub group: Option<u32>,
    /// Directory of the writer's lock files (default `/run/nicclock`; created 0755 if absent;
    /// refused if another user owns it or its group or others may write it).
    pub lock_dir: PathBuf,
}

impl PageOptions {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            dir: DEFAULT_DIR.into(),
            name: name.into(),
            mode: 0o644,
            group: None,
            lock_dir: DEFAULT_LOCK_DIR.into(),
        }
    }

    /// Full path of the page file.
    pub fn path(&self) -> PathBuf {
        page_path(&self.dir, &self.name)
    }
}

/// Refuses a page mode that lets anyone but the owner write, or that has bits beyond 0777.
pub fn check_mode(mode: u32) -> Result<(), WriterError> {
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and everyone",
        (true, false) => "its group",
        (false, true) => "everyone",
        (false, false) if mode & !0o777 != 0 => "(with setuid/setgid/sticky bits, which a page never needs)",
        (false, false) => return Ok(()),
    };
    Err(WriterError::UnsafeMode { mode, who })
}

/// The lock file of page `name` in directory `dir`: keyed on the directory's device and inode,
/// so two spellings of one directory share a lock.
fn page_lock_name(dir: &Path, name: &str) -> Result<String, WriterError> {
    let not_a_dir = || io::Error::other("it is not a directory");
    let meta = fs::metadata(dir)
        .and_then(|m| if m.is_dir() { Ok(m) } else { Err(not_a_dir()) })
        .map_err(|err| WriterError::PageDir { path: dir.into(), err })?;
    Ok(format!("page-{:x}-{:x}-{name}.lock", meta.dev(), meta.ino()))
}

/// The one writer of a page. Dropping it marks the page STOPPED.
pub struct Writer {
    page: WritablePage,
    /// The page file, to notice it being unlinked.
    file: File,
    _lock: LockFile,
    path: PathBuf,
    last: Option<Snapshot>,
    status: Status,
    update_count: u64,
    /// The disruption epoch of what this writer publishes (minor 4).
    epoch: u32,
    /// A disruption was marked: the next publish begins a new epoch.
    disrupted: bool,
    history: HistoryWriter,
}

/// The epoch after `epoch` (0 is never used: it means "an older writer").
fn next_epoch(epoch: u32) -> u32 {
    epoch.wrapping_add(1).max(1)
}

impl Writer {
    /// Creates the page, or reuses this writer's own previous page in place (same owner, magic,
    /// size, ABI major and identity) so that readers still mapping it keep working.
    pub fn create(opts: &PageOptions, identity: &Identity) -> Result<Self, WriterError> {
        validate_name(&opts.name)?;
        identity.check_lengths()?;
        check_mode(opts.mode)?;
        // Read (and cached) now, so that stamping the page with it below cannot fail.
        boot::current().map_err(|e| WriterError::io("read the boot id from", boot::BOOT_ID_PATH, e))?;
        let path = opts.path();
        let lock_dir = LockDir::open(&opts.lock_dir)?;
        let mut lock = match lock_dir.try_lock(&page_lock_name(&opts.dir, &opts.name)?) {
            Err(WriterError::Busy { pid, .. }) => return Err(WriterError::Busy { path, pid }),
            other => other?,
        };
        // A file that appears between our look and our link (no writer: we hold the page's lock)
        // sends us round once more, to the reuse path and its checks.
        for _ in 0..3 {
            let file = match open_existing(&path) {
                Ok(Some(file)) => file,
                Ok(None) => match create_new(opts, identity, &path, lock)? {
                    Ok(writer) => return Ok(writer),
                    Err(back) => {
                        lock = back;
                        continue;
                    }
                },
                Err(e) => return Err(e),
            };
            return Self::reuse(opts, identity, path, file, lock);
        }
        Err(WriterError::io("create", &path, io::Error::other("the page kept appearing and vanishing")))
    }

    fn reuse(
        opts: &PageOptions,
        identity: &Identity,
        path: PathBuf,
        file: File,
        lock: LockFile,
    ) -> Result<Self, WriterError> {
        let meta = file.metadata().map_err(|e| WriterError::io("stat", &path, e))?;
        if !meta.is_file() {
            return Err(WriterError::NotRegularFile { path, found: file_kind(&meta) });
        }
        let euid = geteuid().as_raw();
        if meta.uid() != euid {
            return Err(WriterError::ForeignOwner { path, owner: meta.uid(), expected: euid });
        }
        if meta.len() != PAGE_SIZE as u64 {
            return Err(WriterError::WrongSize { path, size: meta.len(), expected: PAGE_SIZE });
        }
        let page = WritablePage::map(&file).map_err(|e| WriterError::io("map", &path, e))?;
        let h = &page.page().header;
        if h.magic != MAGIC {
            let reason = format!("its first bytes are {:02x?}", h.magic.to_le_bytes());
            return Err(WriterError::NotOurPage { path, reason });
        }
        if h.abi_major != ABI_MAJOR {
            return Err(WriterError::AbiMismatch { path, found: h.abi_major, ours: ABI_MAJOR });
        }
        let found = Identity::from_header(h);
        if &found != identity {
            return Err(WriterError::IdentityMismatch {
                path,
                found: found.describe(),
                expected: identity.describe(),
            });
        }
        apply_permissions(&file, opts, &path)?;
        Ok(Self::start(page, file, lock, path))
    }

    fn start(page: WritablePage, file: File, lock: LockFile, path: PathBuf) -> Self {
        let p = page.page();
        // The page is this boot's now (a page directory on disk may hold one from an earlier boot):
        // the boot id first, then the minor that tells readers to check it. (create() read it.)
        let boot_id = boot::current().unwrap_or_default();
        for (byte, value) in p.header.boot_id.iter().zip(boot_id) {
            byte.store(value, Relaxed);
        }
        p.header.abi_minor.store(ABI_MINOR, Release);
        let status = Status::from_raw(p.clock.status.load(Relaxed)).unwrap_or(Status::Unsynchronized);
        // A (re)start is a disruption: nothing a reader derived from the previous run carries over.
        let epoch = next_epoch(p.clock.disruption_epoch.load(Relaxed));
        // No time until this writer's first update: a mapping left by a previous run is not ours.
        seqlock::write(&p.clock.seq, || {
            p.clock.update_count.store(0, Relaxed);
            p.clock.updated_tai_ns.store(0, Relaxed);
            p.clock.status.store(Status::Unsynchronized as u32, Relaxed);
            p.clock.disruption_epoch.store(epoch, Relaxed);
        });
        futex::wake_all(&p.clock.seq);
        p.header.writer_pid.store(std::process::id(), Release);
        let history = HistoryWriter::resume(p);
        let mut writer = Self {
            page,
            file,
            _lock: lock,
            path,
            last: None,
            status,
            update_count: 0,
            epoch,
            disrupted: false,
            history,
        };
        writer.post(EventKind::Started, Urgency::Info, 0, std::process::id(), 0);
        writer.note_status(Status::Unsynchronized, 0);
        writer
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails once the page file has been unlinked (link count 0): its readers still map it, but
    /// nobody opening the page by name finds it any more. Cheap (one fstat): call it every update.
    pub fn check_linked(&self) -> Result<(), WriterError> {
        let meta = self.file.metadata().map_err(|e| WriterError::io("stat", &self.path, e))?;
        if meta.nlink() == 0 {
            return Err(WriterError::Unlinked { path: self.path.clone() });
        }
        Ok(())
    }

    /// The mapped page (read access, e.g. for tests).
    pub fn page(&self) -> &Page {
        self.page.page()
    }

    /// Says the clock's timeline was just disrupted (a step, a reset of the clock, a device
    /// change): the next [`Writer::publish`] begins a new disruption epoch, and the events posted
    /// after it carry that epoch. Call it before publishing the first mapping after the
    /// disruption. A writer's start, a change of reference kind or grandmaster identity and a
    /// change of counter kind begin a new epoch by themselves.
    pub fn mark_disruption(&mut self) {
        self.disrupted = true;
    }

    /// The disruption epoch of the last publish (or of this writer's start).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Publishes one update. Never blocks: readers retry, they never hold the writer up. Wakes
    /// readers waiting on the clock block's sequence word (`Clock::wait_until` and the like).
    /// Posts STATUS_CHANGED (and LEAP_CHANGED) events when those change.
    ///
    /// The interval the previous update's mapping was in force (up to this one's anchor) goes
    /// into the history of past mappings first, so a reader that sees this mapping finds the
    /// previous one there. The estimate is clamped to the maximum error and its growth.
    pub fn publish(&mut self, snapshot: &Snapshot) {
        self.update_count += 1;
        let changed = self.last.as_ref().is_some_and(|l| {
            l.counter_kind != snapshot.counter_kind
                || l.reference.kind != snapshot.reference.kind
                || l.reference.gm_identity != snapshot.reference.gm_identity
        });
        if self.disrupted || changed {
            self.epoch = next_epoch(self.epoch);
            self.disrupted = false;
        }
        let estimate = crate::snapshot::Estimate {
            error_ns: snapshot.estimate.error_ns.min(snapshot.error_bound_ns),
            growth_ppt: snapshot.estimate.growth_ppt.min(snapshot.error_growth_ppt),
        };
        let snap =
            Snapshot { update_count: self.update_count, epoch: self.epoch, estimate, ..snapshot.clone() };
        let page = self.page.page();
        if let Some(last) = self.last.as_ref().filter(|l| l.updated_tai_ns != 0) {
            self.history.close(page, last, snap.counter_value);
        }
        let clock = &page.clock;
        let head = self.history.head();
        seqlock::write(&clock.seq, || {
            snap.store(clock);
            clock.history_head.store(head, Relaxed);
        });
        futex::wake_all(&clock.seq);
        let leap_changed = self
            .last
            .as_ref()
            .map_or(snap.leap != abi::Leap::None, |l| (l.leap, l.leap_tai_s) != (snap.leap, snap.leap_tai_s));
        if leap_changed {
            self.post(
                EventKind::LeapChanged,
                Urgency::Info,
                snap.leap_tai_s as i64,
                snap.leap as u32,
                snap.updated_tai_ns,
            );
        }
        self.note_status(snap.status, snap.updated_tai_ns);
        self.last = Some(snap);
    }

    /// Posts an event and wakes every reader waiting for one. `tai_ns` 0 means "now, by the mapping".
    pub fn post(&mut self, kind: EventKind, urgency: Urgency, magnitude: i64, detail: u32, tai_ns: u64) {
        let tai_ns = if tai_ns == 0 { self.now_tai().unwrap_or(0) } else { tai_ns };
        let p = self.page.page();
        let number = p.events.head.load(Relaxed) + 1;
        debug_assert!(kind != EventKind::Unknown, "EventKind::Unknown is read-side only");
        let event = Event {
            seq: number,
            kind,
            raw_kind: kind as u16,
            urgency,
            tai_ns,
            magnitude,
            detail,
            epoch: self.epoch,
        };
        let index = ((number - 1) % EVENT_RING_LEN as u64) as usize;
        let slot = &p.ring[index];
        seqlock::write_slot(&slot.seq, number, || event.store(slot, &p.event_epochs[index]));
        p.events.head.store(number, Release);
        p.events.futex.fetch_add(1, Release);
        futex::wake_all(&p.events.futex);
    }

    /// Marks the device gone: status DEVICE_LOST with a STATUS_CHANGED and an urgent DEVICE_LOST event.
    /// `last_read` is the register value that gave it away (all ones on PCIe).
    pub fn device_lost(&mut self, last_read: u32) {
        self.set_status(Status::DeviceLost);
        self.post(EventKind::DeviceLost, Urgency::Urgent, 0, last_read, 0);
    }

    /// Current time by the last published mapping (None before the first update).
    pub fn now_tai(&self) -> Option<u64> {
        let last = self.last.as_ref()?;
        let t = last.tai_at(counter::read(last.counter_kind)?);
        u64::try_from(t).ok()
    }

    fn set_status(&mut self, status: Status) {
        let clock = &self.page.page().clock;
        seqlock::write(&clock.seq, || clock.status.store(status as u32, Relaxed));
        futex::wake_all(&clock.seq);
        if let Some(last) = self.last.as_mut() {
            last.status = status;
        }
        self.note_status(status, 0);
    }

    fn note_status(&mut self, status: Status, tai_ns: u64) {
        if status == self.status {
            return;
        }
        let urgency = if status.is_usable() { Urgency::Notice } else { Urgency::Urgent };
        let old = self.status;
        self.status = status;
        self.post(EventKind::StatusChanged, urgency, status as i64, old as u32, tai_ns);
    }
}

impl Drop for Writer {
    /// Clean shutdown: STOPPED (a DEVICE_LOST page keeps saying so), a STOPPED event, no writer pid.
    fn drop(&mut self) {
        if self.status != Status::DeviceLost {
            self.set_status(Status::Stopped);
        }
        self.post(EventKind::Stopped, Urgency::Urgent, 0, std::process::id(), 0);
        self.page.page().header.writer_pid.store(0, Release);
    }
}

/// Opens an existing page for reuse: `Ok(None)` when there is none.
fn open_existing(path: &Path) -> Result<Option<File>, WriterError> {
    match OpenOptions::new().read(true).write(true).custom_flags(OPEN_FLAGS).open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(WriterError::Symlink { path: path.into() }),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            Err(WriterError::NotRegularFile { path: path.into(), found: "directory" })
        }
        Err(e) => {
            // EACCES etc: say what is there if we can see it.
            if let Ok(meta) = fs::symlink_metadata(path) {
                if meta.uid() != geteuid().as_raw() {
                    return Err(WriterError::ForeignOwner {
                        path: path.into(),
                        owner: meta.uid(),
                        expected: geteuid().as_raw(),
                    });
                }
            }
            Err(WriterError::io("open", path, e))
        }
    }
}

/// Builds a complete page under a temporary name and links it into place, so no reader ever sees a
/// half-initialised page. `Ok(Err(lock))`: a page appeared there meanwhile; the lock comes back.
fn create_new(
    opts: &PageOptions,
    identity: &Identity,
    path: &Path,
    lock: LockFile,
) -> Result<Result<Writer, LockFile>, WriterError> {
    let temp = opts.dir.join(format!(".{}{}.{}.tmp", abi::FILE_PREFIX, opts.name, std::process::id()));
    let _ = fs::remove_file(&temp); // our own leftover from a crash (same pid reused): harmless
    let (file, page) = WritablePage::create_fresh(&temp, 0o600, |p| init_page(p, &opts.name, identity))
        .map_err(|e| WriterError::io("create", &temp, e))?;
    let result = (|| {
        apply_permissions(&file, opts, &temp)?;
        match fs::hard_link(&temp, path) {
            Ok(()) => Ok(Ok(Writer::start(page, file, lock, path.into()))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Err(lock)),
            Err(e) => Err(WriterError::io("link", path, e)),
        }
    })();
    let _ = fs::remove_file(&temp);
    result
}

fn init_page(p: &mut Page, name: &str, identity: &Identity) {
    let h = &mut p.header;
    h.magic = MAGIC;
    h.abi_major = ABI_MAJOR;
    *h.abi_minor.get_mut() = ABI_MINOR;
    h.page_size = PAGE_SIZE as u32;
    h.clock_offset = CLOCK_OFFSET as u32;
    h.event_control_offset = EVENT_CONTROL_OFFSET as u32;
    h.event_ring_offset = EVENT_RING_OFFSET as u32;
    h.event_ring_len = EVENT_RING_LEN as u32;
    h.clock_id = identity.clock_id;
    abi::set_c_str(&mut h.model, &identity.model);
    abi::set_c_str(&mut h.pci_address, &identity.pci_address);
    abi::set_c_str(&mut h.name, name);
    for (byte, value) in h.boot_id.iter_mut().zip(boot::current().unwrap_or_default()) {
        *byte.get_mut() = value;
    }
}

fn apply_permissions(file: &File, opts: &PageOptions, path: &Path) -> Result<(), WriterError> {
    if let Some(gid) = opts.group {
        fchown(file, None, Some(Gid::from_raw(gid))).map_err(|e| WriterError::io("chown", path, e.into()))?;
    }
    let mode = Mode::from_bits_truncate(opts.mode & 0o777);
    fchmod(file, mode).map_err(|e| WriterError::io("chmod", path, e.into()))
}

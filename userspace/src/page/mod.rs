//! Maps time pages: read-only (O_RDONLY, PROT_READ) for readers, read-write for the one writer.
//! With `ffi` (the C ABI's pointers), the only module allowed `unsafe` (mmap, futex, rdtsc): the
//! crate root denies `unsafe_code` everywhere else.

pub mod counter;
pub mod futex;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut, MmapOptions};

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use crate::abi::{
    Page, ABI_MAJOR, CLOCK_OFFSET, EVENT_CONTROL_OFFSET, EVENT_RING_LEN, EVENT_RING_OFFSET, MAGIC,
    MAX_EVENT_HEAD, PAGE_SIZE,
};
use crate::boot;
use crate::error::Error;

/// Flags for every open of a page: never follow a symlink, never block on a FIFO, never leak the fd.
pub(crate) const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;

/// A validated page mapped read-only. Any number may exist; none can write.
pub struct ReadOnlyPage {
    map: Mmap,
    path: PathBuf,
}

impl ReadOnlyPage {
    /// Opens `path` O_RDONLY, checks it is a regular 4096-byte file with our magic and ABI major,
    /// and maps it PROT_READ.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new().read(true).custom_flags(OPEN_FLAGS).open(path).map_err(|e| match e
            .raw_os_error()
        {
            Some(libc::ELOOP) => Error::NotAPage {
                path: path.into(),
                reason: "it is a symbolic link (pages are never links)".into(),
            },
            _ => Error::io("open", path, e),
        })?;
        let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
        if !meta.is_file() {
            return Err(Error::NotAPage {
                path: path.into(),
                reason: format!("it is a {}", file_kind(&meta)),
            });
        }
        if meta.len() != PAGE_SIZE as u64 {
            return Err(Error::NotAPage {
                path: path.into(),
                reason: format!("it is {} bytes, a page is {PAGE_SIZE}", meta.len()),
            });
        }
        // SAFETY: a shared read-only mapping of a regular file of exactly PAGE_SIZE bytes. Its content
        // changes under us (that is the point), which is why every field a writer touches after
        // creation is an atomic. Only the page's owner could truncate it (SIGBUS); nicclockd never does.
        let map =
            unsafe { MmapOptions::new().len(PAGE_SIZE).map(&file) }.map_err(|e| Error::io("map", path, e))?;
        let page = Self { map, path: path.into() };
        page.validate()?;
        Ok(page)
    }

    fn validate(&self) -> Result<(), Error> {
        let h = &self.page().header;
        let not_a_page = |reason: String| Error::NotAPage { path: self.path.clone(), reason };
        if h.magic != MAGIC {
            return Err(not_a_page(format!(
                "its first bytes are {:02x?}, not \"NICCLOCK\"",
                h.magic.to_le_bytes()
            )));
        }
        if h.abi_major != ABI_MAJOR {
            return Err(Error::IncompatibleAbi {
                path: self.path.clone(),
                found: h.abi_major,
                supported: ABI_MAJOR,
            });
        }
        if h.page_size as usize != PAGE_SIZE || h.event_ring_len as usize != EVENT_RING_LEN {
            return Err(not_a_page(format!(
                "its header says page size {} and {} event slots (expected {PAGE_SIZE} and {EVENT_RING_LEN})",
                h.page_size, h.event_ring_len
            )));
        }
        let offsets = [h.clock_offset, h.event_control_offset, h.event_ring_offset].map(|o| o as usize);
        if offsets != [CLOCK_OFFSET, EVENT_CONTROL_OFFSET, EVENT_RING_OFFSET] {
            return Err(not_a_page(format!(
                "its header puts the clock, event control and ring blocks at {offsets:?} (expected \
                 [{CLOCK_OFFSET}, {EVENT_CONTROL_OFFSET}, {EVENT_RING_OFFSET}])"
            )));
        }
        self.check_boot()?;
        let head = self.page().events.head.load(Relaxed);
        if head > MAX_EVENT_HEAD {
            return Err(Error::Corrupt { field: "event ring head", value: head });
        }
        Ok(())
    }

    /// A page of minor ≥ 1 must carry this boot's id; a minor-0 page (from a writer before boot
    /// ids) has none and is accepted, its reads guarded by the counter-before-anchor check only.
    /// A reader that cannot read its own boot id (no /proc) cannot compare and accepts the page.
    fn check_boot(&self) -> Result<(), Error> {
        let h = &self.page().header;
        let minor = h.abi_minor.load(Acquire);
        if minor == 0 {
            return Ok(());
        }
        let page = h.boot_id.each_ref().map(|b| b.load(Relaxed));
        if page == [0; 16] {
            return Err(Error::NoBootId { path: self.path.clone(), minor });
        }
        match boot::current() {
            Ok(ours) if ours != page => Err(Error::OtherBoot {
                path: self.path.clone(),
                page: boot::format(&page).into(),
                ours: boot::format(&ours).into(),
            }),
            _ => Ok(()),
        }
    }

    pub fn page(&self) -> &Page {
        // SAFETY: the mapping is PAGE_SIZE bytes, page-aligned (≥ Page's 64-byte alignment) and lives
        // as long as `self`. Page is plain integers and atomics, valid for any bit pattern; we only
        // ever load from it, which read-only memory allows for atomics of native width.
        unsafe { &*self.map.as_ptr().cast::<Page>() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A page mapped read-write by its single writer.
pub struct WritablePage {
    map: MmapMut,
}

impl WritablePage {
    /// Creates `temp` (O_CREAT|O_EXCL|O_NOFOLLOW, so it is new and ours alone), sizes it to one page,
    /// maps it and lets `init` fill it while nobody else can see it. The caller then links it into place.
    pub(crate) fn create_fresh(
        temp: &Path,
        mode: u32,
        init: impl FnOnce(&mut Page),
    ) -> io::Result<(File, Self)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(OPEN_FLAGS)
            .open(temp)?;
        file.set_len(PAGE_SIZE as u64)?;
        let mut page = Self::map(&file)?;
        // SAFETY: `file` was created by this call with O_EXCL and is not linked under its final name
        // yet; this process holds the only mapping, so a unique reference to it is sound.
        init(unsafe { &mut *page.map.as_mut_ptr().cast::<Page>() });
        page.map.flush()?;
        Ok((file, page))
    }

    /// Maps an existing page file (already checked to be a regular PAGE_SIZE file) read-write.
    pub(crate) fn map(file: &File) -> io::Result<Self> {
        // SAFETY: shared read-write mapping of a regular file of PAGE_SIZE bytes that this writer
        // owns and holds the writer lock of (crate::lockfile). Readers map it too, so we only hand
        // out shared references and write through atomics.
        let map = unsafe { MmapOptions::new().len(PAGE_SIZE).map_mut(file) }?;
        Ok(Self { map })
    }

    pub fn page(&self) -> &Page {
        // SAFETY: as in ReadOnlyPage::page; the mapping is writable, and all mutation after creation
        // goes through atomics, so a shared reference is sound while readers map the same memory.
        unsafe { &*self.map.as_ptr().cast::<Page>() }
    }
}

/// A word for what a non-regular file is, for error messages.
pub(crate) fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "device node"
    } else if meta.mode() & libc::S_IFMT == libc::S_IFREG {
        "regular file"
    } else {
        "special file"
    }
}

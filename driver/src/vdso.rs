//! The kernel's vDSO `clock_gettime`, found once in the ELF image the kernel maps into every
//! process (`AT_SYSINFO_EHDR`), so that a measurement bracket's clock read is one direct call.
//!
//! glibc's `clock_gettime` reaches the same code through its PLT entry and an indirect call, and
//! returns through a wrapper of its own: under QEMU's TCG every one of those jumps is a
//! translation-block lookup that sits inside the bracket. When the vDSO or its symbol cannot be
//! found, reads go to libc's `clock_gettime` and the reason is logged once.

use std::sync::OnceLock;

use thiserror::Error;

/// `clock_gettime`'s C signature: the vDSO's and libc's.
type ClockGettimeFn = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;

/// This architecture's vDSO name and version of `clock_gettime` (vdso(7)).
#[cfg(target_arch = "x86_64")]
const CLOCK_GETTIME: Option<(&str, &str)> = Some(("__vdso_clock_gettime", "LINUX_2.6"));
#[cfg(target_arch = "aarch64")]
const CLOCK_GETTIME: Option<(&str, &str)> = Some(("__kernel_clock_gettime", "LINUX_2.6.39"));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const CLOCK_GETTIME: Option<(&str, &str)> = None;

/// Why the vDSO's `clock_gettime` is not used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VdsoError {
    #[error("this architecture's vDSO clock_gettime is not known to nicclockd")]
    Unsupported,
    #[error("the kernel maps no vDSO into this process (AT_SYSINFO_EHDR is 0)")]
    NoImage,
    #[error("the vDSO at {0:#x} is not listed in /proc/self/maps ({1})")]
    NoMapping(usize, String),
    #[error("the vDSO image is not a 64-bit little-endian ELF")]
    NotElf,
    #[error("the vDSO image's {what} lies outside its {size}-byte mapping")]
    OutOfBounds { what: &'static str, size: usize },
    #[error("the vDSO image has no {0}")]
    Missing(&'static str),
    #[error("the vDSO exports no {name}@{version}")]
    NoSymbol { name: String, version: String },
    #[error("the vDSO's clock_gettime does not agree with libc's ({0})")]
    Disagrees(String),
}

/// Where a [`SystemClock`]'s reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The vDSO's `clock_gettime`, called directly.
    Vdso,
    /// libc's `clock_gettime` (the vDSO could not be used; the reason was logged).
    Libc,
}

/// One system clock (CLOCK_REALTIME, CLOCK_TAI, …) read through the vDSO when it can be.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    read: ClockGettimeFn,
    id: libc::clockid_t,
    source: Source,
}

impl SystemClock {
    /// Reads clock `id` through the vDSO's `clock_gettime` (resolved on the first call in the
    /// process), or libc's when that cannot be found.
    pub fn new(id: libc::clockid_t) -> Self {
        let (read, source) = resolved();
        Self { read, id, source }
    }

    /// Reads clock `id` through libc's `clock_gettime`.
    pub fn libc(id: libc::clockid_t) -> Self {
        Self { read: libc::clock_gettime, id, source: Source::Libc }
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// The clock now, ns since its epoch.
    #[inline(always)]
    pub fn now_ns(&self) -> u64 {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `read` is the vDSO's clock_gettime (checked by `resolve`) or libc's, both with
        // clock_gettime's C ABI, and `t` is a valid, writable timespec for the call's duration.
        let rc = unsafe { (self.read)(self.id, &mut t) };
        if rc != 0 {
            unreadable(self.id);
        }
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }
}

#[cold]
#[inline(never)]
fn unreadable(id: libc::clockid_t) -> ! {
    panic!(
        "clock {id} cannot be read ({}); the reference clock is checked at start-up",
        std::io::Error::last_os_error()
    )
}

/// The process's `clock_gettime`: the vDSO's, or libc's with the reason logged (once).
fn resolved() -> (ClockGettimeFn, Source) {
    static RESOLVED: OnceLock<(ClockGettimeFn, Source)> = OnceLock::new();
    *RESOLVED.get_or_init(|| match resolve() {
        Ok(read) => {
            log::debug!("clock reads: the vDSO's clock_gettime, called directly");
            (read, Source::Vdso)
        }
        Err(e) => {
            log::warn!("clock reads: {e}; using libc's clock_gettime (each read a few calls longer)");
            (libc::clock_gettime, Source::Libc)
        }
    })
}

/// Finds this architecture's `clock_gettime` in the vDSO mapped into this process and checks
/// one reading of it against libc's.
fn resolve() -> Result<ClockGettimeFn, VdsoError> {
    let (name, version) = CLOCK_GETTIME.ok_or(VdsoError::Unsupported)?;
    if cfg!(not(target_endian = "little")) {
        return Err(VdsoError::Unsupported);
    }
    // SAFETY: getauxval reads the process's auxiliary vector; it has no preconditions.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if base == 0 {
        return Err(VdsoError::NoImage);
    }
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| VdsoError::NoMapping(base, format!("cannot read it: {e}")))?;
    let end = vdso_end(&maps, base)
        .ok_or_else(|| VdsoError::NoMapping(base, "no [vdso] line starts there".into()))?;
    // SAFETY: the kernel maps the vDSO readable at `base`, `end - base` bytes long as
    // /proc/self/maps lists it, for the whole life of the process (nicclockd never unmaps it).
    let image: &'static [u8] = unsafe { std::slice::from_raw_parts(base as *const u8, end - base) };
    let offset = find_symbol(image, name, version)?;
    // SAFETY: `offset` is inside the image (checked by `find_symbol`), at the entry of the
    // function the kernel exports under this name and version with clock_gettime's C ABI.
    let read = unsafe { std::mem::transmute::<*const u8, ClockGettimeFn>(image.as_ptr().add(offset)) };
    agrees_with_libc(read)?;
    Ok(read)
}

/// One CLOCK_MONOTONIC reading of `read` between two of libc's.
fn agrees_with_libc(read: ClockGettimeFn) -> Result<(), VdsoError> {
    let libc = SystemClock::libc(libc::CLOCK_MONOTONIC);
    let before = libc.now_ns();
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `read` has clock_gettime's C ABI (see `resolve`); `t` is a valid, writable timespec.
    let rc = unsafe { read(libc::CLOCK_MONOTONIC, &mut t) };
    let after = libc.now_ns();
    let ns = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
    if rc != 0 || !(before..=after).contains(&ns) {
        return Err(VdsoError::Disagrees(format!("returned {rc}, {ns} ns, libc {before}..{after} ns")));
    }
    Ok(())
}

/// The end of the `[vdso]` mapping that starts at `base`, from /proc/self/maps' text.
fn vdso_end(maps: &str, base: usize) -> Option<usize> {
    maps.lines().filter(|l| l.trim_end().ends_with("[vdso]")).find_map(|l| {
        let (start, end) = l.split_whitespace().next()?.split_once('-')?;
        let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
        (start == base && end > start).then_some(end)
    })
}

// ELF64 constants (elf(5)).
const PT_LOAD: u32 = 1;
const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERDEF: u32 = 0x6fff_fffd;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;
const STT_FUNC: u8 = 2;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const SHN_UNDEF: u16 = 0;
const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const SHDR_SIZE: u64 = 64;
const SYM_SIZE: u64 = 24;
const VERDEF_SIZE: u64 = 20;

/// An ELF image as bytes: every read checked against its length.
struct Image<'a>(&'a [u8]);

impl Image<'_> {
    fn bytes(&self, offset: u64, len: u64, what: &'static str) -> Result<&[u8], VdsoError> {
        let out = VdsoError::OutOfBounds { what, size: self.0.len() };
        let end = offset.checked_add(len).ok_or(out.clone())?;
        let (start, end) = (
            usize::try_from(offset).map_err(|_| out.clone())?,
            usize::try_from(end).map_err(|_| out.clone())?,
        );
        self.0.get(start..end).ok_or(out)
    }
    fn u16(&self, offset: u64, what: &'static str) -> Result<u16, VdsoError> {
        Ok(u16::from_le_bytes(self.bytes(offset, 2, what)?.try_into().expect("2 bytes")))
    }
    fn u32(&self, offset: u64, what: &'static str) -> Result<u32, VdsoError> {
        Ok(u32::from_le_bytes(self.bytes(offset, 4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&self, offset: u64, what: &'static str) -> Result<u64, VdsoError> {
        Ok(u64::from_le_bytes(self.bytes(offset, 8, what)?.try_into().expect("8 bytes")))
    }
    /// The NUL-terminated string at `offset` of the string table `table` (offset, size).
    fn str(&self, table: (u64, u64), offset: u64, what: &'static str) -> Result<&[u8], VdsoError> {
        let out = || VdsoError::OutOfBounds { what, size: self.0.len() };
        let rest = table.1.checked_sub(offset).ok_or_else(out)?;
        let bytes = self.bytes(table.0.checked_add(offset).ok_or_else(out)?, rest, what)?;
        let nul = bytes.iter().position(|&b| b == 0).ok_or_else(out)?;
        Ok(&bytes[..nul])
    }
    /// Section header `index` of the table at `shoff`.
    fn section(&self, shoff: u64, shentsize: u64, index: u64) -> Result<Section, VdsoError> {
        let at = index.checked_mul(shentsize).and_then(|o| o.checked_add(shoff));
        let at = at.ok_or(VdsoError::OutOfBounds { what: "section header", size: self.0.len() })?;
        self.bytes(at, SHDR_SIZE, "section header")?;
        Ok(Section {
            kind: self.u32(at + 4, "section header")?,
            offset: self.u64(at + 24, "section header")?,
            size: self.u64(at + 32, "section header")?,
            link: self.u32(at + 40, "section header")?,
            info: self.u32(at + 44, "section header")?,
            entsize: self.u64(at + 56, "section header")?,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    entsize: u64,
}

/// The offset in `image` (a 64-bit little-endian ELF shared object as mapped) of the defined
/// function `name` whose version is `version` (any version when the image has no version table).
fn find_symbol(image: &[u8], name: &str, version: &str) -> Result<usize, VdsoError> {
    let img = Image(image);
    let header = img.bytes(0, EHDR_SIZE, "ELF header").map_err(|_| VdsoError::NotElf)?;
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(VdsoError::NotElf);
    }
    let (phoff, phentsize, phnum) =
        (img.u64(32, "ELF header")?, img.u16(54, "ELF header")? as u64, img.u16(56, "ELF header")? as u64);
    let (shoff, shentsize, shnum) =
        (img.u64(40, "ELF header")?, img.u16(58, "ELF header")? as u64, img.u16(60, "ELF header")? as u64);
    if phentsize < PHDR_SIZE || shentsize < SHDR_SIZE {
        return Err(VdsoError::NotElf);
    }
    // The loaded segment: symbol values are its virtual addresses.
    let mut load = None;
    for i in 0..phnum {
        let at = i.checked_mul(phentsize).and_then(|o| o.checked_add(phoff));
        let at = at.ok_or(VdsoError::OutOfBounds { what: "program header", size: image.len() })?;
        img.bytes(at, PHDR_SIZE, "program header")?;
        if img.u32(at, "program header")? == PT_LOAD {
            load = Some((img.u64(at + 16, "program header")?, img.u64(at + 8, "program header")?));
            break;
        }
    }
    let (load_vaddr, load_offset) = load.ok_or(VdsoError::Missing("loadable segment"))?;
    let (mut dynsym, mut versym, mut verdef) = (None, None, None);
    for i in 0..shnum {
        let s = img.section(shoff, shentsize, i)?;
        match s.kind {
            SHT_DYNSYM => dynsym = Some(s),
            SHT_GNU_VERSYM => versym = Some(s),
            SHT_GNU_VERDEF => verdef = Some(s),
            _ => {}
        }
    }
    let dynsym = dynsym.ok_or(VdsoError::Missing("dynamic symbol table"))?;
    if dynsym.entsize < SYM_SIZE {
        return Err(VdsoError::Missing("dynamic symbol table of 24-byte entries"));
    }
    let strtab = img
        .section(shoff, shentsize, dynsym.link as u64)
        .map_err(|_| VdsoError::Missing("dynamic string table"))?;
    let strtab = (strtab.offset, strtab.size);
    for i in 0..dynsym.size / dynsym.entsize {
        let at = dynsym.offset.checked_add(i * dynsym.entsize);
        let at = at.ok_or(VdsoError::OutOfBounds { what: "symbol", size: image.len() })?;
        img.bytes(at, SYM_SIZE, "symbol")?;
        let info = img.bytes(at + 4, 1, "symbol")?[0];
        let (kind, bind) = (info & 0xf, info >> 4);
        if kind != STT_FUNC
            || !(bind == STB_GLOBAL || bind == STB_WEAK)
            || img.u16(at + 6, "symbol")? == SHN_UNDEF
        {
            continue;
        }
        if img.str(strtab, img.u32(at, "symbol")? as u64, "symbol name")? != name.as_bytes() {
            continue;
        }
        if let Some(versym) = versym {
            let index = img.u16(versym.offset.saturating_add(2 * i), "symbol version")? & 0x7fff;
            let verdef = verdef.ok_or(VdsoError::Missing("version definitions"))?;
            let names = img.section(shoff, shentsize, verdef.link as u64)?;
            if !has_version(&img, verdef, (names.offset, names.size), index, version)? {
                continue;
            }
        }
        let value = img.u64(at + 8, "symbol")?;
        let offset = value.checked_sub(load_vaddr).and_then(|v| v.checked_add(load_offset));
        let out = VdsoError::OutOfBounds { what: "symbol's address", size: image.len() };
        let offset = usize::try_from(offset.ok_or(out.clone())?).map_err(|_| out.clone())?;
        return if offset < image.len() { Ok(offset) } else { Err(out) };
    }
    Err(VdsoError::NoSymbol { name: name.into(), version: version.into() })
}

/// Whether version index `index` is defined in `verdef` (its names in string table `strtab`)
/// with the name `version`.
fn has_version(
    img: &Image,
    verdef: Section,
    strtab: (u64, u64),
    index: u16,
    version: &str,
) -> Result<bool, VdsoError> {
    let mut at = verdef.offset;
    // At most `info` entries (the section's count), each checked before it is read.
    for _ in 0..verdef.info {
        img.bytes(at, VERDEF_SIZE, "version definition")?;
        if img.u16(at + 4, "version definition")? == index {
            let aux = at.checked_add(img.u32(at + 12, "version definition")? as u64);
            let aux = aux.ok_or(VdsoError::OutOfBounds { what: "version name", size: img.0.len() })?;
            let name = img.str(strtab, img.u32(aux, "version name")? as u64, "version name")?;
            return Ok(name == version.as_bytes());
        }
        match img.u32(at + 16, "version definition")? {
            0 => break,
            next => {
                at = at
                    .checked_add(next as u64)
                    .ok_or(VdsoError::OutOfBounds { what: "version definition", size: img.0.len() })?
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's vDSO image, as `resolve` sees it.
    fn this_image() -> &'static [u8] {
        // SAFETY: getauxval has no preconditions.
        let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        assert_ne!(base, 0, "Linux maps a vDSO into every process");
        let end = vdso_end(&std::fs::read_to_string("/proc/self/maps").unwrap(), base).unwrap();
        // SAFETY: as in `resolve`: the kernel's vDSO mapping, readable for the process's life.
        unsafe { std::slice::from_raw_parts(base as *const u8, end - base) }
    }

    #[test]
    fn resolves_the_vdso_clock_gettime_on_this_machine() {
        let (name, version) = CLOCK_GETTIME.expect("the lab machines are x86_64");
        let offset = find_symbol(this_image(), name, version).unwrap();
        assert!(offset > 0);
        assert_eq!(SystemClock::new(libc::CLOCK_REALTIME).source(), Source::Vdso);
    }

    #[test]
    fn vdso_readings_fall_between_libc_readings_in_order() {
        for id in [libc::CLOCK_REALTIME, libc::CLOCK_MONOTONIC, libc::CLOCK_TAI] {
            let (vdso, libc) = (SystemClock::new(id), SystemClock::libc(id));
            assert_eq!(vdso.source(), Source::Vdso);
            for _ in 0..1000 {
                let (a, b, c) = (libc.now_ns(), vdso.now_ns(), libc.now_ns());
                // CLOCK_REALTIME/TAI may be stepped by someone else meanwhile: a rare step would
                // show as one failed triple; steps by NTP are slews, which keep the order.
                assert!(a <= b && b <= c, "clock {id}: libc {a}, vDSO {b}, libc {c}");
            }
        }
    }

    #[test]
    fn finds_the_mapping_that_starts_at_the_auxv_address() {
        let maps = "7ffc1000-7ffc3000 r--p 00000000 00:00 0  [vvar]\n\
                    7ffc3000-7ffc5000 r-xp 00000000 00:00 0  [vdso]\n";
        assert_eq!(vdso_end(maps, 0x7ffc3000), Some(0x7ffc5000));
        assert_eq!(vdso_end(maps, 0x7ffc1000), None, "[vvar] is not the image");
        assert_eq!(vdso_end("garbage [vdso]\n", 0x7ffc3000), None);
    }

    #[test]
    fn rejects_truncated_images_at_every_length() {
        let (name, version) = CLOCK_GETTIME.unwrap();
        let image = this_image();
        let full = find_symbol(image, name, version).unwrap();
        // Any prefix too short to hold what the lookup reads is an error, never a panic or a
        // read past the slice; a prefix that still holds it all finds the same symbol.
        let mut refused = 0;
        for len in 0..image.len() {
            match find_symbol(&image[..len], name, version) {
                Ok(offset) => assert_eq!(offset, full, "prefix of {len} bytes"),
                Err(VdsoError::NotElf | VdsoError::OutOfBounds { .. } | VdsoError::Missing(_)) => {
                    refused += 1
                }
                Err(e) => panic!("prefix of {len} bytes: unexpected {e}"),
            }
        }
        assert!(refused > 64, "short prefixes are refused ({refused})");
        assert!(matches!(find_symbol(&image[..63], name, version), Err(VdsoError::NotElf)));
    }

    #[test]
    fn rejects_garbled_headers_and_offsets() {
        let (name, version) = CLOCK_GETTIME.unwrap();
        let mut image = this_image().to_vec();
        image[0] = b'X';
        assert_eq!(find_symbol(&image, name, version), Err(VdsoError::NotElf));

        // Section headers said to start past the end of the image.
        let mut image = this_image().to_vec();
        image[40..48].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        assert!(
            matches!(
                find_symbol(&image, name, version),
                Err(VdsoError::OutOfBounds { what: "section header", .. })
            ),
            "{:?}",
            find_symbol(&image, name, version)
        );

        // Every byte of the section header table garbled in turn: an error, or an offset that is
        // inside the image (never one read from a garbled header unchecked).
        let pristine = this_image().to_vec();
        let shoff = u64::from_le_bytes(pristine[40..48].try_into().unwrap()) as usize;
        for at in shoff..pristine.len() {
            for value in [0x00, 0x7f, 0xff] {
                let mut image = pristine.clone();
                image[at] = value;
                if let Ok(offset) = find_symbol(&image, name, version) {
                    assert!(offset < image.len(), "byte {at} = {value:#x}: offset {offset}");
                }
            }
        }
    }

    #[test]
    fn a_missing_symbol_or_version_is_named() {
        let image = this_image();
        let (name, version) = CLOCK_GETTIME.unwrap();
        assert_eq!(
            find_symbol(image, "__vdso_no_such_function", version),
            Err(VdsoError::NoSymbol { name: "__vdso_no_such_function".into(), version: version.into() })
        );
        assert!(matches!(find_symbol(image, name, "LINUX_0.1"), Err(VdsoError::NoSymbol { .. })));
    }
}

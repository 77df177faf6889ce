//! The writer refuses every file in the page directory it did not make itself, and bad names and
//! identities, each with a message naming what it found and what to do; and two writers never share a page.

mod common;

use std::os::unix::fs::symlink;

use common::{identity, PageDir, NOBODY};
use nicclock::{Identity, Writer, WriterError};

fn refuse(dir: &PageDir, name: &str) -> WriterError {
    match Writer::create(&dir.options(name), &identity()) {
        Ok(_) => panic!("writer accepted {}", dir.page(name).display()),
        Err(e) => e,
    }
}

fn contains(e: &WriterError, words: &[&str]) {
    let msg = e.to_string();
    for w in words {
        assert!(msg.contains(w), "message {msg:?} lacks {w:?}");
    }
}

#[test]
fn a_pre_planted_symlink_is_refused_and_its_target_untouched() {
    let dir = PageDir::new("symlink");
    let target = dir.path.join("victim");
    std::fs::write(&target, b"precious").unwrap();
    symlink(&target, dir.page("eth0")).unwrap();
    let e = refuse(&dir, "eth0");
    assert!(matches!(e, WriterError::Symlink { .. }), "{e:?}");
    contains(&e, &["symbolic link", "rm "]);
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    // A dangling symlink too: nothing gets created through it.
    let dangling = dir.path.join("nowhere");
    symlink(&dangling, dir.page("eth1")).unwrap();
    assert!(matches!(refuse(&dir, "eth1"), WriterError::Symlink { .. }));
    assert!(!dangling.exists());
}

#[test]
fn a_foreign_owned_file_is_refused() {
    assert!(nix::unistd::geteuid().is_root(), "this test chowns a file to nobody and must run as root");
    let dir = PageDir::new("foreign");
    let path = dir.page("eth0");
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = refuse(&dir, "eth0");
    assert!(matches!(e, WriterError::ForeignOwner { owner: NOBODY, expected: 0, .. }), "{e:?}");
    contains(&e, &["owned by uid 65534", "remove it"]);
    assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; 4096], "left as found");
}

#[test]
fn a_wrong_size_file_is_refused() {
    let dir = PageDir::new("size");
    std::fs::write(dir.page("eth0"), b"short").unwrap();
    let e = refuse(&dir, "eth0");
    assert!(matches!(e, WriterError::WrongSize { size: 5, expected: 4096, .. }), "{e:?}");
    contains(&e, &["5 bytes", "4096"]);
    assert_eq!(std::fs::read(dir.page("eth0")).unwrap(), b"short");
}

#[test]
fn a_page_sized_file_without_the_magic_is_refused() {
    let dir = PageDir::new("magic");
    std::fs::write(dir.page("eth0"), vec![0xAAu8; 4096]).unwrap();
    let e = refuse(&dir, "eth0");
    assert!(matches!(e, WriterError::NotOurPage { .. }), "{e:?}");
    contains(&e, &["not a nicclock page"]);
}

#[test]
fn a_page_of_another_abi_major_is_refused() {
    let dir = PageDir::new("abi");
    drop(Writer::create(&dir.options("eth0"), &identity()).unwrap());
    let mut bytes = std::fs::read(dir.page("eth0")).unwrap();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    std::fs::write(dir.page("eth0"), &bytes).unwrap();
    let e = refuse(&dir, "eth0");
    assert!(matches!(e, WriterError::AbiMismatch { found: 2, ours: 1, .. }), "{e:?}");
}

#[test]
fn a_page_of_another_clock_is_refused() {
    let dir = PageDir::new("identity");
    drop(Writer::create(&dir.options("eth0"), &identity()).unwrap());
    let other = Identity { pci_address: "0000:02:00.0".into(), ..identity() };
    let e = Writer::create(&dir.options("eth0"), &other).err().expect("refused");
    assert!(matches!(e, WriterError::IdentityMismatch { .. }), "{e:?}");
    contains(&e, &["0000:01:00.0", "0000:02:00.0", "another page name"]);
}

#[test]
fn non_regular_files_are_refused_without_blocking() {
    let dir = PageDir::new("fifo");
    nix::unistd::mkfifo(&dir.page("eth0"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let e = refuse(&dir, "eth0"); // would hang if the FIFO were opened blocking
    assert!(matches!(e, WriterError::NotRegularFile { found: "FIFO", .. }), "{e:?}");
    std::fs::create_dir(dir.page("eth1")).unwrap();
    let e = refuse(&dir, "eth1");
    assert!(matches!(e, WriterError::NotRegularFile { found: "directory", .. }), "{e:?}");
}

#[test]
fn a_second_writer_is_refused_while_the_first_runs() {
    let dir = PageDir::new("busy");
    let first = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let e = refuse(&dir, "eth0");
    assert!(matches!(e, WriterError::Busy { pid, .. } if pid == std::process::id()), "{e:?}");
    contains(&e, &["another writer", "stop it first"]);
    drop(first);
    assert!(Writer::create(&dir.options("eth0"), &identity()).is_ok(), "free again after the first stops");
}

#[test]
fn bad_names_and_identities_are_refused() {
    let dir = PageDir::new("names");
    for (name, why) in [
        ("", "empty"),
        ("a/b", "'/'"),
        ("../etc", "'/'"),
        (".hidden", "starts with '.'"),
        ("sp ace", "other than"),
        (&"x".repeat(64), "longer than 63"),
    ] {
        let e = refuse(&dir, name);
        assert!(matches!(e, WriterError::InvalidName { .. }), "{name:?}: {e:?}");
        contains(&e, &[why]);
    }
    let long = Identity { model: "m".repeat(40), ..identity() };
    let e = Writer::create(&dir.options("eth0"), &long).err().expect("refused");
    contains(&e, &["model", "at most 31"]);
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0, "nothing created for bad input");
}

#[test]
fn mode_and_group_are_applied() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = PageDir::new("mode");
    let w = Writer::create(&page_opts(&dir, 0o640, Some(NOBODY)), &identity()).unwrap();
    let meta = std::fs::metadata(w.path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), NOBODY);
    drop(w);
    // Reuse re-applies the configured mode.
    let w = Writer::create(&page_opts(&dir, 0o644, None), &identity()).unwrap();
    assert_eq!(std::fs::metadata(w.path()).unwrap().permissions().mode() & 0o777, 0o644);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir.path).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["nicclock-eth0"]);
}

fn page_opts(dir: &PageDir, mode: u32, group: Option<u32>) -> nicclock::PageOptions {
    nicclock::PageOptions { mode, group, ..dir.options("eth0") }
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let dir = PageDir::new("nodir");
    let opts = nicclock::PageOptions { dir: dir.path.join("missing"), ..dir.options("eth0") };
    let e = Writer::create(&opts, &identity()).err().expect("refused");
    contains(&e, &["page directory", "missing", "No such file", "create it, or choose another"]);
    // A file where the directory should be.
    std::fs::write(dir.path.join("file"), b"").unwrap();
    let opts = nicclock::PageOptions { dir: dir.path.join("file"), ..dir.options("eth0") };
    let e = Writer::create(&opts, &identity()).err().expect("refused");
    contains(&e, &["page directory", "is not a directory"]);
}

#[test]
fn a_readers_shared_flock_on_the_page_does_not_stop_a_writer() {
    use nix::fcntl::{Flock, FlockArg};
    let dir = PageDir::new("readerlock");
    drop(Writer::create(&dir.options("eth0"), &identity()).unwrap());
    // What `flock -s PAGE sleep 1000` as any reader does; it used to make the writer exit "busy".
    let file = std::fs::File::open(dir.page("eth0")).unwrap();
    let shared = Flock::lock(file, FlockArg::LockSharedNonblock).map_err(|(_, e)| e).unwrap();
    let w = Writer::create(&dir.options("eth0"), &identity()).expect("a reader's lock is not the writer's");
    drop(w);
    let exclusive = Flock::lock(shared.unlock().unwrap(), FlockArg::LockExclusiveNonblock);
    assert!(exclusive.is_ok(), "and the writer takes no lock on the page itself");
    assert!(Writer::create(&dir.options("eth0"), &identity()).is_ok(), "even an exclusive one is harmless");
}

#[test]
fn the_busy_message_names_the_holder() {
    let dir = PageDir::new("holder");
    let _first = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let e = refuse(&dir, "eth0");
    let me = std::process::id().to_string();
    contains(&e, &[&format!("pid {me}, "), "nicclock-eth0", "stop it first"]);
}

#[test]
fn a_mode_letting_group_or_others_write_is_refused() {
    let dir = PageDir::new("openmode");
    for (mode, who) in [
        (0o666, "its group and everyone"),
        (0o777, "its group and everyone"),
        (0o664, "its group"),
        (0o646, "everyone"),
        (0o4644, "setuid"),
    ] {
        let e = Writer::create(&page_opts(&dir, mode, None), &identity()).err().expect("refused");
        assert!(matches!(e, WriterError::UnsafeMode { .. }), "{mode:o}: {e:?}");
        contains(&e, &[&format!("{mode:o}"), who, "forge"]);
    }
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0, "nothing created");
    assert!(Writer::create(&page_opts(&dir, 0o600, None), &identity()).is_ok());
}

#[test]
fn an_unsafe_lock_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    assert!(nix::unistd::geteuid().is_root(), "this test chowns a directory to nobody and must run as root");
    let dir = PageDir::new("lockdir");
    let opts = |lock_dir: &std::path::Path| nicclock::PageOptions {
        lock_dir: lock_dir.into(),
        ..dir.options("eth0")
    };
    let cases = PageDir::new("lockdir-cases"); // removed with everything in it, whatever happens
    let open = cases.path.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let foreign = cases.path.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(NOBODY), Some(NOBODY)).unwrap();
    let link = cases.path.join("link");
    symlink(dir.lock_dir(), &link).unwrap();
    std::fs::create_dir(dir.lock_dir()).unwrap();
    for (lock_dir, words) in [
        (&open, "may be written by its group or by others (mode 777)"),
        (&foreign, "owned by uid 65534"),
        (&link, "symbolic link"),
    ] {
        let e = Writer::create(&opts(lock_dir), &identity()).err().expect("refused");
        assert!(matches!(e, WriterError::LockDir { .. }), "{}: {e:?}", lock_dir.display());
        contains(&e, &[words, "lock directory"]);
    }
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0, "no page without a lock");
    // Absent: created owner-only-writable.
    let fresh = opts(&cases.path.join("fresh"));
    drop(Writer::create(&fresh, &identity()).unwrap());
    let mode = std::fs::metadata(&fresh.lock_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o022, 0, "{mode:o}");
}

#[test]
fn an_unlinked_page_is_noticed() {
    let dir = PageDir::new("unlinked");
    let w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.check_linked().expect("linked while nobody touched it");
    let reader = nicclock::Clock::open_in(&dir.path, "eth0").unwrap();
    std::fs::remove_file(dir.page("eth0")).unwrap();
    let e = w.check_linked().expect_err("an unlinked page is noticed");
    assert!(matches!(e, WriterError::Unlinked { .. }), "{e:?}");
    contains(&e, &["nicclock-eth0", "removed", "STOPPED"]);
    drop(w);
    assert_eq!(reader.status().unwrap(), nicclock::Status::Stopped, "the orphan's readers are told");
    assert!(Writer::create(&dir.options("eth0"), &identity()).is_ok(), "a new writer makes a new page");
}

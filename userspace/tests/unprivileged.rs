//! Security and isolation: a reader running as `nobody` reads the root-owned page but cannot open it
//! for writing, map it writable, truncate, chmod or unlink it; it still sleeps on and receives events;
//! a 0600 page is refused with a clear error; and a SIGSTOPped reader does not hold the writer up.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{assert_child_ok, env_var, identity, run_child, spawn_child, system_snapshot, PageDir, NOBODY};
use nicclock::{Clock, Error, EventKind, EventWait, Status, Urgency, Writer};

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child_entry() {
    match common::role().as_deref() {
        Some("attack") => attack(),
        Some("unreadable") => unreadable(),
        Some("reader_loop") => reader_loop(),
        other => panic!("unknown role {other:?}"),
    }
}

fn page_from_env() -> (PathBuf, String, PathBuf) {
    let dir = PathBuf::from(env_var("PAGE_DIR"));
    let name = env_var("PAGE_NAME");
    let path = nicclock::page_path(&dir, &name);
    (dir, name, path)
}

fn expect_denied<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>, errnos: &[i32]) {
    match r {
        Ok(v) => panic!("{what} succeeded as uid {}: {v:?}", nix::unistd::getuid()),
        Err(e) => assert!(errnos.contains(&e.raw_os_error().unwrap_or(0)), "{what}: unexpected error {e}"),
    }
    println!("refused: {what}");
}

/// As nobody: every way of changing the page fails; reading and waiting for events work.
fn attack() {
    let (dir, name, path) = page_from_env();
    assert_ne!(nix::unistd::getuid().as_raw(), 0, "the attack must run unprivileged");
    let rw = std::fs::OpenOptions::new().read(true).write(true).open(&path);
    expect_denied("open O_RDWR", rw, &[libc::EACCES]);
    let wo = std::fs::OpenOptions::new().write(true).open(&path);
    expect_denied("open O_WRONLY", wo, &[libc::EACCES]);
    let file = std::fs::File::open(&path).expect("O_RDONLY open is allowed");
    // SAFETY: the mapping is expected to fail; if it did not, it is dropped unused.
    let map_rw = unsafe { memmap2::MmapOptions::new().len(4096).map_mut(&file) };
    expect_denied("mmap PROT_WRITE MAP_SHARED", map_rw.map(|_| ()), &[libc::EACCES]);
    // SAFETY: read-only shared mapping of a 4096-byte file that nobody truncates during the test.
    let map_ro =
        unsafe { memmap2::MmapOptions::new().len(4096).map(&file) }.expect("PROT_READ map is allowed");
    expect_denied("mprotect to PROT_WRITE", map_ro.make_mut().map(|_| ()), &[libc::EACCES]);
    expect_denied("ftruncate", file.set_len(0), &[libc::EINVAL, libc::EBADF]);
    expect_denied(
        "chmod",
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)),
        &[libc::EPERM],
    );
    expect_denied("unlink", std::fs::remove_file(&path), &[libc::EACCES, libc::EPERM]);

    let mut clock = Clock::open_in(&dir, &name).expect("open as reader");
    let now = clock.now().expect("time as nobody");
    assert_eq!(now.status, Status::Locked);
    println!("read: {} ± {} ns", now.time_ns, now.error_bound_ns());
    // The parent posts STEP events until we exit: the shared futex wakes us across uids.
    match clock.wait_event(Some(Duration::from_secs(10))).expect("wait_event as nobody") {
        EventWait::Event(e) => {
            assert_eq!(e.kind, EventKind::Step);
            println!("event: {} step {}", e.seq, e.magnitude);
        }
        other => panic!("no event as nobody: {other:?}"),
    }
}

fn unreadable() {
    let (dir, name, _) = page_from_env();
    match Clock::open_in(&dir, &name) {
        Err(e @ Error::PermissionDenied { .. }) => println!("refused: {e}"),
        other => panic!("expected PermissionDenied, got {:?}", other.map(|_| "a clock")),
    }
}

/// Reads in a tight loop until told the writer is done, checking every snapshot is whole.
fn reader_loop() {
    let (dir, name, _) = page_from_env();
    let target: u64 = env_var("TARGET_COUNT").parse().unwrap();
    let clock = Clock::open_in(&dir, &name).unwrap();
    println!("ready");
    let mut reads = 0u64;
    loop {
        let s = clock.snapshot().expect("snapshot");
        assert_eq!(s.servo.offset_ns, -(s.update_count as i64), "torn snapshot");
        reads += 1;
        if s.update_count >= target {
            break;
        }
    }
    println!("reads {reads}");
}

fn page_env(dir: &PageDir, name: &str) -> Vec<(&'static str, String)> {
    vec![("PAGE_DIR", dir.path.display().to_string()), ("PAGE_NAME", name.to_string())]
}

#[test]
fn an_unprivileged_reader_reads_but_cannot_write_the_page() {
    let dir = PageDir::new("attack");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 1_000));
    let before = std::fs::read(dir.page("eth0")).unwrap();
    let child = std::thread::spawn({
        let env = page_env(&dir, "eth0");
        move || run_child("attack", &env, Some(NOBODY))
    });
    let mut step = 0;
    while !child.is_finished() {
        w.publish(&system_snapshot(Status::Locked, 1_000));
        step += 1;
        w.post(EventKind::Step, Urgency::Notice, step, 0, 0);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = assert_child_ok("attack", &child.join().unwrap());
    for what in
        ["open O_RDWR", "open O_WRONLY", "mmap PROT_WRITE", "mprotect", "ftruncate", "chmod", "unlink"]
    {
        assert!(out.contains(&format!("refused: {what}")), "{what} not checked:\n{out}");
    }
    assert!(out.contains("read: ") && out.contains("event: "), "{out}");
    let after = std::fs::read(dir.page("eth0")).unwrap();
    assert_eq!((after.len(), &after[..256]), (4096, &before[..256]), "header untouched");
}

#[test]
fn an_unreadable_page_is_refused_with_a_clear_error() {
    let dir = PageDir::new("unreadable");
    let opts = nicclock::PageOptions { mode: 0o600, ..dir.options("eth0") };
    let mut w = Writer::create(&opts, &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 1_000));
    let out = assert_child_ok("unreadable", &run_child("unreadable", &page_env(&dir, "eth0"), Some(NOBODY)));
    assert!(out.contains("permission denied") && out.contains("--page-group"), "{out}");
}

#[test]
fn a_sigstopped_reader_does_not_hold_up_the_writer() {
    const UPDATES: u64 = 200_000;
    let dir = PageDir::new("sigstop");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Locked, 1_000);
    let mut publish = |w: &mut Writer, n: u64| {
        snap.servo.offset_ns = -(n as i64); // readers check offset == -update_count
        w.publish(&snap);
    };
    publish(&mut w, 1);
    let mut env = page_env(&dir, "eth0");
    env.push(("TARGET_COUNT", (UPDATES + 1).to_string()));
    let mut child = spawn_child("reader_loop", &env, Some(NOBODY));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap() == "ready"), "reader did not start");
    std::thread::sleep(Duration::from_millis(50)); // let it spin in its read loop
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();

    // A semaphore-guarded segment would block here forever if the reader stopped inside its
    // critical section; the seqlock writer never waits.
    let start = Instant::now();
    for n in 2..=UPDATES + 1 {
        publish(&mut w, n);
        assert!(start.elapsed() < Duration::from_secs(30), "writer held up: {n} updates in 30 s");
    }
    let rate = UPDATES as f64 / start.elapsed().as_secs_f64();
    common::report(&format!(
        "sigstop: writer made {UPDATES} updates while the reader was stopped, {rate:.0}/s"
    ));

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "reader failed after SIGCONT: {status}: {rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("reads ")), "{rest:?}");
}

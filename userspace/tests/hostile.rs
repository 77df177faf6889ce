//! Hostile pages against all three readers (Rust library, C library, `nicclock` CLI): files that are
//! not pages, bumped ABIs, stuck writers, corrupt rings, dead writers, mappings from another boot
//! or ahead of the counter, absurd rates. Each must give a clear error, its documented code, no
//! hang (every reader runs under a deadline and is killed past it), no panic and never a time.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{env_var, identity, role, spawn_child, system_snapshot, PageDir};
use nicclock::page::futex;
use nicclock::{counter, Clock, Error, EventKind, EventWait, Snapshot, Status, Urgency, Writer};

const CLI: &str = env!("CARGO_BIN_EXE_nicclock");
/// No reader may take longer than this on any case; past it the reader is killed and the test fails.
const LIMIT: Duration = Duration::from_secs(20);

const EBADPAGE: i32 = -3;
const EABI: i32 = -4;
const ESTALE: i32 = -5;
const EBUSY: i32 = -9;
const EINVAL: i32 = -12;

// ------------------------------------------------------------------------------------------
// Running readers under a deadline

/// How a child process ended.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    wall: Duration,
    /// CPU time it used (user + system): a reader that spins shows here.
    cpu: Duration,
}

impl Finished {
    fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    fn assert_clean(&self, what: &str) {
        assert!(self.signal.is_none(), "{what} died of signal {:?}: {self:?}", self.signal);
        assert!(
            !self.stderr.contains("panicked") && self.code != Some(101),
            "{what} panicked: {}",
            self.stderr
        );
    }
}

/// A child started with its output collected in the background.
struct Running {
    pid: i32,
    started: Instant,
    done: mpsc::Receiver<(i32, Duration)>,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

fn start(cmd: &mut Command) -> Running {
    let mut child =
        common::retry_busy(|| cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn());
    let pid = child.id() as i32;
    let collect = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let (tx, done) = mpsc::channel();
    // wait4, not Child::wait: it also reports the CPU time the child used.
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our child, not reaped by anyone else; both pointers are valid.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        let _ = tx.send((status, tv(usage.ru_utime) + tv(usage.ru_stime)));
        drop(child);
    });
    Running { pid, started: Instant::now(), done, stdout, stderr }
}

impl Running {
    /// Waits for the child's exit; kills it and fails the test if that takes longer than LIMIT.
    fn finish(self, what: &str) -> Finished {
        let left = LIMIT.saturating_sub(self.started.elapsed());
        let (status, cpu) = match self.done.recv_timeout(left) {
            Ok(r) => r,
            Err(_) => {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                let _ = self.done.recv();
                panic!("{what} hung: still running after {LIMIT:?}, killed");
            }
        };
        let wall = self.started.elapsed();
        let exit = std::process::ExitStatus::from_raw(status);
        let f = Finished {
            code: exit.code(),
            signal: exit.signal(),
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join().unwrap(),
            wall,
            cpu,
        };
        f.assert_clean(what);
        f
    }

    /// Waits until the child sleeps in FUTEX_WAIT (its wchan says so): a reader blocked for events.
    fn wait_blocked(&self, what: &str) {
        wait_futex_sleep(&format!("/proc/{}/wchan", self.pid), what);
    }
}

/// Polls a task's wchan until it sleeps on a futex; the deadline is LIMIT.
fn wait_futex_sleep(wchan: &str, what: &str) {
    let start = Instant::now();
    loop {
        let w = std::fs::read_to_string(wchan).unwrap_or_default();
        if w.contains("futex") {
            return;
        }
        assert!(start.elapsed() < LIMIT, "{what} never blocked in FUTEX_WAIT (wchan {w:?})");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run(cmd: &mut Command, what: &str) -> Finished {
    start(cmd).finish(what)
}

/// Runs `f` on a thread; fails the test if it does not return within LIMIT.
fn in_time<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT).unwrap_or_else(|_| panic!("{what} hung: no answer after {LIMIT:?}"))
}

fn cli(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(CLI);
    cmd.arg("--dir").arg(dir).args(args);
    cmd
}

// ------------------------------------------------------------------------------------------
// The C reader (tests/c/hostile_reader.c) over the shared library

/// Where cargo put this build's libnicclock.so (next to the test binary).
fn lib_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().to_path_buf()
}

fn c_reader() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let lib = lib_dir();
        assert!(lib.join("libnicclock.so").exists(), "libnicclock.so not built next to {}", lib.display());
        let dir = std::env::temp_dir().join(format!("nicclock-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("hostile_reader");
        let out = Command::new("cc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(crate_dir.join("include"))
            .arg(crate_dir.join("tests/c/hostile_reader.c"))
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(&lib)
            .arg("-lnicclock")
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .output()
            .expect("run cc");
        assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
        exe
    })
}

fn c(dir: &Path, name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(c_reader());
    // cargo's LD_LIBRARY_PATH (searched before the binary's RUNPATH) also lists target/debug, where
    // an older `cargo build` may have left an older libnicclock.so: name this build's.
    cmd.arg(dir).arg(name).args(args).env("LD_LIBRARY_PATH", lib_dir());
    cmd
}

// ------------------------------------------------------------------------------------------
// Pages

/// A live page (its writer held, never dropped, so it does not say STOPPED) mapping the system
/// clock now, updated every 10 s (max age 30 s: fresh for the whole test unless a case says).
fn live(dir: &PageDir, name: &str) -> Writer {
    let mut w = Writer::create(&dir.options(name), &identity()).unwrap();
    w.publish(&fresh());
    w
}

fn fresh() -> Snapshot {
    Snapshot { update_interval_ns: 10_000_000_000, ..system_snapshot(Status::Locked, 1_900) }
}

/// Writes `bytes` at `offset` of the page file (shared with every mapping of it).
fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// A reading that looks like a time: digits with a decimal point or 19 digits of ns.
fn prints_a_time(out: &str) -> bool {
    out.lines().any(|l| {
        l.starts_with("time ") && l.as_bytes().get(5).is_some_and(u8::is_ascii_digit)
            || l.starts_with("time        2")
            || l.split_whitespace()
                .next()
                .is_some_and(|w| w.len() >= 19 && w.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Every reader refuses page `name`: the Rust library (open or now()) with an error saying `words`,
/// the C library with `code`, and `nicclock now`, `status` and `events` with exit 1 and the words.
fn all_refuse(dir: &Path, name: &str, code: i32, words: &[&str]) {
    let says = |text: &str, who: &str| {
        for w in words {
            assert!(text.contains(w), "{who} on {name}: {w:?} missing from:\n{text}");
        }
    };
    let (d, n) = (dir.to_path_buf(), name.to_string());
    let rust = in_time(&format!("Rust reader on {name}"), move || {
        Clock::open_in(&d, &n).and_then(|c| c.now()).map_err(|e| e.to_string())
    });
    match rust {
        Ok(now) => panic!("the Rust reader read a time from {name}: {now:?}"),
        Err(msg) => says(&msg, "Rust reader"),
    }
    // Waiting for sync ends with the same error, at once: the page will not heal by itself.
    let (d, n) = (dir.to_path_buf(), name.to_string());
    let waited = in_time(&format!("Rust wait_until on {name}"), move || {
        let wait = Some(Duration::from_secs(10));
        Clock::open_in(&d, &n)
            .and_then(|c| c.wait_until(nicclock::SyncCondition::locked_within(1_000), wait))
            .map_err(|e| e.to_string())
    });
    match waited {
        Ok(w) => panic!("wait_until on {name} did not fail: {w:?}"),
        Err(msg) => says(&msg, "Rust wait_until"),
    }

    for args in [&["now"][..], &["until", "1000", "10000"], &["after", "10000"]] {
        let f = run(&mut c(dir, name, args), "C reader");
        assert_eq!(f.code, Some(1), "C reader {args:?} on {name}: {f:?}");
        assert!(
            f.stdout.contains(&format!(" {code} ")),
            "C reader {args:?} on {name}: want code {code}: {}",
            f.stdout
        );
        says(&f.stdout, "C reader");
        assert!(!prints_a_time(&f.stdout), "C reader printed a time from {name}: {}", f.stdout);
    }

    for args in [
        &["now"][..],
        &["events", "--timeout", "3"],
        &["status"],
        &["wait", "--max-error", "1us", "--timeout", "10"],
    ] {
        let mut all = vec!["--page", name];
        all.extend_from_slice(args);
        let f = run(&mut cli(dir, &all), "nicclock");
        assert!(!prints_a_time(&f.stdout), "nicclock {args:?} printed a time from {name}: {}", f.stdout);
        if args[0] == "status" && !f.stdout.is_empty() {
            // status describes a page it can open: its time line gives the reason, and it exits 1
            // because the page gives no usable time.
            assert_eq!(f.code, Some(1), "nicclock status on {name}: {}", f.both());
            assert!(f.stdout.contains("time        unavailable"), "nicclock status on {name}: {}", f.stdout);
            says(&f.stdout, "nicclock status");
        } else {
            assert_eq!(f.code, Some(1), "nicclock {args:?} on {name}: {}", f.both());
            says(&f.stderr, &format!("nicclock {args:?}"));
        }
    }
}

// ------------------------------------------------------------------------------------------
// Cases

#[test]
fn files_that_are_not_pages_are_named_and_refused() {
    let dir = PageDir::new("hostile-files");
    std::fs::write(dir.page("empty"), b"").unwrap();
    all_refuse(&dir.path, "empty", EBADPAGE, &["0 bytes, a page is 4096"]);
    std::fs::write(dir.page("short"), [0x41u8; 100]).unwrap();
    all_refuse(&dir.path, "short", EBADPAGE, &["100 bytes, a page is 4096"]);
    std::fs::write(dir.page("big"), vec![0u8; 8192]).unwrap();
    all_refuse(&dir.path, "big", EBADPAGE, &["8192 bytes, a page is 4096"]);
    let mut seed = 0x1234_5678_9abc_def1u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    std::fs::write(dir.page("random"), &random).unwrap();
    all_refuse(&dir.path, "random", EBADPAGE, &["is not a nicclock time page", "not \"NICCLOCK\""]);

    nix::unistd::mkfifo(&dir.page("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    all_refuse(&dir.path, "fifo", EBADPAGE, &["it is a FIFO"]);
    std::fs::create_dir(dir.page("dir")).unwrap();
    all_refuse(&dir.path, "dir", EBADPAGE, &["it is a directory"]);
    let _w = live(&dir, "real");
    std::os::unix::fs::symlink(dir.page("real"), dir.page("link")).unwrap();
    all_refuse(&dir.path, "link", EBADPAGE, &["symbolic link"]);

    // A name that could leave the directory is a bad argument for the C library.
    let f = run(&mut c(&dir.path, "../x", &["now"]), "C reader");
    assert!(f.stdout.starts_with(&format!("open {EINVAL} invalid page name")), "{}", f.stdout);
}

#[test]
fn a_valid_header_over_random_contents_never_gives_a_time() {
    let dir = PageDir::new("hostile-random-body");
    let template = {
        let _w = live(&dir, "template");
        std::fs::read(dir.page("template")).unwrap()
    };
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..50 {
        let mut page = template.clone();
        for b in &mut page[256..] {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        page[256] &= !1; // an even sequence: the contents are what is tested, not a stuck writer
        let name = format!("r{i}");
        std::fs::write(dir.page(&name), &page).unwrap();
        let (d, n) = (dir.path.clone(), name.clone());
        let got = in_time("Rust reader", move || Clock::open_in(&d, &n).and_then(|c| c.now()));
        assert!(got.is_err(), "random page {i} read as {got:?}");
    }
    let f = run(&mut cli(&dir.path, &["--page", "r0", "now"]), "nicclock");
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.stdout.is_empty() && f.stderr.starts_with("nicclock: "), "{}", f.both());
}

#[test]
fn a_bumped_abi_major_is_refused() {
    let dir = PageDir::new("hostile-abi");
    let _w = live(&dir, "eth0");
    poke(&dir.page("eth0"), 8, &2u16.to_le_bytes());
    all_refuse(&dir.path, "eth0", EABI, &["page ABI 2.x", "this reader speaks 1.x"]);
}

#[test]
fn another_boots_page_is_refused_and_a_minor_0_page_is_judged_by_its_mapping() {
    let dir = PageDir::new("hostile-boot");
    let w = live(&dir, "eth0");
    let ours = nicclock::boot::current().unwrap();
    let h = &w.page().header;
    assert_eq!(h.boot_id.each_ref().map(|b| b.load(Relaxed)), ours, "the writer stamps this boot");
    for (i, b) in h.boot_id.iter().enumerate() {
        b.store(ours[i] ^ 0x5a, Relaxed);
    }
    all_refuse(&dir.path, "eth0", ESTALE, &["belongs to another boot", "start nicclockd"]);
    for b in &h.boot_id {
        b.store(0, Relaxed);
    }
    all_refuse(&dir.path, "eth0", EBADPAGE, &["no boot id"]);

    // Minor 0 (a writer from before boot ids): accepted while its mapping holds up...
    h.abi_minor.store(0, Release);
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    assert_eq!(clock.now().unwrap().status, Status::Locked);
    // ... and refused once it lies ahead of the counter, as a page from before a reboot does.
    let mut ahead = fresh();
    ahead.counter_value += 20_000_000_000; // ticks: seconds ahead whatever the counter
    let mut w = w;
    w.publish(&ahead);
    w.page().header.abi_minor.store(0, Release); // publish() leaves the header alone; keep it 0
    all_refuse(&dir.path, "eth0", EBADPAGE, &["ahead of this machine's counter"]);

    // A writer taking over another boot's page (a page directory on disk) stamps this boot.
    for (i, b) in w.page().header.boot_id.iter().enumerate() {
        b.store(ours[i] ^ 0xa5, Relaxed);
    }
    w.page().header.abi_minor.store(nicclock::abi::ABI_MINOR, Release);
    drop(w);
    let w = live(&dir, "eth0");
    let h = &w.page().header;
    assert_eq!(h.boot_id.each_ref().map(|b| b.load(Relaxed)), ours, "the new writer stamps this boot");
    assert_eq!(h.abi_minor.load(Relaxed), nicclock::abi::ABI_MINOR);
    assert!(Clock::open_in(&dir.path, "eth0").unwrap().now().is_ok());
}

#[test]
fn a_mapping_ahead_of_the_counter_is_refused() {
    let dir = PageDir::new("hostile-ahead");
    let mut w = live(&dir, "eth0");
    let mut snap = fresh();
    // 10 s ahead: the reboot case the outside test found reading LOCKED ± 1.9 µs.
    let ticks_per_s = (1e9 / common::ns_per_tick(snap.counter_kind)) as u64;
    snap.counter_value += 10 * ticks_per_s;
    w.publish(&snap);
    all_refuse(&dir.path, "eth0", EBADPAGE, &["ahead of this machine's counter", "restart nicclockd"]);
    // So far ahead that the time saturates to 1970: the outside test's "LOCKED in 1970".
    snap.counter_value = counter::read(snap.counter_kind).unwrap() + (1 << 62);
    w.publish(&snap);
    all_refuse(&dir.path, "eth0", EBADPAGE, &["ahead of this machine's counter"]);
    // An update stamped after the clock's own time is the same lie.
    let mut snap = fresh();
    snap.updated_tai_ns += 10_000_000_000;
    w.publish(&snap);
    all_refuse(&dir.path, "eth0", EBADPAGE, &["ahead of this machine's counter"]);
}

#[test]
fn an_absurd_counter_period_is_refused_at_open_and_at_every_read() {
    let dir = PageDir::new("hostile-period");
    let mut w = live(&dir, "eth0");
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    for period in [0, 1, u64::MAX, 1000 << 48] {
        w.publish(&Snapshot { counter_period: period, ..fresh() });
        let err = clock.now().unwrap_err();
        assert!(matches!(err, Error::ImplausiblePeriod { .. }), "period {period}: {err:?}");
        all_refuse(&dir.path, "eth0", EBADPAGE, &["a rate no real counter has"]);
    }
    // The range depends on the counter: 0.5 ns per tick is a TSC's, never CLOCK_MONOTONIC_RAW's.
    let raw = |ns_per_tick: f64| {
        let s = counter::sample_clock(nicclock::CounterKind::MonotonicRaw, libc::CLOCK_REALTIME, 3);
        let tai = s.clock_ns + common::TAI_UTC as u64 * 1_000_000_000;
        Snapshot {
            counter_kind: nicclock::CounterKind::MonotonicRaw,
            counter_value: s.counter,
            counter_period: nicclock::period_from_ns_per_tick(ns_per_tick),
            anchor_tai_ns: tai,
            updated_tai_ns: tai,
            ..fresh()
        }
    };
    w.publish(&raw(1.0));
    assert!(clock.now().is_ok(), "{:?}", clock.now());
    w.publish(&raw(0.5));
    assert!(matches!(clock.now(), Err(Error::ImplausiblePeriod { .. })), "{:?}", clock.now());
}

#[test]
fn an_update_time_beyond_2262_is_corrupt() {
    let dir = PageDir::new("hostile-updated");
    let mut w = live(&dir, "eth0");
    w.publish(&Snapshot { updated_tai_ns: u64::MAX - 3, ..fresh() });
    all_refuse(&dir.path, "eth0", EBADPAGE, &["invalid update time"]);
}

#[test]
fn header_offsets_other_than_the_abis_are_refused() {
    let dir = PageDir::new("hostile-offsets");
    let _w = live(&dir, "eth0");
    poke(&dir.page("eth0"), 16, &300u32.to_le_bytes()); // clock_offset
    all_refuse(
        &dir.path,
        "eth0",
        EBADPAGE,
        &["puts the clock, event control and ring blocks at [300, 512, 1024]"],
    );
}

#[test]
fn a_sequence_stuck_odd_is_a_stuck_writer() {
    let dir = PageDir::new("hostile-odd");
    let w = live(&dir, "eth0");
    w.page().clock.seq.fetch_or(1, Release);
    all_refuse(&dir.path, "eth0", EBUSY, &["mid-update"]);
    // The reader waits the writer out for a second, napping rather than burning the CPU.
    let f = run(&mut cli(&dir.path, &["now"]), "nicclock now");
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.wall >= Duration::from_millis(900), "gave up on the writer after {:?}", f.wall);
    assert!(f.cpu < f.wall / 4, "spun: {:?} of CPU in {:?}", f.cpu, f.wall);
    // Waiting for events, a timeout shorter than that wait still holds.
    let f = run(&mut cli(&dir.path, &["events", "--timeout", "0.3"]), "nicclock events");
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.stderr.contains("no event within 0.3 s"), "{}", f.stderr);
    assert!(f.wall < Duration::from_millis(900), "took {:?} for a 0.3 s timeout", f.wall);
}

#[test]
fn a_huge_ring_head_is_a_corrupt_page() {
    let dir = PageDir::new("hostile-head");
    let w = live(&dir, "eth0");
    let events = &w.page().events;
    let head = events.head.load(Relaxed);
    for huge in [u64::MAX - 5, nicclock::abi::MAX_EVENT_HEAD + 1] {
        events.head.store(huge, Release);
        all_refuse(&dir.path, "eth0", EBADPAGE, &["invalid event ring head"]);
    }

    // A head that turns huge under a reader blocked in events.
    events.head.store(head, Release);
    let cli_reader = start(&mut cli(&dir.path, &["--page", "eth0", "events", "--timeout", "15"]));
    let c_reader = start(&mut c(&dir.path, "eth0", &["events", "15000", "1"]));
    // Waiting for sync within 10 ns (never reached): the CLI gate and the C library.
    let cli_gate =
        start(&mut cli(&dir.path, &["--page", "eth0", "--max-age", "1", "wait", "--max-error", "10ns"]));
    let c_gate = start(&mut c(&dir.path, "eth0", &["until", "10", "-1"]));
    cli_reader.wait_blocked("nicclock events");
    c_reader.wait_blocked("C reader");
    cli_gate.wait_blocked("nicclock wait --max-error");
    c_gate.wait_blocked("C nicclock_wait_until");
    events.head.store(u64::MAX - 323, Release);
    events.futex.fetch_add(1, Release);
    futex::wake_all(&events.futex);
    let f = cli_reader.finish("nicclock events");
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.stderr.contains("invalid event ring head") && !f.both().contains("missed"), "{}", f.both());
    let f = c_reader.finish("C reader");
    assert!(f.stdout.starts_with(&format!("wait {EBADPAGE} ")), "{}", f.stdout);
}

/// Makes the slot of event `number` read 0 ("being written") and, if `publish_head`, the head
/// say `number` exists, then wakes every waiting reader.
fn stick_slot(w: &Writer, number: u64, publish_head: bool) {
    let p = w.page();
    p.ring[((number - 1) % 64) as usize].seq.store(0, Release);
    if publish_head {
        p.events.head.store(number, Release);
    }
    p.events.futex.fetch_add(1, Release);
    futex::wake_all(&p.events.futex);
}

#[test]
fn an_event_slot_stuck_at_zero_wakes_waiting_readers_into_an_error_not_a_spin() {
    let dir = PageDir::new("hostile-slot");
    let w = live(&dir, "eth0");
    let cli_reader = start(&mut cli(&dir.path, &["--page", "eth0", "events", "--timeout", "15"]));
    let c_reader = start(&mut c(&dir.path, "eth0", &["events", "15000", "1"]));
    let (tid_tx, tid_rx) = mpsc::channel();
    let (d, started) = (dir.path.clone(), Instant::now());
    let rust_reader = std::thread::spawn(move || {
        let mut clock = Clock::open_in(&d, "eth0").unwrap();
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        clock.wait_event(Some(Duration::from_secs(15)))
    });
    cli_reader.wait_blocked("nicclock events");
    c_reader.wait_blocked("C reader");
    let tid = tid_rx.recv().unwrap();
    wait_futex_sleep(&format!("/proc/self/task/{tid}/wchan"), "Rust reader");

    let number = w.page().events.head.load(Relaxed) + 1;
    let woken = Instant::now();
    stick_slot(&w, number, true);

    let f = cli_reader.finish("nicclock events");
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.stderr.contains(&format!("event {number}'s ring slot has held 0")), "{}", f.stderr);
    let f2 = c_reader.finish("C reader");
    assert!(f2.stdout.starts_with(&format!("wait {EBUSY} ")), "{}", f2.stdout);
    let got = in_time("Rust reader", move || rust_reader.join().unwrap());
    assert!(matches!(got, Err(Error::EventSlotStuck { found: 0, .. })), "{got:?}");
    let waited = woken.elapsed();
    // Waited for the writer as long as for a writer mid-update, then gave up well before the
    // 15 s timeout, sleeping rather than spinning.
    assert!(waited >= Duration::from_millis(900), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(10) && started.elapsed() < LIMIT);
    for (who, f) in [("nicclock", &f), ("C reader", &f2)] {
        assert!(f.cpu < f.wall / 4, "{who} spun: {:?} of CPU in {:?}", f.cpu, f.wall);
    }
}

#[test]
fn history_over_a_slot_left_mid_write_skips_it_or_fails_but_never_spins() {
    let dir = PageDir::new("hostile-history");
    let mut w = live(&dir, "eth0");
    for i in 0..70 {
        w.post(EventKind::Step, Urgency::Notice, i, 0, 0);
    }
    let head = w.page().events.head.load(Relaxed);
    // The writer was killed while posting event head + 1: it had zeroed the oldest slot.
    stick_slot(&w, head + 1, false);

    let f = run(
        &mut cli(&dir.path, &["--page", "eth0", "events", "--history", "--count", "10", "--timeout", "5"]),
        "nicclock",
    );
    assert_eq!(f.code, Some(0), "{}", f.both());
    let lines: Vec<&str> = f.stdout.lines().collect();
    assert!(lines[0].starts_with("missed 1 events"), "{}", f.stdout);
    assert_eq!(lines.iter().filter(|l| l.contains("STEP")).count(), 10, "{}", f.stdout);
    assert!(f.cpu < f.wall / 4, "spun: {:?} of CPU in {:?}", f.cpu, f.wall);

    let d = dir.path.clone();
    let got = in_time("Rust reader", move || {
        let mut clock = Clock::open_in(&d, "eth0").unwrap();
        clock.rewind_events();
        let first = clock.wait_event(Some(Duration::from_secs(5)));
        (first, clock.wait_event(Some(Duration::from_secs(5))))
    });
    assert_eq!(got.0.unwrap(), EventWait::Missed(1));
    assert!(matches!(got.1.unwrap(), EventWait::Event(e) if e.seq == head - 62));

    // The timeout holds even while a stuck slot is being waited for.
    let f =
        run(&mut cli(&dir.path, &["--page", "eth0", "events", "--history", "--timeout", "0.3"]), "nicclock");
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.stderr.contains("no event within 0.3 s"), "{}", f.stderr);
    assert!(f.wall < Duration::from_millis(900), "took {:?} for a 0.3 s timeout", f.wall);

    // A slot in the middle of the ring at 0 is no writer's doing: an error after the same wait.
    stick_slot(&w, head - 10, false);
    let f = run(
        &mut cli(&dir.path, &["--page", "eth0", "events", "--history", "--count", "64", "--timeout", "5"]),
        "nicclock",
    );
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.stderr.contains(&format!("event {}'s ring slot has held 0", head - 10)), "{}", f.stderr);
    assert!(f.cpu < f.wall / 4, "spun: {:?} of CPU in {:?}", f.cpu, f.wall);
}

/// Child role: a writer publishing every 50 ms (max age 1 s) until killed.
fn writer_child() {
    let dir = PathBuf::from(env_var("PAGE_DIR"));
    let opts = nicclock::PageOptions { dir, ..nicclock::PageOptions::new("eth0") };
    let mut w = Writer::create(&opts, &identity()).unwrap();
    let snap = || Snapshot { update_interval_ns: 50_000_000, ..system_snapshot(Status::Locked, 1_000) };
    w.publish(&snap());
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_millis(50));
        w.publish(&snap());
    }
}

#[test]
#[ignore = "entry point of the child processes the tests start"]
fn child_entry() {
    match role().as_deref() {
        Some("writer") => writer_child(),
        other => panic!("unknown role {other:?}"),
    }
}

#[test]
fn readers_blocked_in_events_or_waiting_for_sync_notice_a_killed_writer() {
    let dir = PageDir::new("hostile-dead");
    let mut writer = spawn_child("writer", &[("PAGE_DIR", dir.path.display().to_string())], None);
    // The test harness prints its own lines first; the writer's "ready" follows its first update.
    let mut out = BufReader::new(writer.stdout.take().unwrap());
    let mut line = String::new();
    while line != "ready\n" {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the writer child exited before it was ready");
    }

    let cli_reader = start(&mut cli(&dir.path, &["--page", "eth0", "--max-age", "1", "events"]));
    let c_reader = start(&mut c(&dir.path, "eth0", &["events", "-1", "1"]));
    let (tid_tx, tid_rx) = mpsc::channel();
    let d = dir.path.clone();
    let rust_reader = std::thread::spawn(move || {
        let mut clock = Clock::open_in(&d, "eth0").unwrap();
        clock.set_max_age(Duration::from_secs(1));
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        clock.wait_event(None)
    });
    // Waiting for sync within 10 ns (never reached): the CLI gate and the C library.
    let cli_gate =
        start(&mut cli(&dir.path, &["--page", "eth0", "--max-age", "1", "wait", "--max-error", "10ns"]));
    let c_gate = start(&mut c(&dir.path, "eth0", &["until", "10", "-1"]));
    cli_reader.wait_blocked("nicclock events");
    c_reader.wait_blocked("C reader");
    cli_gate.wait_blocked("nicclock wait --max-error");
    c_gate.wait_blocked("C nicclock_wait_until");
    wait_futex_sleep(&format!("/proc/self/task/{}/wchan", tid_rx.recv().unwrap()), "Rust reader");

    writer.kill().unwrap(); // SIGKILL: no STOPPED status, no event, nothing but silence
    writer.wait().unwrap();
    let killed = Instant::now();
    let f = cli_reader.finish("nicclock events");
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.stderr.contains("time page is stale") && f.stderr.contains("was killed"), "{}", f.stderr);
    let f = c_reader.finish("C reader");
    assert!(f.stdout.starts_with(&format!("wait {ESTALE} time page is stale")), "{}", f.stdout);
    let f = cli_gate.finish("nicclock wait --max-error");
    assert_eq!(f.code, Some(1), "{}", f.both());
    assert!(f.stderr.contains("time page is stale") && f.stderr.contains("was killed"), "{}", f.stderr);
    let f = c_gate.finish("C nicclock_wait_until");
    assert!(f.stdout.starts_with(&format!("until {ESTALE} time page is stale")), "{}", f.stdout);
    let got = in_time("Rust reader", move || rust_reader.join().unwrap());
    assert!(matches!(got, Err(Error::Stale { .. })), "{got:?}");
    assert!(killed.elapsed() < Duration::from_secs(8), "noticed {:?} after the kill", killed.elapsed());
}

//! Shared test helpers: private page directories, realistic snapshots of the system clock, and
//! child processes (this test binary re-executed, optionally as `nobody`) for multi-process tests.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nicclock::{
    counter, period_from_ns_per_tick, CounterKind, Identity, Leap, PageOptions, Reference, ReferenceKind,
    ServoFigures, Snapshot, Status, UtcOffsetSource,
};

pub const NOBODY: u32 = 65534;
pub const TAI_UTC: i32 = 37;

/// A fresh directory for pages (mode 0755 so `nobody` can look up pages in it), removed on drop.
pub struct PageDir {
    pub path: PathBuf,
}

impl PageDir {
    pub fn new(tag: &str) -> Self {
        let base = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let path = PathBuf::from(format!("{base}/nicclock-test-{tag}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir(&path).expect("create a new page dir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod page dir");
        Self { path }
    }

    pub fn options(&self, name: &str) -> PageOptions {
        PageOptions { dir: self.path.clone(), lock_dir: self.lock_dir(), ..PageOptions::new(name) }
    }

    /// The writers' lock directory for this page directory (a sibling, made by the first writer).
    pub fn lock_dir(&self) -> PathBuf {
        PathBuf::from(format!("{}.locks", self.path.display()))
    }

    pub fn page(&self, name: &str) -> PathBuf {
        nicclock::page_path(&self.path, name)
    }
}

impl Drop for PageDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_dir_all(self.lock_dir());
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn identity() -> Identity {
    Identity {
        model: "82576".into(),
        pci_address: "0000:01:00.0".into(),
        clock_id: Identity::eui64_from_mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
    }
}

/// The counter's rate against CLOCK_REALTIME, measured once per test process over 50 ms.
pub fn ns_per_tick(kind: CounterKind) -> f64 {
    static RATE: OnceLock<(CounterKind, f64)> = OnceLock::new();
    let (k, rate) = *RATE.get_or_init(|| {
        let a = counter::sample_clock(kind, libc::CLOCK_REALTIME, 5);
        std::thread::sleep(Duration::from_millis(50));
        let b = counter::sample_clock(kind, libc::CLOCK_REALTIME, 5);
        (kind, (b.clock_ns - a.clock_ns) as f64 / (b.counter - a.counter) as f64)
    });
    assert_eq!(k, kind, "one counter kind per test process");
    rate
}

/// CLOCK_REALTIME in ns.
pub fn realtime_ns() -> u64 {
    counter::sample_clock(CounterKind::MonotonicRaw, libc::CLOCK_REALTIME, 1).clock_ns
}

/// A snapshot mapping the system clock (as TAI = UTC + 37 s) at the current counter value.
pub fn system_snapshot(status: Status, error_bound_ns: u64) -> Snapshot {
    let kind = counter::best_available();
    let rate = ns_per_tick(kind);
    let s = counter::sample_clock(kind, libc::CLOCK_REALTIME, 5);
    let tai = s.clock_ns + TAI_UTC as u64 * 1_000_000_000;
    Snapshot {
        counter_kind: kind,
        counter_value: s.counter,
        counter_period: period_from_ns_per_tick(rate),
        anchor_tai_ns: tai,
        error_bound_ns,
        error_growth_ppt: 10_000_000,
        status,
        leap: Leap::None,
        leap_tai_s: 0,
        tai_utc_offset_s: TAI_UTC,
        updated_tai_ns: tai,
        update_interval_ns: 100_000_000,
        update_count: 0,
        servo: ServoFigures { offset_ns: -23, freq_ppt: 100_000, delay_ns: 500, state: 2 },
        reference: Default::default(),
        estimate: nicclock::Estimate { error_ns: error_bound_ns / 4, growth_ppt: 1_000_000 },
        epoch: 0,
    }
}

/// Name of the ignored test that child processes run; each test file defines it.
/// The reference identity of a PTP slave of ptp4l's grandmaster 001b21.fffe.123456, one hop away,
/// in SLAVE, with a valid UTC offset and a leap second inserted at the end of the day announced.
pub fn ptp_reference() -> Reference {
    use nicclock::abi::{
        PTP_FLAG_LEAP61, PTP_FLAG_PTP_TIMESCALE, PTP_FLAG_UTC_OFFSET_VALID, PTP_PORT_STATE_SLAVE,
    };
    Reference {
        kind: ReferenceKind::Ptp,
        gm_identity: [0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56],
        steps_removed: 1,
        port_state: PTP_PORT_STATE_SLAVE,
        flags: PTP_FLAG_UTC_OFFSET_VALID | PTP_FLAG_PTP_TIMESCALE | PTP_FLAG_LEAP61,
        utc_offset_source: UtcOffsetSource::Reference,
        gm_clock_accuracy: 0x21,
        gm_accuracy_ns: 100,
    }
}

/// [`system_snapshot`] as published by a PTP slave ([`ptp_reference`]), updates due every 10 s.
pub fn ptp_snapshot(status: Status, error_bound_ns: u64) -> Snapshot {
    Snapshot {
        update_interval_ns: 10_000_000_000,
        reference: ptp_reference(),
        ..system_snapshot(status, error_bound_ns)
    }
}

pub const CHILD_ENTRY: &str = "child_entry";
pub const ROLE_VAR: &str = "NICCLOCK_TEST_ROLE";

/// This test binary, copied into a world-readable directory when `nobody` must execute it.
fn exe_for(uid: Option<u32>) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    match uid {
        None => exe,
        Some(_) => world_executable(&exe),
    }
}

/// A copy of `exe` that any user can execute (the checkout may sit below a 0700 home directory).
pub fn world_executable(exe: &Path) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_copier = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // One shared directory, refreshed when the build is newer: no per-run copies pile up in /tmp.
    let dir = PathBuf::from("/tmp/nicclock-test-bin");
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::symlink_metadata(&dir).unwrap().uid();
    assert_eq!(owner, nix::unistd::geteuid().as_raw(), "{} belongs to uid {owner}: remove it", dir.display());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join(exe.file_name().unwrap());
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&copy) < modified(exe) {
        let temp = dir.join(format!(
            ".{}.{}.{}",
            exe.file_name().unwrap().to_string_lossy(),
            std::process::id(),
            unique()
        ));
        std::fs::copy(exe, &temp).expect("copy executable");
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&temp, &copy).unwrap();
    }
    copy
}

/// A command that re-runs this test binary's `child_entry` with `role`, as `uid` (and its gid) if given.
pub fn child_command(role: &str, env: &[(&str, String)], uid: Option<u32>) -> Command {
    if uid.is_some() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test drops to an unprivileged uid for its reader and must run as root (the CI does)"
        );
    }
    let mut cmd = Command::new(exe_for(uid));
    cmd.args(["--ignored", "--exact", CHILD_ENTRY, "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd
}

pub fn run_child(role: &str, env: &[(&str, String)], uid: Option<u32>) -> Output {
    retry_busy(|| child_command(role, env, uid).output())
}

pub fn spawn_child(role: &str, env: &[(&str, String)], uid: Option<u32>) -> Child {
    retry_busy(|| child_command(role, env, uid).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn())
}

/// Runs `start` again while exec fails with ETXTBSY: a child another test thread forked while our
/// freshly copied executable was still open for writing holds that fd until its own exec.
pub fn retry_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> T {
    for _ in 0..100 {
        match start() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => return other.expect("start child process"),
        }
    }
    panic!("executable stayed busy (ETXTBSY) for 1 s")
}

/// Asserts a child succeeded, showing its output otherwise.
pub fn assert_child_ok(role: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {role} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The role this process was started for, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

pub fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child needs {name}"))
}

/// Prints a measured figure so it shows in `cargo test` output even when the test passes (the
/// harness captures `println!`, not direct writes to the stderr handle).
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

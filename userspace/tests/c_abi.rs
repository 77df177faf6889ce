//! The C side: `include/nicclock.h` compiled by cc (C11) and c++ and checked field by field and
//! constant by constant against the Rust ABI; the C camera example built against the library
//! (shared and static) reading a page published by the test writer, events included.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{identity, ptp_snapshot, realtime_ns, system_snapshot, PageDir, TAI_UTC};
use nicclock::{EventKind, Status, Urgency, Writer};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put libnicclock.{so,a} for this test build (next to the test binary).
fn lib_dir() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    assert!(deps.join("libnicclock.so").exists(), "libnicclock.so not built next to {}", deps.display());
    deps
}

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nicclock-c-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn compile(compiler: &str, args: &[&str]) {
    let out =
        Command::new(compiler).args(args).output().unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(out.status.success(), "{compiler} {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn c_struct(rust: &str) -> &'static str {
    match rust {
        "Header" => "struct nicclock_header",
        "ClockData" => "struct nicclock_clock_data",
        "EventControl" => "struct nicclock_event_control",
        "EventSlot" => "struct nicclock_event_slot",
        "Page" => "struct nicclock_page",
        "HistoryEntry" => "struct nicclock_history_entry",
        other => panic!("no C struct for {other}"),
    }
}

#[test]
fn the_header_matches_the_rust_abi_field_by_field() {
    let layout = nicclock::abi::layout_table();
    let mut constants = nicclock::abi::constant_table();
    constants.extend(nicclock::ffi::error_code_table());

    let mut c =
        String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"nicclock.h\"\nint main(void) {\n");
    for (s, f, _, _) in &layout {
        let cs = c_struct(s);
        c += &format!("  printf(\"{s}.{f} %zu %zu\\n\", offsetof({cs}, {f}), sizeof((({cs} *)0)->{f}));\n");
    }
    for s in ["Header", "ClockData", "EventControl", "EventSlot", "HistoryEntry", "Page"] {
        c += &format!("  printf(\"sizeof {s} %zu\\n\", sizeof({}));\n", c_struct(s));
    }
    for (name, _) in &constants {
        c += &format!("  printf(\"{name} %lld\\n\", (long long)({name}));\n");
    }
    c += "  return 0;\n}\n";
    let dir = out_dir("layout");
    std::fs::write(dir.join("layout.c"), &c).unwrap();
    let include = crate_dir().join("include");
    let exe = dir.join("layout");
    compile(
        "cc",
        &[
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            include.to_str().unwrap(),
            dir.join("layout.c").to_str().unwrap(),
            "-o",
            exe.to_str().unwrap(),
        ],
    );
    let out = Command::new(&exe).output().unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();

    let mut expected = String::new();
    for (s, f, off, size) in &layout {
        expected += &format!("{s}.{f} {off} {size}\n");
    }
    for (s, size) in [
        ("Header", 256),
        ("ClockData", 256),
        ("EventControl", 64),
        ("EventSlot", 32),
        ("HistoryEntry", 64),
        ("Page", 4096),
    ] {
        expected += &format!("sizeof {s} {size}\n");
    }
    for (name, value) in &constants {
        expected += &format!("{name} {value}\n");
    }
    let diffs: Vec<String> = printed
        .lines()
        .zip(expected.lines())
        .filter(|(c, r)| c != r)
        .map(|(c, r)| format!("C: {c:<40} Rust: {r}"))
        .collect();
    assert!(diffs.is_empty(), "C header and Rust ABI disagree:\n{}", diffs.join("\n"));
    assert_eq!(printed.lines().count(), expected.lines().count());

    // Every NICCLOCK_ constant the header defines is one the Rust side knows.
    let header = std::fs::read_to_string(include.join("nicclock.h")).unwrap();
    let known: Vec<&str> = constants.iter().map(|(n, _)| *n).collect();
    for line in header.lines().filter_map(|l| l.strip_prefix("#define ")) {
        let name = line.split_whitespace().next().unwrap();
        assert!(
            name == "NICCLOCK_H" || known.contains(&name),
            "header defines {name}, unknown to the Rust ABI"
        );
    }
}

#[test]
fn the_header_compiles_as_cplusplus() {
    let dir = out_dir("cxx");
    let src = dir.join("t.cc");
    std::fs::write(
        &src,
        "#include \"nicclock.h\"\nint main() { nicclock_t *c = nullptr; nicclock_close(c); return 0; }\n",
    )
    .unwrap();
    let include = crate_dir().join("include");
    let lib = lib_dir();
    compile(
        "c++",
        &[
            "-std=c++17",
            "-Wall",
            "-Werror",
            "-I",
            include.to_str().unwrap(),
            src.to_str().unwrap(),
            "-L",
            lib.to_str().unwrap(),
            "-lnicclock",
            "-o",
            dir.join("t").to_str().unwrap(),
        ],
    );
}

fn build_camera(dir: &Path, static_link: bool) -> PathBuf {
    let include = crate_dir().join("include");
    let src = crate_dir().join("examples/camera.c");
    let lib = lib_dir();
    let exe = dir.join(if static_link { "camera-static" } else { "camera" });
    let mut args = vec![
        "-std=c11".to_string(),
        "-D_GNU_SOURCE".into(),
        "-Wall".into(),
        "-Wextra".into(),
        "-Werror".into(),
    ];
    args.extend([
        "-I".into(),
        include.display().to_string(),
        src.display().to_string(),
        "-o".into(),
        exe.display().to_string(),
    ]);
    if static_link {
        args.extend([
            lib.join("libnicclock.a").display().to_string(),
            "-lpthread".into(),
            "-ldl".into(),
            "-lm".into(),
        ]);
    } else {
        args.extend([
            "-L".into(),
            lib.display().to_string(),
            "-lnicclock".into(),
            "-lpthread".into(),
            format!("-Wl,-rpath,{}", lib.display()),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    compile("cc", &args);
    exe
}

// The camera runs with LD_LIBRARY_PATH naming this build's library: cargo's own LD_LIBRARY_PATH
// (searched before the RUNPATH) lists target/debug too, where `cargo build` may have left an older one.
#[test]
fn the_camera_example_stamps_frames_from_a_published_page() {
    let dir = PageDir::new("camera");
    let mut w = Writer::create(&dir.options("cam"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 5_000));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                w.publish(&system_snapshot(Status::Locked, 5_000));
                n += 1;
                if n % 5 == 0 {
                    w.post(EventKind::Step, Urgency::Notice, 777, 0, 0);
                }
            }
            w
        }
    });
    let build = out_dir("camera");
    for static_link in [false, true] {
        let exe = build_camera(&build, static_link);
        let before = realtime_ns() + TAI_UTC as u64 * 1_000_000_000;
        let out = Command::new(&exe)
            .env("LD_LIBRARY_PATH", lib_dir())
            .args(["--dir", dir.path.to_str().unwrap(), "--page", "cam", "--frames", "30", "--fps", "60"])
            .output()
            .unwrap();
        let after = realtime_ns() + TAI_UTC as u64 * 1_000_000_000;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "camera failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let frames: Vec<&str> = stdout.lines().filter(|l| l.starts_with("frame ")).collect();
        assert_eq!(frames.len(), 30, "{stdout}");
        let mut last = 0.0;
        for f in &frames {
            // frame N tai SEC.NSEC err E ns LOCKED est X epoch Y: the capture instant's TAI
            let w: Vec<&str> = f.split_whitespace().collect();
            assert_eq!(
                (w[2], w[4], w[6], w[7], w[8], w[10]),
                ("tai", "err", "ns", "LOCKED", "est", "epoch"),
                "{f}"
            );
            let est: u64 = w[9].parse().unwrap();
            assert!(est <= w[5].parse().unwrap(), "the estimate is never above the maximum: {f}");
            assert_eq!(w[11], "1", "one timeline (the publisher marks no disruption): {f}");
            let t: f64 = w[3].parse().unwrap();
            let err: u64 = w[5].parse().unwrap();
            assert!(err >= 5_000, "{f}");
            let t_ns = (t * 1e9) as u64;
            assert!(
                t_ns + err + 1_000_000 >= before && t_ns <= after + err + 1_000_000,
                "{f} outside [{before}, {after}]"
            );
            assert!(t > last, "frames go forward: {f}");
            last = t;
        }
        assert!(stdout.contains("30 frames, 0 unstamped"), "{stdout}");
        if !static_link {
            assert!(
                stdout.contains("kind 3 urgency 1 magnitude 777 epoch 1"),
                "the event thread saw the step:\n{stdout}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(publisher.join().unwrap()); // the writer stops: page STOPPED

    let exe = build_camera(&build, false);
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", lib_dir())
        .args(["--dir", dir.path.to_str().unwrap(), "--page", "cam", "--frames", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("unstamped: clock unavailable: the page says STOPPED"), "{stdout}");

    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", lib_dir())
        .args(["--dir", dir.path.to_str().unwrap(), "--page", "missing"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nicclockd is probably not running"));
    let out =
        Command::new(&exe).env("LD_LIBRARY_PATH", lib_dir()).args(["--frames", "zero"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}

/// A C reader of the page through the header alone: maps it read-only and copies the reference
/// identity under the clock block's seqlock, as the header's reading rules say.
const C_REFERENCE_READER: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include "nicclock.h"
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) return 3;
  const struct nicclock_page *p = mmap(0, NICCLOCK_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 4;
  const struct nicclock_clock_data *c = &p->clock;
  uint32_t kind, steps, port, flags, source, accuracy;
  uint8_t gm[8];
  uint64_t acc_ns;
  for (;;) {
    uint32_t s1 = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1) continue;
    kind = __atomic_load_n(&c->reference_kind, __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++) gm[i] = __atomic_load_n(&c->gm_identity[i], __ATOMIC_RELAXED);
    steps = __atomic_load_n(&c->ptp_steps_removed, __ATOMIC_RELAXED);
    port = __atomic_load_n(&c->ptp_port_state, __ATOMIC_RELAXED);
    flags = __atomic_load_n(&c->ptp_flags, __ATOMIC_RELAXED);
    source = __atomic_load_n(&c->utc_offset_source, __ATOMIC_RELAXED);
    accuracy = __atomic_load_n(&c->gm_clock_accuracy, __ATOMIC_RELAXED);
    acc_ns = __atomic_load_n(&c->gm_accuracy_ns, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&c->seq, __ATOMIC_RELAXED) == s1) break;
  }
  printf("minor %u kind %u gm", (unsigned)__atomic_load_n(&p->header.abi_minor, __ATOMIC_RELAXED), kind);
  for (int i = 0; i < 8; i++) printf("%s%02x", i ? ":" : " ", gm[i]);
  printf(" steps %u port %u slave %d flags %#x utc_valid %d leap61 %d source %u accuracy %#x %llu\n",
         steps, port, port == NICCLOCK_PTP_PORT_STATE_SLAVE, flags,
         !!(flags & NICCLOCK_PTP_FLAG_UTC_OFFSET_VALID), !!(flags & NICCLOCK_PTP_FLAG_LEAP61), source,
         accuracy, (unsigned long long)acc_ns);
  return kind == NICCLOCK_REFERENCE_PTP ? 0 : 5;
}
"#;

#[test]
fn a_c_reader_gets_the_ptp_reference_identity() {
    let dir = PageDir::new("c-ref");
    let mut w = Writer::create(&dir.options("ptp0"), &identity()).unwrap();
    w.publish(&ptp_snapshot(Status::Locked, 300));
    let build = out_dir("reference");
    std::fs::write(build.join("reference.c"), C_REFERENCE_READER).unwrap();
    let exe = build.join("reference");
    let include = crate_dir().join("include");
    compile(
        "cc",
        &[
            "-std=c11",
            "-D_GNU_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            include.to_str().unwrap(),
            build.join("reference.c").to_str().unwrap(),
            "-o",
            exe.to_str().unwrap(),
        ],
    );
    let out = Command::new(&exe).arg(dir.page("ptp0")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "C reader failed ({:?}): {text}", out.status);
    assert_eq!(
        text.trim(),
        "minor 4 kind 3 gm 00:1b:21:ff:fe:12:34:56 steps 1 port 9 slave 1 flags 0xd utc_valid 1 leap61 1 \
         source 2 accuracy 0x21 100"
    );
}

/// `tests/c/waits.c` built against the shared library.
fn build_waits() -> PathBuf {
    let dir = out_dir("waits");
    let exe = dir.join("waits");
    let include = crate_dir().join("include");
    let lib = lib_dir();
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    compile(
        "cc",
        &[
            "-std=c11",
            "-D_GNU_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            include.to_str().unwrap(),
            crate_dir().join("tests/c/waits.c").to_str().unwrap(),
            "-o",
            exe.to_str().unwrap(),
            "-L",
            lib.to_str().unwrap(),
            "-lnicclock",
            "-lpthread",
            &rpath,
        ],
    );
    exe
}

/// Starts the waits program with `args` after the page directory and name.
fn start_waits(exe: &Path, dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(exe)
        .env("LD_LIBRARY_PATH", lib_dir())
        .arg(dir)
        .arg("eth0")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The child's output; it is killed and the test fails if it runs for more than 20 s.
fn finish(child: std::process::Child) -> String {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let hung = finished.recv_timeout(Duration::from_secs(20)).is_err();
        if hung {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        hung
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    assert!(!watchdog.join().unwrap(), "the C program hung and was killed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.contains("FAIL"),
        "C program failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Returns once the (single-threaded) child sleeps on a futex, or has ended.
fn sleeping_on_futex(child: &std::process::Child) {
    let wchan = format!("/proc/{}/wchan", child.id());
    let start = std::time::Instant::now();
    loop {
        match std::fs::read_to_string(&wchan) {
            Ok(now) if now.contains("futex") => return,
            Ok(now) if now.is_empty() => return, // a zombie: it has ended
            Ok(_) => {}
            Err(_) => return,
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the C waiter never slept on the futex");
        std::thread::yield_now();
    }
}

/// A number following `key` in `line`.
fn field(line: &str, key: &str) -> i128 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == key).unwrap_or_else(|| panic!("{key} in {line:?}"));
    words[at + 1].parse().unwrap_or_else(|_| panic!("{key} in {line:?}"))
}

#[test]
fn a_c_application_waits_for_sync_commit_waits_and_compares_intervals() {
    let dir = PageDir::new("c-waits");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&ptp_snapshot(Status::Locking, 100));
    let exe = build_waits();
    let d = dir.path.as_path();

    // Waiting for sync: asleep until the update that is LOCKED within 1 µs.
    let child = start_waits(&exe, d, &["until", "1000", "20000"]);
    sleeping_on_futex(&child);
    w.publish(&ptp_snapshot(Status::Locked, 5_000));
    w.publish(&ptp_snapshot(Status::Locked, 200));
    let out = finish(child);
    assert_eq!(field(&out, "rc"), 1, "{out}");
    assert!((200..=1_000).contains(&field(&out, "error")), "{out}");
    // Not within 10 ns: 0 at the timeout, with where it stands.
    let out = finish(start_waits(&exe, d, &["until", "10", "100"]));
    assert_eq!(field(&out, "rc"), 0, "{out}");
    assert!(field(&out, "error") >= 200, "{out}");

    // Commit-wait.
    let out = finish(start_waits(&exe, d, &["after", "5", "20000"]));
    assert_eq!(out.trim(), "after rc 1 earliest_past_t 1 later_definitely_after 1");
    let out = finish(start_waits(&exe, d, &["after", "3600000", "100"]));
    assert!(out.starts_with("after rc 0 earliest_past_t 0 later_definitely_after 0"), "{out}");

    // Intervals.
    let out = finish(start_waits(&exe, d, &["intervals"]));
    let width = field(&out, "width");
    assert!((400..1_000_000).contains(&width), "± 200 ns and its growth (10 ppm): {out}");
    assert!(out.contains("before 1 0 after 1 0 touching 0 0"), "{out}");
    assert!(out.contains("midpoint rc 0 centred 1"), "{out}");
    assert!(
        out.contains("narrow cap rc -13 interval wider than the caller accepts: the reading's interval is"),
        "{out}"
    );
    assert!(out.contains("null rc -12 -12"), "{out}");

    // One handle, 8 threads reading at once while the writer publishes.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = std::thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(Ordering::Relaxed) {
                w.publish(&ptp_snapshot(Status::Locked, 200));
                std::thread::yield_now();
            }
            w
        }
    });
    let out = finish(start_waits(&exe, d, &["threads", "8", "20000"]));
    stop.store(true, Ordering::Relaxed);
    let mut w = publisher.join().unwrap();
    assert_eq!((field(&out, "errors"), field(&out, "locked")), (0, 160_000), "{out}");

    // nicclockd stops during the wait: the error at once, not a hang.
    w.publish(&ptp_snapshot(Status::Locked, 5_000));
    let child = start_waits(&exe, d, &["until", "1000", "20000"]);
    sleeping_on_futex(&child);
    drop(w);
    let out = finish(child);
    assert!(out.contains("until rc -7") && out.contains("the page says STOPPED"), "{out}");
}

/// `tests/c/past.c` (the ABI 1.4 calls) built against the shared library, run once per call.
fn run_past(exe: &Path, dir: &Path, args: &[&str]) -> String {
    let child = Command::new(exe)
        .env("LD_LIBRARY_PATH", lib_dir())
        .arg(dir)
        .arg("eth0")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    finish(child)
}

fn monotonic_now() -> (String, String) {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    (t.tv_sec().to_string(), t.tv_nsec().to_string())
}

#[test]
fn a_c_reader_reads_both_errors_and_converts_past_timestamps() {
    let dir = PageDir::new("c-past");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 4_000));
    let build = out_dir("past");
    let exe = build.join("past");
    let include = crate_dir().join("include");
    let lib = lib_dir();
    compile(
        "cc",
        &[
            "-std=c11",
            "-D_GNU_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            include.to_str().unwrap(),
            crate_dir().join("tests/c/past.c").to_str().unwrap(),
            "-o",
            exe.to_str().unwrap(),
            "-L",
            lib.to_str().unwrap(),
            "-lnicclock",
        ],
    );
    let d = dir.path.as_path();
    let epoch = w.epoch() as i128;
    let line = run_past(&exe, d, &["read"]);
    assert_eq!((field(&line, "rc"), field(&line, "status"), field(&line, "epoch")), (2, 2, epoch), "{line}");
    assert!(field(&line, "est") < field(&line, "max") && field(&line, "max") >= 4_000, "{line}");

    // A capture before the next update converts by the mapping then; its bound holds the truth.
    let (sec, nsec) = monotonic_now();
    let truth = realtime_ns() + TAI_UTC as u64 * 1_000_000_000;
    w.publish(&system_snapshot(Status::Locked, 4_000));
    let line = run_past(&exe, d, &["mono", &sec, &nsec]);
    assert_eq!((field(&line, "rc"), field(&line, "epoch")), (2, epoch), "{line}");
    let tai: f64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let max = field(&line, "max");
    assert!(((tai * 1e9) as i128 - truth as i128).abs() <= max + 20_000, "{line} vs truth {truth}");

    // After a step it is refused; so is a counter older than the history, and the malformed.
    w.mark_disruption();
    w.publish(&system_snapshot(Status::Locked, 4_000));
    let line = run_past(&exe, d, &["mono", &sec, &nsec]);
    assert_eq!(field(&line, "rc"), -14, "NICCLOCK_EDISRUPTED: {line}");
    assert!(line.contains("before a disruption"), "{line}");
    let line = run_past(&exe, d, &["counter", "1"]);
    assert_eq!(field(&line, "rc"), -15, "NICCLOCK_ETOOOLD: {line}");
    let line = run_past(&exe, d, &["bad"]);
    assert_eq!(line.trim(), "boottime -12 null -12 negative -12 nullhandle -12");
}

//! The `nicclock` CLI against live and broken pages: every subcommand's output, and every kind of
//! bad input with its message and exit code (1 runtime, 2 usage), never a panic.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{identity, ptp_snapshot, realtime_ns, system_snapshot, PageDir, NOBODY, TAI_UTC};
use nicclock::{EventKind, PageOptions, Status, Urgency, Writer};

const BIN: &str = env!("CARGO_BIN_EXE_nicclock");

/// A page kept fresh by a publishing thread (every 50 ms), which also posts a STEP each 200 ms
/// when `steps` is set.
struct LivePage {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LivePage {
    fn start(opts: PageOptions, steps: bool) -> Self {
        let mut w = Writer::create(&opts, &identity()).unwrap();
        w.publish(&system_snapshot(Status::Locked, 1_000));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for n in 1u64.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    w.publish(&system_snapshot(Status::Locked, 1_000));
                    if steps && n % 4 == 0 {
                        w.post(EventKind::Step, Urgency::Notice, 1_500, 0, 0);
                    }
                }
            }
        });
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for LivePage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().unwrap().join();
    }
}

/// Runs nicclock with `args` (stdin null, stdout and stderr captured), killed after 30 s.
fn run(args: &[&str]) -> Output {
    within(30, Command::new(BIN).args(args).stdout(Stdio::piped()))
}

/// Waits for `cmd` (its stdout already chosen, stderr captured) to end; kills it and fails the
/// test if it runs longer than `secs`.
fn within(secs: u64, cmd: &mut Command) -> Output {
    let child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start nicclock");
    let watchdog = Watchdog::new(&child, secs);
    let out = child.wait_with_output().expect("wait for nicclock");
    watchdog.finished();
    out
}

/// Kills a child still running after its time; `finished` fails the test if it had to.
struct Watchdog {
    done: mpsc::Sender<()>,
    thread: JoinHandle<bool>,
    secs: u64,
}

impl Watchdog {
    fn new(child: &std::process::Child, secs: u64) -> Self {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (done, finished) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let hung = finished.recv_timeout(Duration::from_secs(secs)).is_err();
            if hung {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            hung
        });
        Self { done, thread, secs }
    }

    /// Call once the child has been waited for.
    fn finished(self) {
        let _ = self.done.send(());
        assert!(!self.thread.join().unwrap(), "nicclock still ran after {} s and was killed", self.secs);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit `code` and that stderr names every one of `words`; never a panic.
fn fails(o: &Output, code: i32, words: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit status {:?}; stderr: {err}", o.status);
    assert!(!err.contains("panicked"), "panic: {err}");
    for w in words {
        assert!(err.contains(w), "stderr {err:?} lacks {w:?}");
    }
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "nicclock failed: {}\n{}", o.status, stderr(o));
    stdout(o)
}

#[test]
fn now_prints_tai_or_utc_with_bound_and_status() {
    let dir = PageDir::new("cli-now");
    let _live = LivePage::start(dir.options("eth0"), false);
    let d = dir.path.to_str().unwrap();
    let before = realtime_ns() + TAI_UTC as u64 * 1_000_000_000;
    let out = ok(&run(&["--dir", d, "now"]));
    let after = realtime_ns() + TAI_UTC as u64 * 1_000_000_000;
    let w: Vec<&str> = out.split_whitespace().collect();
    assert_eq!((w.len(), w[2], w[3]), (4, "ns", "LOCKED"), "{out}");
    let t: u64 = w[0].parse().unwrap();
    let err: u64 = w[1].trim_start_matches('±').parse().unwrap();
    assert!(t + err + 1_000_000 >= before && t <= after + err + 1_000_000, "{t} vs [{before}, {after}]");

    let out = ok(&run(&["--dir", d, "--page", "eth0", "now", "--utc", "--format", "rfc3339"]));
    let stamp = out.split_whitespace().next().unwrap();
    let utc = humantime::parse_rfc3339(stamp).unwrap();
    let skew = utc.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128 - realtime_ns() as i128;
    assert!(skew.abs() < 2_000_000_000, "UTC {stamp} is {skew} ns off the system clock");
    let out = ok(&run(&["--dir", d, "now", "--format", "rfc3339"]));
    assert!(out.contains(" TAI ±"), "TAI is labelled: {out}");
}

#[test]
fn status_list_watch_and_events() {
    let dir = PageDir::new("cli-status");
    let _live = LivePage::start(dir.options("eth0"), true);
    let d = dir.path.to_str().unwrap();

    let json: serde_json::Value = serde_json::from_str(&ok(&run(&["--dir", d, "status", "--json"]))).unwrap();
    assert_eq!(json["status"], "LOCKED");
    assert_eq!(json["stale"], false);
    assert_eq!(json["model"], "82576");
    assert_eq!(json["pci_address"], "0000:01:00.0");
    assert_eq!(json["clock_id"], "52:54:00:ff:fe:12:34:56");
    assert_eq!(json["servo_offset_ns"], -23);
    assert_eq!(json["servo_freq_ppb"], 100.0);
    assert_eq!(json["tai_utc_offset_s"], 37);
    assert_eq!(json["writer_pid"], std::process::id());
    assert!(json["update_count"].as_u64().unwrap() >= 1);

    let text = ok(&run(&["--dir", d, "status"]));
    assert!(
        text.contains("status      LOCKED") && text.contains("offset -23 s2 freq +100.000 ppb delay 500"),
        "{text}"
    );

    let list = ok(&run(&["--dir", d, "list"]));
    assert!(list.starts_with("eth0\tLOCKED\t82576 0000:01:00.0"), "{list}");

    let watch = ok(&run(&["--dir", d, "watch", "--count", "3", "--interval", "0.1"]));
    let lines: Vec<&str> = watch.lines().collect();
    assert_eq!(lines.len(), 3, "{watch}");
    for l in lines {
        assert!(l.contains("LOCKED") && l.contains("offset      -23 ns freq +100.000 ppb error ±"), "{l}");
    }

    let events = ok(&run(&["--dir", d, "events", "--count", "2", "--timeout", "5"]));
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(lines.len(), 2, "{events}");
    assert!(lines.iter().all(|l| l.contains("notice STEP step +1500 ns")), "{events}");
    let history = ok(&run(&["--dir", d, "events", "--history", "--count", "1", "--timeout", "5"]));
    assert!(history.contains("info STARTED writer pid"), "{history}");
    let events = ok(&run(&["--dir", d, "events", "--json", "--count", "2", "--timeout", "5"]));
    for line in events.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (e["kind"].as_str(), e["urgency"].as_str(), e["magnitude"].as_i64()),
            (Some("STEP"), Some("notice"), Some(1500)),
            "{line}"
        );
        assert!(e["seq"].as_u64().unwrap() > 1 && e["tai_ns"].as_u64().unwrap() > 0, "{line}");
    }
    assert_eq!(events.lines().count(), 2, "{events}");
}

#[test]
fn compare_checks_page_time_against_the_system_clock() {
    let dir = PageDir::new("cli-compare");
    let _live = LivePage::start(dir.options("eth0"), false);
    let out =
        ok(&run(&["--dir", dir.path.to_str().unwrap(), "compare", "--seconds", "0.5", "--rate", "200"]));
    let w: Vec<&str> = out.split_whitespace().collect();
    let get = |k: &str| w[w.iter().position(|x| *x == k).unwrap() + 1].parse::<f64>().unwrap();
    assert!(get("reads") >= 20.0, "{out}");
    assert_eq!((get("outside_bound"), get("errors")), (0.0, 0.0), "{out}");
    // A page whose time is 1 ms off but claims ±1 µs fails the comparison.
    let bad = PageDir::new("cli-compare-bad");
    let mut w = Writer::create(&bad.options("eth0"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Locked, 1_000);
    snap.anchor_tai_ns += 1_000_000;
    w.publish(&snap);
    let o = run(&["--dir", bad.path.to_str().unwrap(), "compare", "--seconds", "0.2"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(!stdout(&o).contains("outside_bound 0 "), "{}", stdout(&o));
}

#[test]
fn missing_pages_say_the_daemon_is_probably_not_running() {
    let dir = PageDir::new("cli-missing");
    let d = dir.path.to_str().unwrap();
    let o = run(&["--dir", d, "--page", "eth9", "now"]);
    fails(&o, 1, &["no time page at", "nicclock-eth9", "nicclockd is probably not running"]);
    let o = run(&["--dir", d, "now"]);
    fails(&o, 1, &["no time page in", "nicclockd is probably not running"]);
    let gone = dir.path.join("gone");
    let o = run(&["--dir", gone.to_str().unwrap(), "status"]);
    fails(&o, 1, &["no time page in", "nicclockd is probably not running"]);
    let o = run(&["--dir", d, "list"]);
    assert!(ok(&o).contains("no time pages in"), "list of an empty dir is not an error");
}

#[test]
fn ambiguous_page_choice_lists_the_candidates() {
    let dir = PageDir::new("cli-two");
    let _a = LivePage::start(dir.options("a"), false);
    let _b = LivePage::start(dir.options("b"), false);
    fails(&run(&["--dir", dir.path.to_str().unwrap(), "now"]), 1, &["2 pages", "--page", "a, b"]);
}

#[test]
fn broken_pages_are_named_and_refused() {
    let dir = PageDir::new("cli-broken");
    let d = dir.path.to_str().unwrap();
    std::fs::write(dir.page("garbage"), vec![0x5Au8; 4096]).unwrap();
    fails(
        &run(&["--dir", d, "-p", "garbage", "now"]),
        1,
        &["nicclock-garbage is not a nicclock time page", "NICCLOCK"],
    );
    std::fs::write(dir.page("short"), b"hello").unwrap();
    fails(&run(&["--dir", d, "-p", "short", "status"]), 1, &["5 bytes, a page is 4096"]);
    std::os::unix::fs::symlink("/etc/passwd", dir.page("link")).unwrap();
    fails(&run(&["--dir", d, "-p", "link", "now"]), 1, &["symbolic link"]);

    drop(Writer::create(&dir.options("future"), &identity()).unwrap());
    let mut bytes = std::fs::read(dir.page("future")).unwrap();
    bytes[8..10].copy_from_slice(&7u16.to_le_bytes());
    std::fs::write(dir.page("future"), &bytes).unwrap();
    fails(&run(&["--dir", d, "-p", "future", "now"]), 1, &["page ABI 7.x", "this reader speaks 1.x"]);

    let list = ok(&run(&["--dir", d, "list"]));
    assert!(list.contains("garbage\tunreadable:") && list.contains("future\tunreadable:"), "{list}");
}

#[test]
fn stale_and_stopped_pages_give_no_time() {
    let dir = PageDir::new("cli-stale");
    let d = dir.path.to_str().unwrap();
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Locked, 1_000);
    snap.updated_tai_ns -= 5_000_000_000;
    w.publish(&snap);
    fails(&run(&["--dir", d, "now"]), 1, &["stale", "nicclockd is stuck or was killed"]);
    // status prints the page, and exits 1 like now: a stale page gives no time.
    let o = run(&["--dir", d, "status", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["stale"], true);
    let o = run(&["--dir", d, "status"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("(STALE)"), "{}", stdout(&o));
    ok(&run(&["--dir", d, "--max-age", "60", "now"]));
    drop(w);
    fails(&run(&["--dir", d, "now"]), 1, &["STOPPED"]);
    fails(&run(&["--dir", d, "events", "--timeout", "0.2"]), 1, &["no event within 0.2 s"]);
}

#[test]
fn an_unreadable_page_is_a_permission_error_for_an_unprivileged_user() {
    assert!(nix::unistd::geteuid().is_root(), "this test runs the CLI as nobody and must run as root");
    let dir = PageDir::new("cli-perm");
    let _live = LivePage::start(PageOptions { mode: 0o600, ..dir.options("eth0") }, false);
    use std::os::unix::process::CommandExt;
    let exe = common::world_executable(std::path::Path::new(BIN));
    let o = common::retry_busy(|| {
        Command::new(&exe).args(["--dir", dir.path.to_str().unwrap(), "now"]).uid(NOBODY).gid(NOBODY).output()
    });
    fails(&o, 1, &["permission denied", "--page-group"]);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["--bogus"],
        vec![],
        vec!["now", "--format", "xml"],
        vec!["watch", "--interval", "-1"],
        vec!["watch", "--count", "many"],
        vec!["events", "--timeout", "abc"],
        vec!["--max-age", "0", "now"],
        vec!["--page", "a/b", "now"],
        vec!["--page", "", "now"],
        vec!["frobnicate"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        let explained = err.contains("error:") || (args.is_empty() && err.contains("Usage:"));
        assert!(explained && !err.contains("panicked"), "{args:?}: {err}");
    }
    let o = run(&["--page", "a/b", "now"]);
    assert!(stderr(&o).contains("contains '/'"), "{}", stderr(&o));
}

#[test]
fn an_unsynchronized_page_gives_no_time_and_exit_1() {
    let dir = PageDir::new("cli-unsync");
    let d = dir.path.to_str().unwrap();
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    let mut snap = system_snapshot(Status::Unsynchronized, u64::MAX);
    w.publish(&snap);
    let o = run(&["--dir", d, "now"]);
    fails(&o, 1, &["UNSYNCHRONIZED", "not disciplined"]);
    assert!(stdout(&o).is_empty(), "no time printed: {}", stdout(&o));
    let o = run(&["--dir", d, "status", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["status"], "UNSYNCHRONIZED");
    snap.status = Status::Locked;
    w.publish(&snap);
    ok(&run(&["--dir", d, "--max-age", "60", "now"]));
    ok(&run(&["--dir", d, "--max-age", "60", "status"]));
}

#[test]
fn numeric_options_name_their_range() {
    for (args, words) in [
        (vec!["--max-age", "1e300", "now"], vec!["1e300 seconds is too large", "0 < SECONDS < 1e9"]),
        (vec!["--max-age", "-1", "now"], vec!["-1 must be a positive number of seconds"]),
        (vec!["--max-age", "nan", "now"], vec!["is not a number of seconds"]),
        (vec!["compare", "--rate", "-1"], vec!["-1 is not in 1..=10000"]),
        (vec!["watch", "--interval", "-1"], vec!["-1 must be a positive number"]),
        (vec!["events", "--timeout", "-5"], vec!["-5 must be a positive number"]),
        (vec!["watch", "--count", "-3"], vec!["'-3'", "--count"]),
        (vec!["wait", "--status", "SYNCED"], vec!["\"SYNCED\" is not a status", "LOCKED"]),
        (vec!["stats", "x", "--lock-threshold", "-1"], vec!["-1 must be a positive"]),
    ] {
        let o = run(&args);
        fails(&o, 2, &words);
        assert!(!stderr(&o).contains("unexpected argument"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn output_to_a_full_device_is_a_runtime_error_not_a_panic() {
    let dir = PageDir::new("cli-full");
    let _live = LivePage::start(dir.options("eth0"), false);
    let d = dir.path.to_str().unwrap();
    for args in [
        vec!["now"],
        vec!["status", "--json"],
        vec!["watch", "--count", "2", "--interval", "0.05"],
        vec!["list"],
    ] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let o = within(30, Command::new(BIN).args(["--dir", d]).args(&args).stdout(full));
        fails(&o, 1, &["cannot write to standard output", "No space left on device"]);
    }
}

#[test]
fn a_closed_output_pipe_ends_quietly_with_exit_0() {
    let dir = PageDir::new("cli-pipe");
    let _live = LivePage::start(dir.options("eth0"), true);
    let d = dir.path.to_str().unwrap();
    for args in [
        vec!["now"],
        vec!["watch", "--count", "3", "--interval", "0.05"],
        vec!["events", "--history", "--count", "3", "--timeout", "5"],
    ] {
        // The reading end is closed before nicclock writes: its first line meets EPIPE.
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        drop(read_end);
        let o = within(30, Command::new(BIN).args(["--dir", d]).args(&args).stdout(Stdio::from(write_end)));
        assert_eq!(o.status.code(), Some(0), "{args:?}: {:?} {}", o.status, stderr(&o));
        assert!(stderr(&o).is_empty(), "{args:?}: quiet, yet: {}", stderr(&o));
    }
    // `nicclock watch | head -1`: the reader takes one line and goes away.
    let mut child = Command::new(BIN)
        .args(["--dir", d, "watch", "--count", "50", "--interval", "0.05"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first)
        .unwrap();
    assert!(first.contains("LOCKED"), "{first}");
    let watchdog = Watchdog::new(&child, 30);
    let o = child.wait_with_output().unwrap();
    watchdog.finished();
    assert_eq!(o.status.code(), Some(0), "{:?} {}", o.status, stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn wait_returns_on_the_status_event_and_times_out_naming_the_status() {
    let dir = PageDir::new("cli-wait");
    let d = dir.path.to_str().unwrap().to_string();
    // Waiting before the page exists: it appears LOCKING, then turns LOCKED.
    let child = Command::new(BIN)
        .args(["--dir", &d, "--page", "eth0", "wait", "--status", "locked", "--timeout", "20"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiter = Watchdog::new(&child, 30);
    let wchan = |what: &str| {
        // The child's kernel wait channel: where it sleeps (bounded: the watchdog ends the child).
        let path = format!("/proc/{}/wchan", child.id());
        loop {
            let now = std::fs::read_to_string(&path).unwrap_or_default();
            if now.contains(what) {
                return;
            }
            assert!(!now.is_empty(), "nicclock wait ended before sleeping in {what}");
            std::thread::yield_now();
        }
    };
    wchan("poll"); // on inotify, for the page to appear
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locking, 5_000));
    wchan("futex"); // on the page's event word
    w.publish(&system_snapshot(Status::Locked, 1_000));
    let o = child.wait_with_output().unwrap();
    waiter.finished();
    assert!(ok(&o).contains("LOCKED after"), "{}", stdout(&o));

    // Already there: at once.
    ok(&run(&[
        "--dir",
        &d,
        "--page",
        "eth0",
        "--max-age",
        "60",
        "wait",
        "--status",
        "LOCKED",
        "--timeout",
        "5",
    ]));
    // Never there: exit 1 after the timeout, naming where it is stuck.
    let o = run(&[
        "--dir",
        &d,
        "--page",
        "eth0",
        "--max-age",
        "60",
        "wait",
        "--status",
        "HOLDOVER",
        "--timeout",
        "0.3",
    ]);
    fails(&o, 1, &["is still LOCKED after 0.3 s", "waited for HOLDOVER"]);
    // A page that never appears.
    let o = run(&["--dir", &d, "--page", "eth9", "wait", "--status", "LOCKED", "--timeout", "0.3"]);
    fails(&o, 1, &["no time page at", "nicclock-eth9", "after 0.3 s"]);
}

#[test]
fn stats_summarises_a_stats_csv_and_servo_logs() {
    let dir = PageDir::new("cli-stats");
    let csv = dir.path.join("run.csv");
    let mut text = String::from("time_s,offset_ns,servo_state,freq_ppb,delay_ns,status,error_bound_ns\n");
    for (i, o) in [90_000, 5_000, 10, -20, 30, -40, 50, 60].iter().enumerate() {
        text += &format!("{:.3},{o},2,1.0,{},LOCKED,900\n", 0.1 * (i + 1) as f64, 800 + i);
    }
    std::fs::write(&csv, text).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(&["stats", "--json", csv.to_str().unwrap()]))).unwrap();
    assert_eq!((json["source"].as_str(), json["samples"].as_u64()), (Some("stats_csv"), Some(8)));
    assert_eq!(json["lock_index"], 2);
    assert!((json["lock_time_s"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{json}");
    let rms = ((100 + 400 + 900 + 1600 + 2500 + 3600) as f64 / 6.0).sqrt();
    assert!((json["rms_offset_ns"].as_f64().unwrap() - rms).abs() < 1e-9, "{json}");
    assert_eq!(
        (json["abs_offset_p50_ns"].as_f64(), json["abs_offset_max_ns"].as_f64()),
        (Some(40.0), Some(60.0))
    );
    assert_eq!(json["max_abs_offset_ns"].as_f64(), Some(90_000.0));
    assert_eq!(json["mean_delay_ns"].as_f64(), Some(804.5));
    let human = ok(&run(&["stats", csv.to_str().unwrap()]));
    assert!(human.contains("lock        after 0.20 s (sample 3"), "{human}");

    let log = dir.path.join("phc2sys.log");
    std::fs::write(
        &log,
        "phc2sys[10.0]: CLOCK_REALTIME phc offset 3000 s0 freq +0 delay 500\n\
         phc2sys[10.1]: clock jumped\n\
         phc2sys[10.1]: CLOCK_REALTIME phc offset 5 s2 freq +1 delay 510\n",
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(&run(&[
        "stats",
        "--json",
        "--lock-threshold",
        "100",
        log.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(
        (json["source"].as_str(), json["samples"].as_u64(), json["ignored_lines"].as_u64()),
        (Some("servo_log"), Some(2), Some(1))
    );
    assert_eq!(json["lock_index"], serde_json::Value::Null, "2 samples cannot make 5 in a row");
    assert_eq!(json["mean_delay_all_ns"].as_f64(), Some(505.0));

    std::fs::write(dir.path.join("empty"), "nothing here\n").unwrap();
    fails(
        &run(&["stats", dir.path.join("empty").to_str().unwrap()]),
        1,
        &["no samples in", "--stats-file CSV"],
    );
    fails(&run(&["stats", dir.path.join("absent").to_str().unwrap()]), 1, &["cannot read", "absent"]);
    // A device is never read (/dev/zero would be read forever into memory), nor a directory.
    fails(&run(&["stats", "/dev/zero"]), 1, &["/dev/zero is not a file"]);
    fails(&run(&["stats", dir.path.to_str().unwrap()]), 1, &["is not a file"]);
    // Invalid UTF-8 is no sample, not a failure to read the rest.
    let mut mixed = b"\xff\xfe garbage\n".to_vec();
    mixed.extend_from_slice(b"phc2sys[1.0]: CLOCK_REALTIME phc offset 7 s2 freq +1 delay 400\n");
    std::fs::write(dir.path.join("mixed"), mixed).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(&["stats", "--json", dir.path.join("mixed").to_str().unwrap()])))
            .unwrap();
    assert_eq!((json["samples"].as_u64(), json["ignored_lines"].as_u64()), (Some(1), Some(1)), "{json}");
}

#[test]
fn every_json_field_is_documented_in_help() {
    let dir = PageDir::new("cli-help");
    let _live = LivePage::start(dir.options("eth0"), false);
    let d = dir.path.to_str().unwrap();
    let csv = dir.path.join("s.csv");
    std::fs::write(
        &csv,
        "time_s,offset_ns,servo_state,freq_ppb,delay_ns,status,error_bound_ns\n0.1,5,2,1.0,800,LOCKED,900\n",
    )
    .unwrap();
    for (json_args, help_args) in [
        (vec!["--dir", d, "status", "--json"], vec!["status", "--help"]),
        (vec!["stats", "--json", csv.to_str().unwrap()], vec!["stats", "--help"]),
    ] {
        let json: serde_json::Value = serde_json::from_str(&ok(&run(&json_args))).unwrap();
        let help = ok(&run(&help_args));
        for key in json.as_object().unwrap().keys() {
            assert!(help.contains(key.as_str()), "{help_args:?} does not document {key}:\n{help}");
        }
    }
}

#[test]
fn status_shows_the_ptp_reference_and_an_old_page_as_unknown() {
    let dir = PageDir::new("cli-ptp");
    let mut w = Writer::create(&dir.options("ptp0"), &identity()).unwrap();
    w.publish(&ptp_snapshot(Status::Locked, 300));
    let d = dir.path.to_str().unwrap();
    let text = ok(&run(&["--dir", d, "status"]));
    assert!(
        text.contains(
            "reference   ptp grandmaster 001b21.fffe.123456 steps removed 1 port SLAVE, accuracy 100 ns"
        ),
        "{text}"
    );
    assert!(text.contains("(from reference)"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&ok(&run(&["--dir", d, "status", "--json"]))).unwrap();
    assert_eq!(json["reference"], "ptp", "{json}");
    assert_eq!(json["gm_identity"], "001b21.fffe.123456", "{json}");
    assert_eq!(json["steps_removed"], 1, "{json}");
    assert_eq!(json["port_state"], "SLAVE", "{json}");
    assert_eq!(json["ptp_flags"], 0x0d, "{json}");
    assert_eq!(json["utc_offset_source"], "reference", "{json}");
    assert_eq!(json["gm_clock_accuracy"], 0x21, "{json}");
    assert_eq!(json["gm_accuracy_ns"], 100, "{json}");

    // A page of minor 2 (reference fields zero) reads as unknown, without error.
    let c = &w.page().clock;
    for f in [&c.reference_kind, &c.ptp_steps_removed, &c.ptp_port_state, &c.ptp_flags, &c.utc_offset_source]
    {
        f.store(0, Ordering::Relaxed);
    }
    c.gm_accuracy_ns.store(0, Ordering::Relaxed);
    w.page().header.abi_minor.store(2, Ordering::Release);
    let text = ok(&run(&["--dir", d, "status"]));
    assert!(text.contains("reference   unknown"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&ok(&run(&["--dir", d, "status", "--json"]))).unwrap();
    assert_eq!(
        (json["reference"].as_str(), json["gm_identity"].is_null()),
        (Some("unknown"), true),
        "{json}"
    );
}

/// Returns once `child` sleeps in the kernel in `what` (its wait channel), failing if it ends first.
fn sleeping_in(child: &std::process::Child, what: &str) {
    let path = format!("/proc/{}/wchan", child.id());
    loop {
        let now = std::fs::read_to_string(&path).unwrap_or_default();
        if now.contains(what) {
            return;
        }
        assert!(!now.is_empty(), "nicclock wait ended before sleeping in {what}");
        std::thread::yield_now();
    }
}

fn spawn_wait(d: &str, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(["--dir", d, "--page", "eth0", "--max-age", "60", "wait"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn wait_max_error_returns_at_the_update_within_the_bound() {
    let dir = PageDir::new("cli-wait-sync");
    let d = dir.path.to_str().unwrap().to_string();
    // Before the page exists; then LOCKED but too wide; then within 1 µs.
    let child = spawn_wait(&d, &["--max-error", "1us", "--timeout", "20"]);
    let watchdog = Watchdog::new(&child, 30);
    sleeping_in(&child, "poll");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 5_000));
    sleeping_in(&child, "futex");
    w.publish(&system_snapshot(Status::Locked, 200));
    let o = child.wait_with_output().unwrap();
    watchdog.finished();
    let out = ok(&o);
    assert!(out.contains("LOCKED, max error") && out.contains("≤ 1000 ns after"), "{out}");
    assert!(out.contains("holds for"), "{out}");

    // --status LOCKED may go with it; already reached: at once.
    ok(&run(&[
        "--dir",
        &d,
        "--page",
        "eth0",
        "--max-age",
        "60",
        "wait",
        "--status",
        "locked",
        "--max-error",
        "0.5ms",
    ]));
    // Not within 10 ns: exit 1 at the timeout, naming where the clock stands.
    let o = run(&[
        "--dir",
        &d,
        "--page",
        "eth0",
        "--max-age",
        "60",
        "wait",
        "--max-error",
        "10ns",
        "--timeout",
        "0.3",
    ]);
    fails(&o, 1, &["is still LOCKED, max error", "after 0.3 s", "waited for LOCKED with max error ≤ 10 ns"]);

    // nicclockd stops during the wait: exit 1 at once, saying so.
    let child = spawn_wait(&d, &["--max-error", "10ns", "--timeout", "20"]);
    let watchdog = Watchdog::new(&child, 30);
    sleeping_in(&child, "futex");
    drop(w);
    let o = child.wait_with_output().unwrap();
    watchdog.finished();
    fails(&o, 1, &["waiting for LOCKED with max error ≤ 10 ns", "the page says STOPPED"]);
}

#[test]
fn wait_max_error_usage_errors_exit_2() {
    for (args, words) in [
        (vec!["wait", "--max-error", "1000"], vec!["needs a unit: ns, us, ms or s"]),
        (vec!["wait", "--max-error", "1xs"], vec!["unknown unit \"xs\""]),
        (vec!["wait", "--max-error", "-1us"], vec!["is out of range"]),
        (vec!["wait", "--max-error", "us"], vec!["is not a number with a unit"]),
        (
            vec!["wait", "--status", "HOLDOVER", "--max-error", "1us"],
            vec!["cannot be combined with --status HOLDOVER"],
        ),
        (vec!["wait"], vec!["--status"]),
    ] {
        let o = run(&args);
        fails(&o, 2, &words);
    }
}

#[test]
fn convert_gives_a_past_monotonic_timestamp_its_tai_and_refuses_one_from_before_a_step() {
    let dir = PageDir::new("cli-convert");
    let d = dir.path.to_str().unwrap();
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&system_snapshot(Status::Locked, 2_000));
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let truth = realtime_ns() + TAI_UTC as u64 * 1_000_000_000;
    let mono = format!("{}.{:09}", t.tv_sec(), t.tv_nsec());
    w.publish(&system_snapshot(Status::Locked, 2_000));
    let args = ["--dir", d, "--page", "eth0", "convert", "--monotonic", mono.as_str()];
    let out = ok(&run(&args));
    // TIME ±MAX ns STATUS est ±EST ns epoch N
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!((words[3], words[4], words[7], words[8]), ("LOCKED", "est", "epoch", "1"), "{out}");
    let time: u64 = words[0].parse().unwrap();
    let max: u64 = words[1].trim_start_matches('±').parse().unwrap();
    assert!(time.abs_diff(truth) <= max + 20_000, "{out} vs truth {truth}");
    let utc = ok(&run(&["--dir", d, "--page", "eth0", "convert", "--utc", "--monotonic", mono.as_str()]));
    let utc_time: u64 = utc.split_whitespace().next().unwrap().parse().unwrap();
    // Each run brackets the clock anew: the same instant within the bound, 37 s apart.
    assert!((time - utc_time).abs_diff(TAI_UTC as u64 * 1_000_000_000) <= max, "{out} vs {utc}");

    w.mark_disruption();
    w.publish(&system_snapshot(Status::Locked, 2_000));
    fails(&run(&args), 1, &["before a disruption", "epoch 1, now 2"]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(&["--dir", d, "--page", "eth0", "status", "--json"]))).unwrap();
    assert_eq!(json["epoch"], 2, "{json}");
    let (est, max) = (json["estimated_error_ns"].as_u64().unwrap(), json["error_bound_ns"].as_u64().unwrap());
    assert!(est < max, "{json}");
    fails(
        &run(&["--dir", d, "--page", "eth0", "convert", "--tsc", "1"]),
        1,
        &["older than the page's history"],
    );
    for bad in [
        vec!["convert"],
        vec!["convert", "--monotonic", "12.x"],
        vec!["convert", "--monotonic", "1.0123456789"],
        vec!["convert", "--monotonic", "-1.5"],
        vec!["convert", "--monotonic", "1.5", "--realtime", "1.5"],
    ] {
        let mut args = vec!["--dir", d, "--page", "eth0"];
        args.extend(bad.iter().copied());
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
    }
}

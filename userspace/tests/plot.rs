//! `nicclock plot` from a recorded stats CSV (a simulated 82576 run by nicclockd --stats-file):
//! the SVG parses, its axes are labelled, each series is one polyline, the lock is marked; `nicclock
//! stats` of the same file names its bound, steps and status changes.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nicclock");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim-stats.csv");

/// Runs nicclock with `args`; kills it and fails when it takes over 60 s.
fn run(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nicclock");
    let start = Instant::now();
    while child.try_wait().expect("poll nicclock").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("nicclock {args:?} still ran after 60 s and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect nicclock's output")
}

fn svg_out(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("nicclock-plot-{tag}-{}.svg", std::process::id()))
}

#[test]
fn plots_a_recorded_stats_csv() {
    let out = svg_out("csv");
    let o = run(&["plot", FIXTURE, "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(&out).expect("the SVG was written");
    std::fs::remove_file(&out).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");

    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_string())
        .collect();
    for label in
        ["time (s)", "offset (ns, clipped)", "frequency (ppb, clipped)", "error bound (ns, log)", "status"]
    {
        assert!(texts.iter().any(|t| t == label), "no axis label {label:?} in {texts:?}");
    }
    for status in ["UNSYNCHRONIZED", "LOCKING", "LOCKED"] {
        assert!(texts.iter().any(|t| t == status), "no status tick {status:?}");
    }
    // The fixture's page went LOCKED at its 5th row, 0.4 s in; the servo stepped at 0.1 s.
    assert!(texts.iter().any(|t| t == "LOCKED at 0.4 s"), "no lock marker label in {texts:?}");
    assert!(texts.iter().any(|t| t == "step"), "no step marker label");

    let strokes: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| n.attribute("stroke").map(str::to_ascii_uppercase))
        .collect();
    let count = |c: &str| strokes.iter().filter(|s| *s == c).count();
    // offset, frequency, bound, status: one line each (colours as plot.rs sets them).
    for (series, color) in
        [("offset", "#1F77B4"), ("frequency", "#FF7F0E"), ("bound", "#2CA02C"), ("status", "#9467BD")]
    {
        assert_eq!(count(color), 1, "{series} ({color}) should be one polyline: strokes {strokes:?}");
    }
    // The lock marker and the step marker: a line in each of the four panels.
    assert_eq!(count("#17BECF"), 4, "lock marker lines");
    assert_eq!(count("#D62728"), 4, "step marker lines");
    // The offset series holds one point per CSV row.
    let offset = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("polyline")
                && n.attribute("stroke").is_some_and(|s| s.eq_ignore_ascii_case("#1F77B4"))
        })
        .unwrap();
    assert_eq!(offset.attribute("points").unwrap().split_whitespace().count(), 150);
}

#[test]
fn plot_refuses_what_is_not_a_stats_csv() {
    let out = svg_out("bad");
    let log = std::env::temp_dir().join(format!("nicclock-plot-log-{}.txt", std::process::id()));
    std::fs::write(&log, "phc2sys[1.0]: CLOCK_REALTIME phc offset 1 s2 freq 0 delay 5\n").unwrap();
    let o = run(&["plot", log.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    std::fs::remove_file(&log).unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not nicclockd's --stats-file CSV"), "{err}");
    assert!(!out.exists(), "no SVG for a refused input");

    let o = run(&["plot", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "neither FILE nor --live is a usage error");
    let o = run(&["plot", FIXTURE, "-o", "/nonexistent-dir/plot.svg"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot write the plot to /nonexistent-dir/plot.svg"), "{err}");
    let o = run(&["plot", FIXTURE, "-o", out.to_str().unwrap(), "--size", "10x10"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn stats_of_the_recorded_csv_name_bound_steps_and_status_changes() {
    let o = run(&["stats", FIXTURE, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Row 1 has no bound (u64::MAX while UNSYNCHRONIZED): it is not the maximum.
    assert_eq!(j["max_error_bound_ns"], 1601, "{j}");
    assert_eq!(j["steps"], 1, "{j}");
    assert_eq!(j["step_times_s"], serde_json::json!([0.1]), "{j}");
    assert_eq!(j["locked_status_time_s"], 0.4, "{j}");
    assert_eq!(
        j["status_changes"],
        serde_json::json!([
            {"time_s": 0.1, "from": "UNSYNCHRONIZED", "to": "LOCKING"},
            {"time_s": 0.4, "from": "LOCKING", "to": "LOCKED"}
        ]),
        "{j}"
    );
    let o = run(&["stats", FIXTURE]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("steps       1 (at 0.10 s)"), "{text}");
    assert!(text.contains("0.400 s  LOCKING -> LOCKED"), "{text}");
}

/// A page updated every 50 ms until dropped, 0.3 s LOCKING and 0.3 s LOCKED in turn: any window
/// of a second or more sees a change to LOCKED, however late the plot starts.
struct LivePage {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LivePage {
    fn start(opts: nicclock::PageOptions) -> Self {
        use std::sync::atomic::Ordering;
        let mut w = nicclock::Writer::create(&opts, &common::identity()).unwrap();
        w.publish(&common::system_snapshot(nicclock::Status::Locking, 5_000));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for n in 1u32.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    let status =
                        if (n / 6) % 2 == 0 { nicclock::Status::Locking } else { nicclock::Status::Locked };
                    w.publish(&common::system_snapshot(status, 1_000));
                }
            }
        });
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for LivePage {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.take().unwrap().join();
    }
}

#[test]
fn plots_a_live_page_with_its_lock() {
    let dir = common::PageDir::new("plot-live");
    let out = svg_out("live");
    let page = LivePage::start(dir.options("eth0"));
    let o = run(&["--dir", dir.path.to_str().unwrap(), "plot", "--live", "1.5", "-o", out.to_str().unwrap()]);
    drop(page);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(&out).expect("the SVG was written");
    std::fs::remove_file(&out).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let offset = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("polyline")
                && n.attribute("stroke").is_some_and(|s| s.eq_ignore_ascii_case("#1F77B4"))
        })
        .expect("an offset line");
    let points = offset.attribute("points").unwrap().split_whitespace().count();
    assert!(points >= 5, "one point per update seen: {points}");
    assert!(
        doc.descendants()
            .any(|n| n.has_tag_name("text") && n.text().is_some_and(|t| t.trim().starts_with("LOCKED at "))),
        "the change to LOCKED is marked"
    );
}

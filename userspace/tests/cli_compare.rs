//! `nicclock compare --against PAGE`: two pages published by two writers in this process (the
//! second's time shifted by a known offset); the CLI reads both within one bracket and reports the
//! offset, the combined bound and whether each reading lies within the bounds; usage errors exit 2.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{identity, system_snapshot, PageDir};
use nicclock::{Status, Writer};

const BIN: &str = env!("CARGO_BIN_EXE_nicclock");

/// Pages kept fresh every 50 ms by one thread: (name, time shift ns, bound ns) each.
struct Pages {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pages {
    fn start(dir: &PageDir, pages: &[(&str, i64, u64)]) -> Self {
        let mut writers: Vec<(Writer, i64, u64)> = pages
            .iter()
            .map(|&(name, shift, bound)| {
                (Writer::create(&dir.options(name), &identity()).unwrap(), shift, bound)
            })
            .collect();
        let publish = |ws: &mut Vec<(Writer, i64, u64)>| {
            for (w, shift, bound) in ws.iter_mut() {
                let mut s = system_snapshot(Status::Locked, *bound);
                s.anchor_tai_ns = s.anchor_tai_ns.saturating_add_signed(*shift);
                w.publish(&s);
            }
        };
        publish(&mut writers);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    publish(&mut writers);
                }
            }
        });
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().unwrap().join();
    }
}

/// Runs nicclock with `args`; kills it and fails if it runs longer than 30 s.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nicclock");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("nicclock still ran after 30 s: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn compare_against_reports_the_offset_between_two_pages_within_their_bounds() {
    let dir = PageDir::new("cli-compare-pages");
    let _pages = Pages::start(&dir, &[("a", 0, 1_000), ("b", 300, 500), ("c", 5_000, 100)]);
    let d = dir.path.to_str().unwrap();
    let o = run(&[
        "--dir",
        d,
        "--page",
        "a",
        "compare",
        "--against",
        "b",
        "--count",
        "5",
        "--interval",
        "0.05",
        "--json",
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let lines: Vec<serde_json::Value> =
        text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(lines.len(), 6, "5 readings and a summary: {lines:?}");
    for r in &lines[..5] {
        let off = r["offset_ns"].as_i64().unwrap();
        // b runs 300 ns ahead of a; both map the same system clock, re-anchored every 50 ms
        // (each anchor's own sampling error is a few µs at most on a loaded machine).
        assert!((off - 300).abs() < 5_000, "offset {off}: {r}");
        let field = |k: &str| r[k].as_u64().unwrap();
        let (bracket, page, against) =
            (field("bracket_ns"), field("page_bound_ns"), field("against_bound_ns"));
        // Each bound as published, grown since its anchor by the page's drift allowance.
        assert!((1_000..1_000 + 10_000).contains(&page) && (500..500 + 10_000).contains(&against), "{r}");
        let combined = page + against + bracket.div_ceil(2);
        assert_eq!(field("combined_bound_ns"), combined, "{r}");
        assert_eq!(r["within_combined"], off.unsigned_abs() <= combined, "{r}");
        assert_eq!(r["within_page_bound"], off.unsigned_abs() <= page + bracket.div_ceil(2), "{r}");
    }
    let s = &lines[5]["summary"];
    assert_eq!(s["readings"], 5);
    assert_eq!(s["errors"], 0);

    // c is 5 µs off a but claims ±100 ns: outside the combined bound, exit 1, said per reading.
    let o =
        run(&["--dir", d, "--page", "a", "compare", "--against", "c", "--count", "3", "--interval", "0.05"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("OUTSIDE")).count(), 3, "{out}");
    assert!(out.contains("outside the page's own bound"), "{out}");
    assert!(
        out.contains("compare_pages readings 3 outside_combined 3 outside_page_bound 3 errors 0"),
        "{out}"
    );
}

#[test]
fn compare_against_usage_and_missing_pages() {
    let dir = PageDir::new("cli-compare-usage");
    let _pages = Pages::start(&dir, &[("a", 0, 1_000)]);
    let d = dir.path.to_str().unwrap();
    for (args, words) in [
        (vec!["compare", "--count", "3"], "--against"),
        (vec!["compare", "--json"], "--against"),
        (vec!["compare", "--against", "a", "--seconds", "1"], "--seconds"),
        (vec!["compare", "--against", "a", "--count", "0"], "--count"),
        (vec!["compare", "--against", "../x"], "--against"),
    ] {
        let mut all = vec!["--dir", d, "--page", "a"];
        all.extend(args.iter());
        let o = run(&all);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(words) && !err.contains("panicked"), "{args:?}: {err}");
    }
    let o = run(&["--dir", d, "--page", "a", "compare", "--against", "nope", "--count", "1"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--against nope") && err.contains("nicclock-nope"), "{err}");
}

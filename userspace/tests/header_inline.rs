//! A reader written from `include/nicclock.h` alone (tests/c/direct_reader.c: the header's rules and
//! its static inline conversion, no library) agrees with the Rust library: exactly on the arithmetic
//! (128-bit and split 64-bit builds), and on a live page read between two library readings.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{identity, system_snapshot, PageDir};
use nicclock::{period_from_ns_per_tick, Clock, Snapshot, Status, Writer};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The direct reader, built once per test process (tests run in parallel: two builds into one path
/// would race); `split` forces the header's 64-bit-only arithmetic.
fn build(split: bool) -> PathBuf {
    static BUILT: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[split as usize].get_or_init(|| compile(split)).clone()
}

fn compile(split: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nicclock-direct-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join(if split { "direct_reader_split" } else { "direct_reader" });
    let include = crate_dir().join("include");
    let src = crate_dir().join("tests/c/direct_reader.c");
    let mut cmd = Command::new("cc");
    cmd.args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(&exe);
    if split {
        cmd.arg("-DNICCLOCK_NO_INT128");
    }
    let out = cmd.output().expect("run cc");
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    exe
}

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// (counter_value, period, anchor, counter, bound, growth) covering realistic pages, the first
/// minutes and days after an anchor (where the header's old formula overflowed), counters before
/// the anchor, and arbitrary 64-bit values.
fn inputs() -> Vec<[u64; 6]> {
    let tsc = period_from_ns_per_tick(0.4);
    let raw = period_from_ns_per_tick(1.0);
    let mut v = vec![
        [1000, 1 << 48, 5_000, 1500, 100, 1_000_000],
        [0, tsc, 0, 2_500_000_000, 0, 0],     // 1 s of a 2.5 GHz TSC: 10^9 ns
        [7, tsc, 1 << 60, 7 + 250_000, 0, 0], // 100 µs: past the old formula's overflow
        [1000, raw, 5_000, 990, 0, 0],        // a counter a little before the anchor
        [0, u64::MAX, u64::MAX - 5, 1 << 62, u64::MAX, 7], // saturations
        [1 << 63, u64::MAX, 3, 0, u64::MAX - 1, u32::MAX as u64],
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..20_000 {
        let cv = rng.next();
        let period = match i % 4 {
            0 => tsc + rng.next() % (1 << 40),
            1 => raw + rng.next() % (1 << 36),
            _ => rng.next() >> (rng.next() % 64),
        };
        let delta = match i % 5 {
            0 => rng.next() % (1 << 20),
            1 => rng.next() % (1 << 44), // hours of a GHz counter
            2 => (rng.next() % (1 << 20)).wrapping_neg(),
            _ => rng.next(),
        };
        let anchor = if i % 7 == 0 { rng.next() } else { rng.next() >> 3 };
        let bound = if i % 11 == 0 { u64::MAX } else { rng.next() >> (rng.next() % 64) };
        v.push([cv, period, anchor, cv.wrapping_add(delta), bound, rng.next() >> 32]);
    }
    v
}

/// What the Rust library computes for one input: (tai saturated to u64, since, bound).
fn library(input: &[u64; 6]) -> (u64, i64, u64) {
    let [cv, period, anchor, counter, bound, growth] = *input;
    let snap = Snapshot {
        counter_value: cv,
        counter_period: period,
        anchor_tai_ns: anchor,
        error_bound_ns: bound,
        error_growth_ppt: growth as u32,
        ..system_snapshot(Status::Locked, 0)
    };
    let tai = snap.tai_at(counter);
    let since = (tai - anchor as i128) as i64;
    (tai.clamp(0, u64::MAX as i128) as u64, since, snap.error_at(tai))
}

#[test]
fn the_headers_inline_conversion_is_the_librarys_exactly() {
    let inputs = inputs();
    let text: String =
        inputs.iter().map(|i| format!("{} {} {} {} {} {}\n", i[0], i[1], i[2], i[3], i[4], i[5])).collect();
    for split in [false, true] {
        let exe = build(split);
        let mut child =
            Command::new(&exe).arg("calc").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let text = text.clone();
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
        assert_eq!(lines.len(), inputs.len(), "one answer per input");
        for (input, line) in inputs.iter().zip(&lines) {
            let (tai, since, bound) = library(input);
            assert_eq!(line, &format!("{tai} {since} {bound}"), "split={split} input {input:?}");
        }
        // The hand-computed cases, to show the library itself is right.
        assert_eq!(lines[0], "5500 500 100");
        assert_eq!(lines[1], "1000000000 1000000000 0");
        assert_eq!(lines[2], format!("{} 100000 0", (1u64 << 60) + 100_000));
        assert_eq!(lines[3], "4990 -10 0");
    }
}

#[test]
fn a_direct_reader_agrees_with_the_library_on_a_live_page() {
    let dir = PageDir::new("direct");
    let mut w = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    w.publish(&Snapshot { update_interval_ns: 10_000_000_000, ..system_snapshot(Status::Locked, 2_000) });
    let clock = Clock::open_in(&dir.path, "eth0").unwrap();
    for split in [false, true] {
        let exe = build(split);
        for _ in 0..5 {
            let before = clock.now().unwrap();
            let out = Command::new(&exe).arg("read").arg(dir.page("eth0")).output().unwrap();
            let after = clock.now().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
            let words: Vec<u64> = stdout.split_whitespace().skip(1).map(|w| w.parse().unwrap()).collect();
            let (tai, bound, status) = (words[0], words[1], words[2]);
            // One mapping and a monotonic counter: the C reading lies between the two library ones.
            assert!(before.time_ns <= tai && tai <= after.time_ns, "{before:?} {stdout} {after:?}");
            assert!(
                before.error_bound_ns() <= bound && bound <= after.error_bound_ns(),
                "{before:?} {stdout} {after:?}"
            );
            assert_eq!(status, Status::Locked as u64);
        }
    }
}

//! The idle PTP slave's CPU on this machine's own cores: `nicclockd --reference ptp` (the release
//! binary, whole: ppoll, the NIC's interrupt through an eventfd, rings, statime, page) on the
//! simulated NIC with a simulated grandmaster on its wire in real time (`sim:ptp-master=8`: 8
//! Syncs a second, as issue 10's target). After LOCKED, the daemon's main thread's CPU over a
//! window (schedstat), beside a floor thread in this process that only wakes at the daemon's rate.
//! The simulated NIC and master run on their own thread (their CPU is the hardware's and the
//! network's, printed apart). Register reads spin the simulator's bus latency (500 ns), as a
//! PCIe read stalls a core. Two configurations: an 82576 woken at each frame (the default), an
//! i210 read once per Sync exchange (`--ptp-wake exchange`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nicclock::{Clock, SyncCondition, SyncWait};

/// How long the CPU is measured once LOCKED.
const WINDOW: Duration = Duration::from_secs(20);

/// A thread's CPU time so far, ns (schedstat's first field).
fn cpu_ns(task: &Path) -> u64 {
    let s = std::fs::read_to_string(task.join("schedstat")).expect("schedstat (CONFIG_SCHED_INFO)");
    s.split_whitespace().next().and_then(|v| v.parse().ok()).expect("schedstat's run time")
}

/// A thread's voluntary context switches so far (its wake-ups after sleeping).
fn wakeups(task: &Path) -> u64 {
    let s = std::fs::read_to_string(task.join("status")).expect("/proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

/// The task directory of `pid`'s thread named `name`.
fn thread_named(pid: u32, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == name))
}

struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(label: &str, device: &str, extra: &[&str]) -> Daemon {
    let dir = std::env::temp_dir().join(format!("nicclock-bench-idle-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lock")).expect("a page directory");
    let child = Command::new(env!("CARGO_BIN_EXE_nicclockd"))
        .args(["--device", device, "--reference", "ptp", "--page-name", "idle"])
        .arg(format!("--page-dir={}", dir.display()))
        .arg(format!("--lock-dir={}", dir.join("lock").display()))
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nicclockd starts");
    Daemon { child, dir }
}

/// The floor: a thread that does nothing but sleep `period` and wake, for as long as `window`.
fn floor(period: Duration, window: Duration) -> (u64, u64) {
    std::thread::spawn(move || {
        let me = PathBuf::from("/proc/thread-self");
        let (cpu0, wake0) = (cpu_ns(&me), wakeups(&me));
        let end = Instant::now() + window;
        let mut next = Instant::now();
        while next < end {
            next += period;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        (cpu_ns(&me) - cpu0, wakeups(&me) - wake0)
    })
    .join()
    .expect("the floor thread")
}

fn measure(label: &str, device: &str, extra: &[&str]) {
    let d = start(label, device, extra);
    let pid = d.child.id();
    let began = Instant::now();
    let clock = loop {
        if let Ok(c) = Clock::open_in(&d.dir, "idle") {
            break c;
        }
        assert!(began.elapsed() < Duration::from_secs(20), "{label}: nicclockd made no page");
        std::thread::sleep(Duration::from_millis(20));
    };
    match clock.wait_until(SyncCondition::locked_within(1_000_000), Some(Duration::from_secs(90))) {
        Ok(SyncWait::Reached(_)) => {}
        other => panic!("{label}: the slave did not reach LOCKED within 90 s: {other:?}"),
    }
    println!("{label}: LOCKED after {:.1} s", began.elapsed().as_secs_f64());
    let main = PathBuf::from(format!("/proc/{pid}/task/{pid}"));
    let sim = thread_named(pid, "sim-ptp-master").expect("the simulated master's thread");
    // A short look at the daemon's rate first, for the floor's period.
    let (w0, t0) = (wakeups(&main), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let rate = (wakeups(&main) - w0) as f64 / t0.elapsed().as_secs_f64();
    let (cpu0, wake0, sim0, t0) = (cpu_ns(&main), wakeups(&main), cpu_ns(&sim), Instant::now());
    let (floor_cpu, floor_wakes) = floor(Duration::from_secs_f64(1.0 / rate.max(1.0)), WINDOW);
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu, wakes, sim_cpu) = (cpu_ns(&main) - cpu0, wakeups(&main) - wake0, cpu_ns(&sim) - sim0);
    let pct = |ns: u64| ns as f64 / (elapsed * 1e9) * 100.0;
    let per_wake = |ns: u64, n: u64| ns as f64 / n.max(1) as f64 / 1e3;
    let suffix = if label == "frame" { String::new() } else { format!("_{label}") };
    println!("figure ptp_idle_cpu_pct_native{suffix} {:.3}", pct(cpu));
    println!("figure ptp_idle_wakeups_per_s_native{suffix} {:.1}", wakes as f64 / elapsed);
    println!("figure ptp_idle_cpu_per_wakeup_us_native{suffix} {:.1}", per_wake(cpu, wakes));
    println!(
        "figure wake_floor_cpu_pct_native{suffix} {:.3} ({:.1} wake-ups/s, {:.1} us each)",
        pct(floor_cpu),
        floor_wakes as f64 / elapsed,
        per_wake(floor_cpu, floor_wakes)
    );
    println!("ratio ptp_idle_cpu_vs_wake_floor_native{suffix} {:.2}", cpu as f64 / floor_cpu.max(1) as f64);
    println!(
        "figure sim_nic_and_master_cpu_pct{suffix} {:.3} (the simulated hardware's thread)",
        pct(sim_cpu)
    );
    let status = clock.status().expect("the page");
    assert_eq!(status, nicclock::Status::Locked, "{label}: the slave stayed LOCKED through the window");
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    println!(
        "PTP slave idle CPU on this machine: nicclockd on the simulated NIC, a simulated master at 8 \
         Sync/s in real time, {} s after LOCKED (target: <= 1 % of one core)",
        WINDOW.as_secs()
    );
    measure("frame", "sim:ptp-master=8", &[]);
    measure("exchange", "sim:ptp-master=8,model=i210", &["--ptp-wake", "exchange"]);
}

//! `nicclock metrics` scraped over HTTP: every page of the directory with its labels, the status
//! and PTP port state sets, event counts that grow between scrapes, an unreadable page reported
//! as such; the output passes `promtool check metrics` (Debian package prometheus: required).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{identity, ptp_snapshot, system_snapshot, PageDir};
use nicclock::{EventKind, Snapshot, Status, Urgency, Writer};

const BIN: &str = env!("CARGO_BIN_EXE_nicclock");

/// The exporter, killed when dropped.
struct Exporter {
    child: Child,
    addr: String,
}

impl Exporter {
    /// Starts `nicclock metrics` on an ephemeral loopback port, its stderr into `stderr`; waits
    /// for its "serving" line (failing after 30 s).
    fn start(dir: &str, extra: &[&str], stderr: &std::path::Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["--dir", dir])
            .args(extra)
            .args(["metrics", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .expect("start nicclock metrics");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("nicclock metrics did not say where it listens within 30 s");
            }
        };
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.strip_suffix("/metrics\n"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self { child, addr }
    }

    /// GET `path` with HTTP/1.0: (status line, headers, body).
    fn get(&self, path: &str) -> (String, String, String) {
        let mut s = TcpStream::connect(&self.addr).expect("connect to the exporter");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("read the exporter's answer within 30 s");
        let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP answer");
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (status.to_string(), headers.to_ascii_lowercase(), body.to_string())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool check metrics` on `text`; fails the test when promtool is missing or objects.
fn promtool_check(text: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool not runnable ({e}): install Debian's package prometheus (tests/setup.sh does) — \
             this test checks the exposition with it and does not skip"
        ),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n--- the text:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Updates due every 10 s: the page stays fresh for the whole test.
fn fresh(s: Snapshot) -> Snapshot {
    Snapshot { update_interval_ns: 10_000_000_000, ..s }
}

fn has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
}

#[test]
fn serves_every_page_and_passes_promtool() {
    let dir = PageDir::new("metrics");
    let mut eth0 = Writer::create(&dir.options("eth0"), &identity()).unwrap();
    eth0.publish(&fresh(system_snapshot(Status::Locked, 1_000)));
    eth0.post(EventKind::Step, Urgency::Notice, 1_500, 0, 0);
    let mut ptp0 = Writer::create(&dir.options("ptp0"), &identity()).unwrap();
    ptp0.publish(&fresh(ptp_snapshot(Status::Holdover, 300)));
    std::fs::write(dir.page("junk"), b"not a page").unwrap();

    let errors = dir.path.join("exporter.err");
    let exporter = Exporter::start(dir.path.to_str().unwrap(), &[], &errors);
    let (status, headers, text) = exporter.get("/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK", "{headers}");
    assert!(headers.contains("content-type: text/plain; version=0.0.4"), "{headers}");
    promtool_check(&text);

    has(&text, "# TYPE nicclock_status gauge");
    has(&text, r#"nicclock_status{clock="eth0",status="LOCKED"} 1"#);
    has(&text, r#"nicclock_status{clock="eth0",status="HOLDOVER"} 0"#);
    has(&text, r#"nicclock_status{clock="ptp0",status="HOLDOVER"} 1"#);
    has(&text, r#"nicclock_stale{clock="eth0"} 0"#);
    has(&text, r#"nicclock_offset_seconds{clock="eth0"} -0.000000023"#);
    has(&text, r#"nicclock_frequency_ppb{clock="eth0"} 100"#);
    has(&text, r#"nicclock_servo_state{clock="eth0"} 2"#);
    has(&text, "# TYPE nicclock_updates_total counter");
    has(&text, r#"nicclock_updates_total{clock="ptp0"} 1"#);
    has(&text, r#"nicclock_events_total{clock="eth0",kind="STEP"} 1"#);
    has(&text, r#"nicclock_ptp_port_state{clock="ptp0",state="SLAVE"} 1"#);
    has(&text, r#"nicclock_ptp_port_state{clock="ptp0",state="LISTENING"} 0"#);
    has(&text, r#"nicclock_ptp_steps_removed{clock="ptp0"} 1"#);
    has(&text, r#"nicclock_page_readable{clock="junk"} 0"#);
    has(
        &text,
        r#"nicclock_clock_info{clock="ptp0",clock_id="52:54:00:ff:fe:12:34:56",model="82576",pci_address="0000:01:00.0",reference="ptp"} 1"#,
    );
    assert!(
        !text.contains(r#"nicclock_ptp_port_state{clock="eth0""#),
        "no PTP state for a system-clock page"
    );
    for family in ["error_bound_seconds", "update_age_seconds", "measurement_delay_seconds"] {
        assert!(text.contains(&format!("nicclock_{family}{{clock=\"eth0\"}} ")), "no {family}:\n{text}");
    }

    // Counters keep counting across scrapes.
    eth0.post(EventKind::Step, Urgency::Notice, -700, 0, 0);
    let (_, _, text) = exporter.get("/metrics");
    has(&text, r#"nicclock_events_total{clock="eth0",kind="STEP"} 2"#);
    promtool_check(&text);

    let (status, _, _) = exporter.get("/nope");
    assert_eq!(status, "HTTP/1.0 404 Not Found");
    drop(exporter);
    // The unreadable page is logged once, not at every scrape.
    let said = std::fs::read_to_string(&errors).unwrap();
    assert_eq!(said.lines().filter(|l| l.contains("junk")).count(), 1, "{said}");

    // --page: that page only.
    let only = Exporter::start(dir.path.to_str().unwrap(), &["--page", "ptp0"], &errors);
    let (_, _, text) = only.get("/metrics");
    has(&text, r#"nicclock_status{clock="ptp0",status="HOLDOVER"} 1"#);
    assert!(!text.contains(r#"clock="eth0""#) && !text.contains(r#"clock="junk""#), "{text}");
    promtool_check(&text);
}

#[test]
fn a_taken_port_is_a_clear_runtime_error() {
    let dir = PageDir::new("metrics-port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["--dir", dir.path.to_str().unwrap(), "metrics", "--listen", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    let out = Command::new(BIN).args(["metrics", "--listen", "localhost"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an address without a port is a usage error");
}

#[test]
fn the_metrics_unit_verifies_and_stays_unprivileged_on_loopback() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("systemd-analyze is needed to check the unit (Debian package systemd)");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../udev/nicclock-metrics.service");
    let unit = std::fs::read_to_string(path).unwrap();
    let dir = PageDir::new("metrics-unit");
    let local = dir.path.join("nicclock-metrics.service");
    std::fs::write(&local, unit.replace("/usr/local/bin/nicclock", BIN)).unwrap();
    let out = Command::new(analyze).arg("verify").arg(&local).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    for must in [
        "User=nicclock",
        "CapabilityBoundingSet=\n",
        "NICCLOCK_METRICS_LISTEN=127.0.0.1:9469",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(must), "the unit lacks {must:?}");
    }
    assert!(!unit.contains("PrivateDevices=yes"), "a private /dev would hide the pages in /dev/shm");
}

//! `nicclock metrics`: serves every time page in the directory as Prometheus metrics over HTTP
//! (the prometheus crate's text format, tiny_http for the server); unprivileged, it only reads pages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Result};
use nicclock::{list_pages, Clock, EventWait, ReferenceKind, Status};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::output::outln;

/// The exposition's content type: Prometheus text format 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A page the exporter keeps open between scrapes, with the events it has counted on it.
struct Page {
    clock: Clock,
    /// (device, inode) of the page file when opened: a new file under the name is reopened.
    file: (u64, u64),
    events: BTreeMap<&'static str, u64>,
    missed: u64,
}

/// The pages of one directory, as the scrapes see them.
pub struct Exporter {
    dir: PathBuf,
    max_age: Option<Duration>,
    /// --page: serve this page only.
    only: Option<String>,
    pages: BTreeMap<String, Page>,
    /// Problems already logged (each once, not at every scrape).
    warned: std::collections::BTreeSet<String>,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Exporter {
    pub fn new(dir: PathBuf, max_age: Option<Duration>, only: Option<String>) -> Self {
        Self { dir, max_age, only, pages: BTreeMap::new(), warned: Default::default() }
    }

    /// Opens pages that appeared (or were re-created), forgets those gone; returns the names
    /// that could not be opened, with why.
    fn refresh(&mut self) -> Vec<(String, String)> {
        let mut listed = match list_pages(&self.dir) {
            Ok(l) => l,
            Err(e) => return vec![(String::new(), e.to_string())],
        };
        if let Some(only) = &self.only {
            listed.retain(|(name, _)| name == only);
        }
        let mut failed = Vec::new();
        self.pages
            .retain(|name, p| listed.iter().any(|(n, path)| n == name && file_id(path) == Some(p.file)));
        for (name, path) in listed {
            if self.pages.contains_key(&name) {
                continue;
            }
            let Some(file) = file_id(&path) else { continue };
            match Clock::open_path(&path) {
                Ok(mut clock) => {
                    if let Some(age) = self.max_age {
                        clock.set_max_age(age);
                    }
                    // Counts start with the events still in the ring.
                    clock.rewind_events();
                    self.pages.insert(name, Page { clock, file, events: BTreeMap::new(), missed: 0 });
                }
                Err(e) => failed.push((name, e.to_string())),
            }
        }
        failed
    }

    /// One scrape: the exposition text of every page.
    pub fn scrape(&mut self) -> Result<String> {
        let failed = self.refresh();
        let registry = Registry::new_custom(Some("nicclock".into()), None)?;
        let m = Metrics::register(&registry)?;
        for (name, reason) in failed {
            if !name.is_empty() {
                m.readable.with_label_values(&[name.as_str()]).set(0);
            }
            if self.warned.insert(reason.clone()) {
                crate::output::warn(format_args!("metrics: {reason}"));
            }
        }
        for (name, page) in &mut self.pages {
            m.add(name, page);
        }
        let mut text = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut text)?;
        String::from_utf8(text).map_err(|e| anyhow!("the metrics text is not UTF-8: {e}"))
    }
}

/// The metric families of one scrape.
struct Metrics {
    info: IntGaugeVec,
    readable: IntGaugeVec,
    status: IntGaugeVec,
    stale: IntGaugeVec,
    offset: GaugeVec,
    freq: GaugeVec,
    delay: GaugeVec,
    servo_state: IntGaugeVec,
    bound: GaugeVec,
    age: GaugeVec,
    updates: IntCounterVec,
    events: IntCounterVec,
    missed: IntCounterVec,
    port_state: IntGaugeVec,
    steps_removed: IntGaugeVec,
}

/// Labels of the per-clock families, and of the state sets.
const CLOCK: &[&str] = &["clock"];

fn add<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> Result<T> {
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

impl Metrics {
    fn register(r: &Registry) -> Result<Self> {
        let o = Opts::new;
        Ok(Self {
            info: add(r, IntGaugeVec::new(
                o("clock_info", "The NIC behind each page: model, PCI address, clock identity, reference (value 1)"),
                &["clock", "model", "pci_address", "clock_id", "reference"],
            )?)?,
            readable: add(r, IntGaugeVec::new(o("page_readable", "1 when the page could be mapped and read, 0 when not"), CLOCK)?)?,
            status: add(r, IntGaugeVec::new(
                o("status", "The page's status as a state set: 1 for the current status, 0 for the others"),
                &["clock", "status"],
            )?)?,
            stale: add(r, IntGaugeVec::new(
                o("stale", "1 when the page had no update within its max age (its writer is gone or hung)"),
                CLOCK,
            )?)?,
            offset: add(r, GaugeVec::new(o("offset_seconds", "Last measured offset of the NIC clock from the reference"), CLOCK)?)?,
            freq: add(r, GaugeVec::new(o("frequency_ppb", "The servo's frequency adjustment, parts per billion"), CLOCK)?)?,
            delay: add(r, GaugeVec::new(o("measurement_delay_seconds", "Last measurement's delay (bracket width)"), CLOCK)?)?,
            servo_state: add(r, IntGaugeVec::new(
                o("servo_state", "linuxptp servo state (0 unlocked, 1 jump, 2 locked, 3 locked stable)"),
                CLOCK,
            )?)?,
            bound: add(r, GaugeVec::new(
                o("error_bound_seconds", "Error bound of the time read now (absent while the page gives no time)"),
                CLOCK,
            )?)?,
            age: add(r, GaugeVec::new(o("update_age_seconds", "Time since the page's last update"), CLOCK)?)?,
            updates: add(r, IntCounterVec::new(o("updates_total", "Updates the writer published on this page"), CLOCK)?)?,
            events: add(r, IntCounterVec::new(
                o("events_total", "Events on the page by kind, counted since this exporter opened it (from those still in its ring)"),
                &["clock", "kind"],
            )?)?,
            missed: add(r, IntCounterVec::new(
                o("events_missed_total", "Events overwritten in the page's ring before this exporter read them"),
                CLOCK,
            )?)?,
            port_state: add(r, IntGaugeVec::new(
                o("ptp_port_state", "PTP port state as a state set (pages with a PTP reference only)"),
                &["clock", "state"],
            )?)?,
            steps_removed: add(r, IntGaugeVec::new(
                o("ptp_steps_removed", "stepsRemoved announced by the PTP master (pages with a PTP reference only)"),
                CLOCK,
            )?)?,
        })
    }

    fn add(&self, name: &str, page: &mut Page) {
        let clock = &[name];
        let snap = match page.clock.snapshot() {
            Ok(s) => s,
            Err(_) => {
                self.readable.with_label_values(clock).set(0);
                return;
            }
        };
        self.readable.with_label_values(clock).set(1);
        let id = page.clock.identity();
        let r = &snap.reference;
        let clock_id = id.clock_id.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        self.info.with_label_values(&[name, &id.model, &id.pci_address, &clock_id, r.kind.name()]).set(1);
        for s in Status::ALL {
            self.status.with_label_values(&[name, s.name()]).set(i64::from(s == snap.status));
        }
        let now = page.clock.now();
        self.stale.with_label_values(clock).set(i64::from(matches!(now, Err(nicclock::Error::Stale { .. }))));
        if let Ok(now) = &now {
            self.bound.with_label_values(clock).set(now.error_bound_ns() as f64 * 1e-9);
        }
        self.offset.with_label_values(clock).set(snap.servo.offset_ns as f64 * 1e-9);
        self.freq.with_label_values(clock).set(snap.servo.freq_ppt as f64 / 1000.0);
        self.delay.with_label_values(clock).set(snap.servo.delay_ns as f64 * 1e-9);
        self.servo_state.with_label_values(clock).set(i64::from(snap.servo.state));
        if let Some(age) = page.clock.age_ns(&snap).filter(|_| snap.update_count > 0) {
            self.age.with_label_values(clock).set(age as f64 * 1e-9);
        }
        self.updates.with_label_values(clock).inc_by(snap.update_count);

        // Count the events that arrived since the last scrape (no waiting).
        while let Ok(w) = page.clock.wait_event(Some(Duration::ZERO)) {
            match w {
                EventWait::Event(e) => *page.events.entry(e.kind.name()).or_default() += 1,
                EventWait::Missed(n) => page.missed += n,
                EventWait::TimedOut => break,
            }
        }
        for (kind, n) in &page.events {
            self.events.with_label_values(&[name, kind]).inc_by(*n);
        }
        self.missed.with_label_values(clock).inc_by(page.missed);

        if r.kind == ReferenceKind::Ptp {
            for (i, state) in nicclock::abi::PTP_PORT_STATE_NAMES.iter().enumerate() {
                self.port_state.with_label_values(&[name, state]).set(i64::from(i as u32 == r.port_state));
            }
            self.steps_removed.with_label_values(clock).set(i64::from(r.steps_removed));
        }
    }
}

/// Serves `GET /metrics` on `listen` until killed.
pub fn serve(
    dir: &Path,
    only: Option<&str>,
    max_age: Option<Duration>,
    listen: SocketAddr,
) -> Result<ExitCode> {
    if !dir.is_dir() {
        return Err(anyhow!(
            "{} is not a directory: point --dir at nicclockd's page directory",
            dir.display()
        ));
    }
    let server = tiny_http::Server::http(listen)
        .map_err(|e| anyhow!("cannot listen on {listen}: {e} (choose another --listen address)"))?;
    let bound = server.server_addr().to_ip().ok_or_else(|| anyhow!("listening on a non-IP address"))?;
    outln!("serving the pages in {} on http://{bound}/metrics", dir.display());
    let mut exporter = Exporter::new(dir.to_path_buf(), max_age, only.map(str::to_string));
    for request in server.incoming_requests() {
        let response = match (request.method(), request.url()) {
            (tiny_http::Method::Get, "/metrics") => match exporter.scrape() {
                Ok(text) => tiny_http::Response::from_string(text).with_header(header(CONTENT_TYPE)),
                Err(e) => tiny_http::Response::from_string(format!("{e:#}\n")).with_status_code(500),
            },
            (tiny_http::Method::Get, "/") => tiny_http::Response::from_string(
                "nicclock metrics: the time pages' Prometheus metrics are at /metrics\n",
            ),
            (tiny_http::Method::Get, _) => {
                tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404)
            }
            _ => tiny_http::Response::from_string("only GET\n").with_status_code(405),
        };
        // A scraper that went away mid-answer is its problem, not ours.
        let _ = request.respond(response);
    }
    Ok(ExitCode::SUCCESS)
}

fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes("Content-Type", content_type).expect("a valid header")
}

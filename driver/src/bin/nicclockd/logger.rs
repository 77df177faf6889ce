//! Log lines on stderr shaped like linuxptp's: `nicclockd[12345.678]: message`, where the
//! bracket is CLOCK_MONOTONIC seconds (journald adds its own timestamp and unit name).

use log::{LevelFilter, Log, Metadata, Record};

use crate::args::LogLevel;

struct Logger;

/// The level a record is shown at. vfio-ioctls logs its own failures at error level and also
/// returns them; nicclockd reports what is returned, in words saying what to do. Its own lines
/// would only repeat that, or, while a removed device is torn down, alarm for nothing
/// ("Could not unbind VFIO group"): they are debug lines here. statime logs its filter's
/// workings at info level, several lines per Sync ("Measurement: …", "wander score: …"): those are
/// debug lines too — nicclockd logs the port's states, steps and a linuxptp-style line per update
/// itself — which also keeps a quiet daemon's CPU down (a third of it under QEMU went to them).
fn shown_level(metadata: &Metadata) -> log::Level {
    let target = metadata.target();
    if target.starts_with("vfio_ioctls")
        || (target.starts_with("statime") && metadata.level() == log::Level::Info)
    {
        log::Level::Debug
    } else {
        metadata.level()
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        shown_level(metadata) <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9);
        let level = match shown_level(record.metadata()) {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            _ => "",
        };
        // One write per line: eprintln! writes each piece of the format on its own (unbuffered
        // stderr), ~40 syscalls for a PTP counters line, each costly under QEMU TCG.
        let line = format!("nicclockd[{t:.3}]: {level}{}\n", record.args());
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }

    fn flush(&self) {}
}

pub fn init(level: LogLevel) {
    let _ = log::set_logger(&Logger);
    log::set_max_level(match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vfio_ioctls_lines_are_debug_and_ours_keep_their_level() {
        let md = |target, level| Metadata::builder().target(target).level(level).build();
        assert_eq!(shown_level(&md("vfio_ioctls::vfio_device", log::Level::Error)), log::Level::Debug);
        assert_eq!(shown_level(&md("nicclockd::run", log::Level::Error)), log::Level::Error);
        assert_eq!(shown_level(&md("nicclock_driver::discipline", log::Level::Warn)), log::Level::Warn);
        assert_eq!(shown_level(&md("statime::filters::kalman", log::Level::Info)), log::Level::Debug);
        assert_eq!(shown_level(&md("statime::port", log::Level::Warn)), log::Level::Warn);
    }
}

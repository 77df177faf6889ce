//! Log lines on stderr shaped like linuxptp's: `nicclockd[12345.678]: message`, where the
//! bracket is CLOCK_MONOTONIC seconds (journald adds its own timestamp and unit name).

use log::{LevelFilter, Log, Metadata, Record};

use crate::args::LogLevel;

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9);
        let level = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            _ => "",
        };
        eprintln!("nicclockd[{t:.3}]: {level}{}", record.args());
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

//! The stats CSV (`--stats-file`), written in batches: lines are kept and written at most once a
//! second, and whatever is kept when the daemon ends (signal, device loss, error) on the way out.

use std::fs::File;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// How often kept lines are written: at 10 updates a second, one `write` instead of ten (each a
/// syscall, ~50 µs under QEMU's TCG).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The stats CSV: lines kept in memory and written together.
pub struct StatsFile {
    file: File,
    pending: Vec<u8>,
    last_write: Option<Instant>,
}

impl StatsFile {
    pub fn new(file: File) -> Self {
        Self { file, pending: Vec::with_capacity(4096), last_write: None }
    }

    /// Keeps `line` (with its newline) and writes what is kept when the last write was
    /// [`FLUSH_INTERVAL`] or more before `now` (the first line at once).
    pub fn push(&mut self, line: &str, now: Instant) -> io::Result<()> {
        self.pending.extend_from_slice(line.as_bytes());
        if self.last_write.is_none_or(|t| now.saturating_duration_since(t) >= FLUSH_INTERVAL) {
            self.last_write = Some(now);
            return self.flush();
        }
        Ok(())
    }

    /// Writes what is kept, in one `write` (when it all fits).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.pending);
        self.pending.clear();
        result
    }
}

impl Drop for StatsFile {
    /// The daemon's end (a signal's clean stop, device loss, an error returned): nothing kept is lost.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::warn!("stats file: {e}; its last lines are lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("nicclockd-stats-{name}-{}.csv", std::process::id()))
    }

    #[test]
    fn lines_are_written_at_most_once_a_second_and_at_the_end() {
        let path = temp("batch");
        let file = File::create(&path).unwrap();
        let mut stats = StatsFile::new(file);
        let t0 = Instant::now();
        let read = || std::fs::read_to_string(&path).unwrap();
        stats.push("a\n", t0).unwrap();
        assert_eq!(read(), "a\n", "the first line at once");
        for (k, line) in ["b\n", "c\n", "d\n"].iter().enumerate() {
            stats.push(line, t0 + Duration::from_millis(100 * (k as u64 + 1))).unwrap();
        }
        assert_eq!(read(), "a\n", "kept within the second");
        stats.push("e\n", t0 + FLUSH_INTERVAL).unwrap();
        assert_eq!(read(), "a\nb\nc\nd\ne\n", "a second later, all of it in one write");
        stats.push("f\n", t0 + FLUSH_INTERVAL + Duration::from_millis(100)).unwrap();
        drop(stats);
        assert_eq!(read(), "a\nb\nc\nd\ne\nf\n", "what was kept is written at the end");
        std::fs::remove_file(&path).unwrap();
    }
}

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

/// Appends `n` in decimal (what `Display` writes), without `core::fmt`: at 10 updates a second
/// its machinery per number was most of a stats line's cost.
pub fn push_decimal(line: &mut String, mut n: u64) {
    if n == 0 {
        // Most of a PTP line's drop counters.
        line.push('0');
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// Appends `n` in decimal, with its sign.
pub fn push_signed(line: &mut String, n: i64) {
    if n < 0 {
        line.push('-');
    }
    push_decimal(line, n.unsigned_abs());
}

/// Appends `thousandths` / 1000 with three decimals (`{:.3}` of that value).
pub fn push_thousandths(line: &mut String, thousandths: i64) {
    if thousandths < 0 {
        line.push('-');
    }
    let t = thousandths.unsigned_abs();
    push_decimal(line, t / 1000);
    line.push('.');
    let frac = t % 1000;
    line.push(char::from(b'0' + (frac / 100) as u8));
    line.push(char::from(b'0' + (frac / 10 % 10) as u8));
    line.push(char::from(b'0' + (frac % 10) as u8));
}

/// Appends `x` with three decimals, as `{:.3}` writes it away from exact ties.
pub fn push_fixed3(line: &mut String, x: f64) {
    let t = (x * 1000.0).round();
    if t.is_finite() && t.abs() < 9e15 {
        if t == 0.0 && x.is_sign_negative() {
            line.push('-'); // `{:.3}` keeps the sign of a small negative value: -0.000
        }
        push_thousandths(line, t as i64);
    } else {
        line.push_str(&format!("{x:.3}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_format_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12345, u64::from(u32::MAX), u64::MAX] {
            let mut s = String::from(",");
            push_decimal(&mut s, n);
            assert_eq!(s, format!(",{n}"));
        }
        for n in [0, -1, 7, -149_897, i64::MAX, i64::MIN] {
            let mut s = String::new();
            push_signed(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for x in
            [0.0, -0.0, 1457.97, -5061.387, 0.0004, -0.0004, 0.5, 123_456.789, -1e-9, 55.167, 1e300, f64::NAN]
        {
            let mut s = String::new();
            push_fixed3(&mut s, x);
            assert_eq!(s, format!("{x:.3}"), "{x}");
        }
    }

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

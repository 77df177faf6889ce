//! The CLI's one way to write: every line of standard output goes through [`line`] (the `outln!`
//! macro), so a closed pipe or a full disk is an error the caller returns, never a panic.
//! A closed pipe (EPIPE: `nicclock watch | head -1`) ends the command quietly with exit 0.

use std::fmt;
use std::io::{self, Write};

/// Writing standard output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader went away (EPIPE): not an error of ours, the command just ends (exit 0).
    #[error("standard output was closed")]
    Closed,
    /// Anything else (ENOSPC on /dev/full or a full disk, EIO, ...): a runtime error (exit 1).
    #[error("cannot write to standard output: {0}")]
    Failed(io::Error),
}

/// Writes one line (and flushes it, so the error shows here and not at exit).
pub fn line(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()).map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Failed(e)
        }
    })
}

/// A diagnostic on standard error; a failure to write it is ignored (there is nowhere left to say it).
pub fn warn(args: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "nicclock: {args}");
}

/// `outln!("...", args)`: [`line`] with format arguments, `?`-propagating its error.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}
pub(crate) use outln;

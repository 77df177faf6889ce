//! Page names and where their files live: the one set of rules the reader, the writer and both
//! command lines apply (`nicclock-<name>` in the page directory, a name that cannot escape it).

use std::path::{Path, PathBuf};

use crate::abi::FILE_PREFIX;
use crate::error::WriterError;

/// What a valid name looks like, for error messages.
pub const NAME_RULES: &str =
    "use letters, digits, '.', '_', ':' or '-', at most 63 bytes, not starting with '.'";

/// Longest page name in bytes (the header's `name` field is 64 bytes, NUL-terminated).
pub const MAX_NAME_LEN: usize = 63;

/// `dir/nicclock-<name>`. Does not check `name`: see [`name_problem`].
pub fn page_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{FILE_PREFIX}{name}"))
}

/// What is wrong with a page name, if anything: non-empty, ≤ 63 bytes, `[A-Za-z0-9._:-]`, not
/// starting with '.' (so never `..`, never a path).
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 63 bytes")
    } else if name.contains('/') {
        Some("it contains '/'")
    } else if name.starts_with('.') {
        Some("it starts with '.'")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) {
        Some("it contains a character other than letters, digits, '.', '_', ':' and '-'")
    } else {
        None
    }
}

/// Checks a page name (see [`name_problem`]), as the writer reports it.
pub fn validate_name(name: &str) -> Result<(), WriterError> {
    match name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(WriterError::InvalidName { name: name.into(), reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_directory_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "é", &"x".repeat(64)] {
            assert!(name_problem(bad).is_some(), "{bad:?} accepted");
        }
        for good in ["eth0", "nic.0", "0000:01:00.0", "a-b_c", &"x".repeat(63)] {
            assert_eq!(name_problem(good), None, "{good:?} refused");
        }
        assert_eq!(page_path(Path::new("/dev/shm"), "eth0"), Path::new("/dev/shm/nicclock-eth0"));
    }
}

//! The kernel's boot id (`/proc/sys/kernel/random/boot_id`): the writer stamps it into a page and
//! readers refuse a page stamped by another boot (its counter mapping means nothing after a reboot).

use std::io;
use std::path::Path;
use std::sync::OnceLock;

/// Where Linux publishes the boot id, a random UUID drawn at every boot.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// This boot's id as 16 bytes (the UUID's hex digits in text order), read once per process.
pub fn current() -> io::Result<[u8; 16]> {
    static ID: OnceLock<Result<[u8; 16], String>> = OnceLock::new();
    ID.get_or_init(|| {
        let text = std::fs::read_to_string(Path::new(BOOT_ID_PATH)).map_err(|e| e.to_string())?;
        parse(&text).ok_or_else(|| format!("{BOOT_ID_PATH} holds {:?}, not a UUID", text.trim()))
    })
    .clone()
    .map_err(io::Error::other)
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (a trailing newline allowed).
pub fn parse(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.trim().bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 || text.trim().len() != 36 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        id[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(id)
}

/// The UUID text of a boot id, for messages.
pub fn format(id: &[u8; 16]) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_the_kernels_uuid_text() {
        let text = "6f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n";
        let id = parse(text).unwrap();
        assert_eq!(id[0], 0x6f);
        assert_eq!(id[15], 0xf0);
        assert_eq!(format(&id), text.trim());
        for bad in
            ["", "6f1e2d3c", "6f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fz", "6f1e2d3c4b5a69788796a5b4c3d2e1f0"]
        {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let ours = current().unwrap();
        assert_ne!(ours, [0; 16], "this boot has an id");
    }
}

//! Which boot of the host this is, and for how long it has been up.
//!
//! Why: the boot id is a random UUID the kernel draws at each boot. Kept in the probe's state
//! and compared at the next cycle, it tells a reboot of the host (a proxy and its backends
//! that all restarted, maybe with new addresses) from a restart of the probe alone, which the
//! uptime cannot.

use std::fs;
use std::io;

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
const UPTIME: &str = "/proc/uptime";

/// The current boot's id (`6fa2d3c2-7c64-4bb6-a3f6-0b5fd0a0f2e1`).
pub fn boot_id() -> io::Result<String> {
    parse_boot_id(&read(BOOT_ID)?)
}

/// Whole seconds since the host booted.
pub fn uptime_s() -> io::Result<u64> {
    parse_uptime(&read(UPTIME)?)
}

fn read(path: &str) -> io::Result<String> {
    fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {path}: {e}")))
}

/// The text of [`BOOT_ID`]: a UUID and a newline.
fn parse_boot_id(text: &str) -> io::Result<String> {
    let id = text.trim();
    match uuid::Uuid::parse_str(id) {
        Ok(_) if id.len() == 36 => Ok(id.to_ascii_lowercase()),
        _ => Err(unexpected(BOOT_ID, text, "a UUID")),
    }
}

/// The text of [`UPTIME`]: seconds up and seconds idle, with two decimals
/// (`350735.47 2343888.90`). The fraction is dropped.
fn parse_uptime(text: &str) -> io::Result<u64> {
    let first = text.split_ascii_whitespace().next().unwrap_or("");
    let (whole, frac) = first.split_once('.').unwrap_or((first, "0"));
    match whole.parse::<u64>() {
        Ok(s) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => Ok(s),
        _ => Err(unexpected(UPTIME, text, "seconds as the first field")),
    }
}

fn unexpected(path: &str, text: &str, wanted: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{path} does not hold {wanted}: {text:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_id_is_the_trimmed_uuid() {
        let id = parse_boot_id("6fa2d3c2-7c64-4bb6-a3f6-0b5fd0a0f2e1\n").unwrap();
        assert_eq!(id, "6fa2d3c2-7c64-4bb6-a3f6-0b5fd0a0f2e1");
        for bad in [
            "",
            "\n",
            "not-a-uuid\n",
            "6fa2d3c27c644bb6a3f60b5fd0a0f2e1\n",
        ] {
            let err = parse_boot_id(bad).unwrap_err().to_string();
            assert!(
                err.contains(BOOT_ID) && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn uptime_is_the_whole_seconds_of_the_first_field() {
        assert_eq!(parse_uptime("350735.47 2343888.90\n").unwrap(), 350_735);
        assert_eq!(parse_uptime("0.99 0.01\n").unwrap(), 0);
        for bad in ["", "-1.00 2.00\n", "abc 1.00\n", "12. 1.00\n", "1.2e3 1\n"] {
            let err = parse_uptime(bad).unwrap_err().to_string();
            assert!(
                err.contains(UPTIME) && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_running_kernel_gives_both() {
        let id = boot_id().unwrap();
        assert_eq!(id, boot_id().unwrap(), "the same boot");
        assert!(uptime_s().unwrap() > 0);
    }
}

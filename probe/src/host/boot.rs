//! Which boot of the host this is, and for how long it has been up.
//!
//! Why: the boot id is a random UUID the kernel draws at each boot. Kept in the probe's state
//! and compared at the next cycle, it tells a reboot of the host (a proxy and its backends
//! that all restarted, maybe with new addresses) from a restart of the probe alone, which the
//! uptime cannot.

use std::fs;
use std::io;
use std::path::Path;

/// Under `proc_root`.
const BOOT_ID: &str = "sys/kernel/random/boot_id";
/// Under `proc_root`; also what the kernel log dates its records from.
pub const UPTIME: &str = "uptime";

/// The current boot's id (`6fa2d3c2-7c64-4bb6-a3f6-0b5fd0a0f2e1`), read under `proc_root`.
pub fn boot_id(proc_root: &Path) -> io::Result<String> {
    let path = proc_root.join(BOOT_ID);
    parse_boot_id(&path, &read(&path)?)
}

/// Whole seconds since the host booted, read under `proc_root`.
pub fn uptime_s(proc_root: &Path) -> io::Result<u64> {
    let path = proc_root.join(UPTIME);
    parse_uptime(&path, &read(&path)?)
}

fn read(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))
}

/// The text of [`BOOT_ID`]: a UUID and a newline.
fn parse_boot_id(path: &Path, text: &str) -> io::Result<String> {
    let id = text.trim();
    match uuid::Uuid::parse_str(id) {
        Ok(_) if id.len() == 36 => Ok(id.to_ascii_lowercase()),
        _ => Err(unexpected(path, text, "a UUID")),
    }
}

/// The text of [`UPTIME`]: seconds up and seconds idle, with two decimals
/// (`350735.47 2343888.90`). The fraction is dropped.
fn parse_uptime(path: &Path, text: &str) -> io::Result<u64> {
    let first = text.split_ascii_whitespace().next().unwrap_or("");
    let (whole, frac) = first.split_once('.').unwrap_or((first, "0"));
    match whole.parse::<u64>() {
        Ok(s) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => Ok(s),
        _ => Err(unexpected(path, text, "seconds as the first field")),
    }
}

fn unexpected(path: &Path, text: &str, wanted: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} does not hold {wanted}: {text:?}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC: &str = "/proc";

    #[test]
    fn boot_id_is_the_trimmed_uuid() {
        let path = Path::new(PROC).join(BOOT_ID);
        let id = parse_boot_id(&path, "6fa2d3c2-7c64-4bb6-a3f6-0b5fd0a0f2e1\n").unwrap();
        assert_eq!(id, "6fa2d3c2-7c64-4bb6-a3f6-0b5fd0a0f2e1");
        for bad in [
            "",
            "\n",
            "not-a-uuid\n",
            "6fa2d3c27c644bb6a3f60b5fd0a0f2e1\n",
        ] {
            let err = parse_boot_id(&path, bad).unwrap_err().to_string();
            assert!(
                err.contains("/proc/sys/kernel/random/boot_id")
                    && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn uptime_is_the_whole_seconds_of_the_first_field() {
        let path = Path::new(PROC).join(UPTIME);
        assert_eq!(
            parse_uptime(&path, "350735.47 2343888.90\n").unwrap(),
            350_735
        );
        assert_eq!(parse_uptime(&path, "0.99 0.01\n").unwrap(), 0);
        for bad in ["", "-1.00 2.00\n", "abc 1.00\n", "12. 1.00\n", "1.2e3 1\n"] {
            let err = parse_uptime(&path, bad).unwrap_err().to_string();
            assert!(
                err.contains("/proc/uptime") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_running_kernel_gives_both() {
        let proc = Path::new(PROC);
        let id = boot_id(proc).unwrap();
        assert_eq!(id, boot_id(proc).unwrap(), "the same boot");
        assert!(uptime_s(proc).unwrap() > 0);
    }
}

//! The end-to-end lab: real nginx, unbound, collector and probe in network namespaces.
//!
//! Tests here need root (namespaces) and the workspace's binaries (`cargo build --bins`).
//! Everything a test makes is named after its process and removed when its [`Lab`] drops,
//! even when the test fails; a failed test prints the tail of every service's log and keeps
//! the lab's files under `target/e2e/`.

pub mod browser;
pub mod evidence;
pub mod lab;
pub mod process;
pub mod receivers;
pub mod services;
pub mod wait;

use std::path::PathBuf;

pub use lab::{Host, Lab};
pub use process::Service;
pub use wait::wait_for;

/// `target/e2e`: where labs keep their files.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test>-<hash>  ->  target/e2e
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("e2e"))
        .unwrap_or_else(|| std::env::temp_dir().join("causeway-e2e"))
}

/// Milliseconds since the Unix epoch, as the probe stamps its checks.
pub use causeway_service::now_ms;

//! The real programs a lab runs: nginx and its neighbours ([`web`]), unbound ([`dns`]),
//! Causeway's collector ([`collector`]) and probe ([`probe`]).

mod collector;
mod dns;
mod probe;
mod web;

pub use collector::*;
pub use dns::*;
pub use probe::*;
pub use web::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The text the lab's canary page contains, and the probe expects.
pub const CANARY_TEXT: &str = "causeway canary ok";

/// How long a service may take to come up in a lab.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where cargo put Causeway's binaries: beside this test's own executable's parent.
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no parent directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --bins` first (scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

fn sbin(name: &str) -> String {
    let path = format!("/usr/sbin/{name}");
    if Path::new(&path).exists() {
        path
    } else {
        name.to_owned()
    }
}

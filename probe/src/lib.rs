//! `causeway-probe`: the agent. Every `interval` it requests each canary site on every address
//! its resolvers give, records how each phase went, classifies failures and sends the report
//! to the collector through an on-disk spool.
//!
//! Modules, one job each (public only those that the binary, `main.rs`, and the benches use):
//! - [`config`]: the TOML config, strictly validated.
//! - `checks::dns`: per-resolver resolution; `checks::http`: the canary request.
//! - [`cycle`]: one cycle, from config to [`causeway_schema::Report`].
//! - `spool`: the on-disk outbox; `upload`: sending reports to the collector, one at a time,
//!   and the uploader task that drains the spool.
//! - [`run`]: the service loop, signals, config reloads and the watchdog.
//! - [`notify`]: systemd notifications (ready, status, watchdog, reloading, stopping).
//! - `privileges`: what the probe can see with its privileges, said once at start.
//! - [`os`]: every input taken from the operating system, behind one seam chosen at start.

mod capture;
mod checks;
pub mod config;
pub mod cycle;
pub mod host;
pub mod os;
mod privileges;
pub mod run;
mod spool;
mod state;
mod upload;

pub use causeway_service::{notify, now_ms};

/// Makes ring the process's rustls provider (for reqwest, built with `rustls-no-provider`).
/// Call once at start; later calls do nothing.
pub fn install_crypto_provider() {
    // Err means a provider is installed already (another call, or a test): that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) use causeway_service::AbortOnDrop;

/// Waits until the flag is true. A dropped sender means nobody can ask us to stop: wait forever.
pub(crate) async fn signalled(rx: &mut tokio::sync::watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

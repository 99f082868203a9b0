//! `causeway-service`: what the probe and the collector (and probectl, for the clock) share as
//! long-running programs, written once: the wall clock in milliseconds, logging to stderr,
//! the signals that stop them, systemd's notifications ([`notify`]), tasks that end with their
//! owner, and locks that outlive a panicked holder.

pub mod notify;

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as reports and the database carry them; a clock before
/// 1970 reads as 0 rather than failing.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(feature = "logging")]
/// Logs to stderr at `info` unless `RUST_LOG` says otherwise. stdout stays for what scripts
/// capture (`token add` prints the token); colours only for people at a terminal, as the
/// journal would store the escape codes.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// Waits for SIGTERM (systemd's stop) or SIGINT (Ctrl-C) and says which came.
pub async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Aborts a spawned task when dropped, so a task tied to something (a check's connection
/// driver, the collector's pruner) never outlives it, whichever way that ends.
pub struct AbortOnDrop(tokio::task::AbortHandle);

impl AbortOnDrop {
    pub fn new<T>(task: &tokio::task::JoinHandle<T>) -> AbortOnDrop {
        AbortOnDrop(task.abort_handle())
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Locks `m`, also when a thread panicked while holding it: the data behind these locks
/// (counters, flow registries, caches) stays usable, and one panic must not stop the
/// program's every later use of it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _held = m2.lock().unwrap();
            panic!("poisoning the lock on purpose");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }

    #[tokio::test]
    async fn a_dropped_guard_aborts_its_task() {
        let task = tokio::spawn(std::future::pending::<()>());
        drop(AbortOnDrop::new(&task));
        assert!(task.await.unwrap_err().is_cancelled());
    }
}

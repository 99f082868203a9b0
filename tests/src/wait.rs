//! Waiting for a condition, with a deadline: never a bare sleep.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

/// How often a condition is looked at.
const POLL: Duration = Duration::from_millis(100);

/// Calls `probe` until it returns `Ok(Some(value))` or `timeout` passes. An `Err` from `probe`
/// counts as "not yet" (a service still starting), and the last one is named in the timeout
/// error, so a failed wait says what it last saw.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match probe() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {what}; last: {last}"
            ));
        }
        std::thread::sleep(POLL);
    }
}

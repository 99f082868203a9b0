//! The checks, one module per kind, all of one shape ([`Check`], after blackbox_exporter's
//! `ProbeFn`): a check gets its target and the deadline the runner chose, and returns an
//! outcome; failures are data for the report, never errors for the caller. The runner
//! ([`run`]) owns the timing: it turns the configured timeout into the deadline and stamps
//! the time the check took on its outcome, so every kind is timed the same way.
//!
//! The deadline is the check's to keep (it may spend what is left of it on evidence, such as
//! the packets of a request that hung); a check that ignores it hangs the cycle, which the
//! service's watchdog then reports (see `run::watchdog`).
//!
//! Kinds: [`dns::Query`] (one question to one name server), [`reach::Echo`] and
//! [`reach::TcpConnect`] (is a silent name server's host there at all), [`http::Fetch`] (the
//! canary request to one address). [`backends`] is evidence for a failed check, not a check.

pub mod backends;
pub mod dns;
pub mod http;
pub mod reach;
pub mod tls;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// A kind of check for targets `T`.
pub trait Check<T>: Send + Sync {
    type Outcome: Timed + Send;

    /// Checks `target`, returning by `deadline`.
    fn run(&self, target: T, deadline: Instant) -> impl Future<Output = Self::Outcome> + Send;
}

/// An outcome the runner stamps with the time its check took.
pub trait Timed {
    fn set_elapsed_ms(&mut self, ms: f64);
}

/// What is left of `deadline`, to the millisecond (a check given 700 ms an instant ago says
/// "within 700ms", not 699).
pub fn time_left(deadline: Instant) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    Duration::from_millis((left.as_secs_f64() * 1000.0).round() as u64)
}

/// Runs `check` on `target` with `timeout`, and stamps the time it took on its outcome.
pub async fn run<T, C: Check<T>>(check: &C, target: T, timeout: Duration) -> C::Outcome {
    let start = Instant::now();
    let mut outcome = check.run(target, start + timeout).await;
    outcome.set_elapsed_ms(start.elapsed().as_secs_f64() * 1000.0);
    outcome
}

impl Timed for causeway_schema::DnsQuery {
    fn set_elapsed_ms(&mut self, ms: f64) {
        self.elapsed_ms = ms;
    }
}

impl Timed for causeway_schema::ReachProbe {
    fn set_elapsed_ms(&mut self, ms: f64) {
        self.elapsed_ms = ms;
    }
}

impl Timed for http::HttpOutcome {
    fn set_elapsed_ms(&mut self, ms: f64) {
        self.total_ms = ms;
    }
}

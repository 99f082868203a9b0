//! The service manager's watchdog, fed from the main loop only, so a loop that hangs stops
//! feeding it; a cycle or reload in flight keeps it fed for a bounded allowance.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::config::format_duration;
use crate::notify::Notifier;

/// A cycle (or a reload) in flight keeps the watchdog fed for this many intervals at most:
/// each of its timeouts is shorter than the interval, and it has a few steps one after the
/// other (resolve, request, look at listeners and backends). One that runs longer is hung;
/// the watchdog then starves and the service manager restarts the probe.
pub const CYCLE_ALLOWANCE_INTERVALS: u32 = 4;
/// ... and for at least this long, whatever the interval.
pub const MIN_CYCLE_ALLOWANCE: Duration = Duration::from_secs(30);

/// How long a cycle in flight keeps the watchdog fed.
pub fn cycle_allowance(interval: Duration, min: Duration) -> Duration {
    interval.saturating_mul(CYCLE_ALLOWANCE_INTERVALS).max(min)
}

/// Feeds the service manager's watchdog at half its period, from the main loop only: a loop
/// that hangs stops feeding it, and the service manager restarts the probe.
pub(super) struct Watchdog {
    notifier: Notifier,
    ticker: Option<Interval>,
}

impl Watchdog {
    pub(super) fn new(notifier: &Notifier) -> Watchdog {
        let ticker = notifier.watchdog_ping_every().map(|every| {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticker
        });
        Watchdog {
            notifier: notifier.clone(),
            ticker,
        }
    }

    /// Resolves when the watchdog is due; never without a watchdog.
    pub(super) async fn tick(&mut self) {
        match &mut self.ticker {
            Some(ticker) => {
                ticker.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Runs `work` (a cycle, a reload) to its end, feeding the watchdog meanwhile for at most
    /// `allowance`: work that runs longer is hung, and the watchdog is left to starve.
    pub(super) async fn feed_while<F: Future>(
        &mut self,
        allowance: Duration,
        what: &str,
        work: F,
    ) -> F::Output {
        let started = Instant::now();
        let mut work = std::pin::pin!(work);
        let mut starving = false;
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                () = self.tick() => {
                    if started.elapsed() <= allowance {
                        self.notifier.watchdog();
                    } else if !starving {
                        starving = true;
                        let why = format!(
                            "{what} has run for more than {}: no longer feeding the watchdog",
                            format_duration(allowance)
                        );
                        tracing::error!("{why}; the service manager will restart the probe");
                        self.notifier.status(&why);
                    }
                }
            }
        }
    }
}

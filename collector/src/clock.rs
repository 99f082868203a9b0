//! The collector's clock, injectable so tests can pin "now" (staleness, windows, validation).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Clock(Arc::new(system_now_ms))
    }

    /// A clock that always says `ms` (tests).
    pub fn fixed(ms: i64) -> Self {
        Clock(Arc::new(move || ms))
    }

    /// Any function of nothing (tests that move time forward).
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now_ms={})", self.now_ms())
    }
}

/// The wall clock in milliseconds; a clock before 1970 reads as 0 rather than failing.
pub fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

//! The remote ends the kernel filter passes: those of the flows being watched, and, for
//! [`LINGER`] after their last flow ended, those of recent ones.
//!
//! Why linger: every change of the set means a new program attached to the socket, which the
//! kernel converts and JIT-compiles. A probe checking every few seconds uses the same targets
//! each cycle, so keeping them across the gap attaches the filter once per target set instead
//! of twice per connection. They do not stay for good: while a target is in the filter, any
//! other traffic to the canary's address and port on that interface reaches the capture
//! thread (to be dropped there), so a probe with a long interval closes the filter between
//! checks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::bpf::{MAX_TARGETS, Target};

/// How long a target stays in the filter after its last flow ended.
pub(crate) const LINGER: Duration = Duration::from_secs(3);

/// The filter holds [`MAX_TARGETS`] targets with flows already.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

#[derive(Debug, Default)]
pub(crate) struct Targets {
    /// Targets with flows, and how many flows each.
    in_use: BTreeMap<Target, usize>,
    /// Targets without flows, kept in the filter until their instant.
    lingering: BTreeMap<Target, Instant>,
}

impl Targets {
    /// Counts a flow to `target`. True when the target is not in the filter yet, which must
    /// then be rebuilt from [`Targets::filter`] (undo with [`Targets::forget`] if that fails).
    /// A new target makes room by dropping the lingering ones that are due, or all of them
    /// when the filter is full: the filter is rebuilt anyway.
    pub(crate) fn add(&mut self, target: Target, now: Instant) -> Result<bool, Full> {
        if let Some(n) = self.in_use.get_mut(&target) {
            *n += 1;
            return Ok(false);
        }
        if self.lingering.remove(&target).is_some() {
            self.in_use.insert(target, 1);
            return Ok(false);
        }
        if self.in_use.len() >= MAX_TARGETS {
            return Err(Full);
        }
        self.expire(now);
        if self.in_use.len() + self.lingering.len() >= MAX_TARGETS {
            self.lingering.clear();
        }
        self.in_use.insert(target, 1);
        Ok(true)
    }

    /// Takes back the [`Targets::add`] of a new target whose filter could not be attached.
    pub(crate) fn forget(&mut self, target: Target) {
        self.in_use.remove(&target);
    }

    /// One flow to `target` ended. True when it was the last: the target now lingers, and
    /// whoever waits for [`Targets::next_expiry`] should look again.
    pub(crate) fn remove(&mut self, target: Target, now: Instant) -> bool {
        let Some(n) = self.in_use.get_mut(&target) else {
            return false;
        };
        *n -= 1;
        if *n > 0 {
            return false;
        }
        self.in_use.remove(&target);
        self.lingering.insert(target, now + LINGER);
        true
    }

    /// Drops the lingering targets that are due. True if any went: rebuild the filter.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let before = self.lingering.len();
        self.lingering.retain(|_, until| *until > now);
        self.lingering.len() != before
    }

    /// When the next lingering target is due, if any lingers.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.lingering.values().min().copied()
    }

    /// Every target the filter should pass, sorted.
    pub(crate) fn filter(&self) -> Vec<Target> {
        let mut all: Vec<Target> = self
            .in_use
            .keys()
            .chain(self.lingering.keys())
            .copied()
            .collect();
        all.sort();
        all
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use.len()
    }

    pub(crate) fn lingering(&self) -> usize {
        self.lingering.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16) -> Target {
        Target {
            ip: "10.0.0.2".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn a_target_is_new_once_and_lingers_after_its_last_flow() {
        let t0 = Instant::now();
        let mut t = Targets::default();
        assert_eq!(t.add(target(80), t0), Ok(true));
        assert_eq!(
            t.add(target(80), t0),
            Ok(false),
            "a second flow, same target"
        );
        assert!(!t.remove(target(80), t0), "one flow is left");
        assert!(t.remove(target(80), t0), "the last flow: it lingers");
        assert_eq!((t.in_use(), t.lingering()), (0, 1));
        assert_eq!(t.filter(), [target(80)]);
        assert_eq!(t.next_expiry(), Some(t0 + LINGER));
        // The next check within the linger finds it in the filter.
        assert_eq!(t.add(target(80), t0 + LINGER / 2), Ok(false));
        assert_eq!((t.in_use(), t.lingering()), (1, 0));
    }

    #[test]
    fn a_lingering_target_expires_and_leaves_the_filter() {
        let t0 = Instant::now();
        let mut t = Targets::default();
        t.add(target(80), t0).unwrap();
        t.remove(target(80), t0);
        assert!(!t.expire(t0 + LINGER / 2));
        assert!(t.expire(t0 + LINGER));
        assert!(t.filter().is_empty());
        assert_eq!(t.next_expiry(), None);
        assert_eq!(t.add(target(80), t0 + LINGER), Ok(true), "new again");
    }

    #[test]
    fn lingering_targets_make_room_and_flows_do_not() {
        let t0 = Instant::now();
        let mut t = Targets::default();
        for port in 0..MAX_TARGETS as u16 {
            t.add(target(port), t0).unwrap();
        }
        assert_eq!(t.add(target(9999), t0), Err(Full));
        t.remove(target(0), t0);
        assert_eq!(
            t.add(target(9999), t0),
            Ok(true),
            "the lingering one made room"
        );
        assert_eq!((t.in_use(), t.lingering()), (MAX_TARGETS, 0));
        t.forget(target(9999));
        assert_eq!(t.in_use(), MAX_TARGETS - 1);
    }
}

//! The serving rule: which of a port's listeners are the serving process's, decided again at
//! every poll, so a listener beside it (`nginx -t` with SO_REUSEPORT) stands out.

use std::collections::BTreeMap;

use super::ServingRule;
use super::tracker::{PortTrack, Tracked};
use crate::host::procfs::Owner;

impl PortTrack {
    /// Decides again which current listeners are the serving process's: it may have
    /// restarted since the last poll. Vanished listeners keep their last verdict.
    ///
    /// The serving process is a tree: its root is the eldest owner the rule allows (any owner
    /// for the long-lived rule, the unit's or the named process's otherwise), and a listener
    /// serves when one of its owners is that root, or descends from it with the root's name
    /// and cgroup (nginx's master and its workers, across a reload, and the new master of a
    /// binary upgrade, which the old one starts). A process outside the tree does not serve,
    /// whatever its name and cgroup: `nginx -t` run inside the server's container or cgroup
    /// has both. Nor does a child of another name that opens a listener of its own.
    pub(super) fn update_serving(&mut self, owners_visible: bool) {
        let root = serving_root(&self.rule, &self.current);
        let long_lived = matches!(self.rule, ServingRule::LongLived);
        // Without any owner known, the long-lived rule falls back to the uid of the listener
        // known longest.
        let oldest_uid = self
            .current
            .values()
            .min_by_key(|t| (t.first_seen_ms, t.inode))
            .map(|t| t.uid);
        for t in self.current.values_mut() {
            t.serving = match (&root, t.owners.is_empty()) {
                (Some(root), false) => t.owners.iter().any(|o| root.serves_with(o)),
                // An owner that could not be read: the same uid is all there is.
                (Some(root), true) => long_lived && !owners_visible && t.uid == root.uid,
                (None, _) => long_lived && Some(t.uid) == oldest_uid,
            };
        }
        self.serving_pid = root.as_ref().map(|r| r.pid);
        self.serving_text = serving_text(self.port, &self.rule, root.as_ref(), oldest_uid);
    }
}

/// The root of the serving process's tree (see [`PortTrack::update_serving`]).
#[derive(Debug)]
struct ServingRoot {
    pid: u32,
    name: String,
    cgroup: Option<String>,
    /// The uid of the socket it holds.
    uid: u32,
}

impl ServingRoot {
    /// Whether `o` is the root, or one of its descendants of the same name and cgroup.
    fn serves_with(&self, o: &Owner) -> bool {
        o.info.pid == self.pid
            || (o.ancestors.contains(&self.pid)
                && o.info.name == self.name
                && o.info.cgroup == self.cgroup)
    }
}

/// The eldest owner of a current listener that `rule` allows. Init (pid 1) holding a socket it
/// passed to a service (systemd's socket activation) is passed over for that service: every
/// process descends from init.
fn serving_root(rule: &ServingRule, current: &BTreeMap<u64, Tracked>) -> Option<ServingRoot> {
    let allowed = |o: &Owner| match rule {
        ServingRule::Unit(unit) => o.info.unit.as_ref() == Some(unit),
        ServingRule::Process(name) => &o.info.name == name,
        ServingRule::LongLived => true,
    };
    current
        .values()
        .flat_map(|t| t.owners.iter().map(move |o| (o, t.uid)))
        .filter(|(o, _)| allowed(o))
        .min_by_key(|(o, _)| {
            (
                o.info.pid == 1,
                o.start_ticks.unwrap_or(u64::MAX),
                o.info.pid,
            )
        })
        .map(|(o, uid)| ServingRoot {
            pid: o.info.pid,
            name: o.info.name.clone(),
            cgroup: o.info.cgroup.clone(),
            uid,
        })
}

/// How the serving process was recognised, for the evidence.
fn serving_text(
    port: u16,
    rule: &ServingRule,
    root: Option<&ServingRoot>,
    oldest_uid: Option<u32>,
) -> String {
    let how = rule.describe(port);
    match (root, rule) {
        (Some(r), _) => {
            let cgroup = r
                .cgroup
                .as_ref()
                .map(|cg| format!(" in cgroup {cg}"))
                .unwrap_or_default();
            format!(
                "{how}: pid {} {}{cgroup}, and its descendants",
                r.pid, r.name
            )
        }
        (None, ServingRule::LongLived) => match oldest_uid {
            Some(uid) => format!("{how}: uid {uid}"),
            None => format!("{how}: nothing listens"),
        },
        (None, _) => format!("{how}: none of it holds the port"),
    }
}

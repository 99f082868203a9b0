//! The listening sockets on a canary's port: who serves it, how often the probe looked, what
//! it could not read, and each listener with its owners and when it was seen.

use causeway_schema::{Listener, ListenerEvidence};

use super::Verdict;
use crate::timefmt::clock_ms;

/// The listeners' section: its sentences, then a [`ListenerFacts`] per listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenersFacts {
    pub port: u16,
    /// `serving: unit nginx.service: pid 812 nginx in cgroup ..., and its descendants`: the
    /// rule the probe applied and whom it found.
    pub serving: String,
    /// `looked at every 100 ms: ...`: how far each time can be trusted.
    pub poll: String,
    /// What the probe could not read, when it lacks the rights to other users' sockets.
    pub owners_hidden: Option<&'static str>,
    /// `nothing listened on the port`, when nothing did.
    pub nothing: Option<&'static str>,
    pub listeners: Vec<ListenerFacts>,
}

/// Why some listeners have no owner: said once, above them.
const OWNERS_HIDDEN: &str = "the owners of other users' sockets could not be read (the probe \
                             lacks CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE): those show only \
                             their uid and inode";

impl ListenersFacts {
    pub fn of(ev: &ListenerEvidence) -> ListenersFacts {
        ListenersFacts {
            port: ev.port,
            serving: format!("serving: {}", ev.serving),
            poll: format!(
                "looked at every {} ms: a listener that lived for less can be missed, and each \
                 time below is this precise",
                ev.poll_ms
            ),
            owners_hidden: (!ev.owners_visible).then_some(OWNERS_HIDDEN),
            nothing: ev
                .listeners
                .is_empty()
                .then_some("nothing listened on the port"),
            listeners: ev.listeners.iter().map(ListenerFacts::of).collect(),
        }
    }
}

/// One listening socket: whose it is and when it was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerFacts {
    /// `serving` (the serving process's) or `other`.
    pub role: &'static str,
    pub address: String,
    /// `inode 1001, uid 0, 2 on this address (SO_REUSEPORT)`; the group only when shared.
    pub socket: String,
    /// `pid 4242 (python3 rogue.py; cgroup /user.slice/session-1.scope)`, the first owner
    /// and how many more, or `owner not readable` (the socket's uid says whose it is).
    pub owners: String,
    pub first_seen: String,
    pub last_seen: String,
    /// `still there`, or `gone` at the next look.
    pub presence: &'static str,
    pub presence_verdict: Verdict,
    /// `11:56:40.000 .. still there`, `12:13:19.200 .. 12:13:21.450, gone`: when it was
    /// there, in one phrase.
    pub seen: String,
}

impl ListenerFacts {
    pub fn of(l: &Listener) -> ListenerFacts {
        let group = if l.group_size > 1 {
            format!(", {} on this address (SO_REUSEPORT)", l.group_size)
        } else {
            String::new()
        };
        let owners = if l.owners.is_empty() {
            "owner not readable".to_owned()
        } else {
            l.owners_text()
        };
        let (first_seen, last_seen) = (clock_ms(l.first_seen_ms), clock_ms(l.last_seen_ms));
        let (presence, presence_verdict, seen) = if l.gone {
            (
                "gone",
                Verdict::Bad,
                format!("{first_seen} .. {last_seen}, gone"),
            )
        } else {
            // Its last look is the latest: "still there" says more than a time.
            (
                "still there",
                Verdict::Ok,
                format!("{first_seen} .. still there"),
            )
        };
        ListenerFacts {
            role: if l.serving { "serving" } else { "other" },
            address: l.address.to_string(),
            socket: format!("inode {}, uid {}{group}", l.inode, l.uid),
            owners,
            first_seen,
            last_seen,
            presence,
            presence_verdict,
            seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// 2025-11-23T12:13:20Z.
    const AT: i64 = 1_763_900_000_000;

    fn listener(inode: u64, owners: Value, serving: bool, gone: bool, group: u32) -> Value {
        json!({
            "inode": inode, "address": "10.88.0.2:80", "uid": 33, "group_size": group,
            "owners": owners, "serving": serving, "first_seen_ms": AT - 1_000,
            "last_seen_ms": AT + 450, "gone": gone
        })
    }

    /// As the wire has it, so that the test reads evidence from every probe version.
    fn evidence(listeners: Vec<Value>, owners_visible: bool) -> ListenerEvidence {
        serde_json::from_value(json!({
            "port": 80,
            "serving": "unit nginx.service: pid 812 nginx in cgroup /system.slice/nginx.service",
            "poll_ms": 250,
            "owners_visible": owners_visible,
            "listeners": listeners,
        }))
        .unwrap()
    }

    #[test]
    fn the_sections_sentences() {
        let owner = json!([{"pid": 812, "name": "nginx", "cmdline": "nginx: master"}]);
        let facts = ListenersFacts::of(&evidence(vec![listener(1, owner, true, false, 1)], true));
        assert_eq!(facts.port, 80);
        assert_eq!(
            facts.serving,
            "serving: unit nginx.service: pid 812 nginx in cgroup /system.slice/nginx.service"
        );
        assert_eq!(
            facts.poll,
            "looked at every 250 ms: a listener that lived for less can be missed, and each \
             time below is this precise"
        );
        assert_eq!(facts.owners_hidden, None);
        assert_eq!(facts.nothing, None);
        assert_eq!(facts.listeners.len(), 1);

        let facts = ListenersFacts::of(&evidence(vec![], false));
        assert!(
            facts
                .owners_hidden
                .is_some_and(|h| h.contains("CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE")),
            "{facts:?}"
        );
        assert_eq!(facts.nothing, Some("nothing listened on the port"));
        assert!(facts.listeners.is_empty());
    }

    #[test]
    fn each_listener_its_owners_socket_and_when() {
        let owners = json!([
            {"pid": 4242, "name": "python3", "cmdline": "python3 rogue.py", "cgroup": "/user.slice"},
            {"pid": 4243, "name": "python3", "cmdline": "python3 rogue.py"}
        ]);
        let ev = evidence(
            vec![
                listener(2002, owners, false, true, 2),
                listener(1001, json!([]), true, false, 1),
            ],
            false,
        );
        let facts = ListenersFacts::of(&ev);
        let rogue = &facts.listeners[0];
        assert_eq!(
            rogue,
            &ListenerFacts {
                role: "other",
                address: "10.88.0.2:80".into(),
                socket: "inode 2002, uid 33, 2 on this address (SO_REUSEPORT)".into(),
                owners: "pid 4242 (python3 rogue.py; cgroup /user.slice) and 1 more".into(),
                first_seen: "12:13:19.000".into(),
                last_seen: "12:13:20.450".into(),
                presence: "gone",
                presence_verdict: Verdict::Bad,
                seen: "12:13:19.000 .. 12:13:20.450, gone".into(),
            }
        );
        let server = &facts.listeners[1];
        assert_eq!(server.role, "serving");
        // Alone on its address: no group to speak of.
        assert_eq!(server.socket, "inode 1001, uid 33");
        assert_eq!(server.owners, "owner not readable");
        assert_eq!(server.presence, "still there");
        assert_eq!(server.presence_verdict, Verdict::Ok);
        assert_eq!(server.seen, "12:13:19.000 .. still there");
    }
}

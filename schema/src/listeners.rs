//! Who listened on a canary's port around a failed check (canaries on the probe's own host).

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Listeners kept per check; the serving ones and the most recent others are kept first.
pub const LISTENERS_MAX: usize = 32;

/// The listening sockets on a canary's port: those present when the check failed and those
/// that appeared or vanished in the minutes before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ListenerEvidenceWire")]
pub struct ListenerEvidence {
    pub port: u16,
    /// How the serving process is recognised and who it was this time, as a sentence
    /// (`unit nginx.service: pid 812 nginx in cgroup ..., and its descendants`).
    pub serving: String,
    /// The rule the probe applied. On the wire beside `serving`, which collectors from before
    /// the rule still read; evidence from probes before it has the rule read back from the
    /// start of `serving` (see [`ServingRule::of_description`]).
    pub rule: ServingRule,
    /// How often the probe looks at the port's listeners; a listener that lived for less can
    /// be missed, and every first/last-seen time is this precise.
    pub poll_ms: u32,
    /// False when the owners of other users' sockets could not be read (no CAP_DAC_READ_SEARCH
    /// and CAP_SYS_PTRACE): listeners then carry only their uid and inode.
    pub owners_visible: bool,
    /// The pid at the root of the serving process's tree: it and its descendants serve the
    /// port, whatever the name and cgroup of anyone else. `None` when no owner was known, and
    /// from probes before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_pid: Option<u32>,
    pub listeners: Vec<Listener>,
}

/// [`ListenerEvidence`] as it arrives: `rule` may be missing (probes before it).
#[derive(Deserialize)]
struct ListenerEvidenceWire {
    port: u16,
    serving: String,
    #[serde(default)]
    rule: Option<ServingRule>,
    poll_ms: u32,
    owners_visible: bool,
    #[serde(default)]
    serving_pid: Option<u32>,
    listeners: Vec<Listener>,
}

impl From<ListenerEvidenceWire> for ListenerEvidence {
    fn from(w: ListenerEvidenceWire) -> ListenerEvidence {
        ListenerEvidence {
            rule: w
                .rule
                .unwrap_or_else(|| ServingRule::of_description(&w.serving)),
            port: w.port,
            serving: w.serving,
            poll_ms: w.poll_ms,
            owners_visible: w.owners_visible,
            serving_pid: w.serving_pid,
            listeners: w.listeners,
        }
    }
}

/// How the process that serves a canary's port is recognised among the port's listeners.
/// On the wire: `{"unit": "nginx.service"}`, `{"process": "nginx"}` or `"long_lived"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServingRule {
    /// The listeners owned by processes of this systemd unit (`nginx.service`).
    Unit(String),
    /// The listeners owned by processes with this name (`/proc/PID/comm`).
    Process(String),
    /// The listeners of the longest-running owner of the port (the default).
    LongLived,
}

impl ServingRule {
    /// The rule a `serving` sentence of a probe from before the `rule` field starts with:
    /// `unit NAME: ...`, `process NAME: ...`, otherwise the long-lived owner.
    pub fn of_description(serving: &str) -> ServingRule {
        let named = |prefix: &str| {
            let rest = serving.strip_prefix(prefix)?;
            let name = rest.split_once(": ").map_or(rest, |(name, _)| name);
            (!name.is_empty()).then(|| name.to_owned())
        };
        if let Some(unit) = named("unit ") {
            ServingRule::Unit(unit)
        } else if let Some(process) = named("process ") {
            ServingRule::Process(process)
        } else {
            ServingRule::LongLived
        }
    }

    /// `unit nginx.service`, `process nginx`, `the long-lived owner of port 80`: the start of
    /// the `serving` sentence.
    pub fn describe(&self, port: u16) -> String {
        match self {
            ServingRule::Unit(unit) => format!("unit {unit}"),
            ServingRule::Process(name) => format!("process {name}"),
            ServingRule::LongLived => format!("the long-lived owner of port {port}"),
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub inode: u64,
    pub address: SocketAddr,
    pub uid: u32,
    /// How many listening sockets share this address and port (an SO_REUSEPORT group when
    /// more than one).
    pub group_size: u32,
    /// The processes holding the socket (several for an inherited socket, such as prefork
    /// workers); empty when they could not be read.
    pub owners: Vec<SocketOwner>,
    /// Whether the owners are the serving process.
    pub serving: bool,
    /// First and last time the probe saw the socket listening, ms since the Unix epoch.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// True when the socket was gone at the probe's next look after `last_seen_ms`.
    pub gone: bool,
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketOwner {
    pub pid: u32,
    /// The process name (`comm`).
    pub name: String,
    /// The command line, arguments joined by spaces (cut at 256 bytes).
    pub cmdline: String,
    /// The process's cgroup (the unified hierarchy's path, or the v1 `name=systemd` one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The systemd unit the cgroup belongs to (`nginx.service`), when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Its parent's pid, when read; from probes before it, `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
}

impl ListenerEvidence {
    pub fn serving_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners.iter().filter(|l| l.serving)
    }
}

impl Listener {
    /// Whether the socket may have been listening at some moment in `[from_ms, to_ms]`, given
    /// that it is only looked at every `poll_ms`.
    pub fn overlaps(&self, from_ms: i64, to_ms: i64, poll_ms: u32) -> bool {
        let slack = i64::from(poll_ms);
        let born = self.first_seen_ms - slack;
        let died = if self.gone {
            self.last_seen_ms + slack
        } else {
            i64::MAX
        };
        born <= to_ms && from_ms <= died
    }

    /// "pid 4242 (python3 rogue.py; unit x.service)" style, for explanations.
    pub fn owners_text(&self) -> String {
        if self.owners.is_empty() {
            return format!(
                "an unknown process of uid {} (socket inode {})",
                self.uid, self.inode
            );
        }
        // Prefork workers share one socket: name the first, count the others.
        let first = &self.owners[0];
        let more = match self.owners.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        format!("{first}{more}")
    }
}

/// Characters of a command line an explanation quotes at most, after [`brief`]: short enough
/// that an explanation (cut at 1,000 characters) keeps its last clause, which says what to do.
/// The evidence keeps the whole command line.
const CMDLINE_IN_TEXT: usize = 120;

/// A command line for people: each long path cut to its last component (`.../nginx.conf`),
/// which keeps the program's and the script's names, then at most [`CMDLINE_IN_TEXT`]
/// characters.
fn brief(cmd: &str) -> String {
    let words: Vec<String> = cmd
        .split(' ')
        .map(|w| match w.trim_end_matches('/').rsplit_once('/') {
            Some((_, last)) if w.chars().count() > 24 && !last.is_empty() => format!(".../{last}"),
            _ => w.to_owned(),
        })
        .collect();
    let text = words.join(" ");
    match text.char_indices().nth(CMDLINE_IN_TEXT) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

impl fmt::Display for SocketOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = if self.cmdline.is_empty() {
            &self.name
        } else {
            &self.cmdline
        };
        write!(f, "pid {} ({}", self.pid, brief(cmd))?;
        match (&self.unit, &self.cgroup) {
            (Some(unit), _) => write!(f, "; unit {unit})"),
            (None, Some(cg)) => write!(f, "; cgroup {cg})"),
            (None, None) => write!(f, ")"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_in_a_command_line_are_cut_in_text_and_kept_whole_in_the_evidence() {
        let long = format!(
            "/usr/sbin/nginx -p {} -c nginx.conf",
            "/very/long/prefix".repeat(10)
        );
        let owner = SocketOwner {
            pid: 42,
            name: "nginx".into(),
            cmdline: long.clone(),
            cgroup: None,
            unit: None,
            ppid: None,
        };
        assert_eq!(
            owner.to_string(),
            "pid 42 (/usr/sbin/nginx -p .../prefix -c nginx.conf)"
        );
        let script = SocketOwner {
            cmdline: format!(
                "python3 /work{}/rogue-listener.py 10.0.0.2 80",
                "/lab".repeat(40)
            ),
            ..owner.clone()
        };
        assert_eq!(
            script.to_string(),
            "pid 42 (python3 .../rogue-listener.py 10.0.0.2 80)"
        );
        let many = SocketOwner {
            cmdline: "x ".repeat(100),
            ..owner.clone()
        };
        let text = many.to_string();
        assert!(text.ends_with("...)") && text.len() < 140, "{text}");
        assert_eq!(owner.cmdline, long);
        let short = SocketOwner {
            cmdline: "nginx -t".into(),
            ..owner
        };
        assert_eq!(short.to_string(), "pid 42 (nginx -t)");
    }

    fn listener(first: i64, last: i64, gone: bool) -> Listener {
        Listener {
            inode: 1,
            address: "0.0.0.0:80".parse().unwrap(),
            uid: 0,
            group_size: 2,
            owners: vec![],
            serving: false,
            first_seen_ms: first,
            last_seen_ms: last,
            gone,
        }
    }

    #[test]
    fn overlap_allows_one_poll_of_slack() {
        let l = listener(1000, 2000, true);
        assert!(l.overlaps(1500, 1600, 100));
        assert!(l.overlaps(2050, 2500, 100), "gone between polls");
        assert!(!l.overlaps(2200, 2500, 100));
        assert!(l.overlaps(850, 950, 100), "born between polls");
        assert!(!l.overlaps(100, 800, 100));
        assert!(
            listener(1000, 2000, false).overlaps(9000, 9999, 100),
            "still there"
        );
    }
}

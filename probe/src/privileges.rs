//! What the probe can and cannot see with the privileges it runs with, said in one line at
//! start: `privileges: packet capture on; listener owners on; kernel log on`, or
//! `privileges: packet capture off: CAP_NET_RAW missing; ...`.
//!
//! Each part is the real operation of its module, tried once: an AF_PACKET socket (packet
//! capture), another process's `/proc/PID/fd` (listener owners), opening `/dev/kmsg` (the
//! kernel log). So the line stays true where capabilities are not the whole story
//! (`kernel.dmesg_restrict=0` lets anyone read the kernel log; a seccomp filter or
//! `RestrictAddressFamilies=` refuses a socket whatever the capabilities). When an operation
//! is refused, the effective capabilities (`CapEff` in `/proc/self/status`) name what is
//! missing.

use std::io::ErrorKind;

use crate::config::Config;
use crate::os::Os;

/// A capability: its bit in the capability sets and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub bit: u32,
    pub name: &'static str,
}

pub const CAP_DAC_READ_SEARCH: Cap = Cap {
    bit: 2,
    name: "CAP_DAC_READ_SEARCH",
};
pub const CAP_NET_RAW: Cap = Cap {
    bit: 13,
    name: "CAP_NET_RAW",
};
pub const CAP_SYS_PTRACE: Cap = Cap {
    bit: 19,
    name: "CAP_SYS_PTRACE",
};
pub const CAP_SYSLOG: Cap = Cap {
    bit: 34,
    name: "CAP_SYSLOG",
};

/// A capability set, as the kernel prints it in `/proc/PID/status` (hex bit mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    /// The effective set (`CapEff:`) of a `/proc/PID/status` text.
    pub fn effective(status: &str) -> Option<CapSet> {
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .map(CapSet)
    }

    /// This process's effective set.
    pub fn current() -> Option<CapSet> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        CapSet::effective(&status)
    }

    pub fn has(self, cap: Cap) -> bool {
        cap.bit < 64 && self.0 & (1 << cap.bit) != 0
    }
}

/// What trying an operation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tried {
    /// Turned off in the config (the reason says by which key).
    NotWanted(&'static str),
    Works,
    /// Refused: EPERM or EACCES.
    Denied,
    /// Failed otherwise; the message says how.
    Failed(String),
}

/// Whether a part works, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ability {
    On,
    /// Off as configured.
    Unwanted(String),
    /// Off though wanted: missing privileges or another failure.
    Off(String),
}

/// What the probe can do, part by part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    pub capture: Ability,
    pub listener_owners: Ability,
    pub kernel_log: Ability,
}

impl Privileges {
    /// Tries each part's operation now through the openers of `os`, the ones the parts use,
    /// for `config` (capture and the kernel log can be off in it).
    pub fn check(config: &Config, os: &dyn Os) -> Privileges {
        let caps = CapSet::current();
        let capture = match config.capture {
            false => Tried::NotWanted("capture = false in the config"),
            // The capture's own opener: protocol 0 queues nothing, and it is closed at once.
            true => match os.try_packet_socket() {
                Ok(()) => Tried::Works,
                Err(e) if e.kind() == ErrorKind::PermissionDenied => Tried::Denied,
                Err(e) => Tried::Failed(format!("cannot make an AF_PACKET socket: {e}")),
            },
        };
        let owners = match crate::host::procfs::can_read_other_fds(os.proc_root()) {
            true => Tried::Works,
            false => Tried::Denied,
        };
        let kernel_log = match config.host_watch.kernel_log {
            false => Tried::NotWanted("kernel_log = false in the config"),
            true => match os.open_kernel_log() {
                Ok(_) => Tried::Works,
                Err(e) if e.kind() == ErrorKind::PermissionDenied => Tried::Denied,
                Err(e) => Tried::Failed(format!("cannot open the kernel log {e}")),
            },
        };
        Privileges::explain(caps, capture, owners, kernel_log)
    }

    /// Turns what was tried into abilities, naming the capabilities missing from `caps` for
    /// what was refused.
    pub fn explain(
        caps: Option<CapSet>,
        capture: Tried,
        listener_owners: Tried,
        kernel_log: Tried,
    ) -> Privileges {
        Privileges {
            capture: ability(capture, caps, &[CAP_NET_RAW]),
            listener_owners: ability(
                listener_owners,
                caps,
                &[CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE],
            ),
            kernel_log: ability(kernel_log, caps, &[CAP_SYSLOG]),
        }
    }

    /// `privileges: packet capture on; listener owners off: CAP_SYS_PTRACE missing; ...`
    pub fn line(&self) -> String {
        let parts = [
            ("packet capture", &self.capture),
            ("listener owners", &self.listener_owners),
            ("kernel log", &self.kernel_log),
        ];
        let parts: Vec<String> = parts
            .iter()
            .map(|(what, ability)| match ability {
                Ability::On => format!("{what} on"),
                Ability::Unwanted(why) | Ability::Off(why) => format!("{what} off: {why}"),
            })
            .collect();
        format!("privileges: {}", parts.join("; "))
    }

    /// Whether something wanted is off: the line is then a warning.
    pub fn lacking(&self) -> bool {
        [&self.capture, &self.listener_owners, &self.kernel_log]
            .iter()
            .any(|a| matches!(a, Ability::Off(_)))
    }

    /// Logs [`line`](Self::line): info when everything wanted is on, a warning otherwise.
    pub fn log(&self) {
        match self.lacking() {
            true => tracing::warn!("{}", self.line()),
            false => tracing::info!("{}", self.line()),
        }
    }
}

fn ability(tried: Tried, caps: Option<CapSet>, needs: &[Cap]) -> Ability {
    let names = |caps: &[Cap]| caps.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
    match tried {
        Tried::Works => Ability::On,
        Tried::NotWanted(why) => Ability::Unwanted(why.to_owned()),
        Tried::Failed(why) => Ability::Off(why),
        Tried::Denied => {
            let Some(caps) = caps else {
                return Ability::Off(format!("permission denied (needs {})", names(needs)));
            };
            let missing: Vec<Cap> = needs.iter().copied().filter(|&c| !caps.has(c)).collect();
            Ability::Off(match missing.is_empty() {
                true => format!(
                    "permission denied although {} effective",
                    match needs.len() {
                        1 => format!("{} is", names(needs)),
                        _ => format!("{} are", names(needs)),
                    }
                ),
                false => format!("{} missing", names(&missing)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/status` capability lines recorded on Debian 12 (kernel 6.x): root; root
    /// in a container whose bounding set lacks CAP_SYS_RESOURCE; `setpriv` to nobody with
    /// every capability dropped (as the e2e lab's unprivileged probe runs); nobody with
    /// ambient CAP_NET_RAW and CAP_SYSLOG (as `AmbientCapabilities=CAP_NET_RAW CAP_SYSLOG`
    /// gives); nobody with ambient CAP_DAC_READ_SEARCH alone.
    const ROOT: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nCapInh:\t0000000000000000\n\
                        CapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n\
                        CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n";
    const CONTAINER_ROOT: &str = "CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\n\
                                  CapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n\
                                  CapAmb:\t0000000000000000\n";
    const NOBODY: &str = "Name:\tgrep\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
                          CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n\
                          CapAmb:\t0000000000000000\n";
    const AMBIENT_RAW_SYSLOG: &str = "CapInh:\t0000000400002000\nCapPrm:\t0000000400002000\n\
                                      CapEff:\t0000000400002000\nCapBnd:\t000001fffeffffff\n\
                                      CapAmb:\t0000000400002000\n";
    const AMBIENT_DAC: &str = "CapInh:\t0000000000000004\nCapPrm:\t0000000000000004\n\
                               CapEff:\t0000000000000004\nCapBnd:\t000001fffeffffff\n\
                               CapAmb:\t0000000000000004\n";

    const ALL: [Cap; 4] = [CAP_DAC_READ_SEARCH, CAP_NET_RAW, CAP_SYS_PTRACE, CAP_SYSLOG];

    fn held(status: &str) -> Vec<&'static str> {
        let caps = CapSet::effective(status).expect("a CapEff line");
        ALL.iter()
            .filter(|&&c| caps.has(c))
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn the_effective_set_is_parsed_from_recorded_status_lines() {
        assert_eq!(held(ROOT), ALL.map(|c| c.name));
        assert_eq!(held(CONTAINER_ROOT), ALL.map(|c| c.name));
        assert_eq!(held(NOBODY), Vec::<&str>::new());
        assert_eq!(held(AMBIENT_RAW_SYSLOG), ["CAP_NET_RAW", "CAP_SYSLOG"]);
        assert_eq!(held(AMBIENT_DAC), ["CAP_DAC_READ_SEARCH"]);
        // CapPrm or CapBnd never stand in for CapEff.
        assert_eq!(CapSet::effective("CapPrm:\t000001ffffffffff\n"), None);
        assert_eq!(CapSet::effective("CapEff:\tzz\n"), None);
        assert_eq!(
            CapSet::effective(CONTAINER_ROOT),
            Some(CapSet(0x1fffeffffff))
        );
    }

    #[test]
    fn refusals_name_the_missing_capabilities() {
        let caps = CapSet::effective(AMBIENT_DAC);
        let p = Privileges::explain(caps, Tried::Denied, Tried::Denied, Tried::Denied);
        assert_eq!(
            p.line(),
            "privileges: packet capture off: CAP_NET_RAW missing; listener owners off: \
             CAP_SYS_PTRACE missing; kernel log off: CAP_SYSLOG missing"
        );
        assert!(p.lacking());

        let nobody = CapSet::effective(NOBODY);
        let p = Privileges::explain(
            nobody,
            Tried::Denied,
            Tried::Denied,
            Tried::NotWanted("kernel_log = false in the config"),
        );
        assert_eq!(
            p.line(),
            "privileges: packet capture off: CAP_NET_RAW missing; listener owners off: \
             CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE missing; kernel log off: kernel_log = false \
             in the config"
        );
    }

    #[test]
    fn what_works_is_on_whatever_the_capabilities_say() {
        // kernel.dmesg_restrict=0: nobody reads the kernel log without CAP_SYSLOG.
        let nobody = CapSet::effective(NOBODY);
        let p = Privileges::explain(nobody, Tried::Works, Tried::Works, Tried::Works);
        assert_eq!(
            p.line(),
            "privileges: packet capture on; listener owners on; kernel log on"
        );
        assert!(!p.lacking());
        // Config choices are not a lack of privileges.
        let p = Privileges::explain(
            nobody,
            Tried::NotWanted("capture = false in the config"),
            Tried::Works,
            Tried::Works,
        );
        assert!(!p.lacking());
    }

    #[test]
    fn a_refusal_despite_the_capabilities_says_so() {
        let root = CapSet::effective(ROOT);
        let p = Privileges::explain(
            root,
            Tried::Failed(
                "cannot make an AF_PACKET socket: Address family not supported by protocol".into(),
            ),
            Tried::Denied,
            Tried::Denied,
        );
        assert_eq!(
            p.capture,
            Ability::Off(
                "cannot make an AF_PACKET socket: Address family not supported by protocol".into()
            )
        );
        assert_eq!(
            p.listener_owners,
            Ability::Off(
                "permission denied although CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE are effective"
                    .into()
            )
        );
        assert_eq!(
            p.kernel_log,
            Ability::Off("permission denied although CAP_SYSLOG is effective".into())
        );
        // Capabilities unknown: what each part needs.
        let p = Privileges::explain(None, Tried::Denied, Tried::Works, Tried::Works);
        assert_eq!(
            p.capture,
            Ability::Off("permission denied (needs CAP_NET_RAW)".into())
        );
    }

    #[test]
    fn the_real_checks_blame_only_capabilities_this_process_lacks() {
        let config = Config::parse(
            "collector_url = \"http://127.0.0.1:1\"\ntoken = \"cw_t\"\nserver = \"s\"\n\
             [[canary]]\nname = \"site\"\nurl = \"http://127.0.0.1:1/\"\n",
            &crate::config::HostInfo::default(),
        )
        .unwrap();
        let caps = CapSet::current().expect("/proc/self/status has CapEff");
        let p = Privileges::check(&config, &crate::os::Host::default());
        for (ability, needs) in [
            (&p.capture, &[CAP_NET_RAW][..]),
            (
                &p.listener_owners,
                &[CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE][..],
            ),
            (&p.kernel_log, &[CAP_SYSLOG][..]),
        ] {
            if let Ability::Off(why) = ability {
                for cap in needs.iter().filter(|c| why.contains(c.name)) {
                    assert!(
                        why.contains("although") || !caps.has(*cap),
                        "{why}, but {} is effective",
                        cap.name
                    );
                }
            }
        }
        let line = p.line();
        assert!(line.starts_with("privileges: packet capture "), "{line}");
    }
}

//! systemd's service notifications (`sd_notify(3)`) for a `Type=notify` (or `notify-reload`)
//! unit: `READY=1` once the service runs, `STATUS=` after every cycle, `WATCHDOG=1` while the
//! main loop is alive, `RELOADING=1` around a config reload and `STOPPING=1` on shutdown.
//!
//! The protocol is a datagram of `KEY=value` lines sent to the socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`). We write it over
//! std's `UnixDatagram` rather than with the sd-notify crate because:
//! - the socket is a value of the [`Notifier`], read from the environment once at start:
//!   tests pass their own socket and never change the process environment (`set_var` is
//!   unsafe in Rust 2024, and racy in a test binary running tests on threads);
//! - sd-notify 0.5 connects to an `@name` as if it were a file path; abstract sockets work
//!   here;
//! - the socket is non-blocking: a manager that stopped reading never stalls the async
//!   runtime (the message is dropped and the failure logged once);
//! - it is a few dozen lines and no new dependency.
//!
//! The probe and the collector both notify through it, so both read `NOTIFY_SOCKET` by one
//! rule: an absolute path or an abstract `@name`, anything else is refused with a warning.
//!
//! Without `NOTIFY_SOCKET` every call is a no-op.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One notification; several go in one datagram, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State<'a> {
    /// `READY=1`: startup, or a reload, is finished.
    Ready,
    /// `RELOADING=1`: a reload begins. `MONOTONIC_USEC` (CLOCK_MONOTONIC when it began) goes
    /// with it: `Type=notify-reload` (systemd 253+) requires it.
    Reloading { monotonic_usec: Option<u64> },
    /// `STOPPING=1`: shutdown begins.
    Stopping,
    /// `STATUS=...`: one line for `systemctl status`.
    Status(&'a str),
    /// `WATCHDOG=1`: the main loop is alive.
    Watchdog,
}

/// The datagram for `states`: one `KEY=value` line each. A status is kept to one line (a
/// newline would start another assignment).
pub fn message(states: &[State]) -> String {
    let mut msg = String::new();
    for state in states {
        match state {
            State::Ready => msg.push_str("READY=1\n"),
            State::Reloading { monotonic_usec } => {
                msg.push_str("RELOADING=1\n");
                if let Some(usec) = monotonic_usec {
                    msg.push_str(&format!("MONOTONIC_USEC={usec}\n"));
                }
            }
            State::Stopping => msg.push_str("STOPPING=1\n"),
            State::Status(text) => {
                msg.push_str("STATUS=");
                msg.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
                msg.push('\n');
            }
            State::Watchdog => msg.push_str("WATCHDOG=1\n"),
        }
    }
    msg
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    /// An abstract socket's name, without the leading `@` (NUL on the wire).
    Abstract(Vec<u8>),
}

/// Sends notifications to the service manager; a no-op without a socket. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Target>,
    /// `WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog: Option<Duration>,
    /// Whether the last send failed: a failure is logged once, not at every ping.
    failing: Arc<AtomicBool>,
}

impl Notifier {
    /// No socket: every notification is a no-op.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// The socket and watchdog systemd gives this process (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`), read once. The environment is left as it is: neither program starts
    /// others that could inherit it.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let notifier = Notifier::from_vars(
            socket.as_deref(),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        );
        if let (Some(s), None) = (&socket, &notifier.target) {
            tracing::warn!(
                "NOTIFY_SOCKET={} is neither an absolute path nor an abstract socket (@name): \
                 not notifying the service manager",
                s.display()
            );
        }
        notifier
    }

    /// What the variables mean for process `pid`, as `sd_notify(3)` and
    /// `sd_watchdog_enabled(3)` read them: the watchdog is on when `WATCHDOG_USEC` is a
    /// positive number and `WATCHDOG_PID` is unset or `pid`. An empty, relative or otherwise
    /// unusable socket turns everything off; so does a missing one.
    pub fn from_vars(
        socket: Option<&OsStr>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Notifier {
        let target = socket.and_then(|s| {
            let bytes = s.as_bytes();
            match bytes.first() {
                Some(b'@') if bytes.len() > 1 => Some(Target::Abstract(bytes[1..].to_vec())),
                Some(b'/') => Some(Target::Path(PathBuf::from(s))),
                _ => None,
            }
        });
        let for_us = match watchdog_pid {
            None => true,
            Some(p) => p.trim().parse::<u32>().is_ok_and(|p| p == pid),
        };
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier {
            watchdog: watchdog.filter(|_| target.is_some()),
            target,
            failing: Arc::default(),
        }
    }

    /// Notifications to the datagram socket at `path`, without a watchdog.
    pub fn to_socket(path: impl Into<PathBuf>) -> Notifier {
        Notifier {
            target: Some(Target::Path(path.into())),
            ..Notifier::default()
        }
    }

    /// The same, with the watchdog on at `period` (what `WATCHDOG_USEC` would say). Ignored
    /// without a socket.
    pub fn with_watchdog(mut self, period: Duration) -> Notifier {
        self.watchdog = Some(period).filter(|p| !p.is_zero() && self.target.is_some());
        self
    }

    /// Whether notifications go anywhere.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog's period (`WATCHDOG_USEC`), when it is on.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often to send `WATCHDOG=1`: half the period, as `sd_watchdog_enabled(3)` advises.
    pub fn watchdog_ping_every(&self) -> Option<Duration> {
        self.watchdog.map(|p| (p / 2).max(Duration::from_millis(1)))
    }

    pub fn ready(&self) {
        self.notify(&[State::Ready]);
    }

    pub fn status(&self, text: &str) {
        self.notify(&[State::Status(text)]);
    }

    pub fn watchdog(&self) {
        self.notify(&[State::Watchdog]);
    }

    pub fn reloading(&self) {
        self.notify(&[State::Reloading {
            monotonic_usec: monotonic_usec(),
        }]);
    }

    pub fn stopping(&self) {
        self.notify(&[State::Stopping]);
    }

    /// Sends `states` in one datagram. Failures are logged (the first of a run as a warning)
    /// and otherwise ignored: the program's work does not depend on the service manager.
    pub fn notify(&self, states: &[State]) {
        let Some(target) = &self.target else { return };
        match send(target, message(states).as_bytes()) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("notifying the service manager works again");
                }
            }
            Err(e) => {
                let what = match target {
                    Target::Path(p) => p.display().to_string(),
                    Target::Abstract(name) => format!("@{}", String::from_utf8_lossy(name)),
                };
                if self.failing.swap(true, Ordering::Relaxed) {
                    tracing::debug!("cannot notify the service manager at {what}: {e}");
                } else {
                    tracing::warn!("cannot notify the service manager at {what}: {e}");
                }
            }
        }
    }
}

/// One datagram from a fresh unbound socket (as libsystemd does): a manager that re-created
/// its socket is still reached. Non-blocking: a full queue is an error, not a stall.
fn send(target: &Target, bytes: &[u8]) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    let sent = match target {
        Target::Path(path) => sock.send_to(bytes, path)?,
        Target::Abstract(name) => {
            sock.send_to_addr(bytes, &SocketAddr::from_abstract_name(name)?)?
        }
    };
    if sent != bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "datagram cut short",
        ));
    }
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds, for `MONOTONIC_USEC`. std's `Instant` uses this clock but
/// does not show its value.
#[allow(unsafe_code)]
fn monotonic_usec() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `struct timespec` through the pointer, which points to
    // a live, writable `libc::timespec` for the whole call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    if rc != 0 {
        return None;
    }
    let sec = u64::try_from(ts.tv_sec).ok()?;
    let nsec = u64::try_from(ts.tv_nsec).ok()?;
    Some(sec.saturating_mul(1_000_000).saturating_add(nsec / 1_000))
}

/// A socket standing in for systemd's, for tests here and in the programs that notify
/// (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    use std::os::unix::net::UnixDatagram;
    use std::path::PathBuf;
    use std::time::Duration;

    /// A socket standing in for systemd's, in a temporary directory.
    pub struct FakeManager {
        pub sock: UnixDatagram,
        pub path: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Default for FakeManager {
        fn default() -> FakeManager {
            FakeManager::new()
        }
    }

    impl FakeManager {
        pub fn new() -> FakeManager {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify.sock");
            let sock = UnixDatagram::bind(&path).unwrap();
            FakeManager {
                sock,
                path,
                _dir: dir,
            }
        }

        /// The next datagram, within 5 s.
        pub fn recv(&self) -> String {
            self.sock
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 4096];
            let n = self.sock.recv(&mut buf).expect("a datagram within 5 s");
            String::from_utf8(buf[..n].to_vec()).unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::testing::FakeManager;
    use super::*;

    #[test]
    fn messages_are_one_line_per_state() {
        assert_eq!(message(&[State::Ready]), "READY=1\n");
        assert_eq!(message(&[State::Watchdog]), "WATCHDOG=1\n");
        assert_eq!(message(&[State::Stopping]), "STOPPING=1\n");
        assert_eq!(
            message(&[State::Reloading {
                monotonic_usec: Some(123_456)
            }]),
            "RELOADING=1\nMONOTONIC_USEC=123456\n"
        );
        assert_eq!(
            message(&[State::Reloading {
                monotonic_usec: None
            }]),
            "RELOADING=1\n"
        );
        assert_eq!(
            message(&[State::Ready, State::Status("web-01: cycle: 1/1 checks ok")]),
            "READY=1\nSTATUS=web-01: cycle: 1/1 checks ok\n"
        );
        // A newline in a status would start another assignment.
        assert_eq!(
            message(&[State::Status("a\nWATCHDOG=1\r")]),
            "STATUS=a WATCHDOG=1 \n"
        );
    }

    #[test]
    fn the_variables_are_read_as_sd_notify_reads_them() {
        let s = Some(OsStr::new("/run/systemd/notify"));
        let n = Notifier::from_vars(s, Some("2000000"), Some("42"), 42);
        assert!(n.is_active());
        assert_eq!(n.watchdog_period(), Some(Duration::from_secs(2)));
        assert_eq!(n.watchdog_ping_every(), Some(Duration::from_secs(1)));
        // WATCHDOG_PID unset: any process; another pid: not us.
        let n = Notifier::from_vars(s, Some("2000000"), None, 42);
        assert_eq!(n.watchdog_period(), Some(Duration::from_secs(2)));
        let n = Notifier::from_vars(s, Some("2000000"), Some("41"), 42);
        assert_eq!(n.watchdog_period(), None);
        assert!(n.is_active(), "notifications still go");
        for usec in ["0", "-5", "soon", ""] {
            let n = Notifier::from_vars(s, Some(usec), None, 42);
            assert_eq!(n.watchdog_period(), None, "{usec:?}");
        }
        let n = Notifier::from_vars(s, Some("2000000"), Some("x"), 42);
        assert_eq!(n.watchdog_period(), None);

        let abs = Notifier::from_vars(Some(OsStr::new("@probe/notify")), None, None, 1);
        assert_eq!(abs.target, Some(Target::Abstract(b"probe/notify".to_vec())));
        for bad in ["", "@", "relative/notify", "vsock:2:1234"] {
            let n = Notifier::from_vars(Some(OsStr::new(bad)), Some("2000000"), None, 1);
            assert!(!n.is_active(), "{bad:?}");
            assert_eq!(n.watchdog_period(), None, "{bad:?}");
        }
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_no_watchdog_runs() {
        let n = Notifier::from_vars(None, Some("2000000"), None, 1);
        assert!(!n.is_active());
        assert_eq!(n.watchdog_ping_every(), None, "pings would go nowhere");
        assert_eq!(
            Notifier::disabled()
                .with_watchdog(Duration::from_secs(1))
                .watchdog_period(),
            None
        );
        // No socket to fail on: these return at once and do nothing.
        let n = Notifier::disabled();
        n.ready();
        n.status("web-01: cycle: 1/1 checks ok");
        n.watchdog();
        n.reloading();
        n.stopping();
        assert!(!n.failing.load(Ordering::Relaxed));
    }

    #[test]
    fn datagrams_reach_a_socket_standing_in_for_systemd() {
        let manager = FakeManager::new();
        let n = Notifier::to_socket(&manager.path).with_watchdog(Duration::from_millis(500));
        assert_eq!(n.watchdog_ping_every(), Some(Duration::from_millis(250)));
        n.ready();
        n.status("web-01: cycle: 1/1 checks ok");
        n.watchdog();
        n.reloading();
        n.stopping();
        assert_eq!(manager.recv(), "READY=1\n");
        assert_eq!(manager.recv(), "STATUS=web-01: cycle: 1/1 checks ok\n");
        assert_eq!(manager.recv(), "WATCHDOG=1\n");
        let reloading = manager.recv();
        let usec: u64 = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|r| r.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("{reloading:?}"))
            .parse()
            .unwrap();
        assert!(usec > 0);
        assert_eq!(manager.recv(), "STOPPING=1\n");
    }

    #[test]
    fn an_abstract_socket_is_reached_by_its_name() {
        let name = format!("causeway-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        let at = format!("@{name}");
        let n = Notifier::from_vars(Some(OsStr::new(&at)), None, None, 1);
        n.ready();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let len = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\n");
    }

    #[test]
    fn a_missing_manager_is_an_error_logged_not_a_stall() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::to_socket(dir.path().join("nobody-listens"));
        let start = Instant::now();
        n.watchdog();
        assert!(n.failing.load(Ordering::Relaxed));
        n.watchdog();
        assert!(start.elapsed() < Duration::from_secs(1));
        // Someone listens now: it works again.
        let sock = UnixDatagram::bind(dir.path().join("nobody-listens")).unwrap();
        n.watchdog();
        assert!(!n.failing.load(Ordering::Relaxed));
        let mut buf = [0u8; 64];
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let len = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1\n");
    }

    #[test]
    fn a_full_queue_drops_the_message_without_blocking() {
        let manager = FakeManager::new();
        let n = Notifier::to_socket(&manager.path);
        let start = Instant::now();
        // Nobody reads: the receive queue fills (a few hundred datagrams at most).
        for _ in 0..5000 {
            n.watchdog();
        }
        assert!(n.failing.load(Ordering::Relaxed), "the queue filled");
        assert!(start.elapsed() < Duration::from_secs(5), "never blocked");
    }
}

//! Which processes hold a socket, and who they are, from `/proc`.
//!
//! The kernel has no socket-to-pid index: the only way is to read every process's
//! `/proc/PID/fd/*` links and look for `socket:[INODE]`. That is the expensive part of watching
//! listeners, so the caller scans only when a listener it has not attributed yet appears, and
//! once per scan for all such inodes.
//!
//! Reading another user's `/proc/PID/fd` needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE; without
//! them the scan still works for the probe's own user and reports that it was denied, so the
//! evidence can say owners are not visible rather than wrongly "no owner".
//!
//! Every function takes the proc root as a path so tests can point it at fixtures.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use causeway_schema::SocketOwner;

/// The command line kept per owner, in bytes.
pub const CMDLINE_MAX: usize = 256;

/// A process holding a socket, with what it takes to tell the long-lived one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub info: SocketOwner,
    /// Field 22 of `/proc/PID/stat`: clock ticks after boot the process started. Comparable
    /// between processes, which is all the long-lived rule needs.
    pub start_ticks: Option<u64>,
    /// Its parent, the parent's parent and so on up to pid 1 (at most [`ANCESTORS_MAX`]), as
    /// read when the owner was looked up: whether it descends from the serving process.
    pub ancestors: Vec<u32>,
}

/// Generations of parents read per owner: deeper trees than this are not a server's workers.
pub const ANCESTORS_MAX: usize = 32;

/// The result of one scan of `/proc/*/fd`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FdScan {
    /// The pids holding each wanted inode, ascending; inodes nobody was seen holding are absent.
    pub holders: HashMap<u64, Vec<u32>>,
    /// A process whose fd directory could not be read for lack of privileges, if any.
    pub denied: Option<u32>,
    /// Processes looked at.
    pub processes: usize,
}

/// How reading a process's fd directory failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdDirError {
    /// The process exited during the scan: skip it.
    Vanished,
    /// It exists but its fds are not ours to read: owners are not visible.
    Denied,
    /// Anything else: skip it.
    Other,
}

/// Classifies a failure to read `/proc/PID/fd`. `exists` is asked only for a permission error,
/// because a process that has just exited can also answer EACCES while it is torn down.
pub fn fd_dir_error(err: &io::Error, exists: impl FnOnce() -> bool) -> FdDirError {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH) => FdDirError::Vanished,
        Some(libc::EACCES | libc::EPERM) => match exists() {
            true => FdDirError::Denied,
            false => FdDirError::Vanished,
        },
        _ if err.kind() == io::ErrorKind::NotFound => FdDirError::Vanished,
        _ => FdDirError::Other,
    }
}

/// Finds the processes holding any of `inodes` by reading every `/proc/PID/fd` link.
/// Processes and fds that vanish during the scan are skipped silently.
pub fn scan_fd_owners(proc_root: &Path, inodes: &HashSet<u64>) -> FdScan {
    let mut scan = FdScan::default();
    if inodes.is_empty() {
        return scan;
    }
    let Ok(entries) = fs::read_dir(proc_root) else {
        return scan;
    };
    for entry in entries.flatten() {
        let Some(pid) = pid_of(&entry.file_name()) else {
            continue;
        };
        scan.processes += 1;
        let dir = entry.path().join("fd");
        let fds = match fs::read_dir(&dir) {
            Ok(fds) => fds,
            Err(e) => {
                let denied = fd_dir_error(&e, || entry.path().exists()) == FdDirError::Denied;
                if denied && scan.denied.is_none() {
                    scan.denied = Some(pid);
                }
                continue;
            }
        };
        for fd in fds.flatten() {
            let Ok(link) = fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(inode) = socket_inode(link.as_os_str())
                && inodes.contains(&inode)
            {
                let pids = scan.holders.entry(inode).or_default();
                // Two fds of one process on the same socket (dup) count once.
                if pids.last() != Some(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    for pids in scan.holders.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    scan
}

/// Reads who process `pid` is. `None` if it exited meanwhile.
pub fn read_owner(proc_root: &Path, pid: u32) -> Option<Owner> {
    let dir = proc_root.join(pid.to_string());
    let name = fs::read_to_string(dir.join("comm")).ok()?;
    let cmdline = read_head(&dir.join("cmdline"), 4 * CMDLINE_MAX)
        .map(|raw| clean_cmdline(&raw))
        .unwrap_or_default();
    let cgroup = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|t| parse_cgroup(&t));
    let unit = cgroup.as_deref().and_then(unit_of);
    let stat = fs::read_to_string(dir.join("stat")).ok();
    let start_ticks = stat.as_deref().and_then(parse_start_ticks);
    let ppid = stat.as_deref().and_then(parse_ppid);
    Some(Owner {
        info: SocketOwner {
            pid,
            name: name.trim_end_matches('\n').to_owned(),
            cmdline,
            cgroup,
            unit,
            ppid,
        },
        start_ticks,
        ancestors: ancestors(proc_root, ppid),
    })
}

/// The chain of parents from `ppid` up: stops at pid 1 (included), at a process that exited
/// meanwhile, or after [`ANCESTORS_MAX`].
fn ancestors(proc_root: &Path, ppid: Option<u32>) -> Vec<u32> {
    let mut chain = Vec::new();
    let mut next = ppid;
    while let Some(pid) = next.filter(|&p| p != 0 && chain.len() < ANCESTORS_MAX) {
        chain.push(pid);
        if pid == 1 {
            break;
        }
        next = fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))
            .ok()
            .and_then(|t| parse_ppid(&t));
    }
    chain
}

/// Whether the fds of processes of other users can be read, tried on pid 1 (root's init, or
/// the container's first process). A cheap first guess before any scan says better.
pub fn can_read_other_fds(proc_root: &Path) -> bool {
    match fs::read_dir(proc_root.join("1").join("fd")) {
        Ok(_) => true,
        Err(e) => fd_dir_error(&e, || true) != FdDirError::Denied,
    }
}

/// `socket:[12345]` -> 12345.
pub fn socket_inode(link: &OsStr) -> Option<u64> {
    let s = link
        .as_bytes()
        .strip_prefix(b"socket:[")?
        .strip_suffix(b"]")?;
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn pid_of(name: &OsStr) -> Option<u32> {
    let b = name.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// The first `max` bytes of a file: a command line can be megabytes long.
fn read_head(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    fs::File::open(path)?
        .take(max as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// The arguments joined by spaces (they are NUL-separated), trimmed, at most [`CMDLINE_MAX`]
/// bytes, cut at a character boundary.
pub fn clean_cmdline(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).replace('\0', " ");
    let text = text.trim();
    let mut end = text.len().min(CMDLINE_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end().to_owned()
}

/// The process's cgroup from `/proc/PID/cgroup`: the unified hierarchy's line (`0::/path`),
/// else the v1 `name=systemd` one. On a hybrid system whose unified tree is unused the `0::`
/// path is just `/`; the `name=systemd` path then says more and is taken instead.
pub fn parse_cgroup(text: &str) -> Option<String> {
    let mut unified = None;
    let mut systemd = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if line.starts_with("0::") {
            unified = Some(path);
        } else if controllers == "name=systemd" {
            systemd = Some(path);
        }
    }
    let path = match (unified, systemd) {
        (Some("/"), Some(s)) if s != "/" => s,
        (Some(u), _) => u,
        (None, s) => s?,
    };
    (!path.is_empty()).then(|| path.to_owned())
}

/// The systemd unit a cgroup path belongs to: its last component that is a service or a scope
/// (`/system.slice/nginx.service` -> `nginx.service`, also below a delegated subtree).
pub fn unit_of(cgroup: &str) -> Option<String> {
    cgroup
        .split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_owned)
}

/// Field 4 (`ppid`) of `/proc/PID/stat`, counted after the name as [`parse_start_ticks`] does.
pub fn parse_ppid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(4 - 3)?.parse().ok()
}

/// Field 22 (`starttime`) of `/proc/PID/stat`. The second field, the name in parentheses, may
/// hold spaces and parentheses itself, so fields are counted after the last `)`.
pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // Field 3 (state) is the first after ')'.
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::symlink;

    #[test]
    fn cgroup_prefers_the_unified_line() {
        let hybrid = "12:memory:/system.slice/nginx.service\n\
                      1:name=systemd:/system.slice/nginx.service\n\
                      0::/system.slice/nginx.service\n";
        assert_eq!(
            parse_cgroup(hybrid).as_deref(),
            Some("/system.slice/nginx.service")
        );
        let v2 = "0::/user.slice/user-0.slice/session-3.scope\n";
        assert_eq!(
            parse_cgroup(v2).as_deref(),
            Some("/user.slice/user-0.slice/session-3.scope")
        );
        let v1 = "4:memory:/x\n1:name=systemd:/system.slice/cron.service\n";
        assert_eq!(
            parse_cgroup(v1).as_deref(),
            Some("/system.slice/cron.service")
        );
        let unused_unified = "1:name=systemd:/system.slice/a.service\n0::/\n";
        assert_eq!(
            parse_cgroup(unused_unified).as_deref(),
            Some("/system.slice/a.service")
        );
        assert_eq!(
            parse_cgroup("9:name=systemd:/\n0::/\n").as_deref(),
            Some("/")
        );
        assert_eq!(parse_cgroup("4:memory:/x\n"), None);
        assert_eq!(parse_cgroup(""), None);
        // A path may contain ':'.
        assert_eq!(parse_cgroup("0::/a:b\n").as_deref(), Some("/a:b"));
    }

    #[test]
    fn unit_is_the_last_service_or_scope() {
        assert_eq!(
            unit_of("/system.slice/nginx.service").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            unit_of("/user.slice/user-0.slice/session-3.scope").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit_of("/system.slice/docker.service/payload").as_deref(),
            Some("docker.service")
        );
        assert_eq!(
            unit_of("/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope").as_deref(),
            Some("x.scope")
        );
        assert_eq!(unit_of("/"), None);
        assert_eq!(unit_of("/system.slice"), None);
    }

    #[test]
    fn parent_is_field_4_after_the_name() {
        assert_eq!(
            parse_ppid("4242 (nginx: worker) S 812 4242 4242 0"),
            Some(812)
        );
        assert_eq!(parse_ppid("7 (a) b) c) R 1 2"), Some(1));
        assert_eq!(parse_ppid("7 (x) R"), None);
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn start_time_is_field_22_after_the_name() {
        let stat = "4242 (nginx: worker) S 1 4242 4242 0 -1 4194560 1386 0 0 0 3 1 0 0 20 0 1 \
                    0 98765 11808768 1422 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 \
                    1 0 0 0 0 0";
        assert_eq!(parse_start_ticks(stat), Some(98765));
        let odd = "7 (a) b) c) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert_eq!(parse_start_ticks(odd), Some(55));
        assert_eq!(parse_start_ticks("7 (x) R 1 2"), None);
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[test]
    fn cmdline_is_joined_trimmed_and_cut_at_a_char_boundary() {
        assert_eq!(clean_cmdline(b"nginx\0-t\0-q\0"), "nginx -t -q");
        assert_eq!(clean_cmdline(b""), "");
        assert_eq!(clean_cmdline(b"  a\0\0"), "a");
        // 255 ASCII bytes then a 2-byte character straddling the limit.
        let mut raw = vec![b'x'; 255];
        raw.extend_from_slice("é tail".as_bytes());
        let cut = clean_cmdline(&raw);
        assert_eq!(cut.len(), 255);
        let long = clean_cmdline(&[b'y'; 1000]);
        assert_eq!(long.len(), CMDLINE_MAX);
    }

    #[test]
    fn socket_links_are_recognised() {
        assert_eq!(socket_inode(OsStr::new("socket:[123]")), Some(123));
        assert_eq!(socket_inode(OsStr::new("pipe:[123]")), None);
        assert_eq!(socket_inode(OsStr::new("socket:[x]")), None);
        assert_eq!(socket_inode(OsStr::new("/dev/null")), None);
    }

    #[test]
    fn permission_errors_mean_denied_only_for_a_live_process() {
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(fd_dir_error(&eacces, || true), FdDirError::Denied);
        assert_eq!(fd_dir_error(&eperm, || true), FdDirError::Denied);
        assert_eq!(fd_dir_error(&eacces, || false), FdDirError::Vanished);
        let mut asked = false;
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            fd_dir_error(&enoent, || {
                asked = true;
                true
            }),
            FdDirError::Vanished
        );
        assert!(!asked, "existence is only asked after a permission error");
        let esrch = io::Error::from_raw_os_error(libc::ESRCH);
        assert_eq!(fd_dir_error(&esrch, || true), FdDirError::Vanished);
        let eio = io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(fd_dir_error(&eio, || true), FdDirError::Other);
    }

    /// A fake /proc: fd links are plain symlinks, whose targets read_link returns as text.
    #[test]
    fn scan_and_owner_on_a_fixture_proc() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        let proc_dir = |pid: &str, fds: &[(&str, &str)]| {
            let fd = p.join(pid).join("fd");
            fs::create_dir_all(&fd).unwrap();
            for (n, target) in fds {
                symlink(target, fd.join(n)).unwrap();
            }
        };
        proc_dir(
            "100",
            &[
                ("0", "/dev/null"),
                ("3", "socket:[555]"),
                ("4", "socket:[555]"),
            ],
        );
        proc_dir(
            "200",
            &[
                ("3", "socket:[555]"),
                ("5", "socket:[777]"),
                ("6", "pipe:[555]"),
            ],
        );
        proc_dir("300", &[("3", "socket:[999]")]);
        fs::create_dir_all(p.join("self")).unwrap();
        fs::create_dir_all(p.join("400")).unwrap(); // no fd dir: exited meanwhile
        fs::write(p.join("uptime"), "1 1").unwrap();

        let want: HashSet<u64> = [555, 777, 888].into();
        let scan = scan_fd_owners(p, &want);
        assert_eq!(scan.holders.get(&555), Some(&vec![100, 200]));
        assert_eq!(scan.holders.get(&777), Some(&vec![200]));
        assert_eq!(scan.holders.get(&888), None);
        assert_eq!(scan.holders.len(), 2);
        assert_eq!(scan.denied, None);
        assert_eq!(scan.processes, 4);

        let d = p.join("200");
        fs::write(d.join("comm"), "nginx\n").unwrap();
        fs::write(
            d.join("cmdline"),
            b"nginx: master process /usr/sbin/nginx\0",
        )
        .unwrap();
        fs::write(
            d.join("cgroup"),
            "1:name=systemd:/system.slice/nginx.service\n",
        )
        .unwrap();
        fs::write(
            d.join("stat"),
            "200 (nginx) S 100 200 200 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4321",
        )
        .unwrap();
        // Its parent, whose parent is init: the chain stops there.
        fs::write(
            p.join("100/stat"),
            "100 (sh) S 1 100 100 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99",
        )
        .unwrap();
        let owner = read_owner(p, 200).unwrap();
        assert_eq!(
            owner,
            Owner {
                info: SocketOwner {
                    pid: 200,
                    name: "nginx".into(),
                    cmdline: "nginx: master process /usr/sbin/nginx".into(),
                    cgroup: Some("/system.slice/nginx.service".into()),
                    unit: Some("nginx.service".into()),
                    ppid: Some(100),
                },
                start_ticks: Some(4321),
                ancestors: vec![100, 1],
            }
        );
        assert_eq!(read_owner(p, 400), None, "no comm: gone");
    }

    #[test]
    fn this_process_is_found_owning_its_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let link = fs::read_link(format!("/proc/self/fd/{}", l.as_raw_fd())).unwrap();
        let inode = socket_inode(link.as_os_str()).unwrap();
        let scan = scan_fd_owners(Path::new("/proc"), &[inode].into());
        let me = std::process::id();
        assert_eq!(scan.holders.get(&inode), Some(&vec![me]));
        let owner = read_owner(Path::new("/proc"), me).unwrap();
        let comm = fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(owner.info.name, comm.trim_end());
        assert!(owner.info.cmdline.contains("causeway_probe"), "{owner:?}");
        assert!(owner.info.cgroup.is_some());
        assert!(owner.start_ticks.is_some());
        // This test's own parent is the test runner; the chain ends at init (or at the top of
        // a pid namespace's visible tree).
        assert_eq!(owner.info.ppid, Some(std::os::unix::process::parent_id()));
        assert_eq!(owner.ancestors.first(), owner.info.ppid.as_ref());
        // Root, or capable: other users' fds are readable here.
        if can_read_other_fds(Path::new("/proc")) {
            assert_eq!(scan.denied, None);
        }
    }
}

//! A lab: hosts as network namespaces on one bridge, built for one test and torn down after it.
//!
//! The bridge lives in a namespace of its own (the "switch"), so the lab adds no interface,
//! address or route to the machine's own namespace: two labs, even two runs at once, never see
//! each other. Every name carries the test process's pid; a lab left behind by a killed run is
//! swept by the next one (its pid is gone).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

use crate::process::{Service, run};

/// The lab's subnet. Addresses are private to the lab's namespaces.
pub const SUBNET_PREFIX: &str = "10.88.0";

/// The subnet behind a lab's router ([`Lab::add_router`]), on a bridge of its own.
pub const FAR_SUBNET_PREFIX: &str = "10.89.0";

/// The router's address on the far subnet, the far hosts' gateway.
const FAR_GATEWAY_OCTET: u8 = 1;

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A host: one network namespace with `lo` and `eth0` on the lab bridge.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub netns: String,
    pub addr: Ipv4Addr,
}

impl Host {
    /// A command run inside this host's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(program);
        cmd
    }

    /// A command run inside this host's namespace and in `cgroup` (see [`Lab::cgroup`]), as a
    /// systemd unit's processes run in the unit's cgroup. A shell joins the cgroup first (inside
    /// the namespace `ip netns exec` mounts its own /sys, without the cgroup tree) and then
    /// execs `ip netns exec`, which execs the program: it keeps the pid the test sees, and its
    /// children inherit the cgroup.
    pub fn command_in(&self, cgroup: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(cgroup)
            .args(["ip", "netns", "exec", &self.netns])
            .arg(program);
        cmd
    }

    /// Gives this host its own /etc/resolv.conf: `ip netns exec` bind-mounts
    /// /etc/netns/<namespace>/resolv.conf over /etc/resolv.conf for the programs it starts, so
    /// a probe's `system` resolver reads these name servers. Removed with the namespace.
    pub fn set_resolv_conf(&self, text: &str) -> Result<()> {
        let dir = netns_etc(&self.netns);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("resolv.conf"), text)?;
        Ok(())
    }

    /// Gives this host another address on eth0 (`addr`, /24), as a container gets after a
    /// reboot: flush and add, then a gratuitous ARP, as DHCP clients announce an address
    /// (RFC 5227), so that neighbours' caches follow.
    pub fn readdress(&mut self, addr: Ipv4Addr) -> Result<()> {
        self.run(&["ip", "addr", "flush", "dev", "eth0"])?;
        self.run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        self.addr = addr;
        self.run(&["python3", "-c", GRATUITOUS_ARP, "eth0", &addr.to_string()])?;
        Ok(())
    }

    /// Runs `args` in this host's namespace to completion.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let (program, rest) = args.split_first().context("an empty command")?;
        run(self.command(program).args(rest))
    }
}

/// Set (to anything) to keep every lab's files, also of tests that return an error.
pub const KEEP_LABS: &str = "CAUSEWAY_KEEP_LABS";

/// Broadcasts a gratuitous ARP request for argv[2] from interface argv[1].
const GRATUITOUS_ARP: &str = r#"
import socket, struct, sys
ifname, ip = sys.argv[1], socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
mac = s.getsockname()[4]
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\0" * 6 + ip
s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)
"#;

pub struct Lab {
    prefix: String,
    switch: String,
    hosts: Vec<Host>,
    cgroups: Vec<PathBuf>,
    /// Files of this lab: configs, databases, logs. Kept when a test fails.
    pub dir: PathBuf,
    services: Vec<Service>,
}

impl Lab {
    /// Builds an empty lab (the switch only) for the test named `test`.
    pub fn new(test: &str) -> Result<Lab> {
        require_root()?;
        sweep_stale_labs();
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("cw-{}-{n}", std::process::id());
        let dir = crate::artifacts_dir().join(format!("{test}-{}-{n}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let switch = format!("{prefix}-sw");
        let lab = Lab {
            prefix,
            switch: switch.clone(),
            hosts: Vec::new(),
            cgroups: Vec::new(),
            dir,
            services: Vec::new(),
        };
        run(Command::new("ip").args(["netns", "add", &switch]))?;
        run(Command::new("ip").args(["-n", &switch, "link", "add", "br0", "type", "bridge"]))?;
        run(Command::new("ip").args(["-n", &switch, "link", "set", "br0", "up"]))?;
        Ok(lab)
    }

    /// Adds a host named `name` at `SUBNET_PREFIX.last_octet`.
    pub fn add_host(&mut self, name: &str, last_octet: u8) -> Result<Host> {
        self.new_host(
            name,
            SUBNET_PREFIX,
            "br0",
            &format!("p{last_octet}"),
            last_octet,
        )
    }

    /// A namespace with `lo` up and `eth0` at `subnet.last_octet` on the switch's `bridge`.
    fn new_host(
        &mut self,
        name: &str,
        subnet: &str,
        bridge: &str,
        port: &str,
        last_octet: u8,
    ) -> Result<Host> {
        let addr: Ipv4Addr = format!("{subnet}.{last_octet}").parse()?;
        let netns = format!("{}-{name}", self.prefix);
        run(Command::new("ip").args(["netns", "add", &netns]))?;
        let host = Host {
            name: name.to_owned(),
            netns,
            addr,
        };
        self.hosts.push(host.clone());
        run(Command::new("ip").args(["-n", &host.netns, "link", "set", "lo", "up"]))?;
        self.plug(&host, "eth0", bridge, port, addr)?;
        Ok(host)
    }

    /// Adds a router at `SUBNET_PREFIX.last_octet` (eth0) and `FAR_SUBNET_PREFIX.1` (eth1, on
    /// a second bridge), forwarding between the two. Far hosts ([`Lab::add_far_host`]) route
    /// through it; a lab host reaches them after [`Lab::route_far_via`].
    pub fn add_router(&mut self, name: &str, last_octet: u8) -> Result<Host> {
        let router = self.add_host(name, last_octet)?;
        let sw = self.switch.clone();
        run(Command::new("ip").args(["-n", &sw, "link", "add", "br1", "type", "bridge"]))?;
        run(Command::new("ip").args(["-n", &sw, "link", "set", "br1", "up"]))?;
        let far: Ipv4Addr = format!("{FAR_SUBNET_PREFIX}.{FAR_GATEWAY_OCTET}").parse()?;
        self.plug(&router, "eth1", "br1", "r1", far)?;
        router.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        Ok(router)
    }

    /// Adds a host at `FAR_SUBNET_PREFIX.last_octet`, behind the router, its default route.
    pub fn add_far_host(&mut self, name: &str, last_octet: u8) -> Result<Host> {
        let port = format!("f{last_octet}");
        let host = self.new_host(name, FAR_SUBNET_PREFIX, "br1", &port, last_octet)?;
        let gateway = format!("{FAR_SUBNET_PREFIX}.{FAR_GATEWAY_OCTET}");
        host.run(&["ip", "route", "add", "default", "via", &gateway])?;
        Ok(host)
    }

    /// Routes `host`'s traffic for the far subnet through `router`.
    pub fn route_far_via(&self, host: &Host, router: &Host) -> Result<()> {
        let subnet = format!("{FAR_SUBNET_PREFIX}.0/24");
        host.run(&[
            "ip",
            "route",
            "add",
            &subnet,
            "via",
            &router.addr.to_string(),
        ])?;
        Ok(())
    }

    /// Connects `host`'s interface `dev` to the switch's `bridge` through a veth pair whose
    /// switch end is `port`, with `addr`/24 on it.
    fn plug(&self, host: &Host, dev: &str, bridge: &str, port: &str, addr: Ipv4Addr) -> Result<()> {
        // The veth pair is made inside the namespaces, so its names cannot clash with the
        // machine's own interfaces or another lab's.
        let sw = &self.switch;
        let ns = &host.netns;
        run(Command::new("ip").args([
            "-n", sw, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns,
        ]))?;
        run(Command::new("ip").args(["-n", sw, "link", "set", port, "master", bridge, "up"]))?;
        let cidr = format!("{addr}/24");
        run(Command::new("ip").args(["-n", ns, "addr", "add", &cidr, "dev", dev]))?;
        run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]))?;
        Ok(())
    }

    /// A new cgroup (in the cgroup v2 tree) named after the lab, for a service that must not
    /// share the test's cgroup, as a systemd unit would not. Removed at teardown.
    pub fn cgroup(&mut self, name: &str) -> Result<PathBuf> {
        let path = cgroup2_root()?.join(format!("{}-{name}", self.prefix));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        self.cgroups.push(path.clone());
        Ok(path)
    }

    /// A new memory cgroup limited to `limit_bytes`, without swap, named after the lab; its
    /// processes are OOM-killed by the kernel when they outgrow it. Made in the cgroup v2 tree
    /// (`memory.max`) where the memory controller is there, else in cgroup v1's memory
    /// hierarchy (`memory.limit_in_bytes`), as on this project's CI machine. Removed at
    /// teardown; run a program in it with [`Host::command_in`].
    pub fn memory_cgroup(&mut self, name: &str, limit_bytes: u64) -> Result<PathBuf> {
        let name = format!("{}-{name}", self.prefix);
        let (path, files) = match memory_controller()? {
            MemoryController::V2(root) => {
                enable_memory_v2(&root)?;
                let files = [("memory.max", limit_bytes), ("memory.swap.max", 0)];
                (root.join(name), files)
            }
            MemoryController::V1(root) => {
                // memsw (memory + swap) may only be set once the memory limit is: keep order.
                let files = [
                    ("memory.limit_in_bytes", limit_bytes),
                    ("memory.memsw.limit_in_bytes", limit_bytes),
                ];
                (root.join(name), files)
            }
        };
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        self.cgroups.push(path.clone());
        for (file, value) in files {
            let at = path.join(file);
            // Without swap accounting (or swap) the swap file is absent: nothing to limit.
            if file.contains("sw") && !at.exists() {
                continue;
            }
            std::fs::write(&at, value.to_string())
                .with_context(|| format!("writing {value} to {}", at.display()))?;
        }
        Ok(path)
    }

    /// Keeps `service` alive as long as the lab, and stops it first at teardown.
    pub fn adopt(&mut self, service: Service) {
        self.services.push(service);
    }

    /// Takes back the adopted service named `name`, to stop or restart it by hand.
    pub fn take(&mut self, name: &str) -> Option<Service> {
        let i = self.services.iter().position(|s| s.name == name)?;
        Some(self.services.remove(i))
    }

    /// A file path inside the lab's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn teardown(&mut self) {
        let failed = std::thread::panicking();
        for mut service in self.services.drain(..).rev() {
            service.stop();
        }
        // Always: the test runner shows what a test printed only when it fails, and a test
        // that fails by returning an error is not panicking here, so this cannot tell.
        self.print_log_tails(40);
        for host in self.hosts.drain(..) {
            delete_netns(&host.netns);
        }
        delete_netns(&self.switch);
        for cgroup in self.cgroups.drain(..) {
            delete_cgroup(&cgroup);
        }
        if failed || std::env::var_os(KEEP_LABS).is_some() {
            eprintln!("lab files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Lab {
    /// The last `lines` lines of every log in the lab's directory (services taken back with
    /// [`Lab::take`] included), to stderr.
    fn print_log_tails(&self, lines: usize) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            eprintln!("----- last {} lines of {} -----", tail.len(), log.display());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn require_root() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    if uid_line.split_whitespace().nth(2) != Some("0") {
        bail!(
            "the end-to-end tests build network namespaces and need root; \
             run them as root (scripts/test does)"
        );
    }
    Ok(())
}

/// Kills whatever still runs in `netns` and deletes it. Never fails: teardown must go on.
fn delete_netns(netns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", netns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", netns]).status();
    let _ = std::fs::remove_dir_all(netns_etc(netns));
}

/// The per-namespace /etc overlay of `ip netns exec`.
fn netns_etc(netns: &str) -> PathBuf {
    Path::new("/etc/netns").join(netns)
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on a v2 machine,
/// `/sys/fs/cgroup/unified` on a hybrid one).
pub fn cgroup2_root() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    for line in mounts.lines() {
        // ... mount_point ... - fstype source options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() == Some("cgroup2")
            && let Some(mount_point) = left.split_whitespace().nth(4)
        {
            return Ok(PathBuf::from(mount_point));
        }
    }
    bail!("no cgroup2 hierarchy is mounted; the tests put services in cgroups of their own")
}

/// Where the memory controller is: the cgroup v2 root when it offers `memory` (most hosts),
/// else cgroup v1's memory hierarchy (a hybrid host keeps it there).
enum MemoryController {
    V2(PathBuf),
    V1(PathBuf),
}

fn memory_controller() -> Result<MemoryController> {
    if let Ok(root) = cgroup2_root() {
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))?;
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Ok(MemoryController::V2(root));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    for line in mounts.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = right.split_whitespace();
        let (fstype, options) = (fields.next(), fields.nth(1).unwrap_or(""));
        if fstype == Some("cgroup")
            && options.split(',').any(|o| o == "memory")
            && let Some(mount_point) = left.split_whitespace().nth(4)
        {
            return Ok(MemoryController::V1(PathBuf::from(mount_point)));
        }
    }
    bail!(
        "no memory cgroup controller: neither the cgroup v2 root offers `memory` nor is cgroup          v1's memory hierarchy mounted; the OOM tests need one"
    )
}

/// Lets the v2 root's children limit memory (`+memory` in its subtree_control).
fn enable_memory_v2(root: &Path) -> Result<()> {
    let control = root.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control)?;
    if !enabled.split_whitespace().any(|c| c == "memory") {
        std::fs::write(&control, "+memory")
            .with_context(|| format!("enabling memory in {}", control.display()))?;
    }
    Ok(())
}

/// Kills whatever is left in `cgroup` and removes it. Never fails: teardown must go on.
fn delete_cgroup(cgroup: &Path) {
    if let Ok(procs) = std::fs::read_to_string(cgroup.join("cgroup.procs")) {
        for pid in procs.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    // A killed process leaves the cgroup when it is reaped, a moment later.
    let _ = crate::wait::wait_for(
        "a cgroup to empty",
        std::time::Duration::from_secs(5),
        || Ok(std::fs::remove_dir(cgroup).is_ok().then_some(())),
    );
}

/// Deletes the namespaces and cgroups of labs whose test process is gone (a run killed
/// mid-test).
fn sweep_stale_labs() {
    if let Ok(root) = cgroup2_root()
        && let Ok(entries) = std::fs::read_dir(&root)
    {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if lab_is_stale(&name) {
                delete_cgroup(&entry.path());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/etc/netns") {
        for entry in entries.flatten() {
            if lab_is_stale(&entry.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if lab_is_stale(name) {
            delete_netns(name);
        }
    }
}

/// Whether `name` (`cw-<pid>-...`) belongs to a lab whose test process is gone.
fn lab_is_stale(name: &str) -> bool {
    let Some(pid) = name
        .strip_prefix("cw-")
        .and_then(|rest| rest.split('-').next())
    else {
        return false;
    };
    pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Sets kernel.dmesg_restrict to 1 for as long as it lives, and puts back what was there: a
/// test that takes the kernel log away from an unprivileged probe needs it on, and a machine
/// that lets everyone read the kernel log gets the setting for the test only.
pub struct DmesgRestrict(Option<String>);

const DMESG_RESTRICT: &str = "/proc/sys/kernel/dmesg_restrict";

impl DmesgRestrict {
    pub fn on() -> Result<DmesgRestrict> {
        let was = std::fs::read_to_string(DMESG_RESTRICT)?.trim().to_owned();
        if was == "1" {
            return Ok(DmesgRestrict(None));
        }
        std::fs::write(DMESG_RESTRICT, "1").context("setting kernel.dmesg_restrict=1")?;
        Ok(DmesgRestrict(Some(was)))
    }
}

impl Drop for DmesgRestrict {
    fn drop(&mut self) {
        if let Some(was) = &self.0 {
            let _ = std::fs::write(DMESG_RESTRICT, was);
        }
    }
}

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
}

pub struct Lab {
    prefix: String,
    switch: String,
    hosts: Vec<Host>,
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
        let netns = format!("{}-{name}", self.prefix);
        let addr: Ipv4Addr = format!("{SUBNET_PREFIX}.{last_octet}").parse()?;
        let port = format!("p{last_octet}");
        run(Command::new("ip").args(["netns", "add", &netns]))?;
        let host = Host {
            name: name.to_owned(),
            netns: netns.clone(),
            addr,
        };
        self.hosts.push(host.clone());
        // The veth pair is made inside the namespaces, so its names cannot clash with the
        // machine's own interfaces or another lab's.
        let sw = &self.switch;
        run(Command::new("ip").args([
            "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]))?;
        run(Command::new("ip").args(["-n", sw, "link", "set", &port, "master", "br0", "up"]))?;
        run(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]))?;
        run(Command::new("ip").args([
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]))?;
        run(Command::new("ip").args(["-n", &netns, "link", "set", "eth0", "up"]))?;
        Ok(host)
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
            if failed {
                service.print_log_tail(40);
            }
        }
        for host in self.hosts.drain(..) {
            delete_netns(&host.netns);
        }
        delete_netns(&self.switch);
        if failed {
            eprintln!("lab files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
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
}

/// Deletes the namespaces of labs whose test process is gone (a run killed mid-test).
fn sweep_stale_labs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("cw-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(name);
        }
    }
}

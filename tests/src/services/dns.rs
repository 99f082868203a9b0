//! unbound as a lab's resolver: authoritative for `lab.`, with the access control a test asks.

use anyhow::Result;

use super::*;
use crate::lab::{Host, Lab};
use crate::process::Service;

/// unbound on `host`:53, authoritative for `lab.` with the given records
/// (`"canary.lab. 30 IN A 10.88.0.2"`), answering only the lab's subnet.
pub fn start_unbound(lab: &Lab, host: &Host, name: &str, records: &[&str]) -> Result<Service> {
    let lab_subnet = format!("{}.0/24 allow", crate::lab::SUBNET_PREFIX);
    start_unbound_with_access(lab, host, name, records, &[&lab_subnet])
}

/// [`start_unbound`] with its own `access-control` lines (`"10.88.0.0/24 refuse"`); the most
/// specific netblock wins, as in unbound.
pub fn start_unbound_with_access(
    lab: &Lab,
    host: &Host,
    name: &str,
    records: &[&str],
    access: &[&str],
) -> Result<Service> {
    let dir = lab.path(name);
    std::fs::create_dir_all(&dir)?;
    let data: String = records
        .iter()
        .map(|r| format!("    local-data: \"{r}\"\n"))
        .collect();
    let access: String = access
        .iter()
        .map(|a| format!("    access-control: {a}\n"))
        .collect();
    let conf = dir.join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            r#"server:
    interface: {addr}
    port: 53
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    do-ip6: no
{access}    local-zone: "lab." static
{data}remote-control:
    control-enable: no
"#,
            addr = host.addr,
            dir = dir.display(),
        ),
    )?;
    let mut cmd = host.command(sbin("unbound"));
    cmd.arg("-d").arg("-c").arg(&conf);
    let mut service = Service::spawn(name, &mut cmd, &dir.join("unbound.log"))?;
    service.wait_for_log("start of service", START_TIMEOUT)?;
    Ok(service)
}

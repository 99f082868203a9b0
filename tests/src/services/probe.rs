//! Causeway's probe in a lab: its config, and started as root, with a wrong clock, as
//! nobody or with exactly the unit's capabilities; its spool.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::*;
use crate::lab::{Host, Lab};
use crate::process::{Service, run};

/// A probe's settings for a lab test.
#[derive(Default)]
pub struct ProbeSetup<'a> {
    pub server: &'a str,
    pub collector_url: &'a str,
    pub token: &'a str,
    pub canary_url: &'a str,
    pub resolvers: &'a [String],
    pub interval: &'a str,
    pub timeout: &'a str,
    /// Extra lines for the canary's table (`serving_process = "nginx"`).
    pub canary_extra: &'a str,
    /// Extra top-level lines (`dns_timeout = "500ms"`).
    pub top_extra: &'a str,
    /// The `[host]` table's lines; [`CALM_HOST`] when empty.
    pub host_table: &'a str,
    /// The name of its files in the lab (`{files}.toml`, `{files}-spool`, `{files}-state`),
    /// for several probes in one lab; `probe.toml`, `spool` and `state` when empty.
    pub files: &'a str,
}

/// The `[host]` table of lab probes that look for OOM kills: the kernel log is followed, and
/// only OOM kills are judged (the load and pressure of the whole test run are not a lab
/// host's).
pub const OOM_ONLY_HOST: &str = "kernel_log = true\nwindow = \"5m\"\nleak_share = 100\n\
                                 load_per_cpu = 1000\ncpu_pressure = 100\nmemory_pressure = 100\n\
                                 io_pressure = 100";

/// The `[host]` table of lab probes that do not test host evidence. Every lab host shares one
/// kernel: its log holds the OOM kills of the OOM tests (run in parallel), and its load is
/// the whole test run's. Neither belongs to a lab host, so these probes do not follow the
/// kernel log and judge with thresholds that are never reached.
pub const CALM_HOST: &str = "kernel_log = false\nleak_share = 100\nload_per_cpu = 1000\n\
                             cpu_pressure = 100\nmemory_pressure = 100\nio_pressure = 100";

/// Where most probe tests start: a collector on `coll` with a token for `server`, and the
/// config of a probe checking `canary_url` every second (800 ms timeout) through the system
/// resolver, with the rest of `setup` (its server, collector, token, canary, resolvers,
/// interval and timeout are these). Returns the collector, the config and the spool; the
/// probe is not started.
pub fn collector_and_probe_config(
    lab: &Lab,
    coll: &Host,
    server: &str,
    canary_url: &str,
    setup: ProbeSetup<'_>,
) -> Result<(Collector, PathBuf, PathBuf)> {
    collector_and_probe_config_with(lab, coll, server, canary_url, &[], setup)
}

/// [`collector_and_probe_config`] with `args` before the collector's `serve` (`--config
/// FILE`); the probe checks every `setup.interval` (1 s when empty) within `setup.timeout`
/// (800 ms when empty).
pub fn collector_and_probe_config_with(
    lab: &Lab,
    coll: &Host,
    server: &str,
    canary_url: &str,
    args: &[std::ffi::OsString],
    setup: ProbeSetup<'_>,
) -> Result<(Collector, PathBuf, PathBuf)> {
    let db = lab.path("causeway.db");
    let token = add_token(&db, server)?;
    let collector = start_collector_with(lab, coll, &db, args)?;
    let (config, spool) = write_probe_config(
        lab,
        &ProbeSetup {
            server,
            collector_url: &collector.url,
            token: &token,
            canary_url,
            resolvers: &["system".to_owned()],
            interval: or_default(setup.interval, "1s"),
            timeout: or_default(setup.timeout, "800ms"),
            ..setup
        },
    )?;
    Ok((collector, config, spool))
}

fn or_default<'s>(given: &'s str, default: &'s str) -> &'s str {
    if given.is_empty() { default } else { given }
}

/// The probe's config file for `setup`, written into the lab.
pub fn write_probe_config(lab: &Lab, setup: &ProbeSetup) -> Result<(PathBuf, PathBuf)> {
    let (spool, state, config) = match setup.files {
        "" => (
            "spool".to_owned(),
            "state".to_owned(),
            "probe.toml".to_owned(),
        ),
        f => (
            format!("{f}-spool"),
            format!("{f}-state"),
            format!("{f}.toml"),
        ),
    };
    let (spool, state, config) = (lab.path(&spool), lab.path(&state), lab.path(&config));
    let resolvers: Vec<String> = setup.resolvers.iter().map(|r| format!("{r:?}")).collect();
    let host_table = match setup.host_table {
        "" => CALM_HOST,
        lines => lines,
    };
    std::fs::write(
        &config,
        format!(
            r#"collector_url = "{collector}"
token = "{token}"
server = "{server}"
interval = "{interval}"
timeout = "{timeout}"
spool_dir = "{spool}"
state_dir = "{state}"
resolvers = [{resolvers}]
{top_extra}

[host]
{host_table}

[[canary]]
name = "site"
url = "{url}"
expect_status = 200
expect_text = "{CANARY_TEXT}"
{extra}
"#,
            collector = setup.collector_url,
            token = setup.token,
            server = setup.server,
            interval = setup.interval,
            timeout = setup.timeout,
            spool = spool.display(),
            state = state.display(),
            resolvers = resolvers.join(", "),
            url = setup.canary_url,
            extra = setup.canary_extra,
            top_extra = setup.top_extra,
        ),
    )?;
    Ok((config, spool))
}

/// `causeway-probe run` on `host` with `config`.
pub fn start_probe(lab: &Lab, host: &Host, config: &Path) -> Result<Service> {
    let mut cmd = host.command(bin("causeway-probe")?);
    start_probe_with(lab, &mut cmd, config)
}

/// libfaketime's library (Debian's `libfaketime`, which `faketime` depends on); the
/// multithreaded one, as the probe has threads.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// `causeway-probe run` on `host` with its clock `offset` from the real one (libfaketime's
/// syntax, e.g. `+20h`): a host that booted with a wrong clock. The library is preloaded into
/// the probe itself rather than through the `faketime` command, which runs the program as a
/// child of its own: a SIGTERM to it would not reach the probe.
pub fn start_probe_with_clock(
    lab: &Lab,
    host: &Host,
    config: &Path,
    offset: &str,
) -> Result<Service> {
    if !Path::new(LIBFAKETIME).exists() {
        bail!(
            "{LIBFAKETIME} is missing: install Debian's faketime (scripts/install-test-deps does)"
        );
    }
    let mut cmd = host.command(bin("causeway-probe")?);
    cmd.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", offset);
    start_probe_with(lab, &mut cmd, config)
}

/// `causeway-probe run` as the unprivileged user `nobody` (no capabilities at all), its spool
/// owned by that user.
pub fn start_unprivileged_probe(
    lab: &Lab,
    host: &Host,
    config: &Path,
    spool: &Path,
) -> Result<Service> {
    check_nobody_can_run(config)?;
    std::fs::create_dir_all(spool)?;
    run(std::process::Command::new("chown")
        .arg("nobody:nogroup")
        .arg(spool))?;
    let mut cmd = host.command("setpriv");
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ])
    .arg(bin("causeway-probe")?);
    start_probe_with(lab, &mut cmd, config)
}

/// Fails with the reason when `nobody` cannot run the probe's binary or read its config: a
/// checkout under a private directory (root's 0700 home) would otherwise only show as a probe
/// that never reports.
fn check_nobody_can_run(config: &Path) -> Result<()> {
    let binary = bin("causeway-probe")?;
    let status = std::process::Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(r#"test -x "$0" && test -r "$1""#)
        .arg(&binary)
        .arg(config)
        .status()?;
    if !status.success() {
        bail!(
            "the user nobody cannot run {} or read {}: a directory above them is private \
             (e.g. /root is 0700); put the checkout where other users can reach it \
             (/tmp, /work, /srv)",
            binary.display(),
            config.display()
        );
    }
    Ok(())
}

fn start_probe_with(lab: &Lab, cmd: &mut std::process::Command, config: &Path) -> Result<Service> {
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info");
    Service::spawn("probe", cmd, &lab.path("probe.log"))
}

/// The report files waiting in a probe's spool (their names: `<started_at>-<report_id>.json`).
pub fn spooled_reports(spool: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    if !spool.exists() {
        return Ok(names);
    }
    for entry in std::fs::read_dir(spool)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if is_report_file(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// `<13 digits>-<uuid>.json`: a report waiting. Anything else (the probe's `.tmp-` files
/// being written, the `rejected/` folder, its counters) is not one.
fn is_report_file(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".json") else {
        return false;
    };
    let Some((time, id)) = stem.split_once('-') else {
        return false;
    };
    time.len() == 13 && time.bytes().all(|b| b.is_ascii_digit()) && id.len() == 36
}

/// `causeway-probe run` as the unprivileged user `nobody` with exactly the capabilities
/// `caps` (setpriv's names: `net_raw`, `syslog`, ...) as ambient ones, and as the only ones it
/// could ever get (the bounding set), as systemd's `AmbientCapabilities=` and
/// `CapabilityBoundingSet=` give; its spool and state directory (the lab's `state`) owned by
/// that user.
pub fn start_probe_with_capabilities(
    lab: &Lab,
    host: &Host,
    config: &Path,
    spool: &Path,
    caps: &[&str],
) -> Result<Service> {
    check_nobody_can_run(config)?;
    for dir in [spool.to_owned(), lab.path("state")] {
        std::fs::create_dir_all(&dir)?;
        run(std::process::Command::new("chown")
            .arg("nobody:nogroup")
            .arg(&dir))?;
    }
    let set: String = caps.iter().map(|c| format!(",+{c}")).collect();
    let mut cmd = host.command("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(format!("--inh-caps=-all{set}"))
        .arg(format!("--ambient-caps=-all{set}"))
        .arg(format!("--bounding-set=-all{set}"))
        .arg("--no-new-privs")
        .arg(bin("causeway-probe")?);
    start_probe_with(lab, &mut cmd, config)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_finished_reports_count() {
        let id = "3e425033-fe98-4cd1-9c6b-0881b17bc124";
        assert!(super::is_report_file(&format!("1795432972765-{id}.json")));
        assert!(!super::is_report_file(&format!(
            ".tmp-1795432972765-{id}.json"
        )));
        assert!(!super::is_report_file("dropped_total"));
        assert!(!super::is_report_file(&format!(
            "1795432972765-{id}.json.part"
        )));
    }
}

//! The real programs a lab runs: nginx, unbound, Causeway's collector and probe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::lab::{Host, Lab};
use crate::process::{Service, run};
use crate::wait::wait_for;

/// The text the lab's canary page contains, and the probe expects.
pub const CANARY_TEXT: &str = "causeway canary ok";

/// How long a service may take to come up in a lab.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where cargo put Causeway's binaries: beside this test's own executable's parent.
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no parent directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --bins` first (scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

fn sbin(name: &str) -> String {
    let path = format!("/usr/sbin/{name}");
    if Path::new(&path).exists() {
        path
    } else {
        name.to_owned()
    }
}

/// nginx serving the canary page on `host`:80, started in the foreground (so the test owns the
/// master process), listening with `reuseport` as production configs often do, in a cgroup of
/// its own as under systemd.
pub fn start_nginx(lab: &mut Lab, host: &Host, name: &str) -> Result<Service> {
    let location = format!("default_type text/plain; return 200 \"{CANARY_TEXT}\\n\";");
    let listen = format!("{}:80", host.addr);
    start_nginx_site(lab, host, name, &listen, &location, CANARY_TEXT)
}

/// nginx on every address of `host`, port `port`, answering `body` (plain text) to every
/// request: a backend, as a container's server listens, whatever address it gets.
pub fn start_nginx_backend(
    lab: &mut Lab,
    host: &Host,
    name: &str,
    port: u16,
    body: &str,
) -> Result<Service> {
    let location = format!("default_type text/plain; return 200 \"{body}\\n\";");
    start_nginx_site(lab, host, name, &port.to_string(), &location, body)
}

/// nginx on `host`:80 as a reverse proxy to `upstream` (`10.88.0.12:8080`), with short
/// timeouts so that a dead upstream shows as 502/504 within a probe's timeout.
pub fn start_nginx_proxy(
    lab: &mut Lab,
    host: &Host,
    name: &str,
    upstream: &str,
) -> Result<Service> {
    let location = format!(
        "proxy_pass http://{upstream}; proxy_connect_timeout 300ms; proxy_read_timeout 2s;"
    );
    let listen = format!("{}:80", host.addr);
    start_nginx_site(lab, host, name, &listen, &location, "")
}

/// nginx with one server listening on `listen` (`10.88.0.2:80`, or a port for every address)
/// whose `location /` is `location`; started when a request to the host answers (containing
/// `ready_text`).
fn start_nginx_site(
    lab: &mut Lab,
    host: &Host,
    name: &str,
    listen: &str,
    location: &str,
    ready_text: &str,
) -> Result<Service> {
    let prefix = lab.path(name);
    for sub in ["", "logs", "tmp"] {
        std::fs::create_dir_all(prefix.join(sub))?;
    }
    let conf = prefix.join("nginx.conf");
    let tmp = prefix.join("tmp");
    let tmp = tmp.display();
    std::fs::write(
        &conf,
        format!(
            r#"daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {listen} reuseport;
        location / {{ {location} }}
    }}
}}
"#,
            prefix = prefix.display(),
        ),
    )?;
    let cgroup = match lab.path(name).join("cgroup") {
        // A restart reuses the service's cgroup, as systemd does.
        link if link.exists() => std::fs::read_link(&link)?,
        link => {
            let cgroup = lab.cgroup(name)?;
            std::os::unix::fs::symlink(&cgroup, link)?;
            cgroup
        }
    };
    let mut cmd = host.command_in(&cgroup, sbin("nginx"));
    cmd.arg("-e")
        .arg("stderr")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf);
    let mut service = Service::spawn(name, &mut cmd, &prefix.join("nginx.log"))?;
    let port = listen.rsplit(':').next().unwrap_or(listen);
    let url = format!("http://{}:{port}/", host.addr);
    wait_for(&format!("{name} to serve {url}"), START_TIMEOUT, || {
        if !service.is_running() {
            bail!("nginx exited: {}", service.log_text());
        }
        // A proxy is ready when it answers at all (its upstream may not be up yet).
        let ready =
            run(host
                .command("curl")
                .args(["-sS", "--max-time", "5", "--noproxy", "*", &url]))
            .ok()
            .filter(|body| body.contains(ready_text));
        Ok(ready)
    })?;
    Ok(service)
}

/// A process that is not nginx, in the test's cgroup, binding `host`:`port` with SO_REUSEPORT
/// beside nginx, holding it 1 to 3 s without accepting, and exiting; again and again, a new
/// process each time, like a config test (`nginx -t`) run every minute by a monitoring agent.
/// Its command line contains `rogue-listener.py`.
pub fn start_rogue_listener(lab: &Lab, host: &Host, port: u16) -> Result<Service> {
    start_rogue_listener_as(lab, host, port, None, None)
}

/// [`start_rogue_listener`] with the process name `comm` (at most 15 bytes) and in `cgroup`
/// (a cgroup v2 directory): `nginx -t` run inside nginx's own container or cgroup, which has
/// nginx's name and cgroup but is not nginx's child.
pub fn start_rogue_listener_as(
    lab: &Lab,
    host: &Host,
    port: u16,
    comm: Option<&str>,
    cgroup: Option<&Path>,
) -> Result<Service> {
    let script = lab.path("rogue-listener.py");
    std::fs::write(
        &script,
        r#"import ctypes, random, socket, sys, time
if len(sys.argv) > 3:
    # PR_SET_NAME: the name /proc/PID/comm shows.
    ctypes.CDLL(None).prctl(15, sys.argv[3].encode(), 0, 0, 0)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("listening", flush=True)
time.sleep(random.uniform(1.0, 3.0))
"#,
    )?;
    let mut cmd = match cgroup {
        Some(cgroup) => host.command_in(cgroup, "sh"),
        None => host.command("sh"),
    };
    cmd.arg("-c")
        .arg(r#"while :; do python3 "$0" "$@"; sleep 0.3; done"#)
        .arg(&script)
        .arg(host.addr.to_string())
        .arg(port.to_string())
        .args(comm);
    let mut service = Service::spawn("rogue", &mut cmd, &lab.path("rogue.log"))?;
    service.wait_for_log("listening", START_TIMEOUT)?;
    Ok(service)
}

/// The cgroup of the nginx started as `name` by [`start_nginx`].
pub fn nginx_cgroup(lab: &Lab, name: &str) -> Result<PathBuf> {
    let link = lab.path(name).join("cgroup");
    std::fs::read_link(&link).with_context(|| format!("reading {}", link.display()))
}

/// A Python HTTP server on every address of `host`, port `port`, serving the canary page, in
/// the memory cgroup `cgroup` (see [`Lab::memory_cgroup`]). On SIGUSR1 it starts allocating
/// (and touching) 8 MiB after 8 MiB until the kernel's OOM killer kills it: a service eating
/// memory. Its pid, as the test sees it, is the process that gets killed.
pub fn start_hungry_server(lab: &Lab, host: &Host, cgroup: &Path, port: u16) -> Result<Service> {
    start_hungry_server_as(lab, host, cgroup, port, None, None)
}

/// [`start_hungry_server`] under another name: `argv0` as its command line's first word (what
/// listener evidence shows), `comm` as its process name (at most 15 bytes; what the kernel
/// writes in its OOM lines).
pub fn start_hungry_server_as(
    lab: &Lab,
    host: &Host,
    cgroup: &Path,
    port: u16,
    argv0: Option<&str>,
    comm: Option<&str>,
) -> Result<Service> {
    let script = lab.path("hungry-server.py");
    std::fs::write(
        &script,
        format!(
            r#"import http.server, signal, sys

class Canary(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"{CANARY_TEXT}\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

hoard = []

def eat(signum, frame):
    print("eating", flush=True)
    while True:
        hoard.append(b"\x01" * (8 << 20))

if len(sys.argv) > 2:
    import ctypes
    ctypes.CDLL(None).prctl(15, sys.argv[2].encode(), 0, 0, 0)  # PR_SET_NAME

signal.signal(signal.SIGUSR1, eat)
server = http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), Canary)
print("serving", flush=True)
server.serve_forever(poll_interval=0.1)
"#
        ),
    )?;
    // `exec -a` sets the command line's first word; bash execs python3 in place, so the pid
    // the test sees is the server's.
    let mut cmd = host.command_in(cgroup, "bash");
    cmd.arg("-c")
        // A python3 found on PATH may be a wrapper (pyenv's) that execs the real one and
        // loses the name: exec the interpreter itself.
        .arg(r#"exec -a "$0" "$(python3 -c 'import sys; print(sys.executable)')" "$@""#)
        .arg(argv0.unwrap_or("python3"))
        .arg(&script)
        .arg(port.to_string());
    if let Some(comm) = comm {
        cmd.arg(comm);
    }
    let mut service = Service::spawn("hungry", &mut cmd, &lab.path("hungry.log"))?;
    service.wait_for_log("serving", START_TIMEOUT)?;
    Ok(service)
}

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

/// A collector on `host`:8750 with its SQLite file at `db`.
pub struct Collector {
    pub service: Service,
    pub url: String,
    pub db: PathBuf,
    pub host: Host,
    /// Arguments before `serve` (`--config FILE`), kept for a restart.
    pub args: Vec<std::ffi::OsString>,
}

pub const COLLECTOR_PORT: u16 = 8750;

pub fn start_collector(lab: &Lab, host: &Host, db: &Path) -> Result<Collector> {
    start_collector_with(lab, host, db, &[])
}

/// [`start_collector`] with `args` before `serve` (`--config FILE`).
pub fn start_collector_with(
    lab: &Lab,
    host: &Host,
    db: &Path,
    args: &[std::ffi::OsString],
) -> Result<Collector> {
    let url = format!("http://{}:{COLLECTOR_PORT}", host.addr);
    let service = spawn_collector(lab, host, db, &url, args)?;
    Ok(Collector {
        service,
        url,
        db: db.to_owned(),
        host: host.clone(),
        args: args.to_vec(),
    })
}

impl Collector {
    /// Stops the collector with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) -> Result<()> {
        self.service
            .stop()
            .context("the collector did not exit on SIGTERM")?;
        Ok(())
    }

    /// Starts the collector again on the same address and database.
    pub fn restart(&mut self, lab: &Lab) -> Result<()> {
        self.service = spawn_collector(lab, &self.host, &self.db, &self.url, &self.args)?;
        Ok(())
    }
}

fn spawn_collector(
    lab: &Lab,
    host: &Host,
    db: &Path,
    url: &str,
    args: &[std::ffi::OsString],
) -> Result<Service> {
    let mut cmd = host.command(bin("causeway-collector")?);
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .arg("serve")
        .arg("--listen")
        .arg(format!("{}:{COLLECTOR_PORT}", host.addr))
        // The lab's hosts read the collector's pages and API without signing in: who may
        // read is the collector's own tests' subject (collector/tests/access.rs).
        .arg("--open")
        .env("RUST_LOG", "info");
    let mut service = Service::spawn("collector", &mut cmd, &lab.path("collector.log"))?;
    let health = format!("{url}/healthz");
    wait_for("the collector to answer /healthz", START_TIMEOUT, || {
        if !service.is_running() {
            bail!("the collector exited: {}", service.log_text());
        }
        Ok(http_get(host, &health).ok().map(|_| ()))
    })?;
    Ok(service)
}

/// Issues a probe token for `server` with the collector's own command.
pub fn add_token(db: &Path, server: &str) -> Result<String> {
    let out = run(std::process::Command::new(bin("causeway-collector")?)
        .arg("--db")
        .arg(db)
        .args(["token", "add", server]))?;
    let token = out.trim().to_owned();
    if !token.starts_with("cw_") {
        bail!("token add printed {out:?}, not a token");
    }
    Ok(token)
}

/// `causeway-collector read-token add <name> [--write]`: the token (`cwr_...`).
pub fn add_read_token(db: &Path, name: &str, write: bool) -> Result<String> {
    let mut cmd = std::process::Command::new(bin("causeway-collector")?);
    cmd.arg("--db").arg(db).args(["read-token", "add", name]);
    if write {
        cmd.arg("--write");
    }
    let out = run(&mut cmd)?;
    let token = out.trim().to_owned();
    if !token.starts_with("cwr_") {
        bail!("read-token add printed {out:?}, not a token");
    }
    Ok(token)
}

/// `causeway-collector share add <server>`: the link's path (`/s/cws_...`).
pub fn add_share_link(db: &Path, server: &str) -> Result<String> {
    let out = run(std::process::Command::new(bin("causeway-collector")?)
        .arg("--db")
        .arg(db)
        .args(["share", "add", server]))?;
    let path = out.trim().to_owned();
    if !path.starts_with("/s/cws_") {
        bail!("share add printed {out:?}, not a link");
    }
    Ok(path)
}

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

/// An HTTP GET from inside `host`'s namespace (curl, 5 s at most); the body on a 2xx.
pub fn http_get(host: &Host, url: &str) -> Result<String> {
    run(host
        .command("curl")
        .args(["-sS", "--fail", "--max-time", "5", "--noproxy", "*", url]))
}

/// A GET of the collector's JSON API, parsed.
pub fn api_get(collector: &Collector, path: &str) -> Result<serde_json::Value> {
    let body = http_get(&collector.host, &format!("{}{path}", collector.url))?;
    serde_json::from_str(&body).with_context(|| format!("parsing {path}: {body}"))
}

/// Every result the collector holds for `server` (newest first, at most 1000).
pub fn results(collector: &Collector, server: &str) -> Result<Vec<serde_json::Value>> {
    let v = api_get(
        collector,
        &format!("/api/v1/servers/{server}/results?limit=1000"),
    )?;
    Ok(v["results"]
        .as_array()
        .context("results is not a list")?
        .clone())
}

/// Waits until the collector holds results of `server` that started after `after_ms` and
/// satisfy `want`, at least `n` of them; returns them oldest first.
pub fn wait_results(
    collector: &Collector,
    server: &str,
    after_ms: i64,
    n: usize,
    patience: Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Result<Vec<serde_json::Value>> {
    wait_for(
        &format!("{n} matching results of {server} after {after_ms}"),
        patience,
        || {
            let mut newer: Vec<serde_json::Value> = results(collector, server)?
                .into_iter()
                .filter(|r| r["started_at_ms"].as_i64().unwrap_or(0) > after_ms && want(r))
                .collect();
            newer.sort_by_key(|r| r["started_at_ms"].as_i64());
            Ok((newer.len() >= n).then_some(newer))
        },
    )
}

/// Runs `probectl` inside the collector's host against it; its stdout on success.
pub fn probectl(collector: &Collector, args: &[&str]) -> Result<String> {
    run(collector
        .host
        .command(bin("probectl")?)
        .arg("--collector")
        .arg(&collector.url)
        .args(args))
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

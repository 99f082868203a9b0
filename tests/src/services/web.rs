//! The canary's side of a lab: nginx as site, backend or proxy, a rogue listener that binds
//! the canary's port beside it, and a server that eats memory until its cgroup kills it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::*;
use crate::lab::{Host, Lab};
use crate::process::{Service, run};
use crate::wait::wait_for;

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
    let server = format!(
        "    server {{\n        listen {listen} reuseport;\n        location / {{ {location} }}\n    }}\n"
    );
    let port = listen.rsplit(':').next().unwrap_or(listen);
    let url = format!("http://{}:{port}/", host.addr);
    start_nginx_servers(lab, host, name, &server, &url, ready_text)
}

/// A TLS site of [`start_nginx_tls`]: a port, its certificate chain (PEM, leaf first, as
/// nginx sends it) and key files.
pub struct TlsSite<'a> {
    pub port: u16,
    pub chain: &'a Path,
    pub key: &'a Path,
    /// More directives for its server block (`ssl_protocols TLSv1.1;`), or none.
    pub directives: &'a str,
}

/// nginx on `host` serving the canary page over TLS on each site's port, each with its own
/// certificate chain; started when the first site answers (its certificate unchecked).
pub fn start_nginx_tls(
    lab: &mut Lab,
    host: &Host,
    name: &str,
    sites: &[TlsSite],
) -> Result<Service> {
    let servers: String = sites
        .iter()
        .map(|s| {
            format!(
                "    server {{\n        listen {}:{} ssl;\n        ssl_certificate {};\n        \
                 ssl_certificate_key {};\n        {}\n        location / {{ default_type \
                 text/plain; return 200 \"{CANARY_TEXT}\\n\"; }}\n    }}\n",
                host.addr,
                s.port,
                s.chain.display(),
                s.key.display(),
                s.directives,
            )
        })
        .collect();
    let first = sites.first().context("no TLS site")?;
    let url = format!("https://{}:{}/", host.addr, first.port);
    start_nginx_servers(lab, host, name, &servers, &url, CANARY_TEXT)
}

/// nginx with the http `servers` blocks, in a cgroup of its own; started when `url` answers
/// with `ready_text` (certificates not checked).
fn start_nginx_servers(
    lab: &mut Lab,
    host: &Host,
    name: &str,
    servers: &str,
    url: &str,
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
{servers}}}
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
    wait_for(&format!("{name} to serve {url}"), START_TIMEOUT, || {
        if !service.is_running() {
            bail!("nginx exited: {}", service.log_text());
        }
        // A proxy is ready when it answers at all (its upstream may not be up yet).
        let ready =
            run(host
                .command("curl")
                .args(["-sSk", "--max-time", "5", "--noproxy", "*", url]))
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

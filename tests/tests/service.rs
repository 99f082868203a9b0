//! The probe as a service end to end: SIGHUP reads the config again between cycles (a broken
//! file is refused and the running config kept; a good one takes effect), and systemd's
//! notification protocol, heard on a datagram socket standing in for systemd's.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use causeway_e2e::services::{self, CANARY_TEXT, Collector, ProbeSetup};
use causeway_e2e::{Lab, Service, now_ms, wait_for};

const SERVER: &str = "web-01";
/// Generous: a slow CI machine must not fail a test that is right.
const PATIENCE: Duration = Duration::from_secs(90);
/// What the probe says when it refuses a reloaded config.
const REFUSED: &str = "config reload refused, keeping the running config: ";

struct Site {
    lab: Lab,
    collector: Collector,
    /// The probe's config file, the one SIGHUP reads again.
    config: PathBuf,
    /// The socket standing in for systemd's, when the probe was given one.
    notify: Option<Notifications>,
}

/// nginx serving the canary on `web`, the collector on its own host, and a probe on `web`
/// checking every second; with `notify`, the probe runs under `NOTIFY_SOCKET` (a socket this
/// test listens on) and `WATCHDOG_USEC=2000000` without `WATCHDOG_PID` (any pid, as
/// `sd_watchdog_enabled(3)` reads it: the probe's pid is not known before it starts).
fn site(test: &str, notify: bool) -> Result<Site> {
    let mut lab = Lab::new(test)?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    let (collector, config, _spool) = services::collector_and_probe_config(
        &lab,
        &coll_host,
        SERVER,
        &format!("http://{}/", web.addr),
        ProbeSetup::default(),
    )?;
    let (probe, notify) = match notify {
        false => (services::start_probe(&lab, &web, &config)?, None),
        true => {
            // Bound before the probe starts, so that READY=1 cannot be missed. A path socket:
            // abstract ones belong to a network namespace, and the probe runs in web's.
            let notify = Notifications::bind(&lab)?;
            let mut cmd = web.command(services::bin("causeway-probe")?);
            cmd.arg("run")
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "info")
                .env("NOTIFY_SOCKET", &notify.path)
                .env("WATCHDOG_USEC", "2000000")
                .env_remove("WATCHDOG_PID");
            let probe = Service::spawn("probe", &mut cmd, &lab.path("probe.log"))?;
            (probe, Some(notify))
        }
    };
    lab.adopt(probe);
    Ok(Site {
        lab,
        collector,
        config,
        notify,
    })
}

/// The datagrams the probe sent to the stand-in for systemd's socket, with when each was
/// read.
struct Notifications {
    sock: UnixDatagram,
    path: PathBuf,
    seen: Vec<(Instant, String)>,
}

impl Notifications {
    fn bind(lab: &Lab) -> Result<Notifications> {
        let mut path = lab.path("notify.sock");
        // sun_path holds 108 bytes with the NUL; a deep target directory would not fit.
        if path.as_os_str().len() > 100 {
            path = std::env::temp_dir().join(format!("cw-notify-{}.sock", std::process::id()));
        }
        let _ = std::fs::remove_file(&path);
        let sock =
            UnixDatagram::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        sock.set_nonblocking(true)?;
        Ok(Notifications {
            sock,
            path,
            seen: Vec::new(),
        })
    }

    /// Reads every datagram waiting.
    fn read(&mut self) -> Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push((Instant::now(), text));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits until a datagram `want` accepts has arrived; returns its index in `seen`.
    fn wait(&mut self, what: &str, want: impl Fn(&str) -> bool) -> Result<usize> {
        wait_for(what, PATIENCE, || {
            self.read()?;
            Ok(self.seen.iter().position(|(_, text)| want(text)))
        })
    }

    fn texts(&self) -> Vec<&str> {
        self.seen.iter().map(|(_, t)| t.as_str()).collect()
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The probe's log line containing `needle`, once it is there.
fn wait_log_line(probe: &Service, what: &str, needle: &str) -> Result<String> {
    wait_for(what, PATIENCE, || {
        let log = probe.log_text();
        Ok(log.lines().find(|l| l.contains(needle)).map(str::to_owned))
    })
}

fn take_probe(lab: &mut Lab) -> Result<Service> {
    lab.take("probe").context("no probe in the lab")
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_broken_config_on_sighup_is_refused_and_checks_go_on() -> Result<()> {
    let mut site = site("reload-broken", false)?;
    let start = now_ms();
    services::wait_results(&site.collector, SERVER, start, 1, PATIENCE, |r| {
        r["ok"] == true
    })?;

    let text = std::fs::read_to_string(&site.config)?;
    let broken = text
        .replace("interval = \"1s\"", "interval = \"soon\"")
        .replace("timeout = \"800ms\"", "timeout = \"fast\"");
    ensure!(
        broken != text,
        "the config has no interval or timeout line to break"
    );
    std::fs::write(&site.config, broken)?;
    let mut probe = take_probe(&mut site.lab)?;
    probe.signal("HUP")?;
    let line = wait_log_line(&probe, "the probe to refuse the config", REFUSED);
    let running = probe.is_running();
    site.lab.adopt(probe);
    let line = line?;
    ensure!(running, "the probe exited after SIGHUP");
    // One line naming the file and every problem.
    let problems = line.split(REFUSED).nth(1).unwrap_or_default();
    ensure!(
        problems.starts_with(&format!("{}: ", site.config.display())),
        "{line}"
    );
    ensure!(
        problems.contains("interval: \"soon\" is not a duration")
            && problems.contains("timeout: \"fast\" is not a duration"),
        "{line}"
    );

    // New checks keep arriving, with the running config: the canary still answers as expected.
    let refused = now_ms();
    services::wait_results(&site.collector, SERVER, refused, 3, PATIENCE, |r| {
        r["ok"] == true
    })?;
    let failed: Vec<_> = services::results(&site.collector, SERVER)?
        .into_iter()
        .filter(|r| r["started_at_ms"].as_i64().unwrap_or(0) > refused && r["ok"] == false)
        .collect();
    ensure!(failed.is_empty(), "failures after the refusal: {failed:#?}");
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_good_config_on_sighup_takes_effect_at_the_next_cycle() -> Result<()> {
    let mut site = site("reload-good", false)?;
    let start = now_ms();
    services::wait_results(&site.collector, SERVER, start, 1, PATIENCE, |r| {
        r["ok"] == true
    })?;

    let text = std::fs::read_to_string(&site.config)?;
    let expect = format!("expect_text = \"{CANARY_TEXT}\"");
    let changed = text.replace(&expect, "expect_text = \"text the page lacks\"");
    ensure!(changed != text, "no {expect} line in the config");
    std::fs::write(&site.config, changed)?;
    let probe = take_probe(&mut site.lab)?;
    probe.signal("HUP")?;
    let line = wait_log_line(&probe, "the probe to reload", "config reloaded: ");
    let refused = probe.log_text().contains(REFUSED);
    site.lab.adopt(probe);
    let line = line?;
    ensure!(!refused, "the good config was refused");
    ensure!(
        line.ends_with("config reloaded: 1 canary, 1 resolver, interval 1s"),
        "{line}"
    );

    // Every check that started after the reload uses the new expected text, and fails on it.
    let reloaded = now_ms();
    let failed = services::wait_results(&site.collector, SERVER, reloaded, 2, PATIENCE, |r| {
        r["ok"] == false
    })?;
    for r in &failed {
        ensure!(r["cause"] == "content_mismatch", "{r:#}");
        ensure!(r["failure"]["kind"] == "body_mismatch", "{r:#}");
    }
    let ok: Vec<_> = services::results(&site.collector, SERVER)?
        .into_iter()
        .filter(|r| r["started_at_ms"].as_i64().unwrap_or(0) > reloaded && r["ok"] == true)
        .collect();
    ensure!(
        ok.is_empty(),
        "checks with the old text after the reload: {ok:#?}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn systemd_hears_ready_status_watchdog_and_stopping() -> Result<()> {
    let mut site = site("notify", true)?;
    let mut notes = site.notify.take().context("no notification socket")?;

    let ready = notes.wait("READY=1", |t| t == "READY=1\n")?;
    ensure!(
        ready == 0,
        "READY=1 is the first notification: {:?}",
        notes.texts()
    );
    let ready_at = notes.seen[ready].0;

    // WATCHDOG_USEC=2000000: a ping every second, the first at once.
    let pings_in = |notes: &Notifications, window: Duration| {
        let pings = notes
            .seen
            .iter()
            .filter(|(at, t)| t == "WATCHDOG=1\n" && at.duration_since(ready_at) <= window);
        pings.count()
    };
    wait_for("two watchdog pings", Duration::from_secs(3), || {
        notes.read()?;
        Ok((pings_in(&notes, Duration::from_secs(3)) >= 2).then_some(()))
    })
    .with_context(|| format!("notifications: {:?}", notes.texts()))?;

    let status = notes.wait("a status with the cycle's summary", |t| {
        t.starts_with("STATUS=")
    })?;
    let status = notes.seen[status].1.clone();
    ensure!(
        status.starts_with(&format!("STATUS={SERVER}: cycle: 1/1 checks ok")),
        "{status:?}"
    );

    let mut probe = take_probe(&mut site.lab)?;
    let exit = probe.stop();
    site.lab.adopt(probe);
    match exit {
        Some(status) if status.success() => {}
        Some(status) => bail!("the probe exited with {status} on SIGTERM"),
        None => bail!("the probe did not exit within 5 s of SIGTERM"),
    }
    notes.read()?;
    let last = notes.seen.last().map(|(_, t)| t.as_str());
    ensure!(
        last == Some("STOPPING=1\n"),
        "STOPPING=1 is the last notification: {:?}",
        notes.texts()
    );
    Ok(())
}

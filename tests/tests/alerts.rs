//! Alerts end to end: real nginx, probe and collector (with a config file) in the lab, and
//! real receivers: a webhook receiver that checks the HMAC, Prometheus' Alertmanager, and an
//! SMTP server (aiosmtpd) with STARTTLS, implicit TLS and a login under a private CA.
//! nginx stopped -> DOWN on all of them, and a wrong SMTP password shown failed; the receiver down and the collector killed with SIGKILL
//! before the delivery -> the message once after the restart; nginx started -> RECOVERED with
//! the outage's length; a maintenance window -> nothing until it is removed; the probe killed
//! -> STALE.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::receivers::{
    SMTP_IMPLICIT_PORT, SMTP_STARTTLS_PORT, SmtpReceiver, WebhookReceiver, alertmanager_alerts,
    start_alertmanager,
};
use causeway_e2e::services::{self, ProbeSetup};
use causeway_e2e::{Lab, now_ms, wait_for};
use serde_json::Value;

const SERVER: &str = "web-01";
const SECRET: &str = "lab-secret-0123456789";
const SMTP_PASSWORD: &str = "lab-smtp-password";
const PATIENCE: Duration = Duration::from_secs(90);

/// The webhook messages of `event` received so far.
fn received(receiver: &WebhookReceiver, event: &str) -> Result<Vec<Value>> {
    Ok(receiver
        .received()?
        .into_iter()
        .filter(|r| r["path"] == "/hook" && r["body"]["event"] == event)
        .collect())
}

fn wait_event(receiver: &WebhookReceiver, event: &str, n: usize) -> Result<Vec<Value>> {
    wait_for(&format!("{n} {event} message(s)"), PATIENCE, || {
        let got = received(receiver, event)?;
        Ok((got.len() >= n).then_some(got))
    })
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn down_recovered_and_stale_reach_a_webhook_and_alertmanager_once_each() -> Result<()> {
    let mut lab = Lab::new("alerts")?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let am_host = lab.add_host("am", 4)?;
    let hook_host = lab.add_host("hook", 5)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    let receiver = WebhookReceiver::start(&lab, &hook_host, SECRET)?;
    let smtp = SmtpReceiver::start(&lab, &hook_host, "causeway", SMTP_PASSWORD)?;
    let password_file = lab.path("smtp-password");
    std::fs::write(&password_file, format!("{SMTP_PASSWORD}\n"))?;
    let (alertmanager, am_url) = start_alertmanager(&lab, &am_host)?;
    lab.adopt(alertmanager);

    let config = lab.path("collector.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"http://{coll}:8750\"\nmerge_gap = \"2s\"\n\n\
             [[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{hook}/hook\"\n\
             secret = \"{SECRET}\"\n\n\
             [[channel]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"{hook}/slack\"\n\n\
             [[channel]]\nname = \"phones\"\nkind = \"ntfy\"\nurl = \"{hook}/ntfy\"\n\n\
             [[channel]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"{am_url}\"\n\n\
             [[channel]]\nname = \"mail\"\nkind = \"email\"\n\
             url = \"{smtp}:{SMTP_STARTTLS_PORT}\"\nfrom = \"Causeway <causeway@lab.example>\"\n\
             to = [\"oncall@lab.example\"]\nusername = \"causeway\"\n\
             password_file = \"{password_file}\"\nca_file = \"{ca}\"\n\n\
             [[channel]]\nname = \"mail-tls\"\nkind = \"email\"\ntls = \"implicit\"\n\
             url = \"{smtp}:{SMTP_IMPLICIT_PORT}\"\nfrom = \"causeway@lab.example\"\n\
             to = [\"oncall@lab.example\", \"Web team <web@lab.example>\"]\n\
             username = \"causeway\"\npassword = \"{SMTP_PASSWORD}\"\nca_file = \"{ca}\"\n\n\
             [[channel]]\nname = \"mail-bad\"\nkind = \"email\"\ntls = \"implicit\"\n\
             url = \"{smtp}:{SMTP_IMPLICIT_PORT}\"\nfrom = \"causeway@lab.example\"\n\
             to = [\"oncall@lab.example\"]\nusername = \"causeway\"\n\
             password = \"not-the-password\"\nca_file = \"{ca}\"\n\n\
             [[rule]]\nname = \"web\"\nservers = [\"web-*\"]\n\
             channels = [\"ops\", \"chat\", \"phones\", \"am\", \"mail\", \"mail-tls\", \"mail-bad\"]\n",
            coll = coll_host.addr,
            hook = receiver.url,
            smtp = smtp.url,
            password_file = password_file.display(),
            ca = smtp.ca.display(),
        ),
    )?;
    let db = lab.path("causeway.db");
    let args = ["--config".into(), config.clone().into_os_string()];
    let canary_url = format!("http://{}/", web.addr);
    let (mut collector, probe_config, _spool) = services::collector_and_probe_config_with(
        &lab,
        &coll_host,
        SERVER,
        &canary_url,
        &args,
        ProbeSetup::default(),
    )?;
    let probe = services::start_probe(&lab, &web, &probe_config)?;
    lab.adopt(probe);
    services::wait_results(&collector, SERVER, 0, 1, PATIENCE, |r| r["ok"] == true)?;

    // nginx stops: one DOWN, signed, on every channel, within the `after` checks.
    let mut nginx = lab.take("nginx").context("no nginx")?;
    nginx.stop().context("nginx did not exit")?;
    let stopped = now_ms();
    let down = wait_event(&receiver, "down", 1)?.remove(0);
    let latency_ms = now_ms() - stopped;
    ensure!(down["signature_ok"] == true, "bad signature: {down:#}");
    let body = &down["body"];
    ensure!(
        body["title"] == "[DOWN] web-01: connection_refused",
        "{body:#}"
    );
    ensure!(body["failed_checks"].as_i64() >= Some(2), "{body:#}");
    let text = body["text"].as_str().unwrap_or_default();
    println!("DOWN after {latency_ms} ms:\n{}\n{text}\n", body["title"]);
    ensure!(
        text.contains("Why: ") && text.contains("Evidence: http://"),
        "{text}"
    );
    ensure!(
        down["headers"]["idempotency-key"] == body["key"],
        "idempotency key: {down:#}"
    );
    let chat = wait_for("the slack message", PATIENCE, || {
        let got = receiver.received()?;
        Ok(got.into_iter().find(|r| r["path"] == "/slack"))
    })?;
    let chat_text = chat["body"]["text"].as_str().unwrap_or_default();
    ensure!(
        chat_text.starts_with("*[DOWN] web-01: connection_refused*"),
        "{chat:#}"
    );
    let phone = wait_for("the ntfy message", PATIENCE, || {
        let got = receiver.received()?;
        Ok(got.into_iter().find(|r| r["path"] == "/ntfy"))
    })?;
    ensure!(phone["headers"]["priority"] == "5", "{phone:#}");
    ensure!(
        phone["headers"]["title"] == "[DOWN] web-01: connection_refused",
        "{phone:#}"
    );
    let firing = wait_for("the alert in Alertmanager", PATIENCE, || {
        let alerts = alertmanager_alerts(&am_host, &am_url, false)?;
        Ok(alerts.into_iter().find(|a| a["labels"]["server"] == SERVER))
    })?;
    ensure!(
        firing["labels"]["cause"] == "connection_refused",
        "{firing:#}"
    );
    ensure!(
        firing["labels"]["alertname"] == "CausewayDown",
        "{firing:#}"
    );
    ensure!(
        firing["annotations"]["why"]
            .as_str()
            .is_some_and(|w| !w.is_empty()),
        "{firing:#}"
    );

    // The emails: one over STARTTLS, one over implicit TLS, both logged in; a wrong password
    // is a failed delivery with the server's answer.
    let mails = wait_for("the DOWN emails", PATIENCE, || {
        let got = smtp.received()?;
        Ok((got.len() >= 2).then_some(got))
    })?;
    let modes: Vec<&str> = mails.iter().filter_map(|m| m["mode"].as_str()).collect();
    ensure!(
        modes.contains(&"starttls") && modes.contains(&"implicit"),
        "{mails:#?}"
    );
    for mail in &mails {
        let data = mail["data"].as_str().unwrap_or_default();
        ensure!(mail["login"] == "causeway", "{mail:#}");
        ensure!(
            data.contains("Subject: [DOWN] web-01: connection_refused\r\n")
                && data.contains("Why: ")
                && data.contains("Message-ID: <causeway.incident.")
                && data.contains("Content-Type: text/plain"),
            "{data}"
        );
    }
    let implicit = mails.iter().find(|m| m["mode"] == "implicit");
    ensure!(
        implicit.is_some_and(
            |m| m["to"] == serde_json::json!(["oncall@lab.example", "web@lab.example"])
        ),
        "{mails:#?}"
    );
    println!(
        "the DOWN email:\n{}",
        mails[0]["data"].as_str().unwrap_or_default()
    );
    wait_for("the wrong SMTP password shown", PATIENCE, || {
        let shown = services::probectl(&collector, &["alerts"])?;
        Ok(shown
            .lines()
            .find(|l| l.contains(" mail-bad ") && l.contains("535"))
            .map(str::to_owned))
    })?;

    // The receiver goes down; nginx comes back; the collector is killed before it could
    // deliver the RECOVERED message, and delivers it once after its restart.
    receiver.set_failing(true)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    wait_for("a failed delivery of RECOVERED", PATIENCE, || {
        let shown = services::probectl(&collector, &["alerts"])?;
        Ok(shown
            .lines()
            .find(|l| l.contains("[RECOVERED] web-01") && l.contains(" ops ") && l.contains("503"))
            .map(str::to_owned))
    })?;
    collector.service.signal("KILL")?;
    collector.service.stop();
    receiver.set_failing(false)?;
    collector.restart(&lab)?;
    let recovered = wait_event(&receiver, "recovered", 1)?.remove(0);
    let body = &recovered["body"];
    ensure!(
        body["title"] == "[RECOVERED] web-01: connection_refused",
        "{body:#}"
    );
    let text = body["text"].as_str().unwrap_or_default();
    println!("RECOVERED:\n{}\n{text}\n", body["title"]);
    ensure!(text.contains("down (since"), "{text}");
    wait_for("the alert to end in Alertmanager", PATIENCE, || {
        let alerts = alertmanager_alerts(&am_host, &am_url, false)?;
        Ok((!alerts.iter().any(|a| a["labels"]["server"] == SERVER)).then_some(()))
    })?;

    // A maintenance window: nginx stopped again raises nothing until the window is removed.
    let ops = services::add_read_token(&db, "ops", true)?;
    let made = services::probectl(
        &collector,
        &[
            "--token", &ops, "silence", "add", "web-*", "--for", "1h", "--reason", "upgrade",
        ],
    )?;
    ensure!(made.starts_with("silence 1: web-* until "), "{made}");
    let mut nginx = lab.take("nginx").context("no nginx")?;
    nginx.stop().context("nginx did not exit")?;
    let stopped = now_ms();
    services::wait_results(&collector, SERVER, stopped, 3, PATIENCE, |r| {
        r["ok"] == false
    })?;
    ensure!(
        received(&receiver, "down")?.len() == 1,
        "a silenced server paged"
    );
    services::probectl(&collector, &["--token", &ops, "silence", "remove", "1"])?;
    wait_event(&receiver, "down", 2)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    wait_event(&receiver, "recovered", 2)?;

    // The probe dies: STALE after 3 intervals without a report.
    let mut probe = lab.take("probe").context("no probe")?;
    probe.signal("KILL")?;
    probe.stop();
    let stale = wait_event(&receiver, "stale", 1)?.remove(0);
    let text = stale["body"]["text"].as_str().unwrap_or_default();
    println!("STALE:\n{}\n{text}\n", stale["body"]["title"]);
    ensure!(text.contains("has sent no report since"), "{text}");

    // Exactly once each at the webhook, whatever the restart.
    let events: Vec<String> = received(&receiver, "down")?
        .iter()
        .chain(&received(&receiver, "recovered")?)
        .chain(&received(&receiver, "stale")?)
        .map(|r| r["body"]["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    ensure!(
        events == ["down", "down", "recovered", "recovered", "stale"],
        "{events:?}"
    );
    // Exactly once each by email too, on both channels.
    let tags = |mode: &str| -> Result<Vec<String>> {
        Ok(smtp
            .received()?
            .iter()
            .filter(|m| m["mode"] == mode)
            .filter_map(|m| {
                let data = m["data"].as_str()?;
                let subject = data.lines().find_map(|l| l.strip_prefix("Subject: ["))?;
                Some(subject.split(']').next()?.to_owned())
            })
            .collect())
    };
    for mode in ["starttls", "implicit"] {
        let got = wait_for(&format!("the STALE email ({mode})"), PATIENCE, || {
            let got = tags(mode)?;
            Ok(got.contains(&"STALE".to_owned()).then_some(got))
        })?;
        ensure!(
            got == ["DOWN", "RECOVERED", "DOWN", "RECOVERED", "STALE"],
            "{mode}: {got:?}"
        );
    }
    let shown = services::probectl(&collector, &["alerts"])?;
    println!("probectl alerts:\n{shown}");
    let delivered = shown.lines().filter(|l| l.contains(" delivered ")).count();
    ensure!(delivered >= 8, "{shown}");
    Ok(())
}

/// Three servers losing their shared resolver page once: with `group_wait`, the first DOWN
/// waits 5 s for the others and all three go out as one message.
#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn three_servers_losing_their_resolver_are_one_message() -> Result<()> {
    let mut lab = Lab::new("alerts-group")?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let hook_host = lab.add_host("hook", 5)?;
    let dns = lab.add_host("dns", 11)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    let canary = format!("canary.lab. 30 IN A {}", web.addr);
    let unbound = services::start_unbound(&lab, &dns, "unbound", &[&canary])?;
    lab.adopt(unbound);
    let receiver = WebhookReceiver::start(&lab, &hook_host, SECRET)?;

    let config = lab.path("collector.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"http://{coll}:8750\"\ngroup_wait = \"5s\"\n\n\
             [[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{hook}/hook\"\n\
             secret = \"{SECRET}\"\n\n\
             [[rule]]\nname = \"all\"\nchannels = [\"ops\"]\nstale_after = 0\n",
            coll = coll_host.addr,
            hook = receiver.url,
        ),
    )?;
    let db = lab.path("causeway.db");
    let servers = ["web-01", "web-02", "web-03"];
    let tokens: Vec<String> = servers
        .iter()
        .map(|s| services::add_token(&db, s))
        .collect::<Result<_>>()?;
    let args = ["--config".into(), config.into_os_string()];
    let collector = services::start_collector_with(&lab, &coll_host, &db, &args)?;
    let resolvers = [dns.addr.to_string()];
    for (i, (server, token)) in servers.iter().zip(&tokens).enumerate() {
        let host = lab.add_host(&format!("p{i}"), 21 + i as u8)?;
        let (probe_config, _spool) = services::write_probe_config(
            &lab,
            &ProbeSetup {
                server,
                collector_url: &collector.url,
                token,
                canary_url: "http://canary.lab/",
                resolvers: &resolvers,
                interval: "1s",
                timeout: "800ms",
                top_extra: "dns_timeout = \"600ms\"",
                files: server,
                ..Default::default()
            },
        )?;
        let probe = services::start_probe(&lab, &host, &probe_config)?;
        lab.adopt(probe);
    }
    for server in servers {
        services::wait_results(&collector, server, 0, 1, PATIENCE, |r| r["ok"] == true)?;
    }

    // The resolver stops answering (ICMP still passes): every server fails for DNS.
    for proto in ["udp", "tcp"] {
        dns.run(&[
            "iptables", "-A", "INPUT", "-p", proto, "--dport", "53", "-j", "DROP",
        ])?;
    }
    let down = wait_event(&receiver, "down", 1)?;
    // All three DOWN notifications delivered: by then every message has arrived.
    wait_for("three DOWN notifications delivered", PATIENCE, || {
        let shown = services::probectl(&collector, &["alerts"])?;
        let delivered = shown
            .lines()
            .filter(|l| l.contains("[DOWN]") && l.contains(" delivered "))
            .count();
        Ok((delivered == 3).then_some(()))
    })?;
    let down_posts = received(&receiver, "down")?;
    ensure!(
        down_posts.len() == 1 && down == down_posts,
        "one message for three servers: {down_posts:#?}"
    );
    let body = &down_posts[0]["body"];
    ensure!(down_posts[0]["signature_ok"] == true, "{body:#}");
    let title = body["title"].as_str().unwrap_or_default();
    println!("{title}\n{}", body["text"].as_str().unwrap_or_default());
    ensure!(
        title.starts_with("[DOWN] 3 servers: dns_") && body["grouped"] == true,
        "{body:#}"
    );
    ensure!(body["servers"] == serde_json::json!(servers), "{body:#}");
    Ok(())
}

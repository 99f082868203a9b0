//! The web page in real headless Chromium, over a collector filled by a real probe run with an
//! incident: the canary's server, named like markup, is OOM-killed in its memory cgroup. The
//! pages must show the fleet, the server, the incident with its evidence, and every name that
//! came from the probe as text, never as markup. Screenshots go to `target/e2e/screenshots/`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::browser::Browser;
use causeway_e2e::services::{self, ProbeSetup};
use causeway_e2e::{Lab, artifacts_dir, now_ms, wait_for};

const SERVER: &str = "web-01";
const PATIENCE: Duration = Duration::from_secs(90);
const PORT: u16 = 8080;
/// What an attacker controlling a process on the server would name it.
const MARKUP_CMDLINE: &str = "<img src=x onerror=alert(1)>";
/// The process name (`comm`, 15 bytes at most): the kernel writes it into its OOM lines.
const MARKUP_COMM: &str = "<img src=y>";

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn the_pages_render_the_fleet_the_server_and_its_incident_in_chromium() -> Result<()> {
    let mut lab = Lab::new("web")?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let cgroup = lab.memory_cgroup("canary", 64 << 20)?;
    let server = services::start_hungry_server_as(
        &lab,
        &web,
        &cgroup,
        PORT,
        Some(MARKUP_CMDLINE),
        Some(MARKUP_COMM),
    )?;
    lab.adopt(server);
    let (collector, config, _spool) = services::collector_and_probe_config(
        &lab,
        &coll_host,
        SERVER,
        &format!("http://{}:{PORT}/", web.addr),
        ProbeSetup {
            host_table: services::OOM_ONLY_HOST,
            ..Default::default()
        },
    )?;
    // A second server that never reported: the overview lists it as unknown.
    services::add_token(&collector.db, "db-01")?;
    let probe = services::start_probe(&lab, &web, &config)?;
    lab.adopt(probe);
    let start = now_ms();
    services::wait_results(&collector, SERVER, start, 3, PATIENCE, |r| r["ok"] == true)?;

    let fault = now_ms();
    let mut server = lab.take("hungry").context("the hungry server")?;
    server.signal("USR1")?;
    wait_for("the kernel to kill the server", PATIENCE, || {
        Ok((!server.is_running()).then_some(()))
    })?;
    let failed =
        services::wait_results(&collector, SERVER, fault, 1, PATIENCE, |r| r["ok"] == false)?;
    ensure!(failed[0]["cause"] == "oom_kill", "{:#}", failed[0]);

    let shots = artifacts_dir().join("screenshots");
    let browser = Browser::start(&lab, &coll_host)?;

    // The fleet overview.
    browser.open(&format!("{}/", collector.url))?;
    let text = browser.text()?;
    for want in ["Fleet availability", SERVER, "db-01", "oom_kill", "unknown"] {
        ensure!(text.contains(want), "the overview lacks {want:?}:\n{text}");
    }
    let shot = browser.screenshot(&shots.join("overview.png"))?;
    println!("screenshot: {}", shot.display());
    // The filter box hides the rows that do not match, without a round trip.
    let visible = browser.execute(
        "var q=document.getElementById('q');q.value='db';\
         q.dispatchEvent(new Event('input'));\
         return Array.from(document.querySelectorAll('#fleet tbody tr'))\
           .filter(function(r){return !r.hidden;}).map(function(r){return r.dataset.name;});",
    )?;
    ensure!(
        visible == serde_json::json!(["db-01"]),
        "filtered: {visible}"
    );
    // A header click sorts by that column: by name descending puts web-01 first.
    let order = browser.execute(
        "var th=document.querySelector('th[data-key=name]');th.click();th.click();\
         return Array.from(document.querySelectorAll('#fleet tbody tr'))\
           .map(function(r){return r.dataset.name;});",
    )?;
    ensure!(
        order == serde_json::json!([SERVER, "db-01"]),
        "sorted: {order}"
    );

    // The server's page, with the incident and its evidence.
    browser.open(&format!("{}/servers/{SERVER}", collector.url))?;
    let text = browser.text()?;
    let wants = [
        "Availability per day, last 90 days",
        "Recent checks",
        "Latency by phase",
        "Incidents, last 30 days (1)",
        "oom_kill",
        "the kernel's OOM killer killed",
        "Host conditions",
        // The markup names, as text.
        MARKUP_CMDLINE,
        &format!("{MARKUP_COMM} invoked oom-killer"),
    ];
    for want in wants {
        ensure!(
            text.contains(want),
            "the server page lacks {want:?}:\n{text}"
        );
    }
    let injected = browser.execute(
        "return {img: document.querySelectorAll('img').length,\
                 scripts: document.querySelectorAll('script').length,\
                 svgs: document.querySelectorAll('svg').length,\
                 checks: document.querySelectorAll('svg.heartbeat rect').length};",
    )?;
    ensure!(
        injected["img"] == 0,
        "markup from the probe became an element: {injected}"
    );
    ensure!(
        injected["scripts"] == 1,
        "only the page's own script: {injected}"
    );
    ensure!(injected["checks"].as_u64().unwrap_or(0) >= 4, "{injected}");
    let shot = browser.screenshot(&shots.join("server.png"))?;
    println!("screenshot: {}", shot.display());

    // A check's own page, reached from the heartbeat bar.
    let href = browser.execute(
        "var a=document.querySelectorAll('svg.heartbeat a');return a[a.length-1].getAttribute('href');",
    )?;
    let href = href
        .as_str()
        .context("no link on the heartbeat bar")?
        .to_owned();
    browser.open(&format!("{}{href}", collector.url))?;
    let text = browser.text()?;
    ensure!(text.contains("Check of site at"), "{text}");
    ensure!(text.contains(MARKUP_CMDLINE), "{text}");
    let shot = browser.screenshot(&shots.join("check.png"))?;
    println!("screenshot: {}", shot.display());

    // The customer's view through a share link: this server only, no way to the fleet.
    let link = services::add_share_link(&collector.db, SERVER)?;
    browser.open(&format!("{}{link}", collector.url))?;
    let text = browser.text()?;
    ensure!(text.contains(SERVER) && text.contains("oom_kill"), "{text}");
    let links = browser.execute(
        "return Array.from(document.querySelectorAll('a[href]'))\
           .map(function(a){return a.getAttribute('href');});",
    )?;
    ensure!(
        links == serde_json::json!([]),
        "the customer page links to {links}"
    );
    let shot = browser.screenshot(&shots.join("customer.png"))?;
    println!("screenshot: {}", shot.display());
    browser.open(&format!("{}{link}/badge.svg", collector.url))?;
    let badge = browser.execute("return document.documentElement.textContent;")?;
    ensure!(
        badge
            .as_str()
            .is_some_and(|b| b.contains("uptime 30d") && b.contains("down")),
        "{badge}"
    );
    let shot = browser.screenshot(&shots.join("badge.png"))?;
    println!("screenshot: {}", shot.display());
    Ok(())
}

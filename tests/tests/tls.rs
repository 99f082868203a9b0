//! TLS end to end: real nginx serving certificates made here (expired, not yet valid, for
//! another name, self-signed, a leaf without its intermediate, a private CA trusted through
//! `ca_file` and ten days from expiry, TLS 1.1 only), and a router filtering on the name in the ClientHello
//! against the server resetting it itself. Each gives its cause with its evidence.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::evidence::inbound_reset;
use causeway_e2e::services::{self, Collector, ProbeSetup, TlsSite};
use causeway_e2e::{Host, Lab, now_ms};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;
use time::OffsetDateTime;

const SERVER: &str = "web-01";
const PATIENCE: Duration = Duration::from_secs(90);
const DAYS: i64 = 86_400_000;

/// A certificate authority of the lab: its PEM and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str, parent: Option<&Ca>) -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = match parent {
        None => params.self_signed(&key)?,
        Some(p) => params.signed_by(&key, &p.issuer)?,
    };
    Ok(Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// A server certificate for `name`, valid from `from` to `to` days from now, signed by
/// `issuer` or self-signed: its PEM and its key's PEM.
fn leaf(name: &str, from: i64, to: i64, issuer: Option<&Ca>) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    let now = OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(to);
    let cert = match issuer {
        None => params.self_signed(&key)?,
        Some(ca) => params.signed_by(&key, &ca.issuer)?,
    };
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a site's chain (PEMs in order) and key into the lab; their paths.
fn site_files(lab: &Lab, name: &str, chain: &[&str], key: &str) -> Result<(PathBuf, PathBuf)> {
    let (c, k) = (
        lab.path(&format!("{name}.chain.pem")),
        lab.path(&format!("{name}.key.pem")),
    );
    std::fs::write(&c, chain.concat())?;
    std::fs::write(&k, key)?;
    Ok((c, k))
}

/// nginx on `web`:443 serving a certificate for shop.test, issued yesterday for 60 days by a
/// lab root of its own; the root's PEM file.
fn one_site(lab: &mut Lab, web: &Host) -> Result<PathBuf> {
    let root = ca("Lab Root CA", None)?;
    let root_file = lab.path("root.pem");
    std::fs::write(&root_file, &root.pem)?;
    let (cert, key) = leaf("shop.test", -1, 60, Some(&root))?;
    let (chain, key) = site_files(lab, "site", &[&cert], &key)?;
    let sites = [TlsSite {
        port: 443,
        chain: &chain,
        key: &key,
        directives: "",
    }];
    let nginx = services::start_nginx_tls(lab, web, "nginx", &sites)?;
    lab.adopt(nginx);
    Ok(root_file)
}

/// A canary table for the probe's config: `https://web:port/` asked for `name`.
fn canary(name: &str, web: &Host, port: u16, sni: &str, ca_file: Option<&PathBuf>) -> String {
    let ca = ca_file.map_or(String::new(), |p| {
        format!("ca_file = {:?}\n", p.display().to_string())
    });
    format!(
        "\n[[canary]]\nname = \"{name}\"\nurl = \"https://{}:{port}/\"\ntls_server_name = \"{sni}\"\n{ca}",
        web.addr
    )
}

/// The collector on `coll`, and a probe on `client` checking the canary `site` at
/// `site_url` (asked for shop.test, `root` its only trusted CA) and the `canaries` tables;
/// returns once `site` was ok `n_ok` times.
fn probe_canaries(
    lab: &mut Lab,
    hosts: (&Host, &Host),
    site_url: &str,
    root: &Path,
    canaries: &[String],
    n_ok: usize,
) -> Result<(Collector, Vec<Value>)> {
    let collector = start_probe(lab, hosts, site_url, root, canaries, None)?;
    let ok = services::wait_results(&collector, SERVER, 0, n_ok, PATIENCE, |r| {
        r["canary"] == "site" && r["ok"] == true
    })?;
    Ok((collector, ok))
}

/// The collector and the probe of [`probe_canaries`], the probe's clock `clock` off the real
/// one (libfaketime's offset, `-2d`) when given.
fn start_probe(
    lab: &mut Lab,
    (coll, client): (&Host, &Host),
    site_url: &str,
    root: &Path,
    canaries: &[String],
    clock: Option<&str>,
) -> Result<Collector> {
    let extra = format!(
        "tls_server_name = \"shop.test\"\nca_file = {:?}\n{}",
        root.display().to_string(),
        canaries.concat()
    );
    let (collector, config, _spool) = services::collector_and_probe_config(
        lab,
        coll,
        SERVER,
        site_url,
        ProbeSetup {
            canary_extra: &extra,
            ..Default::default()
        },
    )?;
    let probe = match clock {
        None => services::start_probe(lab, client, &config)?,
        Some(offset) => services::start_probe_with_clock(lab, client, &config, offset)?,
    };
    lab.adopt(probe);
    Ok(collector)
}

/// A failed check of each canary in `want` after `after_ms` (the newest), each with its
/// cause.
fn failures_of(collector: &Collector, after_ms: i64, want: &[(&str, &str)]) -> Result<Vec<Value>> {
    let failed = causeway_e2e::wait_for("a failed check of every canary", PATIENCE, || {
        let all = services::results(collector, SERVER)?;
        let found: Vec<Value> = want
            .iter()
            .filter_map(|(canary, _)| {
                all.iter()
                    .find(|r| {
                        r["canary"] == *canary
                            && r["ok"] == false
                            && r["started_at_ms"].as_i64().unwrap_or(0) > after_ms
                    })
                    .cloned()
            })
            .collect();
        Ok((found.len() == want.len()).then_some(found))
    })?;
    for (r, (canary, cause)) in failed.iter().zip(want) {
        ensure!(r["cause"] == *cause, "{canary}: want {cause}, got {r:#}");
    }
    Ok(failed)
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn each_certificate_fault_gives_its_cause_and_an_expiry_warns_while_ok() -> Result<()> {
    let mut lab = Lab::new("tls-certs")?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let client = lab.add_host("client", 9)?;

    let root = ca("Lab Root CA", None)?;
    let inter = ca("Lab Intermediate CA", Some(&root))?;
    let root_file = lab.path("root.pem");
    std::fs::write(&root_file, &root.pem)?;
    // Ten days from expiry: the warning (tls_warn_days 14) while the checks stay ok.
    let (good, good_key) = leaf("shop.test", -1, 10, Some(&inter))?;
    let (expired, expired_key) = leaf("shop.test", -30, -1, Some(&inter))?;
    let (early, early_key) = leaf("shop.test", 2, 30, Some(&inter))?;
    let (other, other_key) = leaf("other.test", -1, 30, Some(&inter))?;
    let (own, own_key) = leaf("shop.test", -1, 30, None)?;
    let files = [
        ("good", 8446, vec![good.as_str(), &inter.pem], &good_key),
        (
            "expired",
            8441,
            vec![expired.as_str(), &inter.pem],
            &expired_key,
        ),
        ("early", 8442, vec![early.as_str(), &inter.pem], &early_key),
        ("other", 8443, vec![other.as_str(), &inter.pem], &other_key),
        ("own", 8444, vec![own.as_str()], &own_key),
        // The good leaf without the intermediate that issued it.
        ("incomplete", 8445, vec![good.as_str()], &good_key),
        // The good chain, over TLS 1.0 and 1.1 only (the probe speaks 1.2 and 1.3).
        ("old", 8447, vec![good.as_str(), &inter.pem], &good_key),
    ];
    let mut paths = Vec::new();
    for (name, port, chain, key) in &files {
        let (c, k) = site_files(&lab, name, chain, key)?;
        paths.push((*port, c, k));
    }
    let sites: Vec<TlsSite> = paths
        .iter()
        .map(|(port, chain, key)| TlsSite {
            port: *port,
            chain,
            key,
            directives: match port {
                8447 => "ssl_protocols TLSv1 TLSv1.1; ssl_ciphers DEFAULT:@SECLEVEL=0;",
                _ => "",
            },
        })
        .collect();
    let nginx = services::start_nginx_tls(&mut lab, &web, "nginx", &sites)?;
    lab.adopt(nginx);

    let root = Some(&root_file);
    let canaries = [
        // First of the failing ones: its cause is the incident's (the ties' rule).
        canary("incomplete", &web, 8445, "shop.test", root),
        canary("expired", &web, 8441, "shop.test", root),
        canary("early", &web, 8442, "shop.test", root),
        canary("wrong-name", &web, 8443, "shop.test", root),
        canary("self-signed", &web, 8444, "shop.test", root),
        canary("old-protocol", &web, 8447, "shop.test", root),
    ];
    // The private CA's canary, ten days from expiry, is ok.
    let site_url = format!("https://{}:8446/", web.addr);
    let hosts = (&coll_host, &client);
    let (collector, ok) = probe_canaries(&mut lab, hosts, &site_url, &root_file, &canaries, 2)?;
    ensure!(ok[0]["timings"]["tls_ms"].is_number(), "{:#}", ok[0]);

    let failed = failures_of(
        &collector,
        0,
        &[
            ("expired", "tls_certificate_expired"),
            ("early", "tls_certificate_not_yet_valid"),
            ("wrong-name", "tls_name_mismatch"),
            ("self-signed", "tls_untrusted_chain"),
            ("incomplete", "tls_incomplete_chain"),
            ("old-protocol", "tls_protocol_mismatch"),
        ],
    )?;
    // The evidence behind each: the chain as served and the library's verdict.
    let chain_len = |r: &Value| r["evidence"]["tls"]["chain"].as_array().map_or(0, Vec::len);
    let tls_failure = |r: &Value| r["evidence"]["tls"]["failure"].as_str().map(str::to_owned);
    let seen: Vec<(usize, Option<String>)> = failed
        .iter()
        .map(|r| (chain_len(r), tls_failure(r)))
        .collect();
    ensure!(
        seen == [
            (2, Some("certificate_expired".into())),
            (2, Some("certificate_not_yet_valid".into())),
            (2, Some("name_mismatch".into())),
            (1, Some("unknown_issuer".into())),
            (1, Some("unknown_issuer".into())),
            // No certificate: the server refused the ClientHello.
            (0, Some("protocol_mismatch".into())),
        ],
        "{seen:?}"
    );
    let why = |i: usize| failed[i]["explanation"].as_str().unwrap_or("").to_owned();
    ensure!(why(0).contains("expired at"), "{}", why(0));
    ensure!(
        why(2).contains("covers other.test, not \"shop.test\""),
        "{}",
        why(2)
    );
    ensure!(
        why(4).contains("is issued by CN=Lab Intermediate CA, which the server did not send"),
        "{}",
        why(4)
    );

    // The expiry, as a condition while the check is ok, and on /metrics.
    let host = causeway_e2e::wait_for("the expiry warning", PATIENCE, || {
        let host = services::api_get(&collector, &format!("/api/v1/servers/{SERVER}/host"))?;
        let warning = host["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["cause"] == "tls_expiry_warning"))
            .cloned();
        Ok(warning)
    })?;
    let explanation = host["explanation"].as_str().unwrap_or("");
    ensure!(
        explanation.starts_with("site: CN=shop.test expires ")
            && explanation.contains("(tls_warn_days 14)"),
        "{host:#}"
    );
    let metrics = services::http_get(&collector.host, &format!("{}/metrics", collector.url))?;
    let expiry = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "causeway_tls_earliest_expiry_timestamp_seconds{server=\"web-01\",canary=\"site\"}",
            )
        })
        .context("no expiry metric for site")?;
    let at: f64 = expiry.rsplit(' ').next().unwrap_or("").parse()?;
    let left_days = (at * 1000.0 - now_ms() as f64) / DAYS as f64;
    ensure!(
        (9.0..10.1).contains(&left_days),
        "{expiry}: {left_days} days"
    );

    let text = services::probectl(&collector, &["why", SERVER])?;
    println!("probectl why {SERVER}:\n{text}");
    ensure!(text.contains("tls_incomplete_chain"), "{text}");
    ensure!(text.contains("tls_expiry_warning"), "{text}");
    drop(lab);
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn an_sni_filter_on_the_path_is_told_from_the_server_resetting() -> Result<()> {
    let mut lab = Lab::new("tls-sni")?;
    let coll_host = lab.add_host("coll", 3)?;
    let client = lab.add_host("client", 9)?;
    let router = lab.add_router("router", 254)?;
    let web = lab.add_far_host("web", 2)?;
    lab.route_far_via(&client, &router)?;

    let root_file = one_site(&mut lab, &web)?;
    // A firewall on the path resetting handshakes that name blocked.test, and the server's own
    // firewall resetting those that name refused.test: the same rule, one hop apart.
    let reject = |name: &str, chain: &str| -> Vec<String> {
        [
            "iptables",
            "-A",
            chain,
            "-p",
            "tcp",
            "--dport",
            "443",
            "-m",
            "string",
            "--string",
            name,
            "--algo",
            "bm",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let args = reject("blocked.test", "FORWARD");
    router.run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let args = reject("refused.test", "INPUT");
    web.run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;

    let root = Some(&root_file);
    let canaries = [
        canary("filtered", &web, 443, "blocked.test", root),
        canary("refused", &web, 443, "refused.test", root),
    ];
    let site_url = format!("https://{}/", web.addr);
    let hosts = (&coll_host, &client);
    let (collector, _) = probe_canaries(&mut lab, hosts, &site_url, &root_file, &canaries, 1)?;
    let failed = failures_of(
        &collector,
        0,
        &[
            ("filtered", "tls_sni_filtered"),
            ("refused", "tls_handshake_reset"),
        ],
    )?;
    let ttls: Vec<(Value, Value)> = failed
        .iter()
        .map(|r| {
            let rst = inbound_reset(r).map_or(Value::Null, |p| p["ttl"].clone());
            (rst, r["evidence"]["trace"]["server_ttl"]["ttl"].clone())
        })
        .collect();
    ensure!(
        ttls == [(64.into(), 63.into()), (63.into(), 63.into())],
        "the router's reset is a hop nearer than the server's packets; the server's is not: \
         {ttls:?}"
    );
    let text = services::probectl(&collector, &["why", SERVER])?;
    println!("probectl why {SERVER}:\n{text}");
    ensure!(text.contains("tls_sni_filtered"), "{text}");
    println!("the refused canary's why: {}", failed[1]["explanation"]);
    drop(lab);
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_probe_clock_behind_is_blamed_rather_than_the_certificate() -> Result<()> {
    let mut lab = Lab::new("tls-clock")?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let client = lab.add_host("client", 9)?;
    // Issued yesterday; the probe's clock says two days ago.
    let root_file = one_site(&mut lab, &web)?;
    let site_url = format!("https://{}/", web.addr);
    let hosts = (&coll_host, &client);
    let collector = start_probe(&mut lab, hosts, &site_url, &root_file, &[], Some("-2d"))?;

    let failed = failures_of(&collector, 0, &[("site", "tls_certificate_not_yet_valid")])?;
    let why = failed[0]["explanation"].as_str().unwrap_or("");
    ensure!(
        why.contains(
            "the probe's clock is 2d behind the collector's, by which certificate #0 is \
                      within its dates"
        ) && why.contains("the probe host's clock is the more likely cause"),
        "{why}"
    );
    ensure!(
        failed[0]["contributing"] == serde_json::json!(["clock_skew"]),
        "{:#}",
        failed[0]
    );
    drop(lab);
    Ok(())
}

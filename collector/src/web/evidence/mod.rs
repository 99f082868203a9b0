//! A failed check's evidence as HTML for the web page, one `<section>` per kind of evidence
//! the check carries, each with an `<h4>`. What it states in words comes from
//! `causeway_api::facts`, which `probectl why` prints too, so the two say the same; the
//! ladder, the charts and the tables are the page's own drawing. Every string that came from a
//! probe goes through [`escape_html`]; a fact's clause becomes a sentence here ([`sentence`]).
//! No script, no inline styles: the page's stylesheet styles these classes (the ladder's own
//! are listed in [`super::ladder`]).
//!
//! Layout:
//! - `ev`: the `<div>` around all the sections of one check.
//! - `ev-failure`, `ev-trace`, `ev-listeners`, `ev-dns`, `ev-backends`, `ev-host`: the
//!   sections (what went wrong, the packets, the listeners on the port, the resolvers, the
//!   backends behind the proxy, the probe's host).
//! - `ev-facts`: a `<dl>` of labelled facts (the check, its failure, status, timings, body).
//! - `ev-table`: every table; `ev-resolvers` also on the resolvers' table (one column per
//!   resolver, one row per query type, then reachability and verdict).
//! - `ev-sub`: an `<h5>` inside a section (OOM kills, memory, pressure, ... of the host).
//! - `ev-note`: a sentence of context under a heading (how often listeners are looked at, where
//!   the packets were captured); `ev-muted`: a secondary detail inside a cell (rcode and time,
//!   a cgroup path, the address of a resolver).
//!
//! Meaning:
//! - `ev-ok`, `ev-warn`, `ev-bad`: a cell or item that is healthy, suspicious (a name without
//!   the address type asked), or failing (refused, timed out, unreachable, changed, a verdict).
//! - `ev-cause`: a cause id (`<code>`); `ev-summary`: what that cause means;
//!   `ev-explanation`: the classifier's one line for people; `ev-contributing`: the line
//!   listing contributing causes.
//! - `ev-warning`: what the probe could not read or a fact that changes the reading (a
//!   reboot, unreadable socket owners); `ev-warnings`: the `<ul>` of the host's warnings.
//! - `ev-body`: the response body excerpt (`<pre>`); `ev-ttl`: the line on the server's TTL
//!   under the ladder.
//! - `ev-serving`, `ev-other`: a listener's rows (the serving process's or another's);
//!   `ev-gone`: also on the rows of a listener that was gone at the next look.
//! - `ev-memory`: the latest memory line; `ev-spark`: the SUnreclaim sparkline `<svg>` (its
//!   `<polyline>` is `ev-spark-line`, the last point's `<circle>` `ev-spark-last`);
//!   `ev-pressure`: the `<ul>` of load and PSI lines; `ev-conditions`: the `<ul>` of host
//!   conditions.
//! - `ev-kernel`: the kernel log `<pre>`; each line a `<span class="ev-kline ev-klN">` with N
//!   the syslog level (0 emerg .. 7 debug), so errors can stand out.

use std::fmt::{Display, Write};

mod backends;
mod dns;
mod host;
mod listeners;

use causeway_api::facts::{FailedCheck, Part, TraceFacts, Verdict, failure_facts};
use causeway_schema::{CheckResult, PacketTrace};

use super::ladder::ladder_svg;
use super::layout::esc as escape_html;
use backends::backends_section;
use dns::dns_section;
use host::host_section;
use listeners::listeners_section;

/// Anything, written and escaped.
fn esc(x: impl Display) -> String {
    escape_html(&x.to_string())
}

/// The evidence of `check`: a `<div class="ev">` holding a section for each kind of evidence
/// present, in the order an operator reads them (what failed, packets, listeners, resolvers,
/// backends, host). Empty for a check with nothing to show (a successful one).
pub fn evidence_html(check: &CheckResult) -> String {
    let e = &check.evidence;
    let mut html = String::new();
    failure_section(&mut html, check);
    if let Some(t) = &e.trace {
        trace_section(&mut html, t);
    }
    if let Some(l) = &e.listeners {
        listeners_section(&mut html, l);
    }
    if !e.dns.is_empty() {
        dns_section(&mut html, &e.dns);
    }
    if let Some(b) = &e.backends {
        backends_section(&mut html, b);
    }
    if let Some(h) = &e.host {
        host_section(&mut html, h);
    }
    if html.is_empty() {
        return html;
    }
    format!("<div class=\"ev\">\n{html}</div>\n")
}

/// `<dt>label</dt><dd>value</dd>`; `value` is HTML already.
fn fact(html: &mut String, label: &str, value: &str) {
    let _ = writeln!(html, "<dt>{label}</dt><dd>{value}</dd>");
}

/// A fact's parts as HTML: names and values in `<code>`, an excerpt in `<pre>`.
pub(super) fn parts_html(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| match p {
            Part::Words(s) => esc(s),
            Part::Code(s) | Part::Quoted(s) => format!("<code>{}</code>", esc(s)),
            Part::Excerpt(s) => format!("<pre class=\"ev-body\">{}</pre>", esc(s)),
        })
        .collect()
}

/// `memory at ...` as a heading: `Memory at ...`.
fn capitalised(clause: &str) -> String {
    let mut chars = clause.chars();
    chars
        .next()
        .map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
}

/// A fact's clause as a sentence of HTML: its first letter capitalised (a name in `<code>`
/// first stays as it is), a full stop after.
fn sentence(parts: &[Part]) -> String {
    let mut parts = parts.to_vec();
    if let Some(Part::Words(first)) = parts.first_mut() {
        *first = capitalised(first);
    }
    format!("{}.", parts_html(&parts))
}

/// [`sentence`] of a clause that is all words.
fn sentence_of(clause: &str) -> String {
    sentence(&[Part::words(clause)])
}

/// The class of a cell that reads healthy or failing.
fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ev-ok",
        Verdict::Bad => "ev-bad",
        Verdict::Neutral => "",
    }
}

/// The classifier's verdict, the check, what failed, status and text against what was
/// expected, the timings and the body excerpt.
fn failure_section(html: &mut String, c: &CheckResult) {
    let e = &c.evidence;
    let anything = c.failure.is_some()
        || c.diagnosis.is_some()
        || e.expected_status.is_some()
        || e.expected_text.is_some()
        || e.body_excerpt.is_some();
    if !anything {
        return;
    }
    html.push_str("<section class=\"ev-failure\">\n<h4>Failure</h4>\n");
    // The check's own diagnosis: probectl tells the incident's instead, above its evidence.
    if let Some(d) = &c.diagnosis {
        let _ = writeln!(
            html,
            "<p><code class=\"ev-cause\">{}</code> <span class=\"ev-summary\">{}</span></p>\n\
             <p class=\"ev-explanation\">{}</p>",
            esc(d.cause),
            esc(d.cause.summary()),
            esc(&d.explanation)
        );
        if !d.contributing.is_empty() {
            let causes: Vec<String> = d
                .contributing
                .iter()
                .map(|c| format!("<code class=\"ev-cause\">{}</code>", esc(c)))
                .collect();
            let _ = writeln!(
                html,
                "<p class=\"ev-contributing\">Contributing: {}</p>",
                causes.join(", ")
            );
        }
    }
    html.push_str("<dl class=\"ev-facts\">\n");
    for f in failure_facts(&FailedCheck::from(c)) {
        fact(html, f.label, &parts_html(&f.text));
    }
    html.push_str("</dl>\n</section>\n");
}

/// Where the packets were captured, the ladder, and the server's TTL against the reset's.
fn trace_section(html: &mut String, t: &PacketTrace) {
    let facts = TraceFacts::of(t);
    let _ = writeln!(
        html,
        "<section class=\"ev-trace\">\n<h4>Packets</h4>\n<p class=\"ev-note\">{}</p>",
        sentence(&facts.summary)
    );
    html.push_str(&ladder_svg(t));
    html.push('\n');
    let _ = writeln!(html, "<p class=\"ev-ttl\">{}</p>", sentence_of(&facts.ttl));
    html.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use causeway_schema::{
        Cause, Diagnosis, DirectOutcome, KernelLine, Reboot, ServerTtl, TtlSource,
    };

    use super::super::ladder::tests::balanced;
    use super::*;

    fn scenario(name: &str) -> CheckResult {
        let path = format!(
            "{}/../schema/tests/scenarios/{name}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let scenario: toml::Table = toml::from_str(&text).unwrap();
        scenario["check"].clone().try_into().unwrap()
    }

    /// A check with every kind of evidence, from the schema's recorded scenarios: the reset
    /// of a rogue listener (packets, listeners), resolvers that disagree or block, a backend
    /// shuffle, the leak behind an OOM kill.
    fn everything() -> CheckResult {
        let mut check = scenario("rst-non-serving-process");
        let e = &mut check.evidence;
        e.trace.as_mut().unwrap().server_ttl = Some(ServerTtl {
            ttl: 64,
            source: TtlSource::ThisConnection,
        });
        let swap = scenario("backend-swap").evidence;
        e.expected_status = Some(200);
        e.expected_text = swap.expected_text;
        e.body_excerpt = swap.body_excerpt;
        e.backends = swap.backends;
        e.backends.as_mut().unwrap().reboot = Some(Reboot {
            previous_boot_id: "old-boot".into(),
            boot_id: "new-boot".into(),
            uptime_s: 42,
        });
        e.dns = scenario("dns-disputed-address").evidence.dns;
        e.dns
            .extend(scenario("dns-no-address-blocked").evidence.dns);
        let mut host = scenario("host-leak-oom").evidence.host.unwrap();
        host.conditions = vec![causeway_schema::HostCondition {
            cause: Cause::KernelMemoryLeak,
            explanation: "SUnreclaim is 24.0 GiB of 64.0 GiB and growing".into(),
            evidence: vec!["SUnreclaim 23.0 GiB -> 24.0 GiB".into()],
        }];
        host.warnings = vec!["PSI unavailable".into()];
        e.host = Some(host);
        check.status = Some(502);
        check.diagnosis = Some(Diagnosis {
            cause: Cause::RstFromNonServingProcess,
            contributing: vec![Cause::KernelMemoryLeak, Cause::DnsAnswerMismatch],
            explanation: "10.88.0.2:80 reset the connection".into(),
        });
        check
    }

    #[test]
    fn every_kind_of_evidence_shows() {
        let html = evidence_html(&everything());
        let elements = balanced(&html).unwrap_or_else(|e| panic!("{e}\n{html}"));
        assert_eq!(elements.iter().filter(|e| *e == "section").count(), 6);
        assert_eq!(elements.iter().filter(|e| *e == "h4").count(), 6);
        assert!(html.starts_with("<div class=\"ev\">\n<section class=\"ev-failure\">"));
        for fragment in [
            // Failure.
            "<h4>Failure</h4>",
            "<code class=\"ev-cause\">rst_from_non_serving_process</code> \
             <span class=\"ev-summary\">the connection was reset for a socket the serving \
             process does not own</span>",
            "<p class=\"ev-explanation\">10.88.0.2:80 reset the connection</p>",
            "Contributing: <code class=\"ev-cause\">kernel_memory_leak</code>, \
             <code class=\"ev-cause\">dns_answer_mismatch</code>",
            "<dt>check</dt><dd>site <code>http://10.88.0.2/</code> at 10.88.0.2, started \
             2025-11-23T12:13:20Z</dd>",
            "<dt>failure</dt><dd><code>reset</code>: Connection reset by peer (os error 104)</dd>",
            "<dt>status</dt><dd>502, expected 200</dd>",
            "<dt>expected text</dt><dd><code>canary-ok</code></dd>",
            "<dt>timings</dt><dd>connect 0.1 ms, total 1502.0 ms</dd>",
            "<pre class=\"ev-body\">&lt;html&gt;&lt;body&gt;dev build 2025-11-23&lt;/body&gt;\
             &lt;/html&gt;</pre>",
            // Packets.
            "6 packets on <code>lo</code> between 10.88.0.2:41000 (probe) and 10.88.0.2:80 \
             (server), from 12:13:20.001 UTC.",
            "<svg class=\"ev-ladder\"",
            "<p class=\"ev-ttl\">The server&#39;s packets arrive with TTL 64 (from this \
             connection&#39;s SYN-ACK); the reset came with TTL 64, the same.</p>",
            // Listeners.
            "<h4>Listeners on port 80</h4>",
            "Serving: the long-lived owner of port 80. Looked at every 100 ms: a listener that \
             lived for less can be missed, and each time below is this precise.",
            "<tr class=\"ev-serving\"><td>serving</td><td>10.88.0.2:80</td><td>inode 1001, uid \
             0, 2 on this address (SO_REUSEPORT)</td><td>100</td><td><code>nginx</code></td>\
             <td><code>nginx: worker process</code></td><td><code>/cw-nginx</code></td>\
             <td>11:56:40.000</td><td>12:13:21.600</td><td class=\"ev-ok\">still there</td></tr>",
            "<tr class=\"ev-other ev-gone\"><td>other</td><td>10.88.0.2:80</td>",
            "<td><code>python3 rogue.py</code></td><td><code>/user.slice/session-1.scope</code>\
             </td><td>12:13:19.200</td><td>12:13:21.450</td><td class=\"ev-bad\">gone</td></tr>",
            // Resolvers: one column each, a row per query type, reachability, verdict.
            "<thead><tr><th></th><th>10.88.0.11 <span class=\"ev-muted\">10.88.0.11:53</span>\
             </th><th>10.88.0.12 ",
            "<tr><th>A</th><td class=\"ev-ok\">answer<div>10.88.0.2 <span class=\"ev-muted\">\
             ttl 30</span></div><div class=\"ev-muted\">NOERROR, 0.6 ms</div></td>",
            "<td class=\"ev-bad\">refused<div class=\"ev-muted\">REFUSED, 0.4 ms</div></td>",
            "<tr><th>AAAA</th><td class=\"ev-muted\">not asked</td>",
            "<tr><th>ping</th><td class=\"ev-muted\">not tested</td>",
            "<td class=\"ev-ok\">reply in 0.1 ms</td><td class=\"ev-bad\">no_reply after 1000 \
             ms</td></tr>",
            "<td class=\"ev-ok\">port 53: reply in 0.1 ms</td>",
            "<td class=\"ev-bad\"><code class=\"ev-cause\">dns_answer_mismatch</code> <span \
             class=\"ev-explanation\">10.88.0.16 answers canary.lab with 10.88.0.99</span></td>",
            // Backends.
            "<p class=\"ev-warning\">The host rebooted since the probe&#39;s previous cycle: boot \
             id old-boot is now new-boot, up 42s.</p>",
            "<tr><td>app</td><td>10.88.0.12:80</td><td><div>MAC 02:aa:bb:cc:dd:01</div><div>HTTP \
             200, 1432 bytes, body 9f3c2a71d04e8b65</div></td><td>12:07:20.000</td><td \
             class=\"ev-bad\">answers HTTP 200, 47 bytes, body c07e5d2b18a94f36, not as before</td><td>\
             <div class=\"ev-bad\">10.88.0.15 <span class=\"ev-muted\">by mac, answer</span>\
             </div></td></tr>",
            // Host.
            "Boot id <code>a81c0d4f-52e6-4b19-8f0e-6c7d8e9fa0b1</code>, up 3d4h.",
            "<tr class=\"ev-bad\"><td>12:12:32.000</td><td>2120</td><td><code>nginx</code></td>\
             <td><code>/system.slice/nginx.service</code></td><td>host memory</td><td>1.8 \
             GiB</td><td>0 KiB</td><td>0 KiB</td><td>2.1 GiB</td><td>0</td></tr>",
            "<p class=\"ev-memory\">MemTotal 64.0 GiB, MemAvailable 2.0 GiB, Slab 24.9 GiB, \
             SUnreclaim 24.0 GiB</p>",
            "SUnreclaim 23.0 GiB to 24.0 GiB over 9m30s (20 samples, +6.3 GiB per hour) \
             <svg class=\"ev-spark\"",
            "<li>load 6.30 9.80 7.10, 3 runnable, 32 CPUs</li>",
            "<li>PSI avg10: cpu some 4.1%, memory some 38.2%, memory full 4.2%, io some 12.5%, \
             io full 3.3%</li>",
            "<li><code class=\"ev-cause\">kernel_memory_leak</code> <span class=\
             \"ev-explanation\">SUnreclaim is 24.0 GiB of 64.0 GiB and growing</span><ul><li>\
             SUnreclaim 23.0 GiB -&gt; 24.0 GiB</li></ul></li>",
            "<h5 class=\"ev-sub\">Kernel log (3 lines, UTC)</h5>",
            "<span class=\"ev-kline ev-kl3\">12:12:32.000 err     Out of memory: Killed \
             process 2120 (nginx)",
            "<li class=\"ev-warning\">PSI unavailable</li>",
        ] {
            assert!(html.contains(fragment), "{fragment}\nmissing from\n{html}");
        }
        // The resolvers' table has a column per resolver: five in these scenarios.
        let resolvers = html.split("ev-resolvers").nth(1).unwrap();
        let head = &resolvers[..resolvers.find("</thead>").unwrap()];
        assert_eq!(head.matches("<th>").count(), 1 + 5, "{head}");
        // The ladder: one arrow per packet, a reset among them.
        assert_eq!(html.matches("<g class=\"ev-pkt ").count(), 6);
        assert_eq!(html.matches("ev-rst").count(), 1);
        // The sparkline: a point per sample.
        let spark = html.split("<polyline").nth(1).unwrap();
        let points = spark.split("points=\"").nth(1).unwrap();
        let points = &points[..points.find('"').unwrap()];
        assert_eq!(points.split(' ').count(), 20, "{points}");
    }

    #[test]
    fn only_the_evidence_present_shows() {
        let check = scenario("http-502");
        let html = evidence_html(&check);
        balanced(&html).unwrap();
        assert_eq!(html.matches("<section").count(), 1, "{html}");
        assert!(html.contains("<section class=\"ev-failure\">"), "{html}");
        for absent in [
            "ev-trace",
            "ev-listeners",
            "ev-dns",
            "ev-backends",
            "ev-host",
        ] {
            assert!(!html.contains(absent), "{absent} in {html}");
        }
        let mut ok = scenario("healthy");
        ok.evidence = Default::default();
        assert_eq!(evidence_html(&ok), "");
    }

    #[test]
    fn sparse_evidence_still_reads() {
        let mut check = everything();
        let e = &mut check.evidence;
        let l = e.listeners.as_mut().unwrap();
        l.owners_visible = false;
        l.listeners[1].owners.clear();
        let twin = l.listeners[0].owners[0].clone();
        l.listeners[0].owners.push(twin);
        l.listeners[0].owners[1].pid = 101;
        l.listeners[0].owners[1].unit = Some("nginx.service".into());
        let t = e.trace.as_mut().unwrap();
        t.server_ttl = Some(ServerTtl {
            ttl: 57,
            source: TtlSource::EarlierConnection,
        });
        let h = e.host.as_mut().unwrap();
        h.memory.truncate(1);
        h.boot_id.clear();
        h.oom_kills[0].cgroup_oom = true;
        h.oom_kills[0].memcg = None;
        let b = e.backends.as_mut().unwrap();
        b.backends[0].known = None;
        b.backends[1].direct.outcome = DirectOutcome::Timeout;
        b.backends[1].direct.elapsed_ms = 2000.0;
        b.backends[1].seen_at.clear();
        let html = evidence_html(&check);
        balanced(&html).unwrap_or_else(|e| panic!("{e}\n{html}"));
        for fragment in [
            "could not be read",
            "<td rowspan=\"2\">serving</td>",
            "<tr class=\"ev-serving\"><td>101</td><td><code>nginx</code></td><td><code>nginx: \
             worker process</code></td><td><code>nginx.service</code> <span class=\"ev-muted\">\
             /cw-nginx</span></td></tr>",
            "<td>-</td><td colspan=\"3\" class=\"ev-muted\">owner not readable</td>\
             <td>12:13:19.200</td>",
            "from the SYN-ACKs of earlier connections); the reset came with TTL 64, not the \
             server&#39;s",
            "<p class=\"ev-note\">Up 3d4h.</p>",
            "<td>its cgroup's limit</td>",
            "<span class=\"ev-muted\">nothing learned yet</span>",
            "<td class=\"ev-bad\">no answer in 2000 ms</td><td><span class=\"ev-muted\">nowhere\
             </span></td>",
        ] {
            assert!(html.contains(fragment), "{fragment}\nmissing from\n{html}");
        }
        assert!(
            !html.contains("ev-spark"),
            "one sample, no sparkline: {html}"
        );
    }

    #[test]
    fn what_probes_sent_is_text_never_markup() {
        let img = "<img src=x onerror=alert(1)>";
        let script = "</pre><script>alert(1)</script>";
        let evil = format!("{img}{script}");
        let mut check = everything();
        check.canary = evil.clone().into();
        check.url = evil.clone();
        check.failure.as_mut().unwrap().message = evil.clone();
        check.diagnosis.as_mut().unwrap().explanation = evil.clone();
        let e = &mut check.evidence;
        e.body_excerpt = Some(evil.clone());
        e.expected_text = Some(evil.clone());
        e.trace.as_mut().unwrap().interface = evil.clone();
        let l = e.listeners.as_mut().unwrap();
        l.serving = evil.clone();
        let owner = &mut l.listeners[1].owners[0];
        owner.name = evil.clone();
        owner.cmdline = evil.clone();
        owner.cgroup = Some(evil.clone());
        owner.unit = Some(evil.clone());
        let r = &mut e.dns[0];
        r.resolver = evil.clone();
        // (An rcode is a number on the wire now: no text of a probe's reaches the page there.)
        r.queries[0].error = Some(evil.clone());
        r.condition.get_or_insert_with(|| Diagnosis {
            cause: Cause::DnsUpstreamBlock,
            contributing: vec![],
            explanation: String::new(),
        });
        r.condition.as_mut().unwrap().explanation = evil.clone();
        e.dns[3].reachability.as_mut().unwrap().icmp.detail = Some(evil.clone());
        let b = e.backends.as_mut().unwrap();
        b.backends[0].name = Some(evil.clone());
        b.backends[0].direct.detail = Some(evil.clone());
        b.backends[0].direct.outcome = DirectOutcome::Error;
        b.backends[1].known.as_mut().unwrap().mac = Some(evil.clone());
        b.reboot.as_mut().unwrap().boot_id = evil.clone();
        let h = e.host.as_mut().unwrap();
        h.boot_id = evil.clone();
        h.oom_kills[0].command = evil.clone();
        h.oom_kills[0].memcg = Some(evil.clone());
        h.kernel_lines.push(KernelLine {
            at_ms: 1_763_899_999_000,
            level: 2,
            text: evil.clone(),
        });
        h.conditions[0].explanation = evil.clone();
        h.conditions[0].evidence = vec![evil.clone()];
        h.warnings = vec![evil.clone()];
        let html = evidence_html(&check);

        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("</script"), "{html}");
        // The only `</pre>`s close the body and the kernel log.
        assert_eq!(html.matches("</pre>").count(), 2, "{html}");
        balanced(&html).unwrap_or_else(|e| panic!("{e}\n{html}"));
        let shown = "&lt;img src=x onerror=alert(1)&gt;&lt;/pre&gt;&lt;script&gt;alert(1)\
                     &lt;/script&gt;";
        // canary, url, message, explanation, expected text, body, interface (twice in the
        // ladder and once above it), serving, name, cmdline, cgroup, unit, resolver, rcode,
        // error, its verdict, ping detail, backend name, detail, mac, reboot, boot id, OOM
        // command and cgroup, kernel line, condition and its evidence, warning.
        assert!(html.matches(shown).count() >= 29, "{html}");
        for (what, near) in [
            ("command line", "<td><code>"),
            ("kernel line", "crit    "),
            ("resolver", "<th>"),
            ("body", "<pre class=\"ev-body\">"),
            ("explanation", "<p class=\"ev-explanation\">"),
            ("cgroup", "<span class=\"ev-muted\">"),
        ] {
            assert!(
                html.contains(&format!("{near}{shown}")),
                "{what} not shown as text in\n{html}"
            );
        }
    }
}

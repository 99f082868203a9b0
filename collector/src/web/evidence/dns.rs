//! The resolvers' part of a check's evidence: each resolver a column, a row per query type,
//! then reachability (when tested) and the verdict.

use std::fmt::Write;

use causeway_schema::{
    DnsOutcome, DnsQuery, ReachOutcome, ReachProbe, RecordType, ResolverOutcome,
};

use super::esc;

/// The resolvers side by side: a column each; a row per query type, reachability (when any
/// was tested) and the verdict.
pub(super) fn dns_section(html: &mut String, dns: &[ResolverOutcome]) {
    html.push_str(
        "<section class=\"ev-dns\">\n<h4>Resolvers</h4>\n\
         <table class=\"ev-table ev-resolvers\">\n<thead><tr><th></th>",
    );
    for o in dns {
        let _ = write!(
            html,
            "<th>{} <span class=\"ev-muted\">{}</span></th>",
            esc(&o.resolver),
            esc(o.server)
        );
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    // The query types in the order first asked (A before AAAA as the probe asks them).
    let mut types: Vec<RecordType> = Vec::new();
    for q in dns.iter().flat_map(|o| &o.queries) {
        if !types.contains(&q.record_type) {
            types.push(q.record_type);
        }
    }
    for ty in types {
        let _ = write!(html, "<tr><th>{}</th>", esc(ty));
        for o in dns {
            match o.queries.iter().find(|q| q.record_type == ty) {
                Some(q) => query_cell(html, q),
                None => html.push_str("<td class=\"ev-muted\">not asked</td>"),
            }
        }
        html.push_str("</tr>\n");
    }
    if dns.iter().any(|o| o.reachability.is_some()) {
        html.push_str("<tr><th>ping</th>");
        for o in dns {
            reach_cell(html, o.reachability.as_ref().map(|r| &r.icmp), None);
        }
        html.push_str("</tr>\n<tr><th>TCP to the DNS port</th>");
        for o in dns {
            let port = o.server.port();
            reach_cell(html, o.reachability.as_ref().map(|r| &r.tcp), Some(port));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("<tr><th>verdict</th>");
    for o in dns {
        match &o.condition {
            Some(d) => {
                let _ = write!(
                    html,
                    "<td class=\"ev-bad\"><code class=\"ev-cause\">{}</code> \
                     <span class=\"ev-explanation\">{}</span></td>",
                    esc(d.cause),
                    esc(&d.explanation)
                );
            }
            None => html.push_str("<td class=\"ev-ok\">ok</td>"),
        }
    }
    html.push_str("</tr>\n</tbody>\n</table>\n</section>\n");
}

/// The outcome, the addresses with their TTLs, then the rcode and time (or the error).
fn query_cell(html: &mut String, q: &DnsQuery) {
    let class = match q.outcome {
        DnsOutcome::Answer => "ev-ok",
        DnsOutcome::NoData | DnsOutcome::NxDomain => "ev-warn",
        _ => "ev-bad",
    };
    let _ = write!(html, "<td class=\"{class}\">{}", esc(q.outcome.id()));
    for a in &q.answers {
        let _ = write!(
            html,
            "<div>{} <span class=\"ev-muted\">ttl {}</span></div>",
            esc(a.address),
            a.ttl
        );
    }
    let rcode = q.rcode.map_or(String::new(), |r| format!("{r}, "));
    let _ = write!(
        html,
        "<div class=\"ev-muted\">{}</div>",
        esc(format!("{rcode}{:.1} ms", q.elapsed_ms))
    );
    if let Some(e) = &q.error {
        let _ = write!(html, "<div>{}</div>", esc(e));
    }
    html.push_str("</td>");
}

/// A reachability test (`reply in 0.3 ms`), `port 53: ...` for TCP; `not tested` when the
/// resolver answered (reachability is tested only for those that did not).
fn reach_cell(html: &mut String, probe: Option<&ReachProbe>, port: Option<u16>) {
    let Some(p) = probe else {
        html.push_str("<td class=\"ev-muted\">not tested</td>");
        return;
    };
    let class = match p.outcome {
        o if o.answered() => "ev-ok",
        ReachOutcome::NotTested => "ev-muted",
        _ => "ev-bad",
    };
    let port = port.map_or(String::new(), |port| format!("port {port}: "));
    let _ = write!(
        html,
        "<td class=\"{class}\">{}</td>",
        esc(format!("{port}{p}"))
    );
}

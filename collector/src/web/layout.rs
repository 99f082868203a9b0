//! The page shell: head, stylesheet, script, error pages, and the colours of outcomes and causes.

use std::fmt::Write;

use axum::http::StatusCode;

/// Text safe inside HTML elements and double-quoted attributes: every string that came from a
/// probe goes through here, so that a probe's token is not enough to run script in an
/// operator's browser.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Pages reload themselves this often (seconds): a wall screen stays current without script.
pub const REFRESH_S: u32 = 30;

/// The stylesheet, compiled in. Evidence sections (`ev-*`) are styled here too.
pub const CSS: &str = r#"
:root{--ok:#2da44e;--bad:#cf222e;--dns:#8250df;--rst:#e16f24;--host:#953800;--net:#bf3989;
--backend:#0969da;--tls:#1b7c83;--slow:#d4a72c;--other:#6e7781;--line:#d0d7de;--muted:#57606a}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:.8em 1.5em;display:flex;gap:1.5em;align-items:baseline;flex-wrap:wrap}
header a{color:#fff;text-decoration:none;font-weight:600;font-size:1.2em}
header .fleet{font-size:1.05em}
main{padding:1em 1.5em;max-width:1400px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em}h3{font-size:1em;margin:.6em 0 .3em}
h4{font-size:.95em;margin:.8em 0 .3em;color:var(--muted)}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line)}
th,td{padding:.35em .7em;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f6f8fa;white-space:nowrap}th a{color:inherit}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:600;padding:.1em .5em;border-radius:1em;color:#fff;font-size:.85em}
.state.up{background:var(--ok)}.state.down{background:var(--bad)}.state.stale,.state.unknown{background:var(--other)}
.muted{color:var(--muted)}small{color:var(--muted)}
.filter{margin:.5em 0 1em;display:flex;gap:.5em}.filter input{padding:.35em;min-width:18em}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:.6em 1em;margin:.6em 0}
.figures{display:flex;gap:2em;flex-wrap:wrap}.figures div{min-width:7em}.figures b{display:block;font-size:1.4em}
.incident.open{border-left:4px solid var(--bad)}.incident.closed{border-left:4px solid var(--other)}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
svg{display:block;max-width:100%}svg text{font:11px system-ui,sans-serif}
.c-ok{fill:var(--ok);background:var(--ok)}.c-bad{fill:var(--bad);background:var(--bad)}
.c-dns{fill:var(--dns);background:var(--dns)}.c-rst{fill:var(--rst);background:var(--rst)}
.c-host{fill:var(--host);background:var(--host)}.c-backend{fill:var(--backend);background:var(--backend)}
.c-slow{fill:var(--slow);background:var(--slow)}.c-tls{fill:var(--tls);background:var(--tls)}.c-other{fill:var(--other);background:var(--other)}
.c-none{fill:#eaeef2;background:#eaeef2}
.p-resolve{fill:#8c959f;background:#8c959f}.p-connect{fill:#54aeff;background:#54aeff}
.p-tls{fill:#8250df;background:#8250df}.p-first{fill:#2da44e;background:#2da44e}.p-rest{fill:#d4a72c;background:#d4a72c}
pre{background:#f6f8fa;border:1px solid var(--line);padding:.5em;overflow:auto;white-space:pre-wrap;word-break:break-all}
.ev table{font-size:.92em;margin:.3em 0}.ev h4{margin-top:1em}.ev h5{margin:.6em 0 .2em}
.ev-facts{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}.ev-facts dt{font-weight:600}
.ev-facts dd{margin:0}.ev-cause{font-weight:600}.ev-muted,.ev-note{color:var(--muted)}
.ev-ok{color:var(--ok)}.ev-warn{color:#9a6700}.ev-bad,.ev-warning{color:var(--bad)}
.ev-gone{color:var(--muted);font-style:italic}.ev-serving td:first-child{font-weight:600}
.ev-ladder{width:100%;max-width:760px;height:auto;background:#fff;border:1px solid var(--line)}
.ev-ladder-host{stroke:#57606a;stroke-width:2}.ev-ladder-name{font-weight:600}
.ev-arrow{stroke:#57606a;stroke-width:1.5}.ev-arrowhead{fill:#57606a}
.ev-syn .ev-arrow,.ev-synack .ev-arrow{stroke:var(--backend)}.ev-syn .ev-arrowhead,.ev-synack .ev-arrowhead{fill:var(--backend)}
.ev-rst .ev-arrow{stroke:var(--bad)}.ev-rst .ev-arrowhead,.ev-rst text{fill:var(--bad)}
.ev-spark-line{fill:none;stroke:var(--host);stroke-width:1.5}.ev-spark-last{fill:var(--host)}
.ev-kl0,.ev-kl1,.ev-kl2,.ev-kl3{color:var(--bad)}.ev-kl4{color:#9a6700}
"#;

/// Sorting by a column's header and filtering by the search box, without a round trip. With
/// JavaScript off the header links and the form do the same through the query string.
pub const SCRIPT: &str = r#"
(function(){
  var t=document.getElementById('fleet');if(!t)return;
  var body=t.tBodies[0],q=document.getElementById('q');
  function filter(){var v=(q.value||'').toLowerCase();
    for(var r of body.rows){r.hidden=v&&r.dataset.name.toLowerCase().indexOf(v)<0;}}
  if(q){q.addEventListener('input',filter);}
  t.querySelectorAll('th[data-key]').forEach(function(th){
    th.addEventListener('click',function(e){e.preventDefault();
      var k=th.dataset.key,dir=th.dataset.dir==='asc'?'desc':'asc';th.dataset.dir=dir;
      var rows=Array.from(body.rows);
      rows.sort(function(a,b){var x=a.dataset[k],y=b.dataset[k];
        var nx=parseFloat(x),ny=parseFloat(y);
        var c=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):nx-ny;return dir==='asc'?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});});});
})();
"#;

/// A whole page: `title` (escaped here), the header's fleet line (HTML), the body (HTML).
pub fn page(title: &str, header_extra: &str, body: &str) -> String {
    page_for(title, header_extra, body, true)
}

/// [`page`], with the header's link to the fleet overview or without it (a customer's page
/// leads nowhere else).
pub fn page_for(title: &str, header_extra: &str, body: &str, home: bool) -> String {
    let home = if home { " href=\"/\"" } else { "" };
    let mut html = String::with_capacity(body.len() + CSS.len() + 1024);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\n<title>{}</title>\n\
         <style>{CSS}</style>\n</head>\n<body>\n<header><a{home}>Causeway</a>{header_extra}</header>\n\
         <main>\n{body}\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        esc(title)
    );
    html
}

/// The page of an error: its status, the message (escaped here) and, for an unknown server,
/// links to the closest names.
pub fn error_page(status: StatusCode, message: &str, closest: Option<Vec<String>>) -> String {
    error_page_for(status, message, closest, true)
}

/// [`error_page`], with the header's link to the overview or without it (a customer's).
pub fn error_page_for(
    status: StatusCode,
    message: &str,
    closest: Option<Vec<String>>,
    home: bool,
) -> String {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    );
    let mut body = format!("<h1>{}</h1>\n<p>{}</p>", esc(&title), esc(message));
    let closest = closest.unwrap_or_default();
    if !closest.is_empty() {
        let links: Vec<String> = closest
            .iter()
            .map(|name| format!("<a href=\"{}\">{}</a>", server_href(name), esc(name)))
            .collect();
        let _ = write!(body, "\n<p>Did you mean {}?</p>", links.join(", "));
    }
    if home {
        body.push_str("\n<p><a href=\"/\">All servers</a></p>");
    }
    page_for(&title, "", &body, home)
}

/// The colour class of a check: `c-ok`, or the family of its cause.
pub fn outcome_class(ok: bool, cause: Option<&str>) -> &'static str {
    if ok {
        return "c-ok";
    }
    let cause = cause.unwrap_or("unknown");
    if cause.starts_with("dns_") {
        "c-dns"
    } else if cause.starts_with("rst_")
        || matches!(cause, "connection_reset" | "queued_on_non_serving_process")
    {
        "c-rst"
    } else if matches!(
        cause,
        "oom_kill" | "kernel_memory_leak" | "host_overload" | "host_rebooted" | "clock_skew"
    ) {
        "c-host"
    } else if matches!(cause, "bad_gateway_after_ip_shuffle" | "upstream_down") {
        "c-backend"
    } else if cause.starts_with("tls_") {
        "c-tls"
    } else if cause == "timeout" {
        "c-slow"
    } else if matches!(
        cause,
        "connection_refused" | "http_error" | "content_mismatch"
    ) {
        "c-bad"
    } else {
        "c-other"
    }
}

/// The legend of [`outcome_class`].
pub fn legend() -> &'static str {
    "<p class=\"legend\"><span><i class=\"c-ok\"></i>ok</span>\
     <span><i class=\"c-bad\"></i>refused, HTTP, content</span>\
     <span><i class=\"c-tls\"></i>TLS</span>\
     <span><i class=\"c-slow\"></i>timeout</span><span><i class=\"c-rst\"></i>reset</span>\
     <span><i class=\"c-dns\"></i>DNS</span><span><i class=\"c-backend\"></i>backend</span>\
     <span><i class=\"c-host\"></i>host</span><span><i class=\"c-other\"></i>other</span></p>"
}

/// `/servers/<name>`: names are restricted to URL-safe characters, so no encoding is needed.
pub fn server_href(name: &str) -> String {
    format!("/servers/{}", esc(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_fall_into_families() {
        assert_eq!(outcome_class(true, None), "c-ok");
        assert_eq!(outcome_class(false, Some("dns_upstream_block")), "c-dns");
        assert_eq!(outcome_class(false, Some("rst_from_middlebox")), "c-rst");
        assert_eq!(
            outcome_class(false, Some("queued_on_non_serving_process")),
            "c-rst"
        );
        assert_eq!(outcome_class(false, Some("oom_kill")), "c-host");
        assert_eq!(outcome_class(false, Some("upstream_down")), "c-backend");
        assert_eq!(outcome_class(false, Some("timeout")), "c-slow");
        assert_eq!(outcome_class(false, Some("connection_refused")), "c-bad");
        assert_eq!(outcome_class(false, Some("tls_sni_filtered")), "c-tls");
        assert_eq!(outcome_class(false, Some("a_new_cause")), "c-other");
    }

    /// A cause added to the vocabulary gets a family (and so a colour) of its own.
    #[test]
    fn every_known_cause_has_a_family() {
        use causeway_schema::Cause;
        let other: Vec<Cause> = Cause::ALL
            .into_iter()
            .filter(|c| outcome_class(false, Some(c.id())) == "c-other")
            .collect();
        assert_eq!(other, [Cause::Unknown]);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(esc(r#"a & "b" 'c'"#), "a &amp; &quot;b&quot; &#39;c&#39;");
        assert_eq!(esc("web-01"), "web-01");
    }

    #[test]
    fn the_title_is_escaped() {
        let html = page("<b>x</b>", "", "");
        assert!(
            html.contains("<title>&lt;b&gt;x&lt;/b&gt;</title>"),
            "{html}"
        );
    }
}

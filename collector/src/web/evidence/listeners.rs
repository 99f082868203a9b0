//! The listeners on a canary's port: the sentences above them, then one row per owner of
//! each listener (the facts are `causeway_api::facts`'; the table is the page's).

use std::fmt::Write;

use causeway_api::facts::{ListenerFacts, ListenersFacts};
use causeway_schema::{Listener, ListenerEvidence};

use super::{esc, sentence_of, verdict_class};

/// Who serves, how often the port was looked at, what could not be read, then one row per
/// owner of each listener, the listener's own cells spanning them.
pub(super) fn listeners_section(html: &mut String, ev: &ListenerEvidence) {
    let facts = ListenersFacts::of(ev);
    let _ = writeln!(
        html,
        "<section class=\"ev-listeners\">\n<h4>Listeners on port {}</h4>\n\
         <p class=\"ev-note\">{} {}</p>",
        facts.port,
        sentence_of(&facts.serving),
        sentence_of(&facts.poll)
    );
    if let Some(hidden) = facts.owners_hidden {
        let _ = writeln!(html, "<p class=\"ev-warning\">{}</p>", sentence_of(hidden));
    }
    if let Some(nothing) = facts.nothing {
        let _ = writeln!(html, "<p>{}</p>\n</section>", sentence_of(nothing));
        return;
    }
    html.push_str(
        "<table class=\"ev-table\">\n<thead><tr><th>role</th><th>address</th><th>socket</th>\
         <th>pid</th><th>process</th><th>command line</th><th>cgroup / unit</th>\
         <th>seen from (UTC)</th><th>seen to (UTC)</th><th>gone</th></tr></thead>\n<tbody>\n",
    );
    for (l, f) in ev.listeners.iter().zip(&facts.listeners) {
        listener_rows(html, l, f);
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn listener_rows(html: &mut String, l: &Listener, f: &ListenerFacts) {
    let class = if l.serving { "ev-serving" } else { "ev-other" };
    let gone_class = if l.gone { " ev-gone" } else { "" };
    let span = l.owners.len().max(1);
    let rowspan = if span > 1 {
        format!(" rowspan=\"{span}\"")
    } else {
        String::new()
    };
    let listener_cells = [
        format!("<td{rowspan}>{}</td>", f.role),
        format!("<td{rowspan}>{}</td>", esc(&f.address)),
        format!("<td{rowspan}>{}</td>", esc(&f.socket)),
    ];
    let seen_cells = [
        format!("<td{rowspan}>{}</td>", esc(&f.first_seen)),
        format!("<td{rowspan}>{}</td>", esc(&f.last_seen)),
        format!(
            "<td{rowspan} class=\"{}\">{}</td>",
            verdict_class(f.presence_verdict),
            f.presence
        ),
    ];
    let _ = write!(
        html,
        "<tr class=\"{class}{gone_class}\">{}",
        listener_cells.concat()
    );
    if l.owners.is_empty() {
        // `owner not readable`: the socket's uid is in its cell.
        let _ = write!(
            html,
            "<td>-</td><td colspan=\"3\" class=\"ev-muted\">{}</td>",
            esc(&f.owners)
        );
    }
    // The table names every owner, where the facts' one line names the first.
    for (n, o) in l.owners.iter().enumerate() {
        if n > 0 {
            let _ = write!(html, "<tr class=\"{class}{gone_class}\">");
        }
        let cgroup = match (&o.unit, &o.cgroup) {
            (Some(unit), Some(cg)) => format!(
                "<code>{}</code> <span class=\"ev-muted\">{}</span>",
                esc(unit),
                esc(cg)
            ),
            (Some(unit), None) => format!("<code>{}</code>", esc(unit)),
            (None, Some(cg)) => format!("<code>{}</code>", esc(cg)),
            (None, None) => "-".to_owned(),
        };
        let _ = write!(
            html,
            "<td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{cgroup}</td>",
            o.pid,
            esc(&o.name),
            esc(&o.cmdline)
        );
        if n == 0 {
            html.push_str(&seen_cells.concat());
        }
        html.push_str("</tr>\n");
    }
    if l.owners.is_empty() {
        html.push_str(&seen_cells.concat());
        html.push_str("</tr>\n");
    }
}

//! The backends behind a canary's proxy: what the probe knew of each, what a direct request
//! gets now, where its identity is seen now (the facts are `causeway_api::facts`').

use std::fmt::Write;

use causeway_api::facts::{BackendFacts, Verdict, reboot_line};
use causeway_schema::{BackendEvidence, BackendState};

use super::{esc, sentence_of};
use crate::timefmt::clock_ms;

/// One row per backend: what the probe knew of it, what a direct request returns now, where
/// its identity is seen now.
pub(super) fn backends_section(html: &mut String, ev: &BackendEvidence) {
    html.push_str("<section class=\"ev-backends\">\n<h4>Backends</h4>\n");
    if let Some(r) = &ev.reboot {
        let _ = writeln!(
            html,
            "<p class=\"ev-warning\">{}</p>",
            sentence_of(&reboot_line(r))
        );
    }
    if ev.backends.is_empty() {
        html.push_str("<p>No backends configured.</p>\n</section>\n");
        return;
    }
    html.push_str(
        "<table class=\"ev-table\">\n<thead><tr><th>backend</th><th>configured at</th>\
         <th>known as</th><th>learned (UTC)</th><th>direct request now</th>\
         <th>seen elsewhere</th></tr></thead>\n<tbody>\n",
    );
    for b in &ev.backends {
        backend_row(html, b);
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn backend_row(html: &mut String, b: &BackendState) {
    let facts = BackendFacts::of(b);
    let name = b.name.as_deref().map_or("-".to_owned(), esc);
    let known = match facts.known.is_empty() {
        true => "<span class=\"ev-muted\">nothing learned yet</span>".to_owned(),
        false => facts
            .known
            .iter()
            .map(|k| format!("<div>{}</div>", esc(k)))
            .collect(),
    };
    let learned = facts
        .learned_at_ms
        .map_or("-".to_owned(), |at| esc(clock_ms(at)));
    let seen = if facts.seen_at.is_empty() {
        "<span class=\"ev-muted\">nowhere</span>".to_owned()
    } else {
        facts
            .seen_at
            .iter()
            .map(|(address, by)| {
                format!(
                    "<div class=\"ev-bad\">{} <span class=\"ev-muted\">by {}</span></div>",
                    esc(address),
                    esc(by)
                )
            })
            .collect()
    };
    let class = match facts.now_verdict {
        Verdict::Ok => " class=\"ev-ok\"",
        Verdict::Bad => " class=\"ev-bad\"",
        Verdict::Neutral => "",
    };
    let _ = writeln!(
        html,
        "<tr><td>{name}</td><td>{}</td><td>{known}</td><td>{learned}</td><td{class}>{}</td>\
         <td>{seen}</td></tr>",
        esc(b.configured),
        esc(&facts.now)
    );
}

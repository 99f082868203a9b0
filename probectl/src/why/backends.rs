//! The backend table of a failed check, for `probectl why`: per backend what the probe knew,
//! what a direct request returns now and where its identity is seen now.

use causeway_api::facts::{BackendFacts, reboot_line};
use causeway_schema::BackendEvidence;

use super::clean;

/// `backends:`, a reboot of the host, then two lines per backend.
pub(super) fn backend_lines(lines: &mut Vec<String>, ev: &BackendEvidence) {
    lines.push("backends:".to_owned());
    lines.extend(
        ev.reboot
            .as_ref()
            .map(|r| format!("  {}", clean(&reboot_line(r)))),
    );
    for b in &ev.backends {
        let facts = BackendFacts::of(b);
        let known = match facts.known.is_empty() {
            true => "nothing learned yet".to_owned(),
            false => format!("known as {}", facts.known.join("; ")),
        };
        lines.push(format!("  {}: {}", clean(&b.who()), clean(&known)));
        let seen = if facts.seen_at.is_empty() {
            "seen nowhere else".to_owned()
        } else {
            let at: Vec<String> = facts
                .seen_at
                .iter()
                .map(|(address, by)| format!("{address} (by {by})"))
                .collect();
            format!("seen at {}", at.join(", "))
        };
        lines.push(format!("    now: {}; {seen}", clean(&facts.now)));
    }
}

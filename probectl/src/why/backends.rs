//! The backend table of a failed check, for `probectl why`: per backend what the probe knew,
//! what a direct request returns now and where its identity is seen now.

use causeway_api::facts::BackendFacts;
use causeway_schema::BackendEvidence;

use super::clean;

/// `backends (the host rebooted: up 42 s):` then two lines per backend.
pub(super) fn backend_lines(lines: &mut Vec<String>, ev: &BackendEvidence) {
    let reboot = match &ev.reboot {
        Some(r) => format!(" (the host rebooted: boot id changed, up {} s)", r.uptime_s),
        None => String::new(),
    };
    lines.push(format!("backends{reboot}:"));
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

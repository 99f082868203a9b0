//! The backend table of a failed check, for `probectl why`: per backend what the probe knew,
//! what a direct request returns now and where its identity is seen now.

use causeway_schema::{AnswerPrint, BackendEvidence, BackendState, DirectOutcome};

use super::clean;

/// `backends (the host rebooted: up 42 s):` then two lines per backend.
pub(super) fn backend_lines(lines: &mut Vec<String>, ev: &BackendEvidence) {
    let reboot = match &ev.reboot {
        Some(r) => format!(" (the host rebooted: boot id changed, up {} s)", r.uptime_s),
        None => String::new(),
    };
    lines.push(format!("backends{reboot}:"));
    for b in &ev.backends {
        lines.push(format!("  {}: {}", clean(&b.who()), known_text(b)));
        let seen = if b.seen_at.is_empty() {
            "seen nowhere else".to_owned()
        } else {
            let at: Vec<String> = b
                .seen_at
                .iter()
                .map(|s| {
                    let by: Vec<&str> = s.by.iter().map(|b| b.id()).collect();
                    format!("{} (by {})", s.address, by.join(", "))
                })
                .collect();
            format!("seen at {}", at.join(", "))
        };
        lines.push(format!("    now: {}; {seen}", direct_text(b)));
    }
}

fn print_text(p: &AnswerPrint) -> String {
    format!(
        "HTTP {}, {} bytes, body {}",
        p.status, p.body_len, p.body_digest
    )
}

fn known_text(b: &BackendState) -> String {
    let Some(k) = &b.known else {
        return "nothing learned yet".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(mac) = &k.mac {
        parts.push(format!("MAC {}", clean(mac)));
    }
    if let Some(a) = &k.answer {
        parts.push(print_text(a));
    }
    if !k.name_addresses.is_empty() {
        let names: Vec<String> = k.name_addresses.iter().map(ToString::to_string).collect();
        parts.push(format!("name at {}", names.join(", ")));
    }
    format!("known as {}", parts.join("; "))
}

fn direct_text(b: &BackendState) -> String {
    let d = &b.direct;
    let detail = d
        .detail
        .as_deref()
        .map_or(String::new(), |x| format!(" ({})", clean(x)));
    match (d.outcome, &d.answer) {
        (DirectOutcome::Answered, Some(a)) => {
            let same = b.known.as_ref().is_some_and(|k| d.answers_like(k));
            let like = if same {
                ", as before"
            } else {
                ", not as before"
            };
            format!("answers {}{like}", print_text(a))
        }
        (DirectOutcome::Timeout, _) => format!("no answer in {:.0} ms{detail}", d.elapsed_ms),
        (outcome, _) => format!("{}{detail}", outcome.id()),
    }
}

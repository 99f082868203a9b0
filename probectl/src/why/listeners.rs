//! The listeners on a canary's port in a failed check's evidence, for `probectl why`: who
//! serves, how often the port was looked at, what could not be read, then a line per listener
//! (the facts are `causeway_api::facts`', as on the page).

use causeway_api::facts::ListenersFacts;
use causeway_schema::ListenerEvidence;

use super::clean;

/// `listeners on port 80 (serving: ...):`, the sentences under it, then each listener:
/// `serving 10.88.0.2:80 pid 100 (...); inode 1001, uid 0; seen 11:56:40.000 .. still there`.
pub(super) fn listener_lines(lines: &mut Vec<String>, ev: &ListenerEvidence) {
    let facts = ListenersFacts::of(ev);
    lines.push(format!(
        "listeners on port {} ({}):",
        facts.port,
        clean(&facts.serving)
    ));
    lines.push(format!("  {}", facts.poll));
    lines.extend(facts.owners_hidden.map(|h| format!("  {h}")));
    lines.extend(facts.nothing.map(|n| format!("  {n}")));
    for l in &facts.listeners {
        lines.push(format!(
            "  {:<7} {} {}; {}; seen {}",
            l.role,
            l.address,
            clean(&l.owners),
            l.socket,
            l.seen
        ));
    }
}

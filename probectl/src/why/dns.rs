//! The resolvers in `probectl why`: each resolver condition told like an incident, and what
//! each resolver said in a failed check's evidence.

use std::fmt::Write;

use causeway_schema::ResolverOutcome;

use super::{clean, render_condition};
use crate::views::ResolverConditionView;

/// `Resolver conditions (N):` and each condition; nothing when there is none.
pub(super) fn render_conditions(
    out: &mut String,
    conditions: &[ResolverConditionView],
    now_ms: i64,
) {
    if conditions.is_empty() {
        return;
    }
    let _ = writeln!(out, "Resolver conditions ({}):", conditions.len());
    for c in conditions {
        render_resolver_condition(out, c, now_ms);
    }
}

fn render_resolver_condition(out: &mut String, c: &ResolverConditionView, now_ms: i64) {
    let resolver = format!(
        "{} ({}) for {} (canary {})",
        clean(&c.resolver),
        clean(&c.address),
        clean(&c.name),
        clean(&c.canary)
    );
    render_condition(
        out,
        &c.condition,
        Some(("resolver:", resolver)),
        now_ms,
        |e| {
            let mut lines: Vec<String> = e.queries.iter().map(|q| clean(&q.to_string())).collect();
            lines.extend(reach_lines(e));
            lines
        },
    );
}

/// `ping: reply in 0.3 ms` and `tcp 53: no_reply after 1000 ms`, when reachability was
/// tested.
fn reach_lines(o: &ResolverOutcome) -> Vec<String> {
    let Some(r) = &o.reachability else {
        return Vec::new();
    };
    vec![
        clean(&format!("ping: {}", r.icmp)),
        clean(&format!("tcp {}: {}", o.server.port(), r.tcp)),
    ]
}

/// A failed check's resolvers, after `resolvers:`: each with its queries and verdict, and its
/// reachability when tested. Nothing for a check without them (a canary given by address).
pub(super) fn resolver_lines(lines: &mut Vec<String>, dns: &[ResolverOutcome]) {
    if dns.is_empty() {
        return;
    }
    lines.push("resolvers:".to_owned());
    for o in dns {
        let verdict = o.condition.as_ref().map_or("ok", |d| d.cause.id());
        let queries = if o.queries.is_empty() {
            "no queries".to_owned()
        } else {
            clean(&o.brief())
        };
        lines.push(format!(
            "  {} ({}): {queries} -> {verdict}",
            clean(&o.resolver),
            o.server
        ));
        let reach = reach_lines(o);
        if !reach.is_empty() {
            lines.push(format!("    {}", reach.join(", ")));
        }
    }
}

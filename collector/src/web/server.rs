//! A server's page (`/servers/<name>`, and the customer view): availability per day over 90
//! days, the recent checks, latency by phase, incidents with their evidence, resolver and
//! host conditions as timelines. And one check's page (`/servers/<name>/checks/<id>`).

use std::fmt::Write;

use causeway_schema::{Cause, CheckResult, Diagnosis, Failure, FailureKind};
use sqlx::AnyPool;

use super::charts::{self, Beat, Phases, Span};
use super::layout::{self, esc, server_href};
use crate::read::{self, DAY_MS, ReadError};
use crate::timefmt;
use crate::views::{Availability, Condition, IncidentView, NotificationView, ResultView, WhyView};

/// Days in the availability strip.
pub const STRIP_DAYS: i64 = 90;
/// Checks in the heartbeat and the latency chart.
pub const RECENT_CHECKS: u32 = 100;
/// Incidents and conditions are shown over this window.
pub const WINDOW_MS: i64 = 30 * DAY_MS;

/// What a server's page shows.
pub struct ServerPage {
    pub why: WhyView,
    /// Per UTC day, oldest first (days without checks absent).
    pub days: Vec<(i64, Availability)>,
    /// Newest first.
    pub results: Vec<ResultView>,
    /// The server's latest alert notifications, newest first (operators only).
    pub notifications: Vec<NotificationView>,
}

/// Notifications shown on a server's page.
pub const NOTIFICATIONS: i64 = 20;

/// Who is looking: the operator (links to the fleet and to each check) or a customer through
/// a share link (this server only, nothing else reachable from the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Operator,
    Customer,
}

pub async fn load(
    pool: &AnyPool,
    name: &str,
    now_ms: i64,
    known: &crate::maintenance::Known,
) -> Result<ServerPage, ReadError> {
    let why = read::why(pool, name, (now_ms - WINDOW_MS, now_ms), known).await?;
    let id = read::server_id(pool, name).await?;
    let days = read::days(pool, id, STRIP_DAYS, now_ms).await?;
    let results = read::results(pool, name, 0, RECENT_CHECKS).await?;
    let notifications = crate::alerts::recent(pool, Some(name), NOTIFICATIONS).await?;
    Ok(ServerPage {
        why,
        days,
        results,
        notifications,
    })
}

pub fn render(page: &ServerPage, audience: Audience) -> String {
    let why = &page.why;
    let server = &why.server;
    let now_ms = why.now_ms;
    let name = esc(&server.name);
    let state = server.state.as_str();
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>{name} <span class=\"state {state}\">{state}</span></h1>"
    );
    let days_total = page
        .days
        .iter()
        .fold((0, 0), |t, (_, a)| (t.0 + a.ok, t.1 + a.total));
    body.push_str("<div class=\"card figures\">");
    for window in ["24h", "7d", "30d"] {
        let a = server
            .availability
            .get(window)
            .map_or("-".to_owned(), |a| a.percent());
        let _ = write!(body, "<div>{window}<b>{a}</b></div>");
    }
    let _ = write!(
        body,
        "<div>90d<b>{}</b></div>",
        Availability::new(days_total.0, days_total.1).percent()
    );
    if let Some(outside) = &why.availability_outside_maintenance {
        let _ = write!(
            body,
            "<div>30d outside maintenance<b>{}</b></div>",
            outside.percent()
        );
    }
    let seen = server
        .last_seen_ms
        .map_or("never".to_owned(), |ms| timefmt::ago(ms, now_ms));
    let _ = write!(body, "<div>last report<b>{seen}</b></div>");
    if let Some(i) = &server.open_incident {
        let _ = write!(
            body,
            "<div>now<b>{}</b><small>since {}</small></div>",
            esc(&i.cause),
            timefmt::rfc3339(i.started_at_ms)
        );
    }
    body.push_str("</div>\n");

    let today = now_ms - now_ms.rem_euclid(DAY_MS);
    let _ = writeln!(
        body,
        "<h2>Availability per day, last {STRIP_DAYS} days</h2>{}",
        charts::day_strip(&page.days, today, STRIP_DAYS)
    );

    let oldest_first: Vec<&ResultView> = page.results.iter().rev().collect();
    let beats: Vec<Beat<'_>> = oldest_first
        .iter()
        .map(|r| Beat {
            at_ms: r.started_at_ms,
            ok: r.ok,
            cause: r.cause.as_deref(),
            total_ms: r.timings.total_ms,
            canary: &r.canary,
            href: (audience == Audience::Operator)
                .then(|| format!("{}/checks/{}", server_href(&server.name), r.id)),
        })
        .collect();
    let _ = writeln!(
        body,
        "<h2>Recent checks</h2>{}{}",
        charts::heartbeat(&beats),
        layout::legend()
    );
    let phases: Vec<Phases> = oldest_first
        .iter()
        .map(|r| Phases {
            at_ms: r.started_at_ms,
            resolve: r.timings.resolve_ms.unwrap_or(0.0),
            connect: r.timings.connect_ms.unwrap_or(0.0),
            tls: r.timings.tls_ms.unwrap_or(0.0),
            first_byte: r.timings.first_byte_ms.unwrap_or(0.0),
            total: r.timings.total_ms,
            ok: r.ok,
        })
        .collect();
    let _ = writeln!(
        body,
        "<h2>Latency by phase</h2>{}{}",
        charts::latency(&phases),
        charts::LATENCY_LEGEND
    );

    let _ = writeln!(
        body,
        "<h2>Incidents, last 30 days ({})</h2>",
        why.incidents.len()
    );
    if why.incidents.is_empty() {
        body.push_str("<p class=\"muted\">None.</p>\n");
    }
    for incident in &why.incidents {
        incident_html(&mut body, incident, why);
    }
    maintenance_html(&mut body, why);
    conditions_html(&mut body, why);
    certificates_html(&mut body, why);
    if audience == Audience::Operator && !page.notifications.is_empty() {
        notifications_html(&mut body, &page.notifications, now_ms);
    }
    let header = format!(
        "<span>{name}</span><span class=\"muted\">as of {}</span>",
        timefmt::rfc3339(now_ms)
    );
    let title = format!("{} - Causeway", server.name);
    layout::page_for(&title, &header, &body, audience == Audience::Operator)
}

/// The alerts sent about this server and how their delivery went (`probectl alerts
/// --server` has the same).
fn notifications_html(body: &mut String, list: &[NotificationView], now_ms: i64) {
    let _ = writeln!(
        body,
        "<h2>Notifications, latest {}</h2>\n<table class=\"ev-table\">\n<thead><tr><th>raised</th>\
         <th>message</th><th>channel</th><th>state</th><th>attempts</th><th>last error</th>\
         </tr></thead><tbody>",
        list.len()
    );
    for n in list {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            timefmt::short_time(n.created_at_ms, now_ms),
            esc(&n.title),
            esc(&n.channel),
            esc(&n.state(now_ms)),
            n.attempts,
            esc(n.last_error.as_deref().unwrap_or(""))
        );
    }
    body.push_str("</tbody></table>\n");
}

/// The server's maintenance windows over the page's 30 days, and their checks: failures in
/// them were expected.
fn maintenance_html(body: &mut String, why: &WhyView) {
    if why.maintenance.is_empty() {
        return;
    }
    let _ = writeln!(
        body,
        "<h2>Maintenance, last 30 days ({})</h2>\n<table class=\"ev-table\">\n<thead><tr>\
         <th>window</th><th>from</th><th>until</th><th>checks</th></tr></thead><tbody>",
        why.maintenance.len()
    );
    for m in &why.maintenance {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.label()),
            timefmt::rfc3339(m.started_at_ms),
            timefmt::rfc3339(m.ended_at_ms),
            m.checks_phrase()
        );
    }
    body.push_str("</tbody></table>\n");
}

fn incident_html(body: &mut String, i: &IncidentView, why: &WhyView) {
    let now_ms = why.now_ms;
    let (class, until) = match i.ended_at_ms {
        None => ("open", "now".to_owned()),
        Some(end) => ("closed", timefmt::rfc3339(end)),
    };
    let span = i.ended_at_ms.unwrap_or(now_ms) - i.started_at_ms;
    let _ = write!(
        body,
        "<article class=\"card incident {class}\"><h3>{} <small>{}</small></h3>\
         <p>{} .. {until} ({}), {} failed check{}{}</p><p>{}</p>",
        esc(&i.cause),
        esc(&i.summary),
        timefmt::rfc3339(i.started_at_ms),
        timefmt::compact_duration(span),
        i.failed_checks,
        if i.failed_checks == 1 { "" } else { "s" },
        match (class, i.intermittent()) {
            ("open", None) => ", <b>open</b>".to_owned(),
            ("open", Some(line)) => format!(", <b>open</b>, <b>intermittent</b>: {}", esc(&line)),
            (_, None) => String::new(),
            (_, Some(line)) => format!(", <b>intermittent</b>: {}", esc(&line)),
        },
        esc(&i.explanation)
    );
    for m in why.maintenance_during(i) {
        let _ = write!(
            body,
            "<p class=\"muted\"><b>during maintenance</b>: {}</p>",
            esc(&m.label())
        );
    }
    if let Some(last) = i.samples.last() {
        let _ = write!(
            body,
            "<details open><summary>Evidence of the last failed check, {}</summary>{}</details>",
            timefmt::rfc3339(last.started_at_ms),
            super::evidence::evidence_html(&as_check(last))
        );
    }
    body.push_str("</article>\n");
}

fn conditions_html(body: &mut String, why: &WhyView) {
    let (since, now) = (why.since_ms, why.now_ms);
    let _ = writeln!(
        body,
        "<h2>Resolver conditions, last 30 days ({})</h2>",
        why.resolver_conditions.len()
    );
    if why.resolver_conditions.is_empty() {
        body.push_str("<p class=\"muted\">None: every resolver answered.</p>\n");
    } else {
        let rows: Vec<String> = why
            .resolver_conditions
            .iter()
            .map(|c| format!("{} ({})", c.resolver, c.canary))
            .collect();
        let spans: Vec<Span<'_>> = why
            .resolver_conditions
            .iter()
            .zip(&rows)
            .map(|(c, row)| span(&c.condition, row))
            .collect();
        body.push_str(&charts::timeline(&spans, since, now));
        body.push_str("<ul>");
        for c in &why.resolver_conditions {
            let _ = write!(
                body,
                "<li><b>{}</b> {} for {}: {}{}</li>",
                esc(&c.condition.cause),
                esc(&c.resolver),
                esc(&c.name),
                esc(c.condition.latest_explanation()),
                if c.condition.open {
                    " <b>(open)</b>"
                } else {
                    ""
                }
            );
        }
        body.push_str("</ul>\n");
    }
    let _ = writeln!(
        body,
        "<h2>Host conditions, last 30 days ({})</h2>",
        why.host_conditions.len()
    );
    if why.host_conditions.is_empty() {
        body.push_str("<p class=\"muted\">None.</p>\n");
        return;
    }
    let spans: Vec<Span<'_>> = why
        .host_conditions
        .iter()
        .map(|c| span(c, &c.cause))
        .collect();
    body.push_str(&charts::timeline(&spans, since, now));
    body.push_str("<ul>");
    for c in &why.host_conditions {
        let _ = write!(
            body,
            "<li><b>{}</b> {} .. {}: {}</li>",
            esc(&c.cause),
            timefmt::rfc3339(c.started_at_ms),
            c.ended_at_ms.map_or("now".to_owned(), timefmt::rfc3339),
            esc(c.latest_explanation())
        );
    }
    body.push_str("</ul>\n");
}

/// The certificates the https canaries served, each canary's changes marked.
fn certificates_html(body: &mut String, why: &WhyView) {
    if why.certificates.is_empty() {
        return;
    }
    let _ = writeln!(
        body,
        "<h2>Certificates, last 30 days ({})</h2>\n<ul class=\"certificates\">",
        why.certificates.len()
    );
    for c in &why.certificates {
        let facts = causeway_api::facts::served_certificate(c, why.now_ms);
        let _ = writeln!(body, "<li>{}</li>", super::evidence::parts_html(&facts));
    }
    body.push_str("</ul>\n");
}

/// A condition on a timeline's `row`, with its latest explanation.
fn span<'a, E>(c: &'a Condition<E>, row: &'a str) -> Span<'a> {
    Span {
        row,
        cause: &c.cause,
        start_ms: c.started_at_ms,
        end_ms: c.ended_at_ms,
        text: c.latest_explanation(),
    }
}

/// One check's page.
pub fn render_check(server: &str, r: &ResultView, now_ms: i64) -> String {
    let mut body = String::new();
    let outcome = if r.ok {
        "ok".to_owned()
    } else {
        r.cause.clone().unwrap_or_else(|| "failed".into())
    };
    let _ = write!(
        body,
        "<p><a href=\"{}\">&larr; {}</a></p><h1>Check of {} at {}</h1>\
         <div class=\"card\"><p><b>{}</b> {}</p><p>{} {}</p>",
        server_href(server),
        esc(server),
        esc(&r.canary),
        timefmt::rfc3339(r.started_at_ms),
        esc(&outcome),
        esc(r.explanation.as_deref().unwrap_or("")),
        esc(&r.url),
        r.address.as_deref().map(esc).unwrap_or_default()
    );
    if !r.contributing.is_empty() {
        let _ = write!(
            body,
            "<p>contributing: {}</p>",
            esc(&r.contributing.join(", "))
        );
    }
    let t = &r.timings;
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
    let _ = write!(
        body,
        "<p>resolve {}, connect {}, TLS {}, first byte {}, total {:.1} ms</p></div>",
        ms(t.resolve_ms),
        ms(t.connect_ms),
        ms(t.tls_ms),
        ms(t.first_byte_ms),
        t.total_ms
    );
    if !r.ok {
        body.push_str(&super::evidence::evidence_html(&as_check(r)));
    }
    let header = format!(
        "<span class=\"muted\">as of {}</span>",
        timefmt::rfc3339(now_ms)
    );
    layout::page(&format!("{server}: check {}", r.id), &header, &body)
}

/// A stored result as the schema's check, for the evidence renderer. Ids this collector does
/// not know (from a newer probe) read as `unknown`.
fn as_check(r: &ResultView) -> CheckResult {
    let failure = r.failure.as_ref().map(|f| Failure {
        kind: FailureKind::ALL
            .into_iter()
            .find(|k| k.id() == f.kind)
            .unwrap_or(FailureKind::Protocol),
        message: f.message.clone(),
    });
    let cause = |id: &str| id.parse::<Cause>().unwrap_or(Cause::Unknown);
    CheckResult {
        canary: r.canary.clone(),
        url: r.url.clone(),
        address: r.address.as_deref().and_then(|a| a.parse().ok()),
        started_at_ms: r.started_at_ms,
        ok: r.ok,
        status: r.status,
        timings: r.timings.clone(),
        failure,
        diagnosis: r.cause.as_deref().map(|c| Diagnosis {
            cause: cause(c),
            contributing: r.contributing.iter().map(|c| cause(c)).collect(),
            explanation: r.explanation.clone().unwrap_or_default(),
        }),
        evidence: r.evidence.clone().unwrap_or_default(),
    }
}

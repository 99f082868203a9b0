//! The fleet overview (`/`): the fleet's availability on top, then every server with its
//! availability over 24 h, 7 d and 30 d, state, last failure and a heartbeat bar.

use std::fmt::Write;

use serde::Deserialize;

use super::charts::{self, Beat};
use super::layout::{self, esc, server_href};
use crate::ingest::rollups::RECENT_MAX;
use crate::read::{FLEET_WINDOWS, Fleet, FleetServer};
use crate::timefmt;
use crate::views::ServerState;

/// `?q=web&sort=24h&dir=asc`: what the overview shows without JavaScript.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OverviewQuery {
    /// Only servers whose name contains this (case-insensitive).
    #[serde(default)]
    pub q: String,
    /// `name` (default), `state`, `24h`, `7d`, `30d` or `failure`.
    #[serde(default)]
    pub sort: String,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub dir: String,
}

pub fn render(fleet: &Fleet, query: &OverviewQuery, now_ms: i64) -> String {
    let mut servers: Vec<&FleetServer> = fleet
        .servers
        .iter()
        .filter(|s| query.q.is_empty() || s.name.to_lowercase().contains(&query.q.to_lowercase()))
        .collect();
    sort(&mut servers, &query.sort);
    if query.dir == "desc" {
        servers.reverse();
    }
    let counts = |state| fleet.servers.iter().filter(|s| s.state == state).count();
    let mut header = String::from("<span class=\"fleet\">Fleet availability:");
    for ((window, _), a) in FLEET_WINDOWS.iter().zip(&fleet.total) {
        let _ = write!(header, " {window} <b>{}</b>", a.percent());
    }
    let _ = write!(
        header,
        "</span><span>{} servers: {} up, {} down, {} stale</span>",
        fleet.servers.len(),
        counts(ServerState::Up),
        counts(ServerState::Down),
        counts(ServerState::Stale) + counts(ServerState::Unknown),
    );

    let mut body = String::new();
    body.push_str("<h1>Servers</h1>\n");
    let _ = writeln!(
        body,
        "<form class=\"filter\" method=\"get\" action=\"/\"><input id=\"q\" type=\"search\" \
         name=\"q\" value=\"{}\" placeholder=\"filter by name\" aria-label=\"filter servers\">\
         <input type=\"hidden\" name=\"sort\" value=\"{}\"><button>Filter</button></form>",
        esc(&query.q),
        esc(&query.sort)
    );
    if fleet.servers.is_empty() {
        body.push_str(
            "<p>No servers yet: create one with <code>causeway-collector token add \
             &lt;server&gt;</code> and point a probe at this collector.</p>\n",
        );
        return layout::page("Causeway", &header, &body);
    }
    body.push_str("<table id=\"fleet\">\n<thead><tr>");
    let columns = [
        ("name", "server", ""),
        ("state", "state", ""),
        ("24h", "24h", "num"),
        ("7d", "7d", "num"),
        ("30d", "30d", "num"),
        ("failure", "last failure", ""),
    ];
    for (key, label, class) in columns {
        let dir = if query.sort == key && query.dir != "desc" {
            "desc"
        } else {
            "asc"
        };
        let _ = write!(
            body,
            "<th class=\"{class}\" data-key=\"{}\"><a href=\"/?q={}&amp;sort={key}&amp;dir={dir}\">{label}</a></th>",
            data_key(key),
            esc(&query.q)
        );
    }
    body.push_str("<th>recent checks</th></tr></thead>\n<tbody>\n");
    for s in servers {
        row(&mut body, s, now_ms);
    }
    body.push_str("</tbody></table>\n");
    body.push_str(layout::legend());
    layout::page("Causeway: servers", &header, &body)
}

/// The `data-*` attribute name of a column (dataset keys cannot start with a digit).
fn data_key(key: &str) -> &str {
    match key {
        "24h" => "a24h",
        "7d" => "a7d",
        "30d" => "a30d",
        other => other,
    }
}

fn row(body: &mut String, s: &FleetServer, now_ms: i64) {
    let state = s.state.as_str();
    let ratio = |i: usize| {
        s.availability[i]
            .ratio
            .map_or("-1".to_owned(), |r| format!("{r:.6}"))
    };
    let (failure_text, failure_key) = match (&s.open_cause, &s.last_failure) {
        (Some(cause), _) => (
            format!("<b>{}</b> <small>(open)</small>", esc(cause)),
            format!("{}", i64::MAX),
        ),
        (None, Some((cause, at))) => (
            format!(
                "{} <small>{}</small>",
                esc(cause),
                timefmt::ago(*at, now_ms)
            ),
            at.to_string(),
        ),
        (None, None) => (
            "<span class=\"muted\">none</span>".to_owned(),
            "0".to_owned(),
        ),
    };
    let _ = write!(
        body,
        "<tr data-name=\"{name}\" data-state=\"{state}\" data-a24h=\"{}\" data-a7d=\"{}\" \
         data-a30d=\"{}\" data-failure=\"{failure_key}\"><td><a href=\"{href}\">{name}</a></td>\
         <td><span class=\"state {state}\">{state}</span></td>",
        ratio(0),
        ratio(1),
        ratio(2),
        name = esc(&s.name),
        href = server_href(&s.name),
    );
    for a in &s.availability {
        let _ = write!(body, "<td class=\"num\">{}</td>", a.percent());
    }
    let from = s.recent.len().saturating_sub(RECENT_MAX);
    let beats: Vec<Beat<'_>> = s.recent[from..]
        .iter()
        .map(|c| Beat {
            at_ms: c.t,
            ok: c.ok,
            cause: c.c.as_deref(),
            total_ms: f64::from(c.ms),
            canary: &c.n,
            href: None,
        })
        .collect();
    let seen = s.last_seen_ms.map_or("never".to_owned(), |ms| {
        format!("last report {}", timefmt::ago(ms, now_ms))
    });
    let _ = writeln!(
        body,
        "<td>{failure_text}</td><td><a href=\"{}\" title=\"{seen}\">{}</a></td></tr>",
        server_href(&s.name),
        charts::heartbeat_runs(&beats)
    );
}

/// Orders servers by the column `key` (ascending; unknown keys sort by name).
fn sort(servers: &mut [&FleetServer], key: &str) {
    let ratio = |s: &FleetServer, i: usize| s.availability[i].ratio.unwrap_or(-1.0);
    match key {
        "state" => servers.sort_by(|a, b| {
            a.state
                .as_str()
                .cmp(b.state.as_str())
                .then(a.name.cmp(&b.name))
        }),
        "24h" | "7d" | "30d" => {
            let i = FLEET_WINDOWS
                .iter()
                .position(|(w, _)| *w == key)
                .unwrap_or(0);
            servers.sort_by(|a, b| {
                ratio(a, i)
                    .total_cmp(&ratio(b, i))
                    .then(a.name.cmp(&b.name))
            });
        }
        "failure" => servers.sort_by_key(|s| {
            (
                s.open_cause.is_none(),
                std::cmp::Reverse(s.last_failure.as_ref().map_or(0, |f| f.1)),
            )
        }),
        _ => servers.sort_by(|a, b| a.name.cmp(&b.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::rollups::RecentCheck;
    use crate::views::Availability;

    fn server(name: &str, state: ServerState, a24: (u64, u64)) -> FleetServer {
        FleetServer {
            name: name.into(),
            state,
            last_seen_ms: Some(1000),
            last_report_ms: Some(990),
            availability: [
                Availability::new(a24.0, a24.1),
                Availability::new(a24.0, a24.1),
                Availability::new(a24.0, a24.1),
            ],
            last_failure: None,
            open_cause: None,
            recent: vec![RecentCheck {
                t: 900,
                ok: true,
                c: None,
                ms: 3,
                n: "site".into(),
            }],
        }
    }

    fn fleet() -> Fleet {
        let mut down = server("db-01", ServerState::Down, (90, 100));
        down.open_cause = Some("connection_refused".into());
        down.last_failure = Some(("connection_refused".into(), 500));
        Fleet {
            servers: vec![down, server("web-01", ServerState::Up, (100, 100))],
            total: [Availability::new(190, 200); 3],
        }
    }

    #[test]
    fn the_overview_lists_every_server_with_its_figures() {
        let html = render(&fleet(), &OverviewQuery::default(), 2000);
        assert!(
            html.contains("Fleet availability: 24h <b>95.00%</b>"),
            "{html}"
        );
        assert!(html.contains("2 servers: 1 up, 1 down, 0 stale"), "{html}");
        let db = html.find("<a href=\"/servers/db-01\">db-01</a>").unwrap();
        let web = html.find("<a href=\"/servers/web-01\">web-01</a>").unwrap();
        assert!(db < web, "by name");
        assert!(
            html.contains("<b>connection_refused</b> <small>(open)</small>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"num\">90.00%</td>"), "{html}");
    }

    #[test]
    fn filter_and_sort_work_without_script() {
        let q = OverviewQuery {
            q: "WEB".into(),
            ..OverviewQuery::default()
        };
        let html = render(&fleet(), &q, 2000);
        assert!(
            html.contains(">web-01</a>") && !html.contains(">db-01</a>"),
            "{html}"
        );
        let q = OverviewQuery {
            sort: "24h".into(),
            dir: "desc".into(),
            ..OverviewQuery::default()
        };
        let html = render(&fleet(), &q, 2000);
        let db = html.find(">db-01</a>").unwrap();
        let web = html.find(">web-01</a>").unwrap();
        assert!(web < db, "the best 24h first");
    }

    #[test]
    fn a_query_cannot_inject_markup() {
        let q = OverviewQuery {
            q: "\"><script>alert(1)</script>".into(),
            ..OverviewQuery::default()
        };
        let html = render(&fleet(), &q, 2000);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
    }
}

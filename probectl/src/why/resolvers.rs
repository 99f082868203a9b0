//! `probectl resolvers`: one aligned line per resolver of each server, with its health over
//! the window, what it says now and since when its open condition lasts.

use std::net::{IpAddr, SocketAddr};

use super::{NO_SERVERS, clean};
use crate::table;
use crate::timefmt::{compact_duration, short_time};
use crate::views::{Availability, ResolverHealth, ResolverOverview};

const HEADER: [&str; 7] = [
    "SERVER",
    "CANARY",
    "RESOLVER",
    "HEALTHY",
    "NOW",
    "SINCE",
    "LAST OUTCOME",
];

/// The table; a server without resolvers in the window gets a line of `-`, so that every
/// server asked about shows.
pub fn render_resolvers(view: &ResolverOverview) -> String {
    if view.servers.is_empty() {
        return NO_SERVERS.to_owned();
    }
    let mut rows = Vec::new();
    for s in &view.servers {
        if s.resolvers.is_empty() {
            let mut row = HEADER.map(|_| "-".to_owned());
            row[0] = clean(&s.server);
            rows.push(row);
        }
        for r in &s.resolvers {
            rows.push(row(&s.server, r, view.now_ms));
        }
    }
    // HEALTHY is a number: right-aligned.
    table::render(HEADER, &rows, &[3])
}

fn row(server: &str, r: &ResolverHealth, now_ms: i64) -> [String; 7] {
    let healthy = if r.observations == 0 {
        "-".to_owned()
    } else {
        let share = Availability::new(r.healthy, r.observations).percent();
        format!("{share} ({}/{})", r.healthy, r.observations)
    };
    let now = r.last.as_ref().map_or("-".to_owned(), |l| {
        l.cause.as_deref().map_or("ok".to_owned(), clean)
    });
    let since = r.open_condition.as_ref().map_or("-".to_owned(), |c| {
        let c = &c.condition;
        format!(
            "{} ({})",
            short_time(c.started_at_ms, now_ms),
            compact_duration(now_ms - c.started_at_ms)
        )
    });
    let outcome = r
        .last
        .as_ref()
        .filter(|l| !l.outcome.is_empty())
        .map_or("-".to_owned(), |l| clean(&l.outcome));
    [
        clean(server),
        clean(&r.canary),
        resolver_label(&r.resolver, &r.address),
        healthy,
        now,
        since,
        outcome,
    ]
}

/// `10.0.0.53` when the label says which server was asked (its port 53 implied), else
/// `system (10.0.0.53:53)`: the table's narrowest unambiguous name.
fn resolver_label(resolver: &str, address: &str) -> String {
    let asked: Option<SocketAddr> = address.parse().ok();
    let same = match (asked, resolver.parse::<IpAddr>()) {
        (Some(a), Ok(ip)) => a.ip() == ip && a.port() == 53,
        (Some(a), Err(_)) => resolver.parse::<SocketAddr>().is_ok_and(|s| s == a),
        (None, _) => resolver == address,
    };
    if same {
        clean(resolver)
    } else {
        format!("{} ({})", clean(resolver), clean(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::ResolverList;

    /// Recorded from the API for the story in tests/common (`dns_story`), db-01 without reports.
    const RESOLVERS: &str = include_str!("../../../collector/tests/fixtures/resolvers.json");

    #[test]
    fn resolvers_table_is_exact() {
        let view: ResolverOverview = serde_json::from_str(RESOLVERS).unwrap();
        let text = render_resolvers(&view);
        let expected = "\
SERVER  CANARY  RESOLVER         HEALTHY  NOW                 SINCE             LAST OUTCOME
db-01   -       -                      -  -                   -                 -
web-01  site    10.0.0.53  100.00% (6/6)  ok                  -                 A answer 10.77.0.2 ttl 30, AAAA no_data
web-01  site    10.0.0.54   33.33% (2/6)  dns_upstream_block  11:56:00 (8m30s)  A refused, AAAA refused
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn one_server_an_old_condition_and_no_observations() {
        let view: ResolverOverview = serde_json::from_str(RESOLVERS).unwrap();
        let web = view.servers[1].clone();
        let mut b = web.resolvers[1].clone();
        b.resolver = "system".into();
        b.observations = 0;
        b.healthy = 0;
        b.last = None;
        let list = ResolverList {
            server: web.server,
            since_ms: view.since_ms,
            // Two days after the condition started: its date shows.
            now_ms: b.open_condition.as_ref().unwrap().condition.started_at_ms + 2 * 86_400_000,
            resolvers: vec![b],
            conditions: vec![],
        };
        let text = render_resolvers(&list.into());
        let expected = "\
SERVER  CANARY  RESOLVER               HEALTHY  NOW  SINCE                      LAST OUTCOME
web-01  site    system (10.0.0.54:53)        -  -    2026-11-23T11:56:00Z (2d)  -
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn no_servers_says_how_to_make_one() {
        let view = ResolverOverview {
            since_ms: 0,
            now_ms: 0,
            servers: vec![],
        };
        assert!(render_resolvers(&view).starts_with("No servers yet"));
    }

    #[test]
    fn labels_say_the_address_only_when_the_label_does_not() {
        assert_eq!(resolver_label("10.0.0.53", "10.0.0.53:53"), "10.0.0.53");
        assert_eq!(resolver_label("fd00::54", "[fd00::54]:53"), "fd00::54");
        assert_eq!(
            resolver_label("10.0.0.54:5353", "10.0.0.54:5353"),
            "10.0.0.54:5353"
        );
        assert_eq!(
            resolver_label("system", "10.0.0.53:53"),
            "system (10.0.0.53:53)"
        );
    }
}

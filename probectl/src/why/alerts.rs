//! `probectl alerts`: the recent notifications and how their delivery went.

use super::clean;
use crate::table;
use crate::timefmt::{ago, short_time};
use crate::views::NotificationList;

/// One line per notification, newest first; a failed or retried one ends with its last error.
pub fn render_alerts(list: &NotificationList) -> String {
    if list.notifications.is_empty() {
        return "no notifications yet (docs/alerts.md says how to set up channels and rules)\n"
            .to_owned();
    }
    let rows: Vec<[String; 6]> = list
        .notifications
        .iter()
        .map(|n| {
            [
                short_time(n.created_at_ms, list.now_ms),
                clean(&n.title),
                n.channel.clone(),
                n.state(list.now_ms),
                n.attempts.to_string(),
                n.last_error.as_deref().map(clean).unwrap_or_default(),
            ]
        })
        .collect();
    table::render(
        [
            "RAISED",
            "MESSAGE",
            "CHANNEL",
            "STATE",
            "ATTEMPTS",
            "LAST ERROR",
        ],
        &rows,
        &[4],
    )
}

/// `probectl silence list`: one line per silence, in force first.
pub fn render_silences(list: &crate::silences::SilenceList) -> String {
    if list.silences.is_empty() {
        return "no silences in force or ended in the last day\n".to_owned();
    }
    let rows: Vec<[String; 6]> = list
        .silences
        .iter()
        .map(|s| {
            let state = match s.removed_at_ms {
                Some(at) => format!("removed {}", ago(at, list.now_ms)),
                None if s.ends_at_ms > list.now_ms => {
                    format!("until {}", short_time(s.ends_at_ms, list.now_ms))
                }
                None => format!("ended {}", ago(s.ends_at_ms, list.now_ms)),
            };
            [
                s.id.to_string(),
                clean(&s.servers),
                state,
                clean(&s.created_by),
                short_time(s.created_at_ms, list.now_ms),
                clean(&s.reason),
            ]
        })
        .collect();
    table::render(
        ["ID", "SERVERS", "STATE", "BY", "MADE", "REASON"],
        &rows,
        &[0],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::NotificationView;

    #[test]
    fn delivered_pending_and_failed() {
        let now = 1_796_634_000_000;
        let n = |id, status: &str, delivered: Option<i64>, error: Option<&str>| NotificationView {
            id,
            event: "down".into(),
            server: "web-01".into(),
            channel: "ops".into(),
            status: status.into(),
            attempts: 2,
            created_at_ms: now - 60_000,
            delivered_at_ms: delivered,
            last_error: error.map(str::to_owned),
            title: "[DOWN] web-01: connection_refused".into(),
        };
        let list = NotificationList {
            now_ms: now,
            notifications: vec![
                n(
                    2,
                    "pending",
                    None,
                    Some("webhook http://h/x answered 500 Internal Server Error: boom"),
                ),
                n(1, "delivered", Some(now - 50_000), None),
            ],
        };
        assert_eq!(
            render_alerts(&list),
            "RAISED    MESSAGE                            CHANNEL  STATE              ATTEMPTS  LAST ERROR\n\
             08:59:00  [DOWN] web-01: connection_refused  ops      pending                   2  webhook http://h/x answered 500 Internal Server Error: boom\n\
             08:59:00  [DOWN] web-01: connection_refused  ops      delivered 50s ago         2\n"
        );
    }
}

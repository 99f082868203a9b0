//! Maintenance as history: the silences and weekly windows that covered a server over a span,
//! with the checks made during them, so that `why` and the page mark the failures that were
//! expected and show availability with and without them.

use sqlx::{AnyPool, Row};

use crate::alerts::config::{Maintenance, glob_match};
use crate::silences::{self, Silence};
use crate::views::{Availability, MaintenanceView};

/// What the read side knows of maintenance beyond the database: the config's weekly windows,
/// and since when healthy checks are kept (`--retain-raw`): before that, a window's checks can
/// no longer be counted, so availability is not shown without it.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub weekly: Vec<Maintenance>,
    pub raw_since_ms: i64,
}

/// The windows of `server` overlapping `since_ms .. now_ms`, cut to it, oldest first, their
/// checks not yet counted.
pub fn windows(
    server: &str,
    since_ms: i64,
    now_ms: i64,
    silences: &[Silence],
    weekly: &[Maintenance],
) -> Vec<MaintenanceView> {
    let view =
        |what: String, reason: &str, by: Option<&str>, (start, end): (i64, i64)| MaintenanceView {
            what,
            reason: reason.to_owned(),
            created_by: by.map(str::to_owned),
            started_at_ms: start,
            ended_at_ms: end,
            checks: None,
            failed: 0,
        };
    let mut out: Vec<MaintenanceView> = silences
        .iter()
        .filter(|s| glob_match(&s.servers, server))
        .map(|s| {
            (
                s,
                s.starts_at_ms.max(since_ms),
                s.effective_end_ms().min(now_ms),
            )
        })
        .filter(|(_, start, end)| start < end)
        .map(|(s, start, end)| {
            view(
                format!("silence {}", s.id),
                &s.reason,
                Some(&s.created_by),
                (start, end),
            )
        })
        .collect();
    for m in weekly
        .iter()
        .filter(|m| m.servers.iter().any(|g| glob_match(g, server)))
    {
        for span in m.occurrences(since_ms, now_ms) {
            out.push(view("weekly".to_owned(), &m.reason, None, span));
        }
    }
    out.sort_by_key(|m| (m.started_at_ms, m.ended_at_ms));
    out
}

/// The time the windows cover, overlaps merged: what is taken out of availability once.
fn merged(windows: &[MaintenanceView]) -> Vec<(i64, i64)> {
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for m in windows {
        match spans.last_mut() {
            Some(last) if m.started_at_ms <= last.1 => last.1 = last.1.max(m.ended_at_ms),
            _ => spans.push((m.started_at_ms, m.ended_at_ms)),
        }
    }
    spans
}

/// The server's checks from `start_ms` to `end_ms`, and how many failed.
async fn checks_in(
    pool: &AnyPool,
    server_id: i64,
    (start_ms, end_ms): (i64, i64),
) -> Result<(u64, u64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*), count(*) FILTER (WHERE ok = 0) FROM results
         WHERE server_id = $1 AND started_at_ms >= $2 AND started_at_ms < $3",
    )
    .bind(server_id)
    .bind(start_ms)
    .bind(end_ms)
    .fetch_one(pool)
    .await?;
    let (all, failed): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok((all.max(0) as u64, failed.max(0) as u64))
}

/// The maintenance of server `server_id` (`name`, made at `created_at_ms`) over
/// `since_ms .. now_ms` with its checks, and `availability` (over the same span) without them.
pub async fn of_server(
    pool: &AnyPool,
    (server_id, name, created_at_ms): (i64, &str, i64),
    (since_ms, now_ms): (i64, i64),
    known: &Known,
    availability: Availability,
) -> Result<(Vec<MaintenanceView>, Option<Availability>), sqlx::Error> {
    // Before the server was made it had no checks: no window of its own then.
    let since_ms = since_ms.max(created_at_ms);
    let silences = silences::overlapping(pool, since_ms, now_ms).await?;
    let mut found = windows(name, since_ms, now_ms, &silences, &known.weekly);
    for m in &mut found {
        let (all, failed) = checks_in(pool, server_id, (m.started_at_ms, m.ended_at_ms)).await?;
        // Failed checks are kept longer than healthy ones: before `raw_since_ms`, only those.
        m.checks = (m.started_at_ms >= known.raw_since_ms).then_some(all);
        m.failed = failed;
    }
    let spans = merged(&found);
    if spans.is_empty() || spans[0].0 < known.raw_since_ms {
        return Ok((found, None));
    }
    let (mut all, mut failed) = (0, 0);
    if spans.len() == found.len() {
        // No overlaps: the windows' own counts.
        all = found.iter().filter_map(|m| m.checks).sum();
        failed = found.iter().map(|m| m.failed).sum();
    } else {
        for span in spans {
            let (a, f) = checks_in(pool, server_id, span).await?;
            (all, failed) = (all + a, failed + f);
        }
    }
    let ok = all - failed;
    let outside = Availability::new(
        availability.ok.saturating_sub(ok),
        availability.total.saturating_sub(all),
    );
    Ok((found, Some(outside)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::CollectorConfig;

    const H: i64 = 3_600_000;
    // 2026-12-07T00:00:00Z, a Monday.
    const MON: i64 = 1_796_601_600_000;

    fn silence(id: i64, servers: &str, start: i64, end: i64, removed: Option<i64>) -> Silence {
        Silence {
            id,
            servers: servers.into(),
            reason: format!("work {id}"),
            created_by: "ops".into(),
            created_at_ms: start,
            starts_at_ms: start,
            ends_at_ms: end,
            removed_at_ms: removed,
        }
    }

    #[test]
    fn a_servers_windows_are_its_silences_and_weekly_windows_cut_to_the_span() {
        let weekly = CollectorConfig::parse(
            "[[maintenance]]\nservers = [\"web-*\"]\nweekly = \"mon 02:00-03:00\"\nreason = \"updates\"\n",
        )
        .unwrap()
        .maintenance;
        let silences = [
            // Removed an hour into its two.
            silence(1, "web-*", MON + 5 * H, MON + 7 * H, Some(MON + 6 * H)),
            silence(2, "db-01", MON + 5 * H, MON + 7 * H, None),
            // Still in force at the end of the span: cut to it.
            silence(3, "web-01", MON + 9 * H, MON + 20 * H, None),
        ];
        let got = windows("web-01", MON, MON + 10 * H, &silences, &weekly);
        let spans: Vec<(&str, i64, i64, Option<&str>)> = got
            .iter()
            .map(|m| {
                (
                    m.what.as_str(),
                    (m.started_at_ms - MON) / 60_000,
                    (m.ended_at_ms - MON) / 60_000,
                    m.created_by.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                ("weekly", 120, 180, None),
                ("silence 1", 300, 360, Some("ops")),
                ("silence 3", 540, 600, Some("ops")),
            ]
        );
        assert_eq!(got[0].reason, "updates");
        assert!(windows("db-02", MON, MON + 10 * H, &silences, &weekly).is_empty());
    }

    #[test]
    fn overlapping_windows_are_taken_out_once() {
        let silences = [
            silence(1, "*", MON, MON + 2 * H, None),
            silence(2, "*", MON + H, MON + 3 * H, None),
            silence(3, "*", MON + 5 * H, MON + 6 * H, None),
        ];
        let got = windows("x", MON, MON + 10 * H, &silences, &[]);
        assert_eq!(
            merged(&got),
            [(MON, MON + 3 * H), (MON + 5 * H, MON + 6 * H)]
        );
    }
}

//! Cycles that take longer than the interval. The ticker then skips to the following tick, so
//! the probe checks less often than configured: that is counted in every report (and so on
//! the collector's /metrics), and logged once when it starts, with the slowest parts of the
//! cycle, and once when cycles fit again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use causeway_schema::{CycleStats, Report};

/// The slowest parts named in the log line.
const PARTS_SHOWN: usize = 3;

#[derive(Debug, Default)]
pub(crate) struct Overruns {
    total: AtomicU64,
    /// Whether the last cycle overran: the log says so when this changes, not every cycle.
    overrunning: AtomicBool,
}

impl Overruns {
    /// Counts a cycle that took `took` against `interval`, logs a change, and returns the
    /// report's figures.
    pub(crate) fn count(&self, took: Duration, interval: Duration, report: &Report) -> CycleStats {
        let over = took > interval;
        let total = match over {
            true => self.total.fetch_add(1, Ordering::Relaxed) + 1,
            false => self.total.load(Ordering::Relaxed),
        };
        let was = self.overrunning.swap(over, Ordering::Relaxed);
        if over && !was {
            tracing::warn!(
                "a cycle took {} ms, longer than the interval {} ms: the next one waits for the \
                 following tick, so checks run less often than configured (said again when \
                 cycles fit); slowest parts: {}",
                took.as_millis(),
                interval.as_millis(),
                slowest_parts(report).join(", ")
            );
        } else if was && !over {
            tracing::info!(
                "cycles fit the interval of {} ms again ({total} took longer since the start)",
                interval.as_millis()
            );
        }
        CycleStats {
            took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            overruns_total: total,
        }
    }
}

/// What took the time, slowest first: each resolver (its queries, then its reachability test,
/// which follows them) and each request.
pub(crate) fn slowest_parts(report: &Report) -> Vec<String> {
    let mut parts: Vec<(f64, String)> = Vec::new();
    for resolution in &report.resolutions {
        for r in &resolution.resolvers {
            let queries = r.queries.iter().map(|q| q.elapsed_ms).fold(0.0, f64::max);
            let reach = r
                .reachability
                .as_ref()
                .map_or(0.0, |t| t.icmp.elapsed_ms.max(t.tcp.elapsed_ms));
            let slowest = r
                .queries
                .iter()
                .max_by(|a, b| a.elapsed_ms.total_cmp(&b.elapsed_ms));
            let what = slowest.map_or(String::new(), |q| format!(" ({})", q.outcome.id()));
            let text = match reach > 0.0 {
                true => format!(
                    "resolver {} {queries:.0} ms{what} then its reachability test {reach:.0} ms",
                    r.resolver
                ),
                false => format!("resolver {} {queries:.0} ms{what}", r.resolver),
            };
            parts.push((queries + reach, text));
        }
    }
    for c in &report.results {
        let request = c.timings.total_ms - c.timings.resolve_ms.unwrap_or(0.0);
        let address = c.address.map_or(String::new(), |a| format!(" {a}"));
        parts.push((
            request,
            format!("request {}{address} {request:.0} ms", c.canary),
        ));
    }
    parts.sort_by(|a, b| b.0.total_cmp(&a.0));
    parts
        .into_iter()
        .take(PARTS_SHOWN)
        .map(|(_, text)| text)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_schema::{DnsOutcome, DnsQuery, ReachOutcome, ReachProbe, Reachability};

    /// A report without checks or resolvers.
    fn empty_report() -> Report {
        serde_json::from_value(serde_json::json!({
            "schema_version": causeway_schema::SCHEMA_VERSION,
            "report_id": "01a24e8b-5123-7221-a323-5dcceb4fd40b",
            "server": "web-01",
            "probe": { "host": "web-01", "version": "0.1.0" },
            "started_at_ms": 1_800_000_000_000_i64,
            "interval_s": 1,
            "results": [],
            "resolutions": []
        }))
        .unwrap()
    }

    #[test]
    fn overruns_are_counted_and_carried_while_cycles_fit() {
        let o = Overruns::default();
        let r = empty_report();
        let second = Duration::from_secs(1);
        let slow = Duration::from_millis(1_800);
        assert_eq!(o.count(slow, second, &r).overruns_total, 1);
        assert_eq!(o.count(slow, second, &r).overruns_total, 2);
        let fit = o.count(Duration::from_millis(300), second, &r);
        assert_eq!(
            fit,
            CycleStats {
                took_ms: 300,
                overruns_total: 2
            }
        );
        // Exactly the interval is not an overrun: the next tick is on time.
        assert_eq!(o.count(second, second, &r).overruns_total, 2);
    }

    #[test]
    fn the_slowest_parts_name_the_silent_resolver_first() {
        let query = |outcome, elapsed_ms| DnsQuery {
            record_type: causeway_schema::RecordType::A,
            outcome,
            rcode: None,
            answers: Vec::new(),
            elapsed_ms,
            error: None,
        };
        let probe = |elapsed_ms| ReachProbe {
            outcome: ReachOutcome::NoReply,
            elapsed_ms,
            detail: None,
        };
        let mut r = empty_report();
        let mut resolution: causeway_schema::Resolution =
            serde_json::from_value(serde_json::json!({
                "canary": "site", "name": "canary.test", "resolvers": []
            }))
            .unwrap();
        let mut silent: causeway_schema::ResolverOutcome =
            serde_json::from_value(serde_json::json!({
                "resolver": "10.0.0.54", "server": "10.0.0.54:53", "queries": []
            }))
            .unwrap();
        silent.queries = vec![query(DnsOutcome::Timeout, 900.0)];
        silent.reachability = Some(Reachability {
            icmp: probe(850.0),
            tcp: probe(900.0),
        });
        let mut quick = silent.clone();
        quick.resolver = "10.0.0.53".into();
        quick.queries = vec![query(DnsOutcome::Answer, 2.0)];
        quick.reachability = None;
        resolution.resolvers = vec![quick, silent];
        r.resolutions = vec![resolution];
        let parts = slowest_parts(&r);
        assert_eq!(
            parts[0],
            "resolver 10.0.0.54 900 ms (timeout) then its reachability test 900 ms"
        );
        assert!(parts.len() <= PARTS_SHOWN);
        assert!(
            parts.contains(&"resolver 10.0.0.53 2 ms (answer)".to_owned()),
            "{parts:?}"
        );
    }
}

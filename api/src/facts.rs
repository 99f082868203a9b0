//! The facts of a failed check's evidence that both the page and `probectl why` print, worked
//! out once so the two cannot disagree: each renderer only draws them (the page as HTML
//! tables with colours, probectl as lines of text). Strings here are raw: the page escapes
//! them, probectl cleans control characters out of them.

use causeway_schema::{AnswerPrint, BackendState, DirectOutcome};

/// How a fact reads: healthy, failing, or neither (nothing to compare with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Bad,
    Neutral,
}

/// `HTTP 200, 1432 bytes, body 9f3c2a71d04e8b65`: what a backend answered, as it is compared.
pub fn answer_print(p: &AnswerPrint) -> String {
    format!(
        "HTTP {}, {} bytes, body {}",
        p.status, p.body_len, p.body_digest
    )
}

/// An uptime in seconds as milliseconds, for the duration formats.
pub fn uptime_ms(uptime_s: u64) -> i64 {
    i64::try_from(uptime_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000)
}

/// The syslog name of a kernel log level (`err`), or `level 9` past the eight.
pub fn level_name(level: u8) -> String {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    NAMES
        .get(usize::from(level))
        .map_or_else(|| format!("level {level}"), |n| (*n).to_owned())
}

/// One backend behind a canary's proxy: what the probe knew of it, what a direct request
/// gets now, and where its identity is seen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFacts {
    /// Its MAC, its answer, its name's addresses, as learned while healthy; empty when
    /// nothing was learned yet.
    pub known: Vec<String>,
    pub learned_at_ms: Option<i64>,
    /// `answers HTTP 200, ..., as before`, `no answer in 800 ms`, `refused (...)`.
    pub now: String,
    pub now_verdict: Verdict,
    /// Where its identity shows up now: the address, and what told (`mac, answer`).
    pub seen_at: Vec<(String, String)>,
}

impl BackendFacts {
    pub fn of(b: &BackendState) -> BackendFacts {
        let mut known = Vec::new();
        if let Some(k) = &b.known {
            if let Some(mac) = &k.mac {
                known.push(format!("MAC {mac}"));
            }
            if let Some(a) = &k.answer {
                known.push(answer_print(a));
            }
            if !k.name_addresses.is_empty() {
                let at: Vec<String> = k.name_addresses.iter().map(ToString::to_string).collect();
                known.push(format!("name at {}", at.join(", ")));
            }
        }
        let d = &b.direct;
        let detail = d
            .detail
            .as_deref()
            .map_or(String::new(), |x| format!(" ({x})"));
        let (now_verdict, now) = match (d.outcome, &d.answer) {
            (DirectOutcome::Answered, Some(a)) => match &b.known {
                Some(k) if d.answers_like(k) => (
                    Verdict::Ok,
                    format!("answers {}, as before", answer_print(a)),
                ),
                Some(k) if k.answer.is_some() => (
                    Verdict::Bad,
                    format!("answers {}, not as before", answer_print(a)),
                ),
                // Nothing known to compare with.
                _ => (Verdict::Neutral, format!("answers {}", answer_print(a))),
            },
            (DirectOutcome::Timeout, _) => (
                Verdict::Bad,
                format!("no answer in {:.0} ms{detail}", d.elapsed_ms),
            ),
            (outcome, _) => (Verdict::Bad, format!("{}{detail}", outcome.id())),
        };
        let seen_at = b
            .seen_at
            .iter()
            .map(|s| {
                let by: Vec<&str> = s.by.iter().map(|b| b.id()).collect();
                (s.address.to_string(), by.join(", "))
            })
            .collect();
        BackendFacts {
            known,
            learned_at_ms: b.known.as_ref().map(|k| k.learned_at_ms),
            now,
            now_verdict,
            seen_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names() {
        assert_eq!(level_name(0), "emerg");
        assert_eq!(level_name(3), "err");
        assert_eq!(level_name(7), "debug");
        assert_eq!(level_name(9), "level 9");
    }
}

//! The backends behind a canary's proxy: what the probe knew of each, what a direct request
//! gets now, where its identity is seen now.

use causeway_schema::{AnswerPrint, BackendState, DirectOutcome};

use super::Verdict;

/// `HTTP 200, 1432 bytes, body 9f3c2a71d04e8b65`: what a backend answered, as it is compared.
pub fn answer_print(p: &AnswerPrint) -> String {
    format!(
        "HTTP {}, {} bytes, body {}",
        p.status, p.body_len, p.body_digest
    )
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
    use serde_json::json;

    use super::*;

    fn backend(known: serde_json::Value, direct: serde_json::Value) -> BackendState {
        serde_json::from_value(json!({
            "configured": "10.88.0.12:80",
            "known": known,
            "direct": direct,
            "seen_at": [{"address": "10.88.0.15", "by": ["mac", "answer"]}],
        }))
        .unwrap()
    }

    #[test]
    fn what_was_known_against_what_answers_now() {
        let print = json!({"status": 200, "body_digest": "9f3c", "body_len": 1432});
        let known = json!({"mac": "02:aa", "answer": print, "learned_at_ms": 5});
        let b = backend(
            known.clone(),
            json!({"outcome": "answered", "answer": print, "elapsed_ms": 1.0}),
        );
        let facts = BackendFacts::of(&b);
        assert_eq!(
            facts.known,
            ["MAC 02:aa", "HTTP 200, 1432 bytes, body 9f3c"]
        );
        assert_eq!(facts.learned_at_ms, Some(5));
        assert_eq!(
            facts.now,
            "answers HTTP 200, 1432 bytes, body 9f3c, as before"
        );
        assert_eq!(facts.now_verdict, Verdict::Ok);
        assert_eq!(facts.seen_at, [("10.88.0.15".into(), "mac, answer".into())]);

        let b = backend(
            known,
            json!({"outcome": "timeout", "elapsed_ms": 800.4, "detail": "no SYN-ACK"}),
        );
        let facts = BackendFacts::of(&b);
        assert_eq!(facts.now, "no answer in 800 ms (no SYN-ACK)");
        assert_eq!(facts.now_verdict, Verdict::Bad);

        let b = backend(
            json!(null),
            json!({"outcome": "answered", "answer": print, "elapsed_ms": 1.0}),
        );
        let facts = BackendFacts::of(&b);
        assert!(facts.known.is_empty());
        assert_eq!(facts.now_verdict, Verdict::Neutral);
    }
}

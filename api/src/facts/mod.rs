//! The facts of a failed check's evidence that both the page and `probectl why` print, worked
//! out once so the two cannot disagree: each renderer only draws them (the page as HTML
//! tables, notes and headings with colours, probectl as lines of text). Strings here are
//! raw: the page escapes them, probectl cleans control characters out of them.
//!
//! One file per kind of evidence: [`failure`] (the check, what failed, the packets' summary),
//! [`listeners`], [`host`], [`backends`], [`tls`]. A fact that reads as a sentence is written as a
//! clause, lower case and without a full stop (`the reset came with TTL 57`): probectl prints
//! it as a line, the page makes it a sentence.

mod backends;
mod failure;
mod host;
mod listeners;
mod tls;

pub use backends::{BackendFacts, answer_print};
pub use failure::{FailedCheck, TraceFacts, failure_facts, timings, ttl_line};
pub use host::{
    ConditionFacts, HostFacts, KernelLineFact, MemoryFacts, OomKillFacts, PressureFacts,
    reboot_line,
};
pub use listeners::{ListenerFacts, ListenersFacts};
pub use tls::{served_certificate, tls_facts};

/// How a fact reads: healthy, failing, or neither (nothing to compare with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Bad,
    Neutral,
}

/// A piece of a fact's text. The kinds only say how each renderer sets a piece off; joined,
/// they read as one line of plain text ([`plain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Words.
    Words(String),
    /// A name or value as it was configured or seen (a URL, a failure kind, an interface, a
    /// boot id): the page sets it in `<code>`, probectl prints it as it is.
    Code(String),
    /// A string whose exact characters matter (the expected text): the page sets it in
    /// `<code>`, probectl quotes it, so that spaces at its ends show.
    Quoted(String),
    /// A long excerpt (the response body): the page sets it in `<pre>`, probectl quotes its
    /// start.
    Excerpt(String),
}

impl Part {
    pub fn words(s: impl Into<String>) -> Part {
        Part::Words(s.into())
    }

    pub fn code(s: impl Into<String>) -> Part {
        Part::Code(s.into())
    }

    /// The piece's text, however it is set off.
    pub fn text(&self) -> &str {
        match self {
            Part::Words(s) | Part::Code(s) | Part::Quoted(s) | Part::Excerpt(s) => s,
        }
    }
}

/// The parts joined, unquoted and unmarked.
pub fn plain(parts: &[Part]) -> String {
    parts.iter().map(Part::text).collect()
}

/// A labelled fact: `status`: `502, expected 200`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub label: &'static str,
    pub text: Vec<Part>,
}

impl Fact {
    fn new(label: &'static str, text: Vec<Part>) -> Fact {
        Fact { label, text }
    }

    /// `label: text`, unquoted and unmarked: for tests and logs.
    pub fn plain(&self) -> String {
        format!("{}: {}", self.label, plain(&self.text))
    }
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

/// `1 packet`, `2 packets`.
fn count(n: usize, what: &str) -> String {
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {what}{plural}")
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

    #[test]
    fn parts_join_as_plain_text() {
        let fact = Fact::new(
            "failure",
            vec![Part::code("reset"), Part::words(": peer reset")],
        );
        assert_eq!(fact.plain(), "failure: reset: peer reset");
        assert_eq!(count(1, "packet"), "1 packet");
        assert_eq!(count(0, "packet"), "0 packets");
    }
}

//! Durations as the operator types them (`causeway_schema::parse_duration`'s grammar:
//! `500ms`, `90s`, `30m`, `1h`, `7d`), with the collector's and probectl's bounds.

use std::time::Duration;

/// The forms accepted, for error messages (followed by the longest allowed).
pub const ACCEPTED: &str = causeway_schema::DURATION_FORMS;

/// The longest window: the API keeps no more than that in view.
const MAX_DAYS: u64 = 366;
/// The longest retention: ten years.
const MAX_RETENTION_DAYS: u64 = 3650;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {value:?}: expected {ACCEPTED}, at most {max_days}d")]
pub struct BadDuration {
    pub value: String,
    pub max_days: u64,
}

/// A window or a timeout: at most [`MAX_DAYS`].
pub fn parse(text: &str) -> Result<Duration, BadDuration> {
    parse_up_to(text, MAX_DAYS)
}

/// How long something is kept: at most [`MAX_RETENTION_DAYS`].
pub fn parse_retention(text: &str) -> Result<Duration, BadDuration> {
    parse_up_to(text, MAX_RETENTION_DAYS)
}

fn parse_up_to(text: &str, max_days: u64) -> Result<Duration, BadDuration> {
    let bad = || BadDuration {
        value: text.to_owned(),
        max_days,
    };
    let d = causeway_schema::parse_duration(text.trim()).ok_or_else(bad)?;
    if d.is_zero() || d > Duration::from_secs(max_days * 86_400) {
        return Err(bad());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn rejected_forms_name_the_value_and_the_forms() {
        for bad in [
            "",
            "h",
            "1",
            "1.5h",
            "-1h",
            "1w",
            "1 h",
            "0s",
            "400d",
            "99999999999999999999d",
        ] {
            let err = parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("30m, 1h"), "{msg}");
            assert!(msg.contains("at most 366d"), "{msg}");
        }
    }

    #[test]
    fn retentions_may_be_years() {
        assert_eq!(
            parse_retention("400d"),
            Ok(Duration::from_secs(400 * 86_400))
        );
        let err = parse_retention("4000d").unwrap_err().to_string();
        assert!(err.contains("at most 3650d"), "{err}");
    }
}

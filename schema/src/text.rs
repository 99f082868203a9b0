//! Text for people, written one way everywhere: strings cut to a bound (explanations, error
//! messages, resolver outcomes) and durations (`5m3s`), in explanations, on the page and in
//! probectl alike.

/// `text` cut after `max` characters (not bytes: never inside a UTF-8 sequence), with `...`
/// to say so.
pub fn cut(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push_str("...");
    }
    text
}

/// `45s`, `1m20s`, `2h5m`, `3d4h`: the two largest units, a zero second one left out, so
/// widths stay small.
pub fn compact_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let parts = [(d, "d"), (h, "h"), (m, "m"), (sec, "s")];
    let Some(first) = parts.iter().position(|&(n, _)| n > 0) else {
        return "0s".to_owned();
    };
    parts[first..]
        .iter()
        .take(2)
        .filter(|&&(n, _)| n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect()
}

/// `in 9d23h`, or `expired 1d ago` once `left_ms` is negative: how long a certificate has
/// left, said one way by the probe's expiry conditions and the collector's certificate list.
pub fn expiry_in(left_ms: i64) -> String {
    if left_ms < 0 {
        format!("expired {} ago", compact_duration(-left_ms))
    } else {
        format!("in {}", compact_duration(left_ms))
    }
}

/// `2026-11-23T12:03:10Z`: a time in milliseconds since the Unix epoch, in UTC to the second.
/// Years outside 0000..=9999 are written as the raw number (`12 ms`) rather than failing a
/// whole page. Here rather than in the API crate because explanations carry dates too.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days_from_civil inverse: proleptic Gregorian, era-based.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return format!("{ms} ms");
    }
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The forms [`parse_duration`] takes, for error messages.
pub const DURATION_FORMS: &str =
    "a whole number followed by ms, s, m, h or d (e.g. 500ms, 90s, 30m, 1h, 7d)";

/// `500ms`, `90s`, `30m`, `1h`, `7d`: a whole number and a unit, nothing else (no spaces,
/// no fractions, no sign). How every duration an operator types is read: the probe's and the
/// collector's config files, their flags, probectl's `--since`. Ranges are the caller's.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms_per_unit)
        .map(std::time::Duration::from_millis)
}

/// The inverse of [`parse_duration`], in the largest unit that is exact (`90s`, `2m`, `7d`).
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    for (per, unit) in units {
        if ms != 0 && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_and_write_one_grammar() {
        for (text, ms) in [
            ("500ms", 500),
            ("5s", 5000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("7d", 604_800_000),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d, Duration::from_millis(ms));
            assert_eq!(format_duration(d), text);
        }
        for bad in [
            "",
            "5",
            "s",
            "5 s",
            " 5s",
            "1.5s",
            "5S",
            "-5s",
            "5sec",
            "1w",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
    }

    #[test]
    fn cuts_by_characters_and_says_so() {
        assert_eq!(cut("abcdef".into(), 3), "abc...");
        assert_eq!(cut("abc".into(), 3), "abc");
        assert_eq!(cut("é".repeat(5), 3), "ééé...");
        assert_eq!(cut("A refused".into(), 200), "A refused");
    }

    #[test]
    fn durations_are_compact_with_two_units_at_most() {
        let cases = [
            (-5, "0s"),
            (999, "0s"),
            (42_000, "42s"),
            (60_000, "1m"),
            (303_000, "5m3s"),
            (600_000, "10m"),
            (3_600_000, "1h"),
            (7_830_000, "2h10m"),
            (86_400_000 * 3 + 3_600_000 * 4 + 59_000, "3d4h"),
        ];
        for (ms, want) in cases {
            assert_eq!(compact_duration(ms), want, "{ms} ms");
        }
    }
}

//! Text cut to a bound, as everything that stores or shows a probe's strings (explanations,
//! error messages, resolver outcomes) keeps them.

/// `text` cut after `max` characters (not bytes: never inside a UTF-8 sequence), with `...`
/// to say so.
pub fn cut(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_by_characters_and_says_so() {
        assert_eq!(cut("abcdef".into(), 3), "abc...");
        assert_eq!(cut("abc".into(), 3), "abc");
        assert_eq!(cut("é".repeat(5), 3), "ééé...");
        assert_eq!(cut("A refused".into(), 200), "A refused");
    }
}

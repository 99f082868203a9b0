//! Suggestions for a mistyped server name: the closest known names by edit distance.

/// How many suggestions an unknown name gets.
pub const MAX_SUGGESTIONS: usize = 3;

/// The Levenshtein distance between `a` and `b` (insertions, deletions, substitutions), over
/// characters. Two rows of the table are enough.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to [`MAX_SUGGESTIONS`] of `known` closest to `name`, nearest first (ties by name).
/// Names too far away to be a typo (more edits than half the typed name's length, with at
/// least 2 edits allowed) are left out: suggesting unrelated servers helps nobody.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = name.to_lowercase();
    let limit = (wanted.chars().count() / 2).max(2);
    let mut scored: Vec<(usize, &str)> = known
        .into_iter()
        .filter_map(|k| {
            let d = levenshtein(&wanted, &k.to_lowercase());
            (d <= limit).then_some((d, k))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, k)| k.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("web-01", "web01"), 1);
        assert_eq!(levenshtein("web-01", "web-10"), 2);
        assert_eq!(levenshtein("flaw", "lawn"), 2);
        assert_eq!(levenshtein("héllo", "hello"), 1);
    }

    #[test]
    fn closest_names_nearest_first_at_most_three() {
        let known = ["web-01", "web-02", "web-10", "db-01", "mail"];
        assert_eq!(closest("web01", known), ["web-01", "web-02", "web-10"]);
        assert_eq!(closest("WEB-02", known), ["web-02", "web-01", "web-10"]);
        assert_eq!(closest("db-1", known), ["db-01"]);
        assert!(closest("completely-different", known).is_empty());
    }
}

//! Server names by glob (`web-*`, `db-0?`): rules, silences and maintenance windows select
//! servers with them.

/// Whether `text` matches `glob`, where `*` is any run of characters and `?` any one.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    // The classic two-pointer match with backtracking to the last star.
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ti));
                gi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                gi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    gi = sg + 1;
                    ti = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (g, t, want) in [
            ("*", "web-01", true),
            ("web-*", "web-01", true),
            ("web-?1", "web-01", true),
            ("web-?1", "web-001", false),
            ("*-01", "db-01", true),
            ("*b*", "web", true),
            ("db-*", "web-01", false),
            ("web-01", "web-01", true),
            ("web-01", "web-011", false),
            ("**", "", true),
        ] {
            assert_eq!(glob_match(g, t), want, "{g} ~ {t}");
        }
    }
}

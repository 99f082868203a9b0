//! What the scenario tests share.

/// Fails unless the `.toml` files in `dir` are exactly the scenarios `listed`: a file added
/// without being listed would never run, and `include_str!` already fails for a listed file
/// that is missing.
pub fn assert_every_file_listed(dir: &str, listed: &[(&str, &str)]) {
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".toml")
                .to_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = listed.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "the scenario files in {dir} and the list differ"
    );
}

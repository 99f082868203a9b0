//! Text tables for `probectl`: each column as wide as its widest cell, two spaces apart, so
//! that `status` and `resolvers` line up the same way.

use std::fmt::Write;

/// `header`, then one line per row. Columns listed in `right` are right-aligned (numbers),
/// the others left-aligned; the last column is not padded and no line ends in spaces. Widths
/// count characters, so cells must be free of control characters (see `why::clean`).
pub fn render<const N: usize>(header: [&str; N], rows: &[[String; N]], right: &[usize]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else if right.contains(&i) {
                let _ = write!(text, "{cell:>w$}  ");
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_end_clean() {
        let rows = [
            ["a".to_owned(), "5".to_owned(), "x".to_owned()],
            ["long".to_owned(), "100".to_owned(), String::new()],
        ];
        assert_eq!(
            render(["NAME", "N", "NOTE"], &rows, &[1]),
            "NAME    N  NOTE\na       5  x\nlong  100\n"
        );
    }
}

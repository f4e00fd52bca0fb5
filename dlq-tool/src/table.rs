//! Aligned plain-text tables for people: a header row, columns two spaces
//! apart, no trailing blanks (so output diffs and pastes cleanly).

/// Renders `rows` under `headers`, each line ending in `\n`.
pub fn render<S: AsRef<str>>(headers: &[&str], rows: &[Vec<S>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.as_ref().chars().count();
            match widths.get_mut(i) {
                Some(width) => *width = (*width).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(AsRef::as_ref));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let rows = vec![vec!["1-0", "a long value", "x"], vec!["12345-0", "b", ""]];
        assert_eq!(
            render(&["ID", "VALUE", "LAST"], &rows),
            "ID       VALUE         LAST\n1-0      a long value  x\n12345-0  b\n"
        );
    }
}

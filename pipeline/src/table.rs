//! Plain aligned text tables for terminal summaries.

/// Renders rows as columns separated by two spaces; the first column is left-aligned, the rest
/// right-aligned (they hold numbers).
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    render_aligned(header, rows, &[0])
}

/// Like [`render`], with the columns listed in `left` left-aligned (text) and the others
/// right-aligned.
pub fn render_aligned(header: &[&str], rows: &[Vec<String>], left: &[usize]) -> String {
    let width = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(width) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut parts = Vec::with_capacity(width);
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            let pad = w.saturating_sub(cell.chars().count());
            parts.push(if left.contains(&i) {
                format!("{cell}{}", " ".repeat(pad))
            } else {
                format!("{}{cell}", " ".repeat(pad))
            });
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
    out
}

/// `part` as a percentage of `whole`, one decimal; "-" when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let t = render(
            &["what", "n"],
            &[
                vec!["kept".into(), "12".into()],
                vec!["near_duplicate".into(), "3".into()],
            ],
        );
        assert_eq!(
            t,
            "what             n\nkept            12\nnear_duplicate   3\n"
        );
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(1, 0), "-");
    }
}

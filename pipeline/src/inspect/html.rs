//! The report as one self-contained HTML page: the terminal's tables and every chart as inline
//! SVG, with no scripts and nothing loaded from elsewhere.

use anyhow::Result;

use super::plots::{charts, svg};
use super::text::tables;
use super::Report;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;vertical-align:top}\
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}\
figure{margin:1em 0 2em}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{color:#555;font-size:.9em}.warn{color:#a00}";

/// The whole page.
pub fn render_html(report: &Report) -> Result<String> {
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>selfinstruct run report</h1>\n<p>run: <code>{}</code><br>generator: <code>{}</code><br>seeds: <code>{}</code> ({} tasks)</p>\n",
        escape(&report.run_dir),
        escape(report.generator.as_deref().unwrap_or("-")),
        escape(&report.seed_file),
        report.seed_tasks
    ));
    for warning in &report.warnings {
        body.push_str(&format!(
            "<p class=\"warn\">warning: {}</p>\n",
            escape(warning)
        ));
    }
    body.push_str("<h2>Charts</h2>\n");
    for chart in charts(report) {
        body.push_str(&format!(
            "<figure id=\"plot-{}\" class=\"plot\">\n{}\n<figcaption>{}</figcaption></figure>\n",
            chart.name,
            strip_xml_declaration(&svg(&chart)?),
            escape(&chart.caption)
        ));
    }
    body.push_str("<h2>Tables</h2>\n");
    for table in tables(report) {
        body.push_str(&format!("<h3>{}</h3>\n<table>\n<tr>", escape(&table.title)));
        for h in &table.header {
            body.push_str(&format!("<th>{}</th>", escape(h)));
        }
        body.push_str("</tr>\n");
        for row in &table.rows {
            body.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let class = if table.text_columns.contains(&i) {
                    ""
                } else {
                    " class=\"num\""
                };
                body.push_str(&format!("<td{class}>{}</td>", escape(cell)));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</table>\n");
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>selfinstruct report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(&report.run_dir)
    ))
}

/// An SVG document's `<?xml ...?>` line, which may not appear inside HTML.
fn strip_xml_declaration(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest
            .find("?>")
            .map_or(svg, |end| rest[end + 2..].trim_start()),
        None => svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
        assert_eq!(
            strip_xml_declaration("<?xml version=\"1.0\"?>\n<svg/>"),
            "<svg/>"
        );
        assert_eq!(strip_xml_declaration("<svg/>"), "<svg/>");
    }
}

//! The report as aligned terminal tables (and the same tables for the HTML page).

use std::collections::BTreeMap;

use crate::table::{percent, render_aligned};

use super::similarity::{Histogram, BINS};
use super::stats::{Lengths, PAPER};
use super::Report;

/// A titled table: a header and rows of cells.
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns that hold text (left-aligned); the others hold numbers.
    pub text_columns: Vec<usize>,
}

impl Table {
    fn new(title: impl Into<String>, header: &[&str]) -> Table {
        Table {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            text_columns: vec![0],
        }
    }

    fn text_columns(mut self, columns: &[usize]) -> Table {
        self.text_columns = columns.to_vec();
        self
    }
}

fn with_share(part: u64, whole: u64) -> String {
    format!("{part} ({})", percent(part, whole))
}

fn lengths(l: &Lengths) -> String {
    format!("{:.1} (median {:.1})", l.mean, l.median)
}

/// Throughput: instructions kept per minute of wall time.
fn per_minute(kept: u64, wall_s: f64) -> String {
    if wall_s > 0.0 {
        format!("{:.1}", kept as f64 * 60.0 / wall_s)
    } else {
        "-".into()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.4}"))
}

/// Clips text to `max` characters on one line.
pub fn clip(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    }
}

/// Every table of the report, in display order.
pub fn tables(report: &Report) -> Vec<Table> {
    let mut out = Vec::new();
    let scopes: Vec<&str> = report.funnels.iter().map(|f| f.scope.as_str()).collect();

    let mut header = vec!["step"];
    header.extend(&scopes);
    let mut funnel = Table::new(
        "Funnel: candidate instructions left after each step",
        &header,
    );
    if let Some(first) = report.funnels.first() {
        for (i, step) in first.steps.iter().enumerate() {
            let mut row = vec![step.label.clone()];
            row.extend(
                report
                    .funnels
                    .iter()
                    .map(|f| f.steps[i].remaining.to_string()),
            );
            funnel.rows.push(row);
        }
    }
    out.push(funnel);

    let mut header = vec!["unit", "stage", "reason"];
    header.extend(&scopes);
    let mut drops =
        Table::new("Drops by reason (every rejected row)", &header).text_columns(&[0, 1, 2]);
    let mut keys: Vec<(String, String, String)> = Vec::new();
    let mut counts: BTreeMap<(String, String, String), Vec<u64>> = BTreeMap::new();
    for (s, f) in report.funnels.iter().enumerate() {
        for d in &f.drops {
            let key = (d.unit.clone(), d.stage.clone(), d.reason.clone());
            if !counts.contains_key(&key) {
                keys.push(key.clone());
            }
            counts.entry(key).or_insert_with(|| vec![0; scopes.len()])[s] = d.count;
        }
    }
    // The order of the `all` scope: by unit, then most frequent first.
    if let Some(all) = report.funnels.last() {
        keys = all
            .drops
            .iter()
            .map(|d| (d.unit.clone(), d.stage.clone(), d.reason.clone()))
            .collect();
    }
    for key in keys {
        let mut row = vec![key.0.clone(), key.1.clone(), key.2.clone()];
        row.extend(counts[&key].iter().map(u64::to_string));
        drops.rows.push(row);
    }
    out.push(drops);

    let t = &report.table1;
    let mut t1 = Table::new(
        "Table 1 (Wang et al., 2022), this run beside the paper's",
        &["statistic", "this run", "paper"],
    );
    let ours = [
        t.instructions.to_string(),
        with_share(t.classification_instructions, t.instructions),
        with_share(t.non_classification_instructions, t.instructions),
        t.instances.to_string(),
        with_share(t.instances_with_empty_input, t.instances),
        lengths(&t.instruction_length),
        lengths(&t.input_length),
        lengths(&t.output_length),
    ];
    for ((name, paper), ours) in PAPER.iter().zip(ours) {
        let paper = if paper.fract() == 0.0 {
            format!("{paper:.0}")
        } else {
            format!("{paper:.1}")
        };
        t1.rows.push(vec![name.to_string(), ours, paper]);
    }
    t1.rows.push(vec![
        "instructions without any input".into(),
        with_share(t.instructions_without_input, t.instructions),
        "-".into(),
    ]);
    out.push(t1);

    let s = &report.similarity;
    let mut sim = Table::new(
        "ROUGE-L with the most similar seed / earlier generated instruction",
        &["ROUGE-L", "nearest seed", "nearest generated"],
    );
    for i in 0..BINS {
        sim.rows.push(vec![
            Histogram::bin_label(i),
            s.to_nearest_seed.bins[i].to_string(),
            s.to_nearest_generated.bins[i].to_string(),
        ]);
    }
    for (name, a, b) in [
        ("mean", s.to_nearest_seed.mean, s.to_nearest_generated.mean),
        (
            "median",
            s.to_nearest_seed.median,
            s.to_nearest_generated.median,
        ),
    ] {
        sim.rows
            .push(vec![name.into(), format!("{a:.4}"), format!("{b:.4}")]);
    }
    sim.rows.push(vec![
        "instructions".into(),
        s.to_nearest_seed.count.to_string(),
        s.to_nearest_generated.count.to_string(),
    ]);
    out.push(sim);

    let v = &report.verb_noun;
    let mut verbs = Table::new(
        format!(
            "Verb-noun diversity: {} of {} instructions have a root verb with a direct object; {} verbs, {} verb-noun pairs",
            with_share(v.with_structure, v.instructions),
            v.instructions,
            v.unique_verbs,
            v.unique_pairs
        ),
        &["verb", "instructions", "top nouns"],
    )
    .text_columns(&[0, 2]);
    for e in &v.top {
        let nouns = e
            .nouns
            .iter()
            .map(|(n, c)| format!("{n} ({c})"))
            .collect::<Vec<_>>()
            .join(", ");
        verbs
            .rows
            .push(vec![e.verb.clone(), e.count.to_string(), nouns]);
    }
    out.push(verbs);

    let mut rounds = Table::new(
        "Per round: acceptance and throughput",
        &[
            "round",
            "iteration",
            "candidates",
            "kept",
            "acceptance",
            "instances",
            "wall s",
            "kept/min",
            "tokens/s",
        ],
    );
    for r in &report.rounds {
        rounds.rows.push(vec![
            r.round.to_string(),
            r.iteration.map_or("-".into(), |i| i.to_string()),
            r.candidates.to_string(),
            r.kept.to_string(),
            percent(r.kept, r.candidates),
            r.instances_kept.to_string(),
            format!("{:.1}", r.wall_s),
            per_minute(r.kept, r.wall_s),
            format!("{:.1}", r.tokens_per_s),
        ]);
    }
    out.push(rounds);

    if let Some(iterations) = &report.iterations {
        let mut its = Table::new(
            "Per iteration: acceptance, throughput and SFT loss",
            &[
                "iteration",
                "generator",
                "rounds",
                "kept",
                "acceptance",
                "kept/min",
                "train loss",
                "held-out loss",
                "SFT tokens/s",
                "wall s",
            ],
        )
        .text_columns(&[0, 1]);
        for it in iterations {
            its.rows.push(vec![
                it.iteration.to_string(),
                it.generator.clone(),
                match (it.first_round, it.last_round) {
                    (Some(a), Some(b)) => format!("{a}-{b}"),
                    _ => "-".into(),
                },
                it.instructions_kept.to_string(),
                format!("{:.1}%", 100.0 * it.acceptance_rate),
                per_minute(it.instructions_kept, it.wall_s),
                opt(it.sft_train_loss),
                opt(it.sft_heldout_loss),
                it.sft_tokens_per_s
                    .map_or("-".into(), |t| format!("{t:.1}")),
                format!("{:.1}", it.wall_s),
            ]);
        }
        out.push(its);
    }

    if !report.loss_curves.is_empty() {
        let mut loss = Table::new(
            "SFT loss curves (train_metrics.parquet)",
            &[
                "source",
                "steps",
                "first loss",
                "last loss",
                "last held-out",
            ],
        );
        for c in &report.loss_curves {
            loss.rows.push(vec![
                c.source.clone(),
                c.points.len().to_string(),
                opt(c.points.first().map(|p| p.loss)),
                opt(c.points.last().map(|p| p.loss)),
                opt(c.points.iter().rev().find_map(|p| p.heldout_loss)),
            ]);
        }
        out.push(loss);
    }

    let mut kept = Table::new(
        "Sample of kept instructions (first instance)",
        &["id", "class.", "instruction", "input", "output"],
    )
    .text_columns(&[0, 1, 2, 3, 4]);
    for k in &report.samples.kept {
        kept.rows.push(vec![
            k.id.clone(),
            if k.is_classification { "yes" } else { "no" }.into(),
            clip(&k.instruction, 60),
            clip(k.input.as_deref().unwrap_or(""), 30),
            clip(k.output.as_deref().unwrap_or(""), 30),
        ]);
    }
    out.push(kept);

    let mut rejected = Table::new(
        "Sample of rejected records",
        &["id", "unit", "reason", "text", "nearest (ROUGE-L)"],
    )
    .text_columns(&[0, 1, 2, 3, 4]);
    for r in &report.samples.rejected {
        let text = match (&r.input, &r.output) {
            (Some(i), Some(o)) if r.unit == "instance" => format!("in: {i} | out: {o}"),
            _ => r.text.clone(),
        };
        rejected.rows.push(vec![
            r.id.clone(),
            r.unit.clone(),
            r.reason.clone(),
            clip(&text, 60),
            match (&r.nearest, r.nearest_score) {
                (Some(n), Some(s)) => format!("{} ({s:.2})", clip(n, 40)),
                _ => String::new(),
            },
        ]);
    }
    out.push(rejected);
    out
}

/// The report for the terminal.
pub fn render_text(report: &Report) -> String {
    let mut out = format!(
        "run: {}\ngenerator: {}\nseeds: {} ({} tasks)\n",
        report.run_dir,
        report.generator.as_deref().unwrap_or("-"),
        report.seed_file,
        report.seed_tasks
    );
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    for table in tables(report) {
        out.push('\n');
        out.push_str(&table.title);
        out.push('\n');
        let header: Vec<&str> = table.header.iter().map(String::as_str).collect();
        out.push_str(&render_aligned(&header, &table.rows, &table.text_columns));
    }
    out
}

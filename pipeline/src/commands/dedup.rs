//! `selfinstruct dedup`: rule filters and ROUGE-L near-duplicate removal over a file.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use filters::{DropReason, NearDupConfig, RuleConfig};
use polars::prelude::{Column, DataFrame};

use crate::atomic::PendingFile;
use crate::cli::DedupArgs;
use crate::dedup::{run_dedup, DedupOptions, DedupOutcome, Neighbours, PoolEntry};
use crate::parquet::{list_f64_column, list_str_column, write_frame};
use crate::records::read_records;
use crate::table::{percent, render};

pub fn run(args: &DedupArgs) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!(
            "--threshold must be between 0 and 1, got {}",
            args.threshold
        );
    }
    let kept_path = args.output.join("kept.parquet");
    let rejected_path = args.output.join("rejected.parquet");
    if !args.force {
        for path in [&kept_path, &rejected_path] {
            if path.exists() {
                bail!("{} exists; pass --force to overwrite it", path.display());
            }
        }
    }
    let records = read_records(&args.input)?;
    let against = match &args.against {
        Some(path) => read_records(path)?
            .into_iter()
            .map(|r| PoolEntry {
                id: r.id,
                instruction: r.instruction,
            })
            .collect(),
        None => Vec::new(),
    };
    let options = DedupOptions {
        rules: (!args.no_rules).then(RuleConfig::default),
        near_dup: NearDupConfig {
            threshold: args.threshold,
            top_k: args.top_k,
            tokenizer: args.tokenizer.into(),
            use_stemmer: args.use_stemmer,
        },
    };
    let bar = super::progress_bar(records.len() as u64, "dedup");
    let outcome = run_dedup(records, &against, &options, |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    // Write both tables before either appears, so a failure leaves neither half-written.
    let mut kept_file = PendingFile::create(&kept_path)?;
    let mut rejected_file = PendingFile::create(&rejected_path)?;
    write_frame(kept_file.file(), &mut kept_frame(&outcome)?)
        .with_context(|| format!("cannot write {}", kept_path.display()))?;
    write_frame(rejected_file.file(), &mut rejected_frame(&outcome)?)
        .with_context(|| format!("cannot write {}", rejected_path.display()))?;
    kept_file.commit()?;
    rejected_file.commit()?;

    print!("{}", summary(&outcome));
    println!(
        "wrote {} and {}",
        kept_path.display(),
        rejected_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The terminal summary: counts of kept and of drops per reason.
pub fn summary(outcome: &DedupOutcome) -> String {
    let stats = &outcome.stats;
    let mut rows = vec![
        vec!["input".to_string(), stats.seen.to_string(), String::new()],
        vec![
            "kept".to_string(),
            stats.kept.to_string(),
            percent(stats.kept, stats.seen),
        ],
        vec![
            "dropped".to_string(),
            stats.total_dropped().to_string(),
            percent(stats.total_dropped(), stats.seen),
        ],
    ];
    for reason in DropReason::ALL {
        let n = stats.drops(reason);
        if n > 0 {
            rows.push(vec![
                format!("  {reason}"),
                n.to_string(),
                percent(n, stats.seen),
            ]);
        }
    }
    if outcome.pool_before > 0 {
        rows.push(vec![
            "pool before input".to_string(),
            outcome.pool_before.to_string(),
            String::new(),
        ]);
    }
    render(&["", "count", "share"], &rows)
}

/// kept.parquet: one row per kept instruction with its nearest pool entries.
pub fn kept_frame(outcome: &DedupOutcome) -> Result<DataFrame> {
    let k = &outcome.kept;
    let n =
        |f: &dyn Fn(&Neighbours) -> f64| k.iter().map(|r| f(&r.neighbours)).collect::<Vec<f64>>();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "id".into(),
            k.iter().map(|r| r.record.id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "row".into(),
            k.iter().map(|r| r.row as u64).collect::<Vec<_>>(),
        ),
        Column::new(
            "instruction".into(),
            k.iter()
                .map(|r| r.record.instruction.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "input".into(),
            k.iter()
                .map(|r| r.record.input.as_deref())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "output".into(),
            k.iter()
                .map(|r| r.record.output.as_deref())
                .collect::<Vec<_>>(),
        ),
        Column::new("max_rouge".into(), n(&|nb| nb.max())),
        Column::new("mean_rouge_top_k".into(), n(&|nb| nb.mean)),
        list_str_column(
            "most_similar_ids",
            k.iter().map(|r| r.neighbours.ids.clone()),
        ),
        list_str_column(
            "most_similar",
            k.iter().map(|r| r.neighbours.instructions.clone()),
        ),
        list_f64_column(
            "most_similar_scores",
            k.iter().map(|r| r.neighbours.scores.clone()),
        ),
    ])?)
}

/// rejected.parquet: one row per dropped instruction with stage, reason and, for near-duplicates,
/// the most similar pool entry.
pub fn rejected_frame(outcome: &DedupOutcome) -> Result<DataFrame> {
    let r = &outcome.rejected;
    let nb = |f: &dyn Fn(&Neighbours) -> Option<String>| {
        r.iter()
            .map(|x| x.neighbours.as_ref().and_then(f))
            .collect::<Vec<Option<String>>>()
    };
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "id".into(),
            r.iter().map(|x| x.record.id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "row".into(),
            r.iter().map(|x| x.row as u64).collect::<Vec<_>>(),
        ),
        Column::new(
            "instruction".into(),
            r.iter()
                .map(|x| x.record.instruction.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "input".into(),
            r.iter()
                .map(|x| x.record.input.as_deref())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "output".into(),
            r.iter()
                .map(|x| x.record.output.as_deref())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "stage".into(),
            r.iter().map(|x| x.stage().as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "reason".into(),
            r.iter().map(|x| x.reason.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "max_rouge".into(),
            r.iter()
                .map(|x| x.neighbours.as_ref().map(|n| n.max()))
                .collect::<Vec<_>>(),
        ),
        Column::new("nearest_id".into(), nb(&|n| n.ids.first().cloned())),
        Column::new("nearest".into(), nb(&|n| n.instructions.first().cloned())),
    ])?)
}

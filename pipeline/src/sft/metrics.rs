//! `train_metrics.parquet`: one row per optimizer step.

use std::path::Path;

use anyhow::Result;
use model::sft::StepRecord;
use polars::prelude::{Column, DataFrame};

use crate::parquet::write_parquet;

/// The metrics frame (columns in [`StepRecord`] order; `heldout_loss` null where not evaluated).
pub fn metrics_frame(history: &[StepRecord]) -> Result<DataFrame> {
    let u = |name: &str, f: fn(&StepRecord) -> usize| {
        Column::new(
            name.into(),
            history.iter().map(|r| f(r) as u64).collect::<Vec<_>>(),
        )
    };
    let x = |name: &str, f: fn(&StepRecord) -> f64| {
        Column::new(name.into(), history.iter().map(f).collect::<Vec<_>>())
    };
    let heldout: Vec<Option<f64>> = history.iter().map(|r| r.heldout_loss).collect();
    Ok(DataFrame::new_infer_height(vec![
        u("step", |r| r.step),
        u("epoch", |r| r.epoch),
        x("loss", |r| r.loss),
        x("lr", |r| r.lr),
        x("grad_norm", |r| r.grad_norm),
        u("examples", |r| r.examples),
        u("tokens", |r| r.tokens),
        u("trained_tokens", |r| r.trained_tokens),
        x("seconds", |r| r.seconds),
        x("tokens_per_s", |r| r.tokens_per_s),
        Column::new("heldout_loss".into(), heldout),
    ])?)
}

/// Writes the metrics atomically.
pub fn write_metrics(path: &Path, history: &[StepRecord]) -> Result<()> {
    write_parquet(&mut metrics_frame(history)?, path)
}

//! `iterations.parquet`: one row per finished iteration of the loop.

use std::path::Path;

use anyhow::{Context, Result};
use polars::prelude::{Column, DataFrame, DataType};

use crate::parquet::{read_parquet, string_column, write_parquet};

/// One finished iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationRow {
    pub iteration: u32,
    /// The checkpoint that generated this iteration's rounds, and its weights' SHA-256.
    pub generator: String,
    pub generator_sha256: String,
    /// The iteration's rounds, `first_round..=last_round`.
    pub first_round: u32,
    pub last_round: u32,
    pub candidates: u64,
    pub instructions_kept: u64,
    /// Kept instructions in the run after this iteration.
    pub instructions_total: u64,
    /// `instructions_kept / candidates` of this iteration.
    pub acceptance_rate: f64,
    /// Drops by reason of this iteration's rounds, as a JSON object.
    pub drops: String,
    /// Mean ROUGE-L F of this iteration's kept instructions to their most similar seed.
    pub mean_rouge_to_seed: Option<f64>,
    pub sft_train_loss: Option<f64>,
    pub sft_heldout_loss: Option<f64>,
    pub sft_tokens_per_s: Option<f64>,
    /// The checkpoint SFT produced for the next iteration (`None` when the loop ended here).
    pub next_generator: Option<String>,
    /// Why the loop stopped after this iteration, when a target was met.
    pub target_met: Option<String>,
    pub wall_s: f64,
}

/// The frame written to `iterations.parquet`.
pub fn iterations_frame(rows: &[IterationRow]) -> Result<DataFrame> {
    let s = |name: &str, f: fn(&IterationRow) -> &str| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let o = |name: &str, f: fn(&IterationRow) -> Option<&str>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let u = |name: &str, f: fn(&IterationRow) -> u64| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let x = |name: &str, f: fn(&IterationRow) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let r32 = |name: &str, f: fn(&IterationRow) -> u32| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    Ok(DataFrame::new_infer_height(vec![
        r32("iteration", |r| r.iteration),
        s("generator", |r| &r.generator),
        s("generator_sha256", |r| &r.generator_sha256),
        r32("first_round", |r| r.first_round),
        r32("last_round", |r| r.last_round),
        u("candidates", |r| r.candidates),
        u("instructions_kept", |r| r.instructions_kept),
        u("instructions_total", |r| r.instructions_total),
        x("acceptance_rate", |r| Some(r.acceptance_rate)),
        s("drops", |r| &r.drops),
        x("mean_rouge_to_seed", |r| r.mean_rouge_to_seed),
        x("sft_train_loss", |r| r.sft_train_loss),
        x("sft_heldout_loss", |r| r.sft_heldout_loss),
        x("sft_tokens_per_s", |r| r.sft_tokens_per_s),
        o("next_generator", |r| r.next_generator.as_deref()),
        o("target_met", |r| r.target_met.as_deref()),
        x("wall_s", |r| Some(r.wall_s)),
    ])?)
}

/// Writes the rows atomically.
pub fn write_iterations(path: &Path, rows: &[IterationRow]) -> Result<()> {
    write_parquet(&mut iterations_frame(rows)?, path)
}

/// Reads the rows back (none when the file does not exist yet).
pub fn read_iterations(path: &Path) -> Result<Vec<IterationRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read_parquet(path)?;
    let at = |name: &str| format!("{}: column {name:?}", path.display());
    let ints = |name: &str| -> Result<Vec<u64>> {
        let c = df
            .column(name)
            .with_context(|| at(name))?
            .cast(&DataType::UInt64)
            .with_context(|| at(name))?;
        let c = c.u64().with_context(|| at(name))?;
        (0..c.len())
            .map(|i| c.get(i).with_context(|| at(name)))
            .collect()
    };
    let floats = |name: &str| -> Result<Vec<Option<f64>>> {
        let c = df
            .column(name)
            .with_context(|| at(name))?
            .cast(&DataType::Float64)
            .with_context(|| at(name))?;
        let c = c.f64().with_context(|| at(name))?;
        Ok((0..c.len()).map(|i| c.get(i)).collect())
    };
    let strings = |name: &str| string_column(&df, name, path);
    let required = |v: Vec<Option<String>>, name: &str| -> Result<Vec<String>> {
        v.into_iter().map(|s| s.with_context(|| at(name))).collect()
    };
    let iteration = ints("iteration")?;
    let generator = required(strings("generator")?, "generator")?;
    let sha = required(strings("generator_sha256")?, "generator_sha256")?;
    let first = ints("first_round")?;
    let last = ints("last_round")?;
    let candidates = ints("candidates")?;
    let kept = ints("instructions_kept")?;
    let total = ints("instructions_total")?;
    let acceptance = floats("acceptance_rate")?;
    let drops = required(strings("drops")?, "drops")?;
    let rouge = floats("mean_rouge_to_seed")?;
    let train = floats("sft_train_loss")?;
    let held = floats("sft_heldout_loss")?;
    let tps = floats("sft_tokens_per_s")?;
    let next = strings("next_generator")?;
    let met = strings("target_met")?;
    let wall = floats("wall_s")?;
    Ok((0..df.height())
        .map(|i| IterationRow {
            iteration: iteration[i] as u32,
            generator: generator[i].clone(),
            generator_sha256: sha[i].clone(),
            first_round: first[i] as u32,
            last_round: last[i] as u32,
            candidates: candidates[i],
            instructions_kept: kept[i],
            instructions_total: total[i],
            acceptance_rate: acceptance[i].unwrap_or(0.0),
            drops: drops[i].clone(),
            mean_rouge_to_seed: rouge[i],
            sft_train_loss: train[i],
            sft_heldout_loss: held[i],
            sft_tokens_per_s: tps[i],
            next_generator: next[i].clone(),
            target_met: met[i].clone(),
            wall_s: wall[i].unwrap_or(0.0),
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_parquet() {
        let row = IterationRow {
            iteration: 1,
            generator: "base.gguf".into(),
            generator_sha256: "ab".into(),
            first_round: 1,
            last_round: 2,
            candidates: 10,
            instructions_kept: 7,
            instructions_total: 7,
            acceptance_rate: 0.7,
            drops: "{\"rouge\":3}".into(),
            mean_rouge_to_seed: Some(0.31),
            sft_train_loss: Some(1.5),
            sft_heldout_loss: None,
            sft_tokens_per_s: Some(30.0),
            next_generator: Some("it/sft/model".into()),
            target_met: None,
            wall_s: 12.5,
        };
        let mut second = row.clone();
        second.iteration = 2;
        second.next_generator = None;
        second.target_met = Some("done".into());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iterations.parquet");
        write_iterations(&path, &[row.clone(), second.clone()]).unwrap();
        assert_eq!(read_iterations(&path).unwrap(), vec![row, second]);
        assert!(read_iterations(&dir.path().join("none.parquet"))
            .unwrap()
            .is_empty());
    }
}

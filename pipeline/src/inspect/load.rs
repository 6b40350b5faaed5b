//! A run folder read back for inspection: the manifest, the four top-level tables (only the
//! columns inspect uses), the optional `iterations.parquet`, and the seed file the manifest names.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::{DataFrame, DataType};
use serde::Serialize;
use serde_json::Value;

use crate::iterate::ITERATIONS;
use crate::parquet::{
    bool_column, f64_column, list_column_map, read_parquet_columns, string_column, u64_column,
};
use crate::round::folder::MANIFEST;
use crate::seeds::{load_seeds, SeedTask};
use crate::sft::data::manifest_seed_file;
use crate::sft::METRICS;

/// A kept instruction (the columns of `instructions.parquet` that inspect needs).
#[derive(Debug, Clone)]
pub struct Instruction {
    pub id: String,
    pub round: u32,
    pub instruction: String,
    pub is_classification: bool,
    /// Pool entries most similar at acceptance time, best first, with their ROUGE-L.
    pub most_similar_ids: Vec<String>,
    pub most_similar_scores: Vec<f64>,
}

/// One row of `instances.parquet`.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub instruction_id: String,
    pub input: String,
    pub output: String,
}

/// One row of `rejected.parquet`.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRow {
    pub round: u32,
    pub stage: String,
    pub reason: String,
    pub unit: String,
    pub id: String,
    pub text: String,
    pub input: Option<String>,
    pub output: Option<String>,
    pub nearest: Option<String>,
    pub nearest_score: Option<f64>,
}

/// One row of `rounds.parquet` (counts and throughput).
#[derive(Debug, Clone, Serialize)]
pub struct RoundRow {
    pub round: u32,
    /// The SFT iteration the round belongs to, when the run has iterations.
    pub iteration: Option<u32>,
    pub candidates: u64,
    pub kept: u64,
    pub acceptance_rate: f64,
    pub instances_kept: u64,
    pub wall_s: f64,
    pub generated_tokens: u64,
    pub tokens_per_s: f64,
}

/// One row of `iterations.parquet` (written by `selfinstruct iterate`; the columns inspect uses).
#[derive(Debug, Clone, Serialize)]
pub struct IterationRow {
    pub iteration: u32,
    pub generator: String,
    /// The iteration's rounds, `first_round..=last_round` (optional columns).
    pub first_round: Option<u32>,
    pub last_round: Option<u32>,
    pub instructions_kept: u64,
    pub acceptance_rate: f64,
    pub sft_train_loss: Option<f64>,
    pub sft_heldout_loss: Option<f64>,
    pub sft_tokens_per_s: Option<f64>,
    pub wall_s: f64,
}

/// Everything inspect reads from a run folder.
pub struct Run {
    pub dir: PathBuf,
    pub manifest: Value,
    pub instructions: Vec<Instruction>,
    pub instances: Vec<InstanceRow>,
    pub rejected: Vec<RejectedRow>,
    pub rounds: Vec<RoundRow>,
    pub iterations: Option<Vec<IterationRow>>,
}

impl Run {
    /// Reads a run folder; a missing folder, manifest or table is an error naming it.
    pub fn open(dir: &Path) -> Result<Run> {
        if !dir.is_dir() {
            bail!("{}: no such run folder", dir.display());
        }
        let manifest_path = dir.join(MANIFEST);
        if !manifest_path.is_file() {
            bail!(
                "{}: not a run folder (no {MANIFEST}; see pipeline/ROUND.md)",
                dir.display()
            );
        }
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?;
        let manifest: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", manifest_path.display()))?;
        let iterations_path = dir.join(ITERATIONS);
        let iterations = if iterations_path.exists() {
            Some(read_iterations(&iterations_path)?)
        } else {
            None
        };
        let mut rounds = read_rounds(&dir.join("rounds.parquet"))?;
        for it in iterations.iter().flatten() {
            if let (Some(first), Some(last)) = (it.first_round, it.last_round) {
                for round in rounds
                    .iter_mut()
                    .filter(|r| (first..=last).contains(&r.round))
                {
                    round.iteration.get_or_insert(it.iteration);
                }
            }
        }
        let start = std::time::Instant::now();
        let instructions = read_instructions(&dir.join("instructions.parquet"))?;
        tracing::debug!(elapsed = ?start.elapsed(), "instructions.parquet read");
        let instances = read_instances(&dir.join("instances.parquet"))?;
        tracing::debug!(elapsed = ?start.elapsed(), "instances.parquet read");
        let rejected = read_rejected(&dir.join("rejected.parquet"))?;
        tracing::debug!(elapsed = ?start.elapsed(), "rejected.parquet read");
        Ok(Run {
            dir: dir.to_path_buf(),
            manifest,
            instructions,
            instances,
            rejected,
            rounds,
            iterations,
        })
    }

    /// The generator named in the manifest.
    pub fn generator(&self) -> Option<String> {
        match self.manifest.get("generator") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => other
                .get("describe")
                .or_else(|| other.get("description"))
                .or_else(|| other.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| Some(other.to_string())),
        }
    }

    /// The seed tasks: `explicit` if given, else the file the manifest names (see
    /// [`manifest_seed_file`]).
    pub fn seeds(&self, explicit: Option<&Path>) -> Result<(PathBuf, Vec<SeedTask>)> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => manifest_seed_file(&self.dir).context("pass --seeds FILE")?,
        };
        let (tasks, _) = load_seeds(&path)
            .with_context(|| format!("seed file of the run {}", self.dir.display()))?;
        Ok((path, tasks))
    }
}

fn u32s(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<u32>> {
    u64_column(df, name, path)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            u32::try_from(v)
                .with_context(|| format!("{}: row {i}: {name} {v} is too large", path.display()))
        })
        .collect()
}

fn required(values: Vec<Option<String>>, name: &str, path: &Path) -> Result<Vec<String>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.with_context(|| format!("{}: row {i}: {name} is null", path.display())))
        .collect()
}

fn f64s_or_zero(values: Vec<Option<f64>>) -> Vec<f64> {
    values.into_iter().map(|v| v.unwrap_or(0.0)).collect()
}

fn read_instructions(path: &Path) -> Result<Vec<Instruction>> {
    let df = read_parquet_columns(
        path,
        &[
            "id",
            "round",
            "instruction",
            "is_classification",
            "most_similar_ids",
            "most_similar_scores",
        ],
    )?;
    let ids = required(string_column(&df, "id", path)?, "id", path)?;
    let rounds = u32s(&df, "round", path)?;
    let texts = required(
        string_column(&df, "instruction", path)?,
        "instruction",
        path,
    )?;
    let classification = bool_column(&df, "is_classification", path)?;
    let similar_ids = list_column_map(&df, "most_similar_ids", path, DataType::String, |s| {
        Ok(s.str()?.iter().flatten().map(str::to_owned).collect())
    })?;
    let similar_scores =
        list_column_map(&df, "most_similar_scores", path, DataType::Float64, |s| {
            Ok(s.f64()?.iter().flatten().collect())
        })?;
    Ok(ids
        .into_iter()
        .zip(rounds)
        .zip(texts)
        .zip(classification)
        .zip(similar_ids.into_iter().zip(similar_scores))
        .map(
            |((((id, round), instruction), is_classification), (ids, scores))| Instruction {
                id,
                round,
                instruction,
                is_classification,
                most_similar_ids: ids,
                most_similar_scores: scores,
            },
        )
        .collect())
}

fn read_instances(path: &Path) -> Result<Vec<InstanceRow>> {
    let df = read_parquet_columns(path, &["instruction_id", "input", "output"])?;
    let ids = required(
        string_column(&df, "instruction_id", path)?,
        "instruction_id",
        path,
    )?;
    let inputs = string_column(&df, "input", path)?;
    let outputs = string_column(&df, "output", path)?;
    Ok(ids
        .into_iter()
        .zip(inputs)
        .zip(outputs)
        .map(|((instruction_id, input), output)| InstanceRow {
            instruction_id,
            input: input.unwrap_or_default(),
            output: output.unwrap_or_default(),
        })
        .collect())
}

fn read_rejected(path: &Path) -> Result<Vec<RejectedRow>> {
    let df = read_parquet_columns(
        path,
        &[
            "round",
            "stage",
            "reason",
            "unit",
            "id",
            "text",
            "input",
            "output",
            "nearest",
            "nearest_score",
        ],
    )?;
    let rounds = u32s(&df, "round", path)?;
    let text = |name: &str| -> Result<Vec<String>> {
        required(string_column(&df, name, path)?, name, path)
    };
    let (stages, reasons, units, ids, texts) = (
        text("stage")?,
        text("reason")?,
        text("unit")?,
        text("id")?,
        text("text")?,
    );
    let inputs = string_column(&df, "input", path)?;
    let outputs = string_column(&df, "output", path)?;
    let nearest = string_column(&df, "nearest", path)?;
    let scores = f64_column(&df, "nearest_score", path)?;
    let mut rows = Vec::with_capacity(rounds.len());
    for (i, round) in rounds.into_iter().enumerate() {
        rows.push(RejectedRow {
            round,
            stage: stages[i].clone(),
            reason: reasons[i].clone(),
            unit: units[i].clone(),
            id: ids[i].clone(),
            text: texts[i].clone(),
            input: inputs[i].clone(),
            output: outputs[i].clone(),
            nearest: nearest[i].clone(),
            nearest_score: scores[i],
        });
    }
    Ok(rows)
}

fn read_rounds(path: &Path) -> Result<Vec<RoundRow>> {
    let df = crate::parquet::read_parquet(path)?;
    let has_iteration = df.column("iteration").is_ok();
    let rounds = u32s(&df, "round", path)?;
    let iterations = if has_iteration {
        u32s(&df, "iteration", path)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; rounds.len()]
    };
    let candidates = u64_column(&df, "candidates", path)?;
    let kept = u64_column(&df, "kept", path)?;
    let acceptance = f64s_or_zero(f64_column(&df, "acceptance_rate", path)?);
    let instances_kept = u64_column(&df, "instances_kept", path)?;
    let wall = f64s_or_zero(f64_column(&df, "wall_s", path)?);
    let tokens = u64_column(&df, "generated_tokens", path)?;
    let tokens_per_s = f64s_or_zero(f64_column(&df, "tokens_per_s", path)?);
    Ok((0..rounds.len())
        .map(|i| RoundRow {
            round: rounds[i],
            iteration: iterations[i],
            candidates: candidates[i],
            kept: kept[i],
            acceptance_rate: acceptance[i],
            instances_kept: instances_kept[i],
            wall_s: wall[i],
            generated_tokens: tokens[i],
            tokens_per_s: tokens_per_s[i],
        })
        .collect())
}

fn read_iterations(path: &Path) -> Result<Vec<IterationRow>> {
    let df = crate::parquet::read_parquet(path)?;
    let iterations = u32s(&df, "iteration", path)?;
    let n = iterations.len();
    let optional_u32s = |name: &str| -> Result<Vec<Option<u32>>> {
        Ok(if df.column(name).is_ok() {
            u32s(&df, name, path)?.into_iter().map(Some).collect()
        } else {
            vec![None; n]
        })
    };
    let first_round = optional_u32s("first_round")?;
    let last_round = optional_u32s("last_round")?;
    let generators = string_column(&df, "generator", path)?;
    let kept = u64_column(&df, "instructions_kept", path)?;
    let acceptance = f64s_or_zero(f64_column(&df, "acceptance_rate", path)?);
    let train = f64_column(&df, "sft_train_loss", path)?;
    let heldout = f64_column(&df, "sft_heldout_loss", path)?;
    let sft_tokens_per_s = if df.column("sft_tokens_per_s").is_ok() {
        f64_column(&df, "sft_tokens_per_s", path)?
    } else {
        vec![None; n]
    };
    let wall = f64s_or_zero(f64_column(&df, "wall_s", path)?);
    Ok((0..n)
        .map(|i| IterationRow {
            iteration: iterations[i],
            generator: generators[i].clone().unwrap_or_default(),
            first_round: first_round[i],
            last_round: last_round[i],
            instructions_kept: kept[i],
            acceptance_rate: acceptance[i],
            sft_train_loss: train[i],
            sft_heldout_loss: heldout[i],
            sft_tokens_per_s: sft_tokens_per_s[i],
            wall_s: wall[i],
        })
        .collect())
}

/// One row of an SFT output folder's `train_metrics.parquet`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainPoint {
    pub step: u64,
    pub loss: f64,
    pub heldout_loss: Option<f64>,
}

/// The loss curve of an SFT output folder (`DIR/train_metrics.parquet`).
pub fn read_train_metrics(dir: &Path) -> Result<Vec<TrainPoint>> {
    let path = dir.join(METRICS);
    let df = read_parquet_columns(&path, &["step", "loss", "heldout_loss"])?;
    let steps = u64_column(&df, "step", &path)?;
    let loss = f64_column(&df, "loss", &path)?;
    let heldout = f64_column(&df, "heldout_loss", &path)?;
    Ok((0..steps.len())
        .filter_map(|i| {
            loss[i].map(|loss| TrainPoint {
                step: steps[i],
                loss,
                heldout_loss: heldout[i],
            })
        })
        .collect())
}

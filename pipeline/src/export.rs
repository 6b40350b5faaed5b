//! `selfinstruct export`: a run's kept data (every kept instance of every kept instruction,
//! optionally with the seed tasks first) in the formats fine-tuning tools read:
//!
//! | format | file | one record |
//! |---|---|---|
//! | `alpaca` | JSON array | `{"instruction", "input", "output"}` |
//! | `sharegpt` | JSON Lines | `{"conversations": [{"from": "human", "value"}, {"from": "gpt", "value"}]}` |
//! | `messages` | JSON Lines | `{"messages": [{"role": "user", "content"}, {"role": "assistant", "content"}]}` |
//! | `prompt-completion` | JSON Lines | `{"prompt", "completion"}` |
//! | `parquet` | folder | `data/train-00000-of-00001.parquet` (`instruction`, `input`, `output`, `origin`) and a dataset card `README.md` |
//!
//! The user turn (and the prompt) is the instruction, then the input after a blank line when there
//! is one: the same text `selfinstruct sft` trains on (`model::sft::example::user_turn`). The
//! Parquet folder is what the `datasets` library loads with `load_dataset("parquet", data_dir=...)`
//! or, through the card's `configs`, `load_dataset(FOLDER)`.
//!
//! Nothing is written unless all of it is complete: files go through a temporary file, the Parquet
//! folder through a temporary folder renamed into place. An existing output is only replaced with
//! `force`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use model::sft::example::user_turn;
use polars::prelude::{Column, DataFrame};
use serde_json::{json, Value};

use crate::atomic::{write_atomic, PendingDir};
use crate::parquet::write_parquet;
use crate::round::folder::MANIFEST;
use crate::sft::data::{load_training_data, SourcedRecord};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Alpaca,
    Sharegpt,
    Messages,
    PromptCompletion,
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Alpaca => "alpaca",
            Format::Sharegpt => "sharegpt",
            Format::Messages => "messages",
            Format::PromptCompletion => "prompt-completion",
            Format::Parquet => "parquet",
        }
    }
}

/// The Parquet file of the `parquet` format, inside the output folder.
pub const PARQUET_TRAIN: &str = "data/train-00000-of-00001.parquet";

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub records: usize,
    pub seed_records: usize,
    pub generated_records: usize,
    /// The file, or for `parquet` the folder.
    pub out: PathBuf,
}

/// Exports the kept instances of the run folder `run` (seed tasks first with `include_seeds`).
pub fn write(
    run: &Path,
    format: Format,
    out: &Path,
    include_seeds: bool,
    force: bool,
) -> Result<Exported> {
    if !run.join(MANIFEST).is_file() {
        bail!(
            "{}: not a run folder (no {MANIFEST}; see pipeline/ROUND.md)",
            run.display()
        );
    }
    if out.exists() && !force {
        bail!(
            "{}: already exists (pass --force to replace it)",
            out.display()
        );
    }
    let data = load_training_data(run, include_seeds)?;
    let card = match format {
        Format::Parquet => Some(dataset_card(run, &data.records, data.seed_records)?),
        _ => None,
    };
    write_records(&data.records, format, out, card.as_deref())?;
    Ok(Exported {
        records: data.records.len(),
        seed_records: data.seed_records,
        generated_records: data.machine_records,
        out: out.to_path_buf(),
    })
}

/// Writes records in `format` to `out` (replacing it), for callers that hold records already.
/// `card` is the dataset card of the `parquet` format (a minimal one when `None`).
pub fn write_records(
    records: &[SourcedRecord],
    format: Format,
    out: &Path,
    card: Option<&str>,
) -> Result<()> {
    let line = |value: Value| -> Result<String> { Ok(serde_json::to_string(&value)? + "\n") };
    let jsonl = |f: &dyn Fn(&SourcedRecord) -> Value| -> Result<Vec<u8>> {
        let mut text = String::new();
        for r in records {
            text.push_str(&line(f(r))?);
        }
        Ok(text.into_bytes())
    };
    let bytes = match format {
        Format::Alpaca => {
            let array: Vec<Value> = records
                .iter()
                .map(|r| {
                    json!({"instruction": r.record.instruction, "input": r.record.input,
                           "output": r.record.output})
                })
                .collect();
            serde_json::to_vec_pretty(&array)?
        }
        Format::Sharegpt => jsonl(&|r| {
            json!({"conversations": [
                {"from": "human", "value": user_turn(&r.record)},
                {"from": "gpt", "value": r.record.output},
            ]})
        })?,
        Format::Messages => jsonl(&|r| {
            json!({"messages": [
                {"role": "user", "content": user_turn(&r.record)},
                {"role": "assistant", "content": r.record.output},
            ]})
        })?,
        Format::PromptCompletion => {
            jsonl(&|r| json!({"prompt": user_turn(&r.record), "completion": r.record.output}))?
        }
        Format::Parquet => return write_parquet_folder(records, out, card),
    };
    write_atomic(out, &bytes)
}

/// The `datasets` layout, built in a temporary folder beside `out` and renamed into place.
fn write_parquet_folder(records: &[SourcedRecord], out: &Path, card: Option<&str>) -> Result<()> {
    let pending = PendingDir::create(out)?;
    let col = |name: &str, f: fn(&SourcedRecord) -> &str| {
        Column::new(name.into(), records.iter().map(f).collect::<Vec<&str>>())
    };
    let mut df = DataFrame::new_infer_height(vec![
        col("instruction", |r| &r.record.instruction),
        col("input", |r| &r.record.input),
        col("output", |r| &r.record.output),
        col("origin", |r| &r.origin),
    ])?;
    let data = pending.path().join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    write_parquet(&mut df, &pending.path().join(PARQUET_TRAIN))?;
    let minimal;
    let card = match card {
        Some(card) => card,
        None => {
            minimal = format!(
                "{CARD_HEADER}\n# Instruction data\n\n{} records.\n",
                records.len()
            );
            &minimal
        }
    };
    write_atomic(&pending.path().join("README.md"), card.as_bytes())?;
    pending.commit()
}

/// The card's YAML header: the `datasets` library reads `configs` to find the split's files.
const CARD_HEADER: &str = "---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
task_categories:
- text-generation
tags:
- self-instruct
- synthetic
---
";

/// The dataset card of a run's export: generator, configuration and counts.
fn dataset_card(run: &Path, records: &[SourcedRecord], seed_records: usize) -> Result<String> {
    let path = run.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let generator = match manifest.get("generator") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v
            .get("describe")
            .and_then(Value::as_str)
            .map_or_else(|| v.to_string(), str::to_owned),
        None => "-".into(),
    };
    let name = manifest
        .pointer("/config/run/name")
        .and_then(Value::as_str)
        .unwrap_or("run");
    let generated = &records[seed_records..];
    let instructions: HashSet<&str> = generated
        .iter()
        .map(|r| r.origin.split('#').next().unwrap_or(""))
        .collect();
    let seed_tasks: HashSet<&str> = records[..seed_records]
        .iter()
        .map(|r| r.origin.split('#').next().unwrap_or(""))
        .collect();
    let config = serde_json::to_string_pretty(manifest.get("config").unwrap_or(&Value::Null))?;
    let get = |pointer: &str| {
        manifest
            .pointer(pointer)
            .map_or("-".to_string(), |v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    };
    Ok(format!(
        "{CARD_HEADER}
# {name}: Self-Instruct data

Instruction-tuning data generated with the Self-Instruct method (Wang et al., 2022) by
selfinstruct {version}.

| | |
|---|---|
| generator | `{generator}` |
| records | {records} |
| generated records | {generated} (instances of {instructions} instructions) |
| seed records | {seed_records} (instances of {seeds} seed tasks) |
| seed file | `{seed_file}` (SHA-256 `{seed_sha}`) |
| run seed | {run_seed} |

## Columns

- `instruction`: the task;
- `input`: its input (empty when the task needs none);
- `output`: the expected answer;
- `origin`: `seed:<task id>#<n>` for a seed task's n-th instance, else `<instruction id>#<n>`
  (the id in the run's `instructions.parquet`).

Load it with `datasets.load_dataset(\"parquet\", data_dir=\"data\")`, or with
`load_dataset(PATH)` on this folder.

## Configuration of the run

```json
{config}
```
",
        version = get("/version"),
        records = records.len(),
        generated = generated.len(),
        instructions = instructions.len(),
        seeds = seed_tasks.len(),
        seed_file = get("/seed_tasks/path"),
        seed_sha = get("/seed_tasks/sha256"),
        run_seed = get("/seed"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::sft::SftRecord;

    fn rec(origin: &str, instruction: &str, input: &str, output: &str) -> SourcedRecord {
        SourcedRecord {
            origin: origin.into(),
            record: SftRecord {
                instruction: instruction.into(),
                input: input.into(),
                output: output.into(),
            },
        }
    }

    #[test]
    fn chat_formats_put_the_input_after_a_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let records = [
            rec("a#0", "Sort.", "3 1", "1 3"),
            rec("b#0", "Greet.", "", "Hi"),
        ];
        let out = dir.path().join("m.jsonl");
        write_records(&records, Format::Messages, &out, None).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["messages"][0]["content"], "Sort.\n\n3 1");
        assert_eq!(lines[1]["messages"][0]["content"], "Greet.");
        assert_eq!(lines[1]["messages"][1]["role"], "assistant");
    }
}

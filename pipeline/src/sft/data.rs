//! Training records from a run folder (every kept instance of every kept instruction, optionally
//! with the run's seed tasks) or from a seed-format file (self-instruct JSONL or Alpaca JSON).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use model::sft::SftRecord;

use crate::parquet::{read_parquet, string_column};
use crate::seeds::{load_seeds, SeedTask};

/// A training record and where it came from (for error messages and the data fingerprint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedRecord {
    /// `seed:<task id>#<instance>` or `<instruction id>#<instance>`.
    pub origin: String,
    pub record: SftRecord,
}

/// What `--data` pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingData {
    pub records: Vec<SourcedRecord>,
    pub seed_records: usize,
    pub machine_records: usize,
    /// The seed file used, if any.
    pub seed_file: Option<PathBuf>,
}

fn seed_records(tasks: &[SeedTask]) -> Vec<SourcedRecord> {
    tasks
        .iter()
        .flat_map(|task| {
            task.instances
                .iter()
                .enumerate()
                .map(move |(i, inst)| SourcedRecord {
                    origin: format!("seed:{}#{i}", task.id),
                    record: SftRecord {
                        instruction: task.instruction.clone(),
                        input: inst.input.clone(),
                        output: inst.output.clone(),
                    },
                })
        })
        .collect()
}

/// The seed file a run folder's manifest names: the path as written, or, when that does not
/// exist, a file of the same name inside the run folder (a run folder moved with its seed file).
pub fn manifest_seed_file(run_dir: &Path) -> Result<PathBuf> {
    let path = run_dir.join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let seed = manifest
        .pointer("/seed_tasks/path")
        .and_then(|v| v.as_str())
        .with_context(|| format!("{}: no seed_tasks.path", path.display()))?;
    let named = PathBuf::from(seed);
    Ok(match named.file_name() {
        Some(name) if !named.exists() && run_dir.join(name).is_file() => run_dir.join(name),
        _ => named,
    })
}

/// Kept instances of a run folder, in instruction order.
pub fn run_records(run_dir: &Path) -> Result<Vec<SourcedRecord>> {
    let ins_path = run_dir.join("instructions.parquet");
    let inst_path = run_dir.join("instances.parquet");
    let ins = read_parquet(&ins_path)?;
    let ids = string_column(&ins, "id", &ins_path)?;
    let texts = string_column(&ins, "instruction", &ins_path)?;
    let inst = read_parquet(&inst_path)?;
    let of = string_column(&inst, "instruction_id", &inst_path)?;
    let inputs = string_column(&inst, "input", &inst_path)?;
    let outputs = string_column(&inst, "output", &inst_path)?;
    let mut by_instruction: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (row, id) in of.into_iter().enumerate() {
        let id =
            id.with_context(|| format!("{}: row {row}: null instruction_id", inst_path.display()))?;
        by_instruction.entry(id).or_default().push((
            inputs[row].clone().unwrap_or_default(),
            outputs[row].clone().unwrap_or_default(),
        ));
    }
    let mut out = Vec::new();
    for (row, (id, text)) in ids.into_iter().zip(texts).enumerate() {
        let (Some(id), Some(text)) = (id, text) else {
            bail!("{}: row {row}: null id or instruction", ins_path.display());
        };
        for (i, (input, output)) in by_instruction
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            out.push(SourcedRecord {
                origin: format!("{id}#{i}"),
                record: SftRecord {
                    instruction: text.clone(),
                    input,
                    output,
                },
            });
        }
    }
    Ok(out)
}

/// Loads `--data`: a run folder (its kept instances, plus its seed tasks when `include_seeds`) or
/// a seed-format file (all of its instances).
pub fn load_training_data(data: &Path, include_seeds: bool) -> Result<TrainingData> {
    if data.is_dir() {
        if !data.join("instructions.parquet").is_file() {
            bail!(
                "{}: not a run folder (no instructions.parquet); pass a run folder written by \
                 `selfinstruct round` or a seed-format file",
                data.display()
            );
        }
        let machine = run_records(data)?;
        let (seeds, seed_file) = if include_seeds {
            let file = manifest_seed_file(data)?;
            let (tasks, _) = load_seeds(&file)
                .with_context(|| format!("seed file named by {}/manifest.json", data.display()))?;
            (seed_records(&tasks), Some(file))
        } else {
            (Vec::new(), None)
        };
        let (seed_records, machine_records) = (seeds.len(), machine.len());
        let mut records = seeds;
        records.extend(machine);
        return Ok(TrainingData {
            records,
            seed_records,
            machine_records,
            seed_file,
        });
    }
    let (tasks, _) = load_seeds(data)?;
    let records = seed_records(&tasks);
    Ok(TrainingData {
        seed_records: records.len(),
        machine_records: 0,
        records,
        seed_file: Some(data.to_path_buf()),
    })
}

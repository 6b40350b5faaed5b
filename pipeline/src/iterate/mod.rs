//! `selfinstruct iterate`: the self-improvement loop. Each iteration runs rounds with the current
//! generator in one run folder (so the task pool, the ROUGE-L index and the tables span all
//! iterations), checks the targets, fine-tunes the *base* model on the seeds plus everything
//! accepted so far (retraining from the base each time keeps errors from compounding across
//! iterations), exports it, and uses that checkpoint as the next generator.
//!
//! Layout (inside the run folder, beside the round tables):
//!
//! ```text
//! RUN/iterate.json                      the loop's identity (base model, rounds per iteration,
//!                                       trainer settings); a rerun with others is refused
//! RUN/iterations.parquet                one row per finished iteration
//! RUN/iterations/iter-NNNN/sft/         the iteration's SFT output (`sft/model/`: next generator)
//! ```
//!
//! Crash safety: rounds resume from their journals, SFT from its checkpoints, and a finished
//! iteration is a row of `iterations.parquet` (rewritten atomically), so rerunning the same command
//! continues where it stopped.

pub mod external;
pub mod table;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use filters::NearDupIndex;
use model::sft::Progress;
use serde_json::{json, Value};

use crate::atomic::write_atomic;
use crate::generator::local::open_local;
use crate::parquet::{read_parquet, string_column};
use crate::round::{GeneratorKind, Observer, PipelineConfig};
use crate::seeds::load_seeds;
use crate::sft::{run_sft, SftOptions, MODEL_DIR};
use table::{read_iterations, write_iterations, IterationRow};

pub const ITERATE_JSON: &str = "iterate.json";
pub const ITERATIONS: &str = "iterations.parquet";

/// Who fine-tunes the generator between iterations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trainer {
    /// The built-in burn trainer ([`crate::sft`]).
    Burn,
    /// A shell command that trains on exported data and writes a Hugging Face checkpoint
    /// (see [`external`]).
    External { command: String },
}

/// The loop's settings.
#[derive(Debug, Clone)]
pub struct IterateOptions {
    /// Round settings; the generator must be local (its model is the base model).
    pub config: PipelineConfig,
    pub root: PathBuf,
    pub base_model: PathBuf,
    pub rounds_per_iteration: u32,
    pub max_iterations: u32,
    /// Met when the run holds at least this many kept instructions.
    pub target_instructions: Option<u64>,
    /// Met when an iteration's acceptance rate (kept / candidates) reaches this.
    pub target_acceptance: Option<f64>,
    /// SFT settings (`data`, `model`, `out` are set per iteration).
    pub sft: SftOptions,
    pub trainer: Trainer,
    pub force: bool,
}

/// How the loop ended.
#[derive(Debug, Clone, PartialEq)]
pub enum IterateEnd {
    /// A target was met (the reason says which).
    TargetMet(String),
    /// `max_iterations` ran without meeting a target.
    BudgetExhausted,
    /// A stop was requested; rerun to continue.
    Interrupted,
}

/// What the loop did.
#[derive(Debug, Clone)]
pub struct IterateOutcome {
    pub rows: Vec<IterationRow>,
    pub end: IterateEnd,
}

/// Callbacks of the loop: round progress, SFT progress and iteration boundaries.
pub trait IterateObserver {
    fn rounds(&self) -> &dyn Observer;
    fn sft(&mut self) -> &mut dyn Progress;
    fn iteration_started(&mut self, _iteration: u32, _generator: &Path) {}
    fn iteration_done(&mut self, _row: &IterationRow) {}
}

fn identity(opts: &IterateOptions) -> Result<Value> {
    let trainer = match &opts.trainer {
        Trainer::Burn => json!({"kind": "burn", "sft": format!("{:?}", (
            &opts.sft.lora, opts.sft.format, opts.sft.epochs, opts.sft.lr, opts.sft.warmup_ratio,
            opts.sft.batch_tokens, opts.sft.micro_batch_tokens, opts.sft.max_seq_len,
            opts.sft.heldout_fraction, opts.sft.seed, opts.sft.weight_decay, opts.sft.max_grad_norm,
        ))}),
        Trainer::External { command } => json!({"kind": "external", "command": command}),
    };
    Ok(json!({
        "base_model": opts.base_model,
        "rounds_per_iteration": opts.rounds_per_iteration,
        "round_config": opts.config.identity()?,
        "trainer": trainer,
    }))
}

/// Checks (or writes) `iterate.json`: a run folder continues only the loop that made it.
fn open_loop(opts: &IterateOptions) -> Result<Vec<IterationRow>> {
    let path = opts.root.join(ITERATE_JSON);
    let ident = identity(opts)?;
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let old: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        if old.get("identity") != Some(&ident) {
            if !opts.force {
                bail!(
                    "{} holds a loop with different settings (base model, rounds per iteration, \
                     round config or trainer); rerun with the same settings to continue it, choose \
                     another --out, or pass --force to start over",
                    opts.root.display()
                );
            }
            remove_loop(&opts.root)?;
        } else {
            return read_iterations(&opts.root.join(ITERATIONS));
        }
    } else if opts.root.is_dir() && std::fs::read_dir(&opts.root)?.next().is_some() && !opts.force {
        bail!(
            "{} is not empty and is not an iterate run (no {ITERATE_JSON}); choose another --out or pass --force",
            opts.root.display()
        );
    }
    std::fs::create_dir_all(&opts.root)
        .with_context(|| format!("cannot create {}", opts.root.display()))?;
    write_atomic(
        &path,
        &serde_json::to_vec_pretty(&json!({"identity": ident}))?,
    )?;
    Ok(Vec::new())
}

fn remove_loop(root: &Path) -> Result<()> {
    for name in [ITERATE_JSON, ITERATIONS] {
        let p = root.join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let dir = root.join("iterations");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

/// The SFT folder of iteration `i`.
pub fn sft_dir(root: &Path, iteration: u32) -> PathBuf {
    root.join("iterations")
        .join(format!("iter-{iteration:04}"))
        .join("sft")
}

/// Mean over `instructions` of the ROUGE-L F of each to its most similar seed instruction.
fn mean_rouge_to_seed(
    seeds: &[String],
    instructions: &[String],
    config: &PipelineConfig,
) -> Result<Option<f64>> {
    if instructions.is_empty() {
        return Ok(None);
    }
    let mut index = NearDupIndex::new(config.filters.rouge)?;
    index.extend(seeds.iter().map(String::as_str))?;
    let total: f64 = instructions.iter().map(|i| index.check(i).max).sum();
    Ok(Some(total / instructions.len() as f64))
}

/// Kept instructions of rounds `first..=last` of the run folder.
fn kept_instructions(root: &Path, first: u32, last: u32) -> Result<Vec<String>> {
    let path = root.join("instructions.parquet");
    let df = read_parquet(&path)?;
    let texts = string_column(&df, "instruction", &path)?;
    let rounds = df
        .column("round")
        .and_then(|c| c.cast(&polars::prelude::DataType::UInt32))
        .with_context(|| format!("{}: column \"round\"", path.display()))?;
    let rounds = rounds
        .u32()
        .with_context(|| format!("{}: column \"round\"", path.display()))?;
    Ok(texts
        .into_iter()
        .zip((0..rounds.len()).map(|i| rounds.get(i)))
        .filter_map(|(t, r)| match (t, r) {
            (Some(t), Some(r)) if (first..=last).contains(&r) => Some(t),
            _ => None,
        })
        .collect())
}

/// Runs (or continues) the loop.
pub fn run_iterate(
    opts: &IterateOptions,
    stop: &dyn Fn() -> bool,
    observer: &mut dyn IterateObserver,
) -> Result<IterateOutcome> {
    if opts.config.generator.kind != GeneratorKind::Local {
        bail!("iterate fine-tunes a local generator: set generator.kind = \"local\" (the served model of an openai generator cannot be replaced by the loop)");
    }
    if opts.rounds_per_iteration == 0 || opts.max_iterations == 0 {
        bail!("--rounds-per-iteration and --max-iterations must be at least 1");
    }
    let mut rows = open_loop(opts)?;
    let (seed_tasks, _) = load_seeds(&opts.config.run.seed_tasks)?;
    let seeds: Vec<String> = seed_tasks.iter().map(|t| t.instruction.clone()).collect();
    let end_of = |rows: &[IterationRow]| -> Option<IterateEnd> {
        let last = rows.last()?;
        if let Some(reason) = &last.target_met {
            return Some(IterateEnd::TargetMet(reason.clone()));
        }
        (last.iteration >= opts.max_iterations).then_some(IterateEnd::BudgetExhausted)
    };
    if let Some(end) = end_of(&rows) {
        return Ok(IterateOutcome { rows, end });
    }
    loop {
        let iteration = rows.len() as u32 + 1;
        let started = Instant::now();
        let generator = match rows.last() {
            None => opts.base_model.clone(),
            Some(prev) => prev
                .next_generator
                .clone()
                .map(PathBuf::from)
                .context("the previous iteration recorded no next generator")?,
        };
        observer.iteration_started(iteration, &generator);
        let mut config = opts.config.clone();
        config.run.rounds = iteration * opts.rounds_per_iteration;
        config.generator.local.model = Some(opts.base_model.clone());
        let gen_path = generator.to_string_lossy().into_owned();
        let open = |g: &crate::round::GeneratorConfig| -> Result<Box<dyn crate::generator::Generator + Send + Sync>> {
            Ok(Box::new(open_local(Some(&gen_path), g.local.batch_size)?))
        };
        let outcome =
            crate::round::run(&config, &opts.root, false, &open, stop, observer.rounds())?;
        if outcome.interrupted {
            return Ok(IterateOutcome {
                rows,
                end: IterateEnd::Interrupted,
            });
        }
        let first = (iteration - 1) * opts.rounds_per_iteration + 1;
        let last = iteration * opts.rounds_per_iteration;
        let these: Vec<_> = outcome
            .rounds
            .iter()
            .filter(|r| (first..=last).contains(&r.round))
            .collect();
        let kept: u64 = these.iter().map(|r| r.kept).sum();
        let candidates: u64 = these.iter().map(|r| r.candidates).sum();
        let kept_total: u64 = outcome.rounds.iter().map(|r| r.kept).sum();
        let acceptance = if candidates == 0 {
            0.0
        } else {
            kept as f64 / candidates as f64
        };
        let mut drops = std::collections::BTreeMap::<String, u64>::new();
        for r in &these {
            for (reason, n) in &r.drops {
                *drops.entry(reason.clone()).or_default() += n;
            }
        }
        let instructions = kept_instructions(&opts.root, first, last)?;
        let rouge = mean_rouge_to_seed(&seeds, &instructions, &opts.config)?;
        let target_met = match (opts.target_instructions, opts.target_acceptance) {
            (Some(n), _) if kept_total >= n => {
                Some(format!("{kept_total} instructions kept (target {n})"))
            }
            (_, Some(a)) if acceptance >= a => Some(format!(
                "acceptance rate {:.1}% in iteration {iteration} (target {:.1}%)",
                100.0 * acceptance,
                100.0 * a
            )),
            _ => None,
        };
        let generator_sha256 = model::checkpoint::checkpoint_sha256(&generator)
            .with_context(|| format!("hashing the generator {}", generator.display()))?;
        let mut row = IterationRow {
            iteration,
            generator: generator.display().to_string(),
            generator_sha256,
            first_round: first,
            last_round: last,
            candidates,
            instructions_kept: kept,
            instructions_total: kept_total,
            acceptance_rate: acceptance,
            drops: serde_json::to_string(&drops)?,
            mean_rouge_to_seed: rouge,
            sft_train_loss: None,
            sft_heldout_loss: None,
            sft_tokens_per_s: None,
            next_generator: None,
            target_met: target_met.clone(),
            wall_s: 0.0,
        };
        if target_met.is_none() && iteration < opts.max_iterations {
            let out = sft_dir(&opts.root, iteration);
            let model_dir = match &opts.trainer {
                Trainer::Burn => {
                    let mut sft = opts.sft.clone();
                    sft.data = opts.root.clone();
                    sft.include_seeds = true;
                    sft.model = opts.base_model.clone();
                    sft.out = out.clone();
                    sft.resume = true;
                    sft.force = false;
                    let report = run_sft(&sft, observer.sft())?;
                    if report.stopped {
                        return Ok(IterateOutcome {
                            rows,
                            end: IterateEnd::Interrupted,
                        });
                    }
                    row.sft_train_loss = report.train_loss;
                    row.sft_heldout_loss = report.heldout_loss;
                    row.sft_tokens_per_s = Some(report.tokens_per_s);
                    out.join(MODEL_DIR)
                }
                Trainer::External { command } => {
                    external::train(command, &opts.root, &opts.base_model, &out)?
                }
            };
            row.next_generator = Some(model_dir.display().to_string());
        }
        row.wall_s = started.elapsed().as_secs_f64();
        observer.iteration_done(&row);
        rows.push(row);
        write_iterations(&opts.root.join(ITERATIONS), &rows)?;
        if let Some(end) = end_of(&rows) {
            return Ok(IterateOutcome { rows, end });
        }
    }
}

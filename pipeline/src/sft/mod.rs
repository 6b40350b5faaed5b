//! `selfinstruct sft` as a library function: training data -> checked examples -> the burn
//! trainer (full or LoRA) -> a Hugging Face checkpoint, with metrics in Parquet.
//!
//! Output folder:
//!
//! ```text
//! OUT/
//!   sft.json                settings, data source and counts, fingerprint, result
//!   train_metrics.parquet   one row per optimizer step (rewritten at every checkpoint)
//!   checkpoints/step-NNNNNN trainable parameters + optimizer state (the newest two)
//!   model/                  the trained model as a Hugging Face checkpoint (LoRA merged)
//! ```

pub mod data;
pub mod metrics;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use model::export::{export_hf, ExportOptions};
use model::load_any;
use model::lora::{attach_lora, merge_lora, LoraSettings, LoraTarget};
use model::sft::optim::AdamWSettings;
use model::sft::{
    tokenize_example, train, Budgets, Progress, PromptFormat, StepRecord, TokenizedExample,
    TrainSettings,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::atomic::write_atomic;
use data::load_training_data;

/// The backend training runs on (the CPU backend with autodiff).
pub type TrainBackend = Autodiff<Flex>;

pub const SFT_JSON: &str = "sft.json";
pub const METRICS: &str = "train_metrics.parquet";
pub const CHECKPOINTS: &str = "checkpoints";
pub const MODEL_DIR: &str = "model";

/// Everything `sft` needs.
#[derive(Debug, Clone)]
pub struct SftOptions {
    /// A run folder or a seed-format file.
    pub data: PathBuf,
    /// With a run folder: train on its seed tasks too.
    pub include_seeds: bool,
    /// The checkpoint to fine-tune (folder or GGUF).
    pub model: PathBuf,
    pub out: PathBuf,
    /// `None`: full fine-tuning.
    pub lora: Option<LoraSettings>,
    /// `None`: the checkpoint's chat template if it has one, else Alpaca.
    pub format: Option<PromptFormat>,
    pub epochs: usize,
    /// Stop after this many optimizer steps (the learning-rate schedule spans them).
    pub max_steps: Option<usize>,
    /// Also write the tokenized examples (`{"input_ids", "loss_mask"}` per line) here.
    pub write_examples: Option<PathBuf>,
    pub lr: f64,
    pub warmup_ratio: f64,
    pub batch_tokens: usize,
    pub micro_batch_tokens: usize,
    /// Examples longer than this are skipped (counted in `sft.json`).
    pub max_seq_len: usize,
    pub heldout_fraction: f64,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub resume: bool,
    /// Delete an earlier run's files in `out` and start over.
    pub force: bool,
}

impl SftOptions {
    /// The defaults for `data`, `model` and `out`: LoRA rank 16 on all seven projections.
    pub fn new(data: PathBuf, model: PathBuf, out: PathBuf) -> Self {
        Self {
            data,
            include_seeds: false,
            model,
            out,
            lora: Some(default_lora(16)),
            format: None,
            epochs: 2,
            max_steps: None,
            write_examples: None,
            lr: 2e-4,
            warmup_ratio: 0.03,
            batch_tokens: 4096,
            micro_batch_tokens: 1024,
            max_seq_len: 1024,
            heldout_fraction: 0.05,
            seed: 0,
            checkpoint_every: 50,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            resume: false,
            force: false,
        }
    }
}

/// LoRA of rank `rank` on every projection, alpha = 2 x rank, no dropout.
pub fn default_lora(rank: usize) -> LoraSettings {
    LoraSettings {
        rank,
        alpha: 2.0 * rank as f64,
        dropout: 0.0,
        targets: LoraTarget::ALL.to_vec(),
    }
}

/// What a finished (or stopped) `sft` did.
#[derive(Debug, Clone)]
pub struct SftReport {
    pub examples: usize,
    pub skipped_too_long: usize,
    pub train_examples: usize,
    pub heldout_examples: usize,
    pub steps: usize,
    pub total_steps: usize,
    /// Mean training loss of the last epoch's steps.
    pub train_loss: Option<f64>,
    pub heldout_loss: Option<f64>,
    /// Input tokens per second over the steps this process ran.
    pub tokens_per_s: f64,
    pub seconds: f64,
    /// The exported checkpoint (`None` when stopped early).
    pub exported: Option<PathBuf>,
    pub resumed_from: Option<usize>,
    pub stopped: bool,
}

/// Tokenizes and checks every record; a record the template cannot mask is an error naming it.
pub fn tokenize_all(
    records: &[data::SourcedRecord],
    bundle: &model::tokenizer::TokenizerBundle,
    format: PromptFormat,
    max_seq_len: usize,
) -> Result<(Vec<TokenizedExample>, usize)> {
    let mut examples = Vec::with_capacity(records.len());
    let mut too_long = 0;
    for r in records {
        let ex = tokenize_example(bundle, format, &r.record)
            .with_context(|| format!("training record {} ({} format)", r.origin, format.name()))?;
        if ex.len() > max_seq_len {
            too_long += 1;
        } else {
            examples.push(ex);
        }
    }
    Ok((examples, too_long))
}

/// Writes `{"input_ids": [...], "loss_mask": [0|1, ...]}` per example (the format of
/// `bench/sft/hf_sft.py`), atomically.
pub fn write_examples(path: &Path, examples: &[TokenizedExample]) -> Result<()> {
    let mut text = String::new();
    for e in examples {
        let mask: Vec<u8> = e.loss_mask.iter().map(|&m| u8::from(m)).collect();
        text.push_str(&serde_json::to_string(
            &json!({"input_ids": e.ids, "loss_mask": mask}),
        )?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// SHA-256 over the model, the examples and the settings: what a checkpoint may resume.
fn fingerprint(model_id: &str, examples: &[TokenizedExample], settings: &str) -> String {
    let mut h = Sha256::new();
    h.update(model_id.as_bytes());
    h.update(settings.as_bytes());
    for e in examples {
        h.update((e.ids.len() as u64).to_le_bytes());
        for (id, m) in e.ids.iter().zip(&e.loss_mask) {
            h.update(id.to_le_bytes());
            h.update([u8::from(*m)]);
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Readies `out`: refuses a folder with another run's files unless resuming or forced.
fn prepare_out(opts: &SftOptions) -> Result<()> {
    let out = &opts.out;
    if out.exists() && !out.is_dir() {
        bail!("{} exists and is not a folder", out.display());
    }
    let ours = [SFT_JSON, METRICS, CHECKPOINTS, MODEL_DIR];
    if out.is_dir() {
        let entries: Vec<String> = std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        let foreign: Vec<&String> = entries
            .iter()
            .filter(|n| !ours.contains(&n.as_str()))
            .collect();
        if !foreign.is_empty() {
            bail!(
                "{} holds files that are not an sft run's ({}); choose another --out",
                out.display(),
                foreign
                    .iter()
                    .take(3)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !entries.is_empty() && !opts.resume {
            if !opts.force {
                bail!(
                    "{} already holds an sft run; pass --resume to continue it or --force to start over",
                    out.display()
                );
            }
            for name in ours {
                let p = out.join(name);
                if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else if p.exists() {
                    std::fs::remove_file(&p)
                } else {
                    Ok(())
                }
                .with_context(|| format!("cannot remove {}", p.display()))?;
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

/// Progress of the trainer, passed through and used to write the metrics at every checkpoint.
struct Recorder<'a> {
    inner: &'a mut dyn Progress,
    metrics: PathBuf,
    error: Option<anyhow::Error>,
}

impl Progress for Recorder<'_> {
    fn start(&mut self, total_steps: usize, resumed_at: usize) {
        self.inner.start(total_steps, resumed_at);
    }
    fn step(&mut self, record: &StepRecord) {
        self.inner.step(record);
    }
    fn checkpoint(&mut self, step: usize, dir: &Path, history: &[StepRecord]) {
        if let Err(e) = metrics::write_metrics(&self.metrics, history) {
            self.error.get_or_insert(e);
        }
        self.inner.checkpoint(step, dir, history);
    }
    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
}

/// Runs supervised fine-tuning as `opts` says.
pub fn run_sft(opts: &SftOptions, progress: &mut dyn Progress) -> Result<SftReport> {
    let started = Instant::now();
    let data = load_training_data(&opts.data, opts.include_seeds)?;
    if data.records.is_empty() {
        bail!("{}: no training records", opts.data.display());
    }
    prepare_out(opts)?;
    let device = Default::default();
    let loaded = load_any::<TrainBackend>(&opts.model, &device)
        .with_context(|| format!("cannot load the model {}", opts.model.display()))?;
    let bundle = loaded
        .tokenizer
        .as_ref()
        .with_context(|| format!("{}: the checkpoint has no tokenizer", opts.model.display()))?;
    let format = opts
        .format
        .unwrap_or_else(|| PromptFormat::for_tokenizer(bundle));
    let (examples, skipped_too_long) =
        tokenize_all(&data.records, bundle, format, opts.max_seq_len)?;
    if examples.is_empty() {
        bail!(
            "all {} training records are longer than --max-seq-len {}",
            data.records.len(),
            opts.max_seq_len
        );
    }
    if let Some(path) = &opts.write_examples {
        write_examples(path, &examples)?;
    }
    let settings = TrainSettings {
        epochs: opts.epochs,
        max_steps: opts.max_steps,
        lr: opts.lr,
        warmup_ratio: opts.warmup_ratio,
        budgets: Budgets {
            batch_tokens: opts.batch_tokens,
            micro_batch_tokens: opts.micro_batch_tokens,
        },
        heldout_fraction: opts.heldout_fraction,
        seed: opts.seed,
        checkpoint_every: opts.checkpoint_every,
        keep_checkpoints: 2,
        eval_every: 0,
        optim: AdamWSettings {
            weight_decay: opts.weight_decay,
            max_grad_norm: (opts.max_grad_norm > 0.0).then_some(opts.max_grad_norm),
            ..AdamWSettings::default()
        },
    };
    let model_id = loaded
        .identity
        .weights_sha256()
        .with_context(|| format!("hashing {}", opts.model.display()))?
        .to_string();
    let print = format!("{settings:?}|{:?}|{}", opts.lora, format.name());
    let fp = fingerprint(&model_id, &examples, &print);

    // LoRA adapters start random: seed the backend so a rerun (and a resume) starts the same.
    <TrainBackend as burn::tensor::backend::Backend>::seed(&device, opts.seed);
    let mut net = loaded.model;
    if let Some(lora) = &opts.lora {
        net = attach_lora(net, lora);
    }
    let describe = |status: &str, report: Option<&SftReport>| {
        json!({
            "status": status,
            "data": opts.data,
            "include_seeds": opts.include_seeds,
            "seed_file": data.seed_file,
            "records": {"seed": data.seed_records, "machine": data.machine_records},
            "model": opts.model,
            "model_weights_sha256": model_id,
            "format": format.name(),
            "lora": opts.lora.as_ref().map(|l| json!({
                "rank": l.rank, "alpha": l.alpha, "dropout": l.dropout,
                "targets": l.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
            })),
            "settings": {
                "epochs": opts.epochs, "max_steps": opts.max_steps, "lr": opts.lr, "warmup_ratio": opts.warmup_ratio,
                "batch_tokens": opts.batch_tokens, "micro_batch_tokens": opts.micro_batch_tokens,
                "max_seq_len": opts.max_seq_len, "heldout_fraction": opts.heldout_fraction,
                "seed": opts.seed, "checkpoint_every": opts.checkpoint_every,
                "weight_decay": opts.weight_decay, "max_grad_norm": opts.max_grad_norm,
            },
            "fingerprint": fp,
            "result": report.map(|r| json!({
                "examples": r.examples, "skipped_too_long": r.skipped_too_long,
                "train_examples": r.train_examples, "heldout_examples": r.heldout_examples,
                "steps": r.steps, "total_steps": r.total_steps,
                "train_loss": r.train_loss, "heldout_loss": r.heldout_loss,
                "tokens_per_s": r.tokens_per_s, "seconds": r.seconds,
                "exported": r.exported, "resumed_from": r.resumed_from,
            })),
        })
    };
    let sft_json = opts.out.join(SFT_JSON);
    write_atomic(
        &sft_json,
        &serde_json::to_vec_pretty(&describe("training", None))?,
    )?;

    let mut recorder = Recorder {
        inner: progress,
        metrics: opts.out.join(METRICS),
        error: None,
    };
    let outcome = train(
        net,
        &examples,
        &settings,
        &opts.out.join(CHECKPOINTS),
        &fp,
        opts.resume,
        &mut recorder,
    )?;
    if let Some(e) = recorder.error {
        return Err(e);
    }
    metrics::write_metrics(&opts.out.join(METRICS), &outcome.history)?;
    let ran: Vec<&StepRecord> = outcome
        .history
        .iter()
        .skip(outcome.resumed_from.unwrap_or(0))
        .collect();
    let ran_tokens: usize = ran.iter().map(|r| r.tokens).sum();
    let ran_seconds: f64 = ran.iter().map(|r| r.seconds).sum();
    let last_epoch = outcome.history.last().map(|r| r.epoch);
    let last: Vec<f64> = outcome
        .history
        .iter()
        .filter(|r| Some(r.epoch) == last_epoch)
        .map(|r| r.loss)
        .collect();
    let mut report = SftReport {
        examples: examples.len(),
        skipped_too_long,
        train_examples: outcome.train_examples,
        heldout_examples: outcome.heldout_examples,
        steps: outcome.history.len(),
        total_steps: outcome.total_steps,
        train_loss: (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64),
        heldout_loss: outcome.heldout_loss,
        tokens_per_s: ran_tokens as f64 / ran_seconds.max(1e-9),
        seconds: 0.0,
        exported: None,
        resumed_from: outcome.resumed_from,
        stopped: outcome.stopped,
    };
    if !outcome.stopped {
        let merged = merge_lora(outcome.model.valid());
        let dest = opts.out.join(MODEL_DIR);
        let export = ExportOptions {
            overwrite: true,
            ..ExportOptions::default()
        };
        export_hf(&merged, &loaded.config, &opts.model, &dest, &export)
            .with_context(|| format!("exporting the trained model to {}", dest.display()))?;
        report.exported = Some(dest);
    }
    report.seconds = started.elapsed().as_secs_f64();
    let status = if report.stopped { "stopped" } else { "done" };
    write_atomic(
        &sft_json,
        &serde_json::to_vec_pretty(&describe(status, Some(&report)))?,
    )?;
    Ok(report)
}

//! The training loop: planned steps ([`super::plan`]), the masked loss ([`super::loss`]),
//! gradient accumulation over micro-batches, AdamW ([`super::optim`]), held-out loss,
//! checkpoints every N steps and resume from the last one.
//!
//! A checkpoint is a folder `step-NNNNNN/` written under a temporary name and renamed when
//! complete: `trainable.safetensors` (the trainable parameters by position), `optimizer.safetensors`
//! (AdamW moments) and `state.json` (step, update count, the run's fingerprint and the metrics so
//! far). Resuming checks the fingerprint (data and settings) so a checkpoint never continues a
//! different run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::example::TokenizedExample;
use super::loss::nll_sum;
use super::optim::{
    learning_rate, restore_values, step, trainable_values, AdamW, AdamWSettings, Moments,
};
use super::plan::{plan_epoch, split_heldout, Budgets, StepPlan};
use super::store::{read_f32_map, write_f32_map, F32Map, StoreError};
use crate::model::{ForwardError, Model};

/// What to train and how.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    pub epochs: usize,
    /// Stop after this many optimizer steps (the schedule spans them), whatever `epochs` says.
    pub max_steps: Option<usize>,
    /// Peak learning rate.
    pub lr: f64,
    /// Share of all steps spent warming up (at least one step).
    pub warmup_ratio: f64,
    pub budgets: Budgets,
    /// Share of the examples held out for the held-out loss (0: none).
    pub heldout_fraction: f64,
    pub seed: u64,
    /// Save a checkpoint every this many steps (0: only at the end of each epoch).
    pub checkpoint_every: usize,
    /// Checkpoints kept on disk (the newest).
    pub keep_checkpoints: usize,
    /// Held-out loss every this many steps (0: at the end of each epoch).
    pub eval_every: usize,
    pub optim: AdamWSettings,
}

/// One optimizer step as recorded in the metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based.
    pub step: usize,
    /// 0-based.
    pub epoch: usize,
    /// Mean negative log-likelihood per learned token of the step.
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub examples: usize,
    /// Input tokens (without padding).
    pub tokens: usize,
    /// Learned tokens.
    pub trained_tokens: usize,
    pub seconds: f64,
    /// `tokens / seconds`.
    pub tokens_per_s: f64,
    /// Mean held-out loss per learned token, where evaluated after this step.
    pub heldout_loss: Option<f64>,
}

/// Callbacks of a running training.
pub trait Progress {
    /// Called once before the first step this process runs.
    fn start(&mut self, _total_steps: usize, _resumed_at: usize) {}
    fn step(&mut self, _record: &StepRecord) {}
    /// A checkpoint was written; `history` is every step so far.
    fn checkpoint(&mut self, _step: usize, _dir: &Path, _history: &[StepRecord]) {}
    /// Polled between steps; `true` saves a checkpoint and returns early.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// A no-op [`Progress`].
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training examples (after holding out {heldout})")]
    NoExamples { heldout: usize },
    #[error(
        "the loss is {value} at step {step}, micro-batch {micro_batch} (examples {examples:?}); \
         stopping: lower the learning rate or check these examples"
    )]
    NonFinite {
        value: f64,
        step: usize,
        micro_batch: usize,
        examples: Vec<usize>,
    },
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(
        "checkpoint {path} belongs to a different run (data or settings changed); \
         start over without --resume or use another output folder"
    )]
    FingerprintMismatch { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The trained model and what happened.
pub struct TrainOutcome<B: AutodiffBackend> {
    pub model: Model<B>,
    /// Every step from the first, including those of earlier (resumed) processes.
    pub history: Vec<StepRecord>,
    /// Held-out loss after the last step (`None` without held-out examples).
    pub heldout_loss: Option<f64>,
    pub train_examples: usize,
    pub heldout_examples: usize,
    pub total_steps: usize,
    /// The checkpoint step this process resumed from.
    pub resumed_from: Option<usize>,
    /// A stop was requested; the last checkpoint holds the state.
    pub stopped: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    updates: u64,
    fingerprint: String,
    history: Vec<StepRecord>,
}

const STATE: &str = "state.json";
const TRAINABLE: &str = "trainable.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";

/// Mean loss per learned token over `indices` (no gradients kept).
pub fn mean_loss<B: burn::tensor::backend::Backend>(
    model: &Model<B>,
    examples: &[TokenizedExample],
    indices: &[usize],
    micro_batch_tokens: usize,
) -> Result<Option<f64>, ForwardError> {
    if indices.is_empty() {
        return Ok(None);
    }
    let lengths: Vec<usize> = examples.iter().map(TokenizedExample::len).collect();
    let mut total = 0.0;
    let mut count = 0;
    for mb in super::plan::micro_batches(&lengths, indices.to_vec(), micro_batch_tokens) {
        let refs: Vec<&TokenizedExample> = mb.iter().map(|&i| &examples[i]).collect();
        let (nll, n) = nll_sum(model, &refs)?;
        total += nll.into_scalar().to_f64_lossy();
        count += n;
    }
    Ok((count > 0).then(|| total / count as f64))
}

trait ToF64 {
    fn to_f64_lossy(self) -> f64;
}
impl<E: burn::tensor::ElementConversion> ToF64 for E {
    fn to_f64_lossy(self) -> f64 {
        self.elem::<f64>()
    }
}

/// Trains `model` on `examples`. With `resume`, continues from the newest checkpoint in
/// `checkpoints` whose fingerprint is `fingerprint` (and fails if the newest one has another).
pub fn train<B: AutodiffBackend>(
    mut model: Model<B>,
    examples: &[TokenizedExample],
    settings: &TrainSettings,
    checkpoints: &Path,
    fingerprint: &str,
    resume: bool,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome<B>, TrainError> {
    let (train_idx, heldout_idx) =
        split_heldout(examples.len(), settings.heldout_fraction, settings.seed);
    if train_idx.is_empty() {
        return Err(TrainError::NoExamples {
            heldout: heldout_idx.len(),
        });
    }
    let lengths: Vec<usize> = examples.iter().map(TokenizedExample::len).collect();
    let trained: Vec<usize> = examples
        .iter()
        .map(TokenizedExample::trained_tokens)
        .collect();
    let plan: Vec<StepPlan> = (0..settings.epochs)
        .flat_map(|epoch| {
            plan_epoch(
                &lengths,
                &trained,
                &train_idx,
                epoch,
                settings.seed,
                settings.budgets,
            )
        })
        .take(settings.max_steps.unwrap_or(usize::MAX))
        .collect();
    let total_steps = plan.len();
    let warmup = ((total_steps as f64 * settings.warmup_ratio).ceil() as usize).max(1);

    let mut optimizer = AdamW::<B::InnerBackend>::new(settings.optim);
    let mut history = Vec::new();
    let mut resumed_from = None;
    if resume {
        if let Some(dir) = newest_checkpoint(checkpoints)? {
            let state = load_checkpoint(&dir, fingerprint)?;
            let values = read_f32_map(&dir.join(TRAINABLE))?;
            model = restore_values(model, &by_position(values, "p")?).map_err(|e| {
                TrainError::Checkpoint {
                    path: dir.join(TRAINABLE),
                    message: e.to_string(),
                }
            })?;
            let device = model.embed_tokens.weight.val().inner().device();
            optimizer.moments = load_moments::<B>(&dir.join(OPTIMIZER), &device)?;
            optimizer.updates = state.updates;
            history = state.history;
            resumed_from = Some(state.step);
        }
    }
    let first = resumed_from.unwrap_or(0);
    progress.start(total_steps, first);

    let eval = |model: &Model<B>| -> Result<Option<f64>, TrainError> {
        Ok(mean_loss(
            &model.valid(),
            examples,
            &heldout_idx,
            settings.budgets.micro_batch_tokens,
        )?)
    };
    let mut stopped = false;
    for (index, plan_step) in plan.iter().enumerate().skip(first) {
        let step_no = index + 1;
        let started = Instant::now();
        let lr = learning_rate(settings.lr, index, warmup, total_steps);
        let mut accumulator = GradientsAccumulator::<Model<B>>::new();
        let mut loss_sum = 0.0;
        for (mb_index, mb) in plan_step.micro_batches.iter().enumerate() {
            let refs: Vec<&TokenizedExample> = mb.iter().map(|&i| &examples[i]).collect();
            let (nll, _) = nll_sum(&model, &refs)?;
            let loss = nll.div_scalar(plan_step.trained_tokens.max(1) as f64);
            let value = loss.clone().into_scalar().to_f64_lossy();
            if !value.is_finite() {
                return Err(TrainError::NonFinite {
                    value,
                    step: step_no,
                    micro_batch: mb_index,
                    examples: mb.clone(),
                });
            }
            loss_sum += value;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            accumulator.accumulate(&model, grads);
        }
        let (updated, grad_norm) = step(&mut optimizer, model, accumulator.grads(), lr);
        model = updated;
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                value: grad_norm,
                step: step_no,
                micro_batch: 0,
                examples: plan_step.micro_batches.concat(),
            });
        }
        let epoch_end = plan
            .get(index + 1)
            .is_none_or(|next| next.epoch != plan_step.epoch);
        let eval_now = if settings.eval_every == 0 {
            epoch_end
        } else {
            step_no % settings.eval_every == 0 || step_no == total_steps
        };
        // The step's time, without the held-out evaluation.
        let seconds = started.elapsed().as_secs_f64();
        let heldout_loss = if eval_now { eval(&model)? } else { None };
        let tokens: usize = plan_step
            .micro_batches
            .iter()
            .flatten()
            .map(|&i| lengths[i])
            .sum();
        let record = StepRecord {
            step: step_no,
            epoch: plan_step.epoch,
            loss: loss_sum,
            lr,
            grad_norm,
            examples: plan_step.micro_batches.iter().map(Vec::len).sum(),
            tokens,
            trained_tokens: plan_step.trained_tokens,
            seconds,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
            heldout_loss,
        };
        progress.step(&record);
        history.push(record);
        let stop = progress.stop_requested();
        let checkpoint_now = stop
            || step_no == total_steps
            || epoch_end
            || (settings.checkpoint_every > 0 && step_no % settings.checkpoint_every == 0);
        if checkpoint_now {
            let dir = save_checkpoint(
                checkpoints,
                step_no,
                &model,
                &optimizer,
                fingerprint,
                &history,
            )?;
            prune_checkpoints(checkpoints, settings.keep_checkpoints.max(1))?;
            progress.checkpoint(step_no, &dir, &history);
        }
        if stop && step_no < total_steps {
            stopped = true;
            break;
        }
    }
    let heldout_loss = history.iter().rev().find_map(|r| r.heldout_loss);
    Ok(TrainOutcome {
        model,
        history,
        heldout_loss,
        train_examples: train_idx.len(),
        heldout_examples: heldout_idx.len(),
        total_steps,
        resumed_from,
        stopped,
    })
}

fn step_dir_name(step: usize) -> String {
    format!("step-{step:06}")
}

/// The newest complete checkpoint folder (`step-NNNNNN`), if any.
pub fn newest_checkpoint(checkpoints: &Path) -> Result<Option<PathBuf>, TrainError> {
    Ok(list_checkpoints(checkpoints)?.pop().map(|(_, p)| p))
}

fn list_checkpoints(checkpoints: &Path) -> Result<Vec<(usize, PathBuf)>, TrainError> {
    let entries = match std::fs::read_dir(checkpoints) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(TrainError::Checkpoint {
                path: checkpoints.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse::<usize>().ok()?;
            e.path().join(STATE).is_file().then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn load_checkpoint(dir: &Path, fingerprint: &str) -> Result<CheckpointState, TrainError> {
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| io_error(&path, e))?;
    if state.fingerprint != fingerprint {
        return Err(TrainError::FingerprintMismatch { path });
    }
    Ok(state)
}

fn save_checkpoint<B: AutodiffBackend>(
    checkpoints: &Path,
    step_no: usize,
    model: &Model<B>,
    optimizer: &AdamW<B::InnerBackend>,
    fingerprint: &str,
    history: &[StepRecord],
) -> Result<PathBuf, TrainError> {
    std::fs::create_dir_all(checkpoints).map_err(|e| io_error(checkpoints, e))?;
    let name = step_dir_name(step_no);
    let final_dir = checkpoints.join(&name);
    let tmp = checkpoints.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
    let mut params = F32Map::new();
    for (position, value) in trainable_values(model) {
        params.insert(format!("p.{position}"), value);
    }
    write_f32_map(&tmp.join(TRAINABLE), &params)?;
    let mut moments = F32Map::new();
    for (position, m) in &optimizer.moments {
        let flat = |t: &burn::tensor::Tensor<B::InnerBackend, 1>| {
            let data = t.to_data().convert::<f32>();
            (
                vec![data.shape.iter().product()],
                data.to_vec::<f32>().unwrap_or_default(),
            )
        };
        moments.insert(format!("m.{position}"), flat(&m.m));
        moments.insert(format!("v.{position}"), flat(&m.v));
    }
    write_f32_map(&tmp.join(OPTIMIZER), &moments)?;
    let state = CheckpointState {
        step: step_no,
        updates: optimizer.updates,
        fingerprint: fingerprint.to_string(),
        history: history.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| io_error(&tmp, e))?;
    std::fs::write(tmp.join(STATE), json).map_err(|e| io_error(&tmp, e))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| io_error(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| io_error(&final_dir, e))?;
    Ok(final_dir)
}

fn prune_checkpoints(checkpoints: &Path, keep: usize) -> Result<(), TrainError> {
    let all = list_checkpoints(checkpoints)?;
    let excess = all.len().saturating_sub(keep);
    for (_, dir) in all.into_iter().take(excess) {
        std::fs::remove_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    }
    Ok(())
}

fn by_position(
    map: F32Map,
    prefix: &str,
) -> Result<BTreeMap<usize, (Vec<usize>, Vec<f32>)>, TrainError> {
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let position = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|p| p.parse::<usize>().ok())
            .ok_or_else(|| TrainError::Checkpoint {
                path: PathBuf::from(&name),
                message: format!("unexpected tensor name {name:?}"),
            })?;
        out.insert(position, value);
    }
    Ok(out)
}

fn load_moments<B: AutodiffBackend>(
    path: &Path,
    device: &burn::tensor::Device<B::InnerBackend>,
) -> Result<BTreeMap<usize, Moments<B::InnerBackend>>, TrainError> {
    let map = read_f32_map(path)?;
    let mut m = F32Map::new();
    let mut v = F32Map::new();
    for (name, value) in map {
        if name.starts_with("m.") {
            m.insert(name, value);
        } else {
            v.insert(name, value);
        }
    }
    let m = by_position(m, "m")?;
    let v = by_position(v, "v")?;
    let tensor = |(shape, values): (Vec<usize>, Vec<f32>)| {
        burn::tensor::Tensor::<B::InnerBackend, 1>::from_data(
            burn::tensor::TensorData::new(values, [shape.iter().product::<usize>()]),
            device,
        )
    };
    let mut out = BTreeMap::new();
    for (position, mv) in m {
        let vv = v
            .get(&position)
            .cloned()
            .ok_or_else(|| TrainError::Checkpoint {
                path: path.to_path_buf(),
                message: format!("second moment of parameter {position} missing"),
            })?;
        out.insert(
            position,
            Moments {
                m: tensor(mv),
                v: tensor(vv),
            },
        );
    }
    Ok(out)
}

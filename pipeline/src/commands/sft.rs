//! `selfinstruct sft`: fine-tune with a progress bar (step, loss, tokens/s, ETA); Ctrl-C saves a
//! checkpoint and `--resume` continues from it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use model::lora::{LoraSettings, LoraTarget};
use model::sft::{Progress, PromptFormat, StepRecord};

use crate::cli::{FormatArg, SftArgs, TrainFlags, EXIT_INTERRUPTED};
use crate::model_source::resolve_model;
use crate::sft::{run_sft, SftOptions, SftReport};

/// The LoRA settings of the flags (`None` with `--full`).
fn lora_of(flags: &TrainFlags) -> Result<Option<LoraSettings>> {
    if flags.full {
        return Ok(None);
    }
    if flags.lora_rank == 0 {
        bail!("--lora-rank must be at least 1 (use --full for full fine-tuning)");
    }
    if !(0.0..1.0).contains(&flags.lora_dropout) {
        bail!(
            "--lora-dropout must be in [0, 1), got {}",
            flags.lora_dropout
        );
    }
    let targets = flags
        .lora_targets
        .iter()
        .map(|t| {
            LoraTarget::parse(t.trim()).with_context(|| {
                format!("--lora-targets: unknown projection {t:?} (q, k, v, o, gate, up, down)")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(LoraSettings {
        rank: flags.lora_rank,
        alpha: flags.lora_alpha.unwrap_or(2.0 * flags.lora_rank as f64),
        dropout: flags.lora_dropout,
        targets,
    }))
}

/// `SftOptions` from the shared training flags, checked (`data`, `model`, `out` as given).
pub fn train_options(
    flags: &TrainFlags,
    data: PathBuf,
    model: PathBuf,
    out: PathBuf,
    seed: u64,
) -> Result<SftOptions> {
    let lora = lora_of(flags)?;
    let mut opts = SftOptions::new(data, model, out);
    opts.lr = flags.lr.unwrap_or(if lora.is_some() { 2e-4 } else { 2e-5 });
    opts.lora = lora;
    opts.format = match flags.format {
        FormatArg::Auto => None,
        FormatArg::Chat => Some(PromptFormat::ChatTemplate),
        FormatArg::Alpaca => Some(PromptFormat::Alpaca),
    };
    opts.epochs = flags.epochs;
    opts.max_steps = flags.max_steps;
    opts.warmup_ratio = flags.warmup_ratio;
    opts.batch_tokens = flags.batch_tokens;
    opts.micro_batch_tokens = flags.micro_batch_tokens;
    opts.max_seq_len = flags.max_seq_len;
    opts.heldout_fraction = flags.heldout;
    opts.seed = seed;
    opts.checkpoint_every = flags.checkpoint_every;
    opts.weight_decay = flags.weight_decay;
    opts.max_grad_norm = flags.max_grad_norm;
    check(&opts)?;
    Ok(opts)
}

/// `SftOptions` from the `sft` flags, checked.
pub fn options(args: &SftArgs, model: &Path) -> Result<SftOptions> {
    let mut opts = train_options(
        &args.train,
        args.data.clone(),
        model.to_path_buf(),
        args.out.clone(),
        args.seed,
    )?;
    opts.include_seeds = args.include_seeds;
    opts.write_examples = args.write_examples.clone();
    opts.resume = args.resume;
    opts.force = args.force;
    Ok(opts)
}

/// Rejects settings that cannot train.
pub fn check(opts: &SftOptions) -> Result<()> {
    if opts.epochs == 0 || opts.max_steps == Some(0) {
        bail!("--epochs and --max-steps must be at least 1");
    }
    if !(opts.lr.is_finite() && opts.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", opts.lr);
    }
    if opts.batch_tokens == 0 || opts.micro_batch_tokens == 0 || opts.max_seq_len == 0 {
        bail!("--batch-tokens, --micro-batch-tokens and --max-seq-len must be positive");
    }
    if !(0.0..1.0).contains(&opts.heldout_fraction) {
        bail!("--heldout must be in [0, 1), got {}", opts.heldout_fraction);
    }
    if !(0.0..=1.0).contains(&opts.warmup_ratio) {
        bail!(
            "--warmup-ratio must be in [0, 1], got {}",
            opts.warmup_ratio
        );
    }
    Ok(())
}

/// A progress bar over the optimizer steps.
pub(crate) struct Bar {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
}

impl Bar {
    pub(crate) fn new(stop: Arc<AtomicBool>) -> Self {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{spinner} sft {bar:30} step {pos}/{len} {msg} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Self { bar, stop }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn start(&mut self, total_steps: usize, resumed_at: usize) {
        self.bar.set_length(total_steps as u64);
        self.bar.set_position(resumed_at as u64);
        self.bar.reset_eta();
        if resumed_at > 0 {
            self.bar
                .println(format!("resuming after step {resumed_at}"));
        }
    }
    fn step(&mut self, r: &StepRecord) {
        self.bar.set_position(r.step as u64);
        let held = r
            .heldout_loss
            .map(|h| format!(" held-out {h:.4}"))
            .unwrap_or_default();
        self.bar.set_message(format!(
            "loss {:.4}{held} lr {:.2e} {:.0} tok/s",
            r.loss, r.lr, r.tokens_per_s
        ));
        tracing::info!(
            step = r.step,
            loss = r.loss,
            tokens_per_s = r.tokens_per_s,
            "sft step"
        );
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The lines printed after training.
pub fn summary(report: &SftReport) -> String {
    let loss = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut s = format!(
        "examples {} (train {}, held out {}, skipped as too long {})\n\
         steps {}/{}  train loss (last epoch) {}  held-out loss {}\n\
         {:.1} tokens/s, {:.1} s\n",
        report.examples,
        report.train_examples,
        report.heldout_examples,
        report.skipped_too_long,
        report.steps,
        report.total_steps,
        loss(report.train_loss),
        loss(report.heldout_loss),
        report.tokens_per_s,
        report.seconds,
    );
    if let Some(dir) = &report.exported {
        s.push_str(&format!(
            "wrote the fine-tuned model to {}\n",
            dir.display()
        ));
    }
    s
}

pub fn run(args: &SftArgs) -> Result<ExitCode> {
    let model = resolve_model(args.model.as_deref())?;
    let opts = options(args, &model)?;
    let stop = crate::commands::stop_flag()?;
    let mut bar = Bar::new(stop);
    let result = run_sft(&opts, &mut bar);
    bar.finish();
    let report = result?;
    print!("{}", summary(&report));
    if report.stopped {
        eprintln!(
            "interrupted after step {}: rerun with --resume to continue from the checkpoint in {}",
            report.steps,
            opts.out.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}

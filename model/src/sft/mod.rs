//! Supervised fine-tuning of the generator on instruction/response pairs (the loop's "the
//! accepted data fine-tunes the generator"), generic over any burn autodiff backend.
//!
//! Read in order: [`example`] (records -> token ids and a checked loss mask), [`plan`] (held-out
//! split, steps and micro-batches), [`loss`] (masked causal-LM loss), [`optim`] (AdamW, global
//! gradient clipping, warmup + cosine), [`trainer`] (the loop, checkpoints, resume), with
//! [`crate::lora`] for LoRA adapters and [`store`] for the checkpoint files.

pub mod example;
pub mod loss;
pub mod optim;
pub mod plan;
pub mod store;
pub mod trainer;

pub use example::{tokenize_example, MaskError, PromptFormat, SftRecord, TokenizedExample};
pub use plan::Budgets;
pub use trainer::{train, Progress, Quiet, StepRecord, TrainError, TrainOutcome, TrainSettings};

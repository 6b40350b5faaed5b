//! Filters for Self-Instruct candidates: an exact re-implementation of `rouge_score`'s ROUGE-L,
//! a near-duplicate index that makes the reference greedy decisions without comparing every pair,
//! and the rule and instance filters of the paper's pipeline.
//!
//! A filter only decides: [`Verdict::Keep`] or [`Verdict::Drop`] with a [`DropReason`]; counting
//! belongs to [`FilterStats`]. This crate knows nothing of burn or polars.

pub mod index;
pub mod instances;
pub mod lcs;
pub mod porter;
pub mod reason;
pub mod rouge;
pub mod rules;
pub mod tokenize;

pub use index::{NearDupConfig, NearDupError, NearDupIndex, Novelty};
pub use instances::{
    Instance, InstanceFilter, InstanceFilterConfig, InstanceFilterError, InstanceOutcome,
};
pub use reason::{DropReason, FilterStats, Stage, Verdict};
pub use rouge::{RougeScorer, Score};
pub use rules::{normalize_instruction, InstructionRules, RuleConfig, RuleError};
pub use tokenize::{tokenize, Tokenizer, TokenizerMode};

//! What a round produces: kept instructions with provenance, their instances, every rejection
//! with its stage and reason, and the round's counts. One struct per table row.

use std::collections::BTreeMap;
use std::fmt;

use filters::DropReason;
use serde::{Deserialize, Serialize};

use crate::dedup::Neighbours;
use crate::parse::ResponseDrop;
use crate::prompts::InstanceMethod;

/// Where in a round something was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundStage {
    /// The instruction-generation request or its response as a whole (failure, length limit,
    /// unusable text around the list).
    InstructionGeneration,
    Rules,
    Rouge,
    Classification,
    /// Instance generation, parsing and filters.
    Instances,
}

impl RoundStage {
    /// Stable name written to data files.
    pub fn as_str(self) -> &'static str {
        match self {
            RoundStage::InstructionGeneration => "instruction_generation",
            RoundStage::Rules => "rules",
            RoundStage::Rouge => "rouge",
            RoundStage::Classification => "classification",
            RoundStage::Instances => "instances",
        }
    }
}

/// Why something did not make it into the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// A filter of the `filters` crate.
    Filter(DropReason),
    /// Text of a response that was not turned into candidates.
    Response(ResponseDrop),
    /// The generator gave up on the request (after its own retries).
    GenerationFailed,
    /// An accepted instruction none of whose generated instances passed the instance filters.
    NoInstances,
}

impl RejectReason {
    /// Every reason, in pipeline order (the columns of `rounds.parquet`).
    pub fn all() -> Vec<RejectReason> {
        let mut all = vec![
            RejectReason::GenerationFailed,
            RejectReason::Response(ResponseDrop::LengthLimit),
            RejectReason::Response(ResponseDrop::UnfinishedItem),
            RejectReason::Response(ResponseDrop::Preamble),
        ];
        all.extend(DropReason::ALL.into_iter().map(RejectReason::Filter));
        all.push(RejectReason::NoInstances);
        all
    }

    /// Stable name written to data files.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Filter(r) => r.as_str(),
            RejectReason::Response(r) => r.as_str(),
            RejectReason::GenerationFailed => "generation_failed",
            RejectReason::NoInstances => "no_instances",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rejected row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A response or part of one that never became a candidate.
    Response,
    /// A candidate instruction.
    Instruction,
    /// One generated instance of an accepted instruction.
    Instance,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Response => "response",
            Unit::Instruction => "instruction",
            Unit::Instance => "instance",
        }
    }
}

/// One row of `rejected.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub round: u32,
    pub stage: RoundStage,
    pub reason: RejectReason,
    pub unit: Unit,
    /// The candidate's id (`r1-p3-s0-i2`), or the response's (`r1-p3-s0`) or prompt's (`r1-p3`).
    pub id: String,
    /// The instruction, or the dropped text of a response (empty for a failed request).
    pub text: String,
    /// The instance, for instance rows.
    pub input: Option<String>,
    pub output: Option<String>,
    /// The most similar pool entry, for ROUGE-L rejections.
    pub nearest_id: Option<String>,
    pub nearest: Option<String>,
    pub nearest_score: Option<f64>,
    /// The generator's error, or other detail.
    pub detail: Option<String>,
}

impl Rejected {
    /// A row with no instance, neighbour or detail.
    pub fn new(
        round: u32,
        stage: RoundStage,
        reason: RejectReason,
        unit: Unit,
        id: String,
        text: String,
    ) -> Self {
        Rejected {
            round,
            stage,
            reason,
            unit,
            id,
            text,
            input: None,
            output: None,
            nearest_id: None,
            nearest: None,
            nearest_score: None,
            detail: None,
        }
    }
}

/// One row of `instructions.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptInstruction {
    pub id: String,
    pub round: u32,
    pub instruction: String,
    pub is_classification: bool,
    /// The model's answer to "Is it classification?", trimmed.
    pub classification_answer: String,
    pub prompt_style: String,
    /// The instruction-generation prompt it came from (`r1-p3`) and its in-context tasks.
    pub prompt_id: String,
    pub in_context_seed_ids: Vec<String>,
    pub in_context_machine_ids: Vec<String>,
    /// The most similar pool entries when it was accepted (top-k), and their mean score.
    pub neighbours: Neighbours,
    /// Which model or endpoint wrote it.
    pub generator: String,
    /// Tokens of its instruction-generation request (shared by every item of that response).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Tokens of its instance-generation request.
    pub instances_prompt_tokens: u64,
    pub instances_completion_tokens: u64,
    /// Wall seconds of the generator calls that produced its list and its instances.
    pub instruction_seconds: f64,
    pub instances_seconds: f64,
}

/// One row of `instances.parquet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub instruction_id: String,
    pub round: u32,
    /// 0-based among the kept instances of the instruction.
    pub index: u32,
    pub input: String,
    pub output: String,
    pub method: InstanceMethod,
}

/// One row of `rounds.parquet`; also the content of a round's commit marker.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RoundStats {
    pub round: u32,
    /// Instruction-generation prompts.
    pub prompts: u64,
    /// Requests of all three steps, and how many of them failed.
    pub requests: u64,
    pub failed_requests: u64,
    /// Responses taken from the journal of an interrupted earlier attempt.
    pub reused_responses: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Items of the parsed lists: each went through the filters.
    pub candidates: u64,
    pub kept: u64,
    pub kept_classification: u64,
    pub instances_generated: u64,
    pub instances_kept: u64,
    /// Rows of `rejected.parquet` per reason name (every unit).
    pub drops: BTreeMap<String, u64>,
    /// Seconds from the round's start to its commit.
    pub wall_s: f64,
    /// Seconds spent in generator calls made by this process, and the completion tokens they
    /// produced (journaled responses excluded), for tokens/s.
    pub generate_s: f64,
    pub generated_tokens: u64,
}

impl RoundStats {
    /// Kept instructions per candidate (0 when there were none).
    pub fn acceptance_rate(&self) -> f64 {
        if self.candidates == 0 {
            0.0
        } else {
            self.kept as f64 / self.candidates as f64
        }
    }

    /// Completion tokens per second of generator calls made by this process.
    pub fn tokens_per_s(&self) -> f64 {
        if self.generate_s > 0.0 {
            self.generated_tokens as f64 / self.generate_s
        } else {
            0.0
        }
    }

    pub fn drops(&self, reason: RejectReason) -> u64 {
        self.drops.get(reason.as_str()).copied().unwrap_or(0)
    }

    /// Adds another round's counts (for run totals; `round` and seconds add up too).
    pub fn merge(&mut self, other: &RoundStats) {
        self.prompts += other.prompts;
        self.requests += other.requests;
        self.failed_requests += other.failed_requests;
        self.reused_responses += other.reused_responses;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.candidates += other.candidates;
        self.kept += other.kept;
        self.kept_classification += other.kept_classification;
        self.instances_generated += other.instances_generated;
        self.instances_kept += other.instances_kept;
        for (k, v) in &other.drops {
            *self.drops.entry(k.clone()).or_insert(0) += v;
        }
        self.wall_s += other.wall_s;
        self.generate_s += other.generate_s;
        self.generated_tokens += other.generated_tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_unique_and_cover_every_filter_reason() {
        let all = RejectReason::all();
        let mut names: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!(all.len(), DropReason::ALL.len() + 5);
        assert_eq!(
            RejectReason::Response(ResponseDrop::LengthLimit).to_string(),
            "length_limit"
        );
    }

    #[test]
    fn rates_and_merge() {
        let mut a = RoundStats {
            candidates: 4,
            kept: 1,
            generate_s: 2.0,
            generated_tokens: 10,
            ..Default::default()
        };
        a.drops.insert("too_short".into(), 3);
        assert_eq!(a.acceptance_rate(), 0.25);
        assert_eq!(a.tokens_per_s(), 5.0);
        assert_eq!(RoundStats::default().acceptance_rate(), 0.0);
        let b = a.clone();
        a.merge(&b);
        assert_eq!(
            (
                a.candidates,
                a.kept,
                a.drops(RejectReason::Filter(DropReason::TooShort))
            ),
            (8, 2, 6)
        );
    }
}

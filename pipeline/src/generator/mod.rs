//! Generators: whatever turns prompts into text. A round hands a generator every request of a
//! step at once (so a local model can batch them and an HTTP client can keep many in flight) and
//! gets one [`Generation`] per request back, in request order.
//!
//! Implementations: `openai` (any OpenAI-compatible server) and `local` (the burn model of the
//! `model` crate, on the CPU).

use serde::{Deserialize, Serialize};

pub mod local;
pub mod openai;

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// What to continue: raw text (completion style, for base models) or a conversation (chat style,
/// wrapped by the checkpoint's or server's chat template).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prompt {
    Text(String),
    Chat(Vec<ChatMessage>),
}

/// Sampling settings of one request, OpenAI's names and meanings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    pub max_tokens: u32,
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// Generation stops before the first occurrence of any of these; the stop string is not returned.
    pub stop: Vec<String>,
    /// Samples per prompt.
    pub n: u32,
    /// Per-request seed for reproducible sampling.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            stop: Vec::new(),
            n: 1,
            seed: None,
        }
    }
}

/// One request to a generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenRequest {
    pub prompt: Prompt,
    pub params: SamplingParams,
}

/// Why a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of sequence or a stop string.
    Stop,
    /// The token limit.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// One sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub text: String,
    pub finish_reason: FinishReason,
    /// Generated tokens, when the generator can count them.
    pub completion_tokens: Option<u32>,
}

/// The answer to one request: `n` samples, the prompt's token count and what produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub samples: Vec<Sample>,
    pub prompt_tokens: Option<u32>,
    /// Which model or endpoint answered (for provenance).
    pub generator: String,
}

/// Anything that answers requests. Errors are for failures the caller cannot recover from
/// (after the generator's own retries); one bad request should not lose the others' results, so
/// implementations report per-request failures in the `Result` of that request.
pub trait Generator {
    /// Answers every request, results in request order.
    fn generate(&self, requests: &[GenRequest]) -> Vec<anyhow::Result<Generation>>;

    /// A short name for manifests and provenance (model id or endpoint list).
    fn describe(&self) -> String;

    /// What a run manifest records about the generator. By default its description; a local
    /// model adds the SHA-256 of its weights, so a manifest says exactly which model wrote a run.
    fn identity(&self) -> serde_json::Value {
        serde_json::json!({ "describe": self.describe() })
    }
}

//! The local generator: the model of the `model` crate on the CPU. Generation runs on the CPU
//! engine (`model::cpu`, packed f32 weights, several times faster than burn's generic ops);
//! `SELFINSTRUCT_ENGINE=burn` runs the burn model (`flex` backend) instead, which computes the
//! same function (both are held to transformers' logits by the golden tests).
//!
//! Every request of a [`Generator::generate`] call goes to the engine together, so they decode
//! as one batch of up to `batch` rows with refill of finished slots. Prompts are tokenized by
//! the checkpoint's tokenizer: [`Prompt::Text`] as it is (with BOS when the tokenizer adds one),
//! [`Prompt::Chat`] through the checkpoint's chat template with the generation prompt appended.
//! Generation ends on the checkpoint's end-of-sequence ids, a stop string, or `max_tokens`.
//!
//! Mapping of OpenAI's parameters onto the engine's: temperature 0 is greedy; `top_p`,
//! `presence_penalty` and `frequency_penalty` have OpenAI's meaning (penalties count generated
//! tokens only); `n` samples share one prefill, sample `i` drawing from seed `seed + i`; a
//! request without a seed gets one from the clock (not reproducible, as with OpenAI).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use burn::backend::Flex;
use model::chat_template::ChatMessage as TemplateMessage;
use model::cpu::CpuModel;
use model::engine::{self, Completion, GenerationRequest};
use model::generate::FinishReason as EngineFinish;
use model::sampler::SamplingParams as EngineSampling;
use model::tokenizer::TokenizerBundle;
use model::{load_any, Config, LoadedModel, Model, ModelIdentity};

use super::{FinishReason, GenRequest, Generation, Generator, Prompt, Sample, SamplingParams};
use crate::model_source::resolve_model;

/// The CPU backend the binary runs the model on.
pub type LocalBackend = Flex;

/// Default number of sequences decoded together.
pub const DEFAULT_BATCH: usize = 32;

/// Totals of one batch job, for throughput reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobStats {
    /// Prompt tokens over all requests (each prompt counted once, however many samples).
    pub prompt_tokens: usize,
    /// Generated tokens over all samples.
    pub generated_tokens: usize,
    /// Wall time of the whole job: prefills and decode steps.
    pub elapsed: Duration,
}

/// A loaded checkpoint that answers [`GenRequest`]s.
pub struct LocalGenerator {
    info: CheckpointInfo,
    weights: Weights,
    batch: usize,
}

/// What the generator keeps of a loaded checkpoint besides its weights.
pub struct CheckpointInfo {
    pub config: Config,
    /// `None` for a checkpoint without a tokenizer (token ids in and out only).
    pub tokenizer: Option<TokenizerBundle>,
    /// Ids that end generation.
    pub eos_token_ids: Vec<u32>,
    pub identity: ModelIdentity,
}

/// The weights generation runs on: the CPU engine's packed copy (the burn model is dropped
/// once packed, so the weights are held once) or the burn model itself.
enum Weights {
    Cpu(CpuModel),
    Burn(Model<LocalBackend>),
}

/// The environment variable that picks the generation engine: `cpu` (default) or `burn`.
pub const ENGINE_VAR: &str = "SELFINSTRUCT_ENGINE";

/// Opens the model a `--model` value names (`None`: the default model, fetched on first use)
/// as a generator decoding up to `batch` sequences together. The checkpoint must have a
/// tokenizer, since requests are text.
pub fn open_local(model: Option<&str>, batch: usize) -> Result<LocalGenerator> {
    let path = resolve_model(model)?;
    let start = Instant::now();
    let loaded = load_any::<LocalBackend>(&path, &Default::default())
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    tracing::info!(path = %path.display(), seconds = start.elapsed().as_secs_f64(), "model loaded");
    if loaded.tokenizer.is_none() {
        bail!(
            "{}: the checkpoint has no tokenizer (tokenizer.json), so it cannot generate from text",
            path.display()
        );
    }
    LocalGenerator::new(loaded, batch)
}

impl LocalGenerator {
    /// Wraps a loaded checkpoint (with or without a tokenizer: without one, only
    /// [`LocalGenerator::run`] on token ids works).
    pub fn new(loaded: LoadedModel<LocalBackend>, batch: usize) -> Result<Self> {
        if batch == 0 {
            bail!("the batch size must be at least 1");
        }
        let LoadedModel {
            config,
            model,
            tokenizer,
            eos_token_ids,
            identity,
        } = loaded;
        let engine = std::env::var(ENGINE_VAR).unwrap_or_default();
        let weights = match engine.as_str() {
            "" | "cpu" => {
                let start = Instant::now();
                let cpu = CpuModel::from_model(&model).with_context(|| {
                    format!("{}: cannot prepare the CPU engine", identity.path.display())
                })?;
                tracing::debug!(
                    seconds = start.elapsed().as_secs_f64(),
                    "weights packed for the CPU engine"
                );
                Weights::Cpu(cpu)
            }
            "burn" => Weights::Burn(model),
            other => bail!("{ENGINE_VAR}={other:?}: expected `cpu` or `burn`"),
        };
        let info = CheckpointInfo {
            config,
            tokenizer,
            eos_token_ids,
            identity,
        };
        Ok(Self {
            info,
            weights,
            batch,
        })
    }

    /// The checkpoint's config, tokenizer, EOS ids and identity.
    pub fn info(&self) -> &CheckpointInfo {
        &self.info
    }

    /// Token ids of a prompt.
    pub fn encode(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        let bundle = self.info.tokenizer.as_ref().ok_or_else(|| {
            anyhow!(
                "{}: the checkpoint has no tokenizer; give token ids instead of text",
                self.info.identity.path.display()
            )
        })?;
        let ids = match prompt {
            Prompt::Text(text) => bundle.tokenizer.encode(text, true)?,
            Prompt::Chat(messages) => {
                let messages: Vec<TemplateMessage> = messages
                    .iter()
                    .map(|m| TemplateMessage::new(m.role.clone(), m.content.clone()))
                    .collect();
                bundle.encode_chat(&messages, true)?
            }
        };
        if ids.is_empty() {
            bail!("the prompt is empty after tokenization");
        }
        Ok(ids)
    }

    /// Text of generated ids (special tokens skipped); `None` without a tokenizer.
    pub fn decode(&self, ids: &[u32]) -> Option<String> {
        let bundle = self.info.tokenizer.as_ref()?;
        Some(bundle.tokenizer.decode(ids, true).unwrap_or_default())
    }

    /// The engine request for `prompt` with OpenAI-style `params`, stopping on the
    /// checkpoint's EOS ids.
    pub fn request(&self, prompt: Vec<u32>, params: &SamplingParams) -> GenerationRequest {
        GenerationRequest {
            prompt,
            sampling: EngineSampling {
                temperature: params.temperature,
                top_p: params.top_p,
                top_k: 0,
                presence_penalty: params.presence_penalty,
                frequency_penalty: params.frequency_penalty,
                seed: params.seed.unwrap_or_else(clock_seed),
            },
            max_new_tokens: params.max_tokens as usize,
            stop_token_ids: self.info.eos_token_ids.clone(),
            stop: params.stop.clone(),
            n: params.n as usize,
        }
    }

    /// Generates for all `requests` as one batch job; per request, its completions.
    pub fn run(&self, requests: &[GenerationRequest]) -> Result<(Vec<Vec<Completion>>, JobStats)> {
        let start = Instant::now();
        let decode = |ids: &[u32]| self.decode(ids).unwrap_or_default();
        let decoder: Option<engine::Decoder<'_>> = match self.info.tokenizer {
            Some(_) => Some(&decode),
            None => None,
        };
        let results = match &self.weights {
            Weights::Cpu(cpu) => engine::generate(cpu, requests, self.batch, decoder)?,
            Weights::Burn(model) => engine::generate(model, requests, self.batch, decoder)?,
        };
        let stats = JobStats {
            prompt_tokens: requests.iter().map(|r| r.prompt.len()).sum(),
            generated_tokens: results.iter().flatten().map(|c| c.tokens.len()).sum(),
            elapsed: start.elapsed(),
        };
        Ok((results, stats))
    }

    /// Checks one request before it joins the batch, so a bad one fails alone.
    fn prepare(&self, request: &GenRequest) -> Result<GenerationRequest> {
        let prompt = self.encode(&request.prompt)?;
        if request.params.n == 0 {
            bail!("n must be at least 1");
        }
        let r = self.request(prompt, &request.params);
        r.sampling.validate()?;
        let vocab = self.info.config.vocab_size;
        if let Some(id) = r.prompt.iter().find(|&&id| id as usize >= vocab) {
            bail!("prompt token {id} is outside the model's vocabulary ({vocab})");
        }
        Ok(r)
    }
}

impl Generator for LocalGenerator {
    fn generate(&self, requests: &[GenRequest]) -> Vec<Result<Generation>> {
        let prepared: Vec<Result<GenerationRequest>> =
            requests.iter().map(|r| self.prepare(r)).collect();
        let valid: Vec<GenerationRequest> = prepared
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut outcome = if valid.is_empty() {
            Ok(Vec::new())
        } else {
            self.run(&valid).map(|(results, _)| results)
        };
        let generator = self.describe();
        let mut results = match &mut outcome {
            Ok(results) => std::mem::take(results).into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        prepared
            .into_iter()
            .map(|p| {
                let request = p?;
                match &outcome {
                    Err(e) => Err(anyhow!("local generation failed: {e:#}")),
                    Ok(_) => {
                        let completions = results
                            .next()
                            .ok_or_else(|| anyhow!("the engine returned too few results"))?;
                        Ok(Generation {
                            samples: completions.into_iter().map(|c| self.sample(c)).collect(),
                            prompt_tokens: Some(request.prompt.len() as u32),
                            generator: generator.clone(),
                        })
                    }
                }
            })
            .collect()
    }

    fn describe(&self) -> String {
        format!("local:{}", self.info.identity.path.display())
    }

    fn identity(&self) -> serde_json::Value {
        let id = &self.info.identity;
        serde_json::json!({
            "describe": self.describe(),
            "kind": format!("{:?}", id.kind),
            "weight_files": id.weight_files,
            "weights_sha256": id.weights_sha256().map_err(|e| e.to_string()).map(str::to_owned)
                .unwrap_or_else(|e| format!("unavailable: {e}")),
            "architecture": format!("{:?}", self.info.config.architecture().ok()),
            "batch": self.batch,
        })
    }
}

impl LocalGenerator {
    fn sample(&self, c: Completion) -> Sample {
        let text = match c.text {
            Some(text) => text,
            None => self.decode(&c.tokens).unwrap_or_default(),
        };
        Sample {
            text,
            finish_reason: finish_reason(c.finish_reason),
            completion_tokens: Some(c.tokens.len() as u32),
        }
    }
}

/// The engine's finish reason as the generator API's.
pub fn finish_reason(reason: EngineFinish) -> FinishReason {
    match reason {
        EngineFinish::Stop => FinishReason::Stop,
        EngineFinish::Length => FinishReason::Length,
    }
}

/// A seed for a request that did not give one.
fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round may hand the generator to worker threads.
    #[test]
    fn local_generator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LocalGenerator>();
    }

    #[test]
    fn engine_finish_reasons_map_onto_openai_names() {
        assert_eq!(finish_reason(EngineFinish::Stop).as_str(), "stop");
        assert_eq!(finish_reason(EngineFinish::Length).as_str(), "length");
    }
}

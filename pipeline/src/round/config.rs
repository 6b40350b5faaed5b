//! `pipeline.toml`: every setting of a run, with the reference parameters (DESIGN.md, "The loop")
//! as defaults. Unknown keys are errors that name the key; relative paths are relative to the
//! config file's folder (or to the working directory when there is no file).
//!
//! [`DEFAULT_TOML`] is the commented file `selfinstruct init` writes; it parses back to
//! [`PipelineConfig::default`] (tested below).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use filters::{InstanceFilterConfig, NearDupConfig, RuleConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::generator::openai::{Endpoint, OpenAiConfig};
use crate::generator::SamplingParams;
use crate::prompts::{PromptConfig, PromptStyle};

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub run: RunConfig,
    pub prompts: PromptConfig,
    pub filters: FilterConfig,
    pub sampling: SamplingConfig,
    pub generator: GeneratorConfig,
}

/// What a run is and how big.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The run folder is `out_dir/name`.
    pub name: String,
    pub out_dir: PathBuf,
    /// Seeds every random choice: in-context sampling and each request's sampling seed.
    pub seed: u64,
    /// Rounds the run has when complete (a rerun with more extends it).
    pub rounds: u32,
    /// Instruction-generation prompts per round.
    pub prompts_per_round: usize,
    /// Seed tasks: self-instruct JSON Lines or Alpaca JSON.
    pub seed_tasks: PathBuf,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            name: "default".to_owned(),
            out_dir: PathBuf::from("outputs"),
            seed: 42,
            rounds: 1,
            prompts_per_round: 50,
            seed_tasks: PathBuf::from("seeds/seed_tasks.jsonl"),
        }
    }
}

/// The filters of the `filters` crate, each with its reference defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    pub rules: RuleConfig,
    pub rouge: NearDupConfig,
    pub instances: InstanceFilterConfig,
}

/// Sampling of one step, OpenAI's names and meanings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSampling {
    pub max_tokens: u32,
    /// 0 is greedy.
    pub temperature: f32,
    pub top_p: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
}

impl StepSampling {
    fn greedy(max_tokens: u32, presence_penalty: f32) -> Self {
        StepSampling {
            max_tokens,
            temperature: 0.0,
            top_p: 1.0,
            presence_penalty,
            frequency_penalty: 0.0,
        }
    }

    /// The request parameters of this step.
    pub fn params(&self, stop: Vec<String>, n: u32, seed: u64) -> SamplingParams {
        SamplingParams {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            stop,
            n,
            seed: Some(seed),
        }
    }

    fn validate(&self, key: &str) -> Result<()> {
        if self.max_tokens == 0 {
            bail!("sampling.{key}.max_tokens: must be at least 1");
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            bail!(
                "sampling.{key}.temperature: must be 0 (greedy) or more, got {}",
                self.temperature
            );
        }
        // Servers such as vLLM reject top_p = 0, so greedy steps use 1 (it does nothing at temperature 0).
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!(
                "sampling.{key}.top_p: must be in (0, 1], got {}",
                self.top_p
            );
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                bail!("sampling.{key}.{name}: must be between -2 and 2 (OpenAI's range), got {v}");
            }
        }
        Ok(())
    }
}

/// Sampling of the three generation steps. Stop strings of instruction and instance generation
/// come from `[prompts]` (they depend on the prompt text); classification's are here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// Samples per instruction-generation prompt (OpenAI's `n`). Reference: 1.
    pub instruction_samples: u32,
    /// Stop strings of classification identification. Reference: `["\n", "Task"]`.
    pub classification_stop: Vec<String>,
    /// Reference: temperature 0.7, top_p 0.5, presence_penalty 2, max_tokens 1024.
    pub instructions: StepSampling,
    /// Reference: greedy, at most 3 tokens.
    pub classification: StepSampling,
    /// Reference: greedy, presence_penalty 1.5, max_tokens 300.
    pub instances: StepSampling,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            instruction_samples: 1,
            classification_stop: vec!["\n".to_owned(), "Task".to_owned()],
            instructions: StepSampling {
                max_tokens: 1024,
                temperature: 0.7,
                top_p: 0.5,
                presence_penalty: 2.0,
                frequency_penalty: 0.0,
            },
            classification: StepSampling::greedy(3, 0.0),
            instances: StepSampling::greedy(300, 1.5),
        }
    }
}

/// Which generator answers the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorKind {
    /// The burn model in this process.
    #[default]
    Local,
    /// Any OpenAI-compatible server.
    Openai,
}

/// The local model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// A Hugging Face checkpoint folder or GGUF file; absent means the default model.
    pub model: Option<PathBuf>,
    /// Sequences decoded together.
    pub batch_size: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            model: None,
            batch_size: 32,
        }
    }
}

/// The generator section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    pub kind: GeneratorKind,
    /// Requests handed to the generator per call. Each finished chunk is saved to the round's
    /// journal (so a crash loses at most one chunk of generation), and Ctrl-C is honoured
    /// between chunks. Larger chunks keep more requests in flight together.
    pub chunk_requests: usize,
    pub local: LocalConfig,
    /// Required when `kind = "openai"` (or given by `--endpoint` and `--endpoint-model`).
    pub openai: Option<OpenAiConfig>,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            kind: GeneratorKind::Local,
            chunk_requests: 32,
            local: LocalConfig::default(),
            openai: None,
        }
    }
}

impl PipelineConfig {
    /// Reads `path`, resolving relative paths against its folder, and validates the result.
    pub fn load(path: &Path) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config: PipelineConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config
            .validate()
            .with_context(|| format!("{}: invalid setting", path.display()))?;
        Ok(config)
    }

    /// Makes the relative paths of the file relative to `base` instead.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.run.out_dir);
        fix(&mut self.run.seed_tasks);
        fix(&mut self.prompts.templates_dir);
        if let Some(model) = self.generator.local.model.as_mut() {
            fix(model);
        }
    }

    /// Checks every section; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let run = &self.run;
        if run.name.is_empty()
            || run.name.contains(['/', '\\'])
            || run.name == "."
            || run.name == ".."
        {
            bail!("run.name: {:?} is not a folder name", run.name);
        }
        if run.rounds == 0 {
            bail!("run.rounds: must be at least 1");
        }
        if run.prompts_per_round == 0 {
            bail!("run.prompts_per_round: must be at least 1");
        }
        self.prompts.validate()?;
        self.filters.rules.validate().context("filters.rules")?;
        self.filters.rouge.validate().context("filters.rouge")?;
        if self.filters.rouge.top_k == 0 {
            bail!("filters.rouge.top_k: must be at least 1 (the nearest neighbour is recorded)");
        }
        self.filters
            .instances
            .validate()
            .context("filters.instances")?;
        let s = &self.sampling;
        if s.instruction_samples == 0 {
            bail!("sampling.instruction_samples: must be at least 1");
        }
        if s.classification_stop.iter().any(String::is_empty) {
            bail!("sampling.classification_stop: an empty stop string would stop every answer at once");
        }
        s.instructions.validate("instructions")?;
        s.classification.validate("classification")?;
        s.instances.validate("instances")?;
        let g = &self.generator;
        if g.chunk_requests == 0 {
            bail!("generator.chunk_requests: must be at least 1");
        }
        if g.local.batch_size == 0 {
            bail!("generator.local.batch_size: must be at least 1");
        }
        match (g.kind, &g.openai) {
            (GeneratorKind::Openai, None) => {
                bail!("generator.openai: missing; kind = \"openai\" needs base_urls and model (or --endpoint and --endpoint-model)")
            }
            (kind, Some(openai)) => {
                openai.validate().context("generator.openai")?;
                let fits = matches!(
                    (self.prompts.style, openai.endpoint),
                    (PromptStyle::Completion, Endpoint::Completions)
                        | (PromptStyle::Chat, Endpoint::Chat)
                );
                if kind == GeneratorKind::Openai && !fits {
                    bail!(
                        "generator.openai.endpoint: {:?} cannot take prompts.style = {:?} prompts \
                         (use endpoint \"completions\" with style \"completion\", or \"chat\" with \"chat\")",
                        openai.endpoint.path(),
                        self.prompts.style.as_str()
                    );
                }
            }
            (GeneratorKind::Local, None) => {}
        }
        Ok(())
    }

    /// The settings that decide what a run produces, for checking that a resumed run is the same
    /// run. Left out: where things are (paths, URLs; the seed file and templates are compared
    /// by hash instead), how many rounds (a rerun may extend a run), and how requests are
    /// scheduled (chunks, batch size, concurrency, retries, timeouts).
    pub fn identity(&self) -> Result<Value> {
        let mut prompts = serde_json::to_value(&self.prompts)?;
        if let Some(map) = prompts.as_object_mut() {
            map.remove("templates_dir");
        }
        let generator = match self.generator.kind {
            GeneratorKind::Local => json!({"kind": "local", "model": self.generator.local.model}),
            GeneratorKind::Openai => {
                let openai = self
                    .generator
                    .openai
                    .as_ref()
                    .context("generator.openai: missing")?;
                json!({"kind": "openai", "model": openai.model, "endpoint": openai.endpoint})
            }
        };
        Ok(json!({
            "seed": self.run.seed,
            "prompts_per_round": self.run.prompts_per_round,
            "prompts": prompts,
            "filters": self.filters,
            "sampling": self.sampling,
            "generator": generator,
        }))
    }
}

/// The file `selfinstruct init` writes: every setting at its default, with what it does.
pub const DEFAULT_TOML: &str = r#"# selfinstruct pipeline config. Every value below is the default; delete what you do not change.
# Relative paths are relative to this file's folder. Unknown keys are errors.

[run]
# The run folder is out_dir/name (or --out DIR).
name = "default"
out_dir = "outputs"
# Seeds every random choice (in-context tasks, each request's sampling seed):
# the same config, seed and model give the same dataset.
seed = 42
# Rounds in the finished run; rerunning with a larger number extends the run.
rounds = 1
prompts_per_round = 50
# Self-instruct JSON Lines or Alpaca JSON.
seed_tasks = "seeds/seed_tasks.jsonl"

[prompts]
# Template files (see seeds/templates/README.md).
templates_dir = "seeds/templates"
# "completion" (raw text, base models, as in the paper) or "chat" (instruct models).
style = "completion"
# In-context instructions per prompt, and how many of them come from the machine pool once it has any.
in_context_tasks = 8
machine_in_context = 2
# Generation stops at this list number; the stop strings are derived from it.
max_list_number = 16
# "line_start" (stops match only at a line start, so "$16.99" is safe) or "reference" (the paper's strings).
stop_anchoring = "line_start"
# A list that hit the token limit: "drop_response" (the reference) or "drop_last_item".
on_length = "drop_response"
instance_stop = ["Example 6", "Task:"]

[filters.rules]
# Kept: min_words <= words <= max_words.
min_words = 4
max_words = 150
blacklist = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]
forbidden_prefixes = ["Write a program"]
prefix_ignore_ascii_case = true

[filters.rouge]
# Drop a candidate whose ROUGE-L F against the seeds and every accepted instruction is above this.
threshold = 0.7
# Most similar pool entries recorded per kept instruction.
top_k = 10
# "rouge_score" (reference; non-Latin text scores 0) or "unicode".
tokenizer = "rouge_score"
use_stemmer = false

[filters.instances]
max_instances_per_task = 5
drop_input_equals_output = true
drop_empty_output = true
drop_colon_endings = true
drop_conflicting = true

[sampling]
# Samples per instruction-generation prompt (OpenAI's n).
instruction_samples = 1
classification_stop = ["\n", "Task"]

[sampling.instructions]
max_tokens = 1024
temperature = 0.7
top_p = 0.5
presence_penalty = 2.0
frequency_penalty = 0.0

[sampling.classification]
max_tokens = 3
temperature = 0.0
top_p = 1.0
presence_penalty = 0.0
frequency_penalty = 0.0

[sampling.instances]
max_tokens = 300
temperature = 0.0
top_p = 1.0
presence_penalty = 1.5
frequency_penalty = 0.0

[generator]
# "local" (the burn model in this process) or "openai" (an OpenAI-compatible server; needs [generator.openai]).
kind = "local"
# Requests per generator call; each finished chunk is journaled, and Ctrl-C stops between chunks.
chunk_requests = 32

[generator.local]
# model = "path/to/checkpoint-or.gguf"   # absent: the default model
batch_size = 32

# [generator.openai]
# base_urls = ["http://127.0.0.1:8000"]
# model = "served-model-name"
# endpoint = "completions"        # or "chat"
# max_concurrency = 16
# max_retries = 5
# initial_backoff_ms = 500
# max_backoff_ms = 30000
# request_timeout_s = 120.0
# api_key_env = "OPENAI_API_KEY"  # the variable's name; the key itself never goes in a file
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PipelineConfig> {
        let config: PipelineConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn default_file_parses_back_to_the_defaults() {
        assert_eq!(parse(DEFAULT_TOML).unwrap(), PipelineConfig::default());
        assert_eq!(parse("").unwrap(), PipelineConfig::default());
    }

    #[test]
    fn defaults_are_the_reference_parameters() {
        let c = PipelineConfig::default();
        let p = c
            .sampling
            .instructions
            .params(c.prompts.instruction_stop(), 1, 5);
        assert_eq!(
            (p.temperature, p.top_p, p.presence_penalty, p.max_tokens),
            (0.7, 0.5, 2.0, 1024)
        );
        assert_eq!(p.seed, Some(5));
        assert_eq!(
            (
                c.sampling.classification.temperature,
                c.sampling.classification.max_tokens
            ),
            (0.0, 3)
        );
        assert_eq!(
            (
                c.sampling.instances.temperature,
                c.sampling.instances.presence_penalty
            ),
            (0.0, 1.5)
        );
        assert_eq!(c.filters.rouge.threshold, 0.7);
        assert_eq!(c.filters.rouge.top_k, 10);
        assert_eq!(c.filters.instances.max_instances_per_task, 5);
        assert_eq!(c.generator.kind, GeneratorKind::Local);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = format!(
            "{:#}",
            parse("[run]\nrounds = 2\nround_count = 3\n").unwrap_err()
        );
        assert!(err.contains("round_count"), "{err}");
        let err = format!(
            "{:#}",
            parse("[filters.rouge]\nthreshhold = 0.5\n").unwrap_err()
        );
        assert!(err.contains("threshhold"), "{err}");
        let err = format!("{:#}", parse("[sampling.instances]\nmax_tokens = 3\ntemperature = 0.0\ntop_p = 1.0\npresence_penalty = 0.0\nfrequency_penalty = 0.0\nstop = []\n").unwrap_err());
        assert!(err.contains("stop"), "{err}");
        let err = format!(
            "{:#}",
            parse("[generator.openai]\nbase_urls = [\"http://x\"]\nmodel = \"m\"\nkey = \"sk\"\n")
                .unwrap_err()
        );
        assert!(err.contains("key"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert_eq!(err("[run]\nrounds = 0\n"), "run.rounds: must be at least 1");
        assert_eq!(
            err("[run]\nname = \"a/b\"\n"),
            "run.name: \"a/b\" is not a folder name"
        );
        assert!(err("[sampling.instructions]\nmax_tokens = 10\ntemperature = 0.7\ntop_p = 0.0\npresence_penalty = 0.0\nfrequency_penalty = 0.0\n")
            .starts_with("sampling.instructions.top_p"));
        assert!(err("[generator]\nkind = \"openai\"\n").starts_with("generator.openai: missing"));
        assert!(err("[generator]\nchunk_requests = 0\n").starts_with("generator.chunk_requests"));
        assert!(err("[prompts]\nin_context_tasks = 0\n").starts_with("prompts.in_context_tasks"));
        assert!(err("[filters.rules]\nmin_words = 9\nmax_words = 3\n").starts_with("filters.rules"));
    }

    #[test]
    fn openai_section_parses() {
        let openai = "[generator]\nkind = \"openai\"\n[generator.openai]\nbase_urls = [\"http://127.0.0.1:1\"]\nmodel = \"m\"\nendpoint = \"chat\"\n";
        let err = format!("{:#}", parse(openai).unwrap_err());
        assert!(err.starts_with("generator.openai.endpoint: \"/v1/chat/completions\" cannot take prompts.style = \"completion\""), "{err}");
        let c = parse(&format!("{openai}[prompts]\nstyle = \"chat\"\n")).unwrap();
        let openai = c.generator.openai.unwrap();
        assert_eq!(openai.model, "m");
        assert_eq!(openai.max_concurrency, 16);
    }

    #[test]
    fn load_resolves_relative_paths_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipeline.toml");
        std::fs::write(
            &path,
            "[run]\nseed_tasks = \"my/seeds.jsonl\"\nout_dir = \"/abs\"\n",
        )
        .unwrap();
        let c = PipelineConfig::load(&path).unwrap();
        assert_eq!(c.run.seed_tasks, dir.path().join("my/seeds.jsonl"));
        assert_eq!(c.run.out_dir, PathBuf::from("/abs"));
        assert_eq!(c.prompts.templates_dir, dir.path().join("seeds/templates"));
        std::fs::write(&path, "[run]\nbogus = 1\n").unwrap();
        let err = format!("{:#}", PipelineConfig::load(&path).unwrap_err());
        assert!(
            err.contains("pipeline.toml") && err.contains("bogus"),
            "{err}"
        );
    }

    #[test]
    fn identity_ignores_scheduling_and_places_but_not_data_settings() {
        let a = PipelineConfig::default();
        let mut b = a.clone();
        b.run.rounds = 7;
        b.run.out_dir = PathBuf::from("elsewhere");
        b.generator.chunk_requests = 3;
        b.generator.local.batch_size = 2;
        b.prompts.templates_dir = PathBuf::from("t");
        assert_eq!(a.identity().unwrap(), b.identity().unwrap());
        let mut c = a.clone();
        c.run.seed = 1;
        assert_ne!(a.identity().unwrap(), c.identity().unwrap());
        let mut d = a.clone();
        d.filters.rouge.threshold = 0.5;
        assert_ne!(a.identity().unwrap(), d.identity().unwrap());
    }
}

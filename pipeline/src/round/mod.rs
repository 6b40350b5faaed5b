//! `selfinstruct round`: Self-Instruct rounds from the seed pool to a curated dataset in a run
//! folder, resumable after a crash. See `pipeline/ROUND.md` for the run folder's layout and the
//! resume rules.
//!
//! - [`config`]: `pipeline.toml`, its defaults (the reference parameters) and `init`'s file.
//! - [`execute`]: one round, prompts to rows.
//! - [`generate`]: a generation step through the round's [`journal`], seeded per request.
//! - [`folder`]: the run folder, commit markers, resume.
//! - [`run`]: rounds one after another.
//! - [`rows`], [`tables`]: what a round produces and its Parquet tables.

pub mod config;
pub mod execute;
pub mod folder;
pub mod generate;
pub mod journal;
pub mod rows;
pub mod run;
pub mod tables;

pub use config::{GeneratorConfig, GeneratorKind, PipelineConfig, DEFAULT_TOML};
pub use execute::{run_round, RoundInputs, RoundOutput};
pub use generate::{Interrupted, Observer, Quiet, Step};
pub use run::{run, RunOutcome};

use anyhow::{Context, Result};

use crate::generator::local::open_local;
use crate::generator::openai::OpenAiGenerator;
use crate::generator::Generator;

/// Builds the generator a run asks for: the one place that knows every generator kind.
pub fn open_generator(config: &GeneratorConfig) -> Result<Box<dyn Generator + Send + Sync>> {
    match config.kind {
        GeneratorKind::Openai => {
            let openai = config.openai.clone().context("generator.openai: missing")?;
            Ok(Box::new(OpenAiGenerator::new(openai)?))
        }
        GeneratorKind::Local => {
            let model = config
                .local
                .model
                .as_deref()
                .map(|p| p.to_string_lossy().into_owned());
            Ok(Box::new(open_local(
                model.as_deref(),
                config.local.batch_size,
            )?))
        }
    }
}

/// A scripted generator and a small run setup for the unit tests of this module.
#[cfg(test)]
pub(crate) mod testing {
    use std::cell::Cell;
    use std::path::Path;

    use anyhow::Result;

    use super::config::PipelineConfig;
    use crate::generator::{FinishReason, GenRequest, Generation, Generator, Prompt, Sample};

    const WORDS: [&str; 40] = [
        "apple", "river", "engine", "garden", "silver", "thunder", "castle", "pencil", "ocean",
        "violin", "desert", "marble", "planet", "forest", "candle", "bridge", "harbor", "lantern",
        "meadow", "rocket", "saddle", "tunnel", "window", "yogurt", "zebra", "anchor", "basket",
        "cactus", "dragon", "feather", "glacier", "hammer", "igloo", "jacket", "kettle", "ladder",
        "magnet", "needle", "orchid", "parrot",
    ];

    /// Answers by step (told apart by `max_tokens` of the default config): instruction lists
    /// built from the request seed, "Yes" for instructions that say "classify", and two examples.
    /// Every 7th list (by seed) ends on the length limit; a task whose instruction ends in
    /// "today." gets no usable instance for every 3rd seed; prompts containing
    /// `fail_prompt_containing` fail.
    pub struct Scripted {
        pub calls: Cell<usize>,
        pub fail_prompt_containing: Option<String>,
    }

    impl Scripted {
        pub fn new() -> Self {
            Scripted {
                calls: Cell::new(0),
                fail_prompt_containing: None,
            }
        }
    }

    fn words(seed: u64, n: usize) -> String {
        let mut rng = crate::prompts::SplitMix64::new(seed);
        (0..n)
            .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn text_of(p: &Prompt) -> String {
        match p {
            Prompt::Text(t) => t.clone(),
            Prompt::Chat(m) => m
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    fn sample(text: String, finish: FinishReason) -> Generation {
        Generation {
            samples: vec![Sample {
                text,
                finish_reason: finish,
                completion_tokens: Some(5),
            }],
            prompt_tokens: Some(10),
            generator: "scripted".into(),
        }
    }

    impl Generator for Scripted {
        fn generate(&self, requests: &[GenRequest]) -> Vec<Result<Generation>> {
            self.calls.set(self.calls.get() + 1);
            requests
                .iter()
                .map(|r| {
                    let prompt = text_of(&r.prompt);
                    if let Some(bad) = &self.fail_prompt_containing {
                        anyhow::ensure!(!prompt.contains(bad.as_str()), "HTTP 500 (gave up after 3 attempts)");
                    }
                    let seed = r.params.seed.unwrap_or(0);
                    Ok(match r.params.max_tokens {
                        1024 if seed % 7 == 0 => sample(format!(" Classify {}.\n10. cut", words(seed, 5)), FinishReason::Length),
                        1024 => sample(
                            format!(
                                " Classify the {} as positive or negative.\n10. Draw {}.\n11. Tiny task.\n12. Describe {} today.",
                                words(seed, 4),
                                words(seed ^ 1, 4),
                                words(seed ^ 2, 6)
                            ),
                            FinishReason::Stop,
                        ),
                        3 => {
                            let task = prompt.rsplit("Task:").next().unwrap_or("");
                            sample(if task.contains("Classify") { " Yes".into() } else { " No".into() }, FinishReason::Length)
                        }
                        _ if prompt.ends_with("today.\n") && seed % 3 == 0 => {
                            sample("Example 1\nOutput:\n\nExample 2\nInput: same\nOutput: same".into(), FinishReason::Stop)
                        }
                        _ => sample(
                            format!("Example 1\nInput: {}\nOutput: one\n\nExample 2\nInput: b\nOutput: b\n\nExample 3\nOutput: {}", words(seed, 3), words(seed ^ 3, 2)),
                            FinishReason::Stop,
                        ),
                    })
                })
                .collect()
        }

        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    /// A config over the shipped seeds and templates, small rounds.
    pub fn config(prompts: usize, rounds: u32) -> PipelineConfig {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut c = PipelineConfig::default();
        c.run.seed_tasks = repo.join("seeds/seed_tasks.jsonl");
        c.prompts.templates_dir = repo.join("seeds/templates");
        c.run.prompts_per_round = prompts;
        c.run.rounds = rounds;
        c.generator.chunk_requests = 4;
        c
    }
}

//! `selfinstruct round`: runs (or resumes) a run, with progress bars and a funnel summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{RoundArgs, EXIT_INTERRUPTED};
use crate::generator::openai::OpenAiConfig;
use crate::round::rows::{RejectReason, RoundStats};
use crate::round::{open_generator, GeneratorKind, Observer, PipelineConfig, RunOutcome, Step};
use crate::table::{percent, render};

pub fn run(args: &RoundArgs) -> Result<ExitCode> {
    let config = config_from(args)?;
    let root = args.out.clone().unwrap_or_else(|| default_folder(&config));
    let stop = crate::commands::stop_flag()?;
    let bars = Bars::default();
    let outcome = crate::round::run(
        &config,
        &root,
        args.force,
        &open_generator,
        &|| stop.load(Ordering::SeqCst),
        &bars,
    )?;
    bars.clear();
    print!("{}", summary(&outcome));
    if outcome.interrupted {
        eprintln!(
            "interrupted: {} of {} rounds committed in {}; rerun the same command to resume (generation already \
             done is reused from the round's journal)",
            outcome.committed,
            config.run.rounds,
            root.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if outcome.committed_before >= config.run.rounds {
        println!(
            "{}: all {} rounds were already committed; nothing to do",
            root.display(),
            config.run.rounds
        );
    } else {
        println!("wrote {}", root.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--config FILE`, else ./pipeline.toml if it exists, else the built-in defaults.
pub(crate) fn load_config(file: Option<&Path>) -> Result<PipelineConfig> {
    let default_file = Path::new("pipeline.toml");
    match file {
        Some(path) => PipelineConfig::load(path),
        None if default_file.exists() => {
            tracing::info!("using ./pipeline.toml");
            PipelineConfig::load(default_file)
        }
        None => Ok(PipelineConfig::default()),
    }
}

/// The config file (or the defaults) with the command line's overrides, validated.
fn config_from(args: &RoundArgs) -> Result<PipelineConfig> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(n) = args.rounds {
        config.run.rounds = n;
    }
    if let Some(n) = args.prompts_per_round {
        config.run.prompts_per_round = n;
    }
    if let Some(seed) = args.seed {
        config.run.seed = seed;
    }
    if let Some(model) = &args.model {
        config.generator.kind = GeneratorKind::Local;
        config.generator.local.model = Some(model.clone());
    }
    if !args.endpoint.is_empty() {
        config.generator.kind = GeneratorKind::Openai;
        let openai = match (config.generator.openai.take(), &args.endpoint_model) {
            (Some(section), name) => OpenAiConfig {
                base_urls: args.endpoint.clone(),
                model: name.clone().unwrap_or(section.model.clone()),
                ..section
            },
            (None, Some(name)) => OpenAiConfig::new(args.endpoint.clone(), name.clone()),
            (None, None) => bail!(
                "--endpoint needs --endpoint-model NAME (or generator.openai.model in the config)"
            ),
        };
        config.generator.openai = Some(openai);
    }
    config.validate().context("invalid setting")?;
    Ok(config)
}

/// Progress on stderr: one bar per step, with tokens/s and the round's funnel so far.
#[derive(Default)]
pub(crate) struct Bars {
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    bar: Option<ProgressBar>,
    label: String,
    tokens: u64,
    seconds: f64,
    kept: u64,
    rejected: u64,
}

impl BarState {
    fn message(&self) {
        if let Some(bar) = &self.bar {
            let rate = if self.seconds > 0.0 {
                self.tokens as f64 / self.seconds
            } else {
                0.0
            };
            bar.set_message(format!(
                "{rate:.0} tok/s, kept {} rejected {}",
                self.kept, self.rejected
            ));
        }
    }
}

impl Bars {
    pub(crate) fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(bar) = s.bar.take() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Observer for Bars {
    fn step_started(&self, round: u32, step: Step, requests: usize) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
        if step == Step::Instructions {
            (s.tokens, s.seconds, s.kept, s.rejected) = (0, 0.0, 0, 0);
        }
        s.label = format!("round {round} {}", step.as_str());
        let bar = ProgressBar::new(requests as u64);
        let template = format!(
            "{{spinner}} {} {{bar:30}} {{pos}}/{{len}} requests, {{msg}} ({{elapsed}})",
            s.label
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        s.bar = Some(bar);
        s.message();
    }

    fn requests_done(&self, done: usize, tokens: u64, seconds: f64) {
        let Ok(mut s) = self.state.lock() else { return };
        s.tokens += tokens;
        s.seconds += seconds;
        if let Some(bar) = &s.bar {
            bar.set_position(done as u64);
        }
        s.message();
    }

    fn funnel(&self, kept: u64, rejected: u64) {
        let Ok(mut s) = self.state.lock() else { return };
        (s.kept, s.rejected) = (kept, rejected);
        s.message();
    }

    fn round_committed(&self, stats: &RoundStats) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "round {} committed: {} of {} candidates kept ({}), {:.0} tok/s",
            stats.round,
            stats.kept,
            stats.candidates,
            percent(stats.kept, stats.candidates),
            stats.tokens_per_s()
        );
    }
}

/// The funnel of the whole run by reason, and one line per round.
pub fn summary(outcome: &RunOutcome) -> String {
    let mut total = RoundStats::default();
    for r in &outcome.rounds {
        total.merge(r);
    }
    let c = total.candidates;
    let mut rows = vec![
        vec!["candidates".to_owned(), c.to_string(), String::new()],
        vec![
            "kept".to_owned(),
            total.kept.to_string(),
            percent(total.kept, c),
        ],
        vec![
            "  classification".to_owned(),
            total.kept_classification.to_string(),
            percent(total.kept_classification, c),
        ],
    ];
    for reason in RejectReason::all() {
        let n = total.drops(reason);
        if n > 0 {
            rows.push(vec![
                format!("dropped: {reason}"),
                n.to_string(),
                percent(n, c),
            ]);
        }
    }
    rows.push(vec![
        "instances kept".to_owned(),
        total.instances_kept.to_string(),
        String::new(),
    ]);
    rows.push(vec![
        "failed requests".to_owned(),
        total.failed_requests.to_string(),
        percent(total.failed_requests, total.requests),
    ]);
    let mut out = render(&["run funnel", "count", "of candidates"], &rows);
    let per_round: Vec<Vec<String>> = outcome
        .rounds
        .iter()
        .map(|r| {
            vec![
                r.round.to_string(),
                r.candidates.to_string(),
                r.kept.to_string(),
                percent(r.kept, r.candidates),
                r.completion_tokens.to_string(),
                format!("{:.1}", r.wall_s),
                format!("{:.0}", r.tokens_per_s()),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render(
        &[
            "round",
            "candidates",
            "kept",
            "rate",
            "tokens out",
            "wall s",
            "tok/s",
        ],
        &per_round,
    ));
    out.push_str(&format!("generator: {}\n", outcome.generator));
    out
}

/// The run folder a config points at.
pub fn default_folder(config: &PipelineConfig) -> PathBuf {
    config.run.out_dir.join(&config.run.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn args(line: &[&str]) -> RoundArgs {
        let mut full = vec!["selfinstruct", "round"];
        full.extend_from_slice(line);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Round(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoint_flags_select_the_openai_generator() {
        let c = config_from(&args(&[
            "--endpoint",
            "http://127.0.0.1:9",
            "--endpoint-model",
            "m",
            "--rounds",
            "3",
            "--seed",
            "5",
        ]))
        .unwrap();
        assert_eq!(c.generator.kind, GeneratorKind::Openai);
        let openai = c.generator.openai.unwrap();
        assert_eq!(
            (openai.base_urls, openai.model),
            (vec!["http://127.0.0.1:9".to_string()], "m".to_string())
        );
        assert_eq!((c.run.rounds, c.run.seed), (3, 5));
        let err = config_from(&args(&["--endpoint", "http://127.0.0.1:9"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--endpoint-model"), "{err}");
        assert!(
            Cli::try_parse_from(["selfinstruct", "round", "--model", "m", "--endpoint", "u"])
                .is_err()
        );
    }

    #[test]
    fn model_flag_selects_the_local_generator() {
        let c = config_from(&args(&["--model", "some/dir", "--prompts-per-round", "4"])).unwrap();
        assert_eq!(c.generator.kind, GeneratorKind::Local);
        assert_eq!(
            c.generator.local.model.as_deref(),
            Some(Path::new("some/dir"))
        );
        assert_eq!(c.run.prompts_per_round, 4);
        assert_eq!(default_folder(&c), Path::new("outputs/default"));
    }
}

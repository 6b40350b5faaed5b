//! A run: the rounds from the last committed one up to `run.rounds`, each committed to the run
//! folder before the next starts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::generator::Generator;
use crate::prompts::Prompter;
use crate::seeds::load_seeds;

use super::config::{GeneratorConfig, PipelineConfig};
use super::execute::{run_round, RoundInputs};
use super::folder::RunFolder;
use super::generate::{Interrupted, Observer};
use super::journal::Journal;
use super::rows::RoundStats;

/// Opens the generator a run asks for (see [`super::open_generator`]).
pub type OpenGenerator<'a> =
    &'a dyn Fn(&GeneratorConfig) -> Result<Box<dyn Generator + Send + Sync>>;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub folder: PathBuf,
    /// Rounds committed in the folder now.
    pub committed: u32,
    /// Rounds committed before this invocation started.
    pub committed_before: u32,
    /// Counts of every committed round.
    pub rounds: Vec<RoundStats>,
    /// Stopped by a stop request before `run.rounds` were committed.
    pub interrupted: bool,
    pub generator: String,
}

/// Runs (or resumes) the run described by `config` in the folder `root`.
pub fn run(
    config: &PipelineConfig,
    root: &Path,
    force: bool,
    open: OpenGenerator<'_>,
    stop: &dyn Fn() -> bool,
    observer: &dyn Observer,
) -> Result<RunOutcome> {
    config.validate()?;
    let seed_path = &config.run.seed_tasks;
    let seed_bytes =
        std::fs::read(seed_path).with_context(|| format!("cannot read {}", seed_path.display()))?;
    let (seeds, _) = load_seeds(seed_path)?;
    let prompter = Prompter::load(config.prompts.clone())?;
    let templates = prompter.templates().hashes();
    let seed_sha256 = hex(&Sha256::digest(&seed_bytes));
    let identity = json!({"config": config.identity()?, "seed_tasks_sha256": seed_sha256, "templates": templates});
    let mut folder = RunFolder::open(root, &identity, force)?;
    let committed_before = folder.committed();
    // Only now the generator (loading a local model takes a while): the folder is known good.
    let generator = open(&config.generator)?;
    let description = generator.describe();
    // Absolute, so `inspect`, `sft` and `export` find the seeds from any working folder.
    let seed_abs = std::path::absolute(seed_path).unwrap_or_else(|_| seed_path.clone());
    folder.write_manifest(&json!({
        "tool": "selfinstruct",
        "version": env!("CARGO_PKG_VERSION"),
        "identity": identity,
        "config": config,
        "generator": generator.identity(),
        "templates": templates,
        "seed_tasks": {"path": seed_abs, "sha256": seed_sha256, "tasks": seeds.len()},
        "seed": config.run.seed,
    }))?;
    // A crash between a round's marker and the top-level tables leaves them one round behind.
    folder.rebuild_tables()?;
    let mut machine = folder.machine_pool()?;
    let mut interrupted = false;
    for round in folder.committed() + 1..=config.run.rounds {
        let mut journal = Journal::open(&folder.journal_path(round)?)?;
        let inputs = RoundInputs {
            config,
            prompter: &prompter,
            seeds: &seeds,
            machine: &machine,
        };
        let output = match run_round(
            &inputs,
            round,
            generator.as_ref(),
            &mut journal,
            stop,
            observer,
        ) {
            Ok(output) => output,
            Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
                interrupted = true;
                break;
            }
            Err(e) => return Err(e.context(format!("round {round}"))),
        };
        folder.commit(&output)?;
        machine.extend(
            output
                .kept
                .iter()
                .map(|k| (k.id.clone(), k.instruction.clone())),
        );
        observer.round_committed(&output.stats);
        if stop() {
            interrupted = round < config.run.rounds;
            break;
        }
    }
    Ok(RunOutcome {
        folder: root.to_path_buf(),
        committed: folder.committed(),
        committed_before,
        rounds: folder.round_stats()?,
        interrupted,
        generator: description,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::read_parquet;
    use crate::round::folder::{INSTANCES, INSTRUCTIONS, MARKER, REJECTED, ROUNDS};
    use crate::round::generate::Quiet;
    use crate::round::tables::RUN_DEPENDENT_COLUMNS;
    use crate::round::testing::{config, Scripted};
    use polars::prelude::DataFrame;

    fn scripted(_: &GeneratorConfig) -> Result<Box<dyn Generator + Send + Sync>> {
        Ok(Box::new(SendScripted))
    }

    /// `Scripted` is not `Sync` (it counts calls in a `Cell`); this one delegates to a fresh one.
    struct SendScripted;

    impl Generator for SendScripted {
        fn generate(
            &self,
            requests: &[crate::generator::GenRequest],
        ) -> Vec<Result<crate::generator::Generation>> {
            Scripted::new().generate(requests)
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    fn go(cfg: &PipelineConfig, root: &Path, force: bool) -> Result<RunOutcome> {
        run(cfg, root, force, &scripted, &|| false, &Quiet)
    }

    fn tables(root: &Path) -> Vec<DataFrame> {
        [INSTRUCTIONS, INSTANCES, REJECTED, ROUNDS]
            .iter()
            .map(|name| {
                let df = read_parquet(&root.join(name)).unwrap();
                let keep: Vec<String> = df
                    .get_column_names()
                    .into_iter()
                    .filter(|c| !RUN_DEPENDENT_COLUMNS.contains(&c.as_str()))
                    .map(|c| c.to_string())
                    .collect();
                df.select(keep).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_run_resumed_round_by_round_equals_an_uninterrupted_one() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(6, 3);
        let whole = go(&cfg, &dir.path().join("whole"), false).unwrap();
        assert_eq!(
            (whole.committed, whole.committed_before, whole.interrupted),
            (3, 0, false)
        );

        let stepwise = dir.path().join("stepwise");
        for rounds in 1..=3 {
            let out = go(
                &PipelineConfig {
                    run: crate::round::config::RunConfig {
                        rounds,
                        ..cfg.run.clone()
                    },
                    ..cfg.clone()
                },
                &stepwise,
                false,
            )
            .unwrap();
            assert_eq!(out.committed, rounds);
        }
        // Round 3 crashed after writing its parts, before its marker: the parts are discarded and
        // the round is run again; the tables come out the same.
        let round3 = stepwise.join("rounds/round-0003");
        std::fs::remove_file(round3.join(MARKER)).unwrap();
        std::fs::write(round3.join(INSTRUCTIONS), b"half-written garbage").unwrap();
        std::fs::write(stepwise.join(INSTRUCTIONS), b"stale").unwrap();
        let again = go(&cfg, &stepwise, false).unwrap();
        assert_eq!((again.committed_before, again.committed), (2, 3));
        // The rerun answered every request of round 3 from its journal.
        assert_eq!(again.rounds[2].reused_responses, again.rounds[2].requests);
        assert_eq!(tables(&dir.path().join("whole")), tables(&stepwise));
        let kept = read_parquet(&stepwise.join(INSTRUCTIONS)).unwrap();
        assert_eq!(
            kept.height() as u64,
            whole.rounds.iter().map(|r| r.kept).sum::<u64>()
        );

        // Nothing left to do.
        let done = go(&cfg, &stepwise, false).unwrap();
        assert_eq!((done.committed_before, done.committed), (3, 3));
    }

    #[test]
    fn later_rounds_use_the_machine_pool() {
        let dir = tempfile::tempdir().unwrap();
        go(&config(5, 2), dir.path(), false).unwrap();
        let df = read_parquet(&dir.path().join(INSTRUCTIONS)).unwrap();
        let rounds = df
            .column("round")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<_>>();
        let machine = df
            .column("in_context_machine_ids")
            .unwrap()
            .list()
            .unwrap()
            .clone();
        for (i, round) in rounds.iter().enumerate() {
            let n = machine.get_as_series(i).unwrap().len();
            assert_eq!(n, if *round == 1 { 0 } else { 2 }, "row {i}");
        }
    }

    #[test]
    fn different_settings_are_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(3, 1);
        go(&cfg, dir.path(), false).unwrap();
        let mut other = cfg.clone();
        other.run.seed = 1;
        other.filters.rouge.threshold = 0.5;
        let err = format!("{:#}", go(&other, dir.path(), false).unwrap_err());
        assert!(
            err.contains("different settings (config.filters, config.seed)"),
            "{err}"
        );
        let out = go(&other, dir.path(), true).unwrap();
        assert_eq!((out.committed_before, out.committed), (0, 1));
        // More rounds is the same run, extended.
        let more = PipelineConfig {
            run: crate::round::config::RunConfig {
                rounds: 2,
                ..other.run.clone()
            },
            ..other.clone()
        };
        assert_eq!(go(&more, dir.path(), false).unwrap().committed_before, 1);
    }

    #[test]
    fn a_folder_that_is_not_a_run_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = format!("{:#}", go(&config(2, 1), dir.path(), false).unwrap_err());
        assert!(err.contains("not a run folder"), "{err}");
        go(&config(2, 1), dir.path(), true).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn stop_request_keeps_committed_rounds_and_reports_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(4, 3);
        let calls = std::cell::Cell::new(0);
        // Stop once round 2 has started generating.
        let stop = || {
            calls.set(calls.get() + 1);
            std::fs::metadata(dir.path().join("rounds/round-0002/journal.jsonl"))
                .is_ok_and(|m| m.len() > 0)
        };
        let out = run(&cfg, dir.path(), false, &scripted, &stop, &Quiet).unwrap();
        assert!(out.interrupted);
        assert_eq!(out.committed, 1);
        let resumed = go(&cfg, dir.path(), false).unwrap();
        assert_eq!(
            (
                resumed.committed_before,
                resumed.committed,
                resumed.interrupted
            ),
            (1, 3, false)
        );
        assert!(resumed.rounds[1].reused_responses > 0);
    }
}

//! `selfinstruct inspect`: what a run produced and why the rest was dropped, from its Parquet
//! tables: the filter funnel, the paper's Table 1, ROUGE-L distributions, verb-noun diversity,
//! acceptance, throughput and SFT loss per round and iteration, and samples of kept and rejected
//! records. [`inspect`] builds a [`Report`]; [`text`] renders it for the terminal, [`plots`] as
//! PNG/SVG charts and [`html`] as one self-contained page.

pub mod funnel;
pub mod html;
pub mod load;
pub mod plots;
pub mod similarity;
pub mod stats;
pub mod text;
pub mod verbs;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::round::rows::RejectReason;
use funnel::Funnel;
use load::{IterationRow, RejectedRow, RoundRow, Run, TrainPoint};
use similarity::Similarity;
use stats::Table1;
use verbs::VerbNoun;

/// Verbs and nouns per verb in the diversity summary (the paper's Figure 2).
pub const TOP_VERBS: usize = 20;
pub const TOP_NOUNS: usize = 4;

/// What to inspect besides the run's own tables.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Records of each kind in the samples.
    pub sample: usize,
    /// Only rejected records with this reason in the sample.
    pub reason: Option<String>,
    /// Seed file (default: the one the manifest names).
    pub seeds: Option<PathBuf>,
    /// An SFT output folder whose `train_metrics.parquet` gives a loss curve.
    pub sft: Option<PathBuf>,
}

/// A kept instruction with its first instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptSample {
    pub id: String,
    pub round: u32,
    pub instruction: String,
    pub is_classification: bool,
    pub instances: u64,
    pub input: Option<String>,
    pub output: Option<String>,
}

/// Samples of kept and rejected records.
#[derive(Debug, Clone, Serialize)]
pub struct Samples {
    pub kept: Vec<KeptSample>,
    pub rejected: Vec<RejectedRow>,
}

/// The loss curve of one SFT output folder.
#[derive(Debug, Clone, Serialize)]
pub struct LossCurve {
    pub source: String,
    pub points: Vec<TrainPoint>,
}

/// Everything `inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_dir: String,
    pub generator: Option<String>,
    pub seed_file: String,
    pub seed_tasks: u64,
    /// Per round, per iteration (when the run has them), then `all`.
    pub funnels: Vec<Funnel>,
    pub table1: Table1,
    pub similarity: Similarity,
    pub verb_noun: VerbNoun,
    pub rounds: Vec<RoundRow>,
    pub iterations: Option<Vec<IterationRow>>,
    pub loss_curves: Vec<LossCurve>,
    pub samples: Samples,
    /// Places where the run's tables disagree with each other.
    pub warnings: Vec<String>,
}

/// Reads a run folder and computes its report.
pub fn inspect(dir: &Path, options: &Options) -> Result<Report> {
    let start = Instant::now();
    let run = Run::open(dir)?;
    tracing::debug!(elapsed = ?start.elapsed(), "tables read");
    let (seed_path, seeds) = run.seeds(options.seeds.as_deref())?;
    let config = similarity::rouge_config(&run.manifest)?;
    let similarity = similarity::similarity(&run.instructions, &seeds, config)?;
    tracing::debug!(elapsed = ?start.elapsed(), "similarity");
    let verb_noun = verbs::verb_noun_summary(
        run.instructions.iter().map(|i| i.instruction.as_str()),
        TOP_VERBS,
        TOP_NOUNS,
    );
    tracing::debug!(elapsed = ?start.elapsed(), "verb-noun");
    let mut loss_curves = Vec::new();
    let mut sft_dirs: Vec<PathBuf> = options.sft.iter().cloned().collect();
    sft_dirs.extend(
        run.iterations
            .iter()
            .flatten()
            .map(|it| crate::iterate::sft_dir(dir, it.iteration))
            .filter(|d| d.join(crate::sft::METRICS).exists()),
    );
    for dir in sft_dirs {
        loss_curves.push(LossCurve {
            source: dir.display().to_string(),
            points: load::read_train_metrics(&dir)?,
        });
    }
    let samples = samples(&run, options)?;
    tracing::debug!(elapsed = ?start.elapsed(), "samples");
    let funnels = funnel::funnels(&run.rounds, &run.rejected);
    tracing::debug!(elapsed = ?start.elapsed(), "funnels");
    let table1 = stats::table1(&run.instructions, &run.instances);
    tracing::debug!(elapsed = ?start.elapsed(), "Table 1");
    let warnings = warnings(&funnels, run.instructions.len() as u64);
    Ok(Report {
        run_dir: dir.display().to_string(),
        generator: run.generator(),
        seed_file: seed_path.display().to_string(),
        seed_tasks: seeds.len() as u64,
        funnels,
        table1,
        similarity,
        verb_noun,
        rounds: run.rounds,
        iterations: run.iterations,
        loss_curves,
        samples,
        warnings,
    })
}

/// The checks of `pipeline/ROUND.md`'s funnel invariant, per scope, and of the run's kept count
/// against `instructions.parquet`.
fn warnings(funnels: &[Funnel], instructions: u64) -> Vec<String> {
    let mut out: Vec<String> = funnels
        .iter()
        .filter(|f| !f.consistent())
        .map(|f| {
            format!(
                "{}: rounds.parquet keeps {} but the candidates minus their rejections leave {}",
                f.scope,
                f.kept,
                f.steps.last().map_or(0, |s| s.remaining)
            )
        })
        .collect();
    if let Some(all) = funnels.last() {
        if all.kept != instructions {
            out.push(format!(
                "rounds.parquet keeps {} instructions but instructions.parquet has {instructions}",
                all.kept
            ));
        }
    }
    out
}

/// `n` indices spread evenly over `0..len` (all of them when `len <= n`).
fn spread(len: usize, n: usize) -> Vec<usize> {
    if len <= n {
        return (0..len).collect();
    }
    (0..n).map(|i| i * len / n).collect()
}

fn samples(run: &Run, options: &Options) -> Result<Samples> {
    let rejected: Vec<&RejectedRow> = match &options.reason {
        None => run.rejected.iter().collect(),
        Some(reason) => {
            let mut known: BTreeSet<String> = RejectReason::all()
                .into_iter()
                .map(|r| r.as_str().to_string())
                .collect();
            known.extend(run.rejected.iter().map(|r| r.reason.clone()));
            if !known.contains(reason) {
                bail!(
                    "--reason {reason:?}: not a rejection reason; known: {}",
                    known.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            run.rejected
                .iter()
                .filter(|r| &r.reason == reason)
                .collect()
        }
    };
    let mut first_instance: HashMap<&str, (u64, usize)> = HashMap::new();
    for (i, inst) in run.instances.iter().enumerate() {
        first_instance
            .entry(inst.instruction_id.as_str())
            .or_insert((0, i))
            .0 += 1;
    }
    let kept = spread(run.instructions.len(), options.sample)
        .into_iter()
        .map(|i| {
            let ins = &run.instructions[i];
            let (count, first) = first_instance
                .get(ins.id.as_str())
                .map_or((0, None), |&(n, f)| (n, Some(&run.instances[f])));
            KeptSample {
                id: ins.id.clone(),
                round: ins.round,
                instruction: ins.instruction.clone(),
                is_classification: ins.is_classification,
                instances: count,
                input: first.map(|f| f.input.clone()),
                output: first.map(|f| f.output.clone()),
            }
        })
        .collect();
    Ok(Samples {
        kept,
        rejected: spread(rejected.len(), options.sample)
            .into_iter()
            .map(|i| rejected[i].clone())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_and_bounded() {
        assert_eq!(spread(3, 5), [0, 1, 2]);
        assert_eq!(spread(10, 3), [0, 3, 6]);
        assert_eq!(spread(10, 0), Vec::<usize>::new());
    }
}

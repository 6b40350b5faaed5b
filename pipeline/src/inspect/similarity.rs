//! How far the generated instructions are from the seeds and from each other: the paper's
//! Figure 3 (ROUGE-L of each generated instruction with its most similar seed) and the same for
//! the most similar other generated instruction.
//!
//! - **Nearest seed** is exact. A run records, for every kept instruction, the top-k most similar
//!   entries of the pool it was checked against (all seeds plus the instructions kept before it),
//!   best first. When a seed is among them, the first seed listed is the most similar seed and its
//!   recorded score is taken. Only the instructions with no seed in their top-k are scored against
//!   the seed file again, with the run's own ROUGE-L settings (`filters.rouge` of the manifest),
//!   in parallel.
//! - **Nearest other generated instruction** comes from the same record: the first generated entry
//!   of the top-k, i.e. the most similar instruction kept *before* it (later ones were compared
//!   with it when they were checked, and appear in their own record). An instruction whose top-k
//!   holds no generated entry is counted apart (`without_generated_neighbour`): either nothing was
//!   kept before it, or its nearest generated one scored below its k-th neighbour.

use std::collections::HashSet;

use anyhow::{Context, Result};
use filters::{NearDupConfig, NearDupIndex};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::load::Instruction;
use crate::seeds::SeedTask;

/// Histogram bins: `[i/10, (i+1)/10)`, the last one closed at 1.
pub const BINS: usize = 10;

/// A distribution of ROUGE-L F-measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Counts per bin of width 0.1 from 0 to 1.
    pub bins: Vec<u64>,
    pub count: u64,
    pub mean: f64,
    pub median: f64,
}

impl Histogram {
    pub fn of(mut scores: Vec<f64>) -> Histogram {
        let mut bins = vec![0u64; BINS];
        for &s in &scores {
            let i = ((s * BINS as f64).floor().max(0.0) as usize).min(BINS - 1);
            bins[i] += 1;
        }
        let count = scores.len() as u64;
        let mean = if scores.is_empty() {
            0.0
        } else {
            scores.iter().sum::<f64>() / scores.len() as f64
        };
        scores.sort_by(f64::total_cmp);
        let median = match scores.len() {
            0 => 0.0,
            n if n % 2 == 1 => scores[n / 2],
            n => (scores[n / 2 - 1] + scores[n / 2]) / 2.0,
        };
        Histogram {
            bins,
            count,
            mean,
            median,
        }
    }

    /// The label of bin `i`, e.g. `0.3-0.4`.
    pub fn bin_label(i: usize) -> String {
        format!(
            "{:.1}-{:.1}",
            i as f64 / BINS as f64,
            (i + 1) as f64 / BINS as f64
        )
    }
}

/// Both distributions, and how each score was obtained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Similarity {
    pub to_nearest_seed: Histogram,
    /// Nearest-seed scores taken from the run's recorded top-k.
    pub seed_scores_recorded: u64,
    /// Nearest-seed scores computed again against the seed file.
    pub seed_scores_computed: u64,
    pub to_nearest_generated: Histogram,
    pub without_generated_neighbour: u64,
}

/// The run's ROUGE-L settings (`config.filters.rouge` of the manifest), else the defaults.
pub fn rouge_config(manifest: &Value) -> Result<NearDupConfig> {
    match manifest.pointer("/config/filters/rouge") {
        Some(v) => serde_json::from_value(v.clone())
            .context("manifest.json: config.filters.rouge is not a ROUGE-L configuration"),
        None => Ok(NearDupConfig::default()),
    }
}

/// Both distributions for the kept instructions of a run.
pub fn similarity(
    instructions: &[Instruction],
    seeds: &[SeedTask],
    config: NearDupConfig,
) -> Result<Similarity> {
    let seed_ids: HashSet<&str> = seeds.iter().map(|s| s.id.as_str()).collect();
    let recorded: Vec<Option<f64>> = instructions
        .iter()
        .map(|ins| {
            ins.most_similar_ids
                .iter()
                .zip(&ins.most_similar_scores)
                .find(|(id, _)| seed_ids.contains(id.as_str()))
                .map(|(_, &s)| s)
        })
        .collect();
    let missing = recorded.iter().filter(|r| r.is_none()).count() as u64;
    let computed: Vec<f64> = if missing == 0 {
        Vec::new()
    } else {
        let mut index = NearDupIndex::new(NearDupConfig { top_k: 1, ..config })?;
        index.extend(seeds.iter().map(|s| s.instruction.as_str()))?;
        instructions
            .par_iter()
            .zip(&recorded)
            .filter(|(_, r)| r.is_none())
            .map(|(ins, _)| index.check(&ins.instruction).max)
            .collect()
    };
    let mut computed = computed.into_iter();
    let to_seed: Vec<f64> = recorded
        .iter()
        .map(|r| r.or_else(|| computed.next()).unwrap_or(0.0))
        .collect();
    let to_generated: Vec<f64> = instructions
        .iter()
        .filter_map(|ins| {
            ins.most_similar_ids
                .iter()
                .zip(&ins.most_similar_scores)
                .find(|(id, _)| !seed_ids.contains(id.as_str()))
                .map(|(_, &s)| s)
        })
        .collect();
    Ok(Similarity {
        to_nearest_seed: Histogram::of(to_seed),
        seed_scores_recorded: instructions.len() as u64 - missing,
        seed_scores_computed: missing,
        without_generated_neighbour: (instructions.len() - to_generated.len()) as u64,
        to_nearest_generated: Histogram::of(to_generated),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(id: &str, text: &str) -> SeedTask {
        SeedTask {
            id: id.into(),
            name: id.into(),
            instruction: text.into(),
            instances: vec![],
            is_classification: Some(false),
        }
    }

    fn ins(text: &str, ids: &[&str], scores: &[f64]) -> Instruction {
        Instruction {
            id: text.into(),
            round: 1,
            instruction: text.into(),
            is_classification: false,
            most_similar_ids: ids.iter().map(|s| s.to_string()).collect(),
            most_similar_scores: scores.to_vec(),
        }
    }

    #[test]
    fn bins_and_summary() {
        let h = Histogram::of(vec![0.0, 0.05, 0.1, 0.95, 1.0]);
        assert_eq!(h.bins, [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(h.median, 0.1);
        assert_eq!(Histogram::bin_label(3), "0.3-0.4");
    }

    #[test]
    fn recorded_scores_are_used_and_missing_ones_computed() {
        let seeds = [
            seed("s1", "name the capital of the country"),
            seed("s2", "sort these numbers"),
        ];
        let list = [
            ins("a", &["r1-x", "s2"], &[0.6, 0.4]),
            // No seed in the record: computed. LCS "sort these numbers" = 3 of 3 and 4 tokens.
            ins("sort these numbers quickly", &["r1-x"], &[0.2]),
        ];
        let sim = similarity(&list, &seeds, NearDupConfig::default()).unwrap();
        assert_eq!(sim.seed_scores_recorded, 1);
        assert_eq!(sim.seed_scores_computed, 1);
        let f = 2.0 * 1.0 * 0.75 / 1.75;
        assert_eq!(sim.to_nearest_seed.count, 2);
        assert!((sim.to_nearest_seed.mean - (0.4 + f) / 2.0).abs() < 1e-12);
        assert_eq!(sim.to_nearest_generated.bins[6], 1);
        assert_eq!(sim.to_nearest_generated.bins[2], 1);
        assert_eq!(sim.without_generated_neighbour, 0);
    }
}

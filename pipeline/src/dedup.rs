//! The dedup job: rule filters, then the ROUGE-L near-duplicate index, over instructions in input
//! order, exactly as the reference greedy loop decides (a candidate is compared with the seeds
//! and with every instruction kept before it).

use anyhow::{Context, Result};
use filters::{
    normalize_instruction, DropReason, FilterStats, InstructionRules, NearDupConfig, NearDupIndex,
    RuleConfig, Stage, Verdict,
};

use crate::records::InstructionRecord;

/// Survivors of the rule filters sent to the index per batch.
const CHUNK: usize = 1024;

/// What the dedup job is asked to do.
#[derive(Debug, Clone, Default)]
pub struct DedupOptions {
    /// Rule filters to apply first; `None` skips them (ROUGE-L only).
    pub rules: Option<RuleConfig>,
    pub near_dup: NearDupConfig,
}

/// Something already in the pool before the input is read (seeds passed with `--against`).
#[derive(Debug, Clone)]
pub struct PoolEntry {
    pub id: String,
    pub instruction: String,
}

/// The most similar pool entries of a candidate, best first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Neighbours {
    pub ids: Vec<String>,
    pub instructions: Vec<String>,
    pub scores: Vec<f64>,
    /// Mean of `scores` (the top-k mean; see `filters::NearDupIndex`).
    pub mean: f64,
}

impl Neighbours {
    /// The highest score, 0 when the pool was empty.
    pub fn max(&self) -> f64 {
        self.scores.first().copied().unwrap_or(0.0)
    }
}

/// A kept record.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// 0-based position in the input.
    pub row: usize,
    pub record: InstructionRecord,
    pub neighbours: Neighbours,
}

/// A dropped record, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub row: usize,
    pub record: InstructionRecord,
    pub reason: DropReason,
    /// Only for near-duplicates.
    pub neighbours: Option<Neighbours>,
}

impl Rejected {
    pub fn stage(&self) -> Stage {
        self.reason.stage()
    }
}

/// Everything the job decided.
#[derive(Debug, Clone, Default)]
pub struct DedupOutcome {
    pub kept: Vec<Kept>,
    pub rejected: Vec<Rejected>,
    pub stats: FilterStats,
    /// Size of the pool before the input (the `--against` entries).
    pub pool_before: usize,
}

/// Runs rule filters and the near-duplicate index over `records` in order. Instructions are
/// whitespace-normalised first (runs collapsed, ends trimmed), as the reference does.
/// `progress` is called with the number of records done.
pub fn run_dedup(
    records: Vec<InstructionRecord>,
    against: &[PoolEntry],
    options: &DedupOptions,
    mut progress: impl FnMut(usize),
) -> Result<DedupOutcome> {
    let rules = options
        .rules
        .clone()
        .map(InstructionRules::new)
        .transpose()
        .context("invalid rule filter settings")?;
    let mut index =
        NearDupIndex::new(options.near_dup).context("invalid near-duplicate settings")?;
    // Index entry number -> (id, instruction) for reporting neighbours.
    let mut pool: Vec<(String, String)> = Vec::with_capacity(against.len() + records.len());
    for entry in against {
        index.insert(&entry.instruction)?;
        pool.push((entry.id.clone(), entry.instruction.clone()));
    }
    let mut outcome = DedupOutcome {
        pool_before: against.len(),
        ..Default::default()
    };
    // Rule filters first (cheap, independent per record), then the index over the survivors in
    // input order, a chunk at a time so the look-ups inside a chunk run in parallel.
    let mut survivors: Vec<(usize, InstructionRecord)> = Vec::new();
    let mut dropped_by_rules: Vec<Rejected> = Vec::new();
    for (row, mut record) in records.into_iter().enumerate() {
        record.instruction = normalize_instruction(&record.instruction);
        match rules
            .as_ref()
            .map_or(Verdict::Keep, |r| r.check(&record.instruction))
        {
            Verdict::Keep => survivors.push((row, record)),
            Verdict::Drop(reason) => dropped_by_rules.push(Rejected {
                row,
                record,
                reason,
                neighbours: None,
            }),
        }
    }
    let mut done = dropped_by_rules.len();
    progress(done);
    let mut rejected_by_index = Vec::new();
    let mut survivors = survivors.into_iter().peekable();
    while survivors.peek().is_some() {
        let chunk: Vec<(usize, InstructionRecord)> = survivors.by_ref().take(CHUNK).collect();
        let texts: Vec<&str> = chunk.iter().map(|(_, r)| r.instruction.as_str()).collect();
        let novelties = index.check_and_insert_batch(&texts)?;
        let n = chunk.len();
        for ((row, record), novelty) in chunk.into_iter().zip(novelties) {
            let neighbours = Neighbours {
                ids: novelty
                    .top_k
                    .iter()
                    .map(|&(i, _)| pool[i].0.clone())
                    .collect(),
                instructions: novelty
                    .top_k
                    .iter()
                    .map(|&(i, _)| pool[i].1.clone())
                    .collect(),
                scores: novelty.top_k.iter().map(|&(_, s)| s).collect(),
                mean: novelty.mean,
            };
            if novelty.accepted {
                debug_assert_eq!(novelty.id, Some(pool.len()));
                pool.push((record.id.clone(), record.instruction.clone()));
                outcome.kept.push(Kept {
                    row,
                    record,
                    neighbours,
                });
            } else {
                let reason = DropReason::NearDuplicate;
                rejected_by_index.push(Rejected {
                    row,
                    record,
                    reason,
                    neighbours: Some(neighbours),
                });
            }
        }
        done += n;
        progress(done);
    }
    outcome.rejected = dropped_by_rules;
    outcome.rejected.extend(rejected_by_index);
    outcome.rejected.sort_by_key(|r| r.row);
    for r in &outcome.rejected {
        outcome.stats.record(Verdict::Drop(r.reason));
    }
    for _ in &outcome.kept {
        outcome.stats.record(Verdict::Keep);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, text: &str) -> InstructionRecord {
        InstructionRecord {
            id: id.into(),
            instruction: text.into(),
            input: None,
            output: None,
        }
    }

    #[test]
    fn rules_then_rouge_in_input_order() {
        let records = vec![
            rec("a", "Explain how  vaccines train the immune system."),
            rec("b", "Explain how vaccines train the immune system!"),
            rec("c", "Name a fruit."),
            rec("d", "Draw a cat in the corner of the page."),
            rec(
                "e",
                "Summarise the story of a famous novel in three sentences.",
            ),
        ];
        let against = vec![PoolEntry {
            id: "seed_1".into(),
            instruction: "Summarise the story of a famous novel in two sentences.".into(),
        }];
        let out = run_dedup(
            records,
            &against,
            &DedupOptions {
                rules: Some(RuleConfig::default()),
                ..Default::default()
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(
            out.kept
                .iter()
                .map(|k| k.record.id.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            out.kept[0].record.instruction,
            "Explain how vaccines train the immune system."
        );
        let reasons: Vec<_> = out
            .rejected
            .iter()
            .map(|r| (r.record.id.as_str(), r.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("b", DropReason::NearDuplicate),
                ("c", DropReason::TooShort),
                ("d", DropReason::Blacklisted),
                ("e", DropReason::NearDuplicate)
            ]
        );
        let b = out.rejected[0].neighbours.as_ref().unwrap();
        assert_eq!(b.ids[0], "a");
        assert_eq!(b.max(), 1.0);
        let e = out.rejected[3].neighbours.as_ref().unwrap();
        assert_eq!(e.ids[0], "seed_1");
        assert_eq!(out.stats.kept, 1);
        assert_eq!(out.stats.drops(DropReason::NearDuplicate), 2);
    }
}

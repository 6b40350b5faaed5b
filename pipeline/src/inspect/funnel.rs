//! The filter funnel: candidates generated, then what is left after each rule, after ROUGE-L,
//! after classification and with instances; per round, per iteration and for the whole run, with
//! every drop counted by unit, stage and reason (from `rejected.parquet`).

use std::collections::{BTreeMap, HashMap};

use filters::{DropReason, Stage};
use serde::Serialize;

use super::load::{RejectedRow, RoundRow};

/// What is left of the candidates after one step of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// `generated`, `after <rule>`, `after rouge`, `after classification`, `with instances`.
    pub label: String,
    pub remaining: u64,
    /// Candidates this step dropped.
    pub dropped: u64,
}

/// Rejected rows of one kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DropCount {
    pub unit: String,
    pub stage: String,
    pub reason: String,
    pub count: u64,
}

/// The funnel of one scope (a round, an iteration, or the whole run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Funnel {
    /// `round 3`, `iteration 1` or `all`.
    pub scope: String,
    pub steps: Vec<Step>,
    /// Every rejected row of the scope by unit, stage and reason (responses and instances too).
    pub drops: Vec<DropCount>,
    /// `rounds.parquet`'s kept count; equals the last step's `remaining` when the tables agree.
    pub kept: u64,
}

impl Funnel {
    /// The funnel invariant of `pipeline/ROUND.md`: candidates = kept + candidate rejections.
    pub fn consistent(&self) -> bool {
        self.steps.last().map(|s| s.remaining) == Some(self.kept)
    }
}

/// Step labels in pipeline order, the first being `generated`.
pub fn step_labels() -> Vec<String> {
    let mut labels = vec!["generated".to_string()];
    labels.extend(
        DropReason::ALL
            .iter()
            .filter(|r| r.stage() == Stage::Rules)
            .map(|r| format!("after {}", r.as_str())),
    );
    labels.extend(
        ["after rouge", "after classification", "with instances"]
            .iter()
            .map(|s| s.to_string()),
    );
    labels
}

/// Which step dropped a candidate rejected at `stage` for `reason` (an index into
/// [`step_labels`], never 0). Unknown rule names count with the last rule; unknown stages with
/// the last step.
fn step_of(stage: &str, reason: &str, labels: &[String]) -> usize {
    let last = labels.len() - 1;
    match stage {
        // A candidate-level failure while generating (not written by `round` today).
        "instruction_generation" => 1,
        "rules" => labels
            .iter()
            .position(|l| l.strip_prefix("after ") == Some(reason))
            .unwrap_or(last - 3),
        "rouge" => last - 2,
        "classification" => last - 1,
        _ => last,
    }
}

/// Rejected rows counted by round, unit, stage and reason: what every funnel is made of.
pub struct DropTally<'a> {
    by_round: HashMap<u32, HashMap<(&'a str, &'a str, &'a str), u64>>,
}

impl<'a> DropTally<'a> {
    pub fn new(rejected: &'a [RejectedRow]) -> Self {
        let mut by_round: HashMap<u32, HashMap<(&str, &str, &str), u64>> = HashMap::new();
        for row in rejected {
            *by_round
                .entry(row.round)
                .or_default()
                .entry((row.unit.as_str(), row.stage.as_str(), row.reason.as_str()))
                .or_default() += 1;
        }
        DropTally { by_round }
    }
}

/// The funnel of the rounds `rounds` (a scope), counting the rejected rows of those rounds.
pub fn funnel(scope: &str, rounds: &[&RoundRow], tally: &DropTally<'_>) -> Funnel {
    let labels = step_labels();
    let generated: u64 = rounds.iter().map(|r| r.candidates).sum();
    let kept: u64 = rounds.iter().map(|r| r.kept).sum();
    let mut dropped = vec![0u64; labels.len()];
    let mut drops: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for counts in rounds.iter().filter_map(|r| tally.by_round.get(&r.round)) {
        for (&(unit, stage, reason), &n) in counts {
            if unit == "instruction" {
                dropped[step_of(stage, reason, &labels)] += n;
            }
            *drops
                .entry((unit.to_string(), stage.to_string(), reason.to_string()))
                .or_default() += n;
        }
    }
    let mut remaining = generated;
    let steps = labels
        .into_iter()
        .zip(dropped)
        .map(|(label, dropped)| {
            remaining = remaining.saturating_sub(dropped);
            Step {
                label,
                remaining,
                dropped,
            }
        })
        .collect();
    let mut drops: Vec<DropCount> = drops
        .into_iter()
        .map(|((unit, stage, reason), count)| DropCount {
            unit,
            stage,
            reason,
            count,
        })
        .collect();
    drops.sort_by(|a, b| {
        unit_order(&a.unit)
            .cmp(&unit_order(&b.unit))
            .then(b.count.cmp(&a.count))
            .then(a.reason.cmp(&b.reason))
    });
    Funnel {
        scope: scope.to_string(),
        steps,
        drops,
        kept,
    }
}

fn unit_order(unit: &str) -> u8 {
    match unit {
        "response" => 0,
        "instruction" => 1,
        "instance" => 2,
        _ => 3,
    }
}

/// One funnel per round, one per iteration (when rounds name their iteration), and `all`.
pub fn funnels(rounds: &[RoundRow], rejected: &[RejectedRow]) -> Vec<Funnel> {
    let tally = DropTally::new(rejected);
    let mut out: Vec<Funnel> = rounds
        .iter()
        .map(|r| funnel(&format!("round {}", r.round), &[r], &tally))
        .collect();
    let mut iterations: Vec<u32> = rounds.iter().filter_map(|r| r.iteration).collect();
    iterations.dedup();
    for it in iterations {
        let members: Vec<&RoundRow> = rounds.iter().filter(|r| r.iteration == Some(it)).collect();
        out.push(funnel(&format!("iteration {it}"), &members, &tally));
    }
    let all: Vec<&RoundRow> = rounds.iter().collect();
    out.push(funnel("all", &all, &tally));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(n: u32, candidates: u64, kept: u64) -> RoundRow {
        RoundRow {
            round: n,
            iteration: None,
            candidates,
            kept,
            acceptance_rate: 0.0,
            instances_kept: 0,
            wall_s: 0.0,
            generated_tokens: 0,
            tokens_per_s: 0.0,
        }
    }

    fn rej(round: u32, unit: &str, stage: &str, reason: &str) -> RejectedRow {
        RejectedRow {
            round,
            stage: stage.into(),
            reason: reason.into(),
            unit: unit.into(),
            id: String::new(),
            text: String::new(),
            input: None,
            output: None,
            nearest: None,
            nearest_score: None,
        }
    }

    #[test]
    fn steps_subtract_candidate_drops_in_pipeline_order() {
        let rounds = [round(1, 6, 2), round(2, 1, 1)];
        let rejected = [
            rej(1, "response", "instruction_generation", "length_limit"),
            rej(1, "instruction", "rules", "too_short"),
            rej(1, "instruction", "rules", "blacklisted"),
            rej(1, "instruction", "rouge", "near_duplicate"),
            rej(1, "instruction", "instances", "no_instances"),
            rej(1, "instance", "instances", "empty_output"),
        ];
        let all = funnels(&rounds, &rejected);
        assert_eq!(
            all.iter().map(|f| f.scope.as_str()).collect::<Vec<_>>(),
            ["round 1", "round 2", "all"]
        );
        let f = &all[0];
        let remaining = |label: &str| f.steps.iter().find(|s| s.label == label).unwrap().remaining;
        assert_eq!(remaining("generated"), 6);
        assert_eq!(remaining("after too_short"), 5);
        assert_eq!(remaining("after blacklisted"), 4);
        assert_eq!(remaining("after rouge"), 3);
        assert_eq!(remaining("with instances"), 2);
        assert!(f.consistent());
        assert_eq!(f.drops[0].reason, "length_limit");
        assert_eq!(f.drops.last().unwrap().unit, "instance");
        assert_eq!(all[2].steps.last().unwrap().remaining, 3);
        assert!(all[2].consistent());
    }
}

//! Why a candidate left the data flow, and the counts of those reasons.

use std::collections::BTreeMap;
use std::fmt;

/// Where in the pipeline a candidate was judged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Rule filters on a candidate instruction.
    Rules,
    /// The ROUGE-L near-duplicate check against the pool.
    Rouge,
    /// Filters on the generated instances of an accepted instruction.
    Instances,
}

impl Stage {
    /// Stable name written to data files.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Rules => "rules",
            Stage::Rouge => "rouge",
            Stage::Instances => "instances",
        }
    }
}

/// Every way a candidate can be dropped. The names from [`DropReason::as_str`] are written to
/// Parquet and must stay stable.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    // Instruction rules, in the order the reference applies them.
    /// Nothing left after trimming.
    Empty,
    /// Fewer words than the minimum (reference: <= 3 words is dropped).
    TooShort,
    /// More words than the maximum (reference: > 150 words).
    TooLong,
    /// Contains a blacklisted word (whole word, case-insensitive).
    Blacklisted,
    /// Starts with "Write a program".
    WriteAProgram,
    /// First character is ASCII punctuation.
    StartsWithPunctuation,
    /// First character is not ASCII.
    StartsNonAscii,
    // Near-duplicates.
    /// ROUGE-L F-measure against the pool strictly above the threshold.
    NearDuplicate,
    // Instance filters.
    /// Output is empty after trimming.
    EmptyOutput,
    /// Input and output are the same text.
    InputEqualsOutput,
    /// Input or output ends with ":" (an unfinished generation).
    EndsWithColon,
    /// The same non-empty input appears with different outputs: the task is ambiguous.
    ConflictingOutputs,
    /// An exact repeat of an earlier instance of the same task.
    DuplicateInstance,
    /// Beyond the maximum number of instances kept per task.
    TooManyInstances,
}

impl DropReason {
    /// All reasons, in pipeline order.
    pub const ALL: [DropReason; 14] = [
        DropReason::Empty,
        DropReason::TooShort,
        DropReason::TooLong,
        DropReason::Blacklisted,
        DropReason::WriteAProgram,
        DropReason::StartsWithPunctuation,
        DropReason::StartsNonAscii,
        DropReason::NearDuplicate,
        DropReason::EmptyOutput,
        DropReason::InputEqualsOutput,
        DropReason::EndsWithColon,
        DropReason::ConflictingOutputs,
        DropReason::DuplicateInstance,
        DropReason::TooManyInstances,
    ];

    /// Stable snake_case name written to data files and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::TooShort => "too_short",
            DropReason::TooLong => "too_long",
            DropReason::Blacklisted => "blacklisted",
            DropReason::WriteAProgram => "write_a_program",
            DropReason::StartsWithPunctuation => "starts_with_punctuation",
            DropReason::StartsNonAscii => "starts_non_ascii",
            DropReason::NearDuplicate => "near_duplicate",
            DropReason::EmptyOutput => "empty_output",
            DropReason::InputEqualsOutput => "input_equals_output",
            DropReason::EndsWithColon => "ends_with_colon",
            DropReason::ConflictingOutputs => "conflicting_outputs",
            DropReason::DuplicateInstance => "duplicate_instance",
            DropReason::TooManyInstances => "too_many_instances",
        }
    }

    /// The stage this reason belongs to.
    pub fn stage(self) -> Stage {
        match self {
            DropReason::NearDuplicate => Stage::Rouge,
            DropReason::EmptyOutput
            | DropReason::InputEqualsOutput
            | DropReason::EndsWithColon
            | DropReason::ConflictingOutputs
            | DropReason::DuplicateInstance
            | DropReason::TooManyInstances => Stage::Instances,
            _ => Stage::Rules,
        }
    }

    /// Parses a name written by [`DropReason::as_str`].
    pub fn from_name(name: &str) -> Option<DropReason> {
        DropReason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filter's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop(DropReason),
}

impl Verdict {
    pub fn is_keep(self) -> bool {
        matches!(self, Verdict::Keep)
    }
}

/// Counts of kept candidates and of drops per reason. Mergeable, so parallel shards or rounds
/// can be added up.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilterStats {
    pub seen: u64,
    pub kept: u64,
    pub dropped: BTreeMap<DropReason, u64>,
}

impl FilterStats {
    /// Records one decision.
    pub fn record(&mut self, verdict: Verdict) {
        self.seen += 1;
        match verdict {
            Verdict::Keep => self.kept += 1,
            Verdict::Drop(reason) => *self.dropped.entry(reason).or_insert(0) += 1,
        }
    }

    /// Number of drops for one reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }

    /// Total drops over all reasons.
    pub fn total_dropped(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Adds another set of counts into this one.
    pub fn merge(&mut self, other: &FilterStats) {
        self.seen += other.seen;
        self.kept += other.kept;
        for (reason, n) in &other.dropped {
            *self.dropped.entry(*reason).or_insert(0) += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.as_str()));
            assert_eq!(DropReason::from_name(r.as_str()), Some(r));
        }
        assert_eq!(DropReason::from_name("nope"), None);
    }

    #[test]
    fn stats_count_and_merge() {
        let mut a = FilterStats::default();
        a.record(Verdict::Keep);
        a.record(Verdict::Drop(DropReason::TooShort));
        a.record(Verdict::Drop(DropReason::TooShort));
        let mut b = FilterStats::default();
        b.record(Verdict::Drop(DropReason::NearDuplicate));
        a.merge(&b);
        assert_eq!(a.seen, 4);
        assert_eq!(a.kept, 1);
        assert_eq!(a.drops(DropReason::TooShort), 2);
        assert_eq!(a.drops(DropReason::NearDuplicate), 1);
        assert_eq!(a.total_dropped(), 3);
    }
}

//! The Self-Instruct paper's Table 1 for a run: counts of instructions and instances, the
//! classification and empty-input shares, and lengths in words (mean as in the paper, median
//! beside it).

use std::collections::HashSet;

use serde::Serialize;

use super::load::{InstanceRow, Instruction};

/// Mean and median of a list of lengths (0 for an empty list).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lengths {
    pub count: u64,
    pub mean: f64,
    pub median: f64,
}

impl Lengths {
    pub fn of(mut values: Vec<usize>) -> Lengths {
        let count = values.len() as u64;
        if values.is_empty() {
            return Lengths {
                count,
                mean: 0.0,
                median: 0.0,
            };
        }
        let mean = values.iter().sum::<usize>() as f64 / values.len() as f64;
        values.sort_unstable();
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[mid] as f64
        } else {
            (values[mid - 1] + values[mid]) as f64 / 2.0
        };
        Lengths {
            count,
            mean,
            median,
        }
    }
}

/// Table 1 of the paper, for one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table1 {
    pub instructions: u64,
    pub classification_instructions: u64,
    pub non_classification_instructions: u64,
    pub instances: u64,
    pub instances_with_empty_input: u64,
    pub instances_with_input: u64,
    /// Kept instructions none of whose kept instances has an input.
    pub instructions_without_input: u64,
    /// Words (split on whitespace) of each instruction.
    pub instruction_length: Lengths,
    /// Words of each non-empty input (the paper's "non-empty input length").
    pub input_length: Lengths,
    /// Words of each output.
    pub output_length: Lengths,
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Table 1 of a run's kept instructions and instances.
pub fn table1(instructions: &[Instruction], instances: &[InstanceRow]) -> Table1 {
    let classification = instructions.iter().filter(|i| i.is_classification).count() as u64;
    let with_input: HashSet<&str> = instances
        .iter()
        .filter(|i| !i.input.trim().is_empty())
        .map(|i| i.instruction_id.as_str())
        .collect();
    let empty = instances
        .iter()
        .filter(|i| i.input.trim().is_empty())
        .count() as u64;
    Table1 {
        instructions: instructions.len() as u64,
        classification_instructions: classification,
        non_classification_instructions: instructions.len() as u64 - classification,
        instances: instances.len() as u64,
        instances_with_empty_input: empty,
        instances_with_input: instances.len() as u64 - empty,
        instructions_without_input: instructions
            .iter()
            .filter(|i| !with_input.contains(i.id.as_str()))
            .count() as u64,
        instruction_length: Lengths::of(
            instructions.iter().map(|i| words(&i.instruction)).collect(),
        ),
        input_length: Lengths::of(
            instances
                .iter()
                .filter(|i| !i.input.trim().is_empty())
                .map(|i| words(&i.input))
                .collect(),
        ),
        output_length: Lengths::of(instances.iter().map(|i| words(&i.output)).collect()),
    }
}

/// The paper's own Table 1 (Wang et al., 2022, GPT-3 davinci, 52K instructions), for comparison.
pub const PAPER: [(&str, f64); 8] = [
    ("instructions", 52_445.0),
    ("classification instructions", 11_584.0),
    ("non-classification instructions", 40_861.0),
    ("instances", 82_439.0),
    ("instances with empty input", 35_878.0),
    ("mean instruction length (words)", 15.9),
    ("mean non-empty input length (words)", 12.7),
    ("mean output length (words)", 18.9),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_median() {
        assert_eq!(
            Lengths::of(vec![3, 1, 2, 10]),
            Lengths {
                count: 4,
                mean: 4.0,
                median: 2.5
            }
        );
        assert_eq!(Lengths::of(vec![]).median, 0.0);
        assert_eq!(Lengths::of(vec![5, 1, 2]).median, 2.0);
    }
}

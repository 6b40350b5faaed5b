//! Filters on the generated instances (input/output pairs) of one accepted instruction.
//!
//! The reference is self-instruct's `prepare_for_finetuning.py`: `filter_invalid_instances`,
//! then `filter_duplicate_instances`, then `random.sample(instances, min(len, 5))`. Every
//! instance gets exactly one [`Verdict`], the first rule that fails, in this order:
//!
//! 1. [`DropReason::EmptyOutput`]: the output is empty after trimming.
//! 2. [`DropReason::InputEqualsOutput`]: input and output are the same after trimming (the model
//!    echoed the input).
//! 3. [`DropReason::EndsWithColon`]: input or output ends with `:` after trimming, the reference's
//!    sign of a generation cut off before its content.
//! 4. [`DropReason::DuplicateInstance`]: the same (input, output) as an earlier instance that
//!    passed rules 1-3; the first occurrence stays.
//! 5. [`DropReason::ConflictingOutputs`]: among the instances that passed rules 1-3, one non-empty
//!    input appears with two different outputs. Then *every* remaining instance of the task is
//!    dropped, not only the conflicting ones: this is what the reference does (its
//!    `filter_duplicate_instances` returns `[]`), on the reasoning that an instruction whose
//!    examples disagree is ambiguous, so none of its examples can be trusted. Empty inputs never
//!    conflict: a task with no input legitimately has many different outputs (the reference
//!    skips them too).
//! 6. [`DropReason::TooManyInstances`]: beyond `max_instances_per_task` kept instances.
//!
//! All comparisons use the texts trimmed of Python whitespace (the reference's parser strips every
//! field before filtering), and the kept instances are returned trimmed, as the reference stores
//! them. Dropping a response's last instance when generation hit the length limit is the parser's
//! job, not this filter's.
//!
//! Deliberate deviations from the reference:
//!
//! - **The cap keeps the first N, not a random sample.** The reference's `random.sample` was
//!   unseeded; keeping the first N in generation order is reproducible, and generation order
//!   carries no bias that sampling would remove.
//! - **Order is preserved.** The reference deduplicated with `list(set(...))`, which scrambles it.
//! - **Reason attribution for empty-input-empty-output.** The reference tests `input == output`
//!   before `output == ""`; we test the empty output first, so such an instance is counted as
//!   [`DropReason::EmptyOutput`]. It is dropped either way; only the label differs.

use std::collections::{HashMap, HashSet};

use crate::reason::{DropReason, FilterStats, Verdict};
use crate::rules::is_py_whitespace;

/// Settings for [`InstanceFilter`]; the defaults are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceFilterConfig {
    /// Most instances kept per task; later ones are dropped as
    /// [`DropReason::TooManyInstances`]. Reference: 5.
    pub max_instances_per_task: usize,
    /// Drop instances whose output repeats the input. Reference: on.
    pub drop_input_equals_output: bool,
    /// Drop instances with an empty output. Reference: on.
    pub drop_empty_output: bool,
    /// Drop instances whose input or output ends with `:`. Reference: on.
    pub drop_colon_endings: bool,
    /// Drop the whole task's instances when one input has different outputs. Reference: on.
    pub drop_conflicting: bool,
}

impl Default for InstanceFilterConfig {
    fn default() -> Self {
        InstanceFilterConfig {
            max_instances_per_task: 5,
            drop_input_equals_output: true,
            drop_empty_output: true,
            drop_colon_endings: true,
            drop_conflicting: true,
        }
    }
}

/// An [`InstanceFilterConfig`] that cannot be used, naming the offending field.
#[derive(Debug, thiserror::Error)]
pub enum InstanceFilterError {
    #[error("`max_instances_per_task` is 0, which would drop every instance of every task")]
    ZeroMaxInstances,
}

impl InstanceFilterConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), InstanceFilterError> {
        if self.max_instances_per_task == 0 {
            return Err(InstanceFilterError::ZeroMaxInstances);
        }
        Ok(())
    }
}

/// One generated example of a task. An empty `input` means the task takes none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    pub input: String,
    pub output: String,
}

impl Instance {
    pub fn new(input: impl Into<String>, output: impl Into<String>) -> Self {
        Instance {
            input: input.into(),
            output: output.into(),
        }
    }
}

/// The decision on one task's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceOutcome {
    /// One verdict per input instance, in input order.
    pub verdicts: Vec<Verdict>,
    /// The kept instances, trimmed, in input order.
    pub kept: Vec<Instance>,
}

impl InstanceOutcome {
    /// Adds every verdict to `stats`.
    pub fn record_into(&self, stats: &mut FilterStats) {
        for verdict in &self.verdicts {
            stats.record(*verdict);
        }
    }
}

/// The instance filters, validated. Read-only after construction.
#[derive(Debug, Clone)]
pub struct InstanceFilter {
    config: InstanceFilterConfig,
}

impl InstanceFilter {
    pub fn new(config: InstanceFilterConfig) -> Result<Self, InstanceFilterError> {
        config.validate()?;
        Ok(InstanceFilter { config })
    }

    pub fn config(&self) -> &InstanceFilterConfig {
        &self.config
    }

    /// Judges all instances of one task. The task is the unit because the conflict rule and the
    /// cap look across its instances.
    pub fn filter_task(&self, instances: &[Instance]) -> InstanceOutcome {
        let cfg = &self.config;
        let trimmed: Vec<(&str, &str)> = instances
            .iter()
            .map(|i| {
                (
                    i.input.trim_matches(is_py_whitespace),
                    i.output.trim_matches(is_py_whitespace),
                )
            })
            .collect();

        // Rules 1-4, per instance.
        let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(instances.len());
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        // Outputs per non-empty input among instances that passed rules 1-3 (duplicates
        // included; they cannot add a conflict since they repeat an output).
        let mut outputs_by_input: HashMap<&str, &str> = HashMap::new();
        let mut conflicting = false;
        for &(input, output) in &trimmed {
            let reason = if cfg.drop_empty_output && output.is_empty() {
                Some(DropReason::EmptyOutput)
            } else if cfg.drop_input_equals_output && input == output {
                Some(DropReason::InputEqualsOutput)
            } else if cfg.drop_colon_endings && (input.ends_with(':') || output.ends_with(':')) {
                Some(DropReason::EndsWithColon)
            } else {
                if !input.is_empty() {
                    let first_output = *outputs_by_input.entry(input).or_insert(output);
                    conflicting |= first_output != output;
                }
                if seen.insert((input, output)) {
                    None
                } else {
                    Some(DropReason::DuplicateInstance)
                }
            };
            verdicts.push(reason.map(Verdict::Drop));
        }

        // Rules 5 and 6, across the task.
        let mut kept = Vec::new();
        let verdicts = verdicts
            .into_iter()
            .zip(&trimmed)
            .map(|(verdict, &(input, output))| {
                if let Some(v) = verdict {
                    v
                } else if cfg.drop_conflicting && conflicting {
                    Verdict::Drop(DropReason::ConflictingOutputs)
                } else if kept.len() >= cfg.max_instances_per_task {
                    Verdict::Drop(DropReason::TooManyInstances)
                } else {
                    kept.push(Instance::new(input, output));
                    Verdict::Keep
                }
            })
            .collect();
        InstanceOutcome { verdicts, kept }
    }

    /// [`InstanceFilter::filter_task`], recording every verdict in `stats`.
    pub fn filter_task_counted(
        &self,
        instances: &[Instance],
        stats: &mut FilterStats,
    ) -> InstanceOutcome {
        let outcome = self.filter_task(instances);
        outcome.record_into(stats);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> InstanceFilter {
        filter_with(InstanceFilterConfig::default())
    }

    fn filter_with(config: InstanceFilterConfig) -> InstanceFilter {
        match InstanceFilter::new(config) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    fn inst(input: &str, output: &str) -> Instance {
        Instance::new(input, output)
    }

    fn drop(reason: DropReason) -> Verdict {
        Verdict::Drop(reason)
    }

    fn verdicts(f: &InstanceFilter, instances: &[Instance]) -> Vec<Verdict> {
        f.filter_task(instances).verdicts
    }

    const K: Verdict = Verdict::Keep;

    #[test]
    fn empty_output_drops_and_non_empty_keeps() {
        let f = filter();
        assert_eq!(
            verdicts(&f, &[inst("2 + 2", " \n "), inst("2 + 2", "4")]),
            [drop(DropReason::EmptyOutput), K]
        );
        // Empty input with empty output is counted as an empty output.
        assert_eq!(
            verdicts(&f, &[inst("", "")]),
            [drop(DropReason::EmptyOutput)]
        );
    }

    #[test]
    fn empty_output_kept_when_rule_is_off() {
        let f = filter_with(InstanceFilterConfig {
            drop_empty_output: false,
            ..Default::default()
        });
        assert_eq!(verdicts(&f, &[inst("hello", "")]), [K]);
    }

    #[test]
    fn input_equal_to_output_drops_after_trimming() {
        let f = filter();
        assert_eq!(
            verdicts(
                &f,
                &[
                    inst(" The cat sat. ", "The cat sat.\n"),
                    inst("The cat sat.", "Le chat était assis.")
                ]
            ),
            [drop(DropReason::InputEqualsOutput), K]
        );
        let off = filter_with(InstanceFilterConfig {
            drop_input_equals_output: false,
            ..Default::default()
        });
        assert_eq!(verdicts(&off, &[inst("same", "same")]), [K]);
    }

    #[test]
    fn colon_endings_drop_on_input_or_output() {
        let f = filter();
        assert_eq!(
            verdicts(
                &f,
                &[
                    inst("List the steps:", "1. Boil water."),
                    inst("Boil", "Steps: \n"),
                    inst("Time: 3:00", "Three o'clock")
                ]
            ),
            [
                drop(DropReason::EndsWithColon),
                drop(DropReason::EndsWithColon),
                K
            ]
        );
        let off = filter_with(InstanceFilterConfig {
            drop_colon_endings: false,
            ..Default::default()
        });
        assert_eq!(
            verdicts(&off, &[inst("List the steps:", "1. Boil water.")]),
            [K]
        );
    }

    #[test]
    fn exact_duplicates_drop_after_the_first() {
        let f = filter();
        let out = f.filter_task(&[
            inst("a", "1"),
            inst(" a ", "1 "),
            inst("b", "1"),
            inst("", "x"),
            inst("", "x"),
        ]);
        assert_eq!(
            out.verdicts,
            [
                K,
                drop(DropReason::DuplicateInstance),
                K,
                K,
                drop(DropReason::DuplicateInstance)
            ]
        );
        assert_eq!(out.kept, [inst("a", "1"), inst("b", "1"), inst("", "x")]);
    }

    #[test]
    fn conflicting_outputs_drop_the_whole_task() {
        let f = filter();
        let out = f.filter_task(&[
            inst("Is 7 prime?", "Yes"),
            inst("Is 9 prime?", "No"),
            inst("Is 7 prime?", "No"),
            inst("", ""),
            inst("Is 9 prime?", "No"),
        ]);
        assert_eq!(
            out.verdicts,
            [
                drop(DropReason::ConflictingOutputs),
                drop(DropReason::ConflictingOutputs),
                drop(DropReason::ConflictingOutputs),
                drop(DropReason::EmptyOutput),
                drop(DropReason::DuplicateInstance),
            ]
        );
        assert!(out.kept.is_empty());
    }

    #[test]
    fn empty_inputs_and_already_dropped_instances_never_conflict() {
        let f = filter();
        // Different outputs for no input: an open-ended task, not a conflict.
        assert_eq!(
            verdicts(&f, &[inst("", "A poem."), inst("", "Another poem.")]),
            [K, K]
        );
        // The second "x" was dropped for its colon before the conflict check, as in the reference.
        assert_eq!(
            verdicts(&f, &[inst("x", "y"), inst("x", "z:")]),
            [K, drop(DropReason::EndsWithColon)]
        );
        let off = filter_with(InstanceFilterConfig {
            drop_conflicting: false,
            ..Default::default()
        });
        assert_eq!(verdicts(&off, &[inst("x", "y"), inst("x", "z")]), [K, K]);
    }

    #[test]
    fn at_most_max_instances_are_kept_in_order() {
        let f = filter();
        let many: Vec<Instance> = (0..8)
            .map(|i| inst(&format!("in {i}"), &format!("out {i}")))
            .collect();
        let out = f.filter_task(&many);
        assert_eq!(out.verdicts[..5], [K; 5]);
        assert_eq!(out.verdicts[5..], [drop(DropReason::TooManyInstances); 3]);
        assert_eq!(out.kept, many[..5]);
        // Exactly the maximum keeps all.
        assert_eq!(verdicts(&f, &many[..5]), [K; 5]);
    }

    #[test]
    fn dropped_instances_do_not_use_up_the_cap() {
        let f = filter_with(InstanceFilterConfig {
            max_instances_per_task: 2,
            ..Default::default()
        });
        assert_eq!(
            verdicts(
                &f,
                &[
                    inst("a", ""),
                    inst("b", "1"),
                    inst("b", "1"),
                    inst("c", "2"),
                    inst("d", "3")
                ]
            ),
            [
                drop(DropReason::EmptyOutput),
                K,
                drop(DropReason::DuplicateInstance),
                K,
                drop(DropReason::TooManyInstances)
            ]
        );
    }

    #[test]
    fn no_instances_gives_no_verdicts() {
        let out = filter().filter_task(&[]);
        assert!(out.verdicts.is_empty() && out.kept.is_empty());
    }

    #[test]
    fn zero_cap_is_rejected_naming_the_field() {
        let e = match InstanceFilter::new(InstanceFilterConfig {
            max_instances_per_task: 0,
            ..Default::default()
        }) {
            Ok(_) => panic!("zero cap must be rejected"),
            Err(e) => e,
        };
        assert!(matches!(e, InstanceFilterError::ZeroMaxInstances));
        assert!(e.to_string().contains("max_instances_per_task"));
    }

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
        let parsed: InstanceFilterConfig =
            match serde_json::from_str(r#"{"max_instances_per_task": 3}"#) {
                Ok(c) => c,
                Err(e) => panic!("{e}"),
            };
        assert_eq!(
            parsed,
            InstanceFilterConfig {
                max_instances_per_task: 3,
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<InstanceFilterConfig>(r#"{"max_instances": 3}"#).is_err());
        let d = InstanceFilterConfig::default();
        assert_eq!(d.max_instances_per_task, 5);
        assert!(
            d.drop_input_equals_output
                && d.drop_empty_output
                && d.drop_colon_endings
                && d.drop_conflicting
        );
    }

    #[test]
    fn every_instance_is_counted_once() {
        let f = filter();
        let mut stats = FilterStats::default();
        let task_a: Vec<Instance> = (0..7)
            .map(|i| inst(&format!("q{i}"), &format!("a{i}")))
            .collect();
        let task_b = [inst("q", "a"), inst("q", "b"), inst("r", "")];
        f.filter_task_counted(&task_a, &mut stats);
        f.filter_task_counted(&task_b, &mut stats);
        assert_eq!(stats.seen, 10);
        assert_eq!(stats.kept, 5);
        assert_eq!(stats.drops(DropReason::TooManyInstances), 2);
        assert_eq!(stats.drops(DropReason::ConflictingOutputs), 2);
        assert_eq!(stats.drops(DropReason::EmptyOutput), 1);
        assert_eq!(stats.seen, stats.kept + stats.total_dropped());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// One verdict per instance; the kept list is exactly the trimmed `Keep` instances, within
        /// the cap, without repeats, and never holding one input with two outputs.
        #[test]
        fn verdicts_and_kept_list_are_consistent(
            pairs in proptest::collection::vec(("[ab: ]{0,3}", "[ab: ]{0,3}"), 0..12),
            cap in 1usize..6,
        ) {
            let f = filter_with(InstanceFilterConfig { max_instances_per_task: cap, ..Default::default() });
            let instances: Vec<Instance> = pairs.iter().map(|(i, o)| inst(i, o)).collect();
            let out = f.filter_task(&instances);
            proptest::prop_assert_eq!(out.verdicts.len(), instances.len());
            let expected: Vec<Instance> = instances
                .iter()
                .zip(&out.verdicts)
                .filter(|(_, v)| v.is_keep())
                .map(|(i, _)| inst(i.input.trim(), i.output.trim()))
                .collect();
            proptest::prop_assert_eq!(&out.kept, &expected);
            proptest::prop_assert!(out.kept.len() <= cap);
            let unique: HashSet<&Instance> = out.kept.iter().collect();
            proptest::prop_assert_eq!(unique.len(), out.kept.len());
            let mut by_input: HashMap<&str, &str> = HashMap::new();
            for k in &out.kept {
                proptest::prop_assert!(!k.output.is_empty() && k.input != k.output);
                if !k.input.is_empty() {
                    proptest::prop_assert_eq!(*by_input.entry(&k.input).or_insert(&k.output), k.output.as_str());
                }
            }
        }
    }
}

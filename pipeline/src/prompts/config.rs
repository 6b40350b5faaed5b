//! The settings of the prompts: how many in-context tasks, how far the numbered list may run, the
//! stop strings derived from that, and the prompt style. Defaults are the reference values
//! (DESIGN.md, "The loop"), except where a documented decision says otherwise.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::parse::LengthPolicy;

/// How a request is put to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// Raw text that the model continues (base models, as in the paper).
    #[default]
    Completion,
    /// The same text as a user message, preceded by a short request (`chat_*.txt`), for the
    /// checkpoint's or server's chat template (instruct models).
    Chat,
}

impl PromptStyle {
    /// Stable name written to data files.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptStyle::Completion => "completion",
            PromptStyle::Chat => "chat",
        }
    }
}

/// Where the stop strings of instruction generation may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopAnchoring {
    /// Only at the start of a line: `["\n\n", "\n16.", "\n16 ."]` for 16. A price such as
    /// `$16.99` or a value such as `16.5 km` inside an instruction does not cut it short. These
    /// are exactly the list numbers the parser splits on (`\n\d+\s?\. `).
    #[default]
    LineStart,
    /// The reference's strings: `["\n\n", "\n16", "16.", "16 ."]` for 16. `16.` also matches
    /// inside content (`$16.99`), which ends the response mid-instruction with a `stop` finish
    /// reason, so the cut instruction cannot be told apart from a finished one.
    Reference,
}

/// Settings of the prompts. Every field changes what is sent or how the answer is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptConfig {
    /// Directory holding the template files (see `seeds/templates/README.md`).
    pub templates_dir: PathBuf,
    /// `completion` or `chat`.
    pub style: PromptStyle,
    /// In-context instructions shown in an instruction-generation prompt; the model continues at
    /// this number plus one. Reference: 8.
    pub in_context_tasks: usize,
    /// How many of them come from the accepted machine pool once it has any (at most as many as
    /// it holds; seeds fill the rest). Reference: 2.
    pub machine_in_context: usize,
    /// The list number at which generation stops; the stop strings are derived from it, and the
    /// model writes items `in_context_tasks + 1 ..= max_list_number - 1`. Reference: 16.
    pub max_list_number: u32,
    /// Where those stop strings may match. Default: line start (a deliberate change; see
    /// [`StopAnchoring`]).
    pub stop_anchoring: StopAnchoring,
    /// What happens to a list that ended on the token limit. Reference: the whole response is dropped.
    pub on_length: LengthPolicy,
    /// Stop strings of instance generation. Reference: `["Example 6", "Task:"]`.
    pub instance_stop: Vec<String>,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            templates_dir: PathBuf::from("seeds/templates"),
            style: PromptStyle::Completion,
            in_context_tasks: 8,
            machine_in_context: 2,
            max_list_number: 16,
            stop_anchoring: StopAnchoring::LineStart,
            on_length: LengthPolicy::DropResponse,
            instance_stop: vec!["Example 6".to_owned(), "Task:".to_owned()],
        }
    }
}

impl PromptConfig {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<()> {
        if self.in_context_tasks == 0 {
            bail!("prompts.in_context_tasks: must be at least 1");
        }
        if self.machine_in_context > self.in_context_tasks {
            bail!(
                "prompts.machine_in_context: {} is more than prompts.in_context_tasks ({})",
                self.machine_in_context,
                self.in_context_tasks
            );
        }
        // The model must be able to write at least one item before the stop number.
        let first_new = self.first_new_number();
        if u64::from(self.max_list_number) <= first_new {
            bail!(
                "prompts.max_list_number: {} leaves no room for new items after {} in-context tasks \
                 (it must be at least {})",
                self.max_list_number,
                self.in_context_tasks,
                first_new + 1
            );
        }
        if self.instance_stop.iter().any(|s| s.is_empty()) {
            bail!(
                "prompts.instance_stop: an empty stop string would stop every generation at once"
            );
        }
        Ok(())
    }

    /// The number the model continues at: `in_context_tasks + 1`.
    pub fn first_new_number(&self) -> u64 {
        self.in_context_tasks as u64 + 1
    }

    /// The stop strings of instruction generation, derived from [`Self::max_list_number`] so the
    /// numbering and the stops cannot disagree.
    pub fn instruction_stop(&self) -> Vec<String> {
        let n = self.max_list_number;
        match self.stop_anchoring {
            StopAnchoring::LineStart => {
                vec!["\n\n".to_owned(), format!("\n{n}."), format!("\n{n} .")]
            }
            StopAnchoring::Reference => vec![
                "\n\n".to_owned(),
                format!("\n{n}"),
                format!("{n}."),
                format!("{n} ."),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut PromptConfig)) -> PromptConfig {
        let mut c = PromptConfig::default();
        f(&mut c);
        c
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let c = PromptConfig::default();
        c.validate().unwrap();
        assert_eq!(
            (c.in_context_tasks, c.machine_in_context, c.max_list_number),
            (8, 2, 16)
        );
        assert_eq!(c.first_new_number(), 9);
        assert_eq!(c.instance_stop, ["Example 6", "Task:"]);
        assert_eq!(c.on_length, LengthPolicy::DropResponse);
    }

    #[test]
    fn reference_stop_strings_are_derived_from_the_maximum() {
        let stops = |n| {
            with(|c| {
                c.max_list_number = n;
                c.stop_anchoring = StopAnchoring::Reference
            })
            .instruction_stop()
        };
        assert_eq!(stops(16), ["\n\n", "\n16", "16.", "16 ."]);
        assert_eq!(stops(20), ["\n\n", "\n20", "20.", "20 ."]);
        assert_eq!(stops(10), ["\n\n", "\n10", "10.", "10 ."]);
    }

    #[test]
    fn line_start_stop_strings_are_derived_from_the_maximum() {
        let stops = |n| with(|c| c.max_list_number = n).instruction_stop();
        assert_eq!(stops(16), ["\n\n", "\n16.", "\n16 ."]);
        assert_eq!(stops(12), ["\n\n", "\n12.", "\n12 ."]);
        assert_eq!(stops(100), ["\n\n", "\n100.", "\n100 ."]);
    }

    /// Where a server would cut `text` with these stop strings (the earliest match).
    fn cut_at<'a>(text: &'a str, stops: &[String]) -> &'a str {
        let end = stops
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
            .unwrap_or(text.len());
        &text[..end]
    }

    #[test]
    fn dollar_16_99_cuts_reference_stops_but_not_line_start_ones() {
        let text = " Find a gift that costs less than $16.99 for a coworker.\n10. Name a river.\n16. Too far";
        let reference = with(|c| c.stop_anchoring = StopAnchoring::Reference).instruction_stop();
        assert_eq!(
            cut_at(text, &reference),
            " Find a gift that costs less than $"
        );
        let line = PromptConfig::default().instruction_stop();
        assert_eq!(
            cut_at(text, &line),
            " Find a gift that costs less than $16.99 for a coworker.\n10. Name a river."
        );
        // Both stop at the list number, in either spelling the parser recognises.
        assert_eq!(cut_at("a\n16 . b", &line), "a");
        assert_eq!(cut_at("a\n15. b\n16. c", &reference), "a\n15. b");
    }

    #[test]
    fn validate_rejects_inconsistent_settings() {
        let err = |c: PromptConfig| c.validate().unwrap_err().to_string();
        assert_eq!(
            err(with(|c| c.in_context_tasks = 0)),
            "prompts.in_context_tasks: must be at least 1"
        );
        assert_eq!(
            err(with(|c| c.machine_in_context = 9)),
            "prompts.machine_in_context: 9 is more than prompts.in_context_tasks (8)"
        );
        assert_eq!(
            err(with(|c| c.max_list_number = 9)),
            "prompts.max_list_number: 9 leaves no room for new items after 8 in-context tasks (it must be at least 10)"
        );
        with(|c| c.max_list_number = 10).validate().unwrap();
        assert!(err(with(|c| c.instance_stop.push(String::new())))
            .starts_with("prompts.instance_stop:"));
    }

    #[test]
    fn reads_from_toml_like_json_with_defaults() {
        let c: PromptConfig =
            serde_json::from_str(r#"{"style": "chat", "max_list_number": 20}"#).unwrap();
        assert_eq!(c.style, PromptStyle::Chat);
        assert_eq!(c.max_list_number, 20);
        assert_eq!(c.in_context_tasks, 8);
        assert!(serde_json::from_str::<PromptConfig>(r#"{"max_list": 20}"#).is_err());
    }
}

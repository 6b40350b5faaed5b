//! The prompts of a round, built from editable template files (`seeds/templates/`, see its
//! README): instruction generation (a numbered list of in-context instructions that the model
//! continues), classification identification (few-shot Yes/No), and instance generation
//! (input-first for ordinary tasks, output-first for classification tasks), each in `completion`
//! or `chat` style.
//!
//! The numbering of the list, the number the model continues at and the stop strings all come
//! from [`PromptConfig`]: `in_context_tasks` and `max_list_number`, one setting each.

mod config;
mod sample;
mod template;

pub use config::{PromptConfig, PromptStyle, StopAnchoring};
pub use sample::{sample_in_context, InContextTask, Origin, PoolTask, SplitMix64};
pub use template::{Template, TemplateSet};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::generator::{ChatMessage, Prompt};

/// How the examples of a task are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceMethod {
    /// Input, then output (ordinary tasks).
    InputFirst,
    /// Class label, then an input of that class (classification tasks), so that the labels are
    /// not all the most likely one.
    OutputFirst,
}

impl InstanceMethod {
    /// The method the paper uses for a task.
    pub fn for_task(is_classification: bool) -> Self {
        if is_classification {
            InstanceMethod::OutputFirst
        } else {
            InstanceMethod::InputFirst
        }
    }

    /// Stable name written to data files.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceMethod::InputFirst => "input_first",
            InstanceMethod::OutputFirst => "output_first",
        }
    }
}

/// Builds the prompts of a run from its templates and settings.
#[derive(Debug, Clone)]
pub struct Prompter {
    templates: TemplateSet,
    config: PromptConfig,
}

impl Prompter {
    /// Checks the settings; the templates are already checked by [`TemplateSet::load`].
    pub fn new(templates: TemplateSet, config: PromptConfig) -> Result<Self> {
        config.validate()?;
        Ok(Prompter { templates, config })
    }

    /// Loads the templates from `config.templates_dir`.
    pub fn load(config: PromptConfig) -> Result<Self> {
        let templates = TemplateSet::load(&config.templates_dir)?;
        Prompter::new(templates, config)
    }

    pub fn config(&self) -> &PromptConfig {
        &self.config
    }

    pub fn templates(&self) -> &TemplateSet {
        &self.templates
    }

    /// The instruction-generation prompt: the header, `tasks` numbered from 1, and the next
    /// number followed by `.`, which the model continues. Each instruction is put on one line
    /// (whitespace collapsed) and loses trailing colons, as in the reference, so that it cannot
    /// break the numbering.
    pub fn instruction_generation(&self, tasks: &[InContextTask]) -> Result<Prompt> {
        if tasks.is_empty() {
            bail!("an instruction-generation prompt needs at least one in-context task");
        }
        let next = tasks.len() as u64 + 1;
        if next >= u64::from(self.config.max_list_number) {
            bail!(
                "{} in-context tasks leave no room below prompts.max_list_number ({})",
                tasks.len(),
                self.config.max_list_number
            );
        }
        let mut list = String::new();
        for (i, task) in tasks.iter().enumerate() {
            let line = filters::normalize_instruction(&task.instruction);
            list.push_str(&format!("{}. {}\n", i + 1, line.trim_end_matches(':')));
        }
        list.push_str(&format!("{next}."));
        let request = self
            .templates
            .instruction_generation
            .render(&[("tasks", &list)])?;
        let last = (u64::from(self.config.max_list_number) - 1).to_string();
        let next = next.to_string();
        self.wrap(
            request,
            &self.templates.chat_instruction_generation,
            &[("next", &next), ("last", &last)],
        )
    }

    /// The classification-identification prompt for one instruction.
    pub fn is_classification(&self, instruction: &str) -> Result<Prompt> {
        let request = self
            .templates
            .is_classification
            .render(&[("instruction", instruction.trim())])?;
        self.wrap(request, &self.templates.chat_is_classification, &[])
    }

    /// The instance-generation prompt for one instruction.
    pub fn instances(&self, instruction: &str, method: InstanceMethod) -> Result<Prompt> {
        let template = match method {
            InstanceMethod::InputFirst => &self.templates.instances_input_first,
            InstanceMethod::OutputFirst => &self.templates.instances_output_first,
        };
        let request = template.render(&[("instruction", instruction.trim())])?;
        self.wrap(request, &self.templates.chat_instances, &[])
    }

    /// Stop strings of instruction generation (derived from `max_list_number`).
    pub fn instruction_stop(&self) -> Vec<String> {
        self.config.instruction_stop()
    }

    /// Stop strings of instance generation.
    pub fn instance_stop(&self) -> Vec<String> {
        self.config.instance_stop.clone()
    }

    /// Completion style: the request as is. Chat style: an optional system message and the
    /// request inside the user message template. Trailing whitespace of the request is dropped
    /// in chat style, where it only matters to raw-text continuation.
    fn wrap(&self, request: String, user: &Template, values: &[(&str, &str)]) -> Result<Prompt> {
        match self.config.style {
            PromptStyle::Completion => Ok(Prompt::Text(request)),
            PromptStyle::Chat => {
                let mut all = values.to_vec();
                all.push(("request", request.trim_end()));
                let mut messages = Vec::with_capacity(2);
                if !self.templates.chat_system.is_empty() {
                    messages.push(ChatMessage {
                        role: "system".to_owned(),
                        content: self.templates.chat_system.render(&[])?,
                    });
                }
                messages.push(ChatMessage {
                    role: "user".to_owned(),
                    content: user.render(&all)?,
                });
                Ok(Prompt::Chat(messages))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn shipped() -> TemplateSet {
        TemplateSet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/templates"))
            .unwrap()
    }

    fn prompter(style: PromptStyle) -> Prompter {
        Prompter::new(
            shipped(),
            PromptConfig {
                style,
                ..PromptConfig::default()
            },
        )
        .unwrap()
    }

    fn tasks(n: usize) -> Vec<InContextTask> {
        (1..=n)
            .map(|i| InContextTask {
                origin: Origin::Seed,
                id: format!("s{i}"),
                instruction: format!("Do task {i}."),
            })
            .collect()
    }

    fn text(p: Prompt) -> String {
        match p {
            Prompt::Text(t) => t,
            Prompt::Chat(m) => panic!("expected text, got chat {m:?}"),
        }
    }

    fn chat(p: Prompt) -> Vec<(String, String)> {
        match p {
            Prompt::Chat(m) => m.into_iter().map(|m| (m.role, m.content)).collect(),
            Prompt::Text(t) => panic!("expected chat, got text {t:?}"),
        }
    }

    #[test]
    fn instruction_generation_completion_snapshot() {
        let mut t = tasks(8);
        t[2].instruction = "  Split this\ninstruction over lines:  ".to_owned();
        t[5].instruction = "List the steps::".to_owned();
        let got = text(
            prompter(PromptStyle::Completion)
                .instruction_generation(&t)
                .unwrap(),
        );
        assert_eq!(
            got,
            "Here is a numbered list of varied tasks that people ask a capable assistant to do; each one is a single, self-contained instruction.\n\
             1. Do task 1.\n2. Do task 2.\n3. Split this instruction over lines\n4. Do task 4.\n5. Do task 5.\n\
             6. List the steps\n7. Do task 7.\n8. Do task 8.\n9."
        );
    }

    #[test]
    fn instruction_generation_numbering_follows_the_task_count() {
        let p = Prompter::new(
            shipped(),
            PromptConfig {
                in_context_tasks: 3,
                max_list_number: 6,
                ..PromptConfig::default()
            },
        )
        .unwrap();
        let got = text(p.instruction_generation(&tasks(3)).unwrap());
        assert!(
            got.ends_with("\n1. Do task 1.\n2. Do task 2.\n3. Do task 3.\n4."),
            "{got}"
        );
        assert_eq!(p.instruction_stop(), ["\n\n", "\n6.", "\n6 ."]);
        let err = p.instruction_generation(&tasks(5)).unwrap_err().to_string();
        assert_eq!(
            err,
            "5 in-context tasks leave no room below prompts.max_list_number (6)"
        );
        assert!(p.instruction_generation(&[]).is_err());
    }

    #[test]
    fn instruction_generation_chat_snapshot() {
        let got = chat(
            prompter(PromptStyle::Chat)
                .instruction_generation(&tasks(8))
                .unwrap(),
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "system");
        assert_eq!(
            got[0].1,
            "You help build a dataset of tasks. Follow the format of the text you are given exactly, and add nothing before or after your answer."
        );
        assert_eq!(got[1].0, "user");
        let completion = text(
            prompter(PromptStyle::Completion)
                .instruction_generation(&tasks(8))
                .unwrap(),
        );
        assert_eq!(
            got[1].1,
            format!(
                "Continue the numbered list below. Write new tasks numbered 9 to 15, one per line, each different from \
                 the tasks already listed and from each other. Reply with the new list items only.\n\n{completion}"
            )
        );
    }

    #[test]
    fn classification_completion_snapshot() {
        let got = text(
            prompter(PromptStyle::Completion)
                .is_classification("  Is the word a noun or a verb?\n")
                .unwrap(),
        );
        assert!(got.starts_with("For each task, decide whether it is a classification task: one whose answer is a label chosen from a small, fixed set of options.\n\nTask: Tell whether"), "{got}");
        assert!(got.ends_with("Is it classification? No\n\nTask: Is the word a noun or a verb?\nIs it classification?"), "{got}");
        assert_eq!(got.matches("Is it classification? Yes").count(), 6);
        assert_eq!(got.matches("Is it classification? No").count(), 6);
    }

    #[test]
    fn classification_chat_snapshot() {
        let got = chat(
            prompter(PromptStyle::Chat)
                .is_classification("Is the word a noun or a verb?")
                .unwrap(),
        );
        let completion = text(
            prompter(PromptStyle::Completion)
                .is_classification("Is the word a noun or a verb?")
                .unwrap(),
        );
        assert_eq!(got[1].1, format!("Answer the last question below with Yes or No only, as in the examples.\n\n{completion}"));
    }

    #[test]
    fn instance_prompts_end_with_the_task_and_a_line_break() {
        let p = prompter(PromptStyle::Completion);
        let input_first = text(
            p.instances("Reverse the string.", InstanceMethod::InputFirst)
                .unwrap(),
        );
        assert!(
            input_first.starts_with("Write examples for each task."),
            "{input_first}"
        );
        assert!(
            input_first.ends_with(
                "Output: There is no second largest distinct value.\n\nTask: Reverse the string.\n"
            ),
            "{input_first}"
        );
        let output_first = text(
            p.instances("Is the animal a mammal?", InstanceMethod::OutputFirst)
                .unwrap(),
        );
        assert!(
            output_first.starts_with("Each task below sorts its input into one of a few classes."),
            "{output_first}"
        );
        assert!(output_first.ends_with("Class label: No\nInput: for i in range(3): print(i)\n\nTask: Is the animal a mammal?\n"), "{output_first}");
        assert_eq!(p.instance_stop(), ["Example 6", "Task:"]);
    }

    #[test]
    fn instance_chat_drops_trailing_whitespace_of_the_request() {
        let got = chat(
            prompter(PromptStyle::Chat)
                .instances("Reverse the string.", InstanceMethod::InputFirst)
                .unwrap(),
        );
        assert!(got[1].1.starts_with(
            "Complete the last task below in the same format as the examples above it"
        ));
        assert!(
            got[1].1.ends_with("\n\nTask: Reverse the string."),
            "{:?}",
            got[1].1
        );
    }

    #[test]
    fn empty_system_template_sends_no_system_message() {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/templates");
        for t in shipped().all() {
            std::fs::copy(src.join(t.file_name()), dir.path().join(t.file_name())).unwrap();
        }
        std::fs::write(dir.path().join("chat_system.txt"), "").unwrap();
        let config = PromptConfig {
            style: PromptStyle::Chat,
            templates_dir: dir.path().to_owned(),
            ..PromptConfig::default()
        };
        let got = chat(
            Prompter::load(config)
                .unwrap()
                .is_classification("X?")
                .unwrap(),
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "user");
    }

    #[test]
    fn instance_method_follows_the_classification_answer() {
        assert_eq!(InstanceMethod::for_task(true), InstanceMethod::OutputFirst);
        assert_eq!(InstanceMethod::for_task(false).as_str(), "input_first");
    }
}

//! Parsers of model output: the numbered list of new instructions, the Yes/No answer of
//! classification identification, and the examples of instance generation. Pure functions;
//! whatever they cannot use is returned with a reason, never dropped silently.
//!
//! Decisions beyond the reference, each pinned by a test below:
//! - A list response that starts with a number (`9. ...`, as chat models write it) loses that
//!   number; the reference only sees continuations of the `9.` it prompted with.
//! - [`LengthPolicy::DropLastItem`] (not the default) keeps the finished items of a response cut
//!   by the token limit and drops only its last, unfinished one.
//! - Chat style only: an unnumbered first piece ending in `:` ("Here are more tasks:") is chatter,
//!   dropped as [`ResponseDrop::Preamble`]. In completion style the first piece is the continuation
//!   of `9.`, and an instruction may well end in a colon.
//! - Items are normalised with [`filters::normalize_instruction`] (whitespace collapsed, trimmed,
//!   no `capitalize()`); empty items are returned, so the rule filter records them as `empty`.
//! - Instance markers (`Example N`, `Input:`, `Output:`, `Class label:`) count only at the start
//!   of a line, so an output that mentions "Output:" mid-line stays whole; the reference splits
//!   anywhere. Line breaks may be `\r\n`.

use std::sync::LazyLock;

use filters::Instance;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::generator::FinishReason;
use crate::prompts::{InstanceMethod, PromptStyle};

/// Compiles a regex literal of this file; a failure is a bug caught by every test here.
fn re(pattern: &str) -> Regex {
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("regex literal")
}

/// The reference's item separator: a line break, a number, an optional space, a dot and a space.
static ITEM_SEPARATOR: LazyLock<Regex> = LazyLock::new(|| re(r"\n\d+\s?\. "));
/// A list number at the very start of a response (`9. `, ` 9 . `, or `9.` alone).
static LEADING_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*\d+\s?\.(\s|$)"));

/// What to do with a numbered list that ended on the token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LengthPolicy {
    /// Drop the whole response (the reference).
    #[default]
    DropResponse,
    /// Keep the finished items and drop only the last one, which the limit cut.
    DropLastItem,
}

/// Why generated text was not turned into candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseDrop {
    /// The whole response ended on the token limit ([`LengthPolicy::DropResponse`]).
    LengthLimit,
    /// The last item of a response that ended on the token limit ([`LengthPolicy::DropLastItem`]).
    UnfinishedItem,
    /// A chat model's lead-in before its numbered items ("Here are more tasks:").
    Preamble,
}

impl ResponseDrop {
    /// Stable name written to data files.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseDrop::LengthLimit => "length_limit",
            ResponseDrop::UnfinishedItem => "unfinished_item",
            ResponseDrop::Preamble => "preamble",
        }
    }
}

/// Text that did not become a candidate, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedText {
    pub text: String,
    pub reason: ResponseDrop,
}

/// The candidates of one instruction-generation response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedList {
    /// Candidate instructions in order, normalised; possibly empty strings (for the rule filter).
    pub items: Vec<String>,
    /// What was dropped here, with the reason.
    pub dropped: Vec<DroppedText>,
}

/// Splits a response to an instruction-generation prompt into candidate instructions.
///
/// `text` is what followed the prompt's final `9.`: the first item has no number of its own (a
/// leading number, as chat models write, is removed), the others are separated by
/// `\n\d+\s?\. `, the reference's pattern. `style` is the style of the prompt that was answered.
pub fn parse_instruction_list(
    text: &str,
    finish: FinishReason,
    policy: LengthPolicy,
    style: PromptStyle,
) -> ParsedList {
    if finish == FinishReason::Length && policy == LengthPolicy::DropResponse {
        return ParsedList {
            items: Vec::new(),
            dropped: vec![DroppedText {
                text: text.to_owned(),
                reason: ResponseDrop::LengthLimit,
            }],
        };
    }
    let text = text.replace("\r\n", "\n");
    let (body, numbered) = match LEADING_NUMBER.find(&text) {
        Some(m) => (&text[m.end()..], true),
        None => (text.as_str(), false),
    };
    let mut items: Vec<String> = ITEM_SEPARATOR
        .split(body)
        .map(filters::normalize_instruction)
        .collect();
    // A response that is only trailing whitespace after its last separator gives an empty last
    // piece that is no candidate at all; a response that is entirely empty still yields one
    // empty item, so the empty answer is recorded by the rule filter.
    if items.len() > 1
        && items.last().is_some_and(|s| s.is_empty())
        && body.ends_with(char::is_whitespace)
    {
        items.pop();
    }
    let mut dropped = Vec::new();
    if style == PromptStyle::Chat && !numbered && items.len() > 1 && items[0].ends_with(':') {
        dropped.push(DroppedText {
            text: items.remove(0),
            reason: ResponseDrop::Preamble,
        });
    }
    if finish == FinishReason::Length {
        if let Some(last) = items.pop() {
            dropped.push(DroppedText {
                text: last,
                reason: ResponseDrop::UnfinishedItem,
            });
        }
    }
    ParsedList { items, dropped }
}

/// The answer to "Is it classification?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassAnswer {
    Yes,
    No,
    /// Neither; the caller records the raw text.
    Unclear,
}

impl ClassAnswer {
    /// Stable name written to data files.
    pub fn as_str(self) -> &'static str {
        match self {
            ClassAnswer::Yes => "yes",
            ClassAnswer::No => "no",
            ClassAnswer::Unclear => "unclear",
        }
    }
}

/// Reads a Yes/No answer: its first word, any case, with surrounding whitespace and punctuation
/// (`" Yes."`, `"no,"`, `"**YES**"`) ignored. Anything else, including an empty answer or a word
/// that only starts with yes/no (`"Yesterday"`), is [`ClassAnswer::Unclear`].
pub fn parse_class_answer(text: &str) -> ClassAnswer {
    let first = text
        .split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\''))
        .find(|w| !w.is_empty())
        .unwrap_or("");
    if first.eq_ignore_ascii_case("yes") {
        ClassAnswer::Yes
    } else if first.eq_ignore_ascii_case("no") {
        ClassAnswer::No
    } else {
        ClassAnswer::Unclear
    }
}

/// Inputs that mean "no input" (compared case-insensitively, trimmed, without a final `.`).
/// `None` alone is not among them: it is a real input to many code tasks.
pub const EMPTY_INPUT_MARKERS: &[&str] = &[
    "<noinput>",
    "<no input>",
    "no input",
    "(no input)",
    "not applicable",
    "n/a",
    "(none)",
];

static EXAMPLE_HEADER: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*Example\s*\d+\s*[:.]?\s*$"));
static INPUT_MARKER: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*Input\s*\d*\s*:"));
static OUTPUT_MARKER: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*Output\s*\d*\s*:"));
static CLASS_LABEL: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*(?i:class\s+label)\s*:(.*)$"));

/// Parses instance-generation output by method.
pub fn parse_instances(text: &str, method: InstanceMethod) -> Vec<Instance> {
    match method {
        InstanceMethod::InputFirst => parse_input_first(text),
        InstanceMethod::OutputFirst => parse_output_first(text),
    }
}

/// Parses `Example N` / `Input: ...` / `Output: ...` blocks (no `Input:` line when the task takes
/// none). Text before the first `Example` line is ignored unless it holds an `Input:`/`Output:`
/// line (a response without headers is one example). Every `Example` block yields an instance,
/// even an empty one, for the instance filter to record.
pub fn parse_input_first(text: &str) -> Vec<Instance> {
    let text = text.replace("\r\n", "\n");
    let mut blocks: Vec<Vec<&str>> = vec![Vec::new()];
    for line in text.split('\n') {
        if EXAMPLE_HEADER.is_match(line) {
            blocks.push(Vec::new());
        } else if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    let preamble = blocks.remove(0);
    let has_markers = preamble
        .iter()
        .any(|l| INPUT_MARKER.is_match(l) || OUTPUT_MARKER.is_match(l));
    let mut out = Vec::with_capacity(blocks.len() + 1);
    if has_markers || (blocks.is_empty() && !join(&preamble).is_empty()) {
        out.push(input_first_block(&preamble));
    }
    out.extend(blocks.iter().map(|b| input_first_block(b)));
    out
}

fn input_first_block(lines: &[&str]) -> Instance {
    let Some(at) = lines.iter().position(|l| OUTPUT_MARKER.is_match(l)) else {
        // No output: an input alone (an unfinished example), or a bare output without marker.
        let text = join(lines);
        return match INPUT_MARKER.find(&text) {
            Some(m) => Instance::new(clean_input(&text[m.end()..]), ""),
            None => Instance::new("", text),
        };
    };
    let input = join(&lines[..at]);
    let input = match INPUT_MARKER.find(&input) {
        Some(m) => clean_input(&input[m.end()..]),
        None => clean_input(&input),
    };
    // The output runs to the end of the block, or to a second input/output pair (kept out, as in
    // the reference).
    let mut output_lines = vec![OUTPUT_MARKER.replace(lines[at], "").into_owned()];
    for line in &lines[at + 1..] {
        if INPUT_MARKER.is_match(line) || OUTPUT_MARKER.is_match(line) {
            break;
        }
        output_lines.push((*line).to_owned());
    }
    let output_refs: Vec<&str> = output_lines.iter().map(String::as_str).collect();
    Instance::new(input, join(&output_refs))
}

/// Parses `Class label: X` / `Input: ...` blocks: the label is the output, the text after it the
/// input. Text before the first label is ignored.
pub fn parse_output_first(text: &str) -> Vec<Instance> {
    let text = text.replace("\r\n", "\n");
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.split('\n') {
        if let Some(c) = CLASS_LABEL.captures(line) {
            out.push((
                c.get(1).map_or("", |m| m.as_str()).trim().to_owned(),
                Vec::new(),
            ));
        } else if let Some((_, lines)) = out.last_mut() {
            lines.push(line);
        }
    }
    out.into_iter()
        .map(|(label, lines)| {
            let input = join(&lines);
            let input = match INPUT_MARKER.find(&input) {
                Some(m) => clean_input(&input[m.end()..]),
                None => clean_input(&input),
            };
            Instance::new(input, label)
        })
        .collect()
}

/// Joins lines, dropping trailing whitespace of each and surrounding blank space of the whole.
fn join(lines: &[&str]) -> String {
    let joined: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    joined.join("\n").trim().to_owned()
}

fn clean_input(text: &str) -> String {
    let text = join(&text.split('\n').collect::<Vec<_>>());
    let bare = text.strip_suffix('.').unwrap_or(&text).to_ascii_lowercase();
    if EMPTY_INPUT_MARKERS.contains(&bare.as_str()) {
        String::new()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use FinishReason::{Length, Stop};
    use LengthPolicy::{DropLastItem, DropResponse};
    use PromptStyle::{Chat, Completion};

    fn items(text: &str) -> Vec<String> {
        let parsed = parse_instruction_list(text, Stop, DropResponse, Completion);
        assert!(parsed.dropped.is_empty());
        parsed.items
    }

    #[test]
    fn list_continues_after_the_prompted_number() {
        assert_eq!(
            items(" Name three rivers in Africa.\n10. Translate the sentence into French.\n11 . Sort the numbers."),
            ["Name three rivers in Africa.", "Translate the sentence into French.", "Sort the numbers."]
        );
    }

    #[test]
    fn leading_number_is_removed() {
        assert_eq!(
            items("9. Name a river.\n10. Name a lake."),
            ["Name a river.", "Name a lake."]
        );
        assert_eq!(items("  9 . Name a river."), ["Name a river."]);
        assert_eq!(items("\n9. Name a river."), ["Name a river."]);
        // Only a number followed by a dot and a space (or the end) is a list number.
        assert_eq!(
            items(" 3 cups of flour: convert them to grams."),
            ["3 cups of flour: convert them to grams."]
        );
        assert_eq!(
            items(" 3.5 is a number; round it."),
            ["3.5 is a number; round it."]
        );
    }

    #[test]
    fn separator_is_the_reference_pattern() {
        // No space after the dot, or a number inside a line: not a separator.
        assert_eq!(items(" A.\n10.B\n11. C"), ["A. 10.B", "C"]);
        assert_eq!(
            items(" Pay $16.99 by 10. Then stop."),
            ["Pay $16.99 by 10. Then stop."]
        );
        // The `$16.99` trap: with line-start stops (the default) the server does not cut here,
        // and the parser keeps the price whole.
        assert_eq!(
            items(" Find a gift under $16.99.\n10. Name a lake."),
            ["Find a gift under $16.99.", "Name a lake."]
        );
    }

    #[test]
    fn items_are_normalised_without_capitalize() {
        assert_eq!(
            items("  explain   the\tUSB standard  \n10.  iPhone or Android?  "),
            ["explain the USB standard", "iPhone or Android?"]
        );
    }

    #[test]
    fn crlf_line_breaks() {
        assert_eq!(
            items(" A task here.\r\n10. Another task.\r\n"),
            ["A task here.", "Another task."]
        );
    }

    #[test]
    fn empty_items_are_returned_for_the_rule_filter() {
        assert_eq!(items(""), [""]);
        assert_eq!(items(" A.\n10. \n11. B."), ["A.", "", "B."]);
        // Trailing whitespace after the last item is not an item.
        assert_eq!(items(" A.\n10. B.\n"), ["A.", "B."]);
    }

    #[test]
    fn length_stop_drops_the_whole_response_by_default() {
        let text = " Name a river.\n10. Name a lake.\n11. Describe the";
        let parsed = parse_instruction_list(text, Length, DropResponse, Completion);
        assert!(parsed.items.is_empty());
        assert_eq!(
            parsed.dropped,
            [DroppedText {
                text: text.to_owned(),
                reason: ResponseDrop::LengthLimit
            }]
        );
        assert_eq!(ResponseDrop::LengthLimit.as_str(), "length_limit");
    }

    #[test]
    fn length_stop_can_drop_only_the_unfinished_item() {
        let parsed = parse_instruction_list(
            " Name a river.\n10. Name a lake.\n11. Describe the",
            Length,
            DropLastItem,
            Completion,
        );
        assert_eq!(parsed.items, ["Name a river.", "Name a lake."]);
        assert_eq!(
            parsed.dropped,
            [DroppedText {
                text: "Describe the".to_owned(),
                reason: ResponseDrop::UnfinishedItem
            }]
        );
        // A stop finish is not affected by the policy.
        assert_eq!(
            parse_instruction_list(" A.\n10. B.", Stop, DropLastItem, Completion).items,
            ["A.", "B."]
        );
    }

    #[test]
    fn chat_preamble_is_dropped_with_its_reason() {
        let text = "Here are more tasks:\n9. Name a river.\n10. Name a lake.";
        let chat = parse_instruction_list(text, Stop, DropResponse, Chat);
        assert_eq!(chat.items, ["Name a river.", "Name a lake."]);
        assert_eq!(
            chat.dropped,
            [DroppedText {
                text: "Here are more tasks:".to_owned(),
                reason: ResponseDrop::Preamble
            }]
        );
        // Completion style: the first piece continues "9." and may end in a colon.
        let completion = parse_instruction_list(
            " Translate into French:\n10. Name a lake.",
            Stop,
            DropResponse,
            Completion,
        );
        assert_eq!(completion.items, ["Translate into French:", "Name a lake."]);
        // Chat style, numbered from the start or a lone item: nothing is a preamble.
        assert!(parse_instruction_list(
            "9. Translate into French:\n10. Name a lake.",
            Stop,
            DropResponse,
            Chat
        )
        .dropped
        .is_empty());
        assert_eq!(
            parse_instruction_list("Translate into French:", Stop, DropResponse, Chat).items,
            ["Translate into French:"]
        );
    }

    #[test]
    fn class_answers() {
        for yes in [
            "Yes",
            " yes",
            "YES.",
            " Yes\n",
            "yes, it is",
            "**Yes**",
            "\"Yes\"",
        ] {
            assert_eq!(parse_class_answer(yes), ClassAnswer::Yes, "{yes:?}");
        }
        for no in ["No", " no.", "NO!", "No\nTask:", " no,"] {
            assert_eq!(parse_class_answer(no), ClassAnswer::No, "{no:?}");
        }
        for unclear in [
            "",
            "   ",
            "Maybe",
            "Yesterday",
            "Nope",
            "It is yes",
            "Y",
            "Not sure",
        ] {
            assert_eq!(
                parse_class_answer(unclear),
                ClassAnswer::Unclear,
                "{unclear:?}"
            );
        }
    }

    fn inst(input: &str, output: &str) -> Instance {
        Instance::new(input, output)
    }

    #[test]
    fn input_first_examples() {
        let text =
            "Example 1\nInput: 98.6 F\nOutput: 37.0 C\nExample 2\nInput: 32 F\nOutput: 0.0 C\n";
        assert_eq!(
            parse_input_first(text),
            [inst("98.6 F", "37.0 C"), inst("32 F", "0.0 C")]
        );
    }

    #[test]
    fn input_first_output_only_and_multiline() {
        let text = "Example 1\nOutput: Line one.\nLine two.  \n\nExample 2\nInput: def f(x):\n    return x\nOutput:\n```\nprint(1)\n```";
        assert_eq!(
            parse_input_first(text),
            [
                inst("", "Line one.\nLine two."),
                inst("def f(x):\n    return x", "```\nprint(1)\n```")
            ]
        );
    }

    #[test]
    fn input_first_empty_input_markers() {
        for marker in [
            "Not applicable",
            "not applicable.",
            "<noinput>",
            "<No Input>",
            "N/A",
            "No input.",
            "(none)",
        ] {
            let text = format!("Example 1\nInput: {marker}\nOutput: Hello.");
            assert_eq!(parse_input_first(&text), [inst("", "Hello.")], "{marker:?}");
        }
        // `None` is a real input for many code tasks.
        assert_eq!(
            parse_input_first("Example 1\nInput: None\nOutput: NoneType"),
            [inst("None", "NoneType")]
        );
    }

    #[test]
    fn input_first_crlf_and_trailing_whitespace() {
        let text = "Example 1\r\nInput: a  \r\nOutput: b \r\n\r\nExample 2:\r\nOutput: c\t\r\n";
        assert_eq!(parse_input_first(text), [inst("a", "b"), inst("", "c")]);
    }

    #[test]
    fn input_first_second_pair_in_one_example_is_cut() {
        let text = "Example 1\nInput: 1\nOutput: one\nInput: 2\nOutput: two";
        assert_eq!(parse_input_first(text), [inst("1", "one")]);
    }

    #[test]
    fn input_first_markers_only_at_line_start() {
        let text =
            "Example 1\nInput: print('Output: 3')\nOutput: It prints Output: 3 to the screen.";
        assert_eq!(
            parse_input_first(text),
            [inst(
                "print('Output: 3')",
                "It prints Output: 3 to the screen."
            )]
        );
    }

    #[test]
    fn input_first_unfinished_and_headerless() {
        // An example cut after its input, and an empty one: kept for the instance filter.
        assert_eq!(
            parse_input_first("Example 1\nInput: x\nExample 2\n"),
            [inst("x", ""), inst("", "")]
        );
        // No headers (a chat model's answer): one example.
        assert_eq!(parse_input_first("Input: 5\nOutput: 25"), [inst("5", "25")]);
        assert_eq!(
            parse_input_first("Just the answer."),
            [inst("", "Just the answer.")]
        );
        assert_eq!(parse_input_first("  \n"), []);
        // Chatter before the first header is not an example.
        assert_eq!(
            parse_input_first("Sure! Here are examples.\nExample 1\nOutput: Hi."),
            [inst("", "Hi.")]
        );
    }

    #[test]
    fn output_first_examples() {
        let text = "Class label: Fact\nInput: Water boils at 100 C at sea level.\nClass label: Opinion\nInput: Tea is better than coffee.\n";
        assert_eq!(
            parse_output_first(text),
            [
                inst("Water boils at 100 C at sea level.", "Fact"),
                inst("Tea is better than coffee.", "Opinion")
            ]
        );
    }

    #[test]
    fn output_first_tolerates_variants() {
        let text = "Here you go:\r\nclass label:  Yes \r\nInput: for i in x print(i)\r\n  more code  \r\nClass Label: No\r\nInput: Not applicable\r\nClass label: Maybe\r\n";
        assert_eq!(
            parse_output_first(text),
            [
                inst("for i in x print(i)\n  more code", "Yes"),
                inst("", "No"),
                inst("", "Maybe")
            ]
        );
        assert_eq!(
            parse_output_first("Class label: A\nno marker input"),
            [inst("no marker input", "A")]
        );
        assert_eq!(parse_output_first("nothing here"), []);
    }

    #[test]
    fn parse_instances_dispatches_by_method() {
        assert_eq!(
            parse_instances("Example 1\nOutput: x", InstanceMethod::InputFirst),
            [inst("", "x")]
        );
        assert_eq!(
            parse_instances("Class label: A\nInput: x", InstanceMethod::OutputFirst),
            [inst("x", "A")]
        );
    }
}

//! One instruction/response pair as training tokens: the prompt (instruction plus optional input)
//! is context only, the response and the token that ends the assistant's turn are what the model
//! learns. The loss mask is checked here, before any training starts, because a silent masking
//! failure (training on the prompt, or never on the end-of-turn token, so the tuned model does not
//! stop) is the most common fine-tuning bug users report.

use crate::chat_template::ChatMessage;
use crate::tokenizer::{TokenizerBundle, TokenizerError};

/// An instruction, its optional input and the wanted output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftRecord {
    pub instruction: String,
    pub input: String,
    pub output: String,
}

/// How a record becomes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptFormat {
    /// The checkpoint's chat template: the user turn is the instruction (and input), the
    /// assistant turn the output.
    ChatTemplate,
    /// Alpaca's sectioned prompt (`### Instruction:`, `### Input:`, `### Response:`) with the
    /// tokenizer's EOS after the response, for base models without a chat template.
    Alpaca,
}

impl PromptFormat {
    /// The chat template when the checkpoint has one, Alpaca otherwise.
    pub fn for_tokenizer(bundle: &TokenizerBundle) -> Self {
        if bundle.chat_template.is_some() {
            Self::ChatTemplate
        } else {
            Self::Alpaca
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::ChatTemplate => "chat_template",
            Self::Alpaca => "alpaca",
        }
    }
}

/// Token ids and which of them are learned: `loss_mask[t]` says token `t` is a target (the model
/// is trained to predict it from tokens `..t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    pub ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
}

impl TokenizedExample {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of learned tokens.
    pub fn trained_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m).count()
    }
}

/// Why a record cannot be trained on as the template renders it.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(
        "the chat template does not render the conversation with the assistant turn as a \
         continuation of the prompt with the generation header (prompt ends {prompt_tail:?}); \
         the loss mask cannot be placed"
    )]
    NotAPrefix { prompt_tail: String },
    #[error(
        "the rendered assistant turn {rendered:?} does not contain the output {output:?}: the \
         template drops the response"
    )]
    ResponseMissing { rendered: String, output: String },
    #[error(
        "the assistant turn has no end-of-turn token (one of ids {eos:?}) after the response: \
         a model trained on it would never learn to stop (rendered {rendered:?})"
    )]
    NoEndOfTurn { eos: Vec<u32>, rendered: String },
    #[error("the example trains on no token but the end of turn (empty output?)")]
    NothingToLearn,
    #[error("the tokenizer names no end-of-sequence token; Alpaca-format examples need one")]
    NoEos,
}

const ALPACA_INSTRUCTION: &str = "### Instruction:\n";
const ALPACA_INPUT: &str = "### Input:\n";
const ALPACA_RESPONSE: &str = "### Response:\n";

/// The user turn: the instruction, then the input after a blank line when there is one.
pub fn user_turn(record: &SftRecord) -> String {
    if record.input.trim().is_empty() {
        record.instruction.clone()
    } else {
        format!("{}\n\n{}", record.instruction, record.input)
    }
}

/// The Alpaca-format prompt up to and including the response header.
pub fn alpaca_prompt(record: &SftRecord) -> String {
    let mut prompt = format!("{ALPACA_INSTRUCTION}{}\n\n", record.instruction);
    if !record.input.trim().is_empty() {
        prompt.push_str(&format!("{ALPACA_INPUT}{}\n\n", record.input));
    }
    prompt.push_str(ALPACA_RESPONSE);
    prompt
}

/// Tokenizes `record` in `format` and checks the mask: prompt tokens are never learned, at least
/// one response token is, and the turn ends with a learned end-of-turn token (anything the
/// template renders after it is cut off).
pub fn tokenize_example(
    bundle: &TokenizerBundle,
    format: PromptFormat,
    record: &SftRecord,
) -> Result<TokenizedExample, MaskError> {
    let tokenizer = &bundle.tokenizer;
    let (prompt_ids, response_ids) = match format {
        PromptFormat::ChatTemplate => {
            let template = bundle.chat_template()?;
            let user = [ChatMessage::user(user_turn(record))];
            let both = [
                ChatMessage::user(user_turn(record)),
                ChatMessage::assistant(record.output.clone()),
            ];
            let prompt = template.render(&user, true).map_err(TokenizerError::from)?;
            let full = template
                .render(&both, false)
                .map_err(TokenizerError::from)?;
            let Some(response) = full.strip_prefix(prompt.as_str()) else {
                let tail: String = prompt.chars().rev().take(40).collect();
                return Err(MaskError::NotAPrefix {
                    prompt_tail: tail.chars().rev().collect(),
                });
            };
            if !response.contains(record.output.trim()) {
                return Err(MaskError::ResponseMissing {
                    rendered: response.to_string(),
                    output: record.output.clone(),
                });
            }
            let response_ids = tokenizer.encode(response, false)?;
            (tokenizer.encode(&prompt, false)?, response_ids)
        }
        PromptFormat::Alpaca => {
            let eos = *bundle.eos_token_ids.first().ok_or(MaskError::NoEos)?;
            let mut response_ids = tokenizer.encode(&record.output, false)?;
            response_ids.push(eos);
            let prompt = alpaca_prompt(record);
            (
                tokenizer.encode(&prompt, bundle.add_bos_token)?,
                response_ids,
            )
        }
    };
    let Some(end) = response_ids.iter().position(|id| bundle.is_eos(*id)) else {
        return Err(MaskError::NoEndOfTurn {
            eos: bundle.eos_token_ids.clone(),
            rendered: tokenizer.decode(&response_ids, false)?,
        });
    };
    if end == 0 {
        return Err(MaskError::NothingToLearn);
    }
    let learned = &response_ids[..=end];
    let mut ids = prompt_ids;
    let prompt_len = ids.len();
    ids.extend_from_slice(learned);
    let mut loss_mask = vec![false; prompt_len];
    loss_mask.extend(std::iter::repeat_n(true, learned.len()));
    Ok(TokenizedExample { ids, loss_mask })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::chat_template::{ChatTemplate, SpecialTokens};
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models")
            .join(name)
    }

    fn chat_bundle() -> TokenizerBundle {
        TokenizerBundle::from_model_dir(fixture("llama_chat")).unwrap()
    }

    fn record() -> SftRecord {
        SftRecord {
            instruction: "Name a colour.".into(),
            input: String::new(),
            output: "Blue".into(),
        }
    }

    #[test]
    fn chat_example_learns_the_response_and_end_of_turn_only() {
        let bundle = chat_bundle();
        let ex = tokenize_example(&bundle, PromptFormat::ChatTemplate, &record()).unwrap();
        let prompt = bundle
            .encode_chat(&[ChatMessage::user("Name a colour.")], true)
            .unwrap();
        assert_eq!(&ex.ids[..prompt.len()], prompt.as_slice());
        assert!(ex.loss_mask[..prompt.len()].iter().all(|m| !m));
        assert!(ex.loss_mask[prompt.len()..].iter().all(|m| *m));
        let learned = &ex.ids[prompt.len()..];
        assert!(bundle.is_eos(*learned.last().unwrap()));
        let text = bundle.tokenizer.decode(learned, false).unwrap();
        assert!(text.starts_with("Blue"), "{text:?}");
    }

    #[test]
    fn input_follows_the_instruction_after_a_blank_line() {
        let mut r = record();
        r.input = "sky".into();
        assert_eq!(user_turn(&r), "Name a colour.\n\nsky");
        assert_eq!(
            alpaca_prompt(&r),
            "### Instruction:\nName a colour.\n\n### Input:\nsky\n\n### Response:\n"
        );
    }

    #[test]
    fn alpaca_example_ends_with_a_learned_eos() {
        let bundle = chat_bundle();
        let ex = tokenize_example(&bundle, PromptFormat::Alpaca, &record()).unwrap();
        assert!(bundle.is_eos(*ex.ids.last().unwrap()));
        assert!(*ex.loss_mask.last().unwrap());
        assert!(!ex.loss_mask[0]);
        assert_eq!(
            ex.trained_tokens(),
            ex.ids.len() - ex.loss_mask.iter().filter(|m| !**m).count()
        );
    }

    fn with_template(source: &str) -> TokenizerBundle {
        let mut bundle = chat_bundle();
        let specials = SpecialTokens::default();
        bundle.chat_template = Some(ChatTemplate::new(source, specials, "test").unwrap());
        bundle
    }

    #[test]
    fn a_template_that_drops_the_end_of_turn_token_is_rejected() {
        // ChatML without `<|im_end|>` after the assistant's message.
        let bundle = with_template(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}\
             {% if m.role != 'assistant' %}<|im_end|>\n{% endif %}{% endfor %}\
             {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        );
        let err = tokenize_example(&bundle, PromptFormat::ChatTemplate, &record()).unwrap_err();
        assert!(matches!(err, MaskError::NoEndOfTurn { .. }), "{err}");
    }

    #[test]
    fn a_template_that_drops_the_response_is_rejected() {
        let bundle = with_template(
            "{% for m in messages %}{% if m.role == 'user' %}<|im_start|>user\n{{ m.content }}\
             <|im_end|>\n{% endif %}{% endfor %}<|im_start|>assistant\n",
        );
        let err = tokenize_example(&bundle, PromptFormat::ChatTemplate, &record()).unwrap_err();
        assert!(matches!(err, MaskError::ResponseMissing { .. }), "{err}");
    }

    #[test]
    fn a_template_whose_prompt_is_not_a_prefix_is_rejected() {
        let bundle = with_template(
            "{% for m in messages %}[{{ m.role }}] {{ m.content }}<|im_end|>{% endfor %}\
             {% if add_generation_prompt %}[reply]{% endif %}",
        );
        let err = tokenize_example(&bundle, PromptFormat::ChatTemplate, &record()).unwrap_err();
        assert!(matches!(err, MaskError::NotAPrefix { .. }), "{err}");
    }

    #[test]
    fn an_empty_output_has_nothing_to_learn() {
        let bundle = chat_bundle();
        let mut r = record();
        r.output = String::new();
        let err = tokenize_example(&bundle, PromptFormat::Alpaca, &r).unwrap_err();
        assert!(matches!(err, MaskError::NothingToLearn), "{err}");
    }
}

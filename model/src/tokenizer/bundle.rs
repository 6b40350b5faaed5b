//! Everything on the text side of a checkpoint in one value: the tokenizer, the chat template and
//! the ids that end generation, whether the checkpoint is a Hugging Face folder or a GGUF file.

use std::path::Path;

use serde::Serialize;

use super::gguf::{self, GgufTokenizerSpec, PreTokenizerKind};
use super::{resolve_eos_token_ids, GenerationDefaults, Tokenizer, TokenizerError};
use crate::chat_template::{ChatTemplate, ChatTemplateError, TokenizerConfig};

/// A checkpoint's tokenizer, chat template and special ids.
#[derive(Debug)]
pub struct TokenizerBundle {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The chat template; `None` for base models that ship without one.
    pub chat_template: Option<ChatTemplate>,
    /// Id of the beginning-of-sequence token, if the checkpoint names one.
    pub bos_token_id: Option<u32>,
    /// Ids that end generation (see [`resolve_eos_token_ids`] and, for GGUF, [`gguf::build`]).
    pub eos_token_ids: Vec<u32>,
    /// Whether `encode(text, true)` prepends BOS.
    pub add_bos_token: bool,
    /// `generation_config.json`, for Hugging Face folders that have one.
    pub generation: Option<GenerationDefaults>,
    /// The pre-tokenizer family rebuilt from GGUF metadata; `None` for `tokenizer.json`.
    pub pre_tokenizer: Option<PreTokenizerKind>,
}

impl TokenizerBundle {
    /// Loads `tokenizer.json`, the chat template (see [`ChatTemplate::from_model_dir`]; a missing
    /// template is `None`, a broken one an error), `tokenizer_config.json` and
    /// `generation_config.json` from a Hugging Face checkpoint folder.
    pub fn from_model_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))?;
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.is_file() {
            Some(TokenizerConfig::from_file(&config_path)?)
        } else {
            None
        };
        let chat_template = match ChatTemplate::from_model_dir(dir) {
            Ok(template) => Some(template),
            Err(ChatTemplateError::Missing(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let generation = GenerationDefaults::from_model_dir(dir)?;
        let eos_token_ids =
            resolve_eos_token_ids(generation.as_ref(), config.as_ref(), &tokenizer)?;

        let bos_token_id =
            match config.as_ref().and_then(|c| c.bos_token.as_deref()) {
                Some(token) => Some(tokenizer.token_to_id(token).ok_or_else(|| {
                    TokenizerError::UnknownToken {
                        token: token.to_string(),
                        path: config_path.clone(),
                    }
                })?),
                None => generation.as_ref().and_then(|g| g.bos_token_id),
            };
        // What the post-processor really does decides, not the config's `add_bos_token` flag
        // (Llama-3 folders leave it out and still add BOS).
        let add_bos_token = match bos_token_id {
            Some(bos) => tokenizer.encode("a", true)?.first() == Some(&bos),
            None => false,
        };
        Ok(Self {
            tokenizer,
            chat_template,
            bos_token_id,
            eos_token_ids,
            add_bos_token,
            generation,
            pre_tokenizer: None,
        })
    }

    /// Rebuilds the tokenizer a GGUF file's metadata describes (see [`gguf`]).
    pub fn from_gguf(spec: &GgufTokenizerSpec) -> Result<Self, TokenizerError> {
        gguf::build(spec)
    }

    /// The chat template, or an error saying the checkpoint has none.
    pub fn chat_template(&self) -> Result<&ChatTemplate, TokenizerError> {
        self.chat_template
            .as_ref()
            .ok_or_else(|| TokenizerError::NoChatTemplate {
                origin: self.tokenizer.origin().to_string(),
            })
    }

    /// Renders `messages` with the chat template and encodes the result the way transformers'
    /// `apply_chat_template(tokenize=True)` does: without adding special tokens, since the
    /// template writes them itself.
    pub fn encode_chat<M: Serialize>(
        &self,
        messages: &[M],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let text = self
            .chat_template()?
            .render(messages, add_generation_prompt)?;
        self.tokenizer.encode(&text, false)
    }

    /// Whether `id` ends generation.
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_token_ids.contains(&id)
    }
}

//! `generation_config.json`: the checkpoint's own generation defaults, and above all its
//! end-of-sequence ids (an instruct model usually stops on several, e.g. Qwen2.5's
//! `[151645, 151643]` for `<|im_end|>` and `<|endoftext|>`).

use std::path::Path;

use serde::Deserialize;

use super::{Tokenizer, TokenizerError};
use crate::chat_template::TokenizerConfig;

/// One token id or a list of them, as `generation_config.json` writes `eos_token_id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// The fields of `generation_config.json` this tool reads. Other keys (`transformers_version`,
/// `_from_model_config`, ...) are ignored: they do not change what the model computes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GenerationDefaults {
    /// Ids that end a sequence.
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Id of the beginning-of-sequence token.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// Id used for padding.
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
    /// Whether the checkpoint's authors sample by default.
    #[serde(default)]
    pub do_sample: Option<bool>,
    /// Default sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Default nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Default top-k cut-off.
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Default multiplicative repetition penalty (transformers' kind, not OpenAI's).
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    /// Default generation length.
    #[serde(default)]
    pub max_new_tokens: Option<u32>,
}

impl GenerationDefaults {
    /// Reads a `generation_config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| TokenizerError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads `dir/generation_config.json` if the checkpoint has one.
    pub fn from_model_dir(dir: impl AsRef<Path>) -> Result<Option<Self>, TokenizerError> {
        let path = dir.as_ref().join("generation_config.json");
        if path.is_file() {
            Self::from_file(&path).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The ids that end generation: `generation_config.json`'s `eos_token_id` when it has one,
/// otherwise the id of `tokenizer_config.json`'s `eos_token`. Duplicates are removed, order kept.
///
/// An `eos_token` that is not in the vocabulary is an error naming `tokenizer_config_path`; no
/// end-of-sequence id at all gives an empty list (generation then stops on length or stop strings).
pub fn resolve_eos_token_ids(
    generation: Option<&GenerationDefaults>,
    tokenizer_config: Option<&TokenizerConfig>,
    tokenizer: &Tokenizer,
) -> Result<Vec<u32>, TokenizerError> {
    let mut ids = Vec::new();
    if let Some(eos) = generation.and_then(|g| g.eos_token_id.as_ref()) {
        ids = eos.to_vec();
    } else if let Some(config) = tokenizer_config {
        if let Some(token) = config.eos_token.as_deref() {
            let id = tokenizer
                .token_to_id(token)
                .ok_or_else(|| TokenizerError::UnknownToken {
                    token: token.to_string(),
                    path: config.path.clone(),
                })?;
            ids.push(id);
        }
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    Ok(ids)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn eos_token_id_is_an_int_or_a_list() {
        let one: GenerationDefaults = serde_json::from_str(r#"{"eos_token_id": 2}"#).unwrap();
        assert_eq!(one.eos_token_id.map(|e| e.to_vec()), Some(vec![2]));
        let many: GenerationDefaults = serde_json::from_str(
            r#"{"eos_token_id": [151645, 151643], "top_k": 20, "transformers_version": "4.37.0"}"#,
        )
        .unwrap();
        assert_eq!(
            many.eos_token_id.map(|e| e.to_vec()),
            Some(vec![151645, 151643])
        );
        assert_eq!(many.top_k, Some(20));
    }

    #[test]
    fn wrong_type_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generation_config.json");
        std::fs::write(&path, r#"{"eos_token_id": "two"}"#).unwrap();
        let err = GenerationDefaults::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("generation_config.json"), "{err}");
    }
}

//! Text <-> token ids, through the Hugging Face `tokenizers` crate.
//!
//! A [`Tokenizer`] comes either from a checkpoint's `tokenizer.json` ([`Tokenizer::from_file`]) or
//! from the vocabulary a GGUF file carries in its metadata ([`Tokenizer::from_gguf`], see
//! [`gguf`]). Either way encoding and decoding are the `tokenizers` crate's, so token ids agree with
//! transformers byte for byte; the crate is built with the `onig` regex engine, the one the Python
//! package uses, for the GPT-2/Qwen2/Llama-3 pre-tokenizer patterns (look-ahead `\s+(?!\S)`,
//! `\p{N}{1,3}`).
//!
//! [`TokenizerBundle`] gathers what generation needs from either kind of checkpoint: tokenizer,
//! chat template, BOS and end-of-sequence ids.
//!
//! Streaming generation decodes a growing id list with [`IncrementalDecoder`], which never emits
//! half of a multi-byte UTF-8 character, so stop strings are checked against whole text.
//! [`GenerationDefaults`] reads `generation_config.json`, the source of the end-of-sequence ids.

mod bundle;
mod generation_config;
pub mod gguf;
mod gguf_metadata;
mod stream;

use std::path::{Path, PathBuf};

pub use bundle::TokenizerBundle;
pub use generation_config::{resolve_eos_token_ids, GenerationDefaults, TokenIds};
pub use gguf::{GgufTokenizerSpec, PreTokenizerKind};
pub use stream::IncrementalDecoder;

/// Errors from loading a tokenizer, encoding or decoding.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file is malformed or has a field of the wrong type.
    #[error("{path} is not valid: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error, with line and column.
        source: serde_json::Error,
    },
    /// The `tokenizers` crate rejected a tokenizer description.
    #[error("cannot load the tokenizer from {origin}: {message}")]
    Load {
        /// Where the description came from: a file path or "GGUF metadata".
        origin: String,
        /// The crate's message.
        message: String,
    },
    /// GGUF tokenizer metadata is inconsistent or names something unsupported.
    #[error("GGUF tokenizer metadata: {0}")]
    Gguf(String),
    /// Encoding a text failed.
    #[error("cannot encode text with the tokenizer from {origin}: {message}")]
    Encode {
        /// Where the tokenizer came from.
        origin: String,
        /// The crate's message.
        message: String,
    },
    /// Decoding ids failed.
    #[error("cannot decode ids with the tokenizer from {origin}: {message}")]
    Decode {
        /// Where the tokenizer came from.
        origin: String,
        /// The crate's message.
        message: String,
    },
    /// The chat template could not be read, compiled or rendered.
    #[error(transparent)]
    ChatTemplate(#[from] crate::chat_template::ChatTemplateError),
    /// Chat input was given for a checkpoint without a chat template.
    #[error("the checkpoint of {origin} has no chat template; give raw prompts instead")]
    NoChatTemplate {
        /// Where the tokenizer came from.
        origin: String,
    },
    /// A token named in a configuration file is not in the vocabulary.
    #[error("token {token:?} named in {path} is not in the tokenizer's vocabulary")]
    UnknownToken {
        /// The token text.
        token: String,
        /// The file that named it.
        path: PathBuf,
    },
}

/// A loaded tokenizer: the `tokenizers` pipeline plus where it came from, for error messages.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: String,
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path.display().to_string())
    }

    /// Parses the contents of a `tokenizer.json`; `origin` names it in errors.
    pub fn from_bytes(json: &[u8], origin: impl Into<String>) -> Result<Self, TokenizerError> {
        let origin = origin.into();
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| TokenizerError::Load {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { inner, origin })
    }

    /// Wraps an already built `tokenizers` pipeline; `origin` names it in errors.
    pub fn from_inner(inner: tokenizers::Tokenizer, origin: impl Into<String>) -> Self {
        Self {
            inner,
            origin: origin.into(),
        }
    }

    /// Builds the byte-level BPE tokenizer a GGUF file describes, with its chat template and
    /// special ids (see [`gguf`]).
    pub fn from_gguf(spec: &GgufTokenizerSpec) -> Result<TokenizerBundle, TokenizerError> {
        gguf::build(spec)
    }

    /// Where this tokenizer was loaded from (a path, or "GGUF metadata").
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The underlying `tokenizers` pipeline.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text`.
    ///
    /// Special tokens written in the text (`<|im_start|>`) always become their ids, as in
    /// transformers; `add_special_tokens` only controls what the post-processor adds around the
    /// text (for example a BOS token).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| TokenizerError::Encode {
                origin: self.origin.clone(),
                message: e.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`. Ids outside the vocabulary are skipped (a model's embedding matrix is often
    /// padded past the tokenizer's vocabulary); bytes that do not form valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode {
                origin: self.origin.clone(),
                message: e.to_string(),
            })
    }

    /// A decoder for text that arrives one token at a time (see [`IncrementalDecoder`]).
    pub fn incremental_decoder(&self, skip_special_tokens: bool) -> IncrementalDecoder {
        IncrementalDecoder::new(skip_special_tokens)
    }

    /// The id of a token given by its vocabulary text (`"<|im_end|>"`, or a byte-level spelling).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary text of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of an added *special* token (`"<|endoftext|>"`), `None` for ordinary tokens.
    pub fn special_token_id(&self, token: &str) -> Option<u32> {
        let added = self.inner.get_added_vocabulary();
        if added.is_special_token(token) {
            self.inner.token_to_id(token)
        } else {
            None
        }
    }

    /// All added special tokens and their ids, sorted by id.
    pub fn special_tokens(&self) -> Vec<(u32, String)> {
        let mut tokens: Vec<(u32, String)> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, token)| (id, token.content))
            .collect();
        tokens.sort();
        tokens
    }

    /// Number of ids the tokenizer can produce: the model's vocabulary plus added tokens that
    /// are not already in it. This can be smaller than a checkpoint's embedding rows.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_error_names_the_path() {
        let err = Tokenizer::from_file("/nonexistent/dir/tokenizer.json").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/dir/tokenizer.json"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_error_names_the_origin() {
        let err = Tokenizer::from_bytes(b"{\"model\": 3}", "my/tokenizer.json").unwrap_err();
        assert!(matches!(err, TokenizerError::Load { .. }));
        assert!(err.to_string().contains("my/tokenizer.json"), "{err}");
    }
}

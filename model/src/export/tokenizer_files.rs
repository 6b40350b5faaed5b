//! The text side of the exported checkpoint: tokenizer, chat template and generation defaults.
//!
//! From a Hugging Face folder the files are copied through unchanged. From a GGUF file they are
//! written from its metadata: `tokenizer.json` is the `tokenizers` pipeline this crate builds
//! from the vocabulary and merges (see [`crate::tokenizer::gguf`]), so transformers' tokenizer
//! and ours are the same pipeline; `tokenizer_config.json` names the special tokens and holds the
//! chat template; `generation_config.json` has every end-of-generation id.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::config_json::SpecialIds;
use super::{write_json, write_text, ExportError};
use crate::load_gguf::open_gguf;
use crate::tokenizer::{GgufTokenizerSpec, TokenizerBundle};

/// Files of a Hugging Face folder that describe the tokenizer, chat template or generation
/// defaults; copied through when present. Weights, `config.json` and anything else (model
/// cards, fixtures) are not.
pub const COPIED_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
];

/// Copies [`COPIED_FILES`] present in `source` to `dir`; returns their names.
pub(super) fn copy_from_folder(source: &Path, dir: &Path) -> Result<Vec<String>, ExportError> {
    let mut copied = Vec::new();
    for name in COPIED_FILES {
        let from = source.join(name);
        if !from.exists() {
            continue;
        }
        let to = dir.join(name);
        std::fs::copy(&from, &to).map_err(|e| ExportError::Io {
            path: from.clone(),
            action: "copy",
            source: e,
        })?;
        super::sync_file(&to)?;
        copied.push((*name).to_string());
    }
    Ok(copied)
}

/// The tokenizer of a GGUF file and the ids its `config.json` should carry.
pub(super) struct GgufText {
    spec: GgufTokenizerSpec,
    bundle: TokenizerBundle,
}

impl GgufText {
    /// Reads the tokenizer metadata of the GGUF file `path`.
    pub fn read(path: &Path) -> Result<Self, ExportError> {
        let file = open_gguf(path)?;
        let wrap = |e: crate::tokenizer::TokenizerError| ExportError::Source {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let spec = GgufTokenizerSpec::from_metadata(file.metadata()).map_err(wrap)?;
        let bundle = TokenizerBundle::from_gguf(&spec).map_err(wrap)?;
        Ok(Self { spec, bundle })
    }

    /// The end-of-sequence id `config.json` and `eos_token` name: the file's EOS, else its
    /// first end-of-generation id.
    fn eos(&self) -> Option<u32> {
        self.spec
            .eos_token_id
            .or_else(|| self.bundle.eos_token_ids.first().copied())
    }

    pub fn special_ids(&self) -> SpecialIds {
        SpecialIds {
            bos: self.spec.bos_token_id,
            eos: self.eos(),
            pad: self.spec.padding_token_id,
        }
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` and `generation_config.json` into `dir`.
    pub fn write(&self, dir: &Path, max_length: usize) -> Result<Vec<String>, ExportError> {
        let tokenizer = &self.bundle.tokenizer;
        let json = tokenizer
            .inner()
            .to_string(true)
            .map_err(|e| ExportError::Source {
                path: dir.join("tokenizer.json"),
                message: format!("cannot serialise the GGUF tokenizer: {e}"),
            })?;
        write_text(&dir.join("tokenizer.json"), &json)?;

        let text = |id: Option<u32>| id.and_then(|id| tokenizer.id_to_token(id));
        let mut config = Map::new();
        // The generic fast tokenizer: transformers takes tokenizer.json as it is, where a
        // model-specific class may rebuild parts of the pipeline from its own defaults.
        config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
        config.insert("bos_token".into(), json!(text(self.spec.bos_token_id)));
        config.insert("eos_token".into(), json!(text(self.eos())));
        config.insert("pad_token".into(), json!(text(self.spec.padding_token_id)));
        config.insert("unk_token".into(), json!(text(self.spec.unknown_token_id)));
        config.insert("add_bos_token".into(), json!(self.bundle.add_bos_token));
        config.insert(
            "add_eos_token".into(),
            json!(self.spec.add_eos_token.unwrap_or(false)),
        );
        config.insert("clean_up_tokenization_spaces".into(), json!(false));
        config.insert("model_max_length".into(), json!(max_length));
        if let Some(template) = &self.bundle.chat_template {
            config.insert("chat_template".into(), json!(template.source()));
        }
        write_json(&dir.join("tokenizer_config.json"), &Value::Object(config))?;

        let mut generation = Map::new();
        generation.insert("bos_token_id".into(), json!(self.spec.bos_token_id));
        let eos = &self.bundle.eos_token_ids;
        generation.insert(
            "eos_token_id".into(),
            match eos.as_slice() {
                [] => Value::Null,
                [one] => json!(one),
                many => json!(many),
            },
        );
        if let Some(pad) = self.spec.padding_token_id {
            generation.insert("pad_token_id".into(), json!(pad));
        }
        write_json(
            &dir.join("generation_config.json"),
            &Value::Object(generation),
        )?;
        Ok(vec![
            "tokenizer.json".into(),
            "tokenizer_config.json".into(),
            "generation_config.json".into(),
        ])
    }
}

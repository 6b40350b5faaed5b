//! [`GgufTokenizerSpec`] from the metadata the GGUF reader ([`crate::gguf`]) parsed.

use super::gguf::GgufTokenizerSpec;
use super::TokenizerError;
use crate::gguf::{Metadata, MetadataArray, MetadataValue};

impl GgufTokenizerSpec {
    /// Reads the `tokenizer.*` keys. Missing optional keys stay `None`/empty; a key of the wrong
    /// type is an error naming it. `tokenizer.ggml.tokens` is required; merges are required by
    /// [`super::gguf::build`] for byte-level BPE, so an empty list is left for it to report.
    pub fn from_metadata(md: &Metadata) -> Result<Self, TokenizerError> {
        let wrong =
            |key: &str, expected: &str| TokenizerError::Gguf(format!("{key} is not {expected}"));
        let string = |key: &str| -> Result<Option<String>, TokenizerError> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| wrong(key, "a string")),
            }
        };
        let id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| wrong(key, "a token id")),
            }
        };
        let flag = |key: &str| -> Result<Option<bool>, TokenizerError> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => v.as_bool().map(Some).ok_or_else(|| wrong(key, "a boolean")),
            }
        };
        let strings = |key: &str| -> Result<Vec<String>, TokenizerError> {
            match md.get(key) {
                None => Ok(Vec::new()),
                Some(MetadataValue::Array(MetadataArray::String(v))) => Ok(v.clone()),
                Some(_) => Err(wrong(key, "an array of strings")),
            }
        };
        let token_types = match md.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(MetadataValue::Array(array)) => int_array(array)
                .ok_or_else(|| wrong("tokenizer.ggml.token_type", "an array of 32-bit integers"))?,
            Some(_) => return Err(wrong("tokenizer.ggml.token_type", "an array")),
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        if md.get("tokenizer.ggml.tokens").is_none() {
            return Err(TokenizerError::Gguf(
                "the file has no tokenizer.ggml.tokens".into(),
            ));
        }
        Ok(Self {
            model: string("tokenizer.ggml.model")?,
            pre: string("tokenizer.ggml.pre")?,
            tokens,
            merges: strings("tokenizer.ggml.merges")?,
            token_types,
            bos_token_id: id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: id("tokenizer.ggml.eos_token_id")?,
            eot_token_id: id("tokenizer.ggml.eot_token_id")?,
            unknown_token_id: id("tokenizer.ggml.unknown_token_id")?,
            padding_token_id: id("tokenizer.ggml.padding_token_id")?,
            add_bos_token: flag("tokenizer.ggml.add_bos_token")?,
            add_eos_token: flag("tokenizer.ggml.add_eos_token")?,
            chat_template: string("tokenizer.chat_template")?,
        })
    }
}

/// Token types are i32 in every converter, but accept any integer width that fits.
fn int_array(array: &MetadataArray) -> Option<Vec<i32>> {
    fn all<T: Copy>(v: &[T], f: impl Fn(T) -> Option<i32>) -> Option<Vec<i32>> {
        v.iter().map(|&x| f(x)).collect()
    }
    match array {
        MetadataArray::I32(v) => Some(v.clone()),
        MetadataArray::U8(v) => all(v, |x| Some(x.into())),
        MetadataArray::I8(v) => all(v, |x| Some(x.into())),
        MetadataArray::U16(v) => all(v, |x| Some(x.into())),
        MetadataArray::I16(v) => all(v, |x| Some(x.into())),
        MetadataArray::U32(v) => all(v, |x| i32::try_from(x).ok()),
        MetadataArray::I64(v) => all(v, |x| i32::try_from(x).ok()),
        MetadataArray::U64(v) => all(v, |x| i32::try_from(x).ok()),
        _ => None,
    }
}

//! A byte-level BPE tokenizer rebuilt from the metadata of a GGUF file.
//!
//! A GGUF has no `tokenizer.json`; llama.cpp's converter stores the vocabulary
//! (`tokenizer.ggml.tokens`), the merges (`tokenizer.ggml.merges`), a type per token
//! (`tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
//! 6 byte) and the name of the pre-tokenizer (`tokenizer.ggml.pre`). [`build`] turns those into
//! the same `tokenizers` pipeline the checkpoint's original `tokenizer.json` describes
//! ([`GgufTokenizerSpec::from_metadata`] reads the keys from [`crate::gguf::Metadata`]):
//!
//! | `tokenizer.ggml.pre`                   | pre-tokenizer (as in the HF `tokenizer.json`)        |
//! |----------------------------------------|------------------------------------------------------|
//! | `gpt2`, `gpt-2`, `olmo`, `mpt`, ...    | ByteLevel with the GPT-2 regex                       |
//! | `smollm`, `starcoder`, `refact`, ...   | Digits (one per digit), then ByteLevel/GPT-2 regex   |
//! | `llama-bpe`, `llama3`, `llama-v3`, ... | Split on the Llama-3 regex (`\p{N}{1,3}`), ByteLevel |
//! | `qwen2`, `deepseek-r1-qwen`, ...       | Split on the Qwen2 regex (`\p{N}` alone), ByteLevel  |
//!
//! The grouping follows llama.cpp's `llama-vocab.cpp`, which maps each name to a regex set; as
//! there, the Llama-3 family ignores merges for words that are whole vocabulary entries.
//! Control tokens become special added tokens (matched whole in any text, dropped by
//! `skip_special_tokens`), user-defined tokens become plain added tokens.
//!
//! Note that transformers (`integrations/gguf`) has no entry for `smollm` and falls back to the
//! plain GPT-2 regex, which splits a run of spaces before a digit differently (`"a  1"`); this
//! module follows llama.cpp and SmolLM2's own `tokenizer.json` (Digits first).
//!
//! No normalizer is applied, as in llama.cpp and transformers' GGUF tokenizer: Qwen2's
//! `tokenizer.json` normalizes to NFC first, so text with decomposed accents (`e` + U+0301)
//! tokenizes differently from the HF folder of the same model (5 of the 700 fixture texts).
//!
//! Not covered: sentencepiece vocabularies (`tokenizer.ggml.model = "llama"`), WordPiece, and
//! llama.cpp's `clean_spaces` decode option (no pre-tokenizer listed above enables it for
//! Qwen2 or SmolLM).

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::{Tokenizer, TokenizerBundle, TokenizerError};
use crate::chat_template::{ChatTemplate, ChatTemplateError, SpecialTokens};

/// `tokenizer.ggml.token_type` of a control token (`<|im_start|>`).
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// `tokenizer.ggml.token_type` of a user-defined token (`<think>` in some vocabularies).
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Llama-3's split pattern, as in its `tokenizer.json`.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split pattern, as in its `tokenizer.json`: single digits.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The tokenizer metadata of a GGUF file, as plain data (the GGUF reader fills this in).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufTokenizerSpec {
    /// `tokenizer.ggml.model`; only `"gpt2"` (byte-level BPE) is supported. `None` is taken as
    /// `"gpt2"`.
    pub model: Option<String>,
    /// `tokenizer.ggml.pre`, the pre-tokenizer name. `None` means GPT-2's (with a warning,
    /// as llama.cpp warns).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, indexed by id, in the byte-level alphabet.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`, each `"left right"`, highest priority first.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token; empty if the file has none.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id` (end of turn), if the file has one.
    pub eot_token_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unknown_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub padding_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; `None` takes llama.cpp's default for the pre-tokenizer
    /// (true for the Llama-3 family, false otherwise).
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`; `None` is false.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// The pre-tokenizer families (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// GPT-2's regex.
    Gpt2,
    /// Digits split one by one, then GPT-2's regex (StarCoder, SmolLM).
    StarCoder,
    /// Llama-3's regex, up to three digits together; merges ignored for whole-vocabulary words.
    Llama3,
    /// Qwen2's regex: Llama-3's with single digits.
    Qwen2,
}

impl PreTokenizerKind {
    /// The family of a `tokenizer.ggml.pre` name, as llama.cpp groups them.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "gpt2" | "gpt-2" | "phi-2" | "olmo" | "mpt" | "jais" | "jina-es" | "jina-de"
            | "jina-v2-es" | "jina-v2-de" | "gigachat" => Some(Self::Gpt2),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => Some(Self::StarCoder),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "smaug-bpe" | "dbrx" => Some(Self::Llama3),
            "qwen2" | "qwen2.5" | "qwen-2.5" | "deepseek-r1-qwen" | "megrez" => Some(Self::Qwen2),
            _ => None,
        }
    }

    fn pre_tokenizer(self) -> Result<PreTokenizerWrapper, TokenizerError> {
        let byte_level_with_regex = ByteLevel::new(false, false, true);
        let byte_level_only = ByteLevel::new(false, false, false);
        let split = |pattern: &str| {
            Split::new(
                SplitPattern::Regex(pattern.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| TokenizerError::Gguf(format!("pre-tokenizer regex: {e}")))
        };
        Ok(match self {
            Self::Gpt2 => byte_level_with_regex.into(),
            Self::StarCoder => {
                Sequence::new(vec![Digits::new(true).into(), byte_level_with_regex.into()]).into()
            }
            Self::Llama3 => {
                Sequence::new(vec![split(LLAMA3_PATTERN)?.into(), byte_level_only.into()]).into()
            }
            Self::Qwen2 => {
                Sequence::new(vec![split(QWEN2_PATTERN)?.into(), byte_level_only.into()]).into()
            }
        })
    }
}

/// Texts llama.cpp treats as end of generation when the file marks them as control tokens.
const END_OF_TURN_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
];

/// Builds the tokenizer a GGUF file describes (see the module docs), with its chat template, BOS
/// id, and end-of-generation ids: EOS, EOT, and (as llama.cpp) control tokens spelled like an end
/// of turn (`<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, `<end_of_turn>`, ...).
pub fn build(spec: &GgufTokenizerSpec) -> Result<TokenizerBundle, TokenizerError> {
    let err = |m: String| TokenizerError::Gguf(m);
    match spec.model.as_deref() {
        None | Some("gpt2") => {}
        Some(other) => {
            return Err(err(format!(
                "tokenizer.ggml.model is {other:?}; only byte-level BPE (\"gpt2\") is supported"
            )))
        }
    }
    let pre = match spec.pre.as_deref() {
        Some(name) => PreTokenizerKind::from_gguf_name(name).ok_or_else(|| {
            err(format!(
                "tokenizer.ggml.pre {name:?} is not supported (known: gpt2, smollm, starcoder, llama-bpe, llama3, qwen2 and their aliases)"
            ))
        })?,
        None => {
            tracing::warn!("GGUF has no tokenizer.ggml.pre; using the GPT-2 pre-tokenizer");
            PreTokenizerKind::Gpt2
        }
    };
    let n = spec.tokens.len();
    if n == 0 {
        return Err(err("tokenizer.ggml.tokens is empty".into()));
    }
    let n_u32 = u32::try_from(n).map_err(|_| err(format!("{n} tokens do not fit in u32 ids")))?;
    if !spec.token_types.is_empty() && spec.token_types.len() != n {
        return Err(err(format!(
            "tokenizer.ggml.token_type has {} entries for {n} tokens",
            spec.token_types.len()
        )));
    }
    let check_id = |name: &str, id: Option<u32>| match id {
        Some(id) if id >= n_u32 => Err(err(format!("{name} {id} is out of range for {n} tokens"))),
        _ => Ok(()),
    };
    check_id("tokenizer.ggml.bos_token_id", spec.bos_token_id)?;
    check_id("tokenizer.ggml.eos_token_id", spec.eos_token_id)?;
    check_id("tokenizer.ggml.eot_token_id", spec.eot_token_id)?;
    check_id("tokenizer.ggml.unknown_token_id", spec.unknown_token_id)?;
    check_id("tokenizer.ggml.padding_token_id", spec.padding_token_id)?;

    let token_type = |id: usize| spec.token_types.get(id).copied().unwrap_or(1);
    let byte_alphabet = byte_level_alphabet();

    // Vocabulary: id -> text. Ordinary tokens written outside the byte-level alphabet (a
    // converter quirk) are respelled byte by byte, as transformers does; control and
    // user-defined tokens keep their text, since they are matched whole in raw text.
    let mut vocab = Vocab::with_capacity(n);
    let mut texts: Vec<String> = Vec::with_capacity(n);
    for (id, token) in spec.tokens.iter().enumerate() {
        let kind = token_type(id);
        let text = if token.is_empty() {
            // llama.cpp's placeholder for an empty entry; it can never match input text.
            format!("[EMPTY_{id}]")
        } else if kind == TOKEN_TYPE_CONTROL
            || kind == TOKEN_TYPE_USER_DEFINED
            || token.chars().all(|c| byte_alphabet.contains(&c))
        {
            token.clone()
        } else {
            token
                .bytes()
                .map(|b| BYTES_TO_UNICODE[b as usize])
                .collect()
        };
        // `id < n` and `n` fits in u32.
        let id32 = id as u32;
        if vocab.insert(text.clone(), id32).is_some() {
            return Err(err(format!(
                "token {id} ({text:?}) appears twice in tokenizer.ggml.tokens"
            )));
        }
        texts.push(text);
    }

    let mut merges = Vec::with_capacity(spec.merges.len());
    for (i, merge) in spec.merges.iter().enumerate() {
        // llama.cpp splits at the first space after the first character, so a merge whose left
        // side is itself a space token still parses.
        let split_at = merge
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == ' ')
            .map(|(at, _)| at)
            .ok_or_else(|| err(format!("tokenizer.ggml.merges[{i}] {merge:?} has no space")))?;
        let (left, right) = (&merge[..split_at], &merge[split_at + 1..]);
        for side in [left, right] {
            if !vocab.contains_key(side) {
                return Err(err(format!(
                    "tokenizer.ggml.merges[{i}] {merge:?}: {side:?} is not a token"
                )));
            }
        }
        let merged = format!("{left}{right}");
        if !vocab.contains_key(&merged) {
            return Err(err(format!(
                "tokenizer.ggml.merges[{i}] {merge:?}: the merged token {merged:?} is not in the vocabulary"
            )));
        }
        merges.push((left.to_string(), right.to_string()));
    }

    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre == PreTokenizerKind::Llama3)
        .build()
        .map_err(|e| err(format!("building BPE: {e}")))?;
    let mut inner = tokenizers::Tokenizer::new(model);
    inner.with_pre_tokenizer(Some(pre.pre_tokenizer()?));
    inner.with_decoder(Some(ByteLevel::new(false, false, false)));

    let added = |wanted: i32, special: bool| -> Vec<AddedToken> {
        texts
            .iter()
            .enumerate()
            .filter(|&(id, _)| token_type(id) == wanted)
            .map(|(_, text)| AddedToken::from(text.clone(), special).normalized(false))
            .collect()
    };
    inner
        .add_special_tokens(added(TOKEN_TYPE_CONTROL, true))
        .map_err(|e| err(format!("adding control tokens: {e}")))?;
    inner
        .add_tokens(added(TOKEN_TYPE_USER_DEFINED, false))
        .map_err(|e| err(format!("adding user-defined tokens: {e}")))?;

    let add_bos = spec
        .add_bos_token
        .unwrap_or(pre == PreTokenizerKind::Llama3);
    let add_eos = spec.add_eos_token.unwrap_or(false);
    if add_bos || add_eos {
        let named = |what: &str, id: Option<u32>| {
            id.map(|id| (texts[id as usize].clone(), id))
                .ok_or_else(|| {
                    err(format!(
                        "add_{what}_token is set but there is no {what}_token_id"
                    ))
                })
        };
        let mut single = Vec::new();
        let mut special = Vec::new();
        if add_bos {
            let (text, id) = named("bos", spec.bos_token_id)?;
            single.push(text.clone());
            special.push((text, id));
        }
        single.push("$A".to_string());
        if add_eos {
            let (text, id) = named("eos", spec.eos_token_id)?;
            single.push(text.clone());
            special.push((text, id));
        }
        let pair: Vec<String> = single
            .iter()
            .map(|piece| {
                if piece == "$A" {
                    "$B:1".to_string()
                } else {
                    format!("{piece}:1")
                }
            })
            .collect();
        let pair = [single.clone(), pair].concat();
        let template_err = |e: String| err(format!("BOS/EOS template: {e}"));
        let mut builder = TemplateProcessing::builder();
        builder.try_single(single.join(" ")).map_err(template_err)?;
        builder.try_pair(pair.join(" ")).map_err(template_err)?;
        builder.special_tokens(special);
        let processor = builder.build().map_err(|e| template_err(e.to_string()))?;
        inner.with_post_processor(Some(processor));
    }

    let tokenizer = Tokenizer::from_inner(inner, "GGUF metadata");

    let mut eos_token_ids = Vec::new();
    eos_token_ids.extend(spec.eos_token_id);
    eos_token_ids.extend(spec.eot_token_id);
    for (id, text) in texts.iter().enumerate() {
        if token_type(id) == TOKEN_TYPE_CONTROL && END_OF_TURN_TEXTS.contains(&text.as_str()) {
            eos_token_ids.push(id as u32);
        }
    }
    let mut seen = std::collections::HashSet::new();
    eos_token_ids.retain(|id| seen.insert(*id));

    let name_of = |id: Option<u32>| id.map(|id| texts[id as usize].clone());
    let chat_template = match &spec.chat_template {
        Some(source) => Some(
            ChatTemplate::new(
                source.clone(),
                SpecialTokens {
                    bos_token: name_of(spec.bos_token_id),
                    eos_token: name_of(spec.eos_token_id),
                    unk_token: name_of(spec.unknown_token_id),
                    pad_token: name_of(spec.padding_token_id),
                },
                "GGUF tokenizer.chat_template",
            )
            .map_err(|e: ChatTemplateError| err(e.to_string()))?,
        ),
        None => None,
    };

    Ok(TokenizerBundle {
        tokenizer,
        chat_template,
        bos_token_id: spec.bos_token_id,
        eos_token_ids,
        add_bos_token: add_bos,
        generation: None,
        pre_tokenizer: Some(pre),
    })
}

/// GPT-2's byte -> printable character table (`bytes_to_unicode`): printable Latin-1 bytes map
/// to themselves, the other 68 to U+0100 upwards in byte order.
static BYTES_TO_UNICODE: std::sync::LazyLock<[char; 256]> = std::sync::LazyLock::new(|| {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
    }
    table
});

fn byte_level_alphabet() -> std::collections::HashSet<char> {
    BYTES_TO_UNICODE.iter().copied().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A tiny vocabulary: bytes for "a", "b", " ", "1", merges "a b", "Ġ a", two control tokens.
    fn tiny_spec() -> GgufTokenizerSpec {
        let tokens = [
            "<|endoftext|>",
            "<|im_end|>",
            "a",
            "b",
            "Ġ",
            "1",
            "ab",
            "Ġa",
        ];
        GgufTokenizerSpec {
            model: Some("gpt2".into()),
            pre: Some("smollm".into()),
            tokens: tokens.iter().map(|s| s.to_string()).collect(),
            merges: vec!["a b".into(), "Ġ a".into()],
            token_types: vec![3, 3, 1, 1, 1, 1, 1, 1],
            bos_token_id: Some(0),
            eos_token_id: Some(1),
            add_bos_token: Some(false),
            ..GgufTokenizerSpec::default()
        }
    }

    #[test]
    fn builds_and_encodes_with_control_tokens() {
        let built = build(&tiny_spec()).unwrap();
        let tok = &built.tokenizer;
        assert_eq!(
            tok.encode("ab a<|im_end|>1", true).unwrap(),
            vec![6, 7, 1, 5]
        );
        assert_eq!(tok.decode(&[6, 7, 1], true).unwrap(), "ab a");
        assert_eq!(tok.decode(&[6, 7, 1], false).unwrap(), "ab a<|im_end|>");
        assert_eq!(tok.special_token_id("<|im_end|>"), Some(1));
        assert_eq!(tok.special_token_id("ab"), None);
        assert_eq!(built.eos_token_ids, vec![1, 0]);
        assert_eq!(tok.vocab_size(), 8);
    }

    #[test]
    fn add_bos_prepends_the_bos_token() {
        let mut spec = tiny_spec();
        spec.add_bos_token = Some(true);
        let built = build(&spec).unwrap();
        assert_eq!(built.tokenizer.encode("ab", true).unwrap(), vec![0, 6]);
        assert_eq!(built.tokenizer.encode("ab", false).unwrap(), vec![6]);
    }

    #[test]
    fn bad_metadata_is_an_error_not_a_panic() {
        type Mutation = Box<dyn Fn(&mut GgufTokenizerSpec)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "sentencepiece",
                Box::new(|s: &mut GgufTokenizerSpec| s.model = Some("llama".into())),
            ),
            (
                "unknown pre",
                Box::new(|s: &mut GgufTokenizerSpec| s.pre = Some("klingon".into())),
            ),
            (
                "no tokens",
                Box::new(|s: &mut GgufTokenizerSpec| s.tokens.clear()),
            ),
            (
                "types length",
                Box::new(|s: &mut GgufTokenizerSpec| {
                    s.token_types.pop();
                }),
            ),
            (
                "bos range",
                Box::new(|s: &mut GgufTokenizerSpec| s.bos_token_id = Some(99)),
            ),
            (
                "merge no space",
                Box::new(|s: &mut GgufTokenizerSpec| s.merges.push("ab".into())),
            ),
            (
                "merge unknown side",
                Box::new(|s: &mut GgufTokenizerSpec| s.merges.push("a z".into())),
            ),
            (
                "merge unknown result",
                Box::new(|s: &mut GgufTokenizerSpec| s.merges.push("b a".into())),
            ),
            (
                "duplicate token",
                Box::new(|s: &mut GgufTokenizerSpec| s.tokens[3] = "a".into()),
            ),
            (
                "bos missing",
                Box::new(|s: &mut GgufTokenizerSpec| {
                    s.add_bos_token = Some(true);
                    s.bos_token_id = None;
                }),
            ),
            (
                "bad template",
                Box::new(|s: &mut GgufTokenizerSpec| s.chat_template = Some("{% if %}".into())),
            ),
        ];
        for (name, mutate) in cases {
            let mut spec = tiny_spec();
            mutate(&mut spec);
            assert!(build(&spec).is_err(), "{name} should be rejected");
        }
    }

    #[test]
    fn pre_tokenizer_names() {
        assert_eq!(
            PreTokenizerKind::from_gguf_name("qwen2"),
            Some(PreTokenizerKind::Qwen2)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_name("smollm"),
            Some(PreTokenizerKind::StarCoder)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_name("llama-bpe"),
            Some(PreTokenizerKind::Llama3)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_name("gpt2"),
            Some(PreTokenizerKind::Gpt2)
        );
        assert_eq!(PreTokenizerKind::from_gguf_name("default"), None);
    }

    #[test]
    fn byte_table_matches_gpt2() {
        assert_eq!(BYTES_TO_UNICODE[b' ' as usize], 'Ġ');
        assert_eq!(BYTES_TO_UNICODE[b'\n' as usize], 'Ċ');
        assert_eq!(BYTES_TO_UNICODE[b'a' as usize], 'a');
        assert_eq!(BYTES_TO_UNICODE[0xAD], 'Ń');
    }
}

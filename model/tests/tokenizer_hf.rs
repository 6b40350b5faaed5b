//! `tokenizer.json` path: ids, decodes and streaming decodes agree with the Python `tokenizers`
//! on the fixture texts, for a Qwen2-style and a Llama-3-style byte-level BPE
//! (tests/fixtures/tokenizer/make_fixtures.py writes both and the expected values).

#![allow(clippy::unwrap_used)] // fixtures are ours; a panic is the test failing

use std::path::PathBuf;

use model::chat_template::{ChatMessage, TokenizerConfig};
use model::tokenizer::{resolve_eos_token_ids, GenerationDefaults, Tokenizer, TokenizerBundle};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer")
}

fn texts() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("texts.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[derive(Deserialize)]
struct Row {
    ids: Vec<u32>,
    ids_with_special: Option<Vec<u32>>,
    /// Present when decoding does not give the text back (NFC normalization).
    decoded: Option<String>,
    decoded_skip_special: Option<String>,
}

fn rows(name: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("tiny_encodings.json")).unwrap();
    let mut all: std::collections::HashMap<String, Vec<Row>> = serde_json::from_str(&text).unwrap();
    all.remove(name).unwrap()
}

fn check_against_python(name: &str) {
    let tok = Tokenizer::from_file(fixtures().join(name).join("tokenizer.json")).unwrap();
    let texts = texts();
    let rows = rows(name);
    assert!(rows.len() >= 500);
    let mut mismatches = Vec::new();
    for (text, row) in texts.iter().zip(&rows) {
        let ids = tok.encode(text, false).unwrap();
        if ids != row.ids {
            mismatches.push(text.clone());
            continue;
        }
        let with_special = tok.encode(text, true).unwrap();
        assert_eq!(
            &with_special,
            row.ids_with_special.as_ref().unwrap_or(&row.ids),
            "{text:?}"
        );
        assert_eq!(
            &tok.decode(&ids, false).unwrap(),
            row.decoded.as_ref().unwrap_or(text)
        );
        let skipped = tok.decode(&ids, true).unwrap();
        assert_eq!(
            &skipped,
            row.decoded_skip_special.as_ref().unwrap_or(text),
            "{text:?}"
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} texts differ from Python, e.g. {:?}",
        mismatches.len(),
        rows.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[test]
fn qwen2_style_tokenizer_json_matches_python_tokenizers() {
    check_against_python("qwen2_5");
}

#[test]
fn llama3_style_tokenizer_json_matches_python_tokenizers() {
    check_against_python("llama3");
}

#[test]
fn streaming_decode_equals_full_decode_and_never_splits_characters() {
    for name in ["qwen2_5", "llama3"] {
        let tok = Tokenizer::from_file(fixtures().join(name).join("tokenizer.json")).unwrap();
        for text in texts().iter().take(700) {
            let ids = tok.encode(text, false).unwrap();
            for skip in [false, true] {
                let mut stream = tok.incremental_decoder(skip);
                let mut pieces = String::new();
                for &id in &ids {
                    let piece = stream.push(&tok, id).unwrap();
                    // A held-back partial character never leaks out as U+FFFD.
                    assert!(
                        !piece.contains('\u{FFFD}'),
                        "{text:?} gave a broken piece {piece:?}"
                    );
                    pieces.push_str(piece);
                }
                pieces.push_str(stream.finish(&tok).unwrap());
                assert_eq!(pieces, tok.decode(&ids, skip).unwrap(), "{name} {text:?}");
                assert_eq!(stream.text(), pieces);
                assert_eq!(stream.ids(), ids.as_slice());
            }
        }
    }
}

#[test]
fn streaming_decode_holds_back_an_emoji_until_complete() {
    let tok = Tokenizer::from_file(fixtures().join("qwen2_5/tokenizer.json")).unwrap();
    // Emoji the tiny vocabulary never saw, so each is split into byte tokens.
    let ids = tok.encode("a🦀🦞b", false).unwrap();
    let mut stream = tok.incremental_decoder(false);
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| stream.push(&tok, id).unwrap().to_string())
        .collect();
    assert!(
        ids.len() > 3,
        "the emoji should take several byte tokens: {ids:?}"
    );
    assert!(
        pieces.iter().any(|p| p.is_empty()),
        "some token must end mid-character: {pieces:?}"
    );
    assert_eq!(pieces.concat(), "a🦀🦞b");
}

#[test]
fn streaming_decode_flushes_a_truncated_character_on_finish() {
    let tok = Tokenizer::from_file(fixtures().join("qwen2_5/tokenizer.json")).unwrap();
    let ids = tok.encode("x🦀", false).unwrap();
    let mut stream = tok.incremental_decoder(false);
    let mut out = String::new();
    for &id in &ids[..ids.len() - 1] {
        out.push_str(stream.push(&tok, id).unwrap());
    }
    assert_eq!(out, "x");
    assert_eq!(stream.finish(&tok).unwrap(), "\u{FFFD}");
}

#[test]
fn special_tokens_and_vocab_size() {
    let tok = Tokenizer::from_file(fixtures().join("qwen2_5/tokenizer.json")).unwrap();
    let im_end = tok.special_token_id("<|im_end|>").unwrap();
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(im_end));
    assert_eq!(tok.id_to_token(im_end).as_deref(), Some("<|im_end|>"));
    assert_eq!(tok.special_token_id("hello"), None);
    assert_eq!(tok.special_tokens().len(), 3);
    assert_eq!(tok.vocab_size(), 2500);
    assert_eq!(
        tok.encode("<|im_start|>user", false).unwrap()[0],
        tok.token_to_id("<|im_start|>").unwrap()
    );
}

#[test]
fn eos_ids_come_from_generation_config_then_tokenizer_config() {
    let dir = fixtures().join("qwen2_5");
    let tok = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let config = TokenizerConfig::from_file(dir.join("tokenizer_config.json")).unwrap();
    let generation = GenerationDefaults::from_model_dir(&dir).unwrap().unwrap();
    assert_eq!(generation.top_k, Some(20));
    let ids = resolve_eos_token_ids(Some(&generation), Some(&config), &tok).unwrap();
    assert_eq!(ids, vec![151645, 151643]);
    // Without a generation_config.json the tokenizer config's eos_token (an AddedToken object
    // here) names the id.
    let ids = resolve_eos_token_ids(None, Some(&config), &tok).unwrap();
    assert_eq!(ids, vec![tok.token_to_id("<|im_end|>").unwrap()]);
    assert!(
        GenerationDefaults::from_model_dir(fixtures().join("smollm2"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn bundle_from_qwen_style_folder() {
    let bundle = TokenizerBundle::from_model_dir(fixtures().join("qwen2_5")).unwrap();
    assert_eq!(bundle.eos_token_ids, vec![151645, 151643]);
    assert!(!bundle.add_bos_token);
    assert_eq!(bundle.generation.as_ref().and_then(|g| g.top_p), Some(0.8));
    let ids = bundle
        .encode_chat(&[ChatMessage::user("Hi")], true)
        .unwrap();
    let im_start = bundle.tokenizer.token_to_id("<|im_start|>").unwrap();
    assert_eq!(ids[0], im_start);
    assert_eq!(
        bundle.tokenizer.decode(&ids, false).unwrap(),
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn bundle_from_llama_style_folder_adds_bos() {
    let bundle = TokenizerBundle::from_model_dir(fixtures().join("llama3")).unwrap();
    let bos = bundle.tokenizer.token_to_id("<|begin_of_text|>").unwrap();
    assert_eq!(bundle.bos_token_id, Some(bos));
    assert!(bundle.add_bos_token);
    assert_eq!(bundle.eos_token_ids, vec![128001, 128008, 128009]);
    // The template writes BOS itself, so chat encoding must not add a second one.
    let ids = bundle
        .encode_chat(&[ChatMessage::user("Hi")], true)
        .unwrap();
    assert_eq!(ids[0], bos);
    assert_ne!(ids[1], bos);
}

#[test]
fn bundle_errors_name_the_missing_file() {
    let err = TokenizerBundle::from_model_dir(fixtures().join("smollm2")).unwrap_err();
    assert!(err.to_string().contains("smollm2/tokenizer.json"), "{err}");

    // A folder without a chat template loads, and chat encoding says what is missing.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("qwen2_5/tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let bundle = TokenizerBundle::from_model_dir(dir.path()).unwrap();
    assert!(bundle.chat_template.is_none());
    assert!(bundle.eos_token_ids.is_empty());
    let err = bundle
        .encode_chat(&[ChatMessage::user("Hi")], true)
        .unwrap_err();
    assert!(err.to_string().contains("no chat template"), "{err}");

    // An eos_token that is not in the vocabulary is an error naming tokenizer_config.json.
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"eos_token": "<|nope|>"}"#,
    )
    .unwrap();
    let err = TokenizerBundle::from_model_dir(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("<|nope|>") && err.to_string().contains("tokenizer_config.json"),
        "{err}"
    );
}

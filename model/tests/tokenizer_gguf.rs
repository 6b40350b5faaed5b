//! Tokenizer rebuilt from GGUF metadata.
//!
//! - SmolLM2-135M-Instruct (`tokenizer.ggml.pre = "smollm"`): the metadata dumped from the real
//!   GGUF (tests/fixtures/tokenizer/smollm2_gguf_tokenizer.json) must give exactly the ids of
//!   SmolLM2's own tokenizer layout (llama.cpp's `smollm`) on all 3000 fixture texts; agreement
//!   with transformers' GGUF tokenizer, which skips the Digits split, is measured and pinned.
//! - `qwen2` and `llama-bpe`: a GGUF-style spec made from the tiny Qwen2/Llama-3 `tokenizer.json`
//!   fixtures must give the same ids as those files.

#![allow(clippy::unwrap_used)] // fixtures are ours; a panic is the test failing

use std::collections::HashMap;
use std::path::PathBuf;

use model::chat_template::ChatMessage;
use model::tokenizer::{GgufTokenizerSpec, PreTokenizerKind, Tokenizer};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer")
}

fn read_json<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
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

fn smollm_spec() -> GgufTokenizerSpec {
    let d: Dump = read_json("smollm2_gguf_tokenizer.json");
    GgufTokenizerSpec {
        model: d.model,
        pre: d.pre,
        tokens: d.tokens,
        merges: d.merges,
        token_types: d.token_types,
        bos_token_id: d.bos_token_id,
        eos_token_id: d.eos_token_id,
        eot_token_id: None,
        unknown_token_id: d.unknown_token_id,
        padding_token_id: d.padding_token_id,
        add_bos_token: d.add_bos_token,
        add_eos_token: None,
        chat_template: d.chat_template,
    }
}

#[derive(Deserialize)]
struct Encodings {
    reference: Vec<Vec<u32>>,
    transformers_where_different: HashMap<String, Vec<u32>>,
}

#[test]
fn smollm2_gguf_tokenizer_matches_reference_on_all_texts() {
    let built = Tokenizer::from_gguf(&smollm_spec()).unwrap();
    assert_eq!(built.pre_tokenizer, Some(PreTokenizerKind::StarCoder));
    assert!(!built.add_bos_token);
    let tok = &built.tokenizer;
    assert_eq!(tok.vocab_size(), 49152);

    let texts: Vec<String> = read_json("texts.json");
    let expected: Encodings = read_json("smollm2_gguf_encodings.json");
    assert_eq!(texts.len(), expected.reference.len());
    assert!(texts.len() >= 3000);

    let mut wrong = Vec::new();
    let mut agree_with_transformers = 0;
    for (i, (text, reference)) in texts.iter().zip(&expected.reference).enumerate() {
        let ids = tok.encode(text, true).unwrap();
        if &ids != reference {
            wrong.push(text.clone());
        }
        let theirs = expected
            .transformers_where_different
            .get(&i.to_string())
            .unwrap_or(reference);
        if &ids == theirs {
            agree_with_transformers += 1;
        }
        assert_eq!(
            &tok.decode(&ids, false).unwrap(),
            text,
            "byte-level decoding is lossless"
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of {} texts differ, e.g. {:?}",
        wrong.len(),
        texts.len(),
        &wrong[..wrong.len().min(5)]
    );
    // transformers' GGUF tokenizer has no `smollm` entry and splits digit runs with the GPT-2
    // regex; every text it tokenizes differently contains a Unicode digit (see the module doc
    // of model::tokenizer::gguf). Pinned so a change on either side is noticed.
    assert_eq!(
        agree_with_transformers,
        texts.len() - expected.transformers_where_different.len()
    );
    assert_eq!(
        agree_with_transformers, 2678,
        "agreement with transformers changed"
    );
    for i in expected.transformers_where_different.keys() {
        let text = &texts[i.parse::<usize>().unwrap()];
        assert!(
            text.chars().any(char::is_numeric),
            "{text:?} differs without a digit"
        );
    }
}

#[test]
fn smollm2_gguf_special_tokens_eos_and_chat_template() {
    let built = Tokenizer::from_gguf(&smollm_spec()).unwrap();
    let tok = &built.tokenizer;
    assert_eq!(tok.special_token_id("<|im_start|>"), Some(1));
    assert_eq!(tok.special_token_id("<|im_end|>"), Some(2));
    assert_eq!(built.bos_token_id, Some(1));
    // EOS (<|im_end|>) first, then <|endoftext|>, which llama.cpp also treats as end of generation.
    assert_eq!(built.eos_token_ids, vec![2, 0]);
    let ids = tok
        .encode("<|im_start|>user\nHi<|im_end|>\n", false)
        .unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert!(ids.contains(&2));
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHi\n");

    let template = built.chat_template.as_ref().unwrap();
    let out = template.render(&[ChatMessage::user("Hi")], true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        template.special_tokens().eos_token.as_deref(),
        Some("<|im_end|>")
    );

    let ids = built.encode_chat(&[ChatMessage::user("Hi")], true).unwrap();
    assert_eq!(ids, tok.encode(&out, false).unwrap());
    assert!(built.is_eos(2) && built.is_eos(0) && !built.is_eos(1));
}

/// A GGUF-style spec from a tiny `tokenizer.json`: tokens by id, merges as "a b", added special
/// tokens marked as control.
fn spec_from_tokenizer_json(dir: &str, pre: &str) -> GgufTokenizerSpec {
    let json: serde_json::Value = read_json(&format!("{dir}/tokenizer.json"));
    let vocab = json["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (text, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = text.clone();
    }
    let mut token_types = vec![1; tokens.len()];
    for added in json["added_tokens"].as_array().unwrap() {
        if added["special"].as_bool().unwrap() {
            token_types[added["id"].as_u64().unwrap() as usize] = 3;
        }
    }
    let merges = json["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => s.clone(),
            pair => format!(
                "{} {}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            ),
        })
        .collect();
    GgufTokenizerSpec {
        model: Some("gpt2".into()),
        pre: Some(pre.into()),
        tokens,
        merges,
        token_types,
        bos_token_id: Some(0),
        eos_token_id: Some(0),
        add_bos_token: Some(false),
        ..GgufTokenizerSpec::default()
    }
}

#[derive(Deserialize)]
struct Row {
    ids: Vec<u32>,
    /// Qwen2's tokenizer.json normalizes to NFC; GGUF metadata has no normalizer (llama.cpp and
    /// transformers' GGUF tokenizer apply none), so such texts tokenize differently by design.
    #[serde(default)]
    changed_by_nfc: bool,
}

fn check_gguf_family(dir: &str, pre: &str, kind: PreTokenizerKind) {
    let built = Tokenizer::from_gguf(&spec_from_tokenizer_json(dir, pre)).unwrap();
    assert_eq!(built.pre_tokenizer, Some(kind));
    let texts: Vec<String> = read_json("texts.json");
    let mut rows: HashMap<String, Vec<Row>> = read_json("tiny_encodings.json");
    let rows = rows.remove(dir).unwrap();
    let mut compared = 0;
    for (text, row) in texts
        .iter()
        .zip(&rows)
        .filter(|(_, row)| !row.changed_by_nfc)
    {
        assert_eq!(
            built.tokenizer.encode(text, false).unwrap(),
            row.ids,
            "{pre}: {text:?}"
        );
        compared += 1;
    }
    assert!(compared > 650, "{compared}");
}

#[test]
fn qwen2_pre_tokenizer_from_gguf_matches_tokenizer_json() {
    check_gguf_family("qwen2_5", "qwen2", PreTokenizerKind::Qwen2);
}

#[test]
fn llama_bpe_pre_tokenizer_from_gguf_matches_tokenizer_json() {
    check_gguf_family("llama3", "llama-bpe", PreTokenizerKind::Llama3);
}

#[test]
fn llama_bpe_adds_bos_by_default() {
    let mut spec = spec_from_tokenizer_json("llama3", "llama-bpe");
    spec.add_bos_token = None;
    let built = Tokenizer::from_gguf(&spec).unwrap();
    assert!(built.add_bos_token);
    assert_eq!(built.tokenizer.encode("hi", true).unwrap()[0], 0);
}

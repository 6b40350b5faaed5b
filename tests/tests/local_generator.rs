//! The local generator (`pipeline::generator::local`) on the tiny chat fixture
//! (`tests/fixtures/models/llama_chat`, HF folder and GGUF): chat and text prompts against
//! transformers' greedy continuations, OpenAI parameters (stop strings, n, seeds, max_tokens),
//! EOS from generation_config.json, and per-request failures.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;

use pipeline::generator::local::open_local;
use pipeline::generator::{
    ChatMessage, FinishReason, GenRequest, Generator, Prompt, SamplingParams,
};
use selfinstruct_tests::repo_root;
use serde_json::Value;

fn folder() -> PathBuf {
    repo_root().join("tests/fixtures/models/llama_chat")
}

fn golden() -> Value {
    serde_json::from_str(&fs::read_to_string(folder().join("golden.json")).unwrap()).unwrap()
}

fn chat(g: &Value) -> Prompt {
    let m = &g["chat_messages"][0];
    Prompt::Chat(vec![ChatMessage {
        role: m["role"].as_str().unwrap().into(),
        content: m["content"].as_str().unwrap().into(),
    }])
}

fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        max_tokens,
        temperature: 0.0,
        ..SamplingParams::default()
    }
}

#[test]
fn chat_and_text_prompts_equal_transformers_greedy() {
    let g = golden();
    for path in [
        folder(),
        repo_root().join("tests/fixtures/models/llama_chat.gguf"),
    ] {
        let generator = open_local(Some(path.to_str().unwrap()), 4).unwrap();
        assert!(
            generator.describe().contains("llama_chat"),
            "{}",
            generator.describe()
        );
        let requests = [
            GenRequest {
                prompt: chat(&g),
                params: greedy(16),
            },
            GenRequest {
                prompt: Prompt::Text(g["text_prompt"].as_str().unwrap().into()),
                params: greedy(16),
            },
        ];
        let out: Vec<_> = generator
            .generate(&requests)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            out[0].samples[0].text,
            g["chat_greedy_text"].as_str().unwrap(),
            "{path:?}"
        );
        assert_eq!(out[0].samples[0].finish_reason, FinishReason::Length);
        assert_eq!(out[0].samples[0].completion_tokens, Some(16));
        assert_eq!(
            out[0].prompt_tokens,
            Some(g["chat_prompt_ids"].as_array().unwrap().len() as u32)
        );
        assert_eq!(
            out[1].samples[0].text,
            g["text_greedy_text"].as_str().unwrap(),
            "{path:?}"
        );
        assert_eq!(
            out[1].prompt_tokens,
            Some(g["text_prompt_ids"].as_array().unwrap().len() as u32)
        );
    }
}

#[test]
fn stop_strings_n_seeds_and_bad_requests() {
    let g = golden();
    let generator = open_local(Some(folder().to_str().unwrap()), 8).unwrap();
    let full = g["chat_greedy_text"].as_str().unwrap();
    let stop = "Write";
    let cut = full
        .find(stop)
        .expect("the golden text contains the stop string");
    let sampled = SamplingParams {
        max_tokens: 8,
        temperature: 0.8,
        top_p: 0.9,
        n: 3,
        seed: Some(7),
        ..SamplingParams::default()
    };
    let requests = [
        GenRequest {
            prompt: chat(&g),
            params: SamplingParams {
                stop: vec![stop.into()],
                ..greedy(16)
            },
        },
        GenRequest {
            prompt: chat(&g),
            params: SamplingParams {
                top_p: 0.0,
                ..greedy(4)
            },
        },
        GenRequest {
            prompt: chat(&g),
            params: sampled.clone(),
        },
    ];
    let out = generator.generate(&requests);
    let stopped = out[0].as_ref().unwrap();
    assert_eq!(stopped.samples[0].text, &full[..cut]);
    assert_eq!(stopped.samples[0].finish_reason, FinishReason::Stop);
    let e = out[1].as_ref().unwrap_err().to_string();
    assert!(e.contains("top_p"), "{e}");
    let samples = &out[2].as_ref().unwrap().samples;
    assert_eq!(samples.len(), 3);
    assert!(samples.iter().all(|s| s.completion_tokens == Some(8)));

    // Same seed, same samples, alone or in another batch.
    let again = generator.generate(&[GenRequest {
        prompt: chat(&g),
        params: sampled,
    }]);
    assert_eq!(&again[0].as_ref().unwrap().samples, samples);
}

#[test]
fn eos_ids_come_from_generation_config() {
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(folder()).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    // Make the 4th greedy token an end-of-sequence token.
    let eos = g["chat_greedy"][3].as_u64().unwrap();
    assert!(g["chat_greedy"].as_array().unwrap()[..3]
        .iter()
        .all(|t| t.as_u64() != Some(eos)));
    fs::write(
        tmp.path().join("generation_config.json"),
        format!("{{\"eos_token_id\": [{eos}]}}"),
    )
    .unwrap();
    let generator = open_local(Some(tmp.path().to_str().unwrap()), 2).unwrap();
    let out = generator.generate(&[GenRequest {
        prompt: chat(&g),
        params: greedy(16),
    }]);
    let sample = &out[0].as_ref().unwrap().samples[0];
    assert_eq!(sample.finish_reason, FinishReason::Stop);
    assert_eq!(sample.completion_tokens, Some(4));
}

#[test]
fn a_checkpoint_without_tokenizer_is_refused() {
    let path = repo_root().join("tests/fixtures/models/qwen2_gqa4_untied");
    let e = open_local(Some(path.to_str().unwrap()), 2)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no tokenizer"), "{e}");
}

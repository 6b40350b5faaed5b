//! `selfinstruct export-model`: the llama GGUF fixture as a Hugging Face folder that the tool
//! itself reloads with transformers' golden logits; an existing destination needs `--force`.

#![allow(clippy::unwrap_used)]

use std::fs;

use selfinstruct_tests::{repo_root, run_in, texts};

#[test]
fn gguf_exports_to_a_folder_with_the_golden_logits() {
    let dir = tempfile::tempdir().unwrap();
    let models = repo_root().join("tests/fixtures/models");
    let gguf = models.join("llama_chat.gguf");
    let export = [
        "export-model",
        "--model",
        gguf.to_str().unwrap(),
        "--out",
        "hf",
    ];
    let out = run_in(dir.path(), &export);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("model.safetensors"), "{stderr}");
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(dir.path().join("hf").join(file).is_file(), "{file}");
    }

    let golden: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(models.join("llama_chat/golden.json")).unwrap())
            .unwrap();
    let ids: Vec<String> = golden["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let out = run_in(
        dir.path(),
        &[
            "logits",
            "--model",
            "hf",
            "--ids",
            &ids.join(" "),
            "--out",
            "l.f32",
        ],
    );
    assert!(out.status.success(), "{}", texts(&out).1);
    let read = |p: &std::path::Path| -> Vec<f32> {
        fs::read(p)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (got, want) = (
        read(&dir.path().join("l.f32")),
        read(&models.join("llama_chat/logits.f32")),
    );
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-4, "max |logit diff| {diff}");

    // The destination now exists: refused with exit code 2, then replaced with --force.
    let out = run_in(dir.path(), &export);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not an empty folder"), "{stderr}");
    let out = run_in(
        dir.path(),
        &[&export[..], &["--force", "--dtype", "bf16"]].concat(),
    );
    assert!(out.status.success(), "{}", texts(&out).1);
    let config = fs::read_to_string(dir.path().join("hf/config.json")).unwrap();
    assert!(config.contains("\"bfloat16\""), "{config}");
}

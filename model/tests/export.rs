//! `export_hf`: every fixture checkpoint (Hugging Face folders of each architecture, tied and
//! untied, sharded, and the llama GGUF) exported and reloaded with `load_any` gives the same
//! logits bit for bit in f32; the GGUF export is the original HF checkpoint (q/k rows
//! un-permuted) with a tokenizer that encodes and renders chats as the GGUF's; destinations are
//! never half-written or clobbered.
//!
//! The ignored test at the end writes exports and this tool's outputs on them for
//! `tests/fixtures/export/check_transformers.py`, which loads each with transformers:
//!
//! ```text
//! EXPORT_CHECK_DIR=/tmp/export-check SMOLLM_GGUF=/path/SmolLM2-135M-Instruct.Q4_1.gguf \
//!     cargo test -p model --test export -- --ignored --nocapture
//! ```
//!
//! For each export `DIR/<name>/` it writes `DIR/<name>.ours.json` (input ids, logits shape,
//! token ids of a few texts, a rendered chat and its ids) and `DIR/<name>.logits.f32`
//! (little-endian f32 `[positions, vocab]`), computed by reloading the export with `load_any`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use model::chat_template::ChatMessage;
use model::export::{export_hf, ExportDtype, ExportError, ExportOptions};
use model::lora::{attach_lora, merge_lora, LoraSettings, LoraTarget};
use model::{load_any, LoadedModel};
use safetensors::SafeTensors;
use serde_json::json;

type B = Flex;

const FOLDERS: &[&str] = &[
    "qwen2_gqa4_untied",
    "qwen2_mha_tied",
    "qwen2_sliding_window",
    "qwen2_dynamic_rope",
    "qwen3_qk_norm",
    "llama_gqa2_sharded",
    "llama_chat",
];

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
}

fn load(path: &Path) -> LoadedModel<B> {
    load_any::<B>(path, &Default::default()).unwrap()
}

fn input_ids(fixture: &str) -> Vec<u32> {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models().join(fixture).join("golden.json")).unwrap(),
    )
    .unwrap();
    serde_json::from_value(golden["input_ids"].clone()).unwrap()
}

fn logits(loaded: &LoadedModel<B>, ids: &[u32]) -> Vec<f32> {
    loaded
        .model
        .logits(ids)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap()
}

fn export(loaded: &LoadedModel<B>, source: &Path, out: &Path, options: &ExportOptions) {
    export_hf(&loaded.model, &loaded.config, source, out, options).unwrap();
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn every_folder_fixture_reloads_with_identical_logits() {
    let tmp = tempfile::tempdir().unwrap();
    for name in FOLDERS {
        let source = models().join(name);
        let original = load(&source);
        let out = tmp.path().join(name);
        let summary = export_hf(
            &original.model,
            &original.config,
            &source,
            &out,
            &ExportOptions::default(),
        )
        .unwrap();
        assert_eq!(summary.tied, original.config.tie_word_embeddings, "{name}");
        assert!(summary.files.contains(&"model.safetensors".to_string()));

        let reloaded = load(&out);
        let ids = input_ids(name);
        assert_eq!(logits(&reloaded, &ids), logits(&original, &ids), "{name}");

        let config = read_json(&out.join("config.json"));
        assert_eq!(config["dtype"], "float32", "{name}");
        assert_eq!(config["torch_dtype"], "float32", "{name}");
        assert!(config.get("rope_parameters").is_none(), "{name}: 4 dialect");
        assert_eq!(config["rope_theta"], original.config.rope_theta(), "{name}");
        assert_eq!(
            config["tie_word_embeddings"], original.config.tie_word_embeddings,
            "{name}"
        );
        // Keys we do not model pass through.
        assert_eq!(config["initializer_range"], 0.02, "{name}");
        let tensors = std::fs::read(out.join("model.safetensors")).unwrap();
        let (_, metadata) = SafeTensors::read_metadata(&tensors).unwrap();
        assert_eq!(
            metadata.metadata().as_ref().unwrap().get("format").unwrap(),
            "pt"
        );
        let has_head = metadata.tensors().contains_key("lm_head.weight");
        assert_eq!(has_head, !original.config.tie_word_embeddings, "{name}");
    }
    // The chat fixture's text files are copied through byte for byte.
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert_eq!(
            std::fs::read(tmp.path().join("llama_chat").join(file)).unwrap(),
            std::fs::read(models().join("llama_chat").join(file)).unwrap(),
            "{file}"
        );
    }
}

/// Tensors of a safetensors file as f32, by name.
fn tensors_f32(path: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => panic!("{name}: {other:?}"),
            };
            (name, values)
        })
        .collect()
}

#[test]
fn gguf_export_is_the_original_checkpoint_with_the_same_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = models().join("llama_chat.gguf");
    let original = load(&gguf);
    let out = tmp.path().join("from_gguf");
    export(&original, &gguf, &out, &ExportOptions::default());

    // The GGUF holds the folder's bf16 weights (llama q/k rows permuted): the export must be
    // exactly the folder's tensors, under the same names.
    let exported = tensors_f32(&out.join("model.safetensors"));
    let folder = tensors_f32(&models().join("llama_chat/model.safetensors"));
    assert_eq!(
        exported.keys().collect::<Vec<_>>(),
        folder.keys().collect::<Vec<_>>()
    );
    for (name, values) in &folder {
        assert!(
            exported[name] == *values,
            "{name} differs from the HF folder"
        );
    }

    let reloaded = load(&out);
    let ids = input_ids("llama_chat");
    assert_eq!(logits(&reloaded, &ids), logits(&original, &ids));

    let config = read_json(&out.join("config.json"));
    let folder_config = read_json(&models().join("llama_chat/config.json"));
    for key in [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
        "tie_word_embeddings",
        "architectures",
        "model_type",
    ] {
        assert_eq!(config[key], folder_config[key], "{key}");
    }
    assert_eq!(config["rope_theta"], 100000.0);

    // Same tokenizer, special ids and chat rendering as the GGUF's.
    let (a, b) = (
        original.tokenizer.as_ref().unwrap(),
        reloaded.tokenizer.as_ref().unwrap(),
    );
    assert_eq!(reloaded.eos_token_ids, original.eos_token_ids);
    assert_eq!(b.bos_token_id, a.bos_token_id);
    assert_eq!(b.add_bos_token, a.add_bos_token);
    for text in [
        "The quick brown fox",
        "  two  spaces, digits 12345 and\nnew lines\n\n",
        "<|im_start|>user\nhé ünïcode ✓ 東京<|im_end|>",
    ] {
        assert_eq!(
            b.tokenizer.encode(text, true).unwrap(),
            a.tokenizer.encode(text, true).unwrap(),
            "{text:?}"
        );
    }
    let chat = [
        ChatMessage::system("Be brief."),
        ChatMessage::user("Name a colour."),
        ChatMessage::assistant("Blue."),
        ChatMessage::user("Another?"),
    ];
    assert_eq!(
        b.encode_chat(&chat, true).unwrap(),
        a.encode_chat(&chat, true).unwrap()
    );
}

#[test]
fn bf16_export_is_exact_for_bf16_weights_and_close_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        dtype: ExportDtype::Bf16,
        ..Default::default()
    };
    // Weights that were bf16 on disk survive bf16 export exactly.
    let source = models().join("qwen2_mha_tied");
    let original = load(&source);
    let out = tmp.path().join("bf16");
    export(&original, &source, &out, &options);
    assert_eq!(
        read_json(&out.join("config.json"))["torch_dtype"],
        "bfloat16"
    );
    let ids = input_ids("qwen2_mha_tied");
    assert_eq!(logits(&load(&out), &ids), logits(&original, &ids));

    // f32 weights are rounded: logits move by a little.
    let source = models().join("qwen2_gqa4_untied");
    let original = load(&source);
    let out = tmp.path().join("bf16_rounded");
    export(&original, &source, &out, &options);
    let ids = input_ids("qwen2_gqa4_untied");
    let (a, b) = (logits(&load(&out), &ids), logits(&original, &ids));
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = max_diff(&a, &b);
    eprintln!("bf16 export of f32 weights: max |logit diff| {diff:e} (max |logit| {scale})");
    assert!(diff > 0.0 && diff < 0.02 * scale, "{diff} vs {scale}");
}

#[test]
fn large_models_are_sharded_with_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    let source = models().join("llama_chat");
    let original = load(&source);
    let out = tmp.path().join("sharded");
    let options = ExportOptions {
        max_shard_bytes: 20_000,
        ..Default::default()
    };
    let summary = export_hf(&original.model, &original.config, &source, &out, &options).unwrap();
    let shards: Vec<_> = summary
        .files
        .iter()
        .filter(|f| f.starts_with("model-"))
        .collect();
    assert!(shards.len() >= 3, "{:?}", summary.files);
    assert!(!out.join("model.safetensors").exists());
    let index = read_json(&out.join("model.safetensors.index.json"));
    assert_eq!(index["metadata"]["total_size"], summary.tensor_bytes);
    assert_eq!(
        index["weight_map"].as_object().unwrap().len(),
        summary.tensors
    );
    let ids = input_ids("llama_chat");
    assert_eq!(logits(&load(&out), &ids), logits(&original, &ids));
}

/// Entries of `dir` (names), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn destinations_are_never_clobbered_or_half_written() {
    let tmp = tempfile::tempdir().unwrap();
    let source = models().join("qwen2_mha_tied");
    let loaded = load(&source);
    let run = |out: &Path, options: &ExportOptions| {
        export_hf(&loaded.model, &loaded.config, &source, out, options)
    };
    let default = ExportOptions::default();

    // A non-empty folder is refused and left as it was.
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    let err = run(&full, &default).unwrap_err();
    assert!(
        matches!(err, ExportError::DestinationNotEmpty { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(entries(&full), ["notes.txt"]);

    // ... unless overwriting is asked for: then it is replaced whole.
    run(
        &full,
        &ExportOptions {
            overwrite: true,
            ..default.clone()
        },
    )
    .unwrap();
    assert!(!full.join("notes.txt").exists());
    assert!(full.join("model.safetensors").is_file());

    // An empty folder is filled; a file is refused.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    run(&empty, &default).unwrap();
    assert!(empty.join("config.json").is_file());
    let file = tmp.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    let err = run(&file, &default).unwrap_err();
    assert!(
        matches!(err, ExportError::DestinationNotFolder { .. }),
        "{err}"
    );

    // Unwritable: the parent is a file.
    let err = run(&file.join("sub"), &default).unwrap_err();
    assert!(matches!(err, ExportError::Io { .. }), "{err}");
    assert!(err.to_string().contains("a_file"), "{err}");

    // A failure half-way (a "tokenizer.json" that is a folder cannot be copied) leaves
    // neither the destination nor the temporary folder behind.
    let odd_source = tmp.path().join("odd_source");
    std::fs::create_dir(&odd_source).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(source.join(name), odd_source.join(name)).unwrap();
    }
    std::fs::create_dir(odd_source.join("tokenizer.json")).unwrap();
    let parent = tmp.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    let err = export_hf(
        &loaded.model,
        &loaded.config,
        &odd_source,
        &parent.join("out"),
        &default,
    )
    .unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    assert!(entries(&parent).is_empty(), "{:?}", entries(&parent));
}

#[test]
fn features_transformers_lacks_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let source = models().join("qwen2_mha_tied");
    let loaded = load(&source);
    let mut config = loaded.config.clone();
    config.use_logn_attn = true;
    config.seq_length = Some(64);
    let out = tmp.path().join("logn");
    let err = export_hf(
        &loaded.model,
        &config,
        &source,
        &out,
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::NotExpressible(_)), "{err}");
    assert!(err.to_string().contains("use_logn_attn"), "{err}");
    assert!(entries(tmp.path()).is_empty());

    // A config that does not describe the model (bias on q/k/v for a Llama without) too.
    let source = models().join("llama_chat");
    let loaded = load(&source);
    let mut config = loaded.config.clone();
    config.attention_bias = Some(true);
    let err = export_hf(
        &loaded.model,
        &config,
        &source,
        &out,
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::Inconsistent { .. }), "{err}");
    assert!(err.to_string().contains("q_proj.bias"), "{err}");
    assert!(entries(tmp.path()).is_empty());

    // Attached LoRA adapters must be merged first; merged, the model exports.
    let settings = LoraSettings {
        rank: 2,
        alpha: 4.0,
        dropout: 0.0,
        targets: vec![LoraTarget::V, LoraTarget::Down],
    };
    let adapted = attach_lora(loaded.model, &settings);
    let err = export_hf(
        &adapted,
        &loaded.config,
        &source,
        &out,
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::UnmergedAdapter { .. }), "{err}");
    assert!(
        err.to_string().contains("model.layers.0.self_attn.v_proj"),
        "{err}"
    );
    assert!(entries(tmp.path()).is_empty());
    let merged = merge_lora(adapted);
    export_hf(
        &merged,
        &loaded.config,
        &source,
        &out,
        &ExportOptions::default(),
    )
    .unwrap();
}

/// Texts whose ids transformers' tokenizer must reproduce: spaces, digits, newlines, accents,
/// CJK, emoji and special tokens written in the text.
const TEXTS: &[&str] = &[
    "Give three tips for staying healthy.",
    "  leading spaces, 12345 digits,   and\ttabs\n\nnew lines  ",
    "Café naïve 東京 😀 — ok?",
    "<|im_start|>user\nHi<|im_end|>\n",
];

fn chat() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You answer in one sentence."),
        ChatMessage::user("What is the capital of France?"),
        ChatMessage::assistant("Paris."),
        ChatMessage::user("And of Japan?"),
    ]
}

fn export_and_describe(
    source: &Path,
    dir: &Path,
    name: &str,
    dtype: ExportDtype,
    ids: Option<Vec<u32>>,
) {
    let device = Default::default();
    let loaded = load_any::<B>(source, &device).unwrap();
    let out = dir.join(name);
    let options = ExportOptions {
        dtype,
        overwrite: true,
        ..Default::default()
    };
    let summary = export_hf(&loaded.model, &loaded.config, source, &out, &options).unwrap();
    drop(loaded);
    let reloaded = load_any::<B>(&out, &device).unwrap();
    let mut description =
        json!({"source": source.display().to_string(), "dtype": format!("{dtype:?}")});
    let ids = match (&reloaded.tokenizer, ids) {
        (_, Some(ids)) => ids,
        (Some(bundle), None) => bundle.encode_chat(&chat(), true).unwrap(),
        (None, None) => panic!("{name}: no tokenizer and no input ids"),
    };
    if let Some(bundle) = &reloaded.tokenizer {
        let texts: Vec<_> = TEXTS
            .iter()
            .map(|t| json!({"text": t, "ids": bundle.tokenizer.encode(t, true).unwrap()}))
            .collect();
        description["texts"] = json!(texts);
        if let Ok(template) = bundle.chat_template() {
            description["chat"] = json!({
                "messages": chat(),
                "text": template.render(&chat(), true).unwrap(),
                "ids": bundle.encode_chat(&chat(), true).unwrap(),
            });
        }
    }
    let logits = reloaded.model.logits(&ids).unwrap();
    description["logits_shape"] = json!(logits.dims());
    description["input_ids"] = json!(ids);
    let values: Vec<f32> = logits.into_data().to_vec().unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.logits.f32")), bytes).unwrap();
    std::fs::write(
        dir.join(format!("{name}.ours.json")),
        serde_json::to_string_pretty(&description).unwrap(),
    )
    .unwrap();
    eprintln!(
        "{name}: {} files, {} tensors, {} bytes",
        summary.files.len(),
        summary.tensors,
        summary.tensor_bytes
    );
}

#[test]
#[ignore = "writes exports for tests/fixtures/export/check_transformers.py; set EXPORT_CHECK_DIR"]
fn write_exports_for_the_transformers_check() {
    let dir = PathBuf::from(std::env::var("EXPORT_CHECK_DIR").expect("set EXPORT_CHECK_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    for name in FOLDERS {
        let ids = Some(input_ids(name));
        export_and_describe(&models().join(name), &dir, name, ExportDtype::F32, ids);
    }
    let gguf = models().join("llama_chat.gguf");
    export_and_describe(&gguf, &dir, "llama_chat_gguf", ExportDtype::F32, None);
    export_and_describe(&gguf, &dir, "llama_chat_gguf_bf16", ExportDtype::Bf16, None);
    if let Ok(smollm) = std::env::var("SMOLLM_GGUF") {
        export_and_describe(
            Path::new(&smollm),
            &dir,
            "smollm2_gguf",
            ExportDtype::F32,
            None,
        );
    }
}

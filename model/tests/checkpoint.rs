//! GGUF files through the model builder, and `load_any` for both kinds of checkpoint, on the
//! tiny chat model of `tests/fixtures/models/make_chat_fixture.py`: the same weights as an HF
//! folder (`llama_chat/`) and as a llama GGUF (`llama_chat.gguf`, q/k rows permuted by
//! llama.cpp's converter), with a tokenizer and a ChatML template.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use model::checkpoint::{load_any, sha256_file, CheckpointKind};
use model::engine::{generate, GenerationRequest};
use model::generate::{greedy, FinishReason};
use model::gguf::{GgufFile, GgufModelConfig};
use model::{load_checkpoint, load_gguf, LoadError, Model};

type B = Flex;

const TOLERANCE: f32 = 1e-4;

#[derive(serde::Deserialize)]
struct Golden {
    input_ids: Vec<u32>,
    logits_shape: [usize; 2],
    eos_token_ids: Vec<u32>,
    greedy_prompt: Vec<u32>,
    greedy_cached: Vec<u32>,
    text_prompt: String,
    text_prompt_ids: Vec<u32>,
    text_greedy: Vec<u32>,
    text_greedy_text: String,
    chat_messages: Vec<model::chat_template::ChatMessage>,
    chat_prompt_text: String,
    chat_prompt_ids: Vec<u32>,
    chat_greedy: Vec<u32>,
    chat_greedy_text: String,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn folder() -> PathBuf {
    fixtures().join("models/llama_chat")
}

fn gguf() -> PathBuf {
    fixtures().join("models/llama_chat.gguf")
}

fn golden() -> (Golden, Vec<f32>) {
    let g: Golden =
        serde_json::from_str(&std::fs::read_to_string(folder().join("golden.json")).unwrap())
            .unwrap();
    let bytes = std::fs::read(folder().join("logits.f32")).unwrap();
    let logits = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (g, logits)
}

fn max_diff(model: &Model<B>, ids: &[u32], expected: &[f32], shape: [usize; 2]) -> f32 {
    let logits = model.logits(ids).unwrap();
    assert_eq!(logits.dims(), shape);
    let got = logits.into_data().to_vec::<f32>().unwrap();
    got.iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn gguf_logits_equal_transformers_and_the_hf_folder() {
    let device = Default::default();
    let (g, expected) = golden();
    let (config, model) = load_gguf::<B>(&gguf(), &device).unwrap();
    let diff = max_diff(&model, &g.input_ids, &expected, g.logits_shape);
    eprintln!("llama_chat.gguf: max |logit diff| vs transformers = {diff:e}");
    assert!(diff < TOLERANCE, "GGUF vs transformers: {diff}");

    let (hf_config, hf_model) = load_checkpoint::<B>(&folder(), &device).unwrap();
    let hf = hf_model.logits(&g.input_ids).unwrap().into_data();
    let diff_hf = max_diff(
        &model,
        &g.input_ids,
        &hf.to_vec::<f32>().unwrap(),
        g.logits_shape,
    );
    eprintln!("llama_chat.gguf: max |logit diff| vs the HF folder = {diff_hf:e}");
    assert!(diff_hf < 1e-5, "GGUF vs HF folder: {diff_hf}");

    // The GGUF metadata gives the folder's config.
    assert_eq!(
        config.architecture().unwrap(),
        hf_config.architecture().unwrap()
    );
    for (what, a, b) in [
        ("vocab", config.vocab_size, hf_config.vocab_size),
        ("hidden", config.hidden_size, hf_config.hidden_size),
        ("ffn", config.intermediate_size, hf_config.intermediate_size),
        (
            "layers",
            config.num_hidden_layers,
            hf_config.num_hidden_layers,
        ),
        (
            "heads",
            config.num_attention_heads,
            hf_config.num_attention_heads,
        ),
        ("kv heads", config.num_kv_heads(), hf_config.num_kv_heads()),
        ("head dim", config.head_dim(), hf_config.head_dim()),
        (
            "max pos",
            config.max_position_embeddings(),
            hf_config.max_position_embeddings(),
        ),
    ] {
        assert_eq!(a, b, "{what}");
    }
    assert_eq!(config.rope_theta(), hf_config.rope_theta());
    assert_eq!(config.tie_word_embeddings, hf_config.tie_word_embeddings);
    assert!((config.rms_norm_eps() - hf_config.rms_norm_eps()).abs() < 1e-9);
    assert_eq!(config.qkv_bias(), hf_config.qkv_bias());

    let out = greedy(&model, &g.greedy_prompt, g.greedy_cached.len(), &[]).unwrap();
    assert_eq!(
        out.tokens, g.greedy_cached,
        "greedy continuation of the GGUF"
    );
}

#[test]
fn load_any_reads_both_kinds_with_tokenizer_and_eos() {
    let device = Default::default();
    let (g, _) = golden();
    for (path, kind) in [
        (folder(), CheckpointKind::HfFolder),
        (gguf(), CheckpointKind::Gguf),
    ] {
        let loaded = load_any::<B>(&path, &device).unwrap();
        assert_eq!(loaded.identity.kind, kind);
        let bundle = loaded
            .tokenizer
            .as_ref()
            .expect("the fixture has a tokenizer");
        // <|im_end|> ends generation in both; the folder lists <|endoftext|> as well.
        assert!(
            loaded.eos_token_ids.contains(&g.eos_token_ids[0]),
            "{path:?}"
        );
        if kind == CheckpointKind::HfFolder {
            assert_eq!(loaded.eos_token_ids, g.eos_token_ids);
        }
        let rendered = bundle
            .chat_template()
            .unwrap()
            .render(&g.chat_messages, true)
            .unwrap();
        assert_eq!(rendered, g.chat_prompt_text, "{path:?}");
        assert_eq!(
            bundle.encode_chat(&g.chat_messages, true).unwrap(),
            g.chat_prompt_ids,
            "{path:?}"
        );
        assert_eq!(
            bundle.tokenizer.encode(&g.text_prompt, true).unwrap(),
            g.text_prompt_ids,
            "{path:?}"
        );

        // Chat and text prompts through the batched engine, EOS ignored: transformers' tokens
        // and text.
        let requests = [
            GenerationRequest::new(g.chat_prompt_ids.clone(), g.chat_greedy.len()),
            GenerationRequest::new(g.text_prompt_ids.clone(), g.text_greedy.len()),
        ];
        let decode = |ids: &[u32]| bundle.tokenizer.decode(ids, true).unwrap();
        let out = generate(&loaded.model, &requests, 4, Some(&decode)).unwrap();
        assert_eq!(out[0][0].tokens, g.chat_greedy, "{path:?}");
        assert_eq!(out[0][0].text.as_deref(), Some(g.chat_greedy_text.as_str()));
        assert_eq!(out[1][0].tokens, g.text_greedy, "{path:?}");
        assert_eq!(out[1][0].text.as_deref(), Some(g.text_greedy_text.as_str()));
        assert_eq!(out[0][0].finish_reason, FinishReason::Length);
    }
}

#[test]
fn identity_hashes_the_weight_files() {
    let device = Default::default();
    let loaded = load_any::<B>(&gguf(), &device).unwrap();
    let hash = loaded.identity.weights_sha256().unwrap().to_string();
    assert_eq!(hash, sha256_file(&gguf()).unwrap());
    assert_eq!(hash.len(), 64);
    assert_eq!(loaded.identity.weight_files, vec![gguf()]);

    let sharded = fixtures().join("models/llama_gqa2_sharded");
    let loaded = load_any::<B>(&sharded, &device).unwrap();
    assert!(loaded.tokenizer.is_none());
    assert!(loaded.eos_token_ids.is_empty());
    assert_eq!(loaded.identity.weight_files.len(), 3);
    let lines: String = loaded
        .identity
        .weight_files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            format!("{}  {name}\n", sha256_file(f).unwrap())
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("list");
    std::fs::write(&list, lines).unwrap();
    assert_eq!(
        loaded.identity.weights_sha256().unwrap(),
        sha256_file(&list).unwrap()
    );
}

fn err_of(path: &Path) -> LoadError {
    match load_any::<B>(path, &Default::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn bad_paths_and_files_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let e = err_of(&missing);
    assert!(matches!(e, LoadError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("nothing-here"), "{e}");

    let not_gguf = tmp.path().join("model.gguf");
    std::fs::write(&not_gguf, b"this is not a GGUF file at all").unwrap();
    let e = err_of(&not_gguf).to_string();
    assert!(
        e.contains("model.gguf") && e.contains("not a GGUF file"),
        "{e}"
    );

    // Truncated in the middle of the tensor data.
    let bytes = std::fs::read(gguf()).unwrap();
    let cut = tmp.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = err_of(&cut).to_string();
    assert!(e.contains("cut.gguf"), "{e}");

    // An empty folder: config.json is named.
    let e = err_of(tmp.path()).to_string();
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn gguf_rope_scaling_the_model_cannot_do_is_rejected() {
    // tiny_qwen2.gguf declares YaRN scaling.
    let file = GgufFile::open(fixtures().join("gguf/tiny_qwen2.gguf")).unwrap();
    let meta = GgufModelConfig::from_gguf(file.content()).unwrap();
    let e = meta.to_config().unwrap_err().to_string();
    assert!(e.contains("Yarn") && e.contains("not supported"), "{e}");
    let e = load_gguf::<B>(
        &fixtures().join("gguf/tiny_qwen2.gguf"),
        &Default::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("tiny_qwen2.gguf"), "{e}");
}

#[test]
fn other_gguf_fixtures_build_models() {
    let device = Default::default();
    // qwen3: explicit head_dim and q/k norms; llama: Q8_0 q rows permuted, tied head.
    for (name, arch) in [("tiny_qwen3.gguf", "qwen3"), ("tiny_llama.gguf", "llama")] {
        let (config, model) = load_gguf::<B>(&fixtures().join("gguf").join(name), &device).unwrap();
        assert_eq!(config.architecture().unwrap().model_type(), arch);
        let logits = model.logits(&[1, 2, 3]).unwrap();
        assert_eq!(logits.dims(), [3, config.vocab_size]);
        let values = logits.into_data().to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn unknown_gguf_tensor_is_named() {
    // Rename a tensor in a copy of the file (same length, so offsets stay valid).
    let mut bytes = std::fs::read(gguf()).unwrap();
    let from = b"blk.1.ffn_up.weight";
    let to = b"blk.1.ffn_zz.weight";
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + to.len()].copy_from_slice(to);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("renamed.gguf");
    std::fs::write(&path, bytes).unwrap();
    let e = err_of(&path).to_string();
    assert!(
        e.contains("renamed.gguf") && e.contains("blk.1.ffn_zz.weight"),
        "{e}"
    );
}

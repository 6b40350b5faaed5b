//! Equality with transformers on the tiny checkpoints of `tests/fixtures/models`
//! (regenerate with `tests/fixtures/models/make_fixtures.py`): logits for every position within
//! 1e-4, and identical greedy continuations with and without the KV cache.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use burn::backend::Flex;
use model::config::{AttentionImpl, Config};
use model::cpu::CpuModel;
use model::engine::{generate, GenerationRequest};
use model::generate::{greedy, greedy_no_cache};
use model::load::{load_checkpoint, load_weights};
use model::Model;

type B = Flex;

const TOLERANCE: f32 = 1e-4;

#[derive(serde::Deserialize)]
struct Golden {
    input_ids: Vec<u32>,
    logits_shape: [usize; 2],
    logits_file: String,
    greedy_prompt: Vec<u32>,
    greedy_cached: Vec<u32>,
    greedy_nocache: Vec<u32>,
}

fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

fn golden(name: &str) -> (Golden, Vec<f32>) {
    let dir = fixture_dir(name);
    let g: Golden =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(&g.logits_file)).unwrap();
    let logits: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(logits.len(), g.logits_shape[0] * g.logits_shape[1]);
    (g, logits)
}

/// Max |logit difference| over every position and vocabulary entry.
fn logit_diff(model: &Model<B>, g: &Golden, expected: &[f32]) -> f32 {
    let logits = model.logits(&g.input_ids).unwrap();
    assert_eq!(logits.dims(), g.logits_shape);
    let got = logits.into_data().to_vec::<f32>().unwrap();
    got.iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn check(name: &str) {
    let device = Default::default();
    let (g, expected) = golden(name);
    let (_, model) = load_checkpoint::<B>(&fixture_dir(name), &device).unwrap();
    let diff = logit_diff(&model, &g, &expected);
    eprintln!("{name}: max |logit diff| = {diff:e}");
    assert!(diff < TOLERANCE, "{name}: max |logit diff| {diff}");
    let n = g.greedy_cached.len();
    let nocache = greedy_no_cache(&model, &g.greedy_prompt, n, &[]).unwrap();
    assert_eq!(
        nocache.tokens, g.greedy_nocache,
        "{name}: greedy without cache"
    );
    let cached = greedy(&model, &g.greedy_prompt, n, &[]).unwrap();
    assert_eq!(cached.tokens, g.greedy_cached, "{name}: greedy with cache");
    check_cpu_engine(name, &model, &g, &expected);
}

/// The CPU engine built from the same model: logits of every position within the tolerance,
/// and the same greedy continuation through the batched engine.
fn check_cpu_engine(name: &str, model: &Model<B>, g: &Golden, expected: &[f32]) {
    let cpu = CpuModel::from_model(model).unwrap();
    let got = cpu.logits(&g.input_ids).unwrap();
    assert_eq!(got.len(), expected.len());
    let diff = max_diff(&got, expected);
    eprintln!("{name} (CPU engine): max |logit diff| = {diff:e}");
    assert!(
        diff < TOLERANCE,
        "{name} CPU engine: max |logit diff| {diff}"
    );
    let n = g.greedy_cached.len();
    let request = GenerationRequest::new(g.greedy_prompt.clone(), n);
    let out = generate(&cpu, &[request], 4, None).unwrap();
    assert_eq!(
        out[0][0].tokens, g.greedy_cached,
        "{name}: CPU engine greedy"
    );
}

#[test]
fn qwen2_gqa4_untied() {
    check("qwen2_gqa4_untied");
}

#[test]
fn qwen2_mha_tied() {
    check("qwen2_mha_tied");
}

#[test]
fn qwen2_sliding_window() {
    check("qwen2_sliding_window");
}

#[test]
fn qwen2_dynamic_rope() {
    check("qwen2_dynamic_rope");
}

#[test]
fn qwen3_qk_norm() {
    check("qwen3_qk_norm");
}

#[test]
fn llama_gqa2_sharded() {
    check("llama_gqa2_sharded");
}

#[test]
fn fused_attention_matches_transformers() {
    let device = Default::default();
    for name in [
        "qwen2_sliding_window",
        "qwen3_qk_norm",
        "llama_gqa2_sharded",
    ] {
        let dir = fixture_dir(name);
        let mut config = Config::from_file(&dir.join("config.json")).unwrap();
        config.attention_implementation = AttentionImpl::Fused;
        let model = load_weights::<B>(&dir, &config, &device).unwrap();
        let (g, expected) = golden(name);
        let diff = logit_diff(&model, &g, &expected);
        eprintln!("{name} (fused): max |logit diff| = {diff:e}");
        assert!(diff < TOLERANCE, "{name} fused: {diff}");
        let cached = greedy(&model, &g.greedy_prompt, g.greedy_cached.len(), &[]).unwrap();
        assert_eq!(cached.tokens, g.greedy_cached, "{name} fused greedy");
    }
}

/// Logits of `name`'s golden input with its config changed by `edit`.
fn logits_with(name: &str, edit: impl FnOnce(&mut Config)) -> Vec<f32> {
    let dir = fixture_dir(name);
    let mut config = Config::from_file(&dir.join("config.json")).unwrap();
    edit(&mut config);
    let model = load_weights::<B>(&dir, &config, &Default::default()).unwrap();
    let (g, _) = golden(name);
    model
        .logits(&g.input_ids)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Max |difference| to the fixture's golden logits with the config changed by `edit`.
fn diff_with(name: &str, edit: impl FnOnce(&mut Config)) -> f32 {
    max_diff(&logits_with(name, edit), &golden(name).1)
}

#[test]
fn explicit_layer_windows_reproduce_transformers_sliding_layers() {
    // The fixture slides on layers 1 and 2 (max_window_layers 1, window 8); the explicit list says
    // the same thing without the transformers keys.
    let diff = diff_with("qwen2_sliding_window", |c| {
        c.use_sliding_window = Some(false);
        c.layer_types = None;
        c.layer_windows = Some(vec![None, Some(8), Some(8)]);
    });
    assert!(diff < TOLERANCE, "{diff}");
    // A different window list changes the output.
    let diff = diff_with("qwen2_sliding_window", |c| {
        c.use_sliding_window = Some(false);
        c.layer_types = None;
        c.layer_windows = Some(vec![Some(4), Some(8), Some(8)]);
    });
    assert!(diff > 1e-3, "{diff}");
}

#[test]
fn logn_only_acts_past_the_training_length() {
    // 20 input tokens: a training length of 20 leaves every query unscaled ...
    let diff = diff_with("qwen2_gqa4_untied", |c| {
        c.use_logn_attn = true;
        c.seq_length = Some(20);
    });
    assert!(diff < TOLERANCE, "{diff}");
    // ... 8 scales positions 8..20 and changes the logits.
    let diff = diff_with("qwen2_gqa4_untied", |c| {
        c.use_logn_attn = true;
        c.seq_length = Some(8);
    });
    assert!(diff > 1e-3, "{diff}");
}

#[test]
fn static_ntk_alpha_equals_a_raised_rope_theta() {
    // alpha 2, head_dim 8: theta' = 10000 * 2^(8/6).
    let with_alpha = logits_with("qwen2_gqa4_untied", |c| {
        c.rope_parameters = None;
        c.rope_theta = Some(10000.0);
        c.rope_scaling =
            Some(serde_json::from_str(r#"{"rope_type": "ntk", "alpha": 2.0}"#).unwrap());
    });
    let raised = logits_with("qwen2_gqa4_untied", |c| {
        c.rope_parameters = None;
        c.rope_theta = Some(10000.0 * 2f64.powf(8.0 / 6.0));
    });
    assert!(
        max_diff(&with_alpha, &golden("qwen2_gqa4_untied").1) > 1e-3,
        "alpha had no effect"
    );
    assert!(max_diff(&with_alpha, &raised) < 1e-6);
}
